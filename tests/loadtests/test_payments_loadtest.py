"""The payments load test: Shoppers against a real platform server, judged by the runner.

Locust runs in a subprocess (it patches the stdlib for gevent), so nothing here
imports locust. A successful payment and a successful top-up are one ledger
transfer each; registering and binding a card create accounts but no transfer.
With zero failures the ledger therefore holds exactly payments + top-ups transfers.

Runs are bounded by a request count (``REQUESTS``), with ``CAP_S`` only as the cap on
their length: on a busy machine a run bounded by time alone spent it in set-up and
never reached the balance task.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests import LOCUSTFILES, LoadtestResult, run_loadtest
from platform_stub import Platform
from tests.servers import free_port, start_server, stop_server

USERS = 5
REQUESTS = 150  # about 120 tasks after 5 users' set-up: (10/11)**120 that none is a balance
CAP_S = 60


def _assert_clean_payments_run(result: LoadtestResult) -> None:
    """No failure anywhere, and both tasks' endpoints really were exercised."""
    assert result.exit_code == 0
    assert (result.total_failures, result.failures) == (0, [])
    for name, method in (("/v1/payments", "POST"), ("/v1/balance", "GET")):
        row = result.row(name, method)
        assert row.requests > 0, name
        assert row.failures == 0, name
    assert result.row("/v1/payments").requests > result.row("/v1/balance").requests
    assert result.stats_source.startswith("locust_final_stats.csv")
    assert result.passed
    # The count ended the run: once reached, users only finish the task in hand.
    assert (result.stopped_by, result.requests_max) == ("requests", REQUESTS)
    assert REQUESTS <= result.total_requests < REQUESTS + 10 * USERS


def _transfers_expected(result: LoadtestResult) -> int:
    return result.row("/v1/payments").requests + result.row("/v1/topups").requests


def _csv_total_requests(path: Path) -> int:
    with path.open(newline="") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    return int(rows["Aggregated"]["Request Count"])


@pytest.mark.slow
def test_runner_serves_loads_and_audits_its_own_platform(tmp_path: Path) -> None:
    """Without a host the runner serves a fresh ledger, loads it and audits it: it balances."""
    result = run_loadtest("payments", tmp_path, USERS, duration_s=CAP_S, requests_max=REQUESTS)

    _assert_clean_payments_run(result)
    assert result.host.startswith("http://127.0.0.1:")
    assert result.audit["audit_ok"], result.audit["checks"]
    assert result.audit["transfer_count"] == _transfers_expected(result)
    for name in ("locust_stats.csv", "locust_failures.csv", "locust.html", "platform.db"):
        assert (tmp_path / name).is_file(), name
    written = json.loads((tmp_path / "loadtest.json").read_text())
    assert (written["passed"], written["total_requests"]) == (True, result.total_requests)
    # Locust's periodic CSV is a snapshot up to a second old: never ahead of the final totals.
    assert _csv_total_requests(tmp_path / "locust_stats.csv") <= result.total_requests


@pytest.fixture
def served_db(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a platform server this test starts and stops itself."""
    db_url = f"sqlite:///{tmp_path / 'served.db'}"
    proc, url = start_server(db_url, tmp_path / "served.log")
    try:
        yield url, db_url
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_runner_loads_a_given_host_and_leaves_its_ledger_balanced(
    served_db: tuple[str, str], tmp_path: Path
) -> None:
    """With a host the runner neither serves nor audits; the test audits the ledger itself."""
    url, db_url = served_db
    out_dir = tmp_path / "out"
    result = run_loadtest(
        "payments", out_dir, USERS, duration_s=CAP_S, host=url, requests_max=REQUESTS
    )

    _assert_clean_payments_run(result)
    assert (result.host, result.audit) == (url, {})
    assert not (out_dir / "platform.db").exists()
    platform = Platform.open(db_url)
    try:
        report = platform.audit()
    finally:
        platform.close()
    assert report.ok, report.broken
    assert report.transfer_count == _transfers_expected(result)


@pytest.mark.slow
def test_a_host_that_refuses_connections_fails_the_run(tmp_path: Path) -> None:
    """Refused connections are counted failures and the run does not pass."""
    host = f"http://127.0.0.1:{free_port()}"
    result = run_loadtest("payments", tmp_path, users=2, duration_s=1, host=host)

    assert not result.passed
    assert result.exit_code != 0
    assert result.total_failures > 0
    assert {f.name for f in result.failures} == {"/v1/residents"}


@pytest.mark.usefixtures("nothing_may_start")
def test_an_unknown_name_is_refused_listing_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known load tests: .*payments"):
        run_loadtest("checkout", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert "payments" in LOCUSTFILES


@pytest.mark.usefixtures("nothing_may_start")
@pytest.mark.parametrize(
    "host",
    [
        "http://10.0.0.1:8080",
        "http://192.168.1.20",
        "https://example.com",
        "http://localhost.example.com:8080",
        "http://[2001:db8::1]:8080",
        "127.0.0.1:8080",  # no scheme: not a URL Locust can use
    ],
)
def test_a_host_off_loopback_is_refused_before_anything_starts(host: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host"):
        run_loadtest("payments", tmp_path / "out", host=host)
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("nothing_may_start")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration_s": 2.5}, "whole number of seconds"),
        ({"duration_s": 0}, "whole number of seconds"),
        ({"users": 0}, "users must be at least 1"),
        ({"spawn_rate": 0}, "spawn_rate must be a positive"),
        ({"host": "http://127.0.0.1:8080", "db_url": "sqlite:///x.db"}, "db_url applies only"),
        ({"requests_max": 0}, "requests_max must be a whole number >= 1"),
        ({"requests_max": 2.5}, "requests_max must be a whole number >= 1"),
        ({"requests_max": True}, "requests_max must be a whole number >= 1"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    kwargs: dict, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        run_loadtest("payments", tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
