"""The offline transit path over HTTP: readers upload with their own credentials."""

from __future__ import annotations

import time

import httpx
import pytest

from platform_stub import HttpClient
from platform_stub.clearing import UploadedTap
from platform_stub.exceptions import Forbidden
from platform_stub.service import luhn_complete
from platform_stub.transit import (
    BusReader,
    Credential,
    derive_private_key,
    encode_code_text,
    public_key_bytes,
    sign_code,
)
from tests.conftest import ADMIN_TOKEN
from tests.transit.riders import RIDER_SEED


@pytest.fixture
def client(live_server: str):
    c = HttpClient(live_server)
    yield c
    c.close()


def test_a_tap_travels_app_reader_upload_clearing_settlement(client, live_server) -> None:
    operator = client.register_operator("武汉公交")
    reader_reg = client.register_reader(operator.token, "bus-1")
    rider = client.register_resident("乘客")
    client.bind_card(rider.token, luhn_complete("622202000000001"), "ICBC")
    client.top_up(rider.token, 1000, "t1")
    key = derive_private_key(RIDER_SEED, 1)
    credential = Credential.from_bytes(client.claim_bus_card(rider.token, public_key_bytes(key)))
    now_s = int(time.time())
    code = encode_code_text(sign_code(credential, key, now_s, b"\0" * 8))
    reader = BusReader(
        f"R{reader_reg.participant_id}", client.transit_public_keys(reader_reg.token)
    )
    assert reader.scan(code, now_s + 2).accepted
    batch = reader.next_batch()
    taps = [UploadedTap(t.seq, t.code_text, t.scanned_at_s) for t in batch.taps]
    first = client.upload_taps(reader_reg.token, batch.batch_id, taps)
    again = client.upload_taps(reader_reg.token, batch.batch_id, taps)
    assert [o.outcome for o in first] == ["cleared"] and again == first
    assert client.balance_fen(rider.token) == 800
    assert client.balance_fen(operator.token) == 200
    closed = httpx.post(
        f"{live_server}/v1/settlement/close", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    assert closed["payout_total_fen"] == 200
    assert sum(p["net_fen"] for p in closed["positions"]) == 0
    assert client.balance_fen(operator.token) == 0  # paid out to its bank


def test_readers_cannot_read_accounts_and_others_cannot_upload(client, live_server) -> None:
    operator = client.register_operator("公交")
    reader = client.register_reader(operator.token, "bus-1")
    rider = client.register_resident("乘客")
    with pytest.raises(Forbidden):
        client.balance_fen(reader.token)
    with pytest.raises(Forbidden):
        client.upload_taps(rider.token, "b1", [UploadedTap(1, "X", 1)])
    with pytest.raises(Forbidden):
        client.upload_taps(operator.token, "b1", [UploadedTap(1, "X", 1)])
    with pytest.raises(Forbidden):
        client.deny_delta(rider.token, 0)
    for token in (rider.token, reader.token, operator.token):
        resp = httpx.post(
            f"{live_server}/v1/settlement/close", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 403 and resp.json()["code"] == "forbidden"
