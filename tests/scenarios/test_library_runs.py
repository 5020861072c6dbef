"""Every scenario of the library runs through `cashless run`'s path, scaled far down.

A scenario file that validates can still fail in the model (a promotion, a rollout, a
rival wallet); this runs each one for three days of a couple of hundred residents and
reads its run folder as a user would.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from scenarios.loader import library_paths, load_scenario
from scenarios.runner import run_scenario

TINY = {"city.residents": 200, "city.merchants": 12, "city.days": 3, "transit.buses": 4}


@pytest.mark.parametrize("name", [path.stem for path in library_paths()])  # `cashless scenarios`
def test_a_library_scenario_runs_and_its_ledger_balances(name: str, tmp_path: Path) -> None:
    scenario = load_scenario(name, TINY)
    quiet = Console(file=io.StringIO())
    folder = run_scenario(scenario, tmp_path / name, console=quiet).out_dir
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["scenario"] == scenario.name == name
    assert summary["ledger"]["audit_ok"] is True, summary["ledger"]
    assert pl.read_parquet(folder / "daily.parquet").height == TINY["city.days"]
