"""Database faults under load: SQLite's write lock held by another process, and
PostgreSQL connections killed mid-traffic. Every call either succeeds once the fault
passes or gets a clear 503 ``storage_unavailable``; clients then retry with the same
ids; nothing is half-applied, lost or doubled."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from platform_stub import HttpClient
from platform_stub.clearing import UploadedTap
from platform_stub.client import HTTP_TIMEOUT_S
from platform_stub.exceptions import PlatformError, StorageUnavailable
from platform_stub.ledger import CONFLICT_RETRIES_MAX
from platform_stub.storage import (
    PG_CONNECTIONS_MAX,
    SQLITE_BUSY_TIMEOUT_ENV,
    SQLITE_BUSY_TIMEOUT_MS,
)
from tests.conftest import PG_URL
from tests.reliability.test_crash import TAPS_PER_BATCH, Ledgerbook, _audit
from tests.reliability.world import City, Server, build_city

PAYER_THREADS = 3
CALLS_PER_THREAD_MAX = 400
TRAFFIC_S_MAX = 20.0
REDO_ATTEMPTS_MAX = 10  # after the fault, a failed call is sent again at most this often
SEED = 20261123

# SQLite: the server waits at most LOCK_WAIT_MS for its turn (shortened from the default
# so the test is quick; the behaviour at the limit is the same), the client at most
# CLIENT_TIMEOUT_S for an answer. Short holds end inside a call's retries; long ones
# outlast them.
LOCK_WAIT_MS = 150
LOCK_HOLDS_S = (0.3, 3.2, 0.3)
LOCK_GAP_S = 0.3
CLIENT_TIMEOUT_S = 3.0
# A payment makes one lookup and up to CONFLICT_RETRIES_MAX write attempts, each waiting
# at most LOCK_WAIT_MS; twice that leaves room for a busy machine, not for a queue.
ANSWER_S_MAX = 2 * (CONFLICT_RETRIES_MAX + 1) * LOCK_WAIT_MS / 1000

# PostgreSQL: terminate every backend of the server's pool this often, this far apart.
PG_KILLS = 5
OK_OR_503 = {"ok", "storage_unavailable"}
PG_KILL_GAP_S = (0.2, 0.5)
PROBE_CALLS = 2 * PG_CONNECTIONS_MAX


@dataclass(frozen=True)
class Call:
    kind: str  # "pay" or "upload"
    start_s: float
    end_s: float
    outcome: str  # "ok", or the error code
    detail: str


@dataclass
class Traffic:
    """Payers and one uploader, each with its own HTTP client, until told to stop."""

    url: str
    city: City
    book: Ledgerbook = field(default_factory=Ledgerbook)
    calls: list[Call] = field(default_factory=list)
    unpaid: dict[str, int] = field(default_factory=dict)  # request id -> fen, to redo
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run_during(self, fault: Callable[[], None]) -> None:
        workers = [threading.Thread(target=self._payer, args=(n,)) for n in range(PAYER_THREADS)]
        workers.append(threading.Thread(target=self._uploader))
        for worker in workers:
            worker.start()
        try:
            fault()
        finally:
            self.stop.set()
            for worker in workers:
                worker.join(timeout=TRAFFIC_S_MAX)
        assert not any(w.is_alive() for w in workers), "a traffic thread never finished"

    def pay(self, client: HttpClient, request_id: str, fen: int) -> None:
        receipt = client.pay_merchant(
            self.city.rider_token, self.city.collection_code, fen, request_id
        )
        assert receipt.amount_fen == fen
        with self.lock:
            self.book.payments[receipt.transfer_id] = fen
            self.unpaid.pop(request_id, None)

    def redo_failed(self) -> int:
        """After the fault: every unpaid payment, and the reader's unacknowledged batch,
        sent again with the same ids until they succeed; returns how many were redone."""
        redone = len(self.unpaid)
        client = HttpClient(self.url)
        try:
            for request_id, fen in sorted(self.unpaid.items()):
                _until_ok(lambda r=request_id, f=fen: self.pay(client, r, f))
            if self.city.reader.next_batch() is not None:
                redone += 1
                _until_ok(lambda: upload_next(client, self.city, self.book))
        finally:
            client.close()
        return redone

    def _payer(self, thread: int) -> None:
        rng = random.Random(SEED + thread)
        client = HttpClient(self.url, timeout_s=CLIENT_TIMEOUT_S)
        try:
            for n in self._turns():
                request_id, fen = f"pay-{thread}-{n}", rng.randint(1, 500)
                with self.lock:
                    self.unpaid[request_id] = fen  # until a receipt says otherwise
                self._timed("pay", lambda r=request_id, f=fen: self.pay(client, r, f))
        finally:
            client.close()

    def _uploader(self) -> None:
        client = HttpClient(self.url, timeout_s=CLIENT_TIMEOUT_S)
        try:
            for _ in self._turns():
                self._timed("upload", lambda: upload_next(client, self.city, self.book))
        finally:
            client.close()

    def _turns(self) -> Iterator[int]:
        deadline = time.monotonic() + TRAFFIC_S_MAX
        for n in range(CALLS_PER_THREAD_MAX):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            yield n

    def _timed(self, kind: str, call: Callable[[], None]) -> None:
        start_s = time.monotonic()
        try:
            call()
            outcome, detail = "ok", ""
        except StorageUnavailable as err:
            outcome, detail = err.code, err.detail
        except PlatformError as err:  # a 500 or any other answer: kept, so the test names it
            outcome, detail = err.code, err.detail
        with self.lock:
            self.calls.append(Call(kind, start_s, time.monotonic(), outcome, detail))


def _odd(calls: list[Call]) -> list[tuple[str, str, str]]:
    """The calls answered with anything but success or a clear 503, for the message."""
    return [(c.kind, c.outcome, c.detail) for c in calls if c.outcome not in OK_OR_503]


def upload_next(client: HttpClient, city: City, book: Ledgerbook) -> None:
    """Upload the reader's batch (scanning new taps if it holds none), then acknowledge
    it. A failed upload leaves the batch in flight: the next call resends it unchanged."""
    if city.reader.next_batch() is None:
        city.scan_taps(TAPS_PER_BATCH)
    batch = city.reader.next_batch()
    taps = [UploadedTap(t.seq, t.code_text, t.scanned_at_s) for t in batch.taps]
    outcomes = client.upload_taps(city.reader_token, batch.batch_id, taps)
    assert [o.reader_seq for o in outcomes] == [t.reader_seq for t in taps]
    assert city.reader.ack(batch.batch_id)
    book.batches[batch.batch_id] = len(taps)


def _until_ok(call: Callable[[], None]) -> None:
    for _ in range(REDO_ATTEMPTS_MAX):
        try:
            call()
            return
        except StorageUnavailable:
            time.sleep(0.1)
    raise AssertionError(f"a retry with the same id failed {REDO_ATTEMPTS_MAX} times")


def _raw_payment(http: httpx.Client, city: City, request_id: str, fen: int) -> httpx.Response:
    """One POST with no client-side retry, to see exactly what the server answers."""
    body = {"collection_code": city.collection_code, "amount_fen": fen, "request_id": request_id}
    headers = {"Authorization": f"Bearer {city.rider_token}"}
    return http.post("/v1/payments", json=body, headers=headers)


def _is_clear_503(resp: httpx.Response) -> bool:
    return (
        resp.status_code == 503
        and resp.headers["content-type"].startswith("application/problem+json")
        and resp.json()["code"] == "storage_unavailable"
    )


# -- SQLite: another process holds the write lock ---------------------------------------


def test_sqlite_wait_budget_answers_before_the_client_gives_up() -> None:
    """A payment makes at most CONFLICT_RETRIES_MAX write attempts plus one lookup, each
    waiting at most SQLITE_BUSY_TIMEOUT_MS: the 503 comes before HTTP_TIMEOUT_S. (With
    the former 5 s wait, 3 x 5 s left the client with a timeout instead of a 503.)"""
    assert (CONFLICT_RETRIES_MAX + 1) * SQLITE_BUSY_TIMEOUT_MS / 1000 < HTTP_TIMEOUT_S


@dataclass(frozen=True)
class Hold:
    start_s: float
    end_s: float


def _hold_write_lock(path: Path, traffic: Traffic, holds: list[Hold], probes: list) -> None:
    """Another process's connection (this test's, not the server's) takes the write
    lock again and again; during each long hold one raw call checks the server's answer."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        for n, hold_s in enumerate(LOCK_HOLDS_S):
            time.sleep(LOCK_GAP_S)
            conn.execute("BEGIN EXCLUSIVE")
            start_s = time.monotonic()
            if hold_s > CLIENT_TIMEOUT_S:
                request_id, fen = f"probe-{n}", 100 + n
                with httpx.Client(base_url=traffic.url, timeout=HTTP_TIMEOUT_S) as http:
                    probes.append(_raw_payment(http, traffic.city, request_id, fen))
                with traffic.lock:
                    traffic.unpaid[request_id] = fen
            time.sleep(max(0.0, hold_s - (time.monotonic() - start_s)))
            conn.execute("COMMIT")
            holds.append(Hold(start_s, time.monotonic()))
    finally:
        conn.close()


