"""Read a run folder and reduce it to the tables the report shows.

Segments and channels are discovered from column prefixes (``adopters_*``,
``population_*``, ``tx_*``) so a scenario that adds one needs no change here.
Percentiles interpolate linearly, as ``numpy.percentile`` does by default, so the
numbers agree with whatever a reader computes by hand from ``events.parquet``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

EVENTS_FILE = "events.parquet"
DAILY_FILE = "daily.parquet"
SUMMARY_FILE = "summary.json"
# Written by every run since offline transit arrived; an older run folder lacks them and
# its report says so instead of failing.
TAPS_FILE = "taps.parquet"
SETTLEMENT_FILE = "settlement.parquet"
PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}

# ``tx_declined`` and ``tx_failed_online`` count app attempts that failed; the customer
# then paid another way, so the same purchase is also in that way's column.
# ``tx_cannot_pay`` counts residents turned away (no app, merchant refuses cash).
# Overlay channels are outcomes, not ways to pay: adding them to the purchase total
# would count purchases twice, or count ones that never happened.
OVERLAY_CHANNELS = frozenset({"declined", "failed_online", "cannot_pay"})
CASH_CHANNEL = "cash"


@dataclass(frozen=True)
class RunData:
    """Everything one run wrote that the report reads."""

    run_dir: Path
    events: pl.DataFrame
    daily: pl.DataFrame
    summary: dict[str, Any]
    taps: pl.DataFrame | None = None
    settlement: pl.DataFrame | None = None


# Published figures (DOMAIN.md) that can be drawn on the adoption chart: the share of
# Wuhan's buses accepting the QR code, the nearest thing to merchant adoption on record.
PUBLISHED_ADOPTION = (
    (dt.date(2017, 7, 15), 0.60, "buses accepting QR, Wuhan (published)"),
    (dt.date(2017, 10, 14), 1.00, "buses accepting QR, Wuhan (published)"),
)


def published_marks(daily: pl.DataFrame) -> list[tuple[dt.date, float, str]]:
    """The published adoption figures whose date falls within the run's days."""
    if daily.is_empty():
        return []
    first, last = daily["date"].min(), daily["date"].max()
    return [mark for mark in PUBLISHED_ADOPTION if first <= mark[0] <= last]


def _optional_parquet(path: Path) -> pl.DataFrame | None:
    return pl.read_parquet(path) if path.is_file() else None


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
        taps=_optional_parquet(run_dir / TAPS_FILE),
        settlement=_optional_parquet(run_dir / SETTLEMENT_FILE),
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


def tap_outcomes(taps: pl.DataFrame) -> pl.DataFrame:
    """Per outcome and reason (null for cleared taps): taps and their fares in fen."""
    return (
        taps.group_by("outcome", "reason")
        .agg(pl.len().cast(pl.Int64).alias("taps"), pl.col("fare_fen").sum().alias("fare_fen"))
        .sort("outcome", "reason", nulls_last=False)
    )


def clearing_lag_s(taps: pl.DataFrame) -> dict[str, float | None]:
    """p50/p95/p99 and max of the lag between a tap and its upload, in seconds."""
    lag = taps["lag_s"].cast(pl.Float64)
    if lag.is_empty():
        return dict.fromkeys([*PERCENTILES, "max"])
    found: dict[str, float | None] = {
        k: float(lag.quantile(q, interpolation="linear")) for k, q in PERCENTILES.items()
    }
    return found | {"max": float(lag.max())}


def daily_tap_outcomes(taps: pl.DataFrame) -> pl.DataFrame:
    """``day`` plus one column of taps per outcome label (``cleared``, ``rejected: why``)."""
    label = (
        pl.when(pl.col("reason").is_null())
        .then(pl.col("outcome"))
        .otherwise(pl.col("outcome") + ": " + pl.col("reason"))
    )
    counted = taps.with_columns(label.alias("label")).group_by("day", "label").len()
    if counted.is_empty():
        return pl.DataFrame({"day": []}, schema={"day": pl.Int64})
    wide = counted.pivot("label", index="day", values="len").sort("day").fill_null(0)
    labels = sorted(c for c in wide.columns if c != "day")
    return wide.select("day", *labels)


def settlement_totals(settlement: pl.DataFrame) -> pl.DataFrame:
    """Per account kind: windows, summed debits, credits, net and payout, all in fen."""
    return (
        settlement.group_by("kind")
        .agg(
            pl.col("window_id").n_unique().cast(pl.Int64).alias("windows"),
            *(pl.col(c).sum() for c in ("debits_fen", "credits_fen", "net_fen", "payout_fen")),
        )
        .sort("kind")
    )


def calibration_table(
    published: Mapping[str, float], simulated: Mapping[str, float | None]
) -> pl.DataFrame:
    """Per published figure: its value, the simulated one, the error and relative error.

    A figure the run did not simulate keeps its row with nulls: a gap in calibration
    should be visible, not dropped.
    """
    rows = []
    for name, value in published.items():
        sim = simulated.get(name)
        error = None if sim is None else sim - value
        relative = None if error is None or value == 0 else error / value
        rows.append((name, float(value), sim, error, relative))
    schema = {
        "figure": pl.Utf8,
        "published": pl.Float64,
        "simulated": pl.Float64,
        "error": pl.Float64,
        "relative_error": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
