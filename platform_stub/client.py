"""The one interface agents use to reach the platform, with two implementations.

``InProcessClient`` calls :class:`Platform` directly (fast: research runs and
sweeps); ``HttpClient`` makes the same calls over the real API. Both raise the
same :mod:`platform_stub.exceptions` classes with the same codes, so a model run
gives the same outcome on either.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from dataclasses import asdict
from typing import Any, Protocol

import httpx

from platform_stub.buscards import DenyDelta
from platform_stub.clearing import TapOutcome, UploadedTap
from platform_stub.exceptions import PlatformError, StorageUnavailable, platform_error
from platform_stub.features.announcements import Announcement
from platform_stub.features.bills import Bill
from platform_stub.features.community import Booking, Offer
from platform_stub.features.credit import CreditScore
from platform_stub.features.hospital_visits import Charge, Visit
from platform_stub.service import Platform, Receipt, Registration
from platform_stub.settlement import Position, SettlementReport
from platform_stub.transit_service import TransitMetrics

ADMIN_TOKEN_ENV = "CASHLESS_ADMIN_TOKEN"

HTTP_TIMEOUT_S = 10.0
HTTP_RETRIES_MAX = 3
RETRY_PAUSE_S = 0.05
_VISITS = "/v1/hospital/visits"


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
    def issue_paycode(self, token: str) -> str: ...
    def charge_paycode(
        self, merchant_token: str, code: str, amount_fen: int, request_id: str
    ) -> Receipt: ...
    def refund(
        self, merchant_token: str, transfer_id: str, amount_fen: int, request_id: str
    ) -> Receipt: ...
    def announcements(
        self, merchant_token: str, since_seq: int = 0, limit: int = 100
    ) -> list[Announcement]: ...
    def balance_fen(self, token: str) -> int: ...
    def register_operator(self, name: str) -> Registration: ...
    def register_reader(self, operator_token: str, name: str) -> Registration: ...
    def claim_bus_card(self, token: str, rider_public_key: bytes) -> bytes: ...
    def transit_public_keys(self, reader_token: str) -> dict[int, bytes]: ...
    def deny_delta(self, reader_token: str, since: int) -> DenyDelta: ...
    def upload_taps(
        self, reader_token: str, batch_id: str, taps: list[UploadedTap]
    ) -> list[TapOutcome]: ...
    def credit_score(self, token: str) -> CreditScore: ...
    def register_hospital(self, name: str) -> Registration: ...
    def open_visit(self, token: str, hospital_id: int, request_id: str) -> Visit: ...
    def visit(self, token: str, visit_id: int) -> Visit: ...
    def add_charge(
        self, hospital_token: str, visit_id: int, amount_fen: int, item: str, request_id: str
    ) -> Charge: ...
    def pay_charge(
        self, token: str, visit_id: int, charge_id: int, request_id: str
    ) -> Receipt: ...
    def finalize_visit(self, hospital_token: str, visit_id: int) -> Visit: ...
    def cancel_visit(self, hospital_token: str, visit_id: int) -> Visit: ...
    def register_biller(self, name: str) -> Registration: ...
    def present_bill(
        self, biller_token: str, resident_id: int, amount_fen: int, due_date: dt.date,
        reference: str, request_id: str,
    ) -> Bill: ...
    def list_bills(self, token: str) -> list[Bill]: ...
    def pay_bill(self, token: str, bill_id: int, request_id: str) -> Receipt: ...
    def register_provider(self, name: str) -> Registration: ...
    def publish_service(self, provider_token: str, name: str, price_fen: int) -> Offer: ...
    def book_service(self, token: str, service_id: int, request_id: str) -> Booking: ...
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

    def issue_paycode(self, token: str) -> str:
        return self.platform.paycodes.issue(token).code

    def charge_paycode(
        self, merchant_token: str, code: str, amount_fen: int, request_id: str
    ) -> Receipt:
        return self.platform.paycodes.charge(merchant_token, code, amount_fen, request_id)

    def refund(
        self, merchant_token: str, transfer_id: str, amount_fen: int, request_id: str
    ) -> Receipt:
        return self.platform.refunds.refund(merchant_token, transfer_id, amount_fen, request_id)

    def announcements(
        self, merchant_token: str, since_seq: int = 0, limit: int = 100
    ) -> list[Announcement]:
        return self.platform.announcements.announcements(merchant_token, since_seq, limit)

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

    def credit_score(self, token: str) -> CreditScore:
        return self.platform.credit.my_score(token)

    def register_hospital(self, name: str) -> Registration:
        return self.platform.hospital.register_hospital(name)

    def open_visit(self, token: str, hospital_id: int, request_id: str) -> Visit:
        return self.platform.hospital.open_visit(token, hospital_id, request_id)

    def visit(self, token: str, visit_id: int) -> Visit:
        return self.platform.hospital.visit(token, visit_id)

    def add_charge(
        self, hospital_token: str, visit_id: int, amount_fen: int, item: str, request_id: str
    ) -> Charge:
        return self.platform.hospital.add_charge(
            hospital_token, visit_id, amount_fen, item, request_id)

    def pay_charge(self, token: str, visit_id: int, charge_id: int, request_id: str) -> Receipt:
        return self.platform.hospital.pay_charge(token, visit_id, charge_id, request_id)

    def finalize_visit(self, hospital_token: str, visit_id: int) -> Visit:
        return self.platform.hospital.finalize(hospital_token, visit_id)

    def cancel_visit(self, hospital_token: str, visit_id: int) -> Visit:
        return self.platform.hospital.cancel(hospital_token, visit_id)

    def register_biller(self, name: str) -> Registration:
        return self.platform.bills.register_biller(name)

    def present_bill(
        self, biller_token: str, resident_id: int, amount_fen: int, due_date: dt.date,
        reference: str, request_id: str,
    ) -> Bill:
        return self.platform.bills.present(
            biller_token, resident_id, amount_fen, due_date, reference, request_id)

    def list_bills(self, token: str) -> list[Bill]:
        return self.platform.bills.bills(token)

    def pay_bill(self, token: str, bill_id: int, request_id: str) -> Receipt:
        return self.platform.bills.pay(token, bill_id, request_id)

    def register_provider(self, name: str) -> Registration:
        return self.platform.community.register_provider(name)

    def publish_service(self, provider_token: str, name: str, price_fen: int) -> Offer:
        return self.platform.community.publish(provider_token, name, price_fen)

    def book_service(self, token: str, service_id: int, request_id: str) -> Booking:
        return self.platform.community.book(token, service_id, request_id)

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

    def issue_paycode(self, token: str) -> str:
        """Not retried: a retry would only issue another code, superseding this one."""
        return self._call("POST", "/v1/paycodes", token, None)["code"]

    def charge_paycode(
        self, merchant_token: str, code: str, amount_fen: int, request_id: str
    ) -> Receipt:
        body = {"code": code, "amount_fen": amount_fen, "request_id": request_id}
        return Receipt(**self._call("POST", "/v1/paycodes/charge", merchant_token, body,
                                    retry=True))

    def refund(
        self, merchant_token: str, transfer_id: str, amount_fen: int, request_id: str
    ) -> Receipt:
        body = {"transfer_id": transfer_id, "amount_fen": amount_fen, "request_id": request_id}
        return Receipt(**self._call("POST", "/v1/refunds", merchant_token, body, retry=True))

    def announcements(
        self, merchant_token: str, since_seq: int = 0, limit: int = 100
    ) -> list[Announcement]:
        """The announcement stream with ``timeout_s=0``: what is there now, then it ends."""
        params = {"since_seq": since_seq, "max_events": limit, "timeout_s": 0}
        headers = {"Authorization": f"Bearer {merchant_token}"}
        try:
            with self._http.stream("GET", "/v1/announcements", params=params,
                                   headers=headers) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    return _result(resp)  # raises the problem's exception
                return [Announcement(**json.loads(line.removeprefix("data:")))
                        for line in resp.iter_lines() if line.startswith("data:")]
        except httpx.TransportError as exc:
            raise StorageUnavailable("storage_unavailable", f"transport: {exc}") from exc

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

    def credit_score(self, token: str) -> CreditScore:
        body = self._call("GET", "/v1/credit", token, None)
        return CreditScore(body["score"], body["factors"])

    def register_hospital(self, name: str) -> Registration:
        return Registration(**self._create("/v1/hospitals", None, {"name": name}))

    def open_visit(self, token: str, hospital_id: int, request_id: str) -> Visit:
        body = {"hospital_id": hospital_id, "request_id": request_id}
        return Visit.from_json(self._call("POST", _VISITS, token, body, retry=True))

    def visit(self, token: str, visit_id: int) -> Visit:
        return Visit.from_json(self._call("GET", f"{_VISITS}/{visit_id}", token, None))

    def add_charge(
        self, hospital_token: str, visit_id: int, amount_fen: int, item: str, request_id: str
    ) -> Charge:
        body = {"amount_fen": amount_fen, "item": item, "request_id": request_id}
        path = f"{_VISITS}/{visit_id}/charges"
        return Charge(**self._call("POST", path, hospital_token, body, retry=True))

    def pay_charge(self, token: str, visit_id: int, charge_id: int, request_id: str) -> Receipt:
        path = f"{_VISITS}/{visit_id}/charges/{charge_id}/pay"
        return Receipt(**self._call("POST", path, token, {"request_id": request_id}, retry=True))

    def finalize_visit(self, hospital_token: str, visit_id: int) -> Visit:
        """Not retried: a retry would find the visit closed; read it to learn the outcome."""
        path = f"{_VISITS}/{visit_id}/finalize"
        return Visit.from_json(self._call("POST", path, hospital_token, None))

    def cancel_visit(self, hospital_token: str, visit_id: int) -> Visit:
        """Not retried, as finalize_visit."""
        path = f"{_VISITS}/{visit_id}/cancel"
        return Visit.from_json(self._call("POST", path, hospital_token, None))

    def register_biller(self, name: str) -> Registration:
        return Registration(**self._create("/v1/billers", None, {"name": name}))

    def present_bill(
        self, biller_token: str, resident_id: int, amount_fen: int, due_date: dt.date,
        reference: str, request_id: str,
    ) -> Bill:
        body = {"resident_id": resident_id, "amount_fen": amount_fen,
                "due_date": due_date.isoformat(), "reference": reference,
                "request_id": request_id}
        return Bill.from_json(self._call("POST", "/v1/bills", biller_token, body, retry=True))

    def list_bills(self, token: str) -> list[Bill]:
        bills = self._call("GET", "/v1/bills?limit=100", token, None)["bills"]
        return [Bill.from_json(b) for b in bills]

    def pay_bill(self, token: str, bill_id: int, request_id: str) -> Receipt:
        body = {"request_id": request_id}
        return Receipt(**self._call("POST", f"/v1/bills/{bill_id}/pay", token, body,
                                    retry=True))

    def register_provider(self, name: str) -> Registration:
        return Registration(**self._create("/v1/providers", None, {"name": name}))

    def publish_service(self, provider_token: str, name: str, price_fen: int) -> Offer:
        body = {"name": name, "price_fen": price_fen}
        return Offer(**self._create("/v1/services", provider_token, body))

    def book_service(self, token: str, service_id: int, request_id: str) -> Booking:
        body = {"service_id": service_id, "request_id": request_id}
        return Booking(**self._call("POST", "/v1/bookings", token, body, retry=True))

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
