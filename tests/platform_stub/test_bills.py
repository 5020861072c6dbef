"""Utility bills paid once from the wallet; community services booked and paid."""

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
from platform_stub.features.community import SERVICES_PER_PROVIDER_MAX
from platform_stub.service import luhn_complete
from tests.platform_stub.stories import refusal, told_in_process

CARD = luhn_complete("622202000000001")
START = dt.datetime(2017, 6, 15, 9, 0, tzinfo=CHINA_TZ)
DUE = dt.date(2017, 6, 30)
PHYSIO_FEN = 3_000  # a home physiotherapy visit: 30 RMB, published figure
RACERS = 8


@dataclass
class Street:
    platform: Platform
    biller: Registration
    resident: Registration

    def account_fen(self, reg: Registration) -> int:
        with self.platform.db.transaction() as tx:
            return self.platform.ledger.account(tx, reg.account_id).balance_fen

    def balances(self) -> tuple[int, int]:
        return self.platform.balance_fen(self.resident.token), self.account_fen(self.biller)

    def present(self, amount_fen: int, request_id: str, resident: Registration | None = None,
                due: dt.date = DUE):
        who = resident or self.resident
        return self.platform.bills.present(self.biller.token, who.participant_id, amount_fen,
                                           due, "水费 2017-06", request_id)

    def resident_with(self, name: str, top_up_fen: int) -> Registration:
        reg = self.platform.register_resident(name)
        self.platform.bind_card(reg.token, CARD, "ICBC")
        self.platform.top_up(reg.token, top_up_fen, "t0")
        return reg


@pytest.fixture
def street(db_url: str) -> Iterator[Street]:
    platform = Platform.open(db_url)
    platform.clock = lambda: START
    biller = platform.bills.register_biller("武汉水务")
    street = Street(platform, biller, platform.register_resident("张阿姨"))
    platform.bind_card(street.resident.token, CARD, "ICBC")
    platform.top_up(street.resident.token, 10_000, "t0")
    yield street
    platform.close()


def test_a_presented_bill_is_paid_once_from_the_wallet(street: Street) -> None:
    bill = street.present(4_250, "b1")
    assert (bill.state, bill.paid_on) == ("due", None)
    assert street.platform.bills.bills(street.resident.token) == [bill]
    receipt = street.platform.bills.pay(street.resident.token, bill.id, "p1")
    assert (receipt.amount_fen, receipt.credit_account_id) == (4_250, street.biller.account_id)
    assert street.platform.bills.pay(street.resident.token, bill.id, "p1") == receipt  # retry
    with pytest.raises(Rejected) as caught:
        street.platform.bills.pay(street.resident.token, bill.id, "p2")
    assert caught.value.code == "bill_already_paid"
    assert street.balances() == (10_000 - 4_250, 4_250)
    paid = street.platform.bills.bill(street.resident.token, bill.id)
    assert (paid.state, paid.paid_on, paid.transfer_id) == ("paid", START.date(),
                                                           receipt.transfer_id)
    assert street.platform.audit().ok


def test_someone_elses_bill_is_not_found(street: Street) -> None:
    bill = street.present(4_250, "b1")
    neighbour = street.resident_with("李叔", 10_000)
    for call in (lambda: street.platform.bills.pay(neighbour.token, bill.id, "p1"),
                 lambda: street.platform.bills.bill(neighbour.token, bill.id),
                 lambda: street.platform.bills.pay(neighbour.token, bill.id + 99, "p2")):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.code == "bill_not_found"
    assert street.platform.bills.bills(neighbour.token) == []
    assert street.platform.bills.bills(street.biller.token) == [bill]  # the biller sees it
    assert street.balances() == (10_000, 0)


def test_a_retried_presentation_returns_the_first_bill_and_another_body_is_refused(
    street: Street,
) -> None:
    first = street.present(4_250, "b1")
    assert street.present(4_250, "b1") == first
    with pytest.raises(Rejected, match="exists_with_different_fields"):
        street.present(9_999, "b1")
    with pytest.raises(NotFound, match="participant_not_found"):
        street.present(100, "b2", resident=street.biller)
    with pytest.raises(Forbidden):
        street.platform.bills.present(street.resident.token, street.resident.participant_id,
                                      100, DUE, "x", "b3")
    assert len(street.platform.bills.bills(street.resident.token)) == 1


