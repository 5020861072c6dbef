"""Run folders of the tiny city for the comparison tests, simulated once per session.

``write_run`` writes what ``cashless compare`` and ``cashless report`` read (summary.json,
daily.parquet, taps.parquet, events.parquet, scenario.resolved.toml) from a real
simulation, without the report: drawing its figures would cost more than the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scenarios.evaluate import simulate
from scenarios.loader import dump_toml, load_scenario
from scenarios.schema import Scenario
from tests.conftest import TINY_SCENARIO

DAYS = {"city.days": 3}
SEEDS = (1, 2, 3)
TWIN_SEEDS = (101, 102, 103)


def write_run(folder: Path, scenario: Scenario, seed: int) -> Path:
    outcome = simulate(scenario, seed)
    folder.mkdir(parents=True)
    outcome.daily.write_parquet(folder / "daily.parquet")
    outcome.taps.write_parquet(folder / "taps.parquet")
    outcome.events.write_parquet(folder / "events.parquet")
    (folder / "summary.json").write_text(json.dumps(outcome.summary, default=str))
    resolved = dump_toml(scenario.model_copy(update={"seed": seed}))
    (folder / "scenario.resolved.toml").write_text(resolved, encoding="utf-8")
    return folder


def _runs(root: Path, name: str, overrides: dict[str, Any], seeds: tuple[int, ...]) -> list[Path]:
    scenario = load_scenario(TINY_SCENARIO, DAYS | overrides)
    return [write_run(root / name / f"seed-{seed}", scenario, seed) for seed in seeds]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Three scenarios, three seeds each: the tiny city; the same city under another
    name and other seeds (noise only); and one that starts with 80 % adopted."""
    root = tmp_path_factory.mktemp("tiny-runs")
    return {
        "base": _runs(root, "base", {}, SEEDS),
        "twin": _runs(root, "twin", {"name": "tiny_twin"}, TWIN_SEEDS),
        "adopted": _runs(root, "adopted", {"adoption.initial_share": 0.8}, SEEDS),
    }
