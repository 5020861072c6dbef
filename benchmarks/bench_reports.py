"""Seconds to build the reports of 50 run folders, beside reading their parquet files.

    python benchmarks/bench_reports.py [--runs 50] [--days 14]

One small real run (``tests/data/tiny.toml``) is simulated once and copied into
``--runs`` folders; the figure is the wall time of ``build_run_report`` over all of
them, one after another. The baseline is the floor under any report: reading each
folder's parquet files with polars, in the same process on the same machine. The
ratio is what figures, tables and the page cost on top of reading. Target: under 60 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

from reports import build_run_report
from scenarios.loader import load_scenario
from scenarios.runner import run_scenario

SCENARIO = Path(__file__).resolve().parent.parent / "tests" / "data" / "tiny.toml"
SEED = 20170615


def make_folders(root: Path, runs: int, days: int) -> list[Path]:
    first = run_scenario(load_scenario(SCENARIO, {"city.days": days}), root / "run-0", SEED)
    folders = [first.out_dir]
    for n in range(1, runs):
        folders.append(Path(shutil.copytree(first.out_dir, root / f"run-{n}")))
    return folders


def read_only_s(folders: list[Path]) -> float:
    """Read every parquet file of every folder and nothing more."""
    start = time.perf_counter()
    rows = sum(pl.read_parquet(f).height for folder in folders for f in folder.glob("*.parquet"))
    assert rows > 0
    return time.perf_counter() - start


def reports_s(folders: list[Path]) -> float:
    start = time.perf_counter()
    for folder in folders:
        build_run_report(folder)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--days", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folders = make_folders(Path(folder), args.runs, args.days)
        baseline = read_only_s(folders)
        figure = reports_s(folders)
    result = {"name": "reports_50_runs_s", "figure": round(figure, 2),
              "baseline": round(baseline, 3), "baseline_name": "read_parquet_50_runs_s",
              "ratio": round(figure / baseline, 1), "runs": args.runs, "days": args.days,
              "under_60_s": figure < 60}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
