"""A load test's run folder turned into figures: our histograms, the verdict's inputs.

``histograms.json`` (written by Locust's master or the replay) holds every endpoint's
HDR histogram and one per second; this module reads it back, writes
``latency.parquet`` (one row per kind, endpoint and second: the time series a
latency report draws) and judges the figures against a service-level file.

``python -m loadtests.results OUT_DIR [--slo FILE] [--db URL]`` judges the folder of a
run the runner did not start (Locust on several machines): it writes
``latency.parquet``, prints each breached level and, given the platform's database,
each lost tap and broken invariant; exit 1 if any.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from loadtests.hdr import HISTOGRAMS_FILE, PERCENTILES, EndpointFigures, Histograms
from loadtests.slo import DEFAULT_SLO, Breach, ServiceLevels, load_service_levels
from loadtests.taps import READER_TAPS_FILE, check_taps
from platform_stub import audit, open_database
from platform_stub.exceptions import ScenarioError

LATENCY_FILE = "latency.parquet"
FIGURE_COLUMNS = (*PERCENTILES, "max_ms", "mean_ms")
LATENCY_SCHEMA = {
    "kind": pl.Utf8,
    "endpoint": pl.Utf8,
    "second": pl.Int64,
    "time": pl.Datetime("ms", "UTC"),
    "count": pl.Int64,
    "failures": pl.Int64,
    **{name: pl.Float64 for name in FIGURE_COLUMNS},
}


@dataclass(frozen=True)
class Measured:
    """What the run folder says was measured (empty when nothing wrote histograms)."""

    histograms: Histograms
    reader_taps: dict[str, dict[str, int]]
    found: bool

    def figures(self, kind: str = "latency") -> dict[str, EndpointFigures]:
        return self.histograms.figures(kind)

    def breaches(self, levels: ServiceLevels) -> list[Breach]:
        return levels.check(self.figures(), self.histograms.all_requests())

    def latency_by_endpoint(self) -> dict[str, dict[str, Any]]:
        """Each kind's endpoints: counts, rate and HDR percentiles, for loadtest.json."""
        kinds = sorted({kind for kind, _ in self.histograms.totals})
        return {
            kind: {
                name: {"count": f.count, "failures": f.failures,
                       "requests_per_s": round(f.requests_per_s, 3), **f.latency}
                for name, f in self.figures(kind).items()
            }
            for kind in kinds
        }


def read_measured(out_dir: Path) -> Measured:
    path = out_dir / HISTOGRAMS_FILE
    if not path.exists():
        return Measured(Histograms(), {}, found=False)
    histograms = Histograms.from_snapshots([json.loads(path.read_text())])
    taps_path = out_dir / READER_TAPS_FILE
    taps = json.loads(taps_path.read_text()) if taps_path.exists() else {}
    return Measured(histograms, taps, found=True)


def write_latency_parquet(measured: Measured, path: Path) -> pl.DataFrame:
    """Per-second percentiles from the HDR histograms, one row per kind, endpoint, second."""
    schema = {k: v for k, v in LATENCY_SCHEMA.items() if k != "time"}
    frame = pl.DataFrame(measured.histograms.per_second_rows(), schema=schema)
    frame = frame.with_columns(
        pl.from_epoch("second", "s").dt.replace_time_zone("UTC").dt.cast_time_unit("ms")
        .alias("time")
    ).select(list(LATENCY_SCHEMA))
    frame.write_parquet(path)
    return frame


def judge_folder(out_dir: Path, slo: Path, db_url: str | None) -> list[str]:
    """Why a finished run's folder fails (empty: it passes); writes ``latency.parquet``.
    For runs the runner did not start, e.g. Locust on several machines."""
    measured = read_measured(out_dir)
    if not measured.found:
        return [f"no {HISTOGRAMS_FILE} in {out_dir}"]
    write_latency_parquet(measured, out_dir / LATENCY_FILE)
    reasons = [f"service level breached: {b}" for b in measured.breaches(load_service_levels(slo))]
    if db_url is not None:
        taps = check_taps(db_url, measured.reader_taps)
        reasons += [f"{taps.lost} tap(s) lost: {taps.lost_by_reader}"] if taps.lost else []
        reasons += [f"ledger audit failed: {name}" for name in _broken_invariants(db_url)]
    return reasons


def _broken_invariants(db_url: str) -> list[str]:
    db = open_database(db_url)
    try:
        return [check.name for check in audit(db).broken]
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Judge a load test's folder: latency.parquet, service levels, taps, audit."
    )
    parser.add_argument("out_dir", type=Path, help="The folder Locust's --results-dir wrote.")
    parser.add_argument("--slo", type=Path, default=DEFAULT_SLO)
    parser.add_argument("--db", default=None, help="The platform's database: lost taps, audit.")
    args = parser.parse_args(argv)
    try:
        reasons = judge_folder(args.out_dir, args.slo, args.db)
    except ScenarioError as exc:
        print(f"Error: {exc.detail}", file=sys.stderr)
        return 2
    for reason in reasons:
        print(reason, file=sys.stderr)
    print(f"{'FAILED' if reasons else 'passed'}: {args.out_dir / LATENCY_FILE}")
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
