"""Gates: a breached service level, a lost tap or a broken ledger fails a run.

The last two fail it whatever its latency: a platform that is fast and loses money
or taps has failed its load test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtests import run_loadtest, runner

TIGHT = '[endpoints."POST /v1/payments"]\np99_ms = 0.001\nrps_min = 1000000\n'
COMMAND_LIMIT_S = 120


@pytest.mark.slow
def test_a_tight_service_level_fails_the_command_printing_each_breach(tmp_path: Path) -> None:
    slo = tmp_path / "tight.toml"
    slo.write_text(TIGHT)
    out_dir = tmp_path / "out"
    command = [sys.executable, "-m", "scenarios.cli", "loadtest", "payments", "--users", "3",
               "--duration", "60s", "--requests", "60", "--slo", str(slo), "--out", str(out_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_LIMIT_S,
                          env={**os.environ, "COLUMNS": "200"})

    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 users, 60 requests or 60 s (stopped by requests)" in done.stdout
    assert "service level breached: POST /v1/payments: p99_ms" in done.stderr
    assert "service level breached: POST /v1/payments: rps_min" in done.stderr
    assert "2 service level(s) breached" in done.stderr
    verdict = json.loads((out_dir / "loadtest.json").read_text())
    assert (verdict["passed"], verdict["exit_code"]) == (False, 3)  # Locust's own exit code
    assert [b.split(":")[1].split()[0] for b in verdict["breaches"]] == ["p99_ms", "rps_min"]
    assert verdict["audit"]["audit_ok"]  # the ledger is fine: only the levels failed


@pytest.fixture
def broken_ledger_and_a_lost_tap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's checks see a broken invariant and one tap a reader uploaded in vain."""
    check_taps = runner.check_taps

    def with_a_phantom_tap(db_url: str, tallies: dict[str, dict[str, int]]) -> Any:
        reader = sorted(tallies)[0]
        phantom = {**tallies[reader], "uploaded": tallies[reader]["uploaded"] + 1}
        return check_taps(db_url, {**tallies, reader: phantom})

    def broken(db_url: str) -> dict:
        return {"audit_ok": False, "checks": {"debits_equal_credits": {"ok": False}}}

    monkeypatch.setattr(runner, "check_taps", with_a_phantom_tap)
    monkeypatch.setattr(runner, "_audit", broken)


@pytest.mark.slow
@pytest.mark.usefixtures("broken_ledger_and_a_lost_tap")
def test_a_lost_tap_or_a_broken_invariant_fails_a_run_within_its_levels(tmp_path: Path) -> None:
    """200 requests: enrolling the riders takes about 100, the rest leave taps uploaded."""
    result = run_loadtest("transit", tmp_path, users=2, duration_s=60, requests_max=200)

    assert (result.exit_code, result.breaches, result.total_failures) == (0, [], 0)
    assert result.taps["lost"] == 1
    assert not result.passed
    assert result.reasons == [
        "ledger audit failed: debits_equal_credits",
        "1 tap(s) lost: uploaded without an outcome row",
    ]
    assert json.loads((tmp_path / "loadtest.json").read_text())["passed"] is False
