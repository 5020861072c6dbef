"""The one interface agents use to reach the platform, with two implementations.

``InProcessClient`` calls :class:`Platform` directly (fast: research runs and
sweeps); ``HttpClient`` makes the same calls over the real API. Both raise the
same :mod:`platform_stub.exceptions` classes with the same codes, so a model run
gives the same outcome on either.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict
from typing import Any, Protocol

import httpx

from platform_stub.buscards import DenyDelta
from platform_stub.clearing import TapOutcome, UploadedTap
from platform_stub.exceptions import PlatformError, StorageUnavailable, platform_error
from platform_stub.service import Platform, Receipt, Registration
from platform_stub.settlement import Position, SettlementReport
from platform_stub.transit_service import TransitMetrics

ADMIN_TOKEN_ENV = "CASHLESS_ADMIN_TOKEN"

HTTP_TIMEOUT_S = 10.0
HTTP_RETRIES_MAX = 3
RETRY_PAUSE_S = 0.05


class PlatformClient(Protocol):
    """What an agent may ask of the platform."""

    def register_resident(self, name: str) -> Registration: ...
    def register_merchant(self, name: str, city: str, mcc: str = "5812") -> Registration: ...
    def bind_card(self, token: str, card_number: str, bank: str) -> str: ...
    def top_up(self, token: str, amount_fen: int, request_id: str) -> Receipt: ...
    def withdraw(self, token: str, amount_fen: int, request_id: str) -> Receipt: ...
    def pay_merchant(
        self, token: str, collection_code: str, amount_fen: int, request_id: str
    ) -> Receipt: ...
    def balance_fen(self, token: str) -> int: ...
    def register_operator(self, name: str) -> Registration: ...
    def register_reader(self, operator_token: str, name: str) -> Registration: ...
    def claim_bus_card(self, token: str, rider_public_key: bytes) -> bytes: ...
    def transit_public_keys(self, reader_token: str) -> dict[int, bytes]: ...
    def deny_delta(self, reader_token: str, since: int) -> DenyDelta: ...
    def upload_taps(
        self, reader_token: str, batch_id: str, taps: list[UploadedTap]
    ) -> list[TapOutcome]: ...
    def close(self) -> None: ...


class InProcessClient:
    """Direct calls into a :class:`Platform` in this process."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def register_resident(self, name: str) -> Registration:
        return self.platform.register_resident(name)

    def register_merchant(self, name: str, city: str, mcc: str = "5812") -> Registration:
        return self.platform.register_merchant(name, city, mcc)

    def bind_card(self, token: str, card_number: str, bank: str) -> str:
        return self.platform.bind_card(token, card_number, bank)

    def top_up(self, token: str, amount_fen: int, request_id: str) -> Receipt:
        return self.platform.top_up(token, amount_fen, request_id)

    def withdraw(self, token: str, amount_fen: int, request_id: str) -> Receipt:
        return self.platform.withdraw(token, amount_fen, request_id)

    def pay_merchant(
        self, token: str, collection_code: str, amount_fen: int, request_id: str
    ) -> Receipt:
        return self.platform.pay_merchant(token, collection_code, amount_fen, request_id)

    def balance_fen(self, token: str) -> int:
        return self.platform.balance_fen(token)

    def register_operator(self, name: str) -> Registration:
        return self.platform.transit.register_operator(name)

    def register_reader(self, operator_token: str, name: str) -> Registration:
        return self.platform.transit.register_reader(operator_token, name)

    def claim_bus_card(self, token: str, rider_public_key: bytes) -> bytes:
        return self.platform.transit.claim_bus_card(token, rider_public_key)

    def transit_public_keys(self, reader_token: str) -> dict[int, bytes]:
        return self.platform.transit.public_keys(reader_token)

    def deny_delta(self, reader_token: str, since: int) -> DenyDelta:
        return self.platform.transit.deny_delta(reader_token, since)

    def upload_taps(
        self, reader_token: str, batch_id: str, taps: list[UploadedTap]
    ) -> list[TapOutcome]:
        return self.platform.transit.upload_taps(reader_token, batch_id, taps)

    def close_settlement(self) -> SettlementReport:
        return self.platform.close_settlement()

    def transit_metrics(self) -> TransitMetrics:
        return self.platform.transit.metrics()

    def close(self) -> None:
        """The platform belongs to whoever built it; nothing to release here."""


