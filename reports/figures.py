"""The report's pictures: adoption, platform latency, purchases by channel.

Each picture has a builder that returns a ``Figure`` (``adoption_figure``) so tests
can inspect titles, labels and legends without a file, and a writer that saves it
as PNG and returns the path (``plot_adoption``).

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas, never pyplot
figures, and every style is set on the artist itself rather than in ``rcParams``:
building a report leaves no open figure and no changed setting behind, so it is
safe to call from a notebook, a server or a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import BarContainer
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from reports.analysis import (
    CASH_CHANNEL,
    OVERLAY_CHANNELS,
    PERCENTILES,
    adoption_shares,
    channels,
    daily_channels,
    daily_tap_outcomes,
    latency_percentiles,
    published_marks,
    purchase_channels,
)

# Okabe & Ito (2008), readable with every common colour-vision deficiency. Yellow is
# last: on white it is the hardest to see.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
DPI = 120
FIGSIZE_IN = (8.0, 4.5)
TITLE_PT, LABEL_PT, TICK_PT = 13, 11, 10
# Above this ratio between the largest and smallest bar a linear axis flattens the
# small bars to nothing, so the latency chart switches to a log axis.
LOG_SCALE_RATIO = 20.0
SEPARATE_BARS_DAYS_MAX = 45
TICK_LABELS_FLAT_MAX = 8  # category labels under a gentle slant; more get a steep one


def colour(index: int) -> str:
    """The ``index``-th colour of the palette, cycling when there are more series."""
    return OKABE_ITO[index % len(OKABE_ITO)]


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (creating its folder) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _new_figure(nrows: int = 1, height_ratios: Sequence[float] | None = None) -> Figure:
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # Agg chosen here, per figure, so no global backend changes
    fig.subplots(nrows, 1, sharex=True, squeeze=False, height_ratios=height_ratios)
    return fig


def _style(ax: Axes, title: str | None, xlabel: str | None, ylabel: str) -> None:
    """Title, labels and tick sizes set on the axes; no top or right spine."""
    if title:
        ax.set_title(title, fontsize=TITLE_PT, loc="left")
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=LABEL_PT)
    ax.set_ylabel(ylabel, fontsize=LABEL_PT)
    ax.tick_params(labelsize=TICK_PT)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)


def _date_axis(ax: Axes) -> None:
    locator = AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.xaxis.get_offset_text().set_fontsize(TICK_PT)


def _legend_or_note(ax: Axes, title: str, has_data: bool) -> None:
    """A legend, or a note in its place: an empty chart should say why it is empty."""
    if has_data:
        _legend(ax, title)
        return
    ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes)
    ax.texts[-1].set(fontsize=LABEL_PT, color="#555555")


def _legend(ax: Axes, title: str) -> None:
    """A legend in drawing order, outside the plot.

    Matplotlib lists lines before bars whatever the order they were drawn in; sorting
    by the artists' order keeps a channel legend in the order of the stacked bars.
    Outside the plot a legend can never hide data or vanish on a bar of its own colour.
    """
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(handles)), key=lambda i: _drawn_at(ax, handles[i]))
    ax.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        title=title,
        fontsize=TICK_PT,
        title_fontsize=TICK_PT,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        alignment="left",
    )


def _drawn_at(ax: Axes, handle: Artist | BarContainer) -> int:
    """Position of ``handle`` (a line, or a bar container) among the axes' artists."""
    if isinstance(handle, BarContainer):
        if not handle.patches:
            return len(ax.get_children())
        handle = handle.patches[0]
    return ax.get_children().index(handle)


def adoption_figure(daily: pl.DataFrame) -> Figure:
    """Share adopted (%) per segment over the run; merchants dashed (another population)."""
    fig = _new_figure()
    ax = fig.axes[0]
    shares = adoption_shares(daily)
    dates = shares["date"].to_numpy()
    for i, segment in enumerate(c for c in shares.columns if c != "date"):
        style = "--" if segment == "merchant" else "-"
        ax.plot(
            dates,
            shares[segment].to_numpy() * 100.0,
            label=segment,
            color=colour(i),
            linestyle=style,
            linewidth=2,
        )
    _mark_published(ax, daily)
    ax.set_ylim(0, 100)
    _style(ax, "Mobile-payment adoption by segment", "Date", "Share adopted (%)")
    _date_axis(ax)
    _legend_or_note(ax, "Segment", shares.width > 1)
    return fig


def _mark_published(ax: Axes, daily: pl.DataFrame) -> None:
    """Published figures within the run's dates as black diamonds, labelled once."""
    for i, (date, share, label) in enumerate(published_marks(daily)):
        ax.plot(
            [np.datetime64(date)],
            [share * 100.0],
            marker="D",
            markersize=8,
            linestyle="none",
            color=colour(6),
            clip_on=False,  # a 100 % mark sits on the top edge
            label=label if i == 0 else None,
        )


def plot_adoption(daily: pl.DataFrame, path: Path) -> Path:
    """Write the adoption curve for ``daily`` as a PNG at ``path``."""
    return save(adoption_figure(daily), path)