def test_a_bill_the_wallet_cannot_cover_is_refused_and_stays_due(street: Street) -> None:
    bill = street.present(20_000, "b1")
    for _ in range(2):  # the retry gets the recorded refusal
        with pytest.raises(Rejected, match="exceeds_credits"):
            street.platform.bills.pay(street.resident.token, bill.id, "p1")
    assert street.platform.bills.bill(street.resident.token, bill.id).state == "due"
    street.platform.top_up(street.resident.token, 10_000, "t1")
    street.platform.bills.pay(street.resident.token, bill.id, "p2")
    assert street.balances() == (0, 20_000)
    assert street.platform.audit().ok


def test_a_request_id_reused_for_another_bill_pays_nothing_more(street: Street) -> None:
    first = street.present(1_000, "b1")
    second = street.present(1_000, "b2")  # same biller, same amount: same transfer body
    street.platform.bills.pay(street.resident.token, first.id, "p1")
    with pytest.raises(Rejected, match="exists_with_different_fields"):
        street.platform.bills.pay(street.resident.token, second.id, "p1")
    assert street.platform.bills.bill(street.resident.token, second.id).state == "due"
    assert street.balances() == (9_000, 1_000)


def test_racing_payments_of_one_bill_pay_it_once(street: Street) -> None:
    bill = street.present(1_000, "b1")

    def pay(k: int) -> str:
        try:
            street.platform.bills.pay(street.resident.token, bill.id, f"p{k}")
            return "paid"
        except PlatformError as err:
            return err.code

    with ThreadPoolExecutor(RACERS) as pool:
        outcomes = sorted(pool.map(pay, range(RACERS)))
    assert outcomes == ["bill_already_paid"] * (RACERS - 1) + ["paid"]
    assert street.balances() == (9_000, 1_000)
    assert street.platform.audit().ok


def test_a_bill_paid_on_its_due_date_counts_as_on_time(street: Street) -> None:
    bill = street.present(1_000, "b1", due=START.date())
    street.platform.bills.pay(street.resident.token, bill.id, "p1")
    factors = street.platform.credit.score(street.resident.participant_id).factors
    assert (factors["on_time_payments"], factors["late_payments"]) == (10, 0)


def test_booking_a_service_moves_its_price_to_the_provider(street: Street) -> None:
    provider = street.platform.community.register_provider("社区康复中心")
    physio = street.platform.community.publish(provider.token, "上门康复理疗", PHYSIO_FEN)
    booking = street.platform.community.book(street.resident.token, physio.id, "k1")
    assert street.platform.community.book(street.resident.token, physio.id, "k1") == booking
    assert (booking.price_fen, booking.provider_id) == (PHYSIO_FEN, provider.participant_id)
    assert street.platform.balance_fen(street.resident.token) == 10_000 - PHYSIO_FEN
    assert street.account_fen(provider) == PHYSIO_FEN
    assert street.platform.community.bookings(provider.token) == [booking]
    assert street.platform.community.bookings(street.resident.token) == [booking]
    assert street.platform.audit().ok


def test_bookings_refuse_unknown_services_reused_ids_and_empty_wallets(street: Street) -> None:
    community = street.platform.community
    provider = community.register_provider("菜篮子")
    groceries = community.publish(provider.token, "送菜上门", 800)
    banquet = community.publish(provider.token, "寿宴", 50_000)
    with pytest.raises(NotFound, match="service_not_found"):
        community.book(street.resident.token, banquet.id + 99, "k1")
    community.book(street.resident.token, groceries.id, "k2")
    with pytest.raises(Rejected, match="exists_with_different_fields"):
        community.book(street.resident.token, banquet.id, "k2")
    with pytest.raises(Rejected, match="exceeds_credits"):
        community.book(street.resident.token, banquet.id, "k3")
    assert street.platform.balance_fen(street.resident.token) == 10_000 - 800
    assert street.account_fen(provider) == 800


def test_only_providers_publish_and_each_publishes_a_bounded_number(street: Street) -> None:
    community = street.platform.community
    with pytest.raises(Forbidden):
        community.publish(street.resident.token, "假服务", 100)
    provider = community.register_provider("家政")
    for k in range(SERVICES_PER_PROVIDER_MAX):
        community.publish(provider.token, f"服务{k}", 100 + k)
    with pytest.raises(Rejected, match="service_limit_reached"):
        community.publish(provider.token, "one more", 100)
    with pytest.raises(Forbidden):
        community.book(provider.token, 1, "k1")


