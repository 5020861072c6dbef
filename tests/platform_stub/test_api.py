"""The HTTP API on a real uvicorn, through the HTTP client, on both backends."""

from __future__ import annotations

import httpx
import pytest

from platform_stub import HttpClient, Platform
from platform_stub.exceptions import CredentialInvalid, CredentialMissing, Forbidden, Rejected
from platform_stub.service import luhn_complete

CARD = luhn_complete("622202000000001")


@pytest.fixture
def client(live_server: str):
    c = HttpClient(live_server)
    yield c
    c.close()


def test_openapi_is_published(live_server: str) -> None:
    spec = httpx.get(f"{live_server}/openapi.json").json()
    assert {"/v1/residents", "/v1/merchants", "/v1/payments", "/v1/topups"} <= set(spec["paths"])


def test_payment_over_http_moves_money_once(client: HttpClient, db_url: str) -> None:
    payer = client.register_resident("张伟")
    shop = client.register_merchant("热干面", "武汉")
    client.bind_card(payer.token, CARD, "ICBC")
    client.top_up(payer.token, 1000, "t1")
    first = client.pay_merchant(payer.token, shop.collection_code, 350, "p1")
    again = client.pay_merchant(payer.token, shop.collection_code, 350, "p1")
    assert again == first
    assert client.balance_fen(payer.token) == 650
    assert client.balance_fen(shop.token) == 350
    platform = Platform.open(db_url)
    try:
        assert platform.audit().ok and platform.audit().transfer_count == 2
    finally:
        platform.close()


def test_refusals_come_back_as_the_same_exceptions(client: HttpClient) -> None:
    payer = client.register_resident("李娜")
    shop = client.register_merchant("早餐", "武汉")
    client.bind_card(payer.token, CARD, "CCB")
    client.top_up(payer.token, 100, "t1")
    with pytest.raises(Rejected) as caught:
        client.pay_merchant(payer.token, shop.collection_code, 101, "p1")
    assert caught.value.code == "exceeds_credits"
    with pytest.raises(CredentialInvalid):
        client.balance_fen("not-a-token")
    with pytest.raises(CredentialMissing):
        client.top_up("", 100, "t2")
    with pytest.raises(Forbidden):  # a merchant credential cannot spend as a resident
        client.pay_merchant(shop.token, shop.collection_code, 1, "p2")
    assert client.balance_fen(payer.token) == 100


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/residents", {"nam": "x"}, 400, "invalid_request"),
        (
            "/v1/payments",
            {"collection_code": "000201", "amount_fen": 1, "request_id": "a"},
            400,
            "qr_malformed",
        ),
        ("/v1/topups", {"amount_fen": -5, "request_id": "a"}, 400, "amount_invalid"),
        ("/v1/cards", {"card_number": "6222020000000012", "bank": "ICBC"}, 400, "card_invalid"),
    ],
)
def test_bad_input_gets_problem_json_with_a_stable_code(
    live_server: str, path: str, body: dict, status: int, code: str
) -> None:
    token = httpx.post(f"{live_server}/v1/residents", json={"name": "王芳"}).json()["token"]
    resp = httpx.post(
        f"{live_server}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == code


def test_oversized_body_is_refused(live_server: str) -> None:
    resp = httpx.post(
        f"{live_server}/v1/residents",
        content=b"x" * 70_000,
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 413 and resp.json()["code"] == "request_too_large"


def test_withdrawal_returns_money_to_the_bank_and_never_overdraws(client: HttpClient) -> None:
    payer = client.register_resident("赵敏")
    client.bind_card(payer.token, CARD, "BOC")
    client.top_up(payer.token, 1000, "t1")
    client.withdraw(payer.token, 400, "w1")
    client.withdraw(payer.token, 400, "w1")  # a retry
    with pytest.raises(Rejected, match="exceeds_credits"):
        client.withdraw(payer.token, 601, "w2")
    assert client.balance_fen(payer.token) == 600


def test_statement_pages_through_own_transfers_only(live_server: str, client: HttpClient) -> None:
    payer = client.register_resident("钱七")
    other = client.register_resident("孙八")
    for who in (payer, other):
        client.bind_card(who.token, CARD, "ICBC")
    for k in range(5):
        client.top_up(payer.token, 100 + k, f"t{k}")
    client.top_up(other.token, 999, "t0")
    auth = {"Authorization": f"Bearer {payer.token}"}
    first = httpx.get(f"{live_server}/v1/statement?limit=3", headers=auth).json()["lines"]
    rest = httpx.get(f"{live_server}/v1/statement?limit=3&offset=3", headers=auth).json()["lines"]
    assert [line["amount_fen"] for line in first + rest] == [100, 101, 102, 103, 104]
    assert all(line["direction"] == "in" for line in first + rest)
    bad = httpx.get(f"{live_server}/v1/statement?limit=0", headers=auth)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"


def test_an_idempotency_key_makes_a_registration_happen_once(live_server: str) -> None:
    headers = {"Idempotency-Key": "reg-1"}
    first = httpx.post(f"{live_server}/v1/residents", json={"name": "周九"}, headers=headers)
    again = httpx.post(f"{live_server}/v1/residents", json={"name": "周九"}, headers=headers)
    other = httpx.post(f"{live_server}/v1/residents", json={"name": "吴十"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert other.status_code == 409 and other.json()["code"] == "exists_with_different_fields"
    fresh = httpx.post(f"{live_server}/v1/residents", json={"name": "周九"})
    assert fresh.json()["participant_id"] == first.json()["participant_id"] + 1


def test_openapi_documents_every_endpoints_problem_codes(live_server: str) -> None:
    from platform_stub.exceptions import http_status_of

    spec = httpx.get(f"{live_server}/openapi.json").json()
    for path, operations in spec["paths"].items():
        if path == "/health":
            continue
        for method, operation in operations.items():
            documented = {
                int(status): response["description"].removeprefix("Problem codes: ").split(", ")
                for status, response in operation["responses"].items()
                if response["description"].startswith("Problem codes: ")
            }
            assert 400 in documented, f"{method.upper()} {path} documents no problem codes"
            for status, codes in documented.items():
                assert all(http_status_of(code) == status for code in codes), (path, codes)


def test_a_merchants_dynamic_code_image_decodes_to_a_payable_payload(
    live_server: str, client: HttpClient
) -> None:
    import io

    import numpy as np
    import zxingcpp
    from PIL import Image

    shop = client.register_merchant("煎饼", "武汉")
    auth = {"Authorization": f"Bearer {shop.token}"}
    png = httpx.get(f"{live_server}/v1/collection-code.png?amount_fen=650", headers=auth)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(png.content)).convert("L"))
    [scanned] = [r.text for r in zxingcpp.read_barcodes(image)]
    payer = client.register_resident("郑十一")
    client.bind_card(payer.token, CARD, "ICBC")
    client.top_up(payer.token, 1000, "t1")
    with pytest.raises(Rejected, match="amount_mismatch"):
        client.pay_merchant(payer.token, scanned, 600, "p0")
    assert client.pay_merchant(payer.token, scanned, 650, "p1").amount_fen == 650
    static = httpx.get(f"{live_server}/v1/collection-code", headers=auth).json()["payload"]
    assert static == shop.collection_code
    resident = {"Authorization": f"Bearer {payer.token}"}
    assert httpx.get(f"{live_server}/v1/collection-code", headers=resident).status_code == 403
