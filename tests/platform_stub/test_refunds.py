"""Refunds: a merchant gives back all or part of a payment, never more than was paid."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from platform_stub import HttpClient, Platform, Receipt, Registration
from platform_stub.exceptions import Forbidden, NotFound, PlatformError, Rejected
from platform_stub.features.refunds import REFUNDS_PER_PAYMENT_MAX
from platform_stub.service import luhn_complete

CARD = luhn_complete("622202000000001")
RACERS = 8
RACE_ROUNDS = 3


@dataclass
class Sale:
    platform: Platform
    payer: Registration
    shop: Registration
    payment: Receipt

    def balances(self) -> tuple[int, int]:
        return (self.platform.balance_fen(self.payer.token),
                self.platform.balance_fen(self.shop.token))

    def refund(self, amount_fen: int, request_id: str) -> Receipt:
        return self.platform.refunds.refund(
            self.shop.token, self.payment.transfer_id, amount_fen, request_id)


@pytest.fixture
def sale(db_url: str) -> Iterator[Sale]:
    """A resident who topped up 1,000 fen and paid a merchant 500 of them."""
    platform = Platform.open(db_url)
    payer = platform.register_resident("张伟")
    platform.bind_card(payer.token, CARD, "ICBC")
    platform.top_up(payer.token, 1000, "t1")
    shop = platform.register_merchant("热干面", "武汉")
    payment = platform.pay_merchant(payer.token, shop.collection_code, 500, "p1")
    yield Sale(platform, payer, shop, payment)
    platform.close()


def test_a_full_refund_returns_the_payment_to_the_wallet(sale: Sale) -> None:
    receipt = sale.refund(500, "r1")
    assert (receipt.amount_fen, receipt.debit_account_id, receipt.credit_account_id) == (
        500, sale.shop.account_id, sale.payer.account_id)
    assert sale.balances() == (1000, 0)
    assert sale.platform.refunds.refunded_fen(sale.payment.transfer_id) == 500
    assert sale.platform.audit().ok


def test_two_partial_refunds_then_one_over_the_payment_is_refused_and_changes_nothing(
    sale: Sale,
) -> None:
    sale.refund(200, "r1")
    sale.refund(200, "r2")
    before = (sale.balances(), sale.platform.audit().transfer_count)
    with pytest.raises(Rejected) as caught:
        sale.refund(101, "r3")
    assert caught.value.code == "refund_exceeds_payment"
    assert (sale.balances(), sale.platform.audit().transfer_count) == before
    assert before[0] == (900, 100)
    sale.refund(100, "r4")  # exactly what is left still fits
    assert sale.balances() == (1000, 0)


def test_another_merchant_cannot_refund_a_payment_it_did_not_receive(sale: Sale) -> None:
    rival = sale.platform.register_merchant("豆皮", "武汉")
    sale.platform.pay_merchant(sale.payer.token, rival.collection_code, 100, "p2")
    with pytest.raises(NotFound) as caught:
        sale.platform.refunds.refund(rival.token, sale.payment.transfer_id, 100, "r1")
    assert caught.value.code == "transfer_not_found"
    with pytest.raises(NotFound, match="transfer_not_found"):  # a top-up is no payment
        sale.platform.refunds.refund(sale.shop.token, f"{sale.payer.participant_id}:top_up:t1",
                                     100, "r2")
    with pytest.raises(Forbidden):
        sale.platform.refunds.refund(sale.payer.token, sale.payment.transfer_id, 100, "r3")
    assert sale.balances() == (400, 500)
    assert sale.platform.balance_fen(rival.token) == 100


def test_a_retried_refund_returns_the_first_receipt_and_refunds_once(sale: Sale) -> None:
    first = sale.refund(200, "r1")
    assert sale.refund(200, "r1") == first
    with pytest.raises(Rejected) as caught:
        sale.refund(300, "r1")
    assert caught.value.code == "exists_with_different_fields"
    assert sale.balances() == (700, 300)


def test_a_refund_the_merchant_cannot_cover_is_exceeds_credits_also_on_retry(
    sale: Sale,
) -> None:
    sale.platform.close_settlement()  # the merchant's takings went to its bank
    for _ in range(2):
        with pytest.raises(Rejected) as caught:
            sale.refund(100, "r1")
        assert caught.value.code == "exceeds_credits"
    assert sale.balances() == (500, 0)
    assert sale.platform.refunds.refunded_fen(sale.payment.transfer_id) == 0


def test_a_payment_has_at_most_the_allowed_number_of_refunds(sale: Sale) -> None:
    for n in range(REFUNDS_PER_PAYMENT_MAX):
        sale.refund(1, f"r{n}")
    with pytest.raises(Rejected) as caught:
        sale.refund(1, "one-more")
    assert caught.value.code == "refund_limit_reached"
    assert sale.balances() == (500 + REFUNDS_PER_PAYMENT_MAX, 500 - REFUNDS_PER_PAYMENT_MAX)


def test_refunds_racing_from_8_threads_never_exceed_the_payment(sale: Sale, db_url: str) -> None:
    """Each round: 8 platforms (as 8 workers would) refund one payment at once. Exactly
    the refunds that fit succeed: every refused one would not have fit after them."""
    rng = random.Random(7)
    platforms = [Platform.open(db_url) for _ in range(RACERS)]
    refunded_total = 0
    try:
        for round_no in range(RACE_ROUNDS):
            payment = sale.platform.pay_merchant(
                sale.payer.token, sale.shop.collection_code, 100, f"race-pay{round_no}")
            amounts = [rng.randint(10, 60) for _ in range(RACERS)]
            outcomes = _race(platforms, sale.shop.token, payment.transfer_id, amounts,
                             f"race{round_no}")
            paid_back = sum(a for a, o in zip(amounts, outcomes, strict=True) if o == "ok")
            refused = [a for a, o in zip(amounts, outcomes, strict=True) if o != "ok"]
            assert set(outcomes) <= {"ok", "refund_exceeds_payment"}, outcomes
            assert paid_back <= 100 and all(paid_back + a > 100 for a in refused)
            assert sale.platform.refunds.refunded_fen(payment.transfer_id) == paid_back
            refunded_total += paid_back
    finally:
        for platform in platforms:
            platform.close()
    assert sale.balances() == (200 + refunded_total, 800 - refunded_total)
    assert sale.platform.audit().ok


def _race(platforms: list[Platform], token: str, transfer_id: str, amounts: list[int],
          tag: str) -> list[str]:
    start = threading.Barrier(len(platforms))

    def refund(n: int) -> str:
        start.wait()
        try:
            platforms[n].refunds.refund(token, transfer_id, amounts[n], f"{tag}-{n}")
            return "ok"
        except PlatformError as err:
            return err.code

    with ThreadPoolExecutor(max_workers=len(platforms)) as pool:
        return list(pool.map(refund, range(len(platforms))))


def test_a_paycode_payment_is_refunded_over_http(live_server: str) -> None:
    client = HttpClient(live_server)
    try:
        payer = client.register_resident("李娜")
        shop = client.register_merchant("早餐", "武汉")
        rival = client.register_merchant("豆浆", "武汉")
        client.bind_card(payer.token, CARD, "CCB")
        client.top_up(payer.token, 1000, "t1")
        paid = client.charge_paycode(shop.token, client.issue_paycode(payer.token), 350, "s1")
        first = client.refund(shop.token, paid.transfer_id, 150, "r1")
        assert client.refund(shop.token, paid.transfer_id, 150, "r1") == first
        with pytest.raises(Rejected, match="refund_exceeds_payment"):
            client.refund(shop.token, paid.transfer_id, 201, "r2")
        with pytest.raises(NotFound, match="transfer_not_found"):
            client.refund(rival.token, paid.transfer_id, 1, "r3")
        assert (client.balance_fen(payer.token), client.balance_fen(shop.token)) == (800, 200)
    finally:
        client.close()
