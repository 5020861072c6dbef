"""A load test's outcome for a terminal: HDR figures per endpoint and the checks' verdicts."""

from __future__ import annotations

from rich.table import Table

from loadtests.runner import LoadtestResult

COLUMNS = ("requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms")


def summary_table(result: LoadtestResult, kind: str = "latency") -> Table:
    """One row per endpoint from our histograms; the caption carries audit and taps."""
    bound = f"{result.duration_s:g} s"
    if result.requests_max:
        bound = f"{result.requests_max:,} requests or {bound} (stopped by {result.stopped_by})"
    table = Table(title=f"Load test {result.name}: {result.users} users, {bound}, "
                        f"{result.workers} worker(s)",
                  caption=_caption(result))
    table.add_column("endpoint", no_wrap=True)
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for endpoint, f in result.latency_ms.get(kind, {}).items():
        table.add_row(
            endpoint, f"{f['count']:,}", f"{f['failures']:,}", f"{f['requests_per_s']:.1f}",
            *(f"{f.get(key, 0):.2f}" for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        )
    return table


def _caption(result: LoadtestResult) -> str:
    audit = {True: "passed", False: "FAILED", None: "not run (remote platform)"}[
        result.audit.get("audit_ok") if result.audit else None
    ]
    parts = [f"ledger audit {audit}"]
    if result.taps:
        parts.append(f"taps uploaded {result.taps['uploaded']:,}, lost {result.taps['lost']:,}")
    late = result.replay.get("lateness_ms", {})
    if late:
        parts.append(f"replay lateness p99 {late['p99_ms']:.1f} ms, max {late['max_ms']:.1f} ms")
    return "; ".join(parts)
