"""Fast, repeated simulation for calibration and sensitivity analysis.

``simulate`` steps the same model against the same in-process platform as
``cashless run`` (``scenarios.runner``) and computes the same ``summary.json``, but
writes no run folder and draws no report: a report costs several times what a small
run does, and an optimiser runs hundreds. ``tests/scenarios/test_calibrate.py`` pins
that both give the same daily table for the same seed.

``Measure`` reads one number from a run: a daily.parquet column on a date or over a
window, or a summary.json key, optionally scaled up to the real city.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from scenarios.schema import Scenario

Stat = Literal["value", "mean", "sum", "max", "min", "last"]
STATS: tuple[str, ...] = ("value", "mean", "sum", "max", "min", "last")


@dataclass(frozen=True)
class Outcome:
    """What one simulated run produced, in memory: daily.parquet, summary.json,
    taps.parquet and events.parquet as ``cashless run`` writes them."""

    daily: pl.DataFrame
    summary: dict[str, Any]
    taps: pl.DataFrame
    events: pl.DataFrame


def simulate(scenario: Scenario, seed: int) -> Outcome:
    """Run ``scenario`` with ``seed`` in-process on a throw-away ledger; same seed, same run."""
    from agents import CityModel
    from platform_stub import InProcessClient
    from platform_stub.clearing import CHINA_TZ
    from scenarios.runner import open_platform, summarise, transit_summary

    scenario = scenario.model_copy(update={"seed": seed})
    with tempfile.TemporaryDirectory(prefix="cashless-eval-") as tmp:
        platform = open_platform(scenario, Path(tmp) / "ledger.db")
        client = InProcessClient(platform)
        try:
            model = CityModel(scenario, client, seed=seed)
            platform.clock = lambda: model.now.replace(tzinfo=CHINA_TZ)
            while model.running:
                model.step()
        finally:
            client.close()
            platform.close()
    daily = pl.DataFrame(model.daily_rows)
    taps = model.taps.frame()
    events = model.log.frame()
    summary = summarise(model, events, daily, None)
    summary["transit"] = transit_summary(model, taps, None)
    return Outcome(daily, summary, taps, events)


def dotted_get(data: Any, dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; ``KeyError`` naming the first missing part."""
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            raise KeyError(part)
        data = data[part]
    return data


class MeasureError(ValueError):
    """A run lacks what a measure reads (a column, a key, a date)."""


@dataclass(frozen=True)
class Measure:
    """One number from a run.

    Exactly one of ``column`` (a daily.parquet column) and ``summary`` (a dotted
    summary.json key). A column is reduced by ``stat``: ``value`` on ``date``,
    ``last`` on the last day, or ``mean``/``sum``/``max``/``min`` over ``window``
    (both ends included; the whole run without one). ``scaled`` multiplies by the
    run's scale factor (real population / simulated residents).
    """

    column: str | None = None
    summary: str | None = None
    stat: Stat = "last"
    date: dt.date | None = None
    window: tuple[dt.date, dt.date] | None = None
    scaled: bool = False

    def read(self, daily: pl.DataFrame, summary: dict[str, Any]) -> float:
        value = self._column_value(daily) if self.column else self._summary_value(summary)
        if self.scaled:
            value *= float(dotted_get(summary, "population.scale_factor"))
        return value

    def describe(self) -> str:
        if self.summary:
            return f"summary.json {self.summary}"
        when = {
            "value": f"on {self.date}",
            "last": "on the last day",
        }.get(self.stat, f"{self.stat} over {_window_text(self.window)}")
        return f"daily.parquet {self.column} {when}"

    def _summary_value(self, summary: dict[str, Any]) -> float:
        assert self.summary is not None
        try:
            value = dotted_get(summary, self.summary)
        except KeyError as exc:
            raise MeasureError(
                f"summary.json has no key {self.summary!r} ({exc} missing)"
            ) from None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise MeasureError(f"summary.json {self.summary!r} is {value!r}, not a number")
        return float(value)

    def _column_value(self, daily: pl.DataFrame) -> float:
        assert self.column is not None
        if self.column not in daily.columns:
            raise MeasureError(f"daily.parquet has no column {self.column!r}")
        frame = daily.sort("date")
        if self.stat == "last":
            return float(frame[self.column][-1])
        if self.stat == "value":
            rows = frame.filter(pl.col("date") == self.date)
            if rows.is_empty():
                raise MeasureError(f"the run has no day {self.date} ({_span(frame)})")
            return float(rows[self.column][0])
        if self.window is not None:
            lo, hi = self.window
            frame = frame.filter(pl.col("date").is_between(lo, hi))
            if frame.is_empty():
                raise MeasureError(f"the run has no day in {_window_text(self.window)}")
        return float(getattr(frame[self.column], self.stat)())


def _window_text(window: tuple[dt.date, dt.date] | None) -> str:
    return "the run" if window is None else f"{window[0]}..{window[1]}"


def _span(daily: pl.DataFrame) -> str:
    return f"it covers {daily['date'].min()}..{daily['date'].max()}"


def run_dates(scenario: Scenario) -> tuple[dt.date, dt.date]:
    """First and last simulated day of ``scenario``."""
    start = scenario.city.start_date
    return start, start + dt.timedelta(days=scenario.city.days - 1)


def process_pool(jobs: int) -> Any:
    """``jobs`` spawned worker processes, or ``None`` for one (evaluate in this process).

    Spawned, not forked: a forked child inherits threads and locks mid-use.
    """
    if jobs <= 1:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
