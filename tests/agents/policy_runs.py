"""Run a library scenario, scaled down, straight through the model (no report), for
tests that compare policies on the same seeds."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from agents import CityModel
from platform_stub import InProcessClient
from scenarios.loader import load_scenario
from scenarios.runner import open_platform

SMALL = {"city.residents": 800, "city.merchants": 40, "city.days": 21, "transit.buses": 16}


def run_daily(name: str, seed: int, tmp: Path, overrides: dict | None = None) -> pl.DataFrame:
    scenario = load_scenario(f"scenarios/{name}.toml", {**SMALL, "seed": seed, **(overrides or {})})
    platform = open_platform(scenario, tmp / f"{name}-{seed}.db")
    try:
        model = CityModel(scenario, InProcessClient(platform), seed=seed)
        platform.clock = model.sim_clock.aware
        while model.running:
            model.step()
    finally:
        platform.close()
    return pl.DataFrame(model.daily_rows)
