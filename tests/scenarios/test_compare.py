"""cashless compare: runs grouped by scenario, bands over seeds, differences above noise."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from platform_stub.exceptions import ScenarioError
from reports.compare import difference_lines
from scenarios.cli import app
from scenarios.compare import (
    compare,
    differences,
    holm,
    scalar_bands,
    series_bands,
    significant,
)

Runs = dict[str, list[Path]]


def test_a_clearly_different_scenario_differs_and_a_noise_twin_does_not(tiny_runs: Runs) -> None:
    comparison = compare([*tiny_runs["base"], *tiny_runs["twin"], *tiny_runs["adopted"]])
    base, twin, adopted = (g.label for g in comparison.groups)
    found = significant(differences(comparison))
    assert found.filter(pl.col("group") == twin).is_empty()
    flagged = set(found.filter(pl.col("group") == adopted)["metric"])
    assert {"adoption.youth", "adoption.adult"} <= flagged
    assert base == "tiny [adoption.initial_share=0.2]" and twin == "tiny_twin"
    assert adopted == "tiny [adoption.initial_share=0.8]"


def test_runs_equal_but_for_the_seed_form_one_group_in_the_order_given(tiny_runs: Runs) -> None:
    comparison = compare([tiny_runs["adopted"][0], *tiny_runs["base"], *tiny_runs["adopted"][1:]])
    assert [len(g.runs) for g in comparison.groups] == [3, 3]
    assert comparison.reference.label.endswith("initial_share=0.8]")
    assert [r.seed for r in comparison.groups[1].runs] == [1, 2, 3]


def test_bands_are_mean_plus_minus_two_standard_errors(tiny_runs: Runs) -> None:
    comparison = compare(tiny_runs["base"])
    values = comparison.scalars.filter(pl.col("metric") == "adoption.youth")["value"]
    band = scalar_bands(comparison).filter(pl.col("metric") == "adoption.youth").row(0, named=True)
    half = 2 * values.std() / 3**0.5
    assert band["n"] == 3 and band["mean"] == pytest.approx(values.mean())
    assert (band["lo"], band["hi"]) == pytest.approx((values.mean() - half, values.mean() + half))
    days = series_bands(comparison).filter(pl.col("metric") == "adoption.youth")
    assert days.height == 3 and days["date"].is_sorted()


def test_one_seed_has_no_band_and_is_not_tested(tiny_runs: Runs) -> None:
    comparison = compare([tiny_runs["base"][0], tiny_runs["adopted"][0]])
    assert scalar_bands(comparison)["lo"].is_null().all()
    diffs = differences(comparison)
    assert diffs["p"].is_null().all() and significant(diffs).is_empty()


def test_a_column_the_model_does_not_write_yet_is_skipped_with_a_note(
    tiny_runs: Runs, tmp_path: Path
) -> None:
    old = tmp_path / "old-run"
    shutil.copytree(tiny_runs["base"][0], old)
    daily = pl.read_parquet(old / "daily.parquet")
    daily.drop("cannot_pay_elderly", "promo_cost_fen").write_parquet(old / "daily.parquet")
    comparison = compare([old, *tiny_runs["adopted"]])
    assert any("cannot_pay_elderly" in note and "1 of 4 runs" in note for note in comparison.notes)
    old_metrics = comparison.scalars.filter(pl.col("group") == comparison.reference.label)
    assert "cannot_pay_elderly" not in set(old_metrics["metric"])
    assert "promotions.cost_fen" in set(old_metrics["metric"])  # from summary.json instead


def _pay_later_copy(run: Path, folder: Path, rides: int, visits: int) -> Path:
    """A copy of ``run`` with ``rides`` pay-later rides and ``visits`` pay-later visits on
    its first day and none after; with neither, its scenario has pay-later turned off."""
    shutil.copytree(run, folder)
    daily = pl.read_parquet(folder / "daily.parquet").sort("date")
    first = pl.int_range(pl.len()) == 0
    daily.with_columns(
        pay_later_rides=pl.when(first).then(rides).otherwise(0),
        hospital_visits_paylater=pl.when(first).then(visits).otherwise(0),
    ).write_parquet(folder / "daily.parquet")
    if not rides and not visits:
        resolved = folder / "scenario.resolved.toml"
        text = resolved.read_text(encoding="utf-8")
        assert "pay_later = true" in text
        resolved.write_text(text.replace("pay_later = true", "pay_later = false"), "utf-8")
    return folder


def test_pay_later_rides_and_visits_are_compared_and_zero_with_pay_later_off(
    tiny_runs: Runs, tmp_path: Path
) -> None:
    on = [
        _pay_later_copy(run, tmp_path / "on" / run.name, 20 + k, 30 - k)
        for k, run in enumerate(tiny_runs["base"])
    ]
    off = [_pay_later_copy(run, tmp_path / "off" / run.name, 0, 0) for run in tiny_runs["base"]]
    comparison = compare([*on, *off])
    ref, no_credit = (g.label for g in comparison.groups)
    assert no_credit == "tiny [credit.pay_later=false]"
    bands = scalar_bands(comparison)
    for metric, totals in (("pay_later_rides", 21.0), ("hospital.visits_paylater", 29.0)):
        row = bands.filter((pl.col("group") == ref) & (pl.col("metric") == metric))
        assert row["mean"].item() == pytest.approx(totals)
        row = bands.filter((pl.col("group") == no_credit) & (pl.col("metric") == metric))
        assert row.select("n", "mean", "lo", "hi").row(0) == (3, 0.0, 0.0, 0.0)
    diffs = differences(comparison).filter(pl.col("group") == no_credit)
    rides = diffs.filter(pl.col("metric") == "pay_later_rides").row(0, named=True)
    assert (rides["reference_mean"], rides["mean"], rides["difference"]) == (21.0, 0.0, -21.0)
    lines = difference_lines(diffs)
    assert any(line.startswith(f"{no_credit}: pay-later bus rides 0 vs 21 rides") for line in lines)
    assert any("pay-later hospital visits 0 vs 29 visits over the run" in line for line in lines)


def test_a_run_from_before_the_pay_later_columns_is_skipped_with_a_note(
    tiny_runs: Runs, tmp_path: Path
) -> None:
    old = tmp_path / "old-run"
    shutil.copytree(tiny_runs["base"][0], old)
    daily = pl.read_parquet(old / "daily.parquet")
    daily.drop("pay_later_rides").write_parquet(old / "daily.parquet")
    comparison = compare([old, *tiny_runs["base"][1:]])
    assert "daily.parquet has no column pay_later_rides (1 of 3 runs): skipped" in comparison.notes
    rides = comparison.scalars.filter(pl.col("metric") == "pay_later_rides")
    assert sorted(rides["seed"]) == [2, 3]
    assert comparison.scalars.filter(pl.col("metric") == "hospital.visits_paylater").height == 3


def test_a_sweep_folder_is_read_through_its_runs_table_even_when_moved(
    tiny_runs: Runs, tmp_path: Path
) -> None:
    sweep = tmp_path / "moved-sweep"
    for run in tiny_runs["base"]:
        shutil.copytree(run, sweep / "base" / run.name)
    listed = [str(Path("/elsewhere/sweep/base") / r.name) for r in tiny_runs["base"]]
    pl.DataFrame({"folder": listed, "status": ["ok"] * 3}).write_parquet(sweep / "runs.parquet")
    comparison = compare([sweep, tiny_runs["base"][0]])
    assert len(comparison.groups) == 1 and len(comparison.reference.runs) == 3


def test_holm_adjusts_step_down_and_leaves_untested_alone() -> None:
    assert holm([0.01, None, 0.04, 0.03]) == pytest.approx([0.03, None, 0.06, 0.06])


def test_a_folder_that_is_neither_run_nor_sweep_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"empty.*run folder \(summary\.json\)"):
        compare([tmp_path / "empty"])


def test_cli_compare_writes_a_self_contained_page_and_prints_differences(
    tiny_runs: Runs, tmp_path: Path
) -> None:
    paths = [str(p) for p in (*tiny_runs["base"], *tiny_runs["adopted"])]
    result = CliRunner().invoke(app, ["compare", *paths, "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert "adopted, youth" in result.output
    page = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    assert "Differences versus tiny [adoption.initial_share=0.2]" in page
    assert "mean ± 2 standard errors" in page and "Holm" in page
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert page.count("data:image/png;base64,") == 8
    assert "pay-later bus rides (rides over the run)" in page
    assert (tmp_path / "cmp" / "differences.csv").is_file()


def test_cli_compare_of_a_missing_folder_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "nowhere" in result.output
