"""Shared fixtures: both storage backends, and a real uvicorn server on loopback.

PostgreSQL tests run against the server on 127.0.0.1:5432 (database ``test``),
each test in a schema of its own. Without a server they skip, except under CI
(CI=true), where a missing server is a failure, not a silent skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import start_server, stop_server

PG_URL = os.environ.get("CASHLESS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema, for tests about PostgreSQL itself (several workers)."""
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


ADMIN_TOKEN = "test-operator-credential-0123456789"


@pytest.fixture
def live_server(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Base URL of a real uvicorn serving the platform on ``db_url``; the platform
    operator's credential is ``ADMIN_TOKEN``."""
    monkeypatch.setenv("CASHLESS_ADMIN_TOKEN", ADMIN_TOKEN)
    proc, url = start_server(db_url, tmp_path / "server.log")
    try:
        yield url
    finally:
        stop_server(proc)
