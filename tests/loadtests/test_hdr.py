"""Our latency histograms: exact where Locust buckets, mergeable across processes, bounded."""

from __future__ import annotations

import json

import pytest

from loadtests import hdr
from loadtests.hdr import Histograms, Recorder

T0 = 1_800_000_000.0  # an epoch second


def test_sub_millisecond_latencies_keep_their_value() -> None:
    """Locust would show 0 or 1 ms; the histogram keeps 3 significant digits."""
    recorder = Recorder()
    for value_us in (310, 320, 330, 340, 350):
        recorder.record("POST /v1/payments", value_us, False, T0)
    figures = Histograms.from_snapshots([recorder.take()]).figures()["POST /v1/payments"]
    assert figures.latency["p50_ms"] == pytest.approx(0.33, abs=0.001)
    assert figures.latency["max_ms"] == pytest.approx(0.35, abs=0.001)
    assert figures.latency["p99_ms"] <= figures.latency["max_ms"]


def test_snapshots_from_two_processes_add_up_to_one_recording() -> None:
    one, left, right = Recorder(), Recorder(), Recorder()
    for n in range(200):
        value_us, failed, at_s = 1_000 + 37 * n, n % 50 == 0, T0 + n / 40
        one.record("GET /v1/balance", value_us, failed, at_s)
        (left if n % 2 else right).record("GET /v1/balance", value_us, failed, at_s)
    alone = Histograms.from_snapshots([one.take()])
    merged = Histograms.from_snapshots([json.loads(json.dumps(left.take())), right.take()])
    assert merged.figures() == alone.figures()
    assert merged.per_second_rows() == alone.per_second_rows()
    assert merged.figures()["GET /v1/balance"].failures == 4


def test_take_hands_over_and_restarts() -> None:
    recorder = Recorder()
    recorder.record("GET /v1/balance", 1_000, False, T0)
    first, second = recorder.take(), recorder.take()
    assert [row[2] for row in first["totals"]] == [1]
    assert (second["totals"], second["seconds"]) == ([], [])


def test_each_second_gets_a_row_and_the_window_spans_the_run() -> None:
    recorder = Recorder()
    for second in range(5):
        for n in range(10):
            recorder.record("POST /v1/payments", 2_000 + n, n == 0, T0 + second + n / 10)
    merged = Histograms.from_snapshots([recorder.take()])
    rows = merged.per_second_rows()
    assert [r["second"] for r in rows] == [int(T0) + s for s in range(5)]
    assert {(r["count"], r["failures"]) for r in rows} == {(10, 1)}
    assert merged.window_s == pytest.approx(4.9)
    assert merged.figures()["POST /v1/payments"].requests_per_s == pytest.approx(50 / 4.9)


def test_a_straggler_for_a_sealed_second_is_added_to_it() -> None:
    recorder = Recorder()
    recorder.record("GET /v1/balance", 1_000, False, T0)
    recorder.record("GET /v1/balance", 1_000, False, T0 + 10)  # seals T0
    recorder.record("GET /v1/balance", 3_000, False, T0)
    rows = Histograms.from_snapshots([recorder.take()]).per_second_rows()
    assert [(r["second"], r["count"]) for r in rows] == [(int(T0), 2), (int(T0) + 10, 1)]


def test_past_the_cap_per_second_rows_are_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hdr, "SECONDS_KEPT_MAX", 3)
    recorder = Recorder()
    for second in range(5):
        recorder.record("GET /v1/balance", 1_000, False, T0 + second)
    merged = Histograms.from_snapshots([recorder.take()])
    assert len(merged.per_second_rows()) == 3
    assert merged.per_second_dropped == 2
    assert merged.figures()["GET /v1/balance"].count == 5  # totals go on


def test_values_past_a_minute_count_as_a_minute() -> None:
    recorder = Recorder()
    recorder.record("POST /v1/settlement/close", 10 * hdr.LATENCY_US_MAX, False, T0)
    figures = Histograms.from_snapshots([recorder.take()]).figures()
    assert figures["POST /v1/settlement/close"].latency["max_ms"] == pytest.approx(60_000, 0.001)


def test_kinds_are_kept_apart() -> None:
    recorder = Recorder()
    recorder.record("POST /v1/payments", 9_000, False, T0, "latency")
    recorder.record("POST /v1/payments", 1_000, False, T0, "service")
    merged = Histograms.from_snapshots([recorder.take()])
    for kind, max_ms in (("latency", 9), ("service", 1)):
        figures = merged.figures(kind)["POST /v1/payments"]
        assert figures.latency["max_ms"] == pytest.approx(max_ms, 0.01)
    assert merged.all_requests("lateness") is None
