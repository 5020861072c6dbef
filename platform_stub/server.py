"""Run the platform's HTTP API under uvicorn (what `cashless serve` does).

``python -m platform_stub.server --db sqlite:///runs/platform.db --port 8080``
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import uvicorn

from platform_stub.api import create_app
from platform_stub.client import ADMIN_TOKEN_ENV
from platform_stub.service import Platform
from platform_stub.simclock import SIM_CLOCK_ENV, sim_clock_app

DB_ENV = "CASHLESS_DB"
SCENARIO_ENV = "CASHLESS_SCENARIO"
DEFAULT_DB = "sqlite:///runs/platform.db"
LOOPBACK = "127.0.0.1"


def app_from_env() -> Any:
    """App factory for ``uvicorn --factory`` and worker processes: the DB comes from env,
    and so does the platform operator's credential (settlement, metrics)."""
    scenario_path = os.environ.get(SCENARIO_ENV)
    if scenario_path:  # a city's fares, credit gates and campaigns, as in-process runs
        from scenarios.loader import load_scenario
        from scenarios.platform_config import configure_platform, scenario_fares

        scenario = load_scenario(scenario_path)
        platform = Platform.open(os.environ.get(DB_ENV, DEFAULT_DB), scenario_fares(scenario))
        configure_platform(platform, scenario)
    else:
        platform = Platform.open(os.environ.get(DB_ENV, DEFAULT_DB))
    admin_token = os.environ.get(ADMIN_TOKEN_ENV)
    if admin_token:
        platform.ensure_admin(admin_token)
    app = create_app(platform)
    if os.environ.get(SIM_CLOCK_ENV) == "1":
        return sim_clock_app(app, platform)
    return app


def serve(
    db_url: str = DEFAULT_DB,
    host: str = LOOPBACK,
    port: int = 8080,
    log_level: str = "warning",
    workers: int = 1,
    scenario: str | None = None,
    sim_clock: bool = False,
) -> None:
    """Serve until interrupted. Several worker processes need PostgreSQL (or accept that
    SQLite serialises their writes); sync endpoints run in each worker's thread pool,
    payments on its ledger lane (``platform_stub/ledger_lane.py``)."""
    os.environ[DB_ENV] = db_url
    if scenario:
        os.environ[SCENARIO_ENV] = scenario
    if sim_clock:
        os.environ[SIM_CLOCK_ENV] = "1"
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
    parser.add_argument("--scenario", help="configure fares, credit gates and campaigns")
    parser.add_argument(
        "--sim-clock",
        action="store_true",
        help="take now from the X-Cashless-Sim-Time header (simulations only)",
    )
    args = parser.parse_args()
    serve(
        args.db,
        args.host,
        args.port,
        workers=args.workers,
        scenario=args.scenario,
        sim_clock=args.sim_clock,
    )


if __name__ == "__main__":
    main()
