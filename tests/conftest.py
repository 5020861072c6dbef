"""Shared fixtures: both storage backends, and a real uvicorn server on loopback.

PostgreSQL tests run against the server on 127.0.0.1:5432 (database ``test``),
each test in a schema of its own. Without a server they skip, except under CI
(CI=true), where a missing server is a failure, not a silent skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PG_URL = os.environ.get("CASHLESS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SERVER_START_S = 30
TINY_SCENARIO = Path(__file__).parent / "data" / "tiny.toml"


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return str(exc)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    yield from _pg_schema_url()


def _pg_schema_url() -> Iterator[str]:
    import psycopg

    problem = _pg_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL unreachable under CI: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(db_url: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """`python -m platform_stub.server` on a free loopback port, waited on until healthy."""
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "platform_stub.server", "--db", db_url, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
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


@pytest.fixture
def live_server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """Base URL of a real uvicorn serving the platform on ``db_url``."""
    proc, url = start_server(db_url, tmp_path / "server.log")
    try:
        yield url
    finally:
        stop_server(proc)
