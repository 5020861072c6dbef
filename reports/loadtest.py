"""The load-test report: throughput and percentiles over time, the verdict, replay lateness.

Reads ``loadtest.json`` (the verdict) and ``latency.parquet`` (one row per kind,
endpoint and second) from a load-test run folder and writes ``report.html`` and
``figures/*.png`` beside them, the page self-contained as the run report is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.figure import Figure

from reports.figures import _date_axis, _legend_or_note, _new_figure, _style, colour, save
from reports.html import _CSS, FIGURES_DIR, REPORT_FILE, Picture, _esc, _figure, _note, _table

VERDICT_FILE = "loadtest.json"
LATENCY_FILE = "latency.parquet"


def is_loadtest_folder(folder: Path) -> bool:
    return (Path(folder) / VERDICT_FILE).is_file()


def over_time_figure(latency: pl.DataFrame, column: str, ylabel: str, title: str) -> Figure:
    """One line per endpoint of the ``latency`` kind: ``column`` second by second."""
    fig = _new_figure()
    ax = fig.axes[0]
    rows = latency.filter(pl.col("kind") == "latency").sort("time")
    for i, endpoint in enumerate(sorted(rows["endpoint"].unique().to_list())):
        one = rows.filter(pl.col("endpoint") == endpoint)
        ax.plot(
            one["time"].to_numpy(),
            one[column].to_numpy(),
            label=endpoint,
            color=colour(i),
            linewidth=1.5,
            marker="." if one.height < 30 else None,
        )
    _style(ax, title, "Time (UTC)", ylabel)
    _date_axis(ax)
    _legend_or_note(ax, "Endpoint", rows.height > 0)
    return fig


def _verdict_tables(verdict: dict[str, Any]) -> str:
    passed = verdict.get("passed")
    rows = [("verdict", {True: "passed", False: "FAILED"}.get(passed, "not judged"))]
    rows += [("reason", str(r)) for r in verdict.get("reasons", [])]
    rows += [("breach", json.dumps(b, default=str)) for b in verdict.get("breaches", [])]
    rows += [
        ("requests", f"{verdict.get('total_requests', 0):,}"),
        ("failures", f"{verdict.get('total_failures', 0):,}"),
    ]
    levels = verdict.get("latency_ms", {}).get("latency", {})
    head = ("endpoint", "count", "req/s", "p50", "p95", "p99", "max")
    by_endpoint = [
        (
            name,
            f"{v['count']:,}",
            f"{v['requests_per_s']:.1f}",
            *(f"{v[k]:.2f} ms" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        )
        for name, v in sorted(levels.items())
    ]
    return _table("Service-level verdict", rows) + _table(
        "Latency by endpoint (HDR)", by_endpoint, head
    )


def _lateness(verdict: dict[str, Any]) -> str:
    late = verdict.get("replay", {}).get("lateness_ms")
    if not late:
        return _note("Replay lateness: not in this run (no open-model replay).")
    rows = [(k, f"{v:.2f} ms") for k, v in late.items() if isinstance(v, float | int)]
    return _table("Lateness of the open-model replay (sent minus scheduled)", rows)


LOADTEST_PICTURES = (
    Picture(
        "throughput",
        lambda lat: over_time_figure(
            lat, "count", "Requests (per second)", "Throughput by endpoint"
        ),
        "Requests completed per second, by endpoint.",
    ),
    Picture(
        "latency_p99",
        lambda lat: over_time_figure(
            lat, "p99_ms", "p99 latency (ms)", "p99 latency by endpoint, per second"
        ),
        "The 99th-percentile latency of each second, by endpoint, from HDR histograms.",
    ),
)


def build_loadtest_report(folder: Path) -> Path:
    """Write the load-test page and its figures into ``folder``; return the page's path."""
    folder = Path(folder)
    verdict = json.loads((folder / VERDICT_FILE).read_text(encoding="utf-8"))
    parts = [
        f"<h1>Cashless City load test: {_esc(verdict.get('name', folder.name))}</h1>",
        f'<div class="tables">{_verdict_tables(verdict)}</div>',
        "<h2>Replay lateness</h2>",
        _lateness(verdict),
        "<h2>Over time</h2>",
    ]
    if (folder / LATENCY_FILE).is_file():
        latency = pl.read_parquet(folder / LATENCY_FILE)
        for p in LOADTEST_PICTURES:
            path = save(p.build(latency), folder / FIGURES_DIR / f"{p.name}.png")
            parts.append(_figure(p, path))
    else:
        parts.append(_note("Per-second latency: not in this run (no latency.parquet)."))
    page = folder / REPORT_FILE
    page.write_text(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Load test</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n",
        encoding="utf-8",
    )
    return page


__all__ = ["build_loadtest_report", "is_loadtest_folder"]
