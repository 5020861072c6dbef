"""Seconds to build the reports of 50 run folders, beside reading their parquet files.

    python benchmarks/bench_reports.py [--quick] [--runs 50] [--days 14]

One small real run (``tests/data/tiny.toml``) is simulated once and copied into
``--runs`` folders; the figure is the wall time of ``build_run_reports`` over all of
them with ``--jobs`` worker processes (default: one per core, as ``cashless report``
uses; the workers' start-up is inside the time). The baseline is the floor under any
report: reading each folder's parquet files with polars, in the same process on the same
machine. The
ratio is what figures, tables and the page cost on top of reading. Target: under 60 s
for 50 folders, i.e. 1.2 s a folder (``--quick``: 20 folders of 7 days, under 24 s).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo and this folder importable
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).parent)]

import polars as pl
from _protocol import main, result

from reports.batch import build_run_reports, default_jobs
from scenarios.loader import load_scenario
from scenarios.runner import run_scenario

SCENARIO = Path(__file__).resolve().parent.parent / "tests" / "data" / "tiny.toml"
SEED = 20170615
TARGET_S_PER_RUN = 60 / 50
QUICK = {"runs": 20, "days": 7}  # 20: the two workers' start-up is a small part


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


def reports_s(folders: list[Path], jobs: int) -> float:
    start = time.perf_counter()
    pages = build_run_reports(folders, jobs)
    assert all(page.is_file() for page in pages)
    return time.perf_counter() - start


def run(quick: bool = False, runs: int = 50, days: int = 14, jobs: int | None = None) -> list[dict]:
    if quick:
        runs, days = QUICK["runs"], QUICK["days"]
    jobs = jobs or default_jobs()
    with tempfile.TemporaryDirectory() as folder:
        folders = make_folders(Path(folder), runs, days)
        baseline = read_only_s(folders)
        figure = reports_s(folders, jobs)
    return [
        result(
            f"reports_{runs}_runs_s",
            figure,
            "s",
            baseline,
            f"read_parquet_{runs}_runs_s",
            target=round(TARGET_S_PER_RUN * runs, 1),
            target_of="figure",
            target_is="max",
            runs=runs,
            days=days,
            jobs=jobs,
        )
    ]


def _arguments(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (cores)")


if __name__ == "__main__":
    main(run, __doc__, _arguments)
