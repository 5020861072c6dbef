"""reports.analysis: the numbers behind the report agree with a by-hand computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from reports import (
    adoption_shares,
    channel_totals,
    latency_percentiles,
    load_run,
    overall_latency_ms,
)
from reports.analysis import amounts_by_operation, daily_channels, segments
from tests.reports.rundata import OPERATIONS, POPULATION, make_daily, make_events


def test_latency_percentiles_match_numpy_per_operation() -> None:
    events = make_events()
    table = latency_percentiles(events)
    assert sorted(table["operation"]) == sorted(OPERATIONS)
    for row in table.iter_rows(named=True):
        us = events.filter(pl.col("operation") == row["operation"])["latency_us"].to_numpy()
        assert row["count"] == us.size == OPERATIONS[row["operation"]][0]
        for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            assert row[name] == pytest.approx(np.percentile(us / 1_000, q), rel=1e-12)


def test_latency_percentiles_are_ordered_and_in_milliseconds() -> None:
    table = latency_percentiles(make_events())
    assert (table["p50"] <= table["p95"]).all() and (table["p95"] <= table["p99"]).all()
    pay = table.filter(pl.col("operation") == "pay_merchant").row(0, named=True)
    # The fixture's pay_merchant median is 300 us: 0.3 ms, not 300.
    assert 0.15 < pay["p50"] < 0.6


def test_rejected_calls_are_counted_and_kept_in_latency() -> None:
    events = make_events()
    table = latency_percentiles(events).filter(pl.col("operation") == "pay_merchant")
    rejected = events.filter(pl.col("status") == "rejected").height
    assert rejected > 0 and table["rejected"][0] == rejected
    assert table["count"][0] == OPERATIONS["pay_merchant"][0]


def test_overall_latency_matches_numpy_over_all_calls() -> None:
    events = make_events()
    ms = events["latency_us"].to_numpy() / 1_000
    result = overall_latency_ms(events)
    assert list(result) == ["p50", "p95", "p99"]
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert result[name] == pytest.approx(np.percentile(ms, q), rel=1e-12)
    assert all(type(v) is float for v in result.values())


def test_overall_latency_of_no_calls_is_zero_and_json_safe() -> None:
    result = overall_latency_ms(make_events().clear())
    assert result == {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    json.dumps(result, allow_nan=False)


def test_adoption_share_is_adopters_over_population() -> None:
    daily = make_daily()
    shares = adoption_shares(daily)
    assert shares.columns == ["date", *POPULATION]
    for segment in POPULATION:
        expected = daily[f"adopters_{segment}"] / daily[f"population_{segment}"]
        assert shares[segment].to_list() == pytest.approx(expected.to_list())
    assert shares["youth"][0] < shares["youth"][-1]


def test_adoption_share_of_an_empty_segment_is_null_not_a_division_error() -> None:
    daily = make_daily().with_columns(
        pl.when(pl.col("day") < 2)
        .then(0)
        .otherwise(pl.col("population_elderly"))
        .alias("population_elderly"),
        pl.when(pl.col("day") < 2)
        .then(0)
        .otherwise(pl.col("adopters_elderly"))
        .alias("adopters_elderly"),
    )
    elderly = adoption_shares(daily)["elderly"]
    assert elderly[:2].null_count() == 2
    assert elderly[2:].null_count() == 0 and (elderly[2:] > 0).all()


def test_a_new_segment_is_found_by_its_columns() -> None:
    daily = make_daily({"student": 50})
    assert segments(daily) == [*POPULATION, "student"]
    assert "student" in adoption_shares(daily).columns


def test_a_segment_without_population_column_is_ignored() -> None:
    daily = make_daily().with_columns(pl.lit(3).alias("adopters_ghost"))
    assert "ghost" not in segments(daily)


def test_channel_totals_sum_the_days_and_share_counts_each_purchase_once() -> None:
    daily = make_daily()
    totals = {r["channel"]: r for r in channel_totals(daily).iter_rows(named=True)}
    assert list(totals) == ["merchant_qr", "cash", "declined"]
    for channel, row in totals.items():
        assert row["transactions"] == daily[f"tx_{channel}"].sum()
    # Declined attempts were paid in cash: already in tx_cash, so not in the denominator.
    assert totals["merchant_qr"]["share"] + totals["cash"]["share"] == pytest.approx(1.0)
    purchases = totals["merchant_qr"]["transactions"] + totals["cash"]["transactions"]
    assert totals["declined"]["share"] == pytest.approx(
        totals["declined"]["transactions"] / purchases
    )


def test_channel_totals_find_a_new_channel() -> None:
    daily = make_daily().with_columns(pl.lit(5, dtype=pl.Int64).alias("tx_bus_card"))
    totals = channel_totals(daily)
    assert totals.filter(pl.col("channel") == "bus_card")["transactions"][0] == 5 * daily.height
    assert totals.filter(pl.col("channel") != "declined")["share"].sum() == pytest.approx(1.0)


def test_daily_cash_share_is_cash_over_the_days_purchases() -> None:
    daily = make_daily()
    frame = daily_channels(daily)
    expected = daily["tx_cash"] / (daily["tx_cash"] + daily["tx_merchant_qr"])
    assert frame["cash_share"].to_list() == pytest.approx(expected.to_list())


def test_amounts_count_only_successful_calls_that_move_money() -> None:
    events = make_events()
    amounts = {r["operation"]: r for r in amounts_by_operation(events).iter_rows(named=True)}
    assert set(amounts) == {"top_up", "pay_merchant"}
    ok_pay = events.filter((pl.col("operation") == "pay_merchant") & (pl.col("status") == "ok"))
    assert amounts["pay_merchant"]["amount_fen"] == ok_pay["amount_fen"].sum()
    assert amounts["pay_merchant"]["calls"] == ok_pay.height < OPERATIONS["pay_merchant"][0]


def test_load_run_reads_all_three_files(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert run.summary["scenario"] == "tiny"
    assert run.events.schema["latency_us"] == pl.Int64
    assert run.daily.height == make_daily().height


def test_load_run_names_the_missing_file_and_how_to_write_it(run_dir: Path) -> None:
    (run_dir / "daily.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"daily\.parquet.*cashless run"):
        load_run(run_dir)
