"""The SolaraViz app: its model factory runs, each view's data has the promised
series, and the page renders its three figures."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("solara", reason="the viz extra is not installed: pip install -e '.[viz]'")

from agents.daily import PAID_CHANNELS  # noqa: E402
from scenarios.schema import SEGMENTS  # noqa: E402

with warnings.catch_warnings():
    # Mesa 3.3's own ComponentsView trips solara's rules-of-hooks lint when it is
    # defined (on import); not ours to fix.
    warnings.filterwarnings("ignore", ".*found despite early return", UserWarning)
    from agents import app

DAYS = 3


@pytest.fixture(scope="module")
def city() -> Iterator[app.LiveCity]:
    model = app.LiveCity(residents=300, days=10, classes_per_week=4, seed=7)
    for _ in range(DAYS):
        model.step()
    yield model
    model.close()


def test_the_sidebar_parameters_reach_the_scenario(city: app.LiveCity) -> None:
    """Residents, classes and the seed come from the factory's keywords."""
    scenario = city.scenario
    assert scenario.city.residents == 300 and scenario.seed == 7
    assert scenario.elderly.classes_per_week == 4
    assert scenario.city.merchants >= app.MERCHANTS_MIN
    assert scenario.transit.buses >= scenario.transit.routes


def test_free_ride_fridays_switch_on_the_campaign() -> None:
    """The checkbox picks the free-ride-Friday scenario, with its budget."""
    transit = app.live_scenario(residents=300, free_ride_fridays=True).transit
    assert transit.free_ride_weekdays == ["Fri"] and transit.free_ride_budget_fen > 0


def test_adoption_has_one_series_per_segment_and_one_row_per_day(city: app.LiveCity) -> None:
    data = app.adoption_by_segment(city)
    assert data.columns == ["day", *SEGMENTS]
    assert data["day"].to_list() == list(range(DAYS))
    shares = data.select(SEGMENTS).to_numpy()
    assert ((shares >= 0) & (shares <= 1)).all()


def test_payments_by_channel_counts_every_paid_channel(city: app.LiveCity) -> None:
    data = app.payments_by_channel(city)
    assert data.columns == ["day", *PAID_CHANNELS] and data.height == DAYS
    assert data.select(PAID_CHANNELS).sum_horizontal().min() > 0  # people paid somehow


def test_the_map_has_every_neighbourhood_with_a_share_in_0_1(city: app.LiveCity) -> None:
    shares = app.neighbourhood_shares(city)
    cells = city.scenario.transit.neighbourhoods
    assert shares["cell"].to_list() == list(range(cells))
    assert shares["residents"].sum() == city.people.size
    known = shares["share"].drop_nulls()
    assert known.len() > 0 and known.min() >= 0 and known.max() <= 1
    grid = app.share_grid(shares)
    assert grid.size >= cells and np.isfinite(grid).sum() == known.len()


def test_each_view_draws_a_figure(city: app.LiveCity) -> None:
    for draw, lines in (
        (app.adoption_figure, len(SEGMENTS)),
        (app.channel_figure, 0),
        (app.city_map_figure, 0),
    ):
        fig = draw(city)
        assert len(fig.axes[0].lines) == lines
    assert len(app.channel_figure(city).axes[0].containers) == len(PAID_CHANNELS)


def test_the_page_renders_its_three_figures() -> None:
    """``page`` is a SolaraViz element; rendered, it shows one image per view."""
    import ipywidgets
    import solara
    from mesa.visualization import SolaraViz

    assert app.page.component == SolaraViz
    _, rc = solara.render(app.page, handle_error=False)
    try:
        assert len(rc.find(ipywidgets.Image).widgets) == len(app.COMPONENTS)
    finally:
        rc.close()
