"""A simulated day as load: the replay's schedule and the city-day shape's profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.trace import REPLAYED, day_profile, plan_day, trace_file
from tests.loadtests.conftest import BUSY_DAY


def test_the_busiest_day_is_planned_in_time_order_compressed_into_the_run(
    city_run: Path,
) -> None:
    plan = plan_day(city_run, None, duration_s=8)
    assert plan.day == BUSY_DAY
    assert plan.speedup == pytest.approx(86_400 / 8)
    times = [c.at_s for c in plan.calls]
    assert times == sorted(times)
    assert 6 * 3600 / plan.speedup <= times[0] and times[-1] <= 8  # 06:00 to 23:30 of 8 s
    assert plan.calls[-1].operation == "close_settlement"


def test_calls_tied_to_made_identities_are_skipped_and_counted(city_run: Path) -> None:
    plan = plan_day(city_run, BUSY_DAY, duration_s=8)
    assert {c.operation for c in plan.calls} <= set(REPLAYED)
    assert set(plan.skipped) == {"bind_card"}
    assert len(plan.calls) + sum(plan.skipped.values()) == 401


def test_a_chosen_day_is_planned(city_run: Path) -> None:
    plan = plan_day(city_run, 4, duration_s=8)
    assert plan.day == 4
    assert len(plan.calls) + sum(plan.skipped.values()) == 41


def test_the_profile_peaks_at_one_and_is_empty_at_night(city_run: Path) -> None:
    profile = day_profile(city_run, None, bins=24)
    assert max(profile) == 1.0
    assert profile[:6] == [0.0] * 6  # nothing before 06:00
    assert profile[23] > 0  # the settlement at 23:30


def test_a_folder_without_a_trace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no trace"):
        trace_file(tmp_path)


def test_a_day_without_rows_is_refused(city_run: Path) -> None:
    with pytest.raises(ValueError, match="no rows on day 9"):
        plan_day(city_run, 9, duration_s=8)
