"""Run folders built by hand: the same files `cashless run` writes, small and seeded.

The numbers are realistic in shape (lognormal latencies spanning two orders of
magnitude, adoption growing day by day, some rejected calls) so that a report that
merely runs without crashing is not mistaken for a correct one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from agents.recorder import EVENT_SCHEMA  # the schema runs write, not a copy of it

START = dt.date(2017, 6, 15)
DAYS = 8
POPULATION = {"youth": 120, "adult": 200, "elderly": 80, "merchant": 20}
# Per operation: (calls, median latency in microseconds); the spread makes log axes matter.
OPERATIONS = {
    "register_resident": (60, 900),
    "register_merchant": (20, 1_200),
    "bind_card": (50, 2_500),
    "top_up": (80, 4_000),
    "pay_merchant": (400, 300),
}
CHANNEL_OF = {"pay_merchant": "merchant_qr", "top_up": "bank_card", "bind_card": "bank_card"}


def make_events(seed: int = 7) -> pl.DataFrame:
    """Platform calls over ``DAYS`` days; one pay_merchant in ten is ``exceeds_credits``."""
    rng = np.random.default_rng(seed)
    frames = [_operation_events(rng, op, n, median) for op, (n, median) in OPERATIONS.items()]
    return pl.concat(frames).sort("time")


def _operation_events(rng: np.random.Generator, op: str, n: int, median: int) -> pl.DataFrame:
    day = rng.integers(0, DAYS, n)
    minute = rng.integers(6 * 60, 22 * 60, n)
    rejected = (rng.random(n) < 0.1) if op == "pay_merchant" else np.zeros(n, dtype=bool)
    moves_money = op in ("top_up", "pay_merchant")
    amount = rng.integers(100, 5_000, n) if moves_money else np.zeros(n, dtype=np.int64)
    minutes_since_start = (day * 24 * 60 + minute).astype("timedelta64[m]")
    data = {
        "time": (np.datetime64(START, "m") + minutes_since_start).astype("datetime64[us]"),
        "day": day,
        "agent_id": rng.integers(0, 400, n),
        "segment": rng.choice(["youth", "adult", "elderly"], n),
        "operation": [op] * n,
        "channel": [CHANNEL_OF.get(op, "app")] * n,
        "amount_fen": amount,
        "status": np.where(rejected, "rejected", "ok"),
        "error_code": [("exceeds_credits" if r else None) for r in rejected],
        "latency_us": np.maximum(1, median * rng.lognormal(0, 0.8, n)).astype(np.int64),
        "target_id": rng.integers(0, 20, n) if op == "pay_merchant" else [None] * n,
    }
    return pl.DataFrame(data, schema=EVENT_SCHEMA)


def make_daily(extra_segments: dict[str, int] | None = None) -> pl.DataFrame:
    """One row per day; adoption grows linearly from a tenth to most of each segment."""
    population = POPULATION | (extra_segments or {})
    rows = [_daily_row(day, population) for day in range(DAYS)]
    return pl.DataFrame(rows).with_columns(pl.col("day").cast(pl.Int32))


def _daily_row(day: int, population: dict[str, int]) -> dict[str, Any]:
    date = START + dt.timedelta(days=day)
    row: dict[str, Any] = {"date": date, "day": day, "weekday": date.strftime("%a")}
    for k, (segment, people) in enumerate(population.items()):
        row[f"population_{segment}"] = people
        row[f"adopters_{segment}"] = people * (1 + day * (k + 2)) // (DAYS * (k + 3))
    qr = 40 + 15 * day
    row |= {"tx_merchant_qr": qr, "tx_cash": 300 - qr + day % 3, "tx_declined": 2 + day % 4}
    return row | _service_columns(day)


# The daily.parquet columns of city services: hospital visits by way of paying (pay-now
# visits take 140 minutes, pay-later 88: 52 saved), who could not pay, cash-only shops.
SERVICE_COLUMNS = (
    "hospital_visits",
    "hospital_visits_paylater",
    "hospital_visits_paynow",
    "hospital_minutes_paylater_sum",
    "hospital_minutes_paynow_sum",
    "cannot_pay_elderly",
    "cannot_pay_total",
    "merchants_cash_only",
    "promo_cost_fen",
)


def _service_columns(day: int) -> dict[str, int]:
    later, now = 2 + day % 2, 3
    values = (later + now, later, now, 88 * later, 140 * now, day % 3, day % 3 + 1, 18 - day)
    return dict(zip(SERVICE_COLUMNS, (*values, 350 * (day % 2)), strict=True))


def make_summary(events: pl.DataFrame, daily: pl.DataFrame, **changes: Any) -> dict[str, Any]:
    """A ``summary.json`` consistent with ``events`` and ``daily``; ``changes`` overrides keys."""
    last = daily.row(-1, named=True)
    by_channel = {c[3:]: int(daily[c].sum()) for c in daily.columns if c.startswith("tx_")}
    residents = [s for s in POPULATION if s != "merchant"]
    latency_ms = events["latency_us"].to_numpy() / 1_000
    rejected = events.filter(pl.col("status") != "ok").height
    summary = {
        "scenario": "tiny",
        "seed": 20170615,
        "days": DAYS,
        "start_date": START.isoformat(),
        "population": {"residents": 400, "merchants": 20, "scale_factor": 25.0},
        "adoption": {
            "overall": sum(last[f"adopters_{s}"] for s in residents) / 400,
            "by_segment": {s: last[f"adopters_{s}"] / POPULATION[s] for s in POPULATION},
        },
        "transactions": {
            "count": by_channel["merchant_qr"] + by_channel["cash"],
            "by_channel": by_channel,
        },
        "platform_calls": {"count": events.height, "rejected": rejected},
        "latency_ms": {f"p{q}": float(np.percentile(latency_ms, q)) for q in (50, 95, 99)},
        "ledger": {"audit_ok": True, "transfer_count": 512, "account_count": 421, "checks": {}},
        "transit": {
            "taps": 300,
            "debt_fen": 1_234,
            "deny_list_size": 3,
            "taps_still_on_readers": 0,
            "reader_rejected_by_reason": {"card_denied": 2},
        },
    }
    return summary | changes


TAP_REASONS = ("insufficient_funds", "card_denied")


def make_taps(seed: int = 11, n: int = 300) -> pl.DataFrame:
    """Offline bus taps, as `cashless run` writes them: most cleared, some rejected."""
    from agents.daily import TAP_SCHEMA

    rng = np.random.default_rng(seed)
    rejected = rng.random(n) < 0.08
    tapped = rng.integers(0, DAYS * 86_400, n)
    lag = rng.integers(60, 8 * 3_600, n)
    data = {
        "day": (tapped // 86_400).astype(np.int32),
        "reader_id": [f"R{i}" for i in rng.integers(1, 30, n)],
        "reader_seq": np.arange(1, n + 1),
        "tap_id": [f"{i:032x}" for i in range(n)],
        "card_id": rng.integers(0, 400, n),
        "tapped_at_s": tapped,
        "uploaded_at_s": tapped + lag,
        "outcome": np.where(rejected, "rejected", "cleared"),
        "reason": [rng.choice(TAP_REASONS) if r else None for r in rejected],
        "fare_fen": np.full(n, 200),
        "wallet_fen": np.where(rejected, 0, 200),
        "credit_fen": np.zeros(n, dtype=np.int64),
        "promo_fen": np.zeros(n, dtype=np.int64),
        "first_reader_id": [None] * n,
        "lag_s": lag,
    }
    return pl.DataFrame(data, schema=TAP_SCHEMA)


def make_settlement() -> pl.DataFrame:
    """One window per day: the operator is paid the day's fares, a merchant its sales."""
    rows = []
    for day in range(DAYS):
        fares, sales = 10_000 + 100 * day, 50_000 + 1_000 * day
        rows += [
            (day + 1, "operator:1", "operator", 0, fares, fares, fares, day),
            (day + 1, "merchant:3", "merchant", 0, sales, sales, sales, day),
            (day + 1, "resident:9", "resident", fares + sales, 0, -fares - sales, 0, day),
        ]
    columns = ["window_id", "account", "kind", "debits_fen", "credits_fen", "net_fen"]
    return pl.DataFrame(rows, schema=[*columns, "payout_fen", "day"], orient="row")


RunFactory = Callable[..., Path]
"""The ``make_run`` fixture: ``make_run(name="run", daily=None, **summary_changes)``."""
