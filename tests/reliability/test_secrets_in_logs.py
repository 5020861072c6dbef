"""Secrets never reach the server's log: tokens, payment codes, offline codes, the
platform operator's credential."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from platform_stub import HttpClient
from platform_stub.clearing import UploadedTap
from platform_stub.exceptions import PlatformError
from tests.conftest import ADMIN_TOKEN
from tests.reliability.world import build_city
from tests.servers import SERVER_START_S, free_port, start_server, stop_server

FORGED_TOKEN = "forged-credential-abcdef0123456789"


def _traffic(url: str) -> list[str]:
    """Calls that succeed and calls that fail, each carrying a secret; returns them."""
    client = HttpClient(url, admin_token=ADMIN_TOKEN)
    city = build_city(client, url)
    paycode = client.issue_paycode(city.rider_token)
    client.charge_paycode(city.merchant_token, paycode, 100, "pc-1")
    with pytest.raises(PlatformError):
        client.charge_paycode(city.merchant_token, paycode, 100, "pc-2")  # used code
    client.pay_merchant(city.rider_token, city.collection_code, 50, "pay-1")
    city.scan_taps(2)
    batch_id, taps = city.uploaded()
    client.upload_taps(city.reader_token, batch_id, taps)
    bad = [UploadedTap(9, taps[0].code[:-3] + "AAA", taps[0].scanned_at_s)]
    client.upload_taps(city.reader_token, "bad-batch", bad)  # a refused, tampered tap
    client.close_settlement()
    for token in (FORGED_TOKEN, city.rider_token):
        httpx.post(f"{url}/v1/settlement/close", timeout=10,
                   headers={"Authorization": f"Bearer {token}"})
    httpx.post(f"{url}/v1/payments", timeout=10, content=b"{" + paycode.encode(),
               headers={"Authorization": f"Bearer {city.rider_token}"})
    client.close()
    return [city.rider_token, city.merchant_token, city.operator_token, city.reader_token,
            paycode, *(t.code for t in taps), FORGED_TOKEN, ADMIN_TOKEN]


def _start_debug(db_url: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """The same server with uvicorn at debug level, so the log has something to leak."""
    port = free_port()
    code = ("import sys; from platform_stub.server import serve;"
            " serve(sys.argv[1], port=int(sys.argv[2]), log_level='debug')")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code, db_url, str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(SERVER_START_S * 10):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"debug server not healthy: {log_path.read_text()}")


@pytest.mark.slow
@pytest.mark.parametrize("level", ["default", "debug"])
def test_no_secret_appears_in_the_server_log(
        level: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASHLESS_ADMIN_TOKEN", ADMIN_TOKEN)
    log_path = tmp_path / "server.log"
    start = start_server if level == "default" else _start_debug
    proc, url = start(f"sqlite:///{tmp_path / 'ledger.db'}", log_path)
    try:
        secrets = _traffic(url)
    finally:
        stop_server(proc)
    log = log_path.read_text(errors="replace")
    leaked = [s[:12] + "..." for s in secrets if s in log]
    assert not leaked, f"secrets in the server log: {leaked}"
    if level == "debug":
        assert log.count("\n") >= 3, "the debug log records the traffic"
