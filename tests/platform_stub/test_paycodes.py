"""Payment codes: a resident shows a code, a merchant's scanner charges it once."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from platform_stub import HttpClient, Platform, Registration
from platform_stub.exceptions import Forbidden, InvalidRequest, NotFound, PlatformError, Rejected
from platform_stub.features.paycodes import PAYCODE_TTL_S, PAYCODES_KEPT_MAX
from platform_stub.service import luhn_complete

CARD = luhn_complete("622202000000001")
START_S = 1_497_500_000.0  # 15 June 2017, the day Wuhan's e-bus card launched
RACERS = 8


class Clock:
    """The paycode service's injected clock; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now_s = START_S

    def __call__(self) -> float:
        return self.now_s


@dataclass
class Stall:
    platform: Platform
    clock: Clock
    payer: Registration
    shop: Registration

    def balances(self) -> tuple[int, int]:
        return (self.platform.balance_fen(self.payer.token),
                self.platform.balance_fen(self.shop.token))

    def transfer_count(self) -> int:
        return self.platform.audit().transfer_count


@pytest.fixture
def stall(db_url: str) -> Iterator[Stall]:
    platform = Platform.open(db_url)
    clock = Clock()
    platform.paycodes.time_s = clock
    payer = platform.register_resident("张伟")
    platform.bind_card(payer.token, CARD, "ICBC")
    platform.top_up(payer.token, 1000, "t1")
    shop = platform.register_merchant("热干面", "武汉")
    yield Stall(platform, clock, payer, shop)
    platform.close()


def test_a_code_is_18_digits_and_charges_the_wallet_once(stall: Stall) -> None:
    code = stall.platform.paycodes.issue(stall.payer.token).code
    receipt = stall.platform.paycodes.charge(stall.shop.token, code, 350, "s1")
    assert len(code) == 18 and code.isdigit()
    assert (receipt.amount_fen, receipt.debit_account_id, receipt.credit_account_id) == (
        350, stall.payer.account_id, stall.shop.account_id)
    assert stall.balances() == (650, 350)
    assert stall.platform.audit().ok


def test_a_second_charge_is_paycode_used_and_changes_nothing(stall: Stall) -> None:
    other = stall.platform.register_merchant("豆皮", "武汉")
    code = stall.platform.paycodes.issue(stall.payer.token).code
    stall.platform.paycodes.charge(stall.shop.token, code, 350, "s1")
    before = (stall.balances(), stall.transfer_count())
    for merchant, request_id in ((stall.shop, "s2"), (other, "s1")):
        with pytest.raises(Rejected) as caught:
            stall.platform.paycodes.charge(merchant.token, code, 350, request_id)
        assert caught.value.code == "paycode_used"
    assert (stall.balances(), stall.transfer_count()) == before
    assert stall.platform.balance_fen(other.token) == 0


def test_a_code_works_for_its_ttl_and_then_is_paycode_expired(stall: Stall) -> None:
    fresh = stall.platform.paycodes.issue(stall.payer.token).code
    stall.clock.now_s += PAYCODE_TTL_S
    stall.platform.paycodes.charge(stall.shop.token, fresh, 100, "on-time")
    stale = stall.platform.paycodes.issue(stall.payer.token).code
    stall.clock.now_s += PAYCODE_TTL_S + 0.001
    with pytest.raises(Rejected) as caught:
        stall.platform.paycodes.charge(stall.shop.token, stale, 100, "late")
    assert caught.value.code == "paycode_expired"
    assert stall.balances() == (900, 100)


def test_an_older_code_after_a_newer_one_is_paycode_superseded(stall: Stall) -> None:
    older = stall.platform.paycodes.issue(stall.payer.token).code
    stall.clock.now_s += 30  # the app's refresh
    newer = stall.platform.paycodes.issue(stall.payer.token).code
    with pytest.raises(Rejected) as caught:
        stall.platform.paycodes.charge(stall.shop.token, older, 350, "s1")
    assert caught.value.code == "paycode_superseded"
    assert stall.balances() == (1000, 0)
    stall.platform.paycodes.charge(stall.shop.token, newer, 350, "s2")
    assert stall.balances() == (650, 350)


def test_a_merchant_retry_returns_the_first_receipt_even_after_the_code_died(
    stall: Stall,
) -> None:
    code = stall.platform.paycodes.issue(stall.payer.token).code
    first = stall.platform.paycodes.charge(stall.shop.token, code, 350, "s1")
    stall.platform.paycodes.issue(stall.payer.token)  # used, superseded ...
    stall.clock.now_s += 10 * PAYCODE_TTL_S  # ... and expired
    again = stall.platform.paycodes.charge(stall.shop.token, code, 350, "s1")
    assert again == first
    with pytest.raises(Rejected) as caught:
        stall.platform.paycodes.charge(stall.shop.token, code, 351, "s1")
    assert caught.value.code == "exists_with_different_fields"
    assert stall.balances() == (650, 350)
    assert stall.transfer_count() == 2  # the top-up and one payment


def test_two_merchants_may_use_the_same_request_id(stall: Stall) -> None:
    other = stall.platform.register_merchant("豆皮", "武汉")
    first = stall.platform.paycodes.issue(stall.payer.token).code
    stall.platform.paycodes.charge(stall.shop.token, first, 100, "0001")
    second = stall.platform.paycodes.issue(stall.payer.token).code
    stall.platform.paycodes.charge(other.token, second, 200, "0001")
    assert stall.platform.balance_fen(other.token) == 200
    assert stall.balances() == (700, 100)


