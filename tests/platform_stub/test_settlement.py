"""Settlement windows net positions to zero, pay payees out, and never change once closed."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from platform_stub import Platform
from platform_stub.service import luhn_complete
from platform_stub.settlement import Settlement


@pytest.fixture
def platform(db_url: str):
    p = Platform.open(db_url)
    yield p
    p.close()


def shopping_day(platform: Platform, tag: str, amounts_fen: list[int]) -> str:
    payer = platform.register_resident(f"买家{tag}")
    shop = platform.register_merchant(f"店{tag}", "武汉")
    platform.bind_card(payer.token, luhn_complete("622202000000001"), "ICBC")
    platform.top_up(payer.token, sum(amounts_fen), f"{tag}-top")
    for n, amount in enumerate(amounts_fen):
        platform.pay_merchant(payer.token, shop.collection_code, amount, f"{tag}-{n}")
    return f"merchant:{shop.participant_id}"


def test_closing_nets_to_zero_and_pays_each_merchant_its_takings(
    platform: Platform, tmp_path: Path
) -> None:
    settlement = Settlement(platform.ledger)
    shop_a = shopping_day(platform, "a", [350, 1200])
    shop_b = shopping_day(platform, "b", [99])
    report = settlement.close_window()
    by_account = {p.account: p for p in report.positions}
    assert sum(p.net_fen for p in report.positions) == 0
    assert by_account[shop_a].net_fen == by_account[shop_a].payout_fen == 1550
    assert by_account[shop_b].payout_fen == 99
    assert report.payout_total_fen == 1649
    csv, parquet = report.write(tmp_path)
    assert pl.read_csv(csv)["net_fen"].sum() == 0
    assert pl.read_parquet(parquet).equals(report.frame())
    assert platform.audit().ok


def test_a_closed_window_never_changes_and_later_transfers_go_to_the_next(
    platform: Platform,
) -> None:
    settlement = Settlement(platform.ledger)
    shopping_day(platform, "a", [500])
    first = settlement.close_window()
    assert settlement.open_window_id() == first.window_id + 1
    shop_c = shopping_day(platform, "c", [700])
    second = settlement.close_window()
    assert second.first_seq == first.last_seq + 1
    assert {p.account for p in second.positions if p.payout_fen} == {shop_c}
    with platform.db.transaction() as tx:
        row = tx.one(
            "SELECT first_seq, last_seq, state FROM settlement_windows WHERE id = ?",
            (first.window_id,),
        )
    assert row == (first.first_seq, first.last_seq, "SETTLED")


def test_an_empty_window_closes_with_no_payouts(platform: Platform) -> None:
    report = Settlement(platform.ledger).close_window()
    assert report.positions == [] and report.payout_total_fen == 0
