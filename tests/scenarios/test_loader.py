"""Scenario files: extends, overrides, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from platform_stub.exceptions import ScenarioError
from scenarios.cli import app
from scenarios.loader import LIBRARY_DIR, load_scenario

BASE = LIBRARY_DIR / "baseline.toml"


def variant(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "variant.toml"
    path.write_text(f'extends = "{BASE.as_posix()}"\n{body}', encoding="utf-8")
    return path


def test_library_scenario_loads_by_name_and_by_path() -> None:
    assert load_scenario("baseline") == load_scenario(BASE)
    assert load_scenario("baseline").city.residents == 3000


def test_extends_keeps_base_keys_and_overrides_only_what_it_names(tmp_path: Path) -> None:
    scenario = load_scenario(variant(tmp_path, "name = 'v'\n[city]\ndays = 9\n"))
    base = load_scenario(BASE)
    assert (scenario.name, scenario.city.days) == ("v", 9)
    assert scenario.city.residents == base.city.residents
    assert scenario.adoption == base.adoption


def test_overrides_set_dotted_keys() -> None:
    assert load_scenario("baseline", {"city.days": 3}).city.days == 3


def test_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = variant(tmp_path, "[city]\nresidnets = 10\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.file == str(path) and caught.value.key == "city.residnets"
    assert "variant.toml" in str(caught.value) and "city.residnets" in str(caught.value)


def test_wrong_type_names_the_key_the_value_and_the_expectation(tmp_path: Path) -> None:
    path = variant(tmp_path, "[city]\ndays = 'sixty'\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.key == "city.days" and caught.value.value == "sixty"
    assert "integer" in caught.value.expected


def test_out_of_range_and_cross_field_rules_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="adoption.smartphone_share.elderly"):
        load_scenario(variant(tmp_path, "[adoption.smartphone_share]\nelderly = 1.5\n"))
    with pytest.raises(ScenarioError, match="sum to 1"):
        load_scenario(variant(tmp_path, "[city.segment_shares]\nelderly = 0.5\n"))


def test_syntax_errors_and_missing_bases_are_scenario_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[city\n")
    with pytest.raises(ScenarioError, match="broken.toml.*valid TOML"):
        load_scenario(broken)
    orphan = tmp_path / "orphan.toml"
    orphan.write_text('extends = "nowhere.toml"\n')
    with pytest.raises(ScenarioError, match="extends"):
        load_scenario(orphan)


def test_cli_reports_a_bad_scenario_and_exits_2(tmp_path: Path) -> None:
    path = variant(tmp_path, "[spending]\ntop_up_fen = 'lots'\n")
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "Error:" in result.output and "spending.top_up_fen" in result.output
    assert not (tmp_path / "run").exists()
