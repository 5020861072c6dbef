"""The `cashless` console script: audit and serve, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from platform_stub import Platform
from platform_stub.service import luhn_complete
from scenarios.cli import app, parse_duration_s
from tests.servers import free_port, stop_server

SERVE_WAIT_S = 30


def small_ledger(path: Path) -> None:
    platform = Platform.open(f"sqlite:///{path}")
    payer = platform.register_resident("张伟")
    shop = platform.register_merchant("热干面", "武汉")
    platform.bind_card(payer.token, luhn_complete("622202000000001"), "ICBC")
    platform.top_up(payer.token, 1000, "t1")
    platform.pay_merchant(payer.token, shop.collection_code, 350, "p1")
    platform.close()


def test_audit_passes_on_a_sound_ledger_and_names_a_broken_invariant(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    small_ledger(db)
    sound = CliRunner().invoke(app, ["audit", str(tmp_path)])
    assert sound.exit_code == 0, sound.output
    assert "balances_match_transfers" in sound.output and "BROKEN" not in sound.output
    platform = Platform.open(f"sqlite:///{db}")
    with platform.db.transaction() as tx:
        tx.execute(
            "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE name = ?",
            ("merchant:2",),
        )
    platform.close()
    broken = CliRunner().invoke(app, ["audit", str(db)])
    assert broken.exit_code == 1
    assert "Error: broken invariant" in broken.output
    assert "balances_match_transfers" in broken.output.split("Error:")[1]


def test_audit_of_a_missing_ledger_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["audit", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no ledger" in result.output


def test_serve_publishes_openapi_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    script = Path(sys.executable).parent / "cashless"
    proc = subprocess.Popen(
        [str(script), "serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        spec = None
        deadline = time.monotonic() + SERVE_WAIT_S
        while spec is None and time.monotonic() < deadline:
            try:
                spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert spec is not None and "/v1/payments" in spec["paths"]
    finally:
        stop_server(proc)


def test_durations_parse_with_units() -> None:
    assert [parse_duration_s(t) for t in ("20s", "2m", "1h", "7")] == [20, 120, 3600, 7]


def test_report_rebuilds_the_pictures_of_a_run_folder(tmp_path: Path) -> None:
    from scenarios.loader import load_scenario
    from scenarios.runner import run_scenario
    from tests.conftest import TINY_SCENARIO

    folder = run_scenario(load_scenario(TINY_SCENARIO, {"city.days": 2}), tmp_path / "r").out_dir
    (folder / "report.html").unlink()
    for png in (folder / "figures").glob("*.png"):
        png.unlink()
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "report.html").stat().st_size > 10_000
    assert len(list((folder / "figures").glob("*.png"))) >= 3
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "not a run folder" in missing.output
