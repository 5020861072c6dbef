"""The event log: one row per platform call an agent makes, with its outcome.

Rows are kept as a :class:`SealedLog`: the open day's as tuples (cheap to append),
each closed day's sealed into a polars frame (about a third of the memory of Python
lists of the same values, a seventh of dicts), so a long run's memory grows with what
it recorded, not with Python objects per value. Latency is wall-clock and differs
between runs; everything else is seeded.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from platform_stub.exceptions import PlatformError
from platform_stub.frozen import frozen

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


@frozen
class Outcome:
    """What one platform call returned: its value, or the refusal's stable code."""

    value: Any
    error_code: str | None

    @property
    def ok(self) -> bool:
        return self.error_code is None


class SealedLog:
    """Rows of one schema: the open ones as tuples in schema order, the earlier ones
    sealed into polars frames (``seal``, once a simulated day); ``frame`` is all of them."""

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.schema = schema
        self._open: list[tuple] = []
        self._sealed: list[pl.DataFrame] = []
        self._sealed_rows = 0

    def __len__(self) -> int:
        return self._sealed_rows + len(self._open)

    def append(self, row: tuple) -> None:
        self._open.append(row)

    def seal(self) -> None:
        """Turn the open rows into a frame (a day of a big city: ~100 ms, 75 B a row)."""
        if self._open:
            chunk = pl.DataFrame(self._open, schema=self.schema, orient="row")
            self._sealed.append(chunk)
            self._sealed_rows += chunk.height
            self._open = []

    def frame(self) -> pl.DataFrame:
        self.seal()
        if not self._sealed:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(self._sealed, rechunk=False)


class EventLog(SealedLog):
    def __init__(self) -> None:
        super().__init__(EVENT_SCHEMA)

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
        self.append((
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
        ))
        return outcome

    def write(self, path: Path) -> None:
        self.frame().write_parquet(path)
