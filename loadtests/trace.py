"""A simulated city's platform calls (``trace.parquet`` of a run folder) as load.

``cashless run`` writes one row per platform call an agent made: simulated time,
day, agent, segment, operation, amount and counterparty (``target_id``, the
merchant paid). Two uses here: the ``cityday`` load shape follows the number of
calls per slice of a day (:func:`day_profile`), and the open-model replay sends the
day's calls themselves at their own times (:func:`plan_day`), with one simulated
day compressed into the run time (a day in 60 s is a speed-up of 1,440). The default
day is the busiest: the most payments and tap uploads.

Replayed operations are the ones a running city repeats (payments, top-ups, tap
uploads, deny-list fetches, settlement, new residents and merchants); set-up calls
tied to an identity the replay made beforehand (card bindings, bus cards, readers)
are skipped and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

TRACE_FILE = "trace.parquet"
TRACE_COLUMNS = ("time", "day", "agent_id", "segment", "operation", "amount_fen", "target_id")
DAY_S = 86_400
REPLAYED = (
    "pay_merchant",
    "top_up",
    "upload_taps",
    "deny_delta",
    "close_settlement",
    "register_resident",
    "register_merchant",
)
BUSY_OPERATIONS = ("pay_merchant", "upload_taps")  # what makes a day busy
REQUESTS_MAX = 1_000_000  # one replay; a busier day is cut at this many calls


@dataclass(frozen=True)
class Planned:
    """One call to make ``at_s`` seconds after the replay starts."""

    at_s: float
    operation: str
    agent_id: int
    target_id: int | None
    amount_fen: int


@dataclass
class Plan:
    day: int
    speedup: float
    calls: list[Planned]
    skipped: dict[str, int] = field(default_factory=dict)  # by operation
    cut: int = 0  # calls past REQUESTS_MAX


def trace_file(path: Path | str) -> Path:
    """The trace of a run folder, or the file itself; ValueError when there is none."""
    path = Path(path)
    found = path / TRACE_FILE if path.is_dir() else path
    if not found.is_file():
        raise ValueError(f"no trace at {found}: give a run folder of `cashless run` or its "
                         f"{TRACE_FILE}")
    return found


def read_trace(path: Path | str) -> pl.DataFrame:
    frame = pl.read_parquet(trace_file(path))
    missing = [c for c in TRACE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: trace lacks columns {', '.join(missing)}")
    return frame


def busiest_day(frame: pl.DataFrame) -> int:
    """The day with the most payments and tap uploads, earliest on ties (day 0's burst of
    registrations is not a busy day of the city's life)."""
    busy = frame.filter(pl.col("operation").is_in(BUSY_OPERATIONS))
    counts = (busy if not busy.is_empty() else frame).group_by("day").len()
    if counts.is_empty():
        raise ValueError("the trace has no rows")
    return int(counts.sort(["len", "day"], descending=[True, False])["day"][0])


def day_rows(frame: pl.DataFrame, day: int | None) -> tuple[int, pl.DataFrame]:
    """The day's rows in time order with ``offset_s``, seconds since that day's midnight."""
    chosen = busiest_day(frame) if day is None else day
    rows = frame.filter(pl.col("day") == chosen).sort("time", maintain_order=True)
    if rows.is_empty():
        raise ValueError(f"the trace has no rows on day {chosen}")
    midnight = pl.col("time").dt.truncate("1d")
    offset = (pl.col("time") - midnight).dt.total_microseconds() / 1e6
    return chosen, rows.with_columns(offset.alias("offset_s"))


def day_profile(path: Path | str, day: int | None, bins: int) -> list[float]:
    """Calls per slice of the day (``bins`` equal slices), scaled so the busiest is 1."""
    _, rows = day_rows(read_trace(path), day)
    slices = (rows["offset_s"] * bins / DAY_S).cast(pl.Int64).clip(0, bins - 1)
    counts = Counter(slices.to_list())
    peak = max(counts.values())
    return [counts.get(i, 0) / peak for i in range(bins)]


def plan_day(path: Path | str, day: int | None, duration_s: float) -> Plan:
    """The day's replayable calls, with the day's 24 hours compressed into ``duration_s``."""
    chosen, rows = day_rows(read_trace(path), day)
    speedup = DAY_S / duration_s
    replayed = rows.filter(pl.col("operation").is_in(REPLAYED))
    skipped = Counter(rows.filter(~pl.col("operation").is_in(REPLAYED))["operation"].to_list())
    calls = [
        Planned(r["offset_s"] / speedup, r["operation"], r["agent_id"], r["target_id"],
                r["amount_fen"] or 0)
        for r in replayed.head(REQUESTS_MAX).iter_rows(named=True)
    ]
    return Plan(chosen, speedup, calls, dict(sorted(skipped.items())),
                max(0, replayed.height - REQUESTS_MAX))
