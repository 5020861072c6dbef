"""reports.html sections: transit, debt, settlement, and notes for data a run lacks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from reports import build_run_report
from reports.analysis import (
    calibration_table,
    clearing_lag_s,
    daily_tap_outcomes,
    load_run,
    published_marks,
    settlement_totals,
    tap_outcomes,
)
from reports.figures import adoption_figure
from reports.html import PICTURES, Picture
from tests.reports.rundata import (
    SERVICE_COLUMNS,
    RunFactory,
    make_daily,
    make_settlement,
    make_taps,
)


def test_tap_outcomes_count_every_tap_once_by_reason() -> None:
    taps = make_taps()
    table = tap_outcomes(taps)
    assert table["taps"].sum() == taps.height
    rejected = taps.filter(pl.col("reason") == "card_denied").height
    assert table.filter(pl.col("reason") == "card_denied")["taps"].item() == rejected > 0


def test_daily_tap_outcomes_split_each_day_by_label() -> None:
    taps = make_taps()
    frame = daily_tap_outcomes(taps)
    assert frame.columns[0] == "day" and "cleared" in frame.columns
    assert "rejected: insufficient_funds" in frame.columns
    assert frame.drop("day").sum_horizontal().sum() == taps.height


def test_clearing_lag_percentiles_are_ordered_seconds() -> None:
    lag = clearing_lag_s(make_taps())
    assert 60 <= lag["p50"] <= lag["p95"] <= lag["p99"] <= lag["max"] <= 8 * 3600


def test_clearing_lag_of_no_taps_is_missing_not_an_error() -> None:
    assert clearing_lag_s(make_taps().head(0)) == dict.fromkeys(["p50", "p95", "p99", "max"])


def test_settlement_totals_sum_each_kind_over_windows() -> None:
    totals = settlement_totals(make_settlement()).row(by_predicate=pl.col("kind") == "operator")
    assert totals[1] == 8  # one window a day
    assert totals[-1] == sum(10_000 + 100 * d for d in range(8))


def test_calibration_table_states_error_and_keeps_unsimulated_rows() -> None:
    table = calibration_table(
        {"hospital minutes saved": 52.7, "riders": 150_000.0}, {"hospital minutes saved": 50.0}
    )
    first = table.row(0, named=True)
    assert first["error"] == pytest.approx(-2.7)
    assert first["relative_error"] == pytest.approx(-2.7 / 52.7)
    assert table.row(1, named=True)["simulated"] is None


def test_published_figures_are_marked_only_within_the_run_dates() -> None:
    assert published_marks(make_daily()) == []  # the synthetic run ends in June 2017
    daily = make_daily().with_columns(pl.col("date") + dt.timedelta(days=30))
    marks = published_marks(daily)
    assert [m[0] for m in marks] == [dt.date(2017, 7, 15)]
    ax = adoption_figure(daily).axes[0]
    diamonds = [line for line in ax.get_lines() if line.get_marker() == "D"]
    assert len(diamonds) == 1 and list(diamonds[0].get_ydata()) == [60.0]


def test_transit_debt_and_settlement_sections_show_the_run_numbers(run_dir: Path) -> None:
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    cleared = make_taps().filter(pl.col("outcome") == "cleared").height
    assert f'<th>cleared</th><td class="num">{cleared:,}</td>' in text
    assert '<th>riders&#x27; debt to the platform</th><td class="num">¥12.34</td>' in text
    assert '<th>refused at the reader: card_denied</th><td class="num">2</td>' in text
    assert "<caption>Settlement totals</caption>" in text


def test_sections_without_data_say_not_in_this_run(make_run: RunFactory) -> None:
    old = make_run("old", daily=make_daily().drop(SERVICE_COLUMNS), transit=False)
    summary = json.loads((old / "summary.json").read_text())
    del summary["transit"]
    (old / "summary.json").write_text(json.dumps(summary))
    text = build_run_report(old).read_text(encoding="utf-8")
    assert "Offline taps are not in this run" in text
    assert "Settlement is not in this run" in text
    assert "Hospital visits: not in this run (daily.parquet has no hospital_visits_paynow" in text
    assert "Who was left out: not in this run (daily.parquet has no cannot_pay_elderly" in text
    for name in ("taps", "hospital", "inclusion"):
        assert not (old / "figures" / f"{name}.png").exists(), name


def test_report_records_its_page_and_figures_in_summary_json(run_dir: Path) -> None:
    before = json.loads((run_dir / "summary.json").read_text())
    build_run_report(run_dir)
    after = json.loads((run_dir / "summary.json").read_text())
    assert after["report"]["page"] == "report.html"
    assert after["report"]["figures"] == [f"figures/{p.name}.png" for p in PICTURES]
    assert {k: v for k, v in after.items() if k != "report"} == before


@pytest.mark.parametrize("picture", PICTURES, ids=lambda p: p.name)
def test_every_figure_in_a_report_has_a_title_and_labelled_axes(
    run_dir: Path, picture: Picture
) -> None:
    fig = picture.build(load_run(run_dir))
    assert fig.axes[0].get_title(loc="left"), picture.name
    for ax in fig.axes:
        assert "(" in ax.get_ylabel(), f"{picture.name}: y label without unit"
    assert fig.axes[-1].get_xlabel(), picture.name
