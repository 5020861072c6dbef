"""Run the platform's HTTP API under uvicorn (what `cashless serve` does).

``python -m platform_stub.server --db sqlite:///runs/platform.db --port 8080``
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn
from fastapi import FastAPI

from platform_stub.api import create_app
from platform_stub.client import ADMIN_TOKEN_ENV
from platform_stub.service import Platform

DB_ENV = "CASHLESS_DB"
DEFAULT_DB = "sqlite:///runs/platform.db"
LOOPBACK = "127.0.0.1"


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and worker processes: the DB comes from env,
    and so does the platform operator's credential (settlement, metrics)."""
    platform = Platform.open(os.environ.get(DB_ENV, DEFAULT_DB))
    admin_token = os.environ.get(ADMIN_TOKEN_ENV)
    if admin_token:
        platform.ensure_admin(admin_token)
    return create_app(platform)


def serve(
    db_url: str = DEFAULT_DB,
    host: str = LOOPBACK,
    port: int = 8080,
    log_level: str = "warning",
    workers: int = 1,
) -> None:
    """Serve until interrupted. Several worker processes need PostgreSQL (or accept that
    SQLite serialises their writes); sync endpoints run in each worker's thread pool."""
    os.environ[DB_ENV] = db_url
    if not os.environ.get(ADMIN_TOKEN_ENV):
        print(
            f"{ADMIN_TOKEN_ENV} is not set: settlement and metrics endpoints refuse every caller",
            file=sys.stderr,
        )
    uvicorn.run(
        "platform_stub.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        workers=workers,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Cashless City platform API.")
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve(args.db, args.host, args.port, workers=args.workers)


if __name__ == "__main__":
    main()
