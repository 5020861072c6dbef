"""The library's targets files: found by name, read columns a run writes, fit real keys.

A typo in a column or a parameter key would otherwise surface only when someone runs
a calibration of hours; these checks run a three-day city instead.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from scenarios.calibrate import resolve_params
from scenarios.evaluate import dotted_get, run_dates, simulate
from scenarios.loader import LIBRARY_DIR, load_scenario
from scenarios.targets import TARGETS_DIR, check_dates, load_targets

ROOT = Path(__file__).parents[2]
WUHAN_TARGETS = ROOT / "scenarios" / "targets" / "wuhan_2017.toml"
SMALL = {"city.residents": 200, "city.merchants": 12, "city.days": 3, "transit.buses": 4}


@pytest.fixture(scope="module")
def small_wuhan_columns() -> list[str]:
    scenario = load_scenario("wuhan_2017", SMALL)
    return simulate(scenario, scenario.seed).daily.columns


def test_the_wuhan_targets_load_by_name_and_by_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # as a user in the checkout types them
    by_name = load_targets("wuhan_2017")
    assert by_name == load_targets("scenarios/targets/wuhan_2017.toml")
    assert by_name == load_targets(WUHAN_TARGETS)
    assert len(by_name.targets) == 4 and by_name.params


def test_every_wuhan_target_reads_a_column_a_run_writes(small_wuhan_columns: list[str]) -> None:
    for target in load_targets("wuhan_2017").targets:
        assert target.column in small_wuhan_columns, target.name


def test_the_wuhan_target_dates_fall_within_the_full_run() -> None:
    check_dates(load_targets("wuhan_2017"), *run_dates(load_scenario("wuhan_2017")), "wuhan")


def test_the_wuhan_params_are_numeric_keys_within_their_bounds() -> None:
    scenario = load_scenario("wuhan_2017")
    params = resolve_params(load_targets("wuhan_2017"), [], scenario, str(WUHAN_TARGETS))
    assert {p.key for p in params} == {"transit.code_share", "transit.card_claims_per_day"}
    for param in params:  # a start outside the bounds would be clipped without a word
        assert param.lo < dotted_get(scenario.model_dump(), param.key) < param.hi, param.key


def test_the_targets_files_ship_with_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["scenarios"]
    shipped = {path for pattern in patterns for path in LIBRARY_DIR.glob(pattern)}
    assert WUHAN_TARGETS in shipped  # setuptools globs as Path.glob does: "*" stays in a folder
    assert set(TARGETS_DIR.glob("*.toml")) <= shipped
