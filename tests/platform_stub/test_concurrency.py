"""Hot accounts under concurrency: many parallel payments to one merchant, several
server workers on one PostgreSQL database, retries racing their own first attempt."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from platform_stub import HttpClient, Platform
from platform_stub.service import luhn_complete
from tests.servers import start_server, stop_server

WORKERS = 3
PAYERS = 12
PAYMENTS_EACH = 20


def test_parallel_payments_to_one_merchant_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    proc, url = start_server(pg_url, tmp_path / "server.log", workers=WORKERS)
    try:
        setup = HttpClient(url)
        shop = setup.register_merchant("热干面", "武汉")
        payers = [setup.register_resident(f"顾客{n}") for n in range(PAYERS)]
        for n, payer in enumerate(payers):
            setup.bind_card(payer.token, luhn_complete(f"6222{n:011d}"), "ICBC")
            setup.top_up(payer.token, 100_000, "start")
        setup.close()
        rng = random.Random(3)
        plans = [[(f"p{k}", rng.randint(100, 2000)) for k in range(PAYMENTS_EACH)]
                 for _ in payers]

        def pay_all(n: int) -> int:
            client = HttpClient(url)
            paid = 0
            for request_id, amount in plans[n]:
                first = client.pay_merchant(payers[n].token, shop.collection_code, amount,
                                            request_id)
                again = client.pay_merchant(payers[n].token, shop.collection_code, amount,
                                            request_id)  # a retry: must not pay twice
                assert again == first
                paid += amount
            client.close()
            return paid

        with ThreadPoolExecutor(max_workers=PAYERS) as pool:
            total = sum(pool.map(pay_all, range(PAYERS)))
        check = HttpClient(url)
        assert check.balance_fen(shop.token) == total
        assert [check.balance_fen(p.token) for p in payers] == [
            100_000 - sum(a for _, a in plan) for plan in plans]
        check.close()
    finally:
        stop_server(proc)
    platform = Platform.open(pg_url)
    report = platform.audit()
    platform.close()
    assert report.ok, report.broken
    assert report.transfer_count == PAYERS + PAYERS * PAYMENTS_EACH


def test_the_same_request_sent_four_times_at_once_pays_once(pg_url: str, tmp_path: Path) -> None:
    proc, url = start_server(pg_url, tmp_path / "server.log", workers=WORKERS)
    try:
        client = HttpClient(url)
        shop = client.register_merchant("早餐", "武汉")
        payer = client.register_resident("顾客")
        client.bind_card(payer.token, luhn_complete("622200000000001"), "ICBC")
        client.top_up(payer.token, 100_000, "start")
        requests = [f"r{k}" for k in range(20) for _ in range(4)]

        def pay(request_id: str) -> str:
            c = HttpClient(url)
            try:
                receipt = c.pay_merchant(payer.token, shop.collection_code, 300, request_id)
                return receipt.transfer_id
            finally:
                c.close()

        with ThreadPoolExecutor(max_workers=8) as pool:
            transfer_ids = list(pool.map(pay, requests))
        assert len(set(transfer_ids)) == 20
        assert client.balance_fen(shop.token) == 20 * 300
        client.close()
    finally:
        stop_server(proc)
    platform = Platform.open(pg_url)
    assert platform.audit().ok
    platform.close()
