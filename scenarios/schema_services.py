"""Scenario sections for what residents do: shop, ride, see a doctor, pay bills, learn.

Every key has a default only where an older scenario file would otherwise stop
loading; the library's files spell every key out. Money is integer fen, shares are
fractions in [0, 1], rates are per resident per day unless a name says otherwise.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from scenarios.schema_base import PerSegment, Shares, Strict, Weekday

MerchantKindName = Literal["breakfast_stall", "wholesaler", "supermarket", "shop"]


class MerchantKind(Strict):
    """One kind of merchant: what it sells and what pushes it towards the code.

    Daily P(adopt) = innovation + demand_response x demand + motive_weight x
    (counterfeit_risk + theft_risk + bookkeeping_gain - cost), clipped to [0, 1]:
    merchants name no counterfeit notes, no change, easy bookkeeping and no fee as
    the code's advantages (DOMAIN.md); cost is set-up effort or register integration.
    """

    share: float = Field(ge=0, le=1, description="Share of the city's merchants of this kind.")
    amount_fen_median: int = Field(ge=1, description="Median purchase (lognormal), fen.")
    counterfeit_risk: float = Field(ge=0, le=1, description="Motive: counterfeit notes taken.")
    theft_risk: float = Field(ge=0, le=1, description="Motive: cash stolen or short-changed.")
    bookkeeping_gain: float = Field(ge=0, le=1, description="Motive: easier books.")
    cost: float = Field(ge=0, le=1, description="Deterrent: set-up cost or effort.")
    integrated_register_share: float = Field(
        ge=0,
        le=1,
        description="Adopters whose register books app payments; the rest see "
        "the money arrive but book it by hand (counted as payments_unbooked).",
    )
    underground_share: float = Field(
        ge=0, le=1, description="Merchants underground (dead zone: online payments may fail)."
    )


def _default_kinds() -> dict[str, MerchantKind]:
    def kind(share, amount, counterfeit, theft, books, cost, integrated, underground):  # noqa: ANN001, ANN202
        return MerchantKind(
            share=share,
            amount_fen_median=amount,
            counterfeit_risk=counterfeit,
            theft_risk=theft,
            bookkeeping_gain=books,
            cost=cost,
            integrated_register_share=integrated,
            underground_share=underground,
        )

    return {
        "breakfast_stall": kind(0.25, 600, 0.3, 0.2, 0.3, 0.0, 1.0, 0.0),
        "wholesaler": kind(0.15, 8000, 0.5, 0.3, 0.4, 0.1, 1.0, 0.2),
        "supermarket": kind(0.15, 4500, 0.2, 0.1, 0.1, 0.5, 0.4, 0.3),
        "shop": kind(0.45, 1500, 0.3, 0.2, 0.3, 0.1, 1.0, 0.1),
    }


class Merchants(Strict):
    """Merchants adopt the collection code on customer demand, motives and cost."""

    innovation: float = Field(ge=0, le=1, description="Daily adoption probability from outside.")
    demand_response: float = Field(
        ge=0,
        le=1,
        description="Added daily P(adopt) per share of yesterday's customers "
        "who asked to pay by app and had to pay cash.",
    )
    initial_share: float = Field(ge=0, le=1, description="Share accepting the code on day 0.")
    motive_weight: float = Field(
        default=0.0, ge=0, le=1, description="Daily P(adopt) per unit of a kind's net motive."
    )
    kinds: dict[MerchantKindName, MerchantKind] = Field(
        default_factory=_default_kinds, description="The merchant kinds and their shares."
    )
    must_accept_cash: bool = Field(
        default=True,
        description="Legal tender: every merchant takes cash. When false, "
        "cash_refusal_share of adopters refuse it.",
    )
    cash_refusal_share: float = Field(
        default=0.0, ge=0, le=1, description="Adopters that refuse cash when the rule is off."
    )
    underground_failure: float = Field(
        default=0.5, ge=0, le=1, description="P an online payment attempt fails underground."
    )
    payment_attempts_max: int = Field(
        default=2, ge=1, le=5, description="Attempts a customer makes before paying cash."
    )
    cash_service_s: float = Field(
        default=25, ge=0, le=600, description="Seconds at the counter to pay cash (change)."
    )
    app_service_s: float = Field(
        default=8, ge=0, le=600, description="Seconds at the counter to pay by app."
    )

    @model_validator(mode="after")
    def _kind_shares_sum_to_one(self) -> Merchants:
        total = sum(k.share for k in self.kinds.values())
        if abs(total - 1) > 1e-6:
            raise ValueError(f"merchants.kinds shares must sum to 1, not {total:g}")
        return self


class Spending(Strict):
    purchases_per_day: PerSegment = Field(description="Mean purchases per resident per day.")
    amount_sigma: float = Field(
        ge=0, le=3, description="Lognormal sigma of purchase size (medians: merchant kinds)."
    )
    top_up_fen: int = Field(ge=100, le=5_000_000, description="Top-up when the wallet is short.")


class RolloutPoint(Strict):
    date: dt.date = Field(description="Date of this point of the rollout.")
    share: float = Field(ge=0, le=1, description="Share of buses with a QR reader by then.")


class Transit(Strict):
    """Buses with offline readers on routes, and riders who tap the e-bus-card code."""

    rider_share: Shares = Field(description="Residents who commute by bus every workday.")
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
        ge=0,
        le=1,
        description="Chance a depot has a network at night; readers of the others "
        "stay offline, perhaps for days, until a connection.",
    )
    fare_fen: int = Field(ge=0, le=10_000, description="Flat fare per ride.")
    transfer_discount_fen: int = Field(ge=0, le=10_000, description="Off a ride within the window.")
    transfer_window_min: int = Field(ge=0, le=24 * 60, description="Transfer window after a ride.")
    free_ride_weekdays: list[Weekday] = Field(
        description='Weekdays on which the campaign pays every fare (e.g. ["Fri"]).'
    )
    free_ride_budget_fen: int = Field(ge=0, description="Campaign budget for free rides.")
    routes: int = Field(default=8, ge=1, le=2_000, description="Bus routes; buses split evenly.")
    brt_routes: int = Field(
        default=1,
        ge=0,
        le=100,
        description="Routes that are BRT: station gates with a network, "
        "so their readers upload at once (Wuhan BRT, scan-to-enter since Dec 2016).",
    )
    neighbourhoods: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Grid cells homes and workplaces lie in; a "
        "rider's route is the one serving the home and work cells.",
    )
    departure_spread_min: float = Field(
        default=30, ge=0, le=180, description="Spread (sd) of a commuter's departure minute."
    )
    occasional_trips_per_day: PerSegment = Field(
        default=PerSegment(youth=0.05, adult=0.04, elderly=0.08),
        description="Off-peak trips per non-commuter per day (shopping, clinics, visits).",
    )
    free_ride_extra_trips: float = Field(
        default=0.3,
        ge=0,
        le=5,
        description="On a free-ride day, extra off-peak trips per "
        "resident holding the e-bus card (Poisson mean): free fares pull in leisure trips.",
    )
    transit_card_share: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="Riders without the code who tap a physical transit card (the rest pay cash).",
    )
    reader_rollout: list[RolloutPoint] = Field(
        default_factory=list,
        description="Share of buses with a QR reader over time, "
        "linear between points, flat outside; empty: every bus from day 0.",
    )
    code_share: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="P an e-bus-card holder shows the code on a "
        "trip; otherwise they tap a physical transit card if they have one, else cash "
        "(habit: in 2017 most Wuhan riders still tapped cards).",
    )
    card_claims_per_day: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Daily P an app user who rides (commuter or "
        "occasional) and has no e-bus card claims one, besides card_share at onboarding.",
    )

    @model_validator(mode="after")
    def _brt_within_routes(self) -> Transit:
        if self.brt_routes > self.routes:
            raise ValueError(f"brt_routes ({self.brt_routes}) exceeds routes ({self.routes})")
        dates = [p.date for p in self.reader_rollout]
        if dates != sorted(dates):
            raise ValueError("reader_rollout dates must be in order")
        return self


class Hospital(Strict):
    """Outpatient visits. Pay-now: a payment queue after each step. Treat first, pay
    later (credit-gated, app users only): no payment queues, one bill at the end.
    Saved minutes = payments_per_visit x payment_queue_min on average; DOMAIN.md's
    published 52.7 minutes is the calibration target."""

    visits_per_year: PerSegment = Field(
        default=PerSegment(youth=2.0, adult=3.5, elderly=9.0),
        description="Outpatient visits per resident per year, by age.",
    )
    hospitals: int = Field(default=2, ge=1, le=500, description="Hospitals in the city.")
    registration_queue_min: float = Field(
        default=20,
        ge=0,
        le=600,
        description="Mean wait at the registration desk (exponential), for every patient.",
    )
    care_min: float = Field(
        default=70, ge=0, le=600, description="Mean minutes of consultation, tests and pharmacy."
    )
    payments_per_visit: int = Field(
        default=3, ge=1, le=10, description="Pay-now payments (consultation, lab, pharmacy)."
    )
    payment_queue_min: float = Field(
        default=17.5, ge=0, le=600, description="Mean wait at a payment window (exponential)."
    )
    charge_fen_median: int = Field(default=8_000, ge=1, description="Median charge per step.")


class Bills(Strict):
    """Utility bills (water, power, gas), presented by billers through the platform."""

    per_resident_per_month: float = Field(
        default=0.5,
        ge=0,
        le=30,
        description="Bills per resident per month (a household's bills shared among its members).",
    )
    amount_fen_median: int = Field(default=9_000, ge=1, description="Median bill, fen.")
    billers: int = Field(default=3, ge=1, le=100, description="Water, power, gas, ...")


class Elderly(Strict):
    """How elderly residents learn the app, and the services they book (DOMAIN.md)."""

    classes_per_week: int = Field(
        default=0,
        ge=0,
        le=50,
        description="Community training classes per week, city-wide "
        "at simulated scale (run by student volunteers).",
    )
    class_weekdays: list[Weekday] = Field(
        default_factory=lambda: ["Tue", "Thu"], description="Days classes are held on."
    )
    class_capacity: int = Field(default=20, ge=1, le=500, description="Seats per class.")
    class_success: float = Field(
        default=0.6, ge=0, le=1, description="P an attendee comes out able to use the app."
    )
    volunteer_visits_per_week: int = Field(
        default=0, ge=0, le=10_000, description="Home visits by volunteers, each teaching one."
    )
    family_help: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="Daily P an elderly resident learns from a household member who uses the app.",
    )
    family_phone: float = Field(
        default=0.002,
        ge=0,
        le=1,
        description="Daily P a household member who uses the app "
        "gives an elderly resident without one a smartphone.",
    )
    services_per_month: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Community services booked (home care, "
        "groceries) per elderly resident per month: in the app, else paid in cash.",
    )
    service_price_fen: int = Field(
        default=3_000, ge=1, description="Price of a service (a home physio visit: 30 RMB)."
    )


class Credit(Strict):
    """The platform's credit score gates the pay-later services."""

    pay_later: bool = Field(
        default=True,
        description="Credit-gated pay-later services run: ride first pay later "
        "and treat first pay later. Off: riders prepay, patients pay at each step.",
    )
    pay_later_transit_min_score: int = Field(
        default=550, ge=350, le=950, description="Score that opens ride first pay later."
    )
    treat_first_min_score: int = Field(
        default=550, ge=350, le=950, description="Score that opens treat first pay later."
    )


