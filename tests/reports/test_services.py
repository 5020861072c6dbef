"""Run-report sections on hospital minutes and inclusion, read from daily.parquet."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports import build_run_report
from reports.sections_services import PUBLISHED_MINUTES_SAVED, minutes_per_visit, minutes_saved
from tests.reports.rundata import RunFactory, make_daily


def test_minutes_per_visit_divide_minutes_by_visits_of_each_way_to_pay() -> None:
    daily = make_daily()
    per_visit = minutes_per_visit(daily)
    assert per_visit["paynow"] == (int(daily["hospital_visits_paynow"].sum()), pytest.approx(140))
    assert per_visit["paylater"][1] == pytest.approx(88)
    assert minutes_saved(daily) == pytest.approx(52)


def test_no_pay_later_visit_means_no_saving_rather_than_a_division_by_zero() -> None:
    daily = make_daily().with_columns(hospital_visits_paylater=0, hospital_minutes_paylater_sum=0)
    assert minutes_per_visit(daily)["paylater"] == (0, None) and minutes_saved(daily) is None


def test_the_hospital_section_shows_the_saving_beside_the_published_figure(run_dir: Path) -> None:
    page = build_run_report(run_dir).read_text(encoding="utf-8")
    assert (
        '<th>saved per visit, simulated</th><td class="num">—</td><td class="num">52.0 min' in page
    )
    assert "published figure: treat first, pay later shortens a hospital visit" in page
    assert f'<td class="num">{PUBLISHED_MINUTES_SAVED} min</td>' in page
    assert (run_dir / "figures" / "hospital.png").is_file()


def test_the_inclusion_section_counts_who_could_not_pay_and_cash_only_shops(run_dir: Path) -> None:
    page = build_run_report(run_dir).read_text(encoding="utf-8")
    daily = make_daily()
    total = int(daily["cannot_pay_elderly"].sum())
    assert f'<th>elderly who could not pay, over the run</th><td class="num">{total}</td>' in page
    last = daily["merchants_cash_only"][-1]
    assert f'<th>merchants still cash-only, last day</th><td class="num">{last}</td>' in page


def test_a_run_with_some_inclusion_columns_shows_those_and_names_the_rest(
    make_run: RunFactory,
) -> None:
    run_dir = make_run(daily=make_daily().drop("merchants_cash_only", "cannot_pay_total"))
    page = build_run_report(run_dir).read_text(encoding="utf-8")
    assert "elderly who could not pay, over the run" in page
    assert "Not in this run: daily.parquet has no merchants_cash_only, cannot_pay_total." in page
    assert not (run_dir / "figures" / "inclusion.png").exists()
