"""reports.figures: each picture says what it shows, in readable, colour-blind-safe ink."""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib
import polars as pl
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text

from reports import (
    adoption_figure,
    channels_figure,
    latency_figure,
    plot_adoption,
    plot_channels,
    plot_latency,
)
from reports.figures import DPI, FIGSIZE_IN, OKABE_ITO, lag_figure, taps_figure
from reports.sections_services import hospital_figure, inclusion_figure
from tests.reports.rundata import POPULATION, make_daily, make_events, make_taps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BUILDERS: dict[str, Callable[[], Figure]] = {
    "adoption": lambda: adoption_figure(make_daily()),
    "latency": lambda: latency_figure(make_events()),
    "channels": lambda: channels_figure(make_daily()),
    "taps": lambda: taps_figure(make_taps()),
    "clearing_lag": lambda: lag_figure(make_taps()),
    "hospital": lambda: hospital_figure(make_daily()),
    "inclusion": lambda: inclusion_figure(make_daily()),
}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has right after the magic."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def rc_settings() -> dict[str, object]:
    """Every rcParam but ``backend``: reading that one would itself select a backend."""
    return {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != "backend"}


def legend_labels(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


@pytest.mark.parametrize("name", BUILDERS)
def test_every_figure_has_a_title_and_labelled_axes_with_units(name: str) -> None:
    fig = BUILDERS[name]()
    assert fig.axes[0].get_title(loc="left")
    for ax in fig.axes:
        assert ax.get_ylabel(), f"{name}: an unlabelled y axis"
        assert "(" in ax.get_ylabel(), f"{name}: y label without a unit: {ax.get_ylabel()!r}"
    assert fig.axes[-1].get_xlabel()


@pytest.mark.parametrize("name", BUILDERS)
def test_every_text_is_at_least_10pt_once_drawn(name: str) -> None:
    fig = BUILDERS[name]()
    fig.canvas.draw()  # tick labels exist only after a draw
    texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    assert len(texts) > 5
    assert min(t.get_fontsize() for t in texts) >= 10


@pytest.mark.parametrize("name", BUILDERS)
def test_figures_have_no_top_or_right_spine_and_use_okabe_ito(name: str) -> None:
    fig = BUILDERS[name]()
    palette = {c.lower() for c in OKABE_ITO}
    for ax in fig.axes:
        assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
        inks = [line.get_color() for line in ax.get_lines()]
        inks += [patch.get_facecolor() for patch in ax.patches]
        assert inks and {to_hex(c) for c in inks} <= palette


def test_adoption_legend_names_every_segment_in_column_order() -> None:
    assert legend_labels(adoption_figure(make_daily())) == list(POPULATION)


def test_a_new_segment_appears_in_the_adoption_legend_without_code_changes() -> None:
    daily = make_daily({"student": 60})
    fig = adoption_figure(daily)
    assert legend_labels(fig)[-1] == "student"
    student = next(line for line in fig.axes[0].get_lines() if line.get_label() == "student")
    assert student.get_ydata()[-1] == pytest.approx(100 * daily["adopters_student"][-1] / 60)


def test_adoption_curve_plots_percent_not_fraction() -> None:
    daily = make_daily()
    line = adoption_figure(daily).axes[0].get_lines()[0]
    expected = 100 * daily["adopters_youth"] / daily["population_youth"]
    assert list(line.get_ydata()) == pytest.approx(expected.to_list())
    assert line.axes.get_ylim() == (0, 100)


def test_latency_uses_a_log_axis_when_the_range_is_wide() -> None:
    fig = latency_figure(make_events())
    assert fig.axes[0].get_yscale() == "log"
    assert "log" in fig.axes[0].get_ylabel()


def test_latency_stays_linear_when_the_range_is_narrow() -> None:
    events = make_events().with_columns(pl.lit(1_000, dtype=pl.Int64).alias("latency_us"))
    fig = latency_figure(events)
    assert fig.axes[0].get_yscale() == "linear"
    assert legend_labels(fig) == ["p50", "p95", "p99"]
    assert [p.get_height() for p in fig.axes[0].patches] == pytest.approx([1.0] * 15)


def test_channels_stack_purchases_and_draw_declined_as_a_line() -> None:
    fig = channels_figure(make_daily())
    labels = legend_labels(fig)
    assert labels[:2] == ["merchant_qr", "cash"] and "declined" in labels[2]
    top, share = fig.axes
    tallest = max(p.get_y() + p.get_height() for p in top.patches)
    assert tallest == max(make_daily()["tx_merchant_qr"] + make_daily()["tx_cash"])
    assert share.get_ylabel() == "Cash share (%)" and share.get_ylim() == (0, 100)


def test_channels_without_cash_have_a_single_panel() -> None:
    daily = make_daily().drop("tx_cash")
    fig = channels_figure(daily)
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "Date"


def test_an_empty_run_still_draws_each_figure_and_says_so() -> None:
    fig = latency_figure(make_events().clear())
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["no data in this run"]


@pytest.mark.parametrize(
    ("plot", "data"),
    [(plot_adoption, make_daily), (plot_latency, make_events), (plot_channels, make_daily)],
)
def test_plot_writes_a_valid_png_of_the_stated_size(
    plot: Callable[[pl.DataFrame, Path], Path],
    data: Callable[[], pl.DataFrame],
    tmp_path: Path,
) -> None:
    path = plot(data(), tmp_path / "deep" / "figure.png")
    assert path == tmp_path / "deep" / "figure.png"
    assert png_size(path) == (FIGSIZE_IN[0] * DPI, FIGSIZE_IN[1] * DPI)
    assert 10_000 < path.stat().st_size < 1_000_000


def test_building_figures_leaves_no_global_matplotlib_state(tmp_path: Path) -> None:
    before = rc_settings()
    for build in BUILDERS.values():
        build()
    plot_latency(make_events(), tmp_path / "latency.png")
    assert rc_settings() == before
    pyplot = sys.modules.get("matplotlib.pyplot")
    assert pyplot is None or pyplot.get_fignums() == []
