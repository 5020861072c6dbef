"""The event log keeps a day's rows as tuples and seals each day into a polars frame."""

from __future__ import annotations

import datetime as dt

import polars as pl

from agents.daily import TAP_SCHEMA, tap_row
from agents.recorder import EVENT_SCHEMA, EventLog, SealedLog
from platform_stub.exceptions import Rejected

WHEN = dt.datetime(2017, 6, 15, 8, 30)


def _refuse() -> None:
    raise Rejected("exceeds_credits", "too little in the wallet")


def test_sealed_days_and_the_open_one_make_one_frame_in_order() -> None:
    log = SealedLog({"day": pl.Int32, "name": pl.Utf8, "amount_fen": pl.Int64})
    log.append((0, "a", 5))
    log.append((0, None, None))
    log.seal()
    log.seal()  # nothing open: no empty chunk
    log.append((1, "c", 2**40))

    assert len(log) == 3
    frame = log.frame()
    assert frame.schema == {"day": pl.Int32, "name": pl.Utf8, "amount_fen": pl.Int64}
    assert frame.rows() == [(0, "a", 5), (0, None, None), (1, "c", 2**40)]
    assert len(log) == 3  # frame() sealed the open row, it did not count it twice
    assert log.frame().equals(frame)


def test_an_empty_log_is_an_empty_frame_with_its_schema() -> None:
    frame = EventLog().frame()
    assert frame.height == 0
    assert frame.schema == EVENT_SCHEMA


def test_a_call_and_a_refusal_are_rows_with_their_outcome() -> None:
    log = EventLog()
    paid = log.call(WHEN, 3, 7, "youth", "pay_merchant", "merchant_qr", 1200, lambda: "ok")
    log.seal()
    refused = log.call(WHEN, 3, 8, "elderly", "pay_merchant", "merchant_qr", 900, _refuse)

    assert (paid.ok, refused.ok, refused.error_code) == (True, False, "exceeds_credits")
    rows = log.frame().drop("latency_us").rows(named=True)
    assert [(r["agent_id"], r["status"], r["error_code"]) for r in rows] == [
        (7, "ok", None),
        (8, "rejected", "exceeds_credits"),
    ]


def test_a_tap_row_takes_what_the_outcome_has_and_leaves_the_rest_null() -> None:
    class Partial:  # an outcome over HTTP may carry fewer fields
        reader_id, reader_seq, outcome, fare_fen = "R1", 4, "cleared", 200

    row = tap_row(Partial(), 2, tapped_at_s=1_000, uploaded_at_s=1_600)
    record = dict(zip(TAP_SCHEMA, row, strict=True))
    assert record["day"] == 2 and record["lag_s"] == 600
    assert (record["reader_id"], record["reader_seq"], record["fare_fen"]) == ("R1", 4, 200)
    assert record["tap_id"] is None and record["credit_fen"] is None
    assert record["tapped_at_s"] == 1_000