class HttpClient:
    """The same calls over HTTP. Mutations carry request ids, so a retry after a
    dropped connection or a 503 is safe: the ledger returns the first outcome."""

    def __init__(
        self, base_url: str, timeout_s: float = HTTP_TIMEOUT_S, admin_token: str | None = None
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s)
        self._admin_token = admin_token or os.environ.get(ADMIN_TOKEN_ENV)

    def register_resident(self, name: str) -> Registration:
        return Registration(**self._create("/v1/residents", None, {"name": name}))

    def register_merchant(self, name: str, city: str, mcc: str = "5812") -> Registration:
        body = {"name": name, "city": city, "mcc": mcc}
        return Registration(**self._create("/v1/merchants", None, body))

    def bind_card(self, token: str, card_number: str, bank: str) -> str:
        body = {"card_number": card_number, "bank": bank}
        return self._create("/v1/cards", token, body)["card"]

    def top_up(self, token: str, amount_fen: int, request_id: str) -> Receipt:
        body = {"amount_fen": amount_fen, "request_id": request_id}
        return Receipt(**self._call("POST", "/v1/topups", token, body, retry=True))

    def withdraw(self, token: str, amount_fen: int, request_id: str) -> Receipt:
        body = {"amount_fen": amount_fen, "request_id": request_id}
        return Receipt(**self._call("POST", "/v1/withdrawals", token, body, retry=True))

    def pay_merchant(
        self, token: str, collection_code: str, amount_fen: int, request_id: str
    ) -> Receipt:
        body = {
            "collection_code": collection_code,
            "amount_fen": amount_fen,
            "request_id": request_id,
        }
        return Receipt(**self._call("POST", "/v1/payments", token, body, retry=True))

    def balance_fen(self, token: str) -> int:
        return self._call("GET", "/v1/balance", token, None)["balance_fen"]

    def register_operator(self, name: str) -> Registration:
        return Registration(**self._create("/v1/operators", None, {"name": name}))

    def register_reader(self, operator_token: str, name: str) -> Registration:
        return Registration(**self._create("/v1/readers", operator_token, {"name": name}))

    def claim_bus_card(self, token: str, rider_public_key: bytes) -> bytes:
        body = {"rider_public_key": rider_public_key.hex()}
        return bytes.fromhex(self._create("/v1/buscards", token, body)["credential"])

    def transit_public_keys(self, reader_token: str) -> dict[int, bytes]:
        keys = self._call("GET", "/v1/transit/keys", reader_token, None)["keys"]
        return {int(k): bytes.fromhex(v) for k, v in keys.items()}

    def deny_delta(self, reader_token: str, since: int) -> DenyDelta:
        return DenyDelta(**self._call("GET", f"/v1/transit/deny?since={since}", reader_token, None))

    def upload_taps(
        self, reader_token: str, batch_id: str, taps: list[UploadedTap]
    ) -> list[TapOutcome]:
        body = {"batch_id": batch_id, "taps": [asdict(t) for t in taps]}
        result = self._call("POST", "/v1/transit/batches", reader_token, body, retry=True)
        return [TapOutcome(**o) for o in result["outcomes"]]

    def close_settlement(self) -> SettlementReport:
        """Needs the platform operator's credential (``CASHLESS_ADMIN_TOKEN``)."""
        body = self._call("POST", "/v1/settlement/close", self._admin_token, None)
        positions = [
            Position(**{k: v for k, v in p.items() if k != "net_fen"}) for p in body["positions"]
        ]
        return SettlementReport(body["window_id"], body["first_seq"], body["last_seq"], positions)

    def transit_metrics(self) -> TransitMetrics:
        return TransitMetrics(**self._call("GET", "/v1/transit/metrics", self._admin_token, None))

    def close(self) -> None:
        self._http.close()

    def _create(self, path: str, token: str | None, body: dict) -> Any:
        """A creating call under a fresh Idempotency-Key, so retrying it is safe."""
        return self._call("POST", path, token, body, retry=True, key=uuid.uuid4().hex)

    def _call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: dict | None,
        retry: bool = False,
        key: str | None = None,
    ) -> Any:
        """One request; idempotent ones are retried on transport errors and 503 (and on
        request_in_progress, when a retry overtook the first attempt)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        attempts = HTTP_RETRIES_MAX if retry else 1
        for attempt in range(attempts):
            try:
                resp = self._http.request(method, path, json=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt + 1 == attempts:
                    raise StorageUnavailable("storage_unavailable", f"transport: {exc}") from exc
                continue
            if _transient(resp) and attempt + 1 < attempts:
                time.sleep(RETRY_PAUSE_S * (attempt + 1))
                continue
            return _result(resp)
        raise AssertionError("the loop returns or raises")


def _transient(resp: httpx.Response) -> bool:
    if resp.status_code == 503:
        return True
    return resp.status_code == 409 and "request_in_progress" in resp.text


def _result(resp: httpx.Response) -> Any:
    if resp.status_code < 400:
        return resp.json()
    try:
        problem = resp.json()
        raise platform_error(problem["code"], problem.get("detail", ""))
    except (ValueError, KeyError, TypeError):
        raise PlatformError("http_error", f"HTTP {resp.status_code}: {resp.text[:200]}") from None
