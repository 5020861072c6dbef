"""Run-report sections on city services: hospital minutes per visit, and inclusion.

Both read daily.parquet columns the model writes since treat-first-pay-later and cash
refusal arrived; a run without them gets a note naming the missing columns, not an
error. The published 52.7-minute saving (DOMAIN.md) is drawn and tabled beside the
simulated one, marked as a published figure.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reports.analysis import RunData
from reports.figures import _date_axis, _legend_or_note, _new_figure, _style, colour
from reports.htmlparts import MISSING, Row, count, note, number, table, tables

PUBLISHED_MINUTES_SAVED = 52.7
PUBLISHED_SOURCE = "published figure: treat first, pay later shortens a hospital visit"
MODES = {"paynow": "pay now (queue at the cashier)", "paylater": "treat first, pay later"}
HOSPITAL_COLUMNS = (
    "hospital_visits_paynow",
    "hospital_minutes_paynow_sum",
    "hospital_visits_paylater",
    "hospital_minutes_paylater_sum",
)
INCLUSION_COLUMNS = ("cannot_pay_elderly", "merchants_cash_only")


def _absent(run: RunData, columns: tuple[str, ...]) -> list[str]:
    return [c for c in columns if c not in run.daily.columns]


def minutes_per_visit(daily: pl.DataFrame) -> dict[str, tuple[int, float | None]]:
    """Per mode: visits over the run and mean minutes per visit (``None`` without visits)."""
    found = {}
    for mode in MODES:
        visits = int(daily[f"hospital_visits_{mode}"].sum())
        minutes = float(daily[f"hospital_minutes_{mode}_sum"].sum())
        found[mode] = (visits, minutes / visits if visits else None)
    return found


def minutes_saved(daily: pl.DataFrame) -> float | None:
    per_visit = minutes_per_visit(daily)
    now, later = per_visit["paynow"][1], per_visit["paylater"][1]
    return None if now is None or later is None else now - later


def has_hospital(run: RunData) -> bool:
    return not _absent(run, HOSPITAL_COLUMNS)


def has_inclusion(run: RunData) -> bool:
    return not _absent(run, INCLUSION_COLUMNS)


# -- figures ---------------------------------------------------------------------------


def hospital_figure(daily: pl.DataFrame) -> Figure:
    """Minutes saved per visit, simulated beside the published figure."""
    fig = _new_figure()
    ax = fig.axes[0]
    saved = minutes_saved(daily)
    if saved is not None:
        ax.bar([0], [saved], 0.6, color=colour(0), label="simulated")
        ax.text(0, saved, f"{saved:.1f}", ha="center", va="bottom", fontsize=11)
    ax.bar(
        [1],
        [PUBLISHED_MINUTES_SAVED],
        0.6,
        color=colour(6),
        hatch="//",
        edgecolor="#ffffff",
        label=f"published figure ({PUBLISHED_MINUTES_SAVED} min)",
    )
    ax.text(1, PUBLISHED_MINUTES_SAVED, f"{PUBLISHED_MINUTES_SAVED}", ha="center", va="bottom")
    ax.texts[-1].set_fontsize(11)
    ax.set_xticks([0, 1], ["simulated", "published figure"])
    _style(
        ax,
        "Hospital minutes saved per visit by treat first, pay later",
        "Source",
        "Minutes saved per visit (min)",
    )
    _legend_or_note(ax, "Minutes saved", True)
    return fig


def inclusion_figure(daily: pl.DataFrame) -> Figure:
    """Elderly residents turned away each day, and merchants still taking only cash."""
    fig = _new_figure(2)
    top, bottom = fig.axes
    frame = daily.sort("date")
    dates = frame["date"].to_numpy()
    top.plot(dates, frame["cannot_pay_elderly"].to_numpy(), color=colour(3), linewidth=2)
    top.plot([], [], color=colour(3), label="elderly who could not pay")
    # Two short panels: labels on two lines so they stay beside their own panel.
    _style(top, "Inclusion: who was left out", None, "Elderly unable\nto pay (per day)")
    cash_only = frame["merchants_cash_only"].to_numpy().astype(float)
    bottom.plot(dates, cash_only, color=colour(1), linewidth=2, label="merchants cash-only")
    bottom.set_ylim(0, max(1.0, float(np.nanmax(cash_only)) * 1.1) if cash_only.size else 1.0)
    turned_away = frame["cannot_pay_elderly"].to_numpy().astype(float)
    top.set_ylim(0, max(1.0, float(np.nanmax(turned_away)) * 1.1) if turned_away.size else 1.0)
    for ax in (top, bottom):  # people and shops come in whole numbers
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _style(bottom, None, "Date", "Cash-only\nmerchants (count)")
    _legend_or_note(top, "Residents", frame.height > 0)
    _legend_or_note(bottom, "Merchants", frame.height > 0)
    _date_axis(bottom)
    return fig


# -- sections --------------------------------------------------------------------------


def service_sections(run: RunData) -> list[str]:
    return [
        "<h2>Hospital minutes per visit</h2>",
        hospital_section(run),
        "<h2>Inclusion</h2>",
        inclusion_section(run),
    ]


def hospital_section(run: RunData) -> str:
    absent = _absent(run, HOSPITAL_COLUMNS)
    if absent:
        return note(f"Hospital visits: not in this run (daily.parquet has no {', '.join(absent)}).")
    per_visit = minutes_per_visit(run.daily)
    rows: list[Row] = [
        (MODES[mode], count(visits), _minutes(minutes))
        for mode, (visits, minutes) in per_visit.items()
    ]
    saved = minutes_saved(run.daily)
    rows.append(("saved per visit, simulated", MISSING, _minutes(saved)))
    published = _minutes(PUBLISHED_MINUTES_SAVED)
    rows.append((f"saved per visit, {PUBLISHED_SOURCE}", MISSING, published))
    head = ("way to pay", "visits", "minutes per visit")
    text = "" if saved is not None else note("No saving to show: a way to pay had no visits.")
    return tables(table("Hospital minutes per visit", rows, head)) + text


def _minutes(value: float | None) -> str:
    return MISSING if value is None else f"{number(value, 1)} min"


def inclusion_section(run: RunData) -> str:
    daily = run.daily.sort("date")
    rows: list[Row] = []
    if "cannot_pay_elderly" in daily.columns:
        per_day = daily["cannot_pay_elderly"]
        rows.append(("elderly who could not pay, over the run", count(per_day.sum())))
        rows.append(("elderly who could not pay, most in a day", count(per_day.max())))
        rows.append(("elderly who could not pay, last day", count(per_day[-1])))
    if "cannot_pay_total" in daily.columns:
        total = count(daily["cannot_pay_total"].sum())
        rows.append(("residents who could not pay, over the run", total))
    if "merchants_cash_only" in daily.columns:
        last = count(daily["merchants_cash_only"][-1])
        rows.append(("merchants still cash-only, last day", last))
    absent = ", ".join(_absent(run, (*INCLUSION_COLUMNS, "cannot_pay_total")))
    if not rows:
        return note(f"Who was left out: not in this run (daily.parquet has no {absent}).")
    missing = note(f"Not in this run: daily.parquet has no {absent}.") if absent else ""
    return tables(table("Who was left out", rows)) + missing
