"""The scenario schema: every key a scenario file may hold, its type, range and meaning.

Unknown keys are errors (a typo must not silently fall back to a default). Shares
are fractions in [0, 1]; daily probabilities are per resident per day; money is
integer fen.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SEGMENTS = ("youth", "adult", "elderly")
Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PerSegment(Strict):
    """One number per resident segment (youth 18-34, adult 35-59, elderly 60+)."""

    youth: float = Field(ge=0)
    adult: float = Field(ge=0)
    elderly: float = Field(ge=0)

    def get(self, segment: str) -> float:
        return float(getattr(self, segment))


class Shares(PerSegment):
    """Fractions in [0, 1], one per segment."""

    youth: float = Field(ge=0, le=1)
    adult: float = Field(ge=0, le=1)
    elderly: float = Field(ge=0, le=1)


class City(Strict):
    name: str = Field(min_length=1, description="City the population is scaled from.")
    start_date: dt.date = Field(description="First simulated day.")
    days: int = Field(ge=1, le=3650, description="Simulated days; one model step per day.")
    residents: int = Field(ge=10, le=2_000_000, description="Synthetic residents simulated.")
    merchants: int = Field(ge=1, le=200_000, description="Synthetic merchants simulated.")
    real_population: int = Field(
        ge=1, description="Residents of the real city; scale factor = real / simulated."
    )
    segment_shares: Shares = Field(description="Share of residents in each segment; sums to 1.")

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> City:
        total = sum(self.segment_shares.get(s) for s in SEGMENTS)
        if abs(total - 1) > 1e-6:
            raise ValueError(f"segment_shares must sum to 1, not {total:g}")
        return self

    @property
    def scale_factor(self) -> float:
        return self.real_population / self.residents


class Network(Strict):
    """Small-world social ties (households, workplaces, neighbours) for imitation."""

    mean_degree: int = Field(ge=2, le=100, description="Ties per resident (even).")
    rewire_probability: float = Field(ge=0, le=1, description="Watts-Strogatz rewiring.")


class Adoption(Strict):
    """Bass-style adoption on the network: daily P(adopt) = innovation + imitation x
    share of a resident's ties who have adopted; only smartphone owners adopt."""

    innovation: PerSegment = Field(description="Daily adoption probability from outside.")
    imitation: PerSegment = Field(description="Daily probability per share of adopted ties.")
    smartphone_share: Shares = Field(description="Residents who own a smartphone.")
    initial_share: float = Field(ge=0, le=1, description="Share adopted on day 0.")


class Merchants(Strict):
    """Merchants adopt the collection code on customer demand; all still take cash."""

    innovation: float = Field(ge=0, le=1, description="Daily adoption probability from outside.")
    demand_response: float = Field(
        ge=0,
        le=1,
        description="Added daily P(adopt) per share of yesterday's customers "
        "who asked to pay by app and had to pay cash.",
    )
    initial_share: float = Field(ge=0, le=1, description="Share accepting the code on day 0.")


class Spending(Strict):
    purchases_per_day: PerSegment = Field(description="Mean purchases per resident per day.")
    amount_fen_median: int = Field(ge=1, description="Median purchase (lognormal), fen.")
    amount_sigma: float = Field(ge=0, le=3, description="Lognormal sigma of purchase size.")
    top_up_fen: int = Field(ge=100, le=5_000_000, description="Top-up when the wallet is short.")


class Transit(Strict):
    """Buses with offline readers, and riders who tap the e-bus-card code."""

    rider_share: Shares = Field(description="Residents who commute by bus every day.")
    card_share: float = Field(
        ge=0, le=1, description="Adopting riders who claim the e-bus card (the rest pay cash)."
    )
    buses: int = Field(ge=1, le=20_000, description="Buses, one offline reader each.")
    coverage: float = Field(
        ge=0,
        le=1,
        description="Chance a reader has a network after a rush hour; at the depot "
        "at night every reader uploads.",
    )
    depot_coverage: float = Field(
        ge=0, le=1, description="Chance a depot has a network at night; readers of the others "
        "stay offline, perhaps for days, until a connection."
    )
    fare_fen: int = Field(ge=0, le=10_000, description="Flat fare per ride.")
    transfer_discount_fen: int = Field(ge=0, le=10_000, description="Off a ride within the window.")
    transfer_window_min: int = Field(ge=0, le=24 * 60, description="Transfer window after a ride.")
    free_ride_weekdays: list[Weekday] = Field(
        description='Weekdays on which the campaign pays every fare (e.g. ["Fri"]).'
    )
    free_ride_budget_fen: int = Field(ge=0, description="Campaign budget for free rides.")


class Scenario(Strict):
    """A whole scenario file after ``extends`` is resolved."""

    name: str = Field(min_length=1)
    description: str = Field(min_length=1, description="One line for `cashless scenarios`.")
    seed: int = Field(ge=0, description="Default seed; `--seed` overrides.")
    city: City
    network: Network
    adoption: Adoption
    merchants: Merchants
    spending: Spending
    transit: Transit