def test_a_resident_credential_cannot_charge_and_a_merchant_cannot_issue(stall: Stall) -> None:
    code = stall.platform.paycodes.issue(stall.payer.token).code
    with pytest.raises(Forbidden):
        stall.platform.paycodes.charge(stall.payer.token, code, 350, "s1")
    with pytest.raises(Forbidden):
        stall.platform.paycodes.issue(stall.shop.token)
    stall.platform.paycodes.charge(stall.shop.token, code, 350, "s1")  # the code still works
    assert stall.balances() == (650, 350)


def test_an_unknown_code_is_paycode_unknown_and_a_malformed_charge_is_invalid(
    stall: Stall,
) -> None:
    with pytest.raises(NotFound) as caught:
        stall.platform.paycodes.charge(stall.shop.token, "280000000000000000", 350, "s1")
    assert caught.value.code == "paycode_unknown"
    code = stall.platform.paycodes.issue(stall.payer.token).code
    for amount_fen, request_id in ((0, "s1"), (-5, "s1"), (5_000_001, "s1"), (1, "x" * 41)):
        with pytest.raises(InvalidRequest):
            stall.platform.paycodes.charge(stall.shop.token, code, amount_fen, request_id)
    assert stall.balances() == (1000, 0)


def test_the_database_holds_only_hashes_of_codes(stall: Stall, db_url: str) -> None:
    code = stall.platform.paycodes.issue(stall.payer.token).code
    stall.platform.paycodes.charge(stall.shop.token, code, 350, "s1")
    unused = stall.platform.paycodes.issue(stall.payer.token).code
    with stall.platform.db.transaction() as tx:
        rows = [tx.all(f"SELECT * FROM {table}")
                for table in ("paycodes", "paycode_charges", "transfers")]
    stored = repr(rows)
    assert code not in stored and unused not in stored
    assert hashlib.sha256(code.encode()).hexdigest() in stored
    if db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert files and not any(code.encode() in p.read_bytes() for p in files)


def test_only_a_residents_newest_codes_are_kept(stall: Stall) -> None:
    first = stall.platform.paycodes.issue(stall.payer.token).code
    for _ in range(PAYCODES_KEPT_MAX + 4):
        stall.platform.paycodes.issue(stall.payer.token)
    with stall.platform.db.transaction() as tx:
        kept = tx.one("SELECT COUNT(*) FROM paycodes WHERE participant_id = ?",
                      (stall.payer.participant_id,))[0]
    assert kept == PAYCODES_KEPT_MAX
    with pytest.raises(NotFound, match="paycode_unknown"):
        stall.platform.paycodes.charge(stall.shop.token, first, 1, "s1")


def test_a_charge_the_wallet_cannot_cover_spends_the_code_and_replays_its_refusal(
    stall: Stall,
) -> None:
    code = stall.platform.paycodes.issue(stall.payer.token).code
    for request_id in ("big", "big"):  # the second is the scanner's retry
        with pytest.raises(Rejected) as caught:
            stall.platform.paycodes.charge(stall.shop.token, code, 1001, request_id)
        assert caught.value.code == "exceeds_credits"
    with pytest.raises(Rejected, match="paycode_used"):
        stall.platform.paycodes.charge(stall.shop.token, code, 1000, "smaller")
    assert stall.balances() == (1000, 0)


def test_scanners_racing_on_one_code_charge_it_once(stall: Stall, db_url: str) -> None:
    shops = [stall.platform.register_merchant(f"摊{n}", "武汉") for n in range(RACERS)]
    code = stall.platform.paycodes.issue(stall.payer.token).code
    platforms = [Platform.open(db_url) for _ in range(RACERS)]
    for platform in platforms:
        platform.paycodes.time_s = stall.clock
    start = threading.Barrier(RACERS)

    def charge(n: int) -> str:
        start.wait()
        try:
            platforms[n].paycodes.charge(shops[n].token, code, 100, f"race{n}")
            return "charged"
        except PlatformError as err:
            return err.code

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        outcomes = sorted(pool.map(charge, range(RACERS)))
    for platform in platforms:
        platform.close()
    assert outcomes == ["charged"] + ["paycode_used"] * (RACERS - 1)
    assert stall.platform.balance_fen(stall.payer.token) == 900
    assert sum(stall.platform.balance_fen(s.token) for s in shops) == 100
    assert stall.platform.audit().ok


def test_a_paycode_is_charged_end_to_end_over_http(live_server: str) -> None:
    client = HttpClient(live_server)
    try:
        payer = client.register_resident("李娜")
        shop = client.register_merchant("早餐", "武汉")
        client.bind_card(payer.token, CARD, "CCB")
        client.top_up(payer.token, 1000, "t1")
        code = client.issue_paycode(payer.token)
        first = client.charge_paycode(shop.token, code, 350, "scan-1")
        assert client.charge_paycode(shop.token, code, 350, "scan-1") == first
        with pytest.raises(Rejected, match="paycode_used"):
            client.charge_paycode(shop.token, code, 350, "scan-2")
        with pytest.raises(NotFound, match="paycode_unknown"):
            client.charge_paycode(shop.token, "280000000000000000", 350, "scan-3")
        with pytest.raises(Forbidden):
            client.charge_paycode(payer.token, client.issue_paycode(payer.token), 1, "scan-4")
        assert first.amount_fen == 350 and first.credit_account_id == shop.account_id
        assert (client.balance_fen(payer.token), client.balance_fen(shop.token)) == (650, 350)
    finally:
        client.close()
