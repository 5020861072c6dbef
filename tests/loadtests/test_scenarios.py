"""Every load-test scenario, headless for a few seconds against a platform the runner serves.

Each run must exercise its roles' endpoints (by the names Locust groups them under),
fail nothing, keep the ledger balanced, lose no tap, and leave a run folder a latency
report can be drawn from: Locust's CSV and HTML (the replay has none), our histograms,
``latency.parquet`` and the verdict in ``loadtest.json``.

Scenarios without a shape run until ``REQUESTS`` requests (``CAP_S`` caps their
length), so a busy machine cannot end one before its users got past their set-up;
shaped ones scale their stages to the duration, so they run for ``SHAPED_S``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from loadtests import LoadtestResult, run_loadtest
from loadtests.runner import LOCUSTFILES, SCENARIOS
from platform_stub.exceptions import ScenarioError

REQUESTS = 150
CAP_S = 60
# Seconds of each shape. The ramp starts at a seventh of its users, so its bus readers
# spawn late: in 2 s on a loaded machine none had scanned a tap before the end (seen in CI).
SHAPED = {"ramp": 4, "spike": 2, "soak": 2, "cityday": 2}

CITY = {"POST /v1/payments", "POST /v1/transit/batches", "POST /v1/settlement/close"}
TRANSIT = {"POST /v1/operators", "POST /v1/readers", "GET /v1/transit/keys",
           "POST /v1/buscards", "SCAN offline code", "POST /v1/transit/batches",
           "GET /v1/transit/deny"}
REPLAY = {"POST /v1/payments", "POST /v1/topups", "POST /v1/transit/batches",
          "GET /v1/transit/deny", "POST /v1/settlement/close", "POST /v1/residents"}
EXPECTED: dict[str, set[str]] = {
    "paycodes": {"POST /v1/merchants", "POST /v1/residents", "POST /v1/paycodes",
                 "POST /v1/paycodes/charge"},
    "hospital": {"POST /v1/hospitals", "POST /v1/hospital/visits",
                 "POST /v1/hospital/visits/{id}/charges", "POST /v1/hospital/visits/{id}/finalize"},
    "bills": {"POST /v1/billers", "POST /v1/bills", "GET /v1/bills", "POST /v1/bills/{id}/pay"},
    "ramp": CITY,
    "spike": {"SCAN offline code", "POST /v1/transit/batches", "POST /v1/settlement/close"},
    "soak": CITY | {"POST /v1/paycodes/charge", "GET /v1/balance"},
    "cityday": CITY,
}  # fmt: skip


def names(result: LoadtestResult) -> set[str]:
    return {f"{row.method} {row.name}" for row in result.stats}


def assert_clean(result: LoadtestResult, out_dir: Path) -> None:
    """Passed with nothing failed, the audit and the tap check holding, the files there."""
    assert result.passed, (result.reasons, result.breaches, result.failures)
    assert (result.total_failures, result.breaches) == (0, [])
    assert result.audit["audit_ok"], result.audit["checks"]
    assert result.taps["ok"] and result.taps["uploaded"] == result.taps["outcome_rows"]
    verdict = json.loads((out_dir / "loadtest.json").read_text())
    assert (verdict["passed"], verdict["reasons"]) == (True, [])
    latency = pl.read_parquet(out_dir / "latency.parquet")
    assert latency.height > 0 and latency["p99_ms"].min() > 0
    assert set(latency["endpoint"]) == set(result.latency_ms["latency"])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_scenario_runs_clean_with_its_requests(
    name: str, city_run: Path, tmp_path: Path
) -> None:
    trace = city_run if name == "cityday" else None
    bound = {"duration_s": SHAPED[name]} if name in SHAPED else {
        "duration_s": CAP_S, "requests_max": REQUESTS}
    result = run_loadtest(name, tmp_path, users=8, trace=trace, **bound)

    assert_clean(result, tmp_path)
    assert EXPECTED[name] <= names(result), sorted(names(result))
    assert result.stats_source.startswith("locust_final_stats.csv")
    assert (tmp_path / "locust.html").is_file()
    assert set(result.latency_ms["latency"]) == names(result)  # ours count what Locust does


@pytest.mark.slow
def test_readers_upload_every_tap_they_accept(tmp_path: Path) -> None:
    """A transit run: readers empty their queues on stop, and each tap has its outcome.
    Bounded by requests: readers wait in ``on_start`` while the first enrols every rider
    under a lock, and a reader still there at a timed stop reports no tally. Enrolling
    24 riders takes about 100 requests, so 250 leave every reader scanning."""
    result = run_loadtest("transit", tmp_path, users=4, duration_s=CAP_S, requests_max=250)

    assert_clean(result, tmp_path)
    assert names(result) >= TRANSIT, sorted(names(result))
    assert result.taps["readers"] == 4
    assert result.taps["accepted"] == result.taps["uploaded"] > 0
    assert result.row("offline code", "SCAN").requests == result.taps["accepted"]


@pytest.mark.slow
def test_the_replay_measures_from_each_call_s_scheduled_time(
    city_run: Path, tmp_path: Path
) -> None:
    """Two calls in flight at most for a busy day: calls start late, and latency counts it."""
    result = run_loadtest("replay", tmp_path, users=2, duration_s=2, trace=city_run)

    assert_clean(result, tmp_path)
    assert names(result) >= REPLAY, sorted(names(result))
    assert result.stats_source.startswith("histograms.json")
    kinds = result.latency_ms
    assert set(kinds) == {"latency", "service", "lateness"}
    for endpoint, latency in kinds["latency"].items():
        assert latency["max_ms"] >= kinds["service"][endpoint]["max_ms"]
        assert kinds["lateness"][endpoint]["count"] == latency["count"]
    assert result.replay["sent"] == result.total_requests
    assert result.replay["lateness_ms"]["max_ms"] > 0
    assert "bind_card" in result.replay["skipped"]  # its card was bound before the clock


@pytest.mark.slow
def test_distributed_city_runs_a_master_and_workers(tmp_path: Path) -> None:
    """Two worker processes: their histograms reach the master and count what Locust counts."""
    result = run_loadtest(
        "city", tmp_path, users=8, duration_s=CAP_S, workers=2, requests_max=REQUESTS
    )

    assert_clean(result, tmp_path)
    assert CITY | {"POST /v1/paycodes/charge", "POST /v1/hospital/visits",
                   "POST /v1/bills/{id}/pay"} <= names(result)
    assert result.workers == 2
    assert sorted(p.name for p in tmp_path.glob("locust-worker-*.log")) == [
        "locust-worker-1.log", "locust-worker-2.log"]
    hdr_total = sum(f["count"] for f in result.latency_ms["latency"].values())
    assert hdr_total == result.total_requests


def test_every_scenario_is_tested_here_or_in_the_payments_tests() -> None:
    assert set(SCENARIOS) == {*EXPECTED, "transit", "replay", "city", "payments"}
    assert set(LOCUSTFILES) == set(SCENARIOS) - {"replay"}


@pytest.mark.usefixtures("nothing_may_start")
@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("cityday", {}, "cityday needs a trace"),
        ("replay", {"trace": "no-such-run"}, "no trace at no-such-run"),
        ("payments", {"trace": "."}, "a trace applies only to cityday and replay"),
        ("city", {"workers": 33}, "workers must be 0"),
        ("city", {"workers": -1}, "workers must be 0"),
        ("replay", {"workers": 2}, "the replay runs in one process"),
        ("replay", {"trace": ".", "requests_max": 10}, "requests_max is for Locust scenarios"),
    ],
)
def test_bad_scenario_arguments_are_refused_before_anything_starts(
    name: str, kwargs: dict, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        run_loadtest(name, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("nothing_may_start")
def test_a_bad_service_level_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    slo = tmp_path / "levels.toml"
    slo.write_text("[default]\np99 = 5\n")
    with pytest.raises(ScenarioError, match="default.p99"):
        run_loadtest("payments", tmp_path / "out", slo=slo)
    assert not (tmp_path / "out").exists()
