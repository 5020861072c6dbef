"""The event log: one row per platform call an agent makes, with its outcome.

Rows are kept column by column (cheap to append, one polars frame at the end).
Latency is wall-clock and differs between runs; everything else is seeded.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from platform_stub.exceptions import PlatformError

T = TypeVar("T")

EVENT_SCHEMA = {
    "time": pl.Datetime("us"),
    "day": pl.Int32,
    "agent_id": pl.Int64,
    "segment": pl.Utf8,
    "operation": pl.Utf8,
    "channel": pl.Utf8,
    "amount_fen": pl.Int64,
    "status": pl.Utf8,
    "error_code": pl.Utf8,
    "latency_us": pl.Int64,
    "target_id": pl.Int64,  # the other party's index (the merchant paid), for replays
}


@dataclass(frozen=True)
class Outcome:
    """What one platform call returned: its value, or the refusal's stable code."""

    value: Any
    error_code: str | None

    @property
    def ok(self) -> bool:
        return self.error_code is None


class EventLog:
    def __init__(self) -> None:
        self._cols: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA}

    def __len__(self) -> int:
        return len(self._cols["time"])

    def call(
        self,
        when: dt.datetime,
        day: int,
        agent_id: int,
        segment: str,
        operation: str,
        channel: str,
        amount_fen: int,
        fn: Callable[..., T],
        *args: Any,
        target_id: int | None = None,
    ) -> Outcome:
        """Make one platform call, time it, and record the outcome; refusals are data."""
        start_ns = time.perf_counter_ns()
        try:
            outcome = Outcome(fn(*args), None)
        except PlatformError as err:
            outcome = Outcome(None, err.code)
        latency_us = (time.perf_counter_ns() - start_ns) // 1_000
        row = (
            when,
            day,
            agent_id,
            segment,
            operation,
            channel,
            amount_fen,
            "ok" if outcome.ok else "rejected",
            outcome.error_code,
            latency_us,
            target_id,
        )
        for name, value in zip(self._cols, row, strict=True):
            self._cols[name].append(value)
        return outcome

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self._cols, schema=EVENT_SCHEMA)

    def write(self, path: Path) -> None:
        self.frame().write_parquet(path)
