"""Service-level files: validated with the file and key named, judged level by level."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.hdr import EndpointFigures
from loadtests.slo import DEFAULT_SLO, load_service_levels, parse_service_levels
from platform_stub.exceptions import ScenarioError

PAYMENTS = "POST /v1/payments"


def figures(
    endpoint: str = PAYMENTS, count: int = 100, failures: int = 0, rps: float = 50.0,
    p99_ms: float = 20.0,
) -> EndpointFigures:
    latency = {"p50_ms": p99_ms / 4, "p90_ms": p99_ms / 2, "p95_ms": p99_ms / 1.5,
               "p99_ms": p99_ms, "p999_ms": p99_ms, "max_ms": p99_ms, "mean_ms": p99_ms / 4}
    return EndpointFigures("latency", endpoint, count, failures, rps, latency)


def levels(text: str, tmp_path: Path):  # noqa: ANN201 - ServiceLevels
    path = tmp_path / "slo.toml"
    path.write_text(text)
    return load_service_levels(path)


def test_the_default_file_is_valid_and_sets_a_default_p99() -> None:
    slo = load_service_levels(DEFAULT_SLO)
    assert slo.default["p99_ms"] > 0
    assert 0 < slo.default["failure_ratio_max"] < 1


def test_an_endpoint_table_overrides_the_default_key_by_key(tmp_path: Path) -> None:
    slo = levels(
        '[default]\np99_ms = 500\nfailure_ratio_max = 0.01\n'
        f'[endpoints."{PAYMENTS}"]\np99_ms = 200\nrps_min = 5\n', tmp_path,
    )
    assert slo.levels_for(PAYMENTS) == {"p99_ms": 200, "failure_ratio_max": 0.01, "rps_min": 5}
    assert slo.levels_for("GET /v1/balance") == {"p99_ms": 500, "failure_ratio_max": 0.01}


def test_a_run_within_every_level_has_no_breach(tmp_path: Path) -> None:
    slo = levels(f'[endpoints."{PAYMENTS}"]\np99_ms = 200\nrps_min = 5\n', tmp_path)
    assert slo.check({PAYMENTS: figures()}, figures("total")) == []


@pytest.mark.parametrize(
    ("measured", "level", "shown"),
    [
        (figures(p99_ms=250), "p99_ms", "POST /v1/payments: p99_ms 250 > 200"),
        (figures(failures=2), "failure_ratio_max", "failure_ratio_max 0.02 > 0.01"),
        (figures(rps=4.5), "rps_min", "rps_min 4.5 < 5"),
    ],
)
def test_each_kind_of_level_breaks_when_its_bound_is_passed(
    measured: EndpointFigures, level: str, shown: str, tmp_path: Path
) -> None:
    slo = levels(
        f'[endpoints."{PAYMENTS}"]\np99_ms = 200\nfailure_ratio_max = 0.01\nrps_min = 5\n',
        tmp_path,
    )
    breaches = slo.check({PAYMENTS: measured}, None)
    assert [b.level for b in breaches] == [level]
    assert shown in str(breaches[0])


def test_an_endpoint_never_called_breaks_only_an_explicit_rps_min(tmp_path: Path) -> None:
    slo = levels(
        '[default]\np99_ms = 1\n[endpoints."GET /v1/balance"]\np99_ms = 1\n'
        '[endpoints."POST /v1/topups"]\nrps_min = 1\n', tmp_path,
    )
    breaches = slo.check({}, None)
    assert [(b.endpoint, b.level) for b in breaches] == [("POST /v1/topups", "rps_min")]


def test_the_total_table_judges_all_requests_together(tmp_path: Path) -> None:
    slo = levels("[total]\nrps_min = 100\n", tmp_path)
    breaches = slo.check({PAYMENTS: figures()}, figures("total", rps=60))
    assert [(b.endpoint, b.level) for b in breaches] == [("total", "rps_min")]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[defaults]\np99_ms = 1\n", "defaults"),
        ("[default]\np98_ms = 1\n", "default.p98_ms"),
        ("[default]\np99_ms = 'fast'\n", "default.p99_ms"),
        ("[default]\np99_ms = true\n", "default.p99_ms"),
        ("[default]\np99_ms = -1\n", "default.p99_ms"),
        ("[default]\nfailure_ratio_max = 1.5\n", "default.failure_ratio_max"),
        ('[endpoints."/v1/payments"]\np99_ms = 1\n', "endpoints./v1/payments"),
        (f'[endpoints."{PAYMENTS}"]\nrps = 1\n', f'endpoints."{PAYMENTS}".rps'),
        ("default = 3\n", "default"),
        ("[default\n", "(file)"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key(
    text: str, key: str, tmp_path: Path
) -> None:
    with pytest.raises(ScenarioError) as raised:
        levels(text, tmp_path)
    assert raised.value.code == "scenario_invalid"
    assert raised.value.key == key
    assert str(tmp_path / "slo.toml") in raised.value.detail


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no-such.toml"):
        load_service_levels(tmp_path / "no-such.toml")


def test_parsing_needs_no_file() -> None:
    slo = parse_service_levels({"total": {"rps_min": 1}}, "inline")
    assert (slo.source, slo.total) == ("inline", {"rps_min": 1.0})
