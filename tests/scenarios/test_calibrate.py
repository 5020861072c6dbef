"""cashless calibrate: targets files, a fit that beats its start, outputs a run can show."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from platform_stub.exceptions import ScenarioError
from scenarios.calibrate import Fit, Problem, calibrate, plan_budget, resolve_params
from scenarios.cli import app
from scenarios.evaluate import simulate
from scenarios.loader import load_scenario
from scenarios.targets import check_dates, load_targets
from tests.conftest import TINY_SCENARIO
from tests.scenarios.conftest import write_run

TARGETS = Path(__file__).parents[1] / "data" / "targets_tiny.toml"
SHORT = {"city.days": 2}
BUDGET = 10


@pytest.fixture(scope="module")
def fit() -> Fit:
    scenario = load_scenario(TINY_SCENARIO, SHORT)
    spec = load_targets(TARGETS)
    params = resolve_params(spec, [], scenario, str(TARGETS))
    problem = Problem(
        str(TINY_SCENARIO), SHORT, params, tuple(spec.targets), (scenario.seed,), str(TARGETS)
    )
    return calibrate(problem, BUDGET, seed=0)


def test_the_fit_beats_the_start_point_within_the_budget(fit: Fit) -> None:
    assert len(fit.history) <= BUDGET
    assert fit.start.x == (0.2,)  # the scenario's own initial_share
    assert fit.best.loss < fit.start.loss
    published = fit.problem.targets[0].published
    assert abs(fit.best.simulated[0] - published) < abs(fit.start.simulated[0] - published)


def test_a_scaled_target_is_multiplied_by_the_scale_factor(fit: Fit) -> None:
    scenario = load_scenario(TINY_SCENARIO, SHORT)
    run = simulate(scenario, scenario.seed)
    mean_users = run.daily["platform_users_youth"].mean()
    expected = mean_users * scenario.city.scale_factor
    assert fit.start.simulated[1] == pytest.approx(expected)


def test_budget_bounds_the_generations() -> None:
    assert plan_budget(10, 1) == (2, 1)  # 5 members (the minimum), first + 1 generation
    assert plan_budget(600, 2) == (15, 19)
    with pytest.raises(ScenarioError, match="--budget"):
        plan_budget(5, 1)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[targets]]\nname="a"\npublished=1\nsource="s"\ncolumn="x"\nsummary="y"\n', "targets.0"),
        ('[[targets]]\nname="a"\npublished=1\nsource="s"\ncolum="x"\n', "targets.0.colum"),
        (
            '[[targets]]\nname="a"\npublished=1\nsource="s"\ncolumn="x"\n[params]\nk=[2,1]\n',
            "params",
        ),
    ],
)
def test_a_bad_targets_file_names_the_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as raised:
        load_targets(path)
    assert raised.value.file == str(path) and raised.value.key.startswith(key)


def test_a_target_date_outside_the_run_is_refused() -> None:
    spec = load_targets(TARGETS)
    with pytest.raises(ScenarioError, match=r"targets\.1\.window.*2017-06-15\.\.2017-06-15"):
        check_dates(spec, *(load_scenario(TINY_SCENARIO).city.start_date,) * 2, "t.toml")


def test_a_param_the_scenario_lacks_is_refused() -> None:
    scenario = load_scenario(TINY_SCENARIO)
    with pytest.raises(ScenarioError, match="adoption.innovaton.youth"):
        resolve_params(load_targets(TARGETS), ["adoption.innovaton.youth=0,1"], scenario, "t")


def test_cli_calibrate_writes_the_fit_and_a_scenario_that_loads(fit: Fit, tmp_path: Path) -> None:
    """Same arguments, same fit as the API; the fitted TOML is a scenario `cashless run` loads."""
    out = tmp_path / "cal"
    args = ["calibrate", str(TINY_SCENARIO), "--targets", str(TARGETS), "--set", "city.days=2"]
    result = CliRunner().invoke(
        app, [*args, "--budget", str(BUDGET), "--out", str(out), "--no-run"]
    )
    assert result.exit_code == 0, result.output
    assert "Calibration: published figures" in result.output
    record = json.loads((out / "calibration.json").read_text())
    assert record["params"][0]["fitted"] == pytest.approx(fit.best.x[0])
    assert record["loss"]["fitted"] < record["loss"]["start"]
    assert [r["simulated"] for r in record["targets"]] == pytest.approx(list(fit.best.simulated))
    table = pl.read_csv(out / "calibration.csv")
    assert table["target"].to_list() == [t.name for t in fit.problem.targets]
    fitted = load_scenario(out / "tiny_calibrated.toml")
    assert fitted.adoption.initial_share == pytest.approx(fit.best.x[0])
    assert not (out / "run").exists()


def test_report_with_targets_adds_the_calibration_table(tmp_path: Path) -> None:
    scenario = load_scenario(TINY_SCENARIO, SHORT)
    run_dir = write_run(tmp_path / "run", scenario, scenario.seed)
    result = CliRunner().invoke(app, ["report", str(run_dir), "--targets", str(TARGETS)])
    assert result.exit_code == 0, result.output
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<h2>Calibration</h2>" in page and "app users in the city" in page
    record = json.loads((run_dir / "calibration.json").read_text())
    youth = pl.read_parquet(run_dir / "daily.parquet")["adopters_youth"][-1]
    assert record["targets"][0]["simulated"] == youth
    bad = CliRunner().invoke(app, ["report", str(run_dir), "--targets", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "x" in bad.output
