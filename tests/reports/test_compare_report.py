"""reports.compare: every comparison figure is titled, labelled with units, Okabe-Ito inked."""

from __future__ import annotations

import polars as pl
import pytest
from matplotlib.colors import to_hex

from reports.compare import COMPARE_PICTURES
from reports.figures import OKABE_ITO
from scenarios.compare import Comparison, compare, scalar_bands, series_bands
from tests.reports.rundata import RunFactory, make_daily


@pytest.fixture
def comparison(make_run: RunFactory) -> Comparison:
    """Two made-up scenarios of two seeds each; the second adopts twice as fast."""
    faster = make_daily().with_columns(pl.col("adopters_youth") * 2)
    runs = [
        make_run(f"{name}-{seed}", daily=daily, scenario=name, seed=seed)
        for name, daily in (("slow", make_daily()), ("fast", faster))
        for seed in (1, 2)
    ]
    return compare(runs)


@pytest.mark.parametrize("picture", COMPARE_PICTURES, ids=lambda p: p.name)
def test_every_comparison_figure_has_a_title_labelled_axes_and_the_palette(
    comparison: Comparison, picture
) -> None:
    fig = picture.build(comparison, series_bands(comparison), scalar_bands(comparison))
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert visible[0].get_title(loc="left")
    for ax in visible:
        assert "(" in ax.get_ylabel(), f"{picture.name}: {ax.get_ylabel()!r}"
        inks = [to_hex(line.get_color()) for line in ax.get_lines()]
        inks += [to_hex(patch.get_facecolor()) for patch in ax.patches]
        assert set(inks) <= {c.lower() for c in OKABE_ITO}
    assert any(ax.get_xlabel() for ax in visible)


def test_adoption_panels_draw_a_line_per_scenario_in_percent(comparison: Comparison) -> None:
    fig = COMPARE_PICTURES[0].build(comparison, series_bands(comparison), scalar_bands(comparison))
    youth = fig.axes[0]
    assert [line.get_label() for line in youth.get_lines()] == ["slow", "fast"]
    slow, fast = (line.get_ydata()[-1] for line in youth.get_lines())
    assert fast == pytest.approx(2 * slow) and 0 < slow < 100


def test_the_hospital_figure_marks_the_published_figure(comparison: Comparison) -> None:
    picture = next(p for p in COMPARE_PICTURES if p.name == "hospital")
    ax = picture.build(comparison, series_bands(comparison), scalar_bands(comparison)).axes[0]
    published = [line for line in ax.get_lines() if "published figure" in line.get_label()]
    assert published and published[0].get_ydata()[0] == pytest.approx(52.7)
    assert [p.get_height() for p in ax.patches] == pytest.approx([52.0, 52.0])


def test_a_missing_metric_draws_an_empty_panel_that_says_so(make_run: RunFactory) -> None:
    daily = make_daily().drop("cannot_pay_elderly")
    comparison = compare([make_run("a", daily=daily), make_run("b", daily=daily, seed=2)])
    picture = next(p for p in COMPARE_PICTURES if p.name == "cannot_pay")
    ax = picture.build(comparison, series_bands(comparison), scalar_bands(comparison)).axes[0]
    assert [t.get_text() for t in ax.texts] == ["not in these runs"]


def test_the_pay_later_figure_draws_rides_and_visits_and_zero_when_off(
    make_run: RunFactory,
) -> None:
    on = make_daily().with_columns(pay_later_rides=pl.lit(3))  # 20 pay-later visits
    off = on.with_columns(pay_later_rides=pl.lit(0), hospital_visits_paylater=pl.lit(0))
    runs = [
        make_run(f"{name}-{seed}", daily=daily, scenario=name, seed=seed)
        for name, daily in (("on", on), ("off", off))
        for seed in (1, 2)
    ]
    comparison = compare(runs)
    picture = next(p for p in COMPARE_PICTURES if p.name == "pay_later")
    ax = picture.build(comparison, series_bands(comparison), scalar_bands(comparison)).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "pay-later bus rides",
        "pay-later hospital visits",
    ]
    assert [p.get_height() for p in ax.patches] == pytest.approx([24.0, 20.0, 0.0, 0.0])
    assert ax.get_title(loc="left") and ax.get_xlabel() and "(count)" in ax.get_ylabel()