def _grouped_bars(ax: Axes, table: pl.DataFrame) -> None:
    x = np.arange(table.height)
    width = 0.8 / len(PERCENTILES)
    for i, name in enumerate(PERCENTILES):
        offset = (i - (len(PERCENTILES) - 1) / 2) * width
        ax.bar(x + offset, table[name].to_numpy(), width, label=name, color=colour(i))
    # A run calls twenty-odd operations: at a steep angle their names stay apart.
    rotation = 20 if table.height <= TICK_LABELS_FLAT_MAX else 50
    ax.set_xticks(
        x, table["operation"].to_list(), rotation=rotation, ha="right", rotation_mode="anchor"
    )


def _wide_range(values: np.ndarray) -> bool:
    positive = values[values > 0]
    return positive.size > 0 and positive.max() / positive.min() > LOG_SCALE_RATIO


def _log_axis(ax: Axes) -> None:
    """Log y axis labelled 0.2, 0.5, 1, 2, 5 ...: readers compare ms, not powers of ten."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def latency_figure(events: pl.DataFrame) -> Figure:
    """p50/p95/p99 latency per operation, grouped bars; log axis when the range is wide."""
    fig = _new_figure()
    ax = fig.axes[0]
    table = latency_percentiles(events)
    _grouped_bars(ax, table)
    values = table.select(list(PERCENTILES)).to_numpy().ravel()
    log = _wide_range(values)
    if log:
        _log_axis(ax)
    ylabel = "Latency (ms, log scale)" if log else "Latency (ms)"
    _style(ax, "Platform call latency by operation", "Operation", ylabel)
    _legend_or_note(ax, "Percentile", table.height > 0)
    return fig


def plot_latency(events: pl.DataFrame, path: Path) -> Path:
    """Write the latency-percentile bars for ``events`` as a PNG at ``path``."""
    return save(latency_figure(events), path)


def _stacked_purchases(ax: Axes, frame: pl.DataFrame, names: list[str]) -> None:
    dates = frame["date"].to_numpy()
    bottom = np.zeros(frame.height)
    # Gaps between bars help to count a few days; over months they alias into stripes.
    width = 0.9 if frame.height <= SEPARATE_BARS_DAYS_MAX else 1.0
    for i, name in enumerate(names):
        counts = frame[f"tx_{name}"].to_numpy().astype(float)
        ax.bar(dates, counts, width, bottom=bottom, label=name, color=colour(i), linewidth=0)
        bottom += counts


def _overlay_lines(ax: Axes, frame: pl.DataFrame, names: list[str], first: int) -> None:
    dates = frame["date"].to_numpy()
    for i, name in enumerate(names, start=first):
        ax.plot(
            dates,
            frame[f"tx_{name}"].to_numpy(),
            label=f"{name} (within the bars)",
            color=colour(i),
            linestyle="--",
            linewidth=1.8,
        )


def _cash_share(ax: Axes, frame: pl.DataFrame, line_colour: str) -> None:
    ax.plot(
        frame["date"].to_numpy(),
        frame["cash_share"].to_numpy() * 100.0,
        color=line_colour,
        linewidth=2,
    )
    ax.set_ylim(0, 100)
    _style(ax, None, "Date", "Cash share (%)")


def channels_figure(daily: pl.DataFrame) -> Figure:
    """Purchases per day stacked by channel, overlays as lines, cash share below."""
    frame = daily_channels(daily)
    has_share = "cash_share" in frame.columns
    fig = _new_figure(2, (2.0, 1.0)) if has_share else _new_figure()
    top = fig.axes[0]
    paid = purchase_channels(daily)
    overlays = [c for c in channels(daily) if c in OVERLAY_CHANNELS]
    _stacked_purchases(top, frame, paid)
    _overlay_lines(top, frame, overlays, len(paid))
    _style(top, "Daily purchases by channel", None if has_share else "Date", "Purchases (per day)")
    _legend_or_note(top, "Channel", bool(paid))
    if has_share:
        _cash_share(fig.axes[1], frame, colour(paid.index(CASH_CHANNEL)))
    _date_axis(fig.axes[-1])
    return fig


def plot_channels(daily: pl.DataFrame, path: Path) -> Path:
    """Write the daily purchases-by-channel chart for ``daily`` as a PNG at ``path``."""
    return save(channels_figure(daily), path)


def taps_figure(taps: pl.DataFrame) -> Figure:
    """Offline bus taps per day, stacked by clearing outcome and rejection reason."""
    fig = _new_figure()
    ax = fig.axes[0]
    frame = daily_tap_outcomes(taps)
    days = frame["day"].to_numpy()
    bottom = np.zeros(frame.height)
    labels = [c for c in frame.columns if c != "day"]
    for i, label in enumerate(labels):
        counts = frame[label].to_numpy().astype(float)
        ax.bar(days, counts, 0.9, bottom=bottom, label=label, color=colour(i), linewidth=0)
        bottom += counts
    _style(ax, "Offline bus taps by clearing outcome", "Day of run (day)", "Taps (per day)")
    _legend_or_note(ax, "Outcome", bool(labels))
    return fig


def lag_figure(taps: pl.DataFrame) -> Figure:
    """Histogram of hours between a tap on a bus and its upload to the platform."""
    fig = _new_figure()
    ax = fig.axes[0]
    hours = taps["lag_s"].cast(pl.Float64).to_numpy() / 3600.0
    if hours.size:
        ax.hist(hours, bins=30, color=colour(0), label="taps", linewidth=0)
    _style(ax, "Clearing lag of offline taps", "Lag from tap to upload (hours)", "Taps (count)")
    _legend_or_note(ax, "Offline taps", bool(hours.size))
    return fig
