"""Fixtures: a run folder written in ``tmp_path`` from ``rundata``'s seeded builders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.reports.rundata import (
    RunFactory,
    make_daily,
    make_events,
    make_settlement,
    make_summary,
    make_taps,
)


@pytest.fixture
def make_run(tmp_path: Path) -> RunFactory:
    """Write a run folder; keyword arguments override top-level ``summary.json`` keys.

    ``transit=False`` leaves out taps.parquet and settlement.parquet.
    """

    def write(
        name: str = "run", daily: pl.DataFrame | None = None, transit: bool = True, **changes: Any
    ) -> Path:
        run_dir = tmp_path / name
        run_dir.mkdir()
        events = make_events()
        daily = make_daily() if daily is None else daily
        events.write_parquet(run_dir / "events.parquet")
        daily.write_parquet(run_dir / "daily.parquet")
        if transit:  # a run from before offline transit wrote neither file
            make_taps().write_parquet(run_dir / "taps.parquet")
            make_settlement().write_parquet(run_dir / "settlement.parquet")
        summary = make_summary(events, daily, **changes)
        (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        return run_dir

    return write


@pytest.fixture
def run_dir(make_run: RunFactory) -> Path:
    return make_run()
