"""The people, shops and buses a replay acts for, made on the platform before the clock starts.

A trace names agents by index; the replay maps them onto a bounded set of real
participants: residents (``agent_id`` modulo ``RESIDENTS_MAX``), merchants
(``target_id`` modulo ``MERCHANTS_MAX``), bus readers (one per bus in the trace, at
most ``BUSES_MAX``) under one operator, and riders (the first ``RIDERS_MAX``
residents, with bus cards). Residents start with ``START_WALLET_FEN`` so that the
trace's payments, which a merged resident makes for several agents, do not run dry.
Set-up calls are not timed; one that fails stops the replay before it starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gevent.pool import Pool
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

from loadtests._people import Resident, Rider
from loadtests.trace import Plan
from platform_stub.service import luhn_complete
from platform_stub.transit import BusReader, Credential, RiderKey

RESIDENTS_MAX = 200
MERCHANTS_MAX = 60
BUSES_MAX = 60
RIDERS_MAX = 40
START_WALLET_FEN = 2_000_000  # 20,000 RMB each
CONNECT_TIMEOUT_S = 5.0
NETWORK_TIMEOUT_S = 10.0
CARD_PREFIX = "622848"  # an Agricultural Bank BIN: replay cards apart from Locust's


class ReplayError(RuntimeError):
    """The replay cannot run: a set-up call failed, or the trace asks for the impossible."""


class Http:
    """JSON over a pooled keep-alive client; transport errors come back as status 0."""

    def __init__(self, host: str, concurrency: int) -> None:
        self.client = HTTPClient.from_url(
            host, concurrency=concurrency, connection_timeout=CONNECT_TIMEOUT_S,
            network_timeout=NETWORK_TIMEOUT_S,
        )

    def call(self, method: str, path: str, token: str | None, body: Any) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = None if body is None else json.dumps(body).encode()
        try:
            resp = self.client.request(method, path, body=payload, headers=headers)
            try:
                data = resp.read()
            finally:
                resp.release()
        except (OSError, HTTPParseError) as exc:  # socket errors, timeouts, a dropped reply
            return 0, {"code": type(exc).__name__}
        try:
            return resp.status_code, json.loads(data) if data else None
        except ValueError:
            return resp.status_code, None

    def setup(self, method: str, path: str, token: str | None, body: Any) -> dict:
        """A set-up call that must succeed."""
        status, reply = self.call(method, path, token, body)
        if status not in (200, 201):
            raise ReplayError(f"set-up {method} {path} answered {status}: {reply}")
        return reply

    def close(self) -> None:
        self.client.close()


@dataclass
class Bus:
    token: str
    reader: BusReader


@dataclass
class World:
    residents: list[Resident]
    merchants: list[str]  # collection codes
    buses: dict[int, Bus]  # by the trace's agent id
    riders: list[Rider]
    counts: dict[str, int] = field(default_factory=dict)

    def resident(self, agent_id: int) -> Resident:
        return self.residents[agent_id % len(self.residents)]

    def merchant(self, target_id: int | None) -> str:
        return self.merchants[(target_id or 0) % len(self.merchants)]

    def bus(self, agent_id: int) -> Bus | None:
        return self.buses.get(agent_id)


def build_world(http: Http, plan: Plan, pool: Pool) -> World:
    """Register everyone the plan needs, in parallel on ``pool``."""
    bus_ids = sorted({c.agent_id for c in plan.calls
                      if c.operation in ("upload_taps", "deny_delta")})[:BUSES_MAX]
    payers = {c.agent_id for c in plan.calls if c.operation in ("pay_merchant", "top_up")}
    shops = {c.target_id or 0 for c in plan.calls if c.operation == "pay_merchant"}
    residents_n = max(1, min(RESIDENTS_MAX, len(payers)), min(RIDERS_MAX, len(bus_ids)))
    residents = pool.map(lambda n: _resident(http, n), range(residents_n))
    merchants_n = max(1, min(MERCHANTS_MAX, len(shops)))
    merchants = pool.map(lambda n: _merchant(http, n), range(merchants_n))
    riders, buses = [], {}
    if bus_ids:
        riders = pool.map(lambda r: _rider(http, r), residents[:RIDERS_MAX])
        operator = http.setup("POST", "/v1/operators", None, {"name": "Replay Bus Company"})
        readers = pool.map(lambda i: _bus(http, operator["token"], i), bus_ids)
        buses = dict(zip(bus_ids, readers, strict=True))
    counts = {"residents": len(residents), "merchants": len(merchants), "buses": len(buses),
              "riders": len(riders)}
    return World(residents, merchants, buses, riders, counts)


def _resident(http: Http, number: int) -> Resident:
    reply = http.setup("POST", "/v1/residents", None, {"name": f"Replay resident {number}"})
    resident = Resident(reply["participant_id"], reply["token"], reply["account_id"])
    card = luhn_complete(f"{CARD_PREFIX}{resident.participant_id % 10**9:09d}")
    http.setup("POST", "/v1/cards", resident.token, {"card_number": card, "bank": "ABC"})
    body = {"amount_fen": START_WALLET_FEN, "request_id": f"replay-start-{number}"}
    http.setup("POST", "/v1/topups", resident.token, body)
    return resident


def _merchant(http: Http, number: int) -> str:
    body = {"name": f"Replay shop {number}", "city": "Wuhan"}
    return http.setup("POST", "/v1/merchants", None, body)["collection_code"]


def _rider(http: Http, resident: Resident) -> Rider:
    key = RiderKey.generate()
    body = {"rider_public_key": key.public_key.hex()}
    reply = http.setup("POST", "/v1/buscards", resident.token, body)
    return Rider(resident, key, Credential.from_bytes(bytes.fromhex(reply["credential"])))


def _bus(http: Http, operator_token: str, agent_id: int) -> Bus:
    reply = http.setup("POST", "/v1/readers", operator_token, {"name": f"Replay bus {agent_id}"})
    keys = http.setup("GET", "/v1/transit/keys", reply["token"], None)["keys"]
    reader = BusReader(f"R{reply['participant_id']}", {int(k): bytes.fromhex(v)
                                                      for k, v in keys.items()})
    return Bus(reply["token"], reader)
