"""A load test's per-endpoint rows: from Locust's CSV (its final totals when it wrote
them at quit, else its last periodic file) or, for the replay, from our histograms."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from loadtests.hdr import EndpointFigures
from loadtests.results import Measured

CSV_PREFIX = "locust"
FINAL_CSV_PREFIX = "locust_final"


@dataclass(frozen=True)
class StatsRow:
    """One request name's figures; latencies are Locust's bucketed percentiles (the
    replay's rows carry HDR percentiles; ``LoadtestResult.latency_ms`` has both)."""

    method: str
    name: str
    requests: int
    failures: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    requests_per_s: float


@dataclass(frozen=True)
class FailureRow:
    method: str
    name: str
    error: str
    occurrences: int


def replay_stats(
    measured: Measured, replay: dict
) -> tuple[list[StatsRow], list[FailureRow], str]:
    """The replay has no Locust CSV: its rows come from our histograms (kind latency)."""
    figures = list(measured.figures().values())
    total = measured.histograms.all_requests()
    rows = [_figure_row(*f.endpoint.split(" ", 1), f) for f in figures]
    if total is not None:
        rows.append(_figure_row("", "Aggregated", total))
    failures = []
    for key, occurrences in replay.get("refusals", {}).items():
        endpoint, _, error = key.partition(": ")
        method, _, name = endpoint.partition(" ")
        failures.append(FailureRow(method, name, error, occurrences))
    return rows, failures, "histograms.json (replay, HDR)"


def _figure_row(method: str, name: str, figures: EndpointFigures) -> StatsRow:
    latency = figures.latency
    return StatsRow(
        method=method, name=name, requests=figures.count, failures=figures.failures,
        latency_ms_p50=latency.get("p50_ms"), latency_ms_p95=latency.get("p95_ms"),
        latency_ms_p99=latency.get("p99_ms"), requests_per_s=round(figures.requests_per_s, 3),
    )  # fmt: skip


def read_stats(out_dir: Path) -> tuple[list[StatsRow], list[FailureRow], str]:
    """The final figures when Locust wrote them at quit, else its last periodic CSV."""
    for prefix, source in ((FINAL_CSV_PREFIX, "final"), (CSV_PREFIX, "periodic")):
        path = out_dir / f"{prefix}_stats.csv"
        if path.exists():
            stats = [_stats_row(r) for r in _csv_records(path)]
            failures = [_failure_row(r) for r in _csv_records(out_dir / f"{prefix}_failures.csv")]
            return stats, failures, f"{path.name} ({source})"
    return [], [], "none: Locust wrote no stats"


def _csv_records(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _stats_row(record: dict[str, str]) -> StatsRow:
    return StatsRow(
        method=record["Type"],
        name=record["Name"],
        requests=int(record["Request Count"]),
        failures=int(record["Failure Count"]),
        latency_ms_p50=_ms(record["50%"]),
        latency_ms_p95=_ms(record["95%"]),
        latency_ms_p99=_ms(record["99%"]),
        requests_per_s=float(record["Requests/s"]),
    )


def _ms(text: str) -> float | None:
    """Locust writes N/A for a percentile of no requests."""
    return None if text == "N/A" else float(text)


def _failure_row(record: dict[str, str]) -> FailureRow:
    return FailureRow(
        method=record["Method"],
        name=record["Name"],
        error=record["Error"],
        occurrences=int(record["Occurrences"]),
    )
