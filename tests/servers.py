"""Start and stop a real platform server (uvicorn on loopback) for tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SERVER_START_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    db_url: str,
    log_path: Path,
    workers: int = 1,
    scenario: Path | None = None,
    sim_clock: bool = False,
) -> tuple[subprocess.Popen, str]:
    """`python -m platform_stub.server` on a free loopback port, waited on until healthy."""
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "platform_stub.server",
            "--db",
            db_url,
            "--port",
            str(port),
            "--workers",
            str(workers),
            *(["--scenario", str(scenario)] if scenario else []),
            *(["--sim-clock"] if sim_clock else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server not healthy within {SERVER_START_S} s: {log_path.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
