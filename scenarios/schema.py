"""The scenario schema: every key a scenario file may hold, its type, range and meaning.

Unknown keys are errors (a typo must not silently fall back to a default). Shares
are fractions in [0, 1]; daily probabilities are per resident per day; money is
integer fen.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field, model_validator

from scenarios.schema_base import SEGMENTS, PerSegment, Shares, Strict, Weekday
from scenarios.schema_services import (
    Bills,
    Competition,
    Credit,
    Elderly,
    Hospital,
    Merchants,
    Promotion,
    Spending,
    Transit,
)

__all__ = ["SEGMENTS", "PerSegment", "Scenario", "Shares", "Strict", "Weekday"]


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
    """Social ties imitation runs over, in three layers: households (everyone tied to
    everyone at home), workplaces (youth and adults, a clique per workplace) and a
    Watts-Strogatz small world of neighbours and friends."""

    mean_degree: int = Field(ge=2, le=100, description="Neighbour/friend ties per resident (even).")
    rewire_probability: float = Field(ge=0, le=1, description="Watts-Strogatz rewiring.")
    household_size_mean: float = Field(
        default=2.8, ge=1, le=10, description="Mean household size (Wuhan 2017: about 2.8)."
    )
    workplace_size_mean: float = Field(
        default=12, ge=2, le=500, description="Mean co-workers per workplace (youth, adults)."
    )


class Adoption(Strict):
    """Bass-style adoption on the network: daily P(adopt) = innovation + imitation x
    share of a resident's ties who have adopted; only smartphone owners adopt."""

    innovation: PerSegment = Field(description="Daily adoption probability from outside.")
    imitation: PerSegment = Field(description="Daily probability per share of adopted ties.")
    smartphone_share: Shares = Field(description="Residents who own a smartphone.")
    initial_share: float = Field(ge=0, le=1, description="Share adopted on day 0.")
    digital_literacy: Shares = Field(
        default=Shares(youth=1.0, adult=1.0, elderly=1.0),
        description="Smartphone owners able to set up and use the app unaided; the rest "
        "adopt only after training, a volunteer or family help (see [elderly]).",
    )
    promotion_boost: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Added daily P(adopt) on a day a campaign runs (free rides, subsidies).",
    )
    lapse_after_failure: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="P(stop using the app) after a failed payment (dead zone, decline); "
        "a lapsed resident keeps the wallet and may adopt again by the same rule.",
    )


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
    hospital: Hospital = Field(default_factory=Hospital)
    bills: Bills = Field(default_factory=Bills)
    elderly: Elderly = Field(default_factory=Elderly)
    credit: Credit = Field(default_factory=Credit)
    competition: Competition = Field(default_factory=Competition)
    promotions: list[Promotion] = Field(
        default_factory=list, description="Merchant-payment campaigns ([[promotions]])."
    )
