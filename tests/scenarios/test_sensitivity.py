"""cashless sensitivity: Morris screening tells a parameter that matters from one that does not."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from platform_stub.exceptions import ScenarioError
from scenarios.cli import app
from scenarios.sensitivity import make_study, parse_factor, parse_metric
from tests.conftest import TINY_SCENARIO


def test_metrics_and_ranges_are_parsed_and_bad_ones_named() -> None:
    assert parse_metric("adoption.overall").summary == "adoption.overall"
    daily = parse_metric("daily.card_holders:mean")
    assert (daily.column, daily.stat) == ("card_holders", "mean")
    assert parse_factor("transit.coverage=0.2,0.9") == ("transit.coverage", 0.2, 0.9)
    for bad in ("transit.coverage=0.9,0.2", "transit.coverage", "x=a,b"):
        with pytest.raises(ScenarioError, match="--params"):
            parse_factor(bad)
    with pytest.raises(ScenarioError, match="--metric"):
        parse_metric("daily.card_holders:median")


def test_a_factor_must_be_a_numeric_key_of_the_scenario() -> None:
    with pytest.raises(ScenarioError, match="city.name"):
        make_study(str(TINY_SCENARIO), {}, ["city.name=0,1"], "adoption.overall", [1])
    study = make_study(str(TINY_SCENARIO), {}, ["transit.buses=10,40"], "adoption.overall", [1])
    assert study.factors[0].integer and study.factors[0].value(12.6) == 13


def test_cli_sensitivity_ranks_a_parameter_that_matters_above_one_that_does_not(
    tmp_path: Path,
) -> None:
    """Care minutes at hospital cannot change adoption; the initial share does."""
    args = [
        "sensitivity", str(TINY_SCENARIO), "--set", "city.days=2",
        "--params", "adoption.initial_share=0.05,0.8", "--params", "hospital.care_min=50,90",
        "--metric", "adoption.overall", "--trajectories", "2", "--out", str(tmp_path),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    indices = pl.read_csv(tmp_path / "sensitivity.csv")
    assert indices["param"].to_list() == ["adoption.initial_share", "hospital.care_min"]
    assert indices["mu_star"][0] > 0.3 and indices["mu_star"][1] == 0
    runs = pl.read_csv(tmp_path / "sensitivity_runs.csv")
    assert runs.height == 2 * 3 and runs["metric"].is_between(0, 1).all()
    assert (tmp_path / "sensitivity.png").stat().st_size > 10_000
