"""Crash safety: SIGKILL the server in the middle of payments and tap uploads, again
and again; clients retry with the same ids; nothing is lost and nothing is doubled."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from platform_stub import HttpClient, Platform
from platform_stub.exceptions import StorageUnavailable
from tests.reliability.world import WALLET_FEN, City, Server, build_city

KILL_CYCLES = 10
KILL_AFTER_S = (0.05, 0.4)  # the kill lands at a random moment in this range
CYCLE_CALLS_MAX = 200
CYCLE_S_MAX = 5.0
RESUME_ATTEMPTS_MAX = 20
TAPS_PER_BATCH = 3
SEED = 20261122


@dataclass
class Ledgerbook:
    """What the clients believe happened: every payment and batch they saw confirmed."""

    payments: dict[str, int] = field(default_factory=dict)  # transfer id -> fen
    batches: dict[str, int] = field(default_factory=dict)  # batch id -> taps
    interrupted: int = 0
    next_id: int = 0


def _pay(client: HttpClient, city: City, book: Ledgerbook, request_id: str, fen: int) -> None:
    receipt = client.pay_merchant(city.rider_token, city.collection_code, fen, request_id)
    assert receipt.amount_fen == fen
    book.payments[receipt.transfer_id] = fen


def _upload(client: HttpClient, city: City, book: Ledgerbook) -> None:
    batch_id, taps = city.uploaded()
    outcomes = client.upload_taps(city.reader_token, batch_id, taps)
    assert len(outcomes) == len(taps)
    assert city.reader.ack(batch_id)
    book.batches[batch_id] = len(taps)


def _one_call(client: HttpClient, city: City, book: Ledgerbook, rng: random.Random):
    """A payment or (one time in three) a batch of taps; returns how to redo it."""
    book.next_id += 1
    if book.next_id % 3 == 0:
        if city.reader.next_batch() is None:
            city.scan_taps(TAPS_PER_BATCH)
        return lambda c: _upload(c, city, book)
    request_id, fen = f"pay-{book.next_id}", rng.randint(1, 500)
    return lambda c: _pay(c, city, book, request_id, fen)


def _run_until_killed(server: Server, client, city, book, rng) -> object | None:
    """Calls until the kill interrupts one; that call is returned for the retry."""
    deadline = time.monotonic() + CYCLE_S_MAX
    for _ in range(CYCLE_CALLS_MAX):
        if time.monotonic() > deadline:
            return None
        call = _one_call(client, city, book, rng)
        try:
            call(client)
        except StorageUnavailable:
            return call
    return None


def _resume(server: Server, call) -> HttpClient:
    """Restart on the same database and redo the interrupted call with the same ids."""
    client = HttpClient(server.start())
    for _ in range(RESUME_ATTEMPTS_MAX):
        try:
            call(client)
            return client
        except StorageUnavailable:
            time.sleep(0.1)
    raise AssertionError(f"the restarted server never answered within {RESUME_ATTEMPTS_MAX}")


def _audit(db_url: str, city: City, book: Ledgerbook) -> None:
    platform = Platform.open(db_url)
    try:
        assert platform.audit().ok, platform.audit().broken
        with platform.db.transaction(write=False) as tx:
            rows = tx.all("SELECT id, amount_fen FROM transfers WHERE kind = 'pay_merchant'")
            taps = tx.all("SELECT batch_id, COUNT(*), COUNT(DISTINCT reader_seq),"
                          " SUM(wallet_fen) FROM tap_outcomes GROUP BY batch_id")
        assert sorted(r[0] for r in rows) == sorted(book.payments)  # each once, none extra
        assert {r[0]: r[1] for r in rows} == book.payments
        assert {t[0]: (t[1], t[2]) for t in taps} == {b: (n, n) for b, n in book.batches.items()}
        fares = sum(t[3] for t in taps)
        spent = sum(book.payments.values())
        assert platform.balance_fen(city.rider_token) == WALLET_FEN - spent - fares
        assert platform.balance_fen(city.merchant_token) == spent
    finally:
        platform.close()


@pytest.mark.slow
def test_sigkill_mid_traffic_loses_and_doubles_nothing(db_url: str, tmp_path: Path) -> None:
    """Ten SIGKILLs mid-payment or mid-upload; every confirmed or retried call is in the
    ledger exactly once, every uploaded tap has one outcome, and the audit holds."""
    rng = random.Random(SEED)
    server = Server(db_url, tmp_path / "server")
    client = HttpClient(server.start())
    city = build_city(client, server.url)
    book = Ledgerbook()
    try:
        for _ in range(KILL_CYCLES):
            killer = threading.Timer(rng.uniform(*KILL_AFTER_S), server.kill)
            killer.start()
            call = _run_until_killed(server, client, city, book, rng)
            killer.join()
            client.close()
            book.interrupted += call is not None
            client = _resume(server, call) if call else HttpClient(server.start())
        _upload_rest(client, city, book)
    finally:
        client.close()
        server.stop()
    assert book.interrupted >= KILL_CYCLES // 2, "the kills should land mid-call"
    _audit(db_url, city, book)


def _upload_rest(client: HttpClient, city: City, book: Ledgerbook) -> None:
    if city.reader.next_batch() is not None:
        _upload(client, city, book)
