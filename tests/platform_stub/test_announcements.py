"""Voice announcements: each payment a merchant receives reaches its stall within a second."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from platform_stub import HttpClient, InProcessClient, Platform, Registration
from platform_stub.api import create_app
from platform_stub.exceptions import Busy, Forbidden, InvalidRequest
from platform_stub.features.announcements import EVENTS_MAX, StreamSlots, spoken
from platform_stub.service import luhn_complete
from tests.servers import start_server, stop_server

CARD = luhn_complete("622202000000001")
ANNOUNCED_WITHIN_S = 1.0
WORKERS = 3


def customer(client: HttpClient | InProcessClient, wallet_fen: int = 10_000) -> Registration:
    payer = client.register_resident("顾客")
    client.bind_card(payer.token, CARD, "ICBC")
    client.top_up(payer.token, wallet_fen, "t1")
    return payer


@pytest.fixture
def platform(db_url: str) -> Iterator[Platform]:
    platform = Platform.open(db_url)
    yield platform
    platform.close()


def test_the_speaker_says_yuan_with_two_decimals() -> None:
    assert [spoken(f) for f in (350, 5, 100, 1_000_00)] == [
        "收款 3.50 元", "收款 0.05 元", "收款 1.00 元", "收款 1000.00 元"]


def test_announcements_list_each_payment_the_merchant_received(platform: Platform) -> None:
    client = InProcessClient(platform)
    payer = customer(client)
    shop = client.register_merchant("热干面", "武汉")
    rival = client.register_merchant("豆皮", "武汉")
    paid = client.pay_merchant(payer.token, shop.collection_code, 350, "p1")
    client.pay_merchant(payer.token, rival.collection_code, 999, "p2")  # not this shop's
    coded = client.charge_paycode(shop.token, client.issue_paycode(payer.token), 120, "s1")
    client.refund(shop.token, paid.transfer_id, 100, "r1")  # money out: not announced
    heard = client.announcements(shop.token)
    assert [(a.transfer_id, a.amount_fen, a.text) for a in heard] == [
        (paid.transfer_id, 350, "收款 3.50 元"), (coded.transfer_id, 120, "收款 1.20 元")]
    assert heard[0].seq < heard[1].seq and heard[0].timestamp_us <= heard[1].timestamp_us
    assert client.announcements(shop.token, since_seq=heard[0].seq) == heard[1:]
    assert client.announcements(shop.token, limit=1) == heard[:1]


def test_only_a_merchant_may_read_announcements_and_pages_are_bounded(
    platform: Platform,
) -> None:
    client = InProcessClient(platform)
    payer = customer(client)
    shop = client.register_merchant("热干面", "武汉")
    with pytest.raises(Forbidden):
        client.announcements(payer.token)
    for since_seq, limit in ((-1, 10), (0, 0), (0, EVENTS_MAX + 1)):
        with pytest.raises(InvalidRequest):
            client.announcements(shop.token, since_seq, limit)


def test_the_http_client_hears_what_the_in_process_client_hears(
    live_server: str, db_url: str
) -> None:
    client = HttpClient(live_server)
    try:
        payer = customer(client)
        shop = client.register_merchant("热干面", "武汉")
        for n in range(3):
            client.pay_merchant(payer.token, shop.collection_code, 100 + n, f"p{n}")
        heard = client.announcements(shop.token, since_seq=0, limit=2)
        with pytest.raises(Forbidden):
            client.announcements(payer.token)
        with pytest.raises(InvalidRequest):
            client.announcements(shop.token, limit=EVENTS_MAX + 1)
    finally:
        client.close()
    local = Platform.open(db_url)
    try:
        assert heard == InProcessClient(local).announcements(shop.token, since_seq=0, limit=2)
        assert [a.amount_fen for a in heard] == [100, 101]
    finally:
        local.close()


def test_a_payment_is_announced_over_sse_within_a_second(live_server: str) -> None:
    client = HttpClient(live_server)
    try:
        payer = customer(client)
        shop = client.register_merchant("热干面", "武汉")
        client.pay_merchant(payer.token, shop.collection_code, 100, "before")  # not announced
        with _listening(live_server, shop.token) as heard:
            paid_at = time.monotonic()
            receipt = client.pay_merchant(payer.token, shop.collection_code, 350, "p1")
            arrived_at, event = heard.get(timeout=5)
    finally:
        client.close()
    assert arrived_at - paid_at < ANNOUNCED_WITHIN_S
    assert event["transfer_id"] == receipt.transfer_id
    assert (event["amount_fen"], event["text"]) == (350, "收款 3.50 元")
    assert event["timestamp_us"] > 0


def test_a_payment_through_any_worker_is_announced(pg_url: str, tmp_path: Path) -> None:
    proc, url = start_server(pg_url, tmp_path / "server.log", workers=WORKERS)
    try:
        client = HttpClient(url)
        payer = customer(client)
        shop = client.register_merchant("热干面", "武汉")
        with _listening(url, shop.token, max_events=WORKERS * 2) as heard:
            for n in range(WORKERS * 2):
                fresh = HttpClient(url)  # a new connection may land on any worker
                fresh.pay_merchant(payer.token, shop.collection_code, 100 + n, f"p{n}")
                fresh.close()
            amounts = [heard.get(timeout=5)[1]["amount_fen"] for _ in range(WORKERS * 2)]
        client.close()
    finally:
        stop_server(proc)
    assert amounts == [100 + n for n in range(WORKERS * 2)]


def test_a_resident_credential_on_the_announcements_endpoint_is_403(live_server: str) -> None:
    token = httpx.post(f"{live_server}/v1/residents", json={"name": "王芳"}).json()["token"]
    resp = httpx.get(f"{live_server}/v1/announcements",
                     headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "forbidden"


def test_a_stream_ends_after_max_events_or_timeout_s(live_server: str) -> None:
    client = HttpClient(live_server)
    shop = client.register_merchant("热干面", "武汉")
    payer = customer(client)
    for n in range(3):
        client.pay_merchant(payer.token, shop.collection_code, 100 + n, f"p{n}")
    client.close()
    auth = {"Authorization": f"Bearer {shop.token}"}
    url = f"{live_server}/v1/announcements"
    capped = httpx.get(url, params={"since_seq": 0, "max_events": 2}, headers=auth, timeout=5)
    assert capped.headers["content-type"].startswith("text/event-stream")
    assert [e["amount_fen"] for e in _data(capped.text)] == [100, 101]
    began = time.monotonic()
    quiet = httpx.get(url, params={"timeout_s": 0.5}, headers=auth, timeout=5)
    assert 0.5 <= time.monotonic() - began < 3 and _data(quiet.text) == []
    last_seen = {"Last-Event-ID": str(_data(capped.text)[-1]["seq"])}  # as EventSource does
    resumed = httpx.get(url, params={"timeout_s": 0}, headers=auth | last_seen, timeout=5)
    assert [e["amount_fen"] for e in _data(resumed.text)] == [102]


def test_every_stream_gives_its_slot_back_and_a_full_house_is_503(platform: Platform) -> None:
    shop = platform.register_merchant("热干面", "武汉")
    slots = platform.announcements.streams

    async def stream_twice() -> tuple[httpx.Response, int, httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(platform))
        async with httpx.AsyncClient(transport=transport, base_url="http://platform") as http:
            auth = {"Authorization": f"Bearer {shop.token}"}
            done = await http.get("/v1/announcements?timeout_s=0", headers=auth)
            open_after_done = slots.open
            slots.most = 0
            full = await http.get("/v1/announcements?timeout_s=0", headers=auth)
            return done, open_after_done, full

    done, open_after_done, full = anyio.run(stream_twice)
    assert done.status_code == 200 and open_after_done == 0
    assert full.status_code == 503 and full.json()["code"] == "announcement_streams_full"
    assert slots.open == 0


def test_stream_slots_refuse_beyond_their_ceiling() -> None:
    slots = StreamSlots(2)
    slots.take()
    slots.take()
    with pytest.raises(Busy):
        slots.take()
    slots.give_back()
    slots.take()
    assert slots.open == 2


class _listening:
    """Subscribe in a thread; yields a queue of (arrival time, event) once subscribed."""

    def __init__(self, base_url: str, token: str, max_events: int = 1) -> None:
        self.params = {"max_events": max_events, "timeout_s": 10}
        self.url, self.token = f"{base_url}/v1/announcements", token
        self.heard: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.subscribed = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> queue.Queue[tuple[float, dict]]:
        self.thread.start()
        assert self.subscribed.wait(5), "the stream did not open"
        return self.heard

    def __exit__(self, *_: object) -> None:
        self.thread.join(timeout=15)

    def _listen(self) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        with httpx.stream("GET", self.url, params=self.params, headers=auth, timeout=15) as resp:
            assert resp.status_code == 200
            self.subscribed.set()
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    self.heard.put((time.monotonic(), json.loads(line.removeprefix("data:"))))


def _data(body: str) -> list[dict]:
    return [json.loads(line.removeprefix("data:")) for line in body.splitlines()
            if line.startswith("data:")]
