"""Configure a platform for a scenario: what a city sets on its platform.

Used by in-process runs and by ``python -m platform_stub.server --scenario FILE``, so
a run over HTTP meets the same credit gates and campaigns as one in-process.
"""

from __future__ import annotations

import datetime as dt

from agents.merchants import MCC_OF_KIND
from platform_stub import Platform
from platform_stub.clearing import PROMO_ACCOUNT, Fares
from platform_stub.exceptions import Rejected
from platform_stub.ledger import DEBITS_MUST_NOT_EXCEED_CREDITS, TransferRequest
from platform_stub.promotions import MARKETING_ACCOUNT
from scenarios.schema import Scenario


def configure_platform(platform: Platform, scenario: Scenario) -> None:
    """Credit gates, merchant-payment campaigns and the free-ride budget (funded from
    the platform's marketing account). Safe to repeat: a restarted server keeps them."""
    credit = scenario.credit
    platform.credit.configure(
        credit.pay_later, credit.pay_later_transit_min_score, credit.treat_first_min_score
    )
    for campaign in scenario.promotions:
        try:
            platform.promotions.create(
                campaign.name,
                campaign.discount_fen,
                campaign.min_amount_fen,
                campaign.budget_fen,
                campaign.start_date,
                campaign.end_date,
                tuple(campaign.weekdays),
                tuple(sorted({MCC_OF_KIND[k] for k in campaign.merchant_kinds})),
                campaign.per_person_per_day,
            )
        except Rejected as exc:
            if exc.code != "exists_with_different_fields":
                raise
    budget_fen = scenario.transit.free_ride_budget_fen
    if budget_fen > 0:
        with platform.db.transaction() as tx:
            promo = platform.ledger.create_account(
                tx, PROMO_ACCOUNT, "promotion", DEBITS_MUST_NOT_EXCEED_CREDITS
            )
            marketing = platform.ledger.create_account(tx, MARKETING_ACCOUNT, "platform", 0)
            platform.ledger.transfer(
                tx,
                TransferRequest(
                    "campaign:free_rides:budget",
                    marketing.id,
                    promo.id,
                    budget_fen,
                    "campaign_budget",
                ),
            )


def scenario_fares(scenario: Scenario) -> Fares:
    """Fares and the dates of the scenario's free-ride weekdays within its run."""
    transit, city = scenario.transit, scenario.city
    days = (city.start_date + dt.timedelta(days=n) for n in range(city.days))
    free = frozenset(d for d in days if d.strftime("%a") in transit.free_ride_weekdays)
    return Fares(
        fare_fen=transit.fare_fen,
        transfer_discount_fen=transit.transfer_discount_fen,
        transfer_window_s=transit.transfer_window_min * 60,
        free_ride_dates=free,
    )
