"""Judging a run folder the runner did not start (Locust run by hand, on several machines)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from loadtests.hdr import Histograms, Recorder
from loadtests.results import main

T0 = 1_800_000_000.0


def write_histograms(folder: Path, latency_us: int) -> None:
    recorder = Recorder()
    for n in range(50):
        recorder.record("POST /v1/payments", latency_us, False, T0 + n / 10)
    snapshot = Histograms.from_snapshots([recorder.take()]).snapshot()
    (folder / "histograms.json").write_text(json.dumps(snapshot))


def test_a_folder_within_its_levels_passes_and_gets_its_latency_table(tmp_path: Path) -> None:
    write_histograms(tmp_path, 3_000)
    assert main([str(tmp_path)]) == 0
    table = pl.read_parquet(tmp_path / "latency.parquet")
    assert table["count"].sum() == 50
    assert table["p99_ms"].max() == pytest.approx(3.0, rel=0.01)  # 2 digits per second


def test_a_breached_level_fails_the_folder_and_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_histograms(tmp_path, 3_000)
    slo = tmp_path / "tight.toml"
    slo.write_text('[endpoints."POST /v1/payments"]\np50_ms = 1\n')
    assert main([str(tmp_path), "--slo", str(slo)]) == 1
    assert "service level breached: POST /v1/payments: p50_ms 3.001 > 1" in capsys.readouterr().err


def test_a_folder_without_histograms_fails(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 1
