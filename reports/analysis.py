"""Read a run folder and reduce it to the tables the report shows.

Segments and channels are discovered from column prefixes (``adopters_*``,
``population_*``, ``tx_*``) so a scenario that adds one needs no change here.
Percentiles interpolate linearly, as ``numpy.percentile`` does by default, so the
numbers agree with whatever a reader computes by hand from ``events.parquet``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

EVENTS_FILE = "events.parquet"
DAILY_FILE = "daily.parquet"
SUMMARY_FILE = "summary.json"
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}

# ``tx_declined`` counts QR attempts that failed; the customer then paid cash, so the
# same purchase is also in ``tx_cash``. Overlay channels are outcomes, not ways to pay:
# adding them to the purchase total would count those purchases twice.
OVERLAY_CHANNELS = frozenset({"declined"})
CASH_CHANNEL = "cash"


@dataclass(frozen=True)
class RunData:
    """Everything one run wrote that the report reads."""

    run_dir: Path
    events: pl.DataFrame
    daily: pl.DataFrame
    summary: dict[str, Any]


def load_run(run_dir: Path) -> RunData:
    """Load a run folder; a missing file is named together with how to produce it."""
    run_dir = Path(run_dir)
    for name in (EVENTS_FILE, DAILY_FILE, SUMMARY_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir}: no {name}; `cashless run SCENARIO --out {run_dir}` writes it"
            )
    summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    return RunData(
        run_dir=run_dir,
        events=pl.read_parquet(run_dir / EVENTS_FILE),
        daily=pl.read_parquet(run_dir / DAILY_FILE),
        summary=summary,
    )


def _latency_ms_exprs() -> list[pl.Expr]:
    ms = pl.col("latency_us").cast(pl.Float64) / 1_000.0
    return [ms.quantile(q, interpolation="linear").alias(k) for k, q in PERCENTILES.items()]


def latency_percentiles(events: pl.DataFrame) -> pl.DataFrame:
    """Per operation: call count, rejected count and p50/p95/p99 latency in ms.

    Rejected calls are kept in the percentiles: a refusal is a call the caller waited for.
    """
    return (
        events.group_by("operation")
        .agg(
            pl.len().cast(pl.Int64).alias("count"),
            (pl.col("status") != "ok").sum().cast(pl.Int64).alias("rejected"),
            *_latency_ms_exprs(),
        )
        .sort("operation")
    )


def overall_latency_ms(events: pl.DataFrame) -> dict[str, float]:
    """p50/p95/p99 latency in ms over every call; 0.0 each when there were no calls.

    Zero rather than NaN because the result goes into ``summary.json``, and NaN is
    not JSON.
    """
    if events.is_empty():
        return dict.fromkeys(PERCENTILES, 0.0)
    row = events.select(_latency_ms_exprs()).row(0, named=True)
    return {k: float(v) for k, v in row.items()}


def segments(daily: pl.DataFrame) -> list[str]:
    """Segments with both an ``adopters_`` and a ``population_`` column, in column order."""
    columns = set(daily.columns)
    found = [c.removeprefix("adopters_") for c in daily.columns if c.startswith("adopters_")]
    return [s for s in found if f"population_{s}" in columns]


def channels(daily: pl.DataFrame) -> list[str]:
    """Every ``tx_`` channel, in column order."""
    return [c.removeprefix("tx_") for c in daily.columns if c.startswith("tx_")]


def purchase_channels(daily: pl.DataFrame) -> list[str]:
    """Channels a purchase was paid through; together they count each purchase once."""
    return [c for c in channels(daily) if c not in OVERLAY_CHANNELS]


def adoption_shares(daily: pl.DataFrame) -> pl.DataFrame:
    """``date`` plus one column per segment: adopters / population, 0..1.

    A day with no population in a segment has a null share, not 0: nobody there
    could have adopted, so the curve shows a gap instead of a false drop.
    """
    shares = [
        pl.when(pl.col(f"population_{s}") > 0)
        .then(pl.col(f"adopters_{s}") / pl.col(f"population_{s}"))
        .otherwise(None)
        .cast(pl.Float64)
        .alias(s)
        for s in segments(daily)
    ]
    return daily.sort("date").select("date", *shares)


def channel_totals(daily: pl.DataFrame) -> pl.DataFrame:
    """Per channel: transactions over the run and their share of all purchases (0..1)."""
    names = channels(daily)
    counts = [int(daily[f"tx_{c}"].sum()) for c in names]
    purchases = sum(n for c, n in zip(names, counts, strict=True) if c not in OVERLAY_CHANNELS)
    shares = [n / purchases if purchases else None for n in counts]
    schema = {"channel": pl.Utf8, "transactions": pl.Int64, "share": pl.Float64}
    return pl.DataFrame({"channel": names, "transactions": counts, "share": shares}, schema=schema)


def daily_channels(daily: pl.DataFrame) -> pl.DataFrame:
    """``date``, one ``tx_`` column per channel and ``cash_share`` of the day's purchases.

    ``cash_share`` is null on a day without purchases and absent without a cash channel.
    """
    frame = daily.sort("date").select("date", *(f"tx_{c}" for c in channels(daily)))
    if CASH_CHANNEL not in purchase_channels(daily):
        return frame
    total = pl.sum_horizontal(*(f"tx_{c}" for c in purchase_channels(daily)))
    share = pl.when(total > 0).then(pl.col(f"tx_{CASH_CHANNEL}") / total).otherwise(None)
    return frame.with_columns(share.cast(pl.Float64).alias("cash_share"))


def amounts_by_operation(events: pl.DataFrame) -> pl.DataFrame:
    """Per operation that moves money: successful calls and their total ``amount_fen``.

    Only ``ok`` calls count: a rejected call moved nothing.
    """
    return (
        events.filter(pl.col("status") == "ok")
        .group_by("operation")
        .agg(pl.len().cast(pl.Int64).alias("calls"), pl.col("amount_fen").sum())
        .filter(pl.col("amount_fen") != 0)
        .sort("operation")
    )