@pytest.mark.slow
def test_sqlite_locked_by_another_writer_gives_503_or_waits_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process holds SQLite's write lock, payments and tap uploads either
    wait it out or get a clear 503 within the client's patience (never a timeout); the
    same ids sent again afterwards are applied exactly once and the audit holds."""
    monkeypatch.setenv(SQLITE_BUSY_TIMEOUT_ENV, str(LOCK_WAIT_MS))
    path = tmp_path / "ledger.db"
    server = Server(f"sqlite:///{path}", tmp_path / "server")
    url = server.start()
    holds: list[Hold] = []
    probes: list[httpx.Response] = []
    try:
        setup = HttpClient(url)
        traffic = Traffic(url, build_city(setup, url))
        setup.close()
        traffic.run_during(lambda: _hold_write_lock(path, traffic, holds, probes))
        redone = traffic.redo_failed()
    finally:
        server.stop()
    calls = traffic.calls
    assert {c.outcome for c in calls} <= OK_OR_503, _odd(calls)
    assert not [c for c in calls if c.detail.startswith("transport")], "a timeout, not a 503"
    assert len(probes) == 1 and all(_is_clear_503(p) for p in probes)
    assert all(p.elapsed.total_seconds() <= ANSWER_S_MAX for p in probes), "waited in a queue"
    assert any(c.outcome != "ok" for c in calls), "long holds should outlast the retries"
    assert redone >= 1
    waited = [c for c in calls if c.outcome == "ok" and _spans_release(c, holds)]
    assert waited, "calls caught by a short hold should succeed after it ends"
    assert not [c for c in calls if c.outcome == "ok" and _inside_hold(c, holds)]
    _audit(f"sqlite:///{path}", traffic.city, traffic.book)


def _spans_release(call: Call, holds: list[Hold]) -> bool:
    """Started while the lock was held and answered after it was released."""
    return any(h.start_s < call.start_s < h.end_s <= call.end_s for h in holds)


def _inside_hold(call: Call, holds: list[Hold]) -> bool:
    """Started after the lock was taken and answered before it was released: a write
    that could only have succeeded by ignoring the lock."""
    return any(h.start_s < call.start_s and call.end_s < h.end_s for h in holds)


# -- PostgreSQL: the server's connections are terminated mid-traffic --------------------


def _kill_backends(app_name: str, killed: list[tuple[int, int]], rng: random.Random) -> None:
    """From a separate connection, terminate every backend the platform server holds."""
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        for _ in range(PG_KILLS):
            time.sleep(rng.uniform(*PG_KILL_GAP_S))
            row = admin.execute(
                "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)),"
                " COUNT(*) FILTER (WHERE state <> 'idle')"
                " FROM pg_stat_activity WHERE application_name = %s",
                (app_name,),
            ).fetchone()
            killed.append(row)


def _backends(app_name: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        return admin.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s", (app_name,)
        ).fetchone()[0]


def _probe_pool(traffic: Traffic) -> list[int]:
    """Calls one after another with no client retry: the status of each."""
    statuses = []
    http = httpx.Client(base_url=traffic.url, timeout=HTTP_TIMEOUT_S)
    for n in range(PROBE_CALLS):
        request_id, fen = f"after-{n}", 1 + n
        resp = _raw_payment(http, traffic.city, request_id, fen)
        assert resp.status_code == 201 or _is_clear_503(resp), resp.text
        if resp.status_code == 201:
            traffic.book.payments[resp.json()["transfer_id"]] = fen
        else:
            traffic.unpaid[request_id] = fen
        statuses.append(resp.status_code)
    http.close()
    return statuses


@pytest.mark.slow
def test_postgres_connections_killed_mid_traffic_recover_and_lose_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    """pg_terminate_backend on every connection of the server's pool, five times during
    payments and uploads: calls succeed (the server retries) or get a clear 503; the pool
    replaces the dead connections; the same ids sent again are applied exactly once."""
    app_name = f"cashless_dbfault_{uuid.uuid4().hex[:8]}"
    server = Server(f"{pg_url}&application_name={app_name}", tmp_path / "server")
    url = server.start()
    killed: list[tuple[int, int]] = []  # backends terminated, of which mid-transaction
    try:
        setup = HttpClient(url)
        traffic = Traffic(url, build_city(setup, url))
        setup.close()
        traffic.run_during(lambda: _kill_backends(app_name, killed, random.Random(SEED)))
        statuses = _probe_pool(traffic)
        backends = _backends(app_name)
        traffic.redo_failed()
    finally:
        server.stop()
    assert len(killed) == PG_KILLS and min(n for n, _ in killed) >= 1, killed
    assert sum(busy for _, busy in killed) >= 1, "some kills should land mid-transaction"
    assert {c.outcome for c in traffic.calls} <= OK_OR_503, _odd(traffic.calls)
    assert sum(c.outcome == "ok" for c in traffic.calls) >= PG_KILLS
    assert statuses[-PG_CONNECTIONS_MAX:] == [201] * PG_CONNECTIONS_MAX, statuses
    assert 1 <= backends <= PG_CONNECTIONS_MAX
    _audit(pg_url, traffic.city, traffic.book)
