"""Every endpoint in /openapi.json called by every role: never a 5xx; where a role is
documented as refused, the answer is 401/403 and nothing in the ledger changes."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from platform_stub import HttpClient
from platform_stub.service import luhn_complete
from platform_stub.transit import derive_private_key, public_key_bytes
from tests.conftest import ADMIN_TOKEN
from tests.servers import start_server, stop_server
from tests.transit.riders import RIDER_SEED

ROLES = ("anonymous", "resident", "merchant", "operator", "reader", "hospital", "biller",
         "provider", "admin")
EVERYONE_BUT = frozenset(ROLES).difference
# Documented refusals: (method, path) -> the roles that must get 401/403.
DENIED: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/v1/transit/batches"): EVERYONE_BUT({"reader"}),
    ("POST", "/v1/paycodes/charge"): EVERYONE_BUT({"merchant"}),
    ("POST", "/v1/refunds"): EVERYONE_BUT({"merchant"}),
    ("GET", "/v1/announcements"): EVERYONE_BUT({"merchant"}),
    ("POST", "/v1/settlement/close"): EVERYONE_BUT({"admin"}),
    ("POST", "/v1/campaigns"): EVERYONE_BUT({"admin"}),
    ("GET", "/v1/transit/metrics"): EVERYONE_BUT({"admin"}),
    ("POST", "/v1/transit/keys/rotate"): EVERYONE_BUT({"admin"}),
    ("GET", "/v1/balance"): frozenset({"anonymous", "reader"}),
    ("GET", "/v1/transit/deny"): frozenset({"anonymous", "resident", "merchant"}),
    ("POST", "/v1/topups"): frozenset({"anonymous", "reader", "merchant"}),
    ("POST", "/v1/payments"): frozenset({"anonymous", "reader", "merchant"}),
    ("POST", "/v1/readers"): frozenset({"anonymous", "resident", "merchant", "reader"}),
}
ids = itertools.count(1)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    monkeypatch.setenv("CASHLESS_ADMIN_TOKEN", ADMIN_TOKEN)
    db = tmp_path / "ledger.db"
    proc, url = start_server(f"sqlite:///{db}", tmp_path / "server.log")
    try:
        yield url, db
    finally:
        stop_server(proc)


def _world(url: str) -> tuple[dict[str, str | None], dict[str, object]]:
    """One participant of each role, and the objects the endpoints' paths name."""
    c = HttpClient(url, admin_token=ADMIN_TOKEN)
    resident = c.register_resident("居民")
    c.bind_card(resident.token, luhn_complete("622202000000011"), "ICBC")
    c.top_up(resident.token, 100_000, "seed")
    merchant = c.register_merchant("面馆", "武汉")
    operator = c.register_operator("公交")
    reader = c.register_reader(operator.token, "bus-1")
    hospital, biller = c.register_hospital("医院"), c.register_biller("水务")
    provider = c.register_provider("家政")
    code = c._call("GET", "/v1/collection-code", merchant.token, None)["payload"]
    paid = c.pay_merchant(resident.token, code, 500, "seed-pay")
    bill = c.present_bill(biller.token, resident.participant_id, 300, dt.date(2030, 1, 1),
                          "ref-1", "seed-bill")
    visit = c.open_visit(resident.token, hospital.participant_id, "seed-visit")
    charge = c.add_charge(hospital.token, visit.id, 200, "x-ray", "seed-charge")
    offer = c.publish_service(provider.token, "cleaning", 100)
    c.close()
    tokens = {"anonymous": None, "resident": resident.token, "merchant": merchant.token,
              "operator": operator.token, "reader": reader.token, "hospital": hospital.token,
              "biller": biller.token, "provider": provider.token, "admin": ADMIN_TOKEN}
    objects = {"bill_id": bill.id, "visit_id": visit.id,
               "charge_id": charge.id, "service_id": offer.id,
               "hospital_id": hospital.participant_id, "resident_id": resident.participant_id,
               "transfer_id": paid.transfer_id, "code": code}
    return tokens, objects


