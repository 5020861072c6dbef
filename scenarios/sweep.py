"""Sweeps: one scenario over many seeds and a grid of parameter values, in parallel.

    out/
      sweep.json                 what was asked (scenario, seeds, sets, grid)
      <point>/seed-<n>/          one ordinary run folder per grid point and seed
      runs.parquet, runs.csv     one row per run: its parameters, seed and headline figures

Every run folder is kept. A run whose summary.json exists is finished and is not
run again, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import re
import tomllib
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from platform_stub.exceptions import ScenarioError
from scenarios.loader import load_scenario

RUNS_MAX = 10_000
SEEDS_MAX = 1_000


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a grid point (its overrides) and a seed."""

    point: dict[str, Any]
    seed: int
    folder: Path


@dataclass
class SweepPlan:
    scenario: str
    seeds: int
    sets: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        keys = sorted(self.grid)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(self.grid[k] for k in keys))
        ]

    def runs(self, out_dir: Path, base_seed: int) -> list[RunSpec]:
        if not 0 < self.seeds <= SEEDS_MAX:
            raise ScenarioError("(command line)", "--seeds", f"1 to {SEEDS_MAX}", self.seeds)
        specs = [
            RunSpec(point, base_seed + n, out_dir / point_slug(point) / f"seed-{base_seed + n}")
            for point in self.points()
            for n in range(self.seeds)
        ]
        if len(specs) > RUNS_MAX:
            raise ScenarioError(
                "(command line)", "--grid/--seeds", f"at most {RUNS_MAX} runs", len(specs)
            )
        return specs


def parse_assignment(text: str, option: str) -> tuple[str, Any]:
    """``key=value`` with the value read as TOML (30, 0.5, true, "Fri", ["Fri"])."""
    key, sep, raw = text.partition("=")
    if not sep or not re.fullmatch(r"[a-z_]+(\.[a-z_]+)*", key):
        raise ScenarioError("(command line)", option, "key=value with a dotted key", text)
    return key, parse_value(raw)


def parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare word is a string


def parse_grid(text: str) -> tuple[str, list[Any]]:
    key, raw = parse_assignment(text, "--grid")[0], text.partition("=")[2]
    values = [parse_value(v) for v in raw.split(",") if v.strip()]
    if not values:
        raise ScenarioError("(command line)", "--grid", "key=v1,v2,...", text)
    return key, values


def point_slug(point: dict[str, Any]) -> str:
    if not point:
        return "base"
    parts = [f"{k.split('.')[-1]}={v}" for k, v in sorted(point.items())]
    return re.sub(r"[^A-Za-z0-9=._,-]+", "_", ",".join(parts))[:120]


def run_one(scenario: str, overrides: dict[str, Any], seed: int, folder: str) -> dict[str, Any]:
    """One run in a worker process; returns its row for the table."""
    from rich.console import Console

    from scenarios.runner import run_scenario

    loaded = load_scenario(scenario, overrides)
    quiet = Console(file=open(os.devnull, "w"), stderr=False)  # noqa: SIM115 - lives with run
    result = run_scenario(loaded, Path(folder), seed, console=quiet)
    return row_of(result.summary, folder)


def row_of(summary: dict[str, Any], folder: str) -> dict[str, Any]:
    """The headline figures of one run, flat, for the runs table."""
    row = {
        "folder": folder,
        "seed": summary["seed"],
        "status": "ok",
        "adoption_overall": summary["adoption"]["overall"],
        "transactions": summary["transactions"]["count"],
        "latency_ms_p99": summary["latency_ms"]["p99"],
        "wall_s": summary["timings"]["wall_s"],
    }
    row |= {f"adoption_{k}": v for k, v in summary["adoption"]["by_segment"].items()}
    row |= {f"tx_{k}": v for k, v in summary["transactions"]["by_channel"].items()}
    transit = summary.get("transit") or {}
    row |= {"taps": transit.get("taps"), "debt_fen": transit.get("debt_fen")}
    return row


def finished(spec: RunSpec) -> bool:
    return (spec.folder / "summary.json").is_file()


ENGINES = ("local", "dask")


def run_sweep(
    plan: SweepPlan,
    out_dir: Path,
    jobs: int,
    on_done: Callable[[RunSpec, bool], None] | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> pl.DataFrame:
    """Run what is not finished yet, ``jobs`` processes at a time; write the runs table.

    ``engine="dask"`` runs them on a Dask cluster instead (``scenarios.distributed``):
    at ``scheduler``, or a local cluster of ``jobs`` worker processes.
    """
    if engine not in ENGINES:
        raise ScenarioError("(command line)", "--engine", " or ".join(ENGINES), engine)
    base = load_scenario(plan.scenario, plan.sets)  # fails fast on a bad scenario or --set
    for point in plan.points():
        load_scenario(plan.scenario, plan.sets | point)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sweep.json").write_text(
        json.dumps(
            {"scenario": plan.scenario, "seeds": plan.seeds, "sets": plan.sets, "grid": plan.grid},
            indent=2,
            default=str,
        )
    )
    specs = plan.runs(out_dir, base.seed)
    todo = [s for s in specs if not finished(s)]
    if engine == "dask":
        from scenarios.distributed import run_missing_dask

        failures = run_missing_dask(plan, todo, jobs, on_done, scheduler)
    else:
        failures = _run_missing(plan, todo, jobs, on_done)
    return write_table(specs, failures, out_dir)


def _run_missing(
    plan: SweepPlan, todo: list[RunSpec], jobs: int, on_done: Callable[[RunSpec, bool], None] | None
) -> dict[RunSpec, str]:
    failures: dict[RunSpec, str] = {}
    if not todo:
        return failures
    # spawn, not fork: a forked child inherits threads and locks (gevent, DB pools) mid-use
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context) as pool:
        futures: dict[Future, RunSpec] = {
            pool.submit(
                run_one, plan.scenario, plan.sets | spec.point, spec.seed, str(spec.folder)
            ): spec
            for spec in todo
        }
        for future in as_completed(futures):
            spec = futures[future]
            error = future.exception()
            if error is not None:
                failures[spec] = f"{type(error).__name__}: {error}"
            if on_done is not None:
                on_done(spec, error is None)
    return failures


def write_table(specs: list[RunSpec], failures: dict[RunSpec, str], out_dir: Path) -> pl.DataFrame:
    rows = []
    for spec in specs:
        if finished(spec):
            summary = json.loads((spec.folder / "summary.json").read_text())
            row = row_of(summary, str(spec.folder))
        else:
            row = {
                "folder": str(spec.folder),
                "seed": spec.seed,
                "status": "failed",
                "error": failures.get(spec, "not run"),
            }
        rows.append({f"param.{k}": str(v) for k, v in spec.point.items()} | row)
    table = pl.DataFrame(rows, infer_schema_length=None)
    table.write_parquet(out_dir / "runs.parquet")
    table.write_csv(out_dir / "runs.csv")
    return table
