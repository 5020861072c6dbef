"""The cashless city in the browser: ``solara run agents/app.py``.

A small baseline city (600 residents by default) runs in-process against the
reference platform on a temporary SQLite ledger, one day per step. The sidebar
sets the seed, the size and a few policies (elderly classes, the legal-tender rule,
free-ride Fridays, a rival wallet); Reset builds a new city with them. Three views:
adoption by segment, payments by channel, and a map of the neighbourhoods coloured
by the share of their residents using a wallet.

Each view is a pure data function (``adoption_by_segment``, ``payments_by_channel``,
``neighbourhood_shares``), a matplotlib figure made from it, and a Solara component
that shows the figure; the model keeps its own daily rows, so no DataCollector.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import solara
from matplotlib.figure import Figure
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

from agents.daily import PAID_CHANNELS
from agents.model import CityModel, SimClock
from platform_stub import InProcessClient, Platform, PlatformClient
from scenarios.loader import load_scenario
from scenarios.runner import LEDGER_FILE, open_platform
from scenarios.schema import SEGMENTS, Scenario

DEFAULT_SEED = 20170615
DEFAULT_RESIDENTS = 600
MERCHANTS_MIN = 10  # enough for every merchant kind to be drawn
SEGMENT_COLOURS = {"youth": "tab:blue", "adult": "tab:orange", "elderly": "tab:green"}


# -- the model --------------------------------------------------------------------


def live_scenario(
    residents: int = DEFAULT_RESIDENTS,
    days: int = 60,
    classes_per_week: int = 0,
    volunteer_visits_per_week: int = 0,
    must_accept_cash: bool = True,
    cash_refusal_share: float = 0.5,
    free_ride_fridays: bool = False,
    rival_share: float = 0.0,
    seed: int = DEFAULT_SEED,
) -> Scenario:
    """The baseline (or free-ride Friday) scenario with merchants and buses scaled
    to ``residents`` and the sidebar's policies applied."""
    name = "free_ride_friday" if free_ride_fridays else "baseline"
    base = load_scenario(name)
    ratio = residents / base.city.residents
    overrides: dict[str, Any] = {
        "seed": int(seed),
        "city.residents": int(residents),
        "city.days": int(days),
        "city.merchants": max(MERCHANTS_MIN, round(base.city.merchants * ratio)),
        "transit.buses": max(base.transit.routes, round(base.transit.buses * ratio)),
        "elderly.classes_per_week": int(classes_per_week),
        "elderly.volunteer_visits_per_week": int(volunteer_visits_per_week),
        "merchants.must_accept_cash": bool(must_accept_cash),
        "merchants.cash_refusal_share": float(cash_refusal_share),
        "competition.rival_share": float(rival_share),
    }
    return load_scenario(name, overrides)


class LiveCity(CityModel):
    """A ``CityModel`` built from keyword parameters, as SolaraViz's Reset needs,
    on its own in-process platform in a temporary folder (removed with the model)."""

    def __init__(
        self,
        residents: int = DEFAULT_RESIDENTS,
        days: int = 60,
        classes_per_week: int = 0,
        volunteer_visits_per_week: int = 0,
        must_accept_cash: bool = True,
        cash_refusal_share: float = 0.5,
        free_ride_fridays: bool = False,
        rival_share: float = 0.0,
        seed: int | str = DEFAULT_SEED,
    ) -> None:
        scenario = live_scenario(
            residents, days, classes_per_week, volunteer_visits_per_week, must_accept_cash,
            cash_refusal_share, free_ride_fridays, rival_share, int(seed),
        )  # fmt: skip
        folder = Path(tempfile.mkdtemp(prefix="cashless-app-"))
        platform = open_platform(scenario, folder / LEDGER_FILE)
        sim_clock = SimClock(scenario.city.start_date)
        platform.clock = sim_clock.aware  # campaigns and credit tenure follow sim time
        client = InProcessClient(platform)
        self._release = weakref.finalize(self, _release, client, platform, folder)
        super().__init__(scenario, client, seed=int(seed), sim_clock=sim_clock)

    def close(self) -> None:
        """Close the platform and delete its ledger (also done when garbage-collected)."""
        self._release()


def _release(client: PlatformClient, platform: Platform, folder: Path) -> None:
    client.close()
    platform.close()
    shutil.rmtree(folder, ignore_errors=True)


# -- data behind each view ----------------------------------------------------------


def adoption_by_segment(model: CityModel) -> pl.DataFrame:
    """Per day, the share of each segment's residents using a wallet (any wallet)."""
    rows = model.daily_rows
    columns: dict[str, list[Any]] = {"day": [r["day"] for r in rows]}
    for s in SEGMENTS:
        columns[s] = [r[f"adopters_{s}"] / max(r[f"population_{s}"], 1) for r in rows]
    schema = {"day": pl.Int64, **dict.fromkeys(SEGMENTS, pl.Float64)}
    return pl.DataFrame(columns, schema=schema)


