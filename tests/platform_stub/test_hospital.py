"""Hospital visits: treat first, pay later on a two-phase hold; pay now without credit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from platform_stub import HttpClient, Platform, PlatformClient, Registration
from platform_stub.clearing import CHINA_TZ
from platform_stub.exceptions import Forbidden, NotFound, PlatformError, Rejected
from platform_stub.features.hospital import HOLD_FEN_MAX
from platform_stub.features.hospital_visits import OPEN_VISITS_MAX
from platform_stub.service import luhn_complete
from tests.platform_stub.clock import Clock
from tests.platform_stub.stories import refusal, told_in_process

CARD = luhn_complete("622202000000001")
START = dt.datetime(2017, 6, 15, 9, 0, tzinfo=CHINA_TZ)
WALLET_FEN = 100_000  # 1,000 RMB, as the elderly resident in the reports kept



@dataclass
class Ward:
    platform: Platform
    clock: Clock
    hospital: Registration
    patient: Registration  # a year's tenure: score 650, treat first pay later

    def resident(self, name: str, top_up_fen: int) -> Registration:
        reg = self.platform.register_resident(name)
        self.platform.bind_card(reg.token, CARD, "ICBC")
        if top_up_fen:
            self.platform.top_up(reg.token, top_up_fen, "t0")
        return reg

    def balances(self, reg: Registration | None = None) -> tuple[int, int, int]:
        """(wallet spendable, hospital posted, hospital pending) in fen."""
        with self.platform.db.transaction() as tx:
            hospital = self.platform.ledger.account(tx, self.hospital.account_id)
        wallet = self.platform.balance_fen((reg or self.patient).token)
        return wallet, hospital.credits_posted, hospital.credits_pending

    def snapshot(self) -> tuple:
        return self.balances(), self.platform.audit().transfer_count

    def open(self, request_id: str = "v1", reg: Registration | None = None):
        return self.platform.hospital.open_visit(
            (reg or self.patient).token, self.hospital.participant_id, request_id)

    def charge(self, visit_id: int, amount_fen: int, request_id: str, item: str = "血常规"):
        return self.platform.hospital.add_charge(
            self.hospital.token, visit_id, amount_fen, item, request_id)


@pytest.fixture
def ward(db_url: str) -> Iterator[Ward]:
    platform = Platform.open(db_url)
    clock = Clock()
    platform.clock = clock
    hospital = platform.hospital.register_hospital("武汉协和医院")
    ward = Ward(platform, clock, hospital, platform.register_resident("老张"))
    platform.bind_card(ward.patient.token, CARD, "ICBC")
    platform.top_up(ward.patient.token, WALLET_FEN, "t0")
    platform.credit.score(ward.patient.participant_id)  # first seen: tenure starts
    clock.now += dt.timedelta(days=365)
    yield ward
    platform.close()


def test_a_trusted_resident_opens_a_hold_and_the_hospital_is_not_yet_paid(ward: Ward) -> None:
    visit = ward.open()
    assert (visit.mode, visit.state, visit.hold_fen) == ("pay_later", "open", HOLD_FEN_MAX)
    assert ward.balances() == (WALLET_FEN - HOLD_FEN_MAX, 0, HOLD_FEN_MAX)
    assert ward.platform.audit().ok


def test_finalize_posts_the_bill_total_and_releases_the_rest_of_the_hold(ward: Ward) -> None:
    visit = ward.open()
    ward.charge(visit.id, 3_000, "c1", "挂号")
    ward.charge(visit.id, 12_000, "c2", "CT")
    ward.charge(visit.id, 12_000, "c2", "CT")  # a retried charge is added once
    assert ward.platform.audit().ok
    done = ward.platform.hospital.finalize(ward.hospital.token, visit.id)
    assert (done.state, done.bill_fen, done.settled_fen) == ("finalized", 15_000, 15_000)
    assert [c.state for c in done.charges] == ["paid", "paid"]
    assert ward.balances() == (WALLET_FEN - 15_000, 15_000, 0)
    assert ward.platform.audit().ok
    factors = ward.platform.credit.score(ward.patient.participant_id).factors
    assert factors["hospital_settled"] == 20


def test_a_bill_above_the_hold_posts_the_hold_and_charges_the_excess(ward: Ward) -> None:
    visit = ward.open()
    ward.charge(visit.id, HOLD_FEN_MAX + 10_000, "c1", "手术")
    ward.platform.hospital.finalize(ward.hospital.token, visit.id)
    assert ward.balances() == (WALLET_FEN - HOLD_FEN_MAX - 10_000, HOLD_FEN_MAX + 10_000, 0)
    assert ward.platform.audit().ok


def test_an_excess_the_wallet_cannot_cover_refuses_finalize_and_changes_nothing(
    ward: Ward,
) -> None:
    visit = ward.open()
    ward.charge(visit.id, 120_000, "c1", "住院")  # 70,000 over the hold; 50,000 spendable
    before = ward.snapshot()
    with pytest.raises(Rejected) as caught:
        ward.platform.hospital.finalize(ward.hospital.token, visit.id)
    assert caught.value.code == "exceeds_credits"
    assert ward.snapshot() == before
    assert ward.platform.hospital.visit(ward.patient.token, visit.id).state == "open"
    ward.platform.top_up(ward.patient.token, 20_000, "t1")
    done = ward.platform.hospital.finalize(ward.hospital.token, visit.id)
    assert (done.state, done.settled_fen) == ("finalized", 120_000)
    assert ward.balances() == (0, 120_000, 0)
    assert ward.platform.audit().ok


def test_cancel_voids_the_hold_and_the_wallet_is_whole_again(ward: Ward) -> None:
    visit = ward.open()
    ward.charge(visit.id, 3_000, "c1")
    cancelled = ward.platform.hospital.cancel(ward.hospital.token, visit.id)
    assert (cancelled.state, cancelled.bill_fen) == ("cancelled", 0)
    assert [c.state for c in cancelled.charges] == ["waived"]
    assert ward.balances() == (WALLET_FEN, 0, 0)
    assert ward.platform.audit().ok


def test_a_second_finalize_or_cancel_is_visit_closed_and_changes_nothing(ward: Ward) -> None:
    visit = ward.open()
    ward.charge(visit.id, 3_000, "c1")
    ward.platform.hospital.finalize(ward.hospital.token, visit.id)
    before = ward.snapshot()
    for again in (ward.platform.hospital.finalize, ward.platform.hospital.cancel):
        with pytest.raises(Rejected) as caught:
            again(ward.hospital.token, visit.id)
        assert caught.value.code == "visit_closed"
    with pytest.raises(Rejected, match="visit_closed"):
        ward.charge(visit.id, 500, "c2")
    assert ward.snapshot() == before
    assert before[0] == (WALLET_FEN - 3_000, 3_000, 0)
    assert ward.platform.audit().ok


def test_racing_finalize_and_cancel_resolve_the_hold_once(ward: Ward) -> None:
    visit = ward.open()
    ward.charge(visit.id, 3_000, "c1")
    service = ward.platform.hospital

    def close(k: int) -> str:
        action = service.finalize if k % 2 else service.cancel
        try:
            return action(ward.hospital.token, visit.id).state
        except PlatformError as err:
            return err.code

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(close, range(8)))
    winners = [o for o in outcomes if o != "visit_closed"]
    assert len(winners) == 1
    expected = {"finalized": (WALLET_FEN - 3_000, 3_000, 0), "cancelled": (WALLET_FEN, 0, 0)}
    assert ward.balances() == expected[winners[0]]
    assert ward.platform.audit().ok


def test_a_retried_open_returns_the_same_visit_under_one_hold(ward: Ward) -> None:
    first = ward.open("v1")
    count = ward.platform.audit().transfer_count
    again = ward.open("v1")
    assert again == first
    assert ward.platform.audit().transfer_count == count
    assert ward.balances() == (WALLET_FEN - HOLD_FEN_MAX, 0, HOLD_FEN_MAX)


def test_a_resident_without_enough_credit_pays_each_charge_now(ward: Ward) -> None:
    newcomer = ward.resident("小李", 10_000)  # score 550: below treat first pay later
    visit = ward.open("v1", newcomer)
    assert (visit.mode, visit.hold_fen) == ("pay_now", 0)
    assert ward.balances(newcomer) == (10_000, 0, 0)
    charge = ward.charge(visit.id, 3_000, "c1", "康复理疗")
    assert charge.state == "due"
    with pytest.raises(Rejected, match="charges_unpaid"):
        ward.platform.hospital.finalize(ward.hospital.token, visit.id)
    paid = ward.platform.hospital.pay_charge(newcomer.token, visit.id, charge.id, "p1")
    assert ward.platform.hospital.pay_charge(newcomer.token, visit.id, charge.id, "p1") == paid
    with pytest.raises(Rejected, match="charge_already_paid"):
        ward.platform.hospital.pay_charge(newcomer.token, visit.id, charge.id, "p2")
    assert ward.balances(newcomer) == (7_000, 3_000, 0)
    done = ward.platform.hospital.finalize(ward.hospital.token, visit.id)
    assert (done.state, done.settled_fen) == ("finalized", 3_000)
    assert ward.platform.audit().ok


def test_a_trusted_resident_with_an_almost_empty_wallet_pays_now(ward: Ward) -> None:
    ward.platform.withdraw(ward.patient.token, WALLET_FEN - 500, "w1")
    visit = ward.open()
    assert (visit.mode, visit.hold_fen) == ("pay_now", 0)


def test_a_pay_later_charge_is_not_paid_on_its_own(ward: Ward) -> None:
    visit = ward.open()
    charge = ward.charge(visit.id, 3_000, "c1")
    assert charge.state == "held"
    with pytest.raises(Rejected, match="charge_not_due"):
        ward.platform.hospital.pay_charge(ward.patient.token, visit.id, charge.id, "p1")


def test_others_cannot_see_or_act_on_a_visit(ward: Ward) -> None:
    visit = ward.open()
    charge = ward.charge(visit.id, 3_000, "c1")
    stranger = ward.resident("路人", 1_000)
    rival = ward.platform.hospital.register_hospital("别的医院")
    service = ward.platform.hospital
    calls = [
        lambda: service.visit(stranger.token, visit.id),
        lambda: service.visit(rival.token, visit.id),
        lambda: service.add_charge(rival.token, visit.id, 100, "x", "r1"),
        lambda: service.finalize(rival.token, visit.id),
        lambda: service.cancel(rival.token, visit.id),
        lambda: service.pay_charge(stranger.token, visit.id, charge.id, "p1"),
    ]
    for call in calls:
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.code == "visit_not_found"
    with pytest.raises(Forbidden):
        service.add_charge(ward.patient.token, visit.id, 100, "x", "r1")
    with pytest.raises(Forbidden):
        service.finalize(ward.patient.token, visit.id)
    assert service.visit(ward.hospital.token, visit.id) == service.visit(
        ward.patient.token, visit.id)
    assert ward.balances() == (WALLET_FEN - HOLD_FEN_MAX, 0, HOLD_FEN_MAX)


def test_open_visits_are_limited_per_resident(ward: Ward) -> None:
    newcomer = ward.resident("小李", 0)
    for k in range(OPEN_VISITS_MAX):
        ward.open(f"v{k}", newcomer)
    with pytest.raises(Rejected, match="visit_limit_reached"):
        ward.open("one-more", newcomer)
    with pytest.raises(NotFound, match="participant_not_found"):
        ward.platform.hospital.open_visit(newcomer.token, newcomer.participant_id, "v9")


@pytest.fixture
def client(live_server: str) -> Iterator[HttpClient]:
    c = HttpClient(live_server)
    yield c
    c.close()


def test_treat_first_pay_later_over_http(
    client: HttpClient, live_server: str, db_url: str
) -> None:
    hospital = client.register_hospital("同济医院")
    patient = client.register_resident("老张")
    client.bind_card(patient.token, CARD, "ICBC")
    client.top_up(patient.token, WALLET_FEN, "t0")
    _seen_a_year_ago(db_url, patient)
    visit = client.open_visit(patient.token, hospital.participant_id, "v1")
    assert (visit.mode, visit.hold_fen) == ("pay_later", HOLD_FEN_MAX)
    assert client.balance_fen(patient.token) == WALLET_FEN - HOLD_FEN_MAX
    client.add_charge(hospital.token, visit.id, 3_000, "挂号", "c1")
    client.add_charge(hospital.token, visit.id, 12_000, "CT", "c2")
    with pytest.raises(Forbidden):
        client.add_charge(patient.token, visit.id, 1, "x", "c3")
    resp = httpx.post(f"{live_server}/v1/hospital/visits/{visit.id}/finalize",
                      headers={"Authorization": f"Bearer {patient.token}"})
    assert resp.status_code == 403 and resp.json()["code"] == "forbidden"
    done = client.finalize_visit(hospital.token, visit.id)
    assert (done.state, done.settled_fen, len(done.charges)) == ("finalized", 15_000, 2)
    with pytest.raises(Rejected, match="visit_closed"):
        client.finalize_visit(hospital.token, visit.id)
    assert client.visit(patient.token, visit.id) == done
    assert client.balance_fen(patient.token) == WALLET_FEN - 15_000
    platform = Platform.open(db_url)
    try:
        with platform.db.transaction() as tx:
            assert platform.ledger.account(tx, hospital.account_id).balance_fen == 15_000
        assert platform.audit().ok
    finally:
        platform.close()


def _seen_a_year_ago(db_url: str, reg: Registration) -> None:
    """Start the resident's tenure a year back, as a platform on a year-old clock would."""
    platform = Platform.open(db_url)
    try:
        platform.clock = lambda: dt.datetime.now(CHINA_TZ) - dt.timedelta(days=366)
        platform.credit.score(reg.participant_id)
    finally:
        platform.close()


