"""The comparison report: scenarios side by side with bands across seeds (compare.html).

Figures follow reports/figures.py: a titled ``Figure`` per picture, labelled axes
with units, the Okabe-Ito palette (a colour per scenario, the reference first),
no pyplot state. Each line is the mean over seeds; the shaded band (error bars on
bar charts) is ``scenarios.compare.BAND_RULE``; a scenario with one seed has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import ConciseDateFormatter, DayLocator
from matplotlib.figure import Figure

from reports.figures import DPI, _date_axis, _legend, _new_figure, _style, colour, save
from reports.htmlparts import esc, figure, note, page, table, tables
from reports.sections_services import PUBLISHED_MINUTES_SAVED
from scenarios.compare import (
    BAND_RULE,
    TEST_RULE,
    Comparison,
    differences,
    scalar_bands,
    series_bands,
    significant,
)
from scenarios.compare_metrics import metric_info

COMPARE_FILE = "compare.html"
FIGURES_DIR = "figures"
BAND_ALPHA = 0.22
GRID_FIGSIZE_IN = (8.0, 6.0)
DAY_TICKS_SPAN_MAX = 60


def _labels(comparison: Comparison) -> list[str]:
    return [g.label for g in comparison.groups]


def _band_lines(ax: Axes, bands: pl.DataFrame, labels: list[str], metric: str) -> bool:
    """One mean line per scenario with its band; ``True`` when anything was drawn."""
    scale = metric_info(metric).scale
    drawn = False
    for i, label in enumerate(labels):
        rows = bands.filter((pl.col("group") == label) & (pl.col("metric") == metric))
        if rows.is_empty():
            continue
        dates = rows["date"].to_numpy()
        ax.plot(dates, rows["mean"].to_numpy() * scale, color=colour(i), linewidth=2, label=label)
        if rows["lo"].is_not_null().any():
            lo, hi = (rows[c].fill_null(np.nan).to_numpy() * scale for c in ("lo", "hi"))
            ax.fill_between(dates, lo, hi, color=colour(i), alpha=BAND_ALPHA, linewidth=0)
        drawn = True
    return drawn


def _day_axis(ax: Axes, bands: pl.DataFrame) -> None:
    """Whole days on the date axis: the data is daily, so hour ticks would be noise."""
    if bands.is_empty():
        return
    span = (bands["date"].max() - bands["date"].min()).days
    if span > DAY_TICKS_SPAN_MAX:
        _date_axis(ax)
        return
    locator = DayLocator(interval=max(1, span // 6))
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _empty(ax: Axes) -> None:
    ax.text(0.5, 0.5, "not in these runs", ha="center", va="center", transform=ax.transAxes)
    ax.texts[-1].set(fontsize=11, color="#555555")


def adoption_compare_figure(comparison: Comparison, bands: pl.DataFrame) -> Figure:
    """A panel per segment: share adopted (%) over time, a line and band per scenario."""
    segments = sorted(
        {
            m.removeprefix("adoption.")
            for m in bands["metric"].unique()
            if m.startswith("adoption.")
        },
        key=lambda s: (
            ("youth", "adult", "elderly", "merchant").index(s)
            if s in ("youth", "adult", "elderly", "merchant")
            else 9
        ),
    )
    cols = 2 if len(segments) > 1 else 1
    rows = max(1, -(-len(segments) // cols))
    fig = Figure(figsize=GRID_FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False).ravel()
    labels = _labels(comparison)
    for k, ax in enumerate(axes):
        if k >= len(segments):
            ax.set_visible(False)
            continue
        drawn = _band_lines(ax, bands, labels, f"adoption.{segments[k]}")
        title = f"Adoption: {segments[k]}" if k else f"Adoption by segment: {segments[k]}"
        _style(ax, title, "Date" if k >= len(segments) - cols else None, "Share adopted (%)")
        ax.set_ylim(0, 100)
        _day_axis(ax, bands)
        if not drawn:
            _empty(ax)
    if segments:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=2, frameon=False, fontsize=10)
    return fig


def series_compare_figure(
    comparison: Comparison, bands: pl.DataFrame, metric: str, title: str, ylabel: str
) -> Figure:
    """One metric over time: a line and band per scenario."""
    fig = _new_figure()
    ax = fig.axes[0]
    drawn = _band_lines(ax, bands, _labels(comparison), metric)
    _style(ax, title, "Date", ylabel)
    _day_axis(ax, bands)
    if drawn:
        ax.set_ylim(bottom=0)
        _legend(ax, "Scenario")
    else:
        _empty(ax)
    return fig


def bars_compare_figure(
    comparison: Comparison,
    bands: pl.DataFrame,
    metrics: list[str],
    title: str,
    ylabel: str,
    published: tuple[float, str] | None = None,
    xlabel: str = "Measure",
) -> Figure:
    """Grouped bars: one group per metric, a bar per scenario, error bars the band."""
    fig = _new_figure()
    ax = fig.axes[0]
    labels = _labels(comparison)
    metrics = [m for m in metrics if m in set(bands["metric"])]
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        mean, err = _bar_values(bands, label, metrics)
        offset = (i - (len(labels) - 1) / 2) * width
        ax.bar(x + offset, mean, width, yerr=err, label=label, color=colour(i), ecolor="#000000")
    if published is not None:
        ax.axhline(published[0], color=colour(6), linestyle="--", linewidth=1.5, label=published[1])
    names = [metric_info(m).label.split(", ")[-1] for m in metrics]
    many = len(metrics) > 4
    ax.set_xticks(x, names, rotation=30 if many else 0, ha="right" if many else "center")
    _style(ax, title, xlabel, ylabel)
    if metrics:
        _legend(ax, "Scenario")
    else:
        _empty(ax)
    return fig


def _bar_values(bands: pl.DataFrame, label: str, metrics: list[str]) -> tuple[list, np.ndarray]:
    means, errs = [], []
    for metric in metrics:
        scale = metric_info(metric).scale
        row = bands.filter((pl.col("group") == label) & (pl.col("metric") == metric))
        if row.is_empty():
            means.append(np.nan)
            errs.append((0.0, 0.0))
            continue
        r = row.row(0, named=True)
        mean = r["mean"] * scale
        lo, hi = (mean, mean) if r["lo"] is None else (r["lo"] * scale, r["hi"] * scale)
        means.append(mean)
        errs.append((mean - lo, hi - mean))
    return means, np.asarray(errs, dtype=float).T.reshape(2, len(metrics))


@dataclass(frozen=True)
class ComparePicture:
    name: str
    build: Callable[[Comparison, pl.DataFrame, pl.DataFrame], Figure]
    caption: str


def _channels(c: Comparison, scalars: pl.DataFrame) -> list[str]:
    return [m for m in dict.fromkeys(scalars["metric"]) if m.startswith("transactions.")]


COMPARE_PICTURES = (
    ComparePicture(
        "adoption",
        lambda c, series, scalars: adoption_compare_figure(c, series),
        "Share of each segment that has adopted, day by day; merchants: the share "
        "accepting the collection code.",
    ),
    ComparePicture(
        "channels",
        lambda c, series, scalars: bars_compare_figure(
            c,
            scalars,
            _channels(c, scalars),
            "Transactions by channel over the run",
            "Transactions (count)",
        ),
        "Transactions over the whole run by channel. Declined, failed-online and "
        "cannot-pay are attempts, already counted under the way the purchase was paid.",
    ),
    ComparePicture(
        "cash_share",
        lambda c, series, scalars: series_compare_figure(
            c, series, "cash_share", "Cash share of purchases", "Cash share (%)"
        ),
        "Share of each day's purchases paid in cash (shops and buses).",
    ),
    ComparePicture(
        "cannot_pay",
        lambda c, series, scalars: series_compare_figure(
            c,
            series,
            "cannot_pay_elderly",
            "Elderly residents who could not pay",
            "Elderly unable to pay (per day)",
        ),
        "Elderly residents who tried to pay and could not, per day.",
    ),
    ComparePicture(
        "hospital",
        lambda c, series, scalars: bars_compare_figure(
            c,
            scalars,
            ["hospital.minutes_saved_per_visit"],
            "Hospital minutes saved per visit by treat first, pay later",
            "Minutes saved per visit (min)",
            (PUBLISHED_MINUTES_SAVED, f"published figure: {PUBLISHED_MINUTES_SAVED} min"),
        ),
        "Mean pay-now visit minus mean pay-later visit; the dashed line is the published "
        f"figure of {PUBLISHED_MINUTES_SAVED} minutes.",
    ),
    ComparePicture(
        "pay_later",
        lambda c, series, scalars: bars_compare_figure(
            c,
            scalars,
            ["pay_later_rides", "hospital.visits_paylater"],
            "Pay-later use over the run",
            "Rides or visits over the run (count)",
            xlabel="Credit-gated service",
        ),
        "Bus rides taken on ride first, pay later credit and hospital visits treated first, "
        "paid later, over the whole run; both services are closed when credit.pay_later is off.",
    ),
    ComparePicture(
        "clearing_lag",
        lambda c, series, scalars: bars_compare_figure(
            c,
            scalars,
            ["clearing_lag.p50_h", "clearing_lag.p99_h"],
            "Clearing lag of offline bus taps",
            "Tap to upload (hours)",
        ),
        "Median and 99th percentile of the hours between a tap on a bus and its upload.",
    ),
    ComparePicture(
        "promotions",
        lambda c, series, scalars: series_compare_figure(
            c,
            series,
            "promo_cost_cum_fen",
            "Platform cost of promotions",
            "Cost so far (RMB)",
        ),
        "What the platform's campaigns (free rides, breakfast discounts) have cost so far.",
    ),
)


def build_compare_report(comparison: Comparison, out_dir: Path) -> Path:
    """Write figures/*.png, comparison.csv, differences.csv and compare.html into ``out_dir``."""
    out_dir = Path(out_dir)
    series, scalars = series_bands(comparison), scalar_bands(comparison)
    diffs = differences(comparison)
    out_dir.mkdir(parents=True, exist_ok=True)
    scalars.write_csv(out_dir / "comparison.csv")
    diffs.write_csv(out_dir / "differences.csv")
    drawn = [
        (p, save(p.build(comparison, series, scalars), out_dir / FIGURES_DIR / f"{p.name}.png"))
        for p in COMPARE_PICTURES
    ]
    body = [
        "<h1>Cashless City: scenario comparison</h1>",
        tables(_groups_table(comparison)),
        note(f"Lines are means over seeds; bands and error bars: {BAND_RULE}."),
        *_single_seed_note(comparison),
        f"<h2>Differences versus {esc(comparison.reference.label)}</h2>",
        note(f"Listed when larger than the noise: {TEST_RULE}."),
        _differences_list(diffs),
        *_skipped(comparison),
        "<h2>End of run</h2>",
        tables(_values_table(comparison, scalars)),
        "<h2>Figures</h2>",
        *(figure(p.name, path, p.caption) for p, path in drawn),
    ]
    out = out_dir / COMPARE_FILE
    out.write_text(page("Cashless City: scenario comparison", body), encoding="utf-8")
    return out


def _groups_table(comparison: Comparison) -> str:
    rows = [
        (
            g.label + (" (reference)" if i == 0 else ""),
            str(len(g.runs)),
            ", ".join(str(r.seed) for r in g.runs[:8]) + (" …" if len(g.runs) > 8 else ""),
        )
        for i, g in enumerate(comparison.groups)
    ]
    return table("Scenarios compared", rows, ("scenario", "seeds", "seed values"))


def _single_seed_note(comparison: Comparison) -> list[str]:
    single = [g.label for g in comparison.groups if len(g.runs) < 2]
    if not single:
        return []
    return [note(f"One seed only, so no band and no test: {', '.join(single)}.")]


def difference_lines(diffs: pl.DataFrame) -> list[str]:
    """Each difference larger than the noise, as a sentence."""
    lines = []
    for r in significant(diffs).iter_rows(named=True):
        info = metric_info(r["metric"])
        ref, mean = r["reference_mean"] * info.scale, r["mean"] * info.scale
        relative = f", {r['difference'] / r['reference_mean']:+.0%}" if r["reference_mean"] else ""
        lines.append(
            f"{r['group']}: {info.label} {mean:,.3g} vs {ref:,.3g} {info.unit} "
            f"({mean - ref:+,.3g}{relative}; adjusted p = {r['p_holm']:.2g})"
        )
    return lines


def _differences_list(diffs: pl.DataFrame) -> str:
    lines = difference_lines(diffs)
    untested = diffs.filter(pl.col("p").is_null()).height
    tail = note(f"{untested} comparison(s) not tested: fewer than two seeds.") if untested else ""
    if not lines:
        return note("No difference larger than the noise.") + tail
    items = "".join(f"<li>{esc(line)}</li>" for line in lines)
    return f"<ul>{items}</ul>{tail}"


def _skipped(comparison: Comparison) -> list[str]:
    if not comparison.notes:
        return []
    items = "".join(f"<li>{esc(n)}</li>" for n in comparison.notes)
    return ["<h2>Skipped metrics</h2>", f"<ul>{items}</ul>"]


def _values_table(comparison: Comparison, scalars: pl.DataFrame) -> str:
    labels = _labels(comparison)
    rows = []
    for metric in dict.fromkeys(scalars["metric"]):
        info = metric_info(metric)
        cells = []
        for label in labels:
            row = scalars.filter((pl.col("group") == label) & (pl.col("metric") == metric))
            cells.append(_band_text(row.row(0, named=True), info.scale) if row.height else "—")
        rows.append((f"{info.label} ({info.unit})", *cells))
    return table("Mean [band] per scenario", rows, ("measure", *labels))


def _band_text(row: dict, scale: float) -> str:
    mean = f"{row['mean'] * scale:,.3g}"
    if row["lo"] is None:
        return mean
    return f"{mean} [{row['lo'] * scale:,.3g}, {row['hi'] * scale:,.3g}]"