class Competition(Strict):
    """A rival wallet (off this platform) competing for the same riders and merchants."""

    rival_share: float = Field(
        default=0.0, ge=0, le=1, description="Base P a new app user picks the rival wallet."
    )
    rival_imitation: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Weight of ties' choices: P(rival) = (1 - w) x "
        "rival_share + w x share of adopted ties on the rival.",
    )
    merchant_rival_share: float = Field(
        default=0.0, ge=0, le=1, description="Adopting merchants who take only the rival."
    )
    merchant_both_share: float = Field(
        default=0.0, ge=0, le=1, description="Adopting merchants who take both wallets."
    )

    @model_validator(mode="after")
    def _merchant_shares(self) -> Competition:
        if self.merchant_rival_share + self.merchant_both_share > 1 + 1e-9:
            raise ValueError("merchant_rival_share + merchant_both_share must not exceed 1")
        return self


class Promotion(Strict):
    """A budgeted discount on app payments at some merchant kinds (e.g. the one-cent
    breakfast: 350 fen off a breakfast of at least 350 fen, Fridays, three weeks)."""

    name: str = Field(min_length=1, max_length=64)
    discount_fen: int = Field(ge=1, description="Off each qualifying payment.")
    min_amount_fen: int = Field(ge=1, description="Smallest qualifying payment.")
    budget_fen: int = Field(ge=1, description="The campaign stops when this is spent.")
    start_date: dt.date
    end_date: dt.date
    weekdays: list[Weekday] = Field(default_factory=list, description="Empty: every day.")
    merchant_kinds: list[MerchantKindName] = Field(
        default_factory=list, description="Empty: every merchant."
    )
    per_person_per_day: int = Field(default=1, ge=1, le=100)