def payments_by_channel(model: CityModel) -> pl.DataFrame:
    """Per day, payments by the way they were finally made (failed attempts left out)."""
    rows = model.daily_rows
    columns: dict[str, list[Any]] = {"day": [r["day"] for r in rows]}
    for c in PAID_CHANNELS:
        columns[c] = [int(r[f"tx_{c}"]) for r in rows]
    schema = {"day": pl.Int64, **dict.fromkeys(PAID_CHANNELS, pl.Int64)}
    return pl.DataFrame(columns, schema=schema)


def neighbourhood_shares(model: CityModel) -> pl.DataFrame:
    """Per neighbourhood cell: residents living there, how many use a wallet now,
    the share (null where nobody lives), and the cell's place on a square grid."""
    cells = model.scenario.transit.neighbourhoods
    home = model.people.home_cell
    residents = np.bincount(home, minlength=cells)
    users = np.bincount(home, weights=model.adoption.active, minlength=cells).astype(np.int64)
    side = math.ceil(math.sqrt(cells))
    cell = np.arange(cells)
    share = [u / r if r else None for u, r in zip(users, residents, strict=True)]
    return pl.DataFrame(
        {
            "cell": cell,
            "row": cell // side,
            "col": cell % side,
            "residents": residents,
            "users": users,
            "share": share,
        },
        schema_overrides={"share": pl.Float64},
    )


def share_grid(shares: pl.DataFrame) -> np.ndarray:
    """The shares laid on a square grid; NaN for empty cells and the padding."""
    side = int(shares["col"].max()) + 1 if shares.height else 1
    rows = math.ceil(shares.height / side) if shares.height else 1
    grid = np.full((rows, side), np.nan)
    values = shares["share"].fill_null(np.nan).to_numpy()
    grid[shares["row"].to_numpy(), shares["col"].to_numpy()] = values
    return grid


# -- figures -----------------------------------------------------------------------


def adoption_figure(model: CityModel) -> Figure:
    data = adoption_by_segment(model)
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.subplots()
    for s in SEGMENTS:
        ax.plot(data["day"], data[s], label=s, color=SEGMENT_COLOURS[s])
    ax.set(xlabel="day", ylabel="share using a wallet", ylim=(0, 1), title="Adoption by segment")
    ax.legend(loc="upper left")
    return fig


def channel_figure(model: CityModel) -> Figure:
    data = payments_by_channel(model)
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.subplots()
    bottom = np.zeros(data.height)
    for c in PAID_CHANNELS:
        heights = data[c].to_numpy().astype(float)
        ax.bar(data["day"], heights, bottom=bottom, label=c, width=0.9)
        bottom += heights
    ax.set(xlabel="day", ylabel="payments", title="Payments by channel")
    ax.legend(loc="upper left", fontsize="small", ncols=2)
    return fig


def city_map_figure(model: CityModel) -> Figure:
    grid = share_grid(neighbourhood_shares(model))
    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, origin="lower")
    fig.colorbar(image, ax=ax, label="share of residents using a wallet")
    ax.set(xticks=[], yticks=[], title="Neighbourhoods (home cells)")
    return fig


# -- Solara components ---------------------------------------------------------------


@solara.component
def AdoptionPlot(model: CityModel) -> None:
    update_counter.get()  # redraw after every step, as Mesa's own components do
    solara.FigureMatplotlib(adoption_figure(model), format="png")


@solara.component
def ChannelPlot(model: CityModel) -> None:
    update_counter.get()
    solara.FigureMatplotlib(channel_figure(model), format="png")


@solara.component
def CityMap(model: CityModel) -> None:
    update_counter.get()
    solara.FigureMatplotlib(city_map_figure(model), format="png")


MODEL_PARAMS: dict[str, Any] = {
    "seed": {"type": "InputText", "value": DEFAULT_SEED, "label": "Random seed"},
    "residents": {
        "type": "SliderInt", "value": DEFAULT_RESIDENTS, "min": 200, "max": 3000, "step": 100,
        "label": "Residents",
    },
    "days": {"type": "SliderInt", "value": 60, "min": 7, "max": 180, "step": 1, "label": "Days"},
    "classes_per_week": {
        "type": "SliderInt", "value": 0, "min": 0, "max": 20, "step": 1,
        "label": "Elderly classes per week",
    },
    "volunteer_visits_per_week": {
        "type": "SliderInt", "value": 0, "min": 0, "max": 100, "step": 5,
        "label": "Volunteer home visits per week",
    },
    "must_accept_cash": {
        "type": "Checkbox", "value": True, "label": "Legal tender: merchants must take cash",
    },
    "cash_refusal_share": {
        "type": "SliderFloat", "value": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
        "label": "Adopters refusing cash (when not required)",
    },
    "free_ride_fridays": {"type": "Checkbox", "value": False, "label": "Free-ride Fridays"},
    "rival_share": {
        "type": "SliderFloat", "value": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
        "label": "Rival wallet share of new users",
    },
}  # fmt: skip
COMPONENTS = [(AdoptionPlot, 0), (ChannelPlot, 0), (CityMap, 0)]

page = SolaraViz(LiveCity(), components=COMPONENTS, model_params=MODEL_PARAMS, name="Cashless City")
