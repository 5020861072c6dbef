"""cashless sweep --engine dask: the same run folders and table, on a real Dask cluster."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from platform_stub.exceptions import ScenarioError
from scenarios.evaluate import simulate
from scenarios.loader import load_scenario
from scenarios.sweep import SweepPlan, run_sweep
from tests.conftest import TINY_SCENARIO

pytest.importorskip("dask.distributed")
SHORT = {"city.days": 2}


@pytest.mark.slow
def test_a_dask_sweep_writes_the_same_runs_and_resumes_without_a_cluster(tmp_path: Path) -> None:
    """A LocalCluster of two worker processes runs two seeds; each run folder holds what
    the in-process engine would have computed for that seed, and a finished sweep asks
    the cluster for nothing."""
    plan = SweepPlan(str(TINY_SCENARIO), seeds=2, sets=SHORT)
    done: list[int] = []
    table = run_sweep(
        plan, tmp_path, jobs=2, on_done=lambda s, ok: done.append(s.seed), engine="dask"
    )
    assert table.height == 2 and (table["status"] == "ok").all() and len(done) == 2
    assert pl.read_parquet(tmp_path / "runs.parquet").equals(table)
    folder = Path(table["folder"][1])
    seed = int(table["seed"][1])
    alone = simulate(load_scenario(TINY_SCENARIO, SHORT), seed)
    assert pl.read_parquet(folder / "daily.parquet").equals(alone.daily)
    swept = json.loads((folder / "summary.json").read_text())
    assert swept["adoption"] == alone.summary["adoption"]
    done.clear()
    again = run_sweep(
        plan, tmp_path, jobs=2, on_done=lambda s, ok: done.append(s.seed), engine="dask"
    )
    assert done == [] and again.equals(table)


def test_an_unknown_engine_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="--engine"):
        run_sweep(SweepPlan(str(TINY_SCENARIO), seeds=1), tmp_path, 1, engine="spark")
