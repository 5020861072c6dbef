"""reports.loadtest: a load-test folder gets throughput, percentiles, verdict and lateness."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from reports.loadtest import LOADTEST_PICTURES, build_loadtest_report, over_time_figure
from scenarios.cli import app

ENDPOINTS = ("POST /v1/payments", "GET /v1/balance")


def make_latency(seconds: int = 20) -> pl.DataFrame:
    start = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
    rows = [
        (
            "latency",
            e,
            1_000 + s,
            start + dt.timedelta(seconds=s),
            10 + s + 5 * i,
            0,
            1.0 + i,
            2.0,
            3.0,
            4.0 + s / 10,
            5.0,
            6.0,
            1.5,
        )
        for s in range(seconds)
        for i, e in enumerate(ENDPOINTS)
    ]
    columns = [
        "kind",
        "endpoint",
        "second",
        "time",
        "count",
        "failures",
        "p50_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "mean_ms",
    ]
    return pl.DataFrame(rows, schema=columns, orient="row")


def write_folder(folder: Path, **verdict: object) -> Path:
    folder.mkdir()
    make_latency().write_parquet(folder / "latency.parquet")
    levels = {
        e: {
            "count": 300,
            "requests_per_s": 15.0,
            "p50_ms": 1.0,
            "p95_ms": 3.0,
            "p99_ms": 4.25,
            "max_ms": 6.0,
        }
        for e in ENDPOINTS
    }
    base = {
        "name": "cityday",
        "passed": False,
        "reasons": ["p99 of POST /v1/payments 4.25 ms"],
        "breaches": [],
        "total_requests": 600,
        "total_failures": 0,
        "latency_ms": {"latency": levels},
        "replay": {"lateness_ms": {"p99_ms": 12.5, "max_ms": 40.0}},
    }
    (folder / "loadtest.json").write_text(json.dumps(base | verdict))
    return folder


def test_loadtest_page_states_verdict_levels_and_lateness(tmp_path: Path) -> None:
    text = build_loadtest_report(write_folder(tmp_path / "lt")).read_text()
    assert '<th>verdict</th><td class="num">FAILED</td>' in text
    assert "p99 of POST /v1/payments 4.25 ms" in text
    assert '<td class="num">4.25 ms</td>' in text
    assert '<th>p99_ms</th><td class="num">12.50 ms</td>' in text
    assert text.count("data:image/png;base64,") == len(LOADTEST_PICTURES)


def test_a_run_without_replay_or_latency_file_says_so(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "lt", replay={}, passed=True)
    (folder / "latency.parquet").unlink()
    text = build_loadtest_report(folder).read_text()
    assert '<th>verdict</th><td class="num">passed</td>' in text
    assert "no open-model replay" in text and "no latency.parquet" in text


def test_throughput_figure_draws_one_labelled_line_per_endpoint() -> None:
    fig = over_time_figure(make_latency(), "count", "Requests (per second)", "Throughput")
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(ENDPOINTS)
    assert ax.get_title(loc="left") and ax.get_xlabel() and "(" in ax.get_ylabel()
    payments = [ln for ln in ax.get_lines() if ln.get_label() == "POST /v1/payments"][0]
    assert list(payments.get_ydata()) == [10 + s for s in range(20)]


def test_cli_report_picks_the_loadtest_report_for_a_loadtest_folder(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "lt")
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert "load test: cityday" in (folder / "report.html").read_text()
    assert (folder / "figures" / "throughput.png").is_file()
