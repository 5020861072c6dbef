"""reports.html: one self-contained page that states the run's headline results."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import polars as pl
import pytest

from reports import build_run_report
from reports.html import PICTURES, audit_result, format_rmb
from tests.reports.rundata import RunFactory, make_daily, make_events

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EMBEDDED_PNG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def test_report_writes_the_page_and_every_figure_beside_it(run_dir: Path) -> None:
    page = build_run_report(run_dir)
    assert page == run_dir / "report.html"
    for picture in PICTURES:
        png = run_dir / "figures" / f"{picture.name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000


def test_page_embeds_each_figure_byte_for_byte(run_dir: Path) -> None:
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    embedded = [base64.b64decode(data) for data in EMBEDDED_PNG.findall(text)]
    on_disk = [(run_dir / "figures" / f"{p.name}.png").read_bytes() for p in PICTURES]
    assert embedded == on_disk
    assert text.count("<figcaption>") == len(PICTURES)


def test_page_needs_nothing_but_itself(run_dir: Path) -> None:
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert "<script" not in text


def test_page_states_scenario_seed_and_headline_numbers(run_dir: Path) -> None:
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    assert "<h1>Cashless City run: tiny</h1>" in text
    assert "seed 20170615" in text and "400 residents" in text
    assert '<td class="num ok">passed</td>' in text
    assert '<th>transfers</th><td class="num">512</td>' in text
    p99 = json.loads((run_dir / "summary.json").read_text())["latency_ms"]["p99"]
    assert f'<th>p99</th><td class="num">{p99:.3f} ms</td>' in text


def test_adoption_rows_show_percent_of_each_segment(run_dir: Path) -> None:
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    last = make_daily().row(-1, named=True)
    youth = 100 * last["adopters_youth"] / last["population_youth"]
    assert f'<th>youth</th><td class="num">{youth:.1f}%</td>' in text


def test_money_is_shown_in_rmb_from_integer_fen(run_dir: Path) -> None:
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    events = make_events()
    paid = events.filter((pl.col("operation") == "pay_merchant") & (pl.col("status") == "ok"))
    assert format_rmb(paid["amount_fen"].sum()) in text


def test_a_failed_audit_is_marked_and_names_the_broken_check(make_run: RunFactory) -> None:
    checks = {
        "debits_equal_credits": {"ok": True, "detail": ""},
        "balances_match_transfers": {"ok": False, "detail": "wallet:7 off by 1 fen"},
    }
    ledger = {"audit_ok": False, "transfer_count": 9, "checks": checks}
    text = build_run_report(make_run(ledger=ledger)).read_text(encoding="utf-8")
    assert '<td class="num bad">FAILED</td>' in text
    assert "failed check: balances_match_transfers" in text and "wallet:7 off by 1 fen" in text
    assert "debits_equal_credits" not in text


def test_a_remote_ledger_says_why_there_was_no_audit(make_run: RunFactory) -> None:
    ledger = {"audit_ok": None, "transfer_count": None, "note": "ledger is on the remote server"}
    text = build_run_report(make_run(ledger=ledger)).read_text(encoding="utf-8")
    assert "not run: ledger is on the remote server" in text
    assert "passed" not in text and "FAILED" not in text


def test_text_from_the_run_is_escaped(make_run: RunFactory) -> None:
    text = build_run_report(make_run(scenario='<script>alert("x")</script>')).read_text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text


def test_a_new_segment_reaches_the_page_without_code_changes(make_run: RunFactory) -> None:
    run_dir = make_run(daily=make_daily({"student": 40}))
    text = build_run_report(run_dir).read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == len(PICTURES)


def test_report_of_an_incomplete_run_names_the_missing_file(run_dir: Path) -> None:
    (run_dir / "events.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"events\.parquet"):
        build_run_report(run_dir)
    assert not (run_dir / "report.html").exists()


def test_a_second_build_replaces_the_first(run_dir: Path) -> None:
    first = build_run_report(run_dir).read_text(encoding="utf-8")
    assert build_run_report(run_dir).read_text(encoding="utf-8") == first


@pytest.mark.parametrize(
    ("amount_fen", "shown"),
    [(0, "¥0.00"), (5, "¥0.05"), (350, "¥3.50"), (123_456, "¥1,234.56"), (-1_001, "-¥10.01")],
)
def test_format_rmb_is_exact_integer_arithmetic(amount_fen: int, shown: str) -> None:
    assert format_rmb(amount_fen) == shown


def test_format_rmb_does_not_round_through_float() -> None:
    # 2**53 + 1 fen is not a float; float division would print ...992.00 instead.
    assert format_rmb(2**53 + 1) == "¥90,071,992,547,409.93"


@pytest.mark.parametrize(
    ("ledger", "result"),
    [({"audit_ok": True}, "passed"), ({"audit_ok": False}, "FAILED"), ({}, "not run")],
)
def test_audit_result_reads_the_ledger_section(ledger: dict, result: str) -> None:
    assert audit_result(ledger).startswith(result)
