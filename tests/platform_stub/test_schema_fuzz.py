"""Schema-driven fuzzing of the live API (schemathesis): no request makes a 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN

EXAMPLES_PER_OPERATION = 20
FUZZ_TIMEOUT_S = 240


def schemathesis(url: str, token: str, workdir: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "schemathesis"
    return subprocess.run(
        [str(script), "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
         "-n", str(EXAMPLES_PER_OPERATION), "--generation-deterministic",
         "--request-timeout", "5", "-H", f"Authorization: Bearer {token}"],
        capture_output=True, text=True, timeout=FUZZ_TIMEOUT_S, cwd=workdir,
    )


@pytest.mark.slow
def test_no_generated_request_makes_the_server_fail(live_server: str, tmp_path: Path) -> None:
    resident = httpx.post(f"{live_server}/v1/residents", json={"name": "fuzz"}).json()["token"]
    for token in (resident, ADMIN_TOKEN):
        result = schemathesis(live_server, token, tmp_path)
        summary = result.stdout[-3000:]
        assert result.returncode == 0, summary
        counts = re.search(r"(\d+) generated, (\d+) passed\s*$", summary, re.M)
        assert counts and counts[1] == counts[2] and int(counts[1]) > 100, summary
