"""A small synthetic city trace (the columns `cashless run` writes to trace.parquet),
and a guard that no process starts."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
from pathlib import Path

import polars as pl
import pytest

TRACE_SCHEMA = {
    "time": pl.Datetime("us"),
    "day": pl.Int32,
    "agent_id": pl.Int64,
    "segment": pl.Utf8,
    "operation": pl.Utf8,
    "amount_fen": pl.Int64,
    "target_id": pl.Int64,
}
BUSY_DAY = 5
OPERATION_WEIGHTS = {"pay_merchant": 60, "top_up": 8, "upload_taps": 15, "deny_delta": 10,
                     "bind_card": 2, "register_resident": 2}


def trace_rows(day: int, count: int, seed: int) -> list[dict]:
    """``count`` calls of one day between 06:00 and 22:00, and a settlement at 23:30."""
    rng = random.Random(seed)
    midnight = dt.datetime(2017, 6, 15) + dt.timedelta(days=day)
    rows = []
    for _ in range(count):
        operation = rng.choices(list(OPERATION_WEIGHTS), list(OPERATION_WEIGHTS.values()))[0]
        bus = operation in ("upload_taps", "deny_delta")
        rows.append({
            "time": midnight + dt.timedelta(seconds=rng.uniform(6 * 3600, 22 * 3600)),
            "day": day, "agent_id": rng.randrange(6) if bus else rng.randrange(60),
            "segment": "bus" if bus else "adult", "operation": operation,
            "amount_fen": rng.randint(150, 3000) if operation in ("pay_merchant", "top_up") else 0,
            "target_id": rng.randrange(15) if operation == "pay_merchant" else None,
        })  # fmt: skip
    rows.append({"time": midnight + dt.timedelta(hours=23, minutes=30), "day": day,
                 "agent_id": 0, "segment": "platform", "operation": "close_settlement",
                 "amount_fen": 0, "target_id": None})
    return rows


def write_trace(folder: Path) -> Path:
    """A run folder whose trace has a quiet day 4 and a busy day 5."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = trace_rows(4, 40, seed=4) + trace_rows(BUSY_DAY, 400, seed=5)
    pl.DataFrame(rows, schema=TRACE_SCHEMA).write_parquet(folder / "trace.parquet")
    return folder


@pytest.fixture(scope="session")
def city_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder holding only a synthetic ``trace.parquet``."""
    return write_trace(tmp_path_factory.mktemp("city-run"))


@pytest.fixture
def nothing_may_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