def _body(schema_name: str, o: dict[str, object]) -> dict | None:
    """A valid body for each request schema, so the call reaches its authorisation."""
    rid = f"m{next(ids)}"
    key = public_key_bytes(derive_private_key(RIDER_SEED, next(ids))).hex()
    return {
        "NewResident": {"name": "n"}, "NewMerchant": {"name": "n", "city": "武汉"},
        "NewOperator": {"name": "n"}, "NewPayee": {"name": "n"},
        "CardBinding": {"card_number": luhn_complete("622202000000099"), "bank": "ICBC"},
        "TopUp": {"amount_fen": 1, "request_id": rid},
        "MerchantPayment": {"collection_code": o["code"], "amount_fen": 1, "request_id": rid},
        "BusCardClaim": {"rider_public_key": key},
        "TapBatch": {"batch_id": rid, "taps": [{"reader_seq": 1, "code": "X",
                                                "scanned_at_s": 1}]},
        "NewCampaign": {"name": rid, "discount_fen": 1, "min_amount_fen": 0, "budget_fen": 10,
                        "start_date": "2030-01-01", "end_date": "2030-01-02"},
        "platform_stub__features__paycodes__ChargeIn": {"code": "0" * 18, "amount_fen": 1,
                                                        "request_id": rid},
        "RefundIn": {"transfer_id": o["transfer_id"], "amount_fen": 1, "request_id": rid},
        "BillIn": {"resident_id": o["resident_id"], "amount_fen": 1, "due_date": "2030-01-01",
                   "reference": rid, "request_id": rid},
        "PayIn": {"request_id": rid}, "OfferIn": {"name": rid, "price_fen": 1},
        "BookingIn": {"service_id": o["service_id"], "request_id": rid},
        "VisitIn": {"hospital_id": o["hospital_id"], "request_id": rid},
        "platform_stub__features__hospital__ChargeIn": {"amount_fen": 1, "item": "x",
                                                        "request_id": rid},
    }.get(schema_name)


def _operations(url: str) -> list[tuple[str, str, str]]:
    spec = httpx.get(f"{url}/openapi.json", timeout=10).json()
    found = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ref = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                   .get("schema", {}).get("$ref", ""))
            found.append((method.upper(), path, ref.rsplit("/", 1)[-1]))
    return found


def _changes(db: Path) -> tuple[int, ...]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("transfers", "tap_batches", "tap_outcomes"))


def _call(http: httpx.Client, method: str, path: str, schema: str, token: str | None,
          objects: dict[str, object]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"timeout_s": 0, "max_events": 1} if path == "/v1/announcements" else None
    return http.request(method, path.format(**objects), json=_body(schema, objects),
                        headers=headers, params=params)


@pytest.mark.slow
def test_every_endpoint_by_every_role_never_5xx_and_refusals_change_nothing(server) -> None:
    url, db = server
    tokens, objects = _world(url)
    operations = _operations(url)
    assert len(operations) >= 40, "the spec lists every endpoint"
    problems, answered = [], 0
    with httpx.Client(base_url=url, timeout=10) as http:
        for (method, path, schema), role in itertools.product(operations, ROLES):
            denied = role in DENIED.get((method, path), ())
            before = _changes(db) if denied else None
            resp = _call(http, method, path, schema, tokens[role], objects)
            answered += resp.status_code < 300
            if resp.status_code >= 500:
                problems.append(f"{role} {method} {path}: {resp.status_code} {resp.text[:80]}")
            elif denied and (resp.status_code not in (401, 403) or _changes(db) != before):
                problems.append(f"{role} {method} {path}: not refused, {resp.status_code}")
    assert not problems, "\n".join(problems)
    assert answered >= len(operations), "valid bodies: most endpoints served someone"


def test_anonymous_calls_to_credentialed_endpoints_get_401(server) -> None:
    """No credential, no service: every endpoint that takes a bearer token says 401."""
    url, _ = server
    _, objects = _world(url)
    spec = httpx.get(f"{url}/openapi.json", timeout=10).json()
    with httpx.Client(base_url=url, timeout=10) as http:
        for method, path, schema in _operations(url):
            op = spec["paths"][path][method.lower()]
            if any(p["name"] == "authorization" for p in op.get("parameters", [])):
                resp = _call(http, method, path, schema, None, objects)
                assert resp.status_code == 401, (method, path, resp.status_code, resp.text)
