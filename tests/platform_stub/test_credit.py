"""Credit scores: documented rules from the ledger and the bills, gates at thresholds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from platform_stub import HttpClient, Platform, Registration, buscards
from platform_stub.clearing import CHINA_TZ
from platform_stub.exceptions import Forbidden, InvalidRequest, NotFound
from platform_stub.features.credit import GATE_THRESHOLDS, SCORE_BASE, limit_for
from platform_stub.ledger import TransferRequest
from platform_stub.service import luhn_complete
from platform_stub.transit import derive_private_key, public_key_bytes
from tests.platform_stub.clock import Clock
from tests.transit.riders import RIDER_SEED

CARD = luhn_complete("622202000000001")
START = dt.datetime(2017, 6, 15, 9, 0, tzinfo=CHINA_TZ)  # Wuhan's e-bus card launch
YEAR = dt.timedelta(days=365)



@dataclass
class City:
    platform: Platform
    clock: Clock
    biller: Registration

    def resident(self, name: str, top_up_fen: int = 0) -> Registration:
        reg = self.platform.register_resident(name)
        self.platform.bind_card(reg.token, CARD, "ICBC")
        if top_up_fen:
            self.platform.top_up(reg.token, top_up_fen, "t0")
        return reg

    def score(self, reg: Registration) -> int:
        return self.platform.credit.score(reg.participant_id).score

    def bill(self, reg: Registration, due: dt.date, request_id: str, amount_fen: int = 100):
        return self.platform.bills.present(self.biller.token, reg.participant_id, amount_fen,
                                           due, "water 2017-06", request_id)

    def owe_fare(self, reg: Registration, amount_fen: int = 200) -> None:
        """A fare cleared on credit, as clearing books one the wallet could not cover."""
        key = public_key_bytes(derive_private_key(RIDER_SEED, reg.participant_id))
        self.platform.transit.claim_bus_card(reg.token, key)
        with self.platform.db.transaction() as tx:
            card = buscards.card(tx, reg.participant_id)
            fares = self.platform.ledger.create_account(tx, "test:fares", "clearing", 0)
        self.platform.ledger.apply(TransferRequest(
            f"test:fare:{reg.participant_id}", card.credit_account_id, fares.id, amount_fen,
            "fare_on_credit"))


@pytest.fixture
def city(db_url: str) -> Iterator[City]:
    platform = Platform.open(db_url)
    clock = Clock()
    platform.clock = clock
    yield City(platform, clock, platform.bills.register_biller("武汉水务"))
    platform.close()


def test_a_new_resident_scores_the_base_and_opens_no_gate(city: City) -> None:
    reg = city.resident("张伟")
    score = city.platform.credit.score(reg.participant_id)
    assert score.score == SCORE_BASE == 550
    assert score.factors["base"] == 550
    assert sum(score.factors.values()) == 550 and set(score.factors) >= {
        "tenure", "on_time_payments", "hospital_settled", "transit_debt", "overdue_bills",
        "late_payments"}
    assert not any(city.platform.credit.gate(reg.participant_id, s) for s in GATE_THRESHOLDS)
    assert city.platform.credit.credit_limit_fen(reg.participant_id) == 0


def test_tenure_and_on_time_payments_rank_above_new_and_debt_ranks_below(city: City) -> None:
    veteran = city.resident("老王", top_up_fen=1000)
    city.score(veteran)  # first seen now: tenure starts
    city.clock.now += YEAR
    for k in range(3):
        bill = city.bill(veteran, city.clock.now.date(), f"b{k}")
        city.platform.bills.pay(veteran.token, bill.id, f"p{k}")
    newcomer = city.resident("小李")
    debtor = city.resident("欠费")
    city.owe_fare(debtor)
    ranked = [city.platform.credit.score(r.participant_id) for r in (debtor, newcomer, veteran)]
    assert ranked[0].score < ranked[1].score < ranked[2].score
    assert [s.score for s in ranked] == [400, 550, 680]
    assert ranked[0].factors["transit_debt"] == -150
    assert (ranked[2].factors["tenure"], ranked[2].factors["on_time_payments"]) == (100, 30)


def test_repaying_transit_debt_lifts_the_penalty_and_counts_as_on_time(city: City) -> None:
    rider = city.resident("乘客")
    city.owe_fare(rider, 200)
    assert city.platform.credit.score(rider.participant_id).factors["transit_debt"] == -150
    city.platform.top_up(rider.token, 1000, "t1")  # a top-up repays the debt first
    factors = city.platform.credit.score(rider.participant_id).factors
    assert (factors["transit_debt"], factors["on_time_payments"]) == (0, 10)
    assert city.platform.balance_fen(rider.token) == 800


def test_an_overdue_bill_costs_more_than_a_late_payment(city: City) -> None:
    reg = city.resident("赵敏", top_up_fen=1000)
    bill = city.bill(reg, START.date() + dt.timedelta(days=5), "b1")
    assert city.score(reg) == 550  # not yet due
    city.clock.now += dt.timedelta(days=10)
    overdue = city.platform.credit.score(reg.participant_id)
    assert (overdue.factors["tenure"], overdue.factors["overdue_bills"]) == (2, -60)
    assert overdue.score == 550 + 2 - 60
    city.platform.bills.pay(reg.token, bill.id, "p1")
    late = city.platform.credit.score(reg.participant_id)
    assert (late.factors["late_payments"], late.factors["overdue_bills"]) == (-15, 0)
    assert late.score == 550 + 2 - 15


def test_penalties_are_capped_and_the_score_never_falls_below_350(city: City) -> None:
    reg = city.resident("钱七")
    for k in range(6):
        city.bill(reg, START.date() - dt.timedelta(days=1), f"b{k}")
    city.owe_fare(reg)
    score = city.platform.credit.score(reg.participant_id)
    assert score.factors["overdue_bills"] == -240  # six overdue, capped at four
    assert sum(score.factors.values()) == 160 and score.score == 350


def test_gates_open_at_their_documented_thresholds(city: City) -> None:
    reg = city.resident("孙八")
    city.score(reg)
    city.clock.now += YEAR  # 550 + 100 tenure = 650, exactly treat_first_pay_later's bar
    assert city.score(reg) == 650
    gates = {s: city.platform.credit.gate(reg.participant_id, s) for s in GATE_THRESHOLDS}
    assert gates == {"pay_later_transit": True, "treat_first_pay_later": True,
                     "deposit_free": False}
    assert GATE_THRESHOLDS == {"pay_later_transit": 600, "treat_first_pay_later": 650,
                               "deposit_free": 700}
    assert city.platform.credit.credit_limit_fen(reg.participant_id) == 1200


@pytest.mark.parametrize(("score", "limit_fen"),
                         [(350, 0), (599, 0), (600, 1000), (775, 2000), (950, 3000)])
def test_the_credit_line_grows_with_the_score(score: int, limit_fen: int) -> None:
    assert limit_for(score) == limit_fen


def test_only_residents_have_scores_and_gates_name_known_services(city: City) -> None:
    reg = city.resident("周九")
    with pytest.raises(NotFound) as caught:
        city.platform.credit.score(city.biller.participant_id)
    assert caught.value.code == "participant_not_found"
    with pytest.raises(InvalidRequest):
        city.platform.credit.gate(reg.participant_id, "free_lunch")
    with pytest.raises(Forbidden):
        city.platform.credit.my_score(city.biller.token)


def test_the_score_over_http_is_the_callers_own(live_server: str) -> None:
    client = HttpClient(live_server)
    try:
        reg = client.register_resident("吴十")
        score = client.credit_score(reg.token)
        assert (score.score, score.factors["base"]) == (550, 550)
        auth = {"Authorization": f"Bearer {reg.token}"}
        body = httpx.get(f"{live_server}/v1/credit", headers=auth).json()
        assert body["gates"]["pay_later_transit"] is False and body["credit_limit_fen"] == 0
        shop = client.register_merchant("早餐", "武汉")
        resp = httpx.get(f"{live_server}/v1/credit",
                         headers={"Authorization": f"Bearer {shop.token}"})
        assert resp.status_code == 403 and resp.json()["code"] == "forbidden"
        with pytest.raises(Forbidden):
            client.credit_score(shop.token)
    finally:
        client.close()
