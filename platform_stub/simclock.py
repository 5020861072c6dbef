"""Simulated time over HTTP: a server started with ``--sim-clock`` takes "now" from
the caller's ``X-Cashless-Sim-Time`` header, so an agent model driving it over HTTP
meets the same campaign days, bill due dates and credit tenure as in-process.

Only for simulation servers: a production platform never trusts a client's clock,
so the header is ignored unless the server was started in this mode.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Callable
from typing import Any

from platform_stub.service import Platform, china_now

SIM_TIME_HEADER = "x-cashless-sim-time"
SIM_CLOCK_ENV = "CASHLESS_SIM_CLOCK"
_sim_time: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar(
    "sim_time", default=None
)


def sim_clock_app(app: Any, platform: Platform) -> Any:
    """Wrap an ASGI app: requests carrying the header run at that time."""
    platform.clock = lambda: _sim_time.get() or china_now()

    async def with_sim_time(scope: dict, receive: Callable, send: Callable) -> None:
        when = None
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == SIM_TIME_HEADER.encode():
                    when = _parse(value.decode("latin-1"))
        token = _sim_time.set(when)
        try:
            await app(scope, receive, send)
        finally:
            _sim_time.reset(token)

    return with_sim_time


def _parse(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None  # a malformed header is ignored: the wall clock applies
    return when if when.tzinfo else None


def send_sim_time(client: Any, clock: Callable[[], dt.datetime]) -> None:
    """Make an ``HttpClient`` stamp every request with ``clock()`` (timezone-aware)."""

    def stamp(request: Any) -> None:
        request.headers[SIM_TIME_HEADER] = clock().isoformat()

    client._http.event_hooks["request"].append(stamp)  # noqa: SLF001 - httpx's hook list