def pay_now_story(client: PlatformClient) -> list[object]:
    """A resident without credit history through a pay-now visit and a cancelled one."""
    hospital = client.register_hospital("社区医院")
    patient = client.register_resident("新来的")
    client.bind_card(patient.token, CARD, "ICBC")
    client.top_up(patient.token, 10_000, "t0")
    visit = client.open_visit(patient.token, hospital.participant_id, "v1")
    charge = client.add_charge(hospital.token, visit.id, 3_000, "挂号", "c1")
    story: list[object] = [visit.mode, charge.state]
    story.append(refusal(lambda: client.finalize_visit(hospital.token, visit.id)))
    client.pay_charge(patient.token, visit.id, charge.id, "p1")
    story.append(refusal(lambda: client.pay_charge(patient.token, visit.id, charge.id, "p2")))
    second = client.open_visit(patient.token, hospital.participant_id, "v2")
    story.append(client.cancel_visit(hospital.token, second.id).state)
    story.append(client.finalize_visit(hospital.token, visit.id).state)
    story.append(refusal(lambda: client.cancel_visit(hospital.token, visit.id)))
    story.append(refusal(lambda: client.visit(hospital.token, second.id + 99)))
    story.append(client.balance_fen(patient.token))
    story.append(client.credit_score(patient.token).factors["hospital_settled"])
    return story


def test_the_pay_now_path_is_the_same_in_process_and_over_http(
    client: HttpClient, db_url: str
) -> None:
    in_process = told_in_process(db_url, pay_now_story)
    assert in_process == pay_now_story(client) == [
        "pay_now", "due", ("Rejected", "charges_unpaid"), ("Rejected", "charge_already_paid"),
        "cancelled", "finalized", ("Rejected", "visit_closed"), ("NotFound", "visit_not_found"),
        7_000, 20,
    ]