@pytest.fixture
def client(live_server: str) -> Iterator[HttpClient]:
    c = HttpClient(live_server)
    yield c
    c.close()


def test_bills_over_http(client: HttpClient, live_server: str) -> None:
    biller = client.register_biller("国网武汉供电")
    resident = client.register_resident("王奶奶")
    client.bind_card(resident.token, CARD, "ICBC")
    client.top_up(resident.token, 10_000, "t0")
    bill = client.present_bill(biller.token, resident.participant_id, 6_800, DUE, "电费", "b1")
    assert client.list_bills(resident.token) == [bill]
    receipt = client.pay_bill(resident.token, bill.id, "p1")
    assert receipt.amount_fen == 6_800
    with pytest.raises(Rejected, match="bill_already_paid"):
        client.pay_bill(resident.token, bill.id, "p2")
    assert client.list_bills(resident.token)[0].state == "paid"
    assert client.balance_fen(resident.token) == 3_200
    with pytest.raises(Forbidden):
        client.present_bill(resident.token, resident.participant_id, 1, DUE, "x", "b2")
    other = client.register_resident("路人")
    resp = httpx.get(f"{live_server}/v1/bills/{bill.id}",
                     headers={"Authorization": f"Bearer {other.token}"})
    assert resp.status_code == 404 and resp.json()["code"] == "bill_not_found"


def test_community_services_over_http(client: HttpClient, live_server: str) -> None:
    provider = client.register_provider("社区康复中心")
    physio = client.publish_service(provider.token, "上门康复理疗", PHYSIO_FEN)
    resident = client.register_resident("刘爷爷")
    client.bind_card(resident.token, CARD, "ICBC")
    client.top_up(resident.token, 10_000, "t0")
    booking = client.book_service(resident.token, physio.id, "k1")
    assert client.book_service(resident.token, physio.id, "k1") == booking
    assert client.balance_fen(resident.token) == 10_000 - PHYSIO_FEN
    listed = httpx.get(f"{live_server}/v1/bookings",
                       headers={"Authorization": f"Bearer {provider.token}"}).json()
    assert [b["id"] for b in listed["bookings"]] == [booking.id]
    resp = httpx.post(f"{live_server}/v1/services", json={"name": "x", "price_fen": 1},
                      headers={"Authorization": f"Bearer {resident.token}"})
    assert resp.status_code == 403 and resp.json()["code"] == "forbidden"


def bills_story(client: PlatformClient) -> list[object]:
    """A bill paid, paid again, and someone else's; a service booked."""
    biller = client.register_biller("燃气公司")
    resident = client.register_resident("陈阿姨")
    client.bind_card(resident.token, CARD, "ICBC")
    client.top_up(resident.token, 10_000, "t0")
    bill = client.present_bill(biller.token, resident.participant_id, 2_000, DUE, "gas", "b1")
    story: list[object] = [bill.state, bill.due_date]
    client.pay_bill(resident.token, bill.id, "p1")
    story.append(refusal(lambda: client.pay_bill(resident.token, bill.id, "p2")))
    other = client.register_resident("邻居")
    story.append(refusal(lambda: client.pay_bill(other.token, bill.id, "p1")))
    story.append([(b.state, b.amount_fen) for b in client.list_bills(resident.token)])
    provider = client.register_provider("送菜")
    offer = client.publish_service(provider.token, "送菜上门", 800)
    story.append(client.book_service(resident.token, offer.id, "k1").price_fen)
    story.append(refusal(lambda: client.book_service(provider.token, offer.id, "k2")))
    story.append(client.balance_fen(resident.token))
    return story


def test_bills_and_bookings_are_the_same_in_process_and_over_http(
    client: HttpClient, db_url: str
) -> None:
    in_process = told_in_process(db_url, bills_story)
    assert in_process == bills_story(client) == [
        "due", DUE, ("Rejected", "bill_already_paid"), ("NotFound", "bill_not_found"),
        [("paid", 2_000)], 800, ("Forbidden", "forbidden"), 10_000 - 2_000 - 800,
    ]
