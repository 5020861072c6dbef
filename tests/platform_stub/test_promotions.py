"""Budgeted campaigns: the one-cent breakfast pays merchants from its own budget."""

from __future__ import annotations

import datetime as dt

import pytest

from platform_stub import Platform
from platform_stub.clearing import CHINA_TZ
from platform_stub.exceptions import Rejected
from platform_stub.service import luhn_complete

FRIDAY = dt.datetime(2017, 6, 16, 7, 30, tzinfo=CHINA_TZ)
SATURDAY = FRIDAY + dt.timedelta(days=1)


@pytest.fixture
def city(db_url: str):
    platform = Platform.open(db_url)
    platform.clock = lambda: FRIDAY
    platform.promotions.create(
        "one_cent_breakfast", discount_fen=350, min_amount_fen=350, budget_fen=700,
        start_date=dt.date(2017, 6, 16), end_date=dt.date(2017, 7, 7), weekdays=("Fri",),
        mccs=("5814",), per_person_per_day=1,
    )
    stall = platform.register_merchant("老王早餐", "西安", "5814")
    yield platform, stall
    platform.close()


def eater(platform: Platform, n: int, wallet_fen: int = 1000) -> str:
    reg = platform.register_resident(f"食客{n}")
    platform.bind_card(reg.token, luhn_complete(f"6222{n:011d}"), "ICBC")
    platform.top_up(reg.token, wallet_fen, "t")
    return reg.token


def merchant_balance(platform: Platform, stall) -> int:
    return platform.balance_fen(stall.token)


def test_breakfast_is_free_until_the_budget_is_spent(city) -> None:
    platform, stall = city
    receipts = [platform.pay_merchant(eater(platform, n), stall.collection_code, 350, "b")
                for n in range(3)]
    assert [(r.amount_fen, r.discount_fen) for r in receipts] == [(0, 350), (0, 350), (350, 0)]
    assert merchant_balance(platform, stall) == 3 * 350  # the merchant is paid in full
    with platform.db.transaction() as tx:
        [campaign] = platform.promotions.campaigns(tx)
        assert platform.ledger.account(tx, campaign.account_id).balance_fen == 0
    assert platform.audit().ok


def test_rules_minimum_weekday_category_and_one_per_person_per_day(city) -> None:
    platform, stall = city
    token = eater(platform, 1, wallet_fen=5000)
    small = platform.pay_merchant(token, stall.collection_code, 349, "under-minimum")
    first = platform.pay_merchant(token, stall.collection_code, 500, "first")
    second = platform.pay_merchant(token, stall.collection_code, 500, "second")
    assert (small.discount_fen, first.discount_fen, second.discount_fen) == (0, 350, 0)
    grocer = platform.register_merchant("超市", "西安", "5411")
    assert platform.pay_merchant(token, grocer.collection_code, 500, "grocer").discount_fen == 0
    platform.clock = lambda: SATURDAY
    other = eater(platform, 2)
    assert platform.pay_merchant(other, stall.collection_code, 500, "sat").discount_fen == 0


def test_a_retried_discounted_payment_returns_the_first_receipt(city) -> None:
    platform, stall = city
    token = eater(platform, 1, wallet_fen=100)
    first = platform.pay_merchant(token, stall.collection_code, 400, "r1")
    again = platform.pay_merchant(token, stall.collection_code, 400, "r1")
    assert again == first and (first.amount_fen, first.discount_fen) == (50, 350)
    assert platform.balance_fen(token) == 50
    assert merchant_balance(platform, stall) == 400


def test_a_refused_payment_uses_no_budget_and_stays_refused(city) -> None:
    platform, stall = city
    token = eater(platform, 1, wallet_fen=100)
    with pytest.raises(Rejected, match="exceeds_credits"):
        platform.pay_merchant(token, stall.collection_code, 900, "big")
    platform.top_up(token, 5000, "more")
    with pytest.raises(Rejected, match="exceeds_credits"):
        platform.pay_merchant(token, stall.collection_code, 900, "big")
    assert platform.promotions.spent_fen(1) == 0 and merchant_balance(platform, stall) == 0


def test_campaigns_are_created_by_the_platform_operator_only(live_server: str) -> None:
    import httpx

    from tests.conftest import ADMIN_TOKEN

    body = {"name": "breakfast", "discount_fen": 350, "min_amount_fen": 350,
            "budget_fen": 10_000, "start_date": "2017-06-16", "end_date": "2017-07-07",
            "weekdays": ["Fri"], "mccs": ["5814"]}
    resident = httpx.post(f"{live_server}/v1/residents", json={"name": "x"}).json()["token"]
    denied = httpx.post(f"{live_server}/v1/campaigns", json=body,
                        headers={"Authorization": f"Bearer {resident}"})
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    made = httpx.post(f"{live_server}/v1/campaigns", json=body, headers=admin)
    again = httpx.post(f"{live_server}/v1/campaigns", json=body, headers=admin)
    assert denied.status_code == 403 and made.status_code == 201
    assert again.status_code == 409 and again.json()["code"] == "exists_with_different_fields"
