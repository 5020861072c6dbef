"""Sweeps: seeds times grid points, in parallel processes, resumable, one table."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from platform_stub.exceptions import ScenarioError
from scenarios.cli import app
from scenarios.loader import load_scenario
from scenarios.runner import run_scenario
from scenarios.sweep import SweepPlan, parse_assignment, parse_grid, run_sweep
from tests.conftest import TINY_SCENARIO

SHORT = {"city.days": 2}


def test_values_are_read_as_toml_and_bad_keys_are_named() -> None:
    assert parse_assignment("city.days=30", "--set") == ("city.days", 30)
    assert parse_grid("transit.coverage=0.2,0.8") == ("transit.coverage", [0.2, 0.8])
    assert parse_assignment('transit.free_ride_weekdays=["Fri"]', "--set")[1] == ["Fri"]
    with pytest.raises(ScenarioError, match="--set"):
        parse_assignment("no-equals-sign", "--set")


def test_a_sweep_runs_every_point_and_seed_and_resumes_without_redoing(tmp_path: Path) -> None:
    plan = SweepPlan(str(TINY_SCENARIO), seeds=2, sets=SHORT, grid={"transit.coverage": [0.0, 1.0]})
    done: list[int] = []
    table = run_sweep(plan, tmp_path, jobs=2, on_done=lambda spec, ok: done.append(spec.seed))
    assert table.height == 4 and (table["status"] == "ok").all()
    assert sorted(table["param.transit.coverage"].unique()) == ["0.0", "1.0"]
    assert len(set(table["folder"])) == 4
    victim = Path(table["folder"][0])
    (victim / "summary.json").unlink()
    done.clear()
    again = run_sweep(plan, tmp_path, jobs=2, on_done=lambda spec, ok: done.append(spec.seed))
    assert len(done) == 1 and again.height == 4 and (again["status"] == "ok").all()
    seeds_of = again.group_by("param.transit.coverage").agg(pl.col("seed").n_unique())
    assert (seeds_of["seed"] == 2).all()


def test_a_run_in_a_sweep_matches_the_same_run_alone(tmp_path: Path) -> None:
    """Worker processes change nothing: same scenario, overrides and seed, same figures."""
    plan = SweepPlan(str(TINY_SCENARIO), seeds=1, sets=SHORT)
    [row] = run_sweep(plan, tmp_path / "sweep", jobs=1).to_dicts()
    alone = run_scenario(load_scenario(TINY_SCENARIO, SHORT), tmp_path / "one", row["seed"])
    swept = json.loads((Path(row["folder"]) / "summary.json").read_text())
    for key in ("adoption", "transactions", "transit", "ledger"):
        assert swept[key] == alone.summary[key], key


def test_cli_sweep_reports_a_bad_grid_and_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            str(TINY_SCENARIO),
            "--seeds",
            "1",
            "--grid",
            "city.dayz=1,2",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "city.dayz" in result.output
