"""The run report: one self-contained HTML page plus the PNGs beside it.

The page embeds every figure as a ``data:`` URI so it survives being mailed or
attached on its own; ``figures/*.png`` are written too, for slides and documents.
Every piece of text from the run goes through ``html.escape``: scenario names and
error codes come from files a user wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.figure import Figure

from reports.analysis import (
    OVERLAY_CHANNELS,
    SUMMARY_FILE,
    RunData,
    amounts_by_operation,
    clearing_lag_s,
    latency_percentiles,
    load_run,
    settlement_totals,
    tap_outcomes,
)
from reports.figures import (
    adoption_figure,
    channels_figure,
    lag_figure,
    latency_figure,
    save,
    taps_figure,
)
from reports.htmlparts import (
    CSS,
    MISSING,
    Marked,
    Row,
    format_rmb,
    page,
)
from reports.htmlparts import count as _count
from reports.htmlparts import esc as _esc
from reports.htmlparts import figure as _embed
from reports.htmlparts import note as _note
from reports.htmlparts import pct as _pct
from reports.htmlparts import table as _table
from reports.sections_calibration import calibration_section
from reports.sections_services import (
    PUBLISHED_MINUTES_SAVED,
    has_hospital,
    has_inclusion,
    hospital_figure,
    inclusion_figure,
    service_sections,
)

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
_CSS = CSS  # reports/loadtest.py builds its page from these names


@dataclass(frozen=True)
class Picture:
    """One figure of the report: how to build it from the run, and what it shows.

    ``needs_taps`` pictures are drawn only for runs that wrote ``taps.parquet``,
    ``needs`` pictures only for runs that have what it checks (daily columns).
    """

    name: str
    build: Callable[[RunData], Figure]
    caption: str
    needs_taps: bool = False
    needs: Callable[[RunData], bool] | None = None

    def applies(self, run: RunData) -> bool:
        has_taps = run.taps is not None or not self.needs_taps
        return has_taps and (self.needs is None or self.needs(run))


def _taps(run: RunData) -> pl.DataFrame:
    assert run.taps is not None, "a transit picture was built for a run without taps"
    return run.taps


PICTURES = (
    Picture(
        "adoption",
        lambda run: adoption_figure(run.daily),
        "Share of each segment that has adopted mobile payment, day by day. The dashed "
        "line is merchants: the share accepting the collection code. Black diamonds are "
        "published figures, where the run covers their date.",
    ),
    Picture(
        "latency",
        lambda run: latency_figure(run.events),
        "Wall-clock latency of platform calls by operation, rejected calls included. "
        "Latency is measured, not simulated: it varies between runs of the same seed.",
    ),
    Picture(
        "channels",
        lambda run: channels_figure(run.daily),
        "Purchases per day by how they were paid. Dashed lines are outcomes already "
        "inside the bars (a declined QR payment was then paid in cash). Below: the "
        "cash share of each day's purchases.",
    ),
    Picture(
        "taps",
        lambda run: taps_figure(_taps(run)),
        "Offline bus taps per day of the run, by how the platform cleared them: "
        "cleared, or rejected with the reason.",
        needs_taps=True,
    ),
    Picture(
        "clearing_lag",
        lambda run: lag_figure(_taps(run)),
        "Hours from a tap on a bus to its upload: how long the platform carries an "
        "offline fare it has not yet seen.",
        needs_taps=True,
    ),
    Picture(
        "hospital",
        lambda run: hospital_figure(run.daily),
        "Minutes a hospital visit is shorter when the patient is treated first and pays "
        "later, simulated (mean pay-now minus mean pay-later visit) beside the published "
        f"figure of {PUBLISHED_MINUTES_SAVED} minutes (hatched).",
        needs=has_hospital,
    ),
    Picture(
        "inclusion",
        lambda run: inclusion_figure(run.daily),
        "Above: elderly residents who tried to pay and could not, each day (no app at a "
        "merchant that refuses cash). Below: merchants still taking only cash.",
        needs=has_inclusion,
    ),
)


def build_run_report(run_dir: Path) -> Path:
    """Write ``figures/*.png`` and ``report.html`` into ``run_dir``; return the page's path.

    ``summary.json`` gains a ``report`` block naming the page and its figures.
    """
    run = load_run(Path(run_dir))
    figures_dir = run.run_dir / FIGURES_DIR
    drawn = [
        (p, save(p.build(run), figures_dir / f"{p.name}.png")) for p in PICTURES if p.applies(run)
    ]
    out = run.run_dir / REPORT_FILE
    out.write_text(render_page(run, drawn), encoding="utf-8")
    _note_report(run, [p for p, _ in drawn])
    return out


def _figure(picture: Picture, path: Path) -> str:
    return _embed(picture.name, path, picture.caption)


def _note_report(run: RunData, drawn: list[Picture]) -> None:
    summary = dict(run.summary)
    summary["report"] = {
        "page": REPORT_FILE,
        "figures": [f"{FIGURES_DIR}/{p.name}.png" for p in drawn],
    }
    text = json.dumps(summary, indent=2, default=str) + "\n"
    (run.run_dir / SUMMARY_FILE).write_text(text, encoding="utf-8")


def render_page(run: RunData, drawn: Iterable[tuple[Picture, Path]]) -> str:
    """The whole page as a string: header, summary tables, then the figures."""
    scenario = str(run.summary.get("scenario", run.run_dir.name))
    body = [
        _header(run.summary, scenario),
        "<h2>Summary</h2>",
        f'<div class="tables">{_summary_tables(run)}</div>',
        *_sections(run),
        "<h2>Figures</h2>",
        *(_figure(picture, path) for picture, path in drawn),
    ]
    return page(f"Cashless City: {scenario}", body)


def _ms(value: float | None) -> str:
    """Three decimals: latency is recorded in whole microseconds, so that is all there is."""
    return MISSING if value is None else f"{value:.3f} ms"


def _header(summary: Mapping[str, Any], scenario: str) -> str:
    population = summary.get("population", {})
    facts = [
        f"seed {summary.get('seed', MISSING)}",
        f"{summary.get('days', MISSING)} days from {summary.get('start_date', MISSING)}",
        f"{_count(population.get('residents'))} residents",
        f"{_count(population.get('merchants'))} merchants",
        f"scale factor {population.get('scale_factor', MISSING)}",
    ]
    return (
        f"<h1>Cashless City run: {_esc(scenario)}</h1>"
        f'<p class="meta">{" · ".join(_esc(f) for f in facts)}</p>'
    )


def _summary_tables(run: RunData) -> str:
    summary = run.summary
    return "".join(
        [
            _adoption_table(summary.get("adoption", {})),
            _transactions_table(summary.get("transactions", {})),
            _latency_table(summary.get("latency_ms", {}), summary.get("platform_calls", {})),
            _ledger_table(summary.get("ledger", {})),
            _money_table(amounts_by_operation(run.events)),
            _operations_table(latency_percentiles(run.events)),
        ]
    )


def _adoption_table(adoption: Mapping[str, Any]) -> str:
    rows = [("overall (residents)", _pct(adoption.get("overall")))]
    rows += [(s, _pct(v)) for s, v in adoption.get("by_segment", {}).items()]
    return _table("Adoption at the end of the run", rows)


def _transactions_table(transactions: Mapping[str, Any]) -> str:
    purchases = transactions.get("count")
    rows: list[Row] = [("purchases", _count(purchases), _pct(1.0 if purchases else None))]
    for channel, n in transactions.get("by_channel", {}).items():
        label = f"{channel} (already counted above)" if channel in OVERLAY_CHANNELS else channel
        rows.append((label, _count(n), _pct(n / purchases if purchases else None)))
    return _table("Purchases by channel", rows, ("channel", "count", "share"))


def _latency_table(latency: Mapping[str, float], calls: Mapping[str, Any]) -> str:
    rows = [(name, _ms(latency.get(name))) for name in ("p50", "p95", "p99")]
    if calls:
        rows += [("platform calls", _count(calls.get("count")))]
        rows += [("rejected calls", _count(calls.get("rejected")))]
    return _table("Platform latency", rows)


def audit_result(ledger: Mapping[str, Any]) -> str:
    """``passed``, ``FAILED``, or why there was no audit (a remote ledger is not ours to read)."""
    ok = ledger.get("audit_ok")
    if ok is None:
        return f"not run: {ledger.get('note', 'no audit in this run')}"
    return "passed" if ok else "FAILED"


def _ledger_table(ledger: Mapping[str, Any]) -> str:
    css = {True: "ok", False: "bad"}.get(ledger.get("audit_ok"), "")
    rows: list[Row] = [("audit", Marked(audit_result(ledger), css))]
    rows.append(("transfers", _count(ledger.get("transfer_count"))))
    checks = ledger.get("checks", {})
    rows += [
        (f"failed check: {name}", check.get("detail", ""))
        for name, check in checks.items()
        if not check.get("ok", True)
    ]
    return _table("Ledger", rows)


def _money_table(amounts: pl.DataFrame) -> str:
    rows = [
        (row["operation"], _count(row["calls"]), format_rmb(row["amount_fen"]))
        for row in amounts.iter_rows(named=True)
    ]
    return _table("Money moved by successful calls", rows, ("operation", "calls", "amount"))


def _operations_table(table: pl.DataFrame) -> str:
    rows = [
        (
            r["operation"],
            _count(r["count"]),
            _count(r["rejected"]),
            *(_ms(r[p]) for p in ("p50", "p95", "p99")),
        )
        for r in table.iter_rows(named=True)
    ]
    head = ("operation", "calls", "rejected", "p50", "p95", "p99")
    return _table("Latency by operation", rows, head)


def _sections(run: RunData) -> list[str]:
    """The sections after the summary; each says so when the run lacks its data."""
    return [
        "<h2>Offline bus taps</h2>",
        _transit_section(run),
        "<h2>Debt and losses</h2>",
        _debt_section(run),
        "<h2>Settlement</h2>",
        _settlement_section(run),
        *service_sections(run),
        *calibration_section(run.run_dir),
    ]


def _transit_section(run: RunData) -> str:
    if run.taps is None:
        return _note("Offline taps are not in this run (no taps.parquet).")
    rows = [
        (
            r["outcome"] if r["reason"] is None else f"{r['outcome']}: {r['reason']}",
            _count(r["taps"]),
            format_rmb(r["fare_fen"] or 0),
        )
        for r in tap_outcomes(run.taps).iter_rows(named=True)
    ]
    outcomes = _table("Taps by clearing outcome", rows, ("outcome", "taps", "fares"))
    lag = clearing_lag_s(run.taps)
    lag_rows = [(k, _hours(v)) for k, v in lag.items()]
    lags = _table("Clearing lag, tap to upload", lag_rows)
    return f'<div class="tables">{outcomes}{lags}</div>'


def _hours(seconds: float | None) -> str:
    return MISSING if seconds is None else f"{seconds / 3600:.2f} h"


def _debt_section(run: RunData) -> str:
    transit = run.summary.get("transit")
    if not transit:
        return _note("Debt and losses are not in this run (no transit block in summary.json).")
    lost_fen = 0
    if run.taps is not None:
        rejected = run.taps.filter(pl.col("outcome") == "rejected")
        lost_fen = int(rejected["fare_fen"].sum() or 0)
    debt = transit.get("debt_fen")
    rows: list[Row] = [
        ("riders' debt to the platform", MISSING if debt is None else format_rmb(debt)),
        ("fares of rejected taps (lost)", format_rmb(lost_fen)),
        ("cards on the deny list", _count(transit.get("deny_list_size"))),
        ("taps still on readers", _count(transit.get("taps_still_on_readers"))),
    ]
    for reason, n in transit.get("reader_rejected_by_reason", {}).items():
        rows.append((f"refused at the reader: {reason}", _count(n)))
    return f'<div class="tables">{_table("Debt and losses", rows)}</div>'


def _settlement_section(run: RunData) -> str:
    if run.settlement is None or run.settlement.is_empty():
        return _note("Settlement is not in this run (no settlement.parquet).")
    rows = [
        (
            r["kind"],
            _count(r["windows"]),
            *(format_rmb(r[c]) for c in ("debits_fen", "credits_fen", "net_fen", "payout_fen")),
        )
        for r in settlement_totals(run.settlement).iter_rows(named=True)
    ]
    head = ("account kind", "windows", "debits", "credits", "net", "payout")
    return f'<div class="tables">{_table("Settlement totals", rows, head)}</div>'
