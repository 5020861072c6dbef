"""The server's ledger lane (platform_stub/ledger_lane.py): queued payments share one
COMMIT and are answered only after it; each fails alone; a batch that cannot commit
answers every call storage_unavailable and applies nothing."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from platform_stub import Platform
from platform_stub.exceptions import Busy, Rejected, StorageUnavailable
from platform_stub.ledger_lane import LedgerLane
from platform_stub.service import luhn_complete

PAYERS = 12
TOP_UP_FEN = 10_000
PAYMENT_FEN = 700


class City:
    """A platform with funded payers and one merchant's collection code."""

    def __init__(self, db_url: str) -> None:
        self.platform = Platform.open(db_url)
        merchant = self.platform.register_merchant("Noodle stall", "Wuhan")
        self.code = self.platform.collection_code(merchant.token)
        self.merchant_token = merchant.token
        self.payers = []
        for n in range(PAYERS):
            payer = self.platform.register_resident(f"Payer {n}")
            card = luhn_complete(f"622202{payer.participant_id:09d}")
            self.platform.bind_card(payer.token, card, "ICBC")
            self.platform.top_up(payer.token, TOP_UP_FEN, f"top-{n}")
            self.payers.append(payer.token)

    def pay(self, token: str, amount_fen: int = PAYMENT_FEN, request_id: str = "") -> Any:
        request_id = request_id or f"pay-{token[:8]}-{amount_fen}"
        return lambda: self.platform.pay_merchant(token, self.code, amount_fen, request_id)

    def balance_fen(self, token: str) -> int:
        return self.platform.balance_fen(token)


@pytest.fixture
def city(db_url: str) -> Iterator[City]:
    made = City(db_url)
    yield made
    made.platform.close()


class Holder:
    """A call that keeps the lane busy until released, so that others queue up."""

    def __init__(self) -> None:
        self.started, self.released = threading.Event(), threading.Event()

    def __call__(self) -> None:
        self.started.set()
        self.released.wait()

    async def hold(self, lane: LedgerLane) -> asyncio.Future:
        held = asyncio.ensure_future(lane.run(self))
        while not self.started.is_set():
            await asyncio.sleep(0.001)
        return held

    async def until_queued(self, lane: LedgerLane, count: int) -> None:
        while lane.queued < count:
            await asyncio.sleep(0.001)


def _held(lane: LedgerLane, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` on the lane as one batch: a first call holds the lane until all
    of them are queued. Returns each call's result or error, in order. (A backend that
    does not group commits has no lane: the calls go to the thread pool together.)"""
    holder = Holder()

    async def scenario() -> list[Any]:
        if not lane.db.groups_commits:
            return await asyncio.gather(*(lane.run(c) for c in calls), return_exceptions=True)
        held = await holder.hold(lane)
        tasks = [asyncio.ensure_future(lane.run(call)) for call in calls]
        await holder.until_queued(lane, len(calls))
        holder.released.set()
        await held
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(scenario())


def _commits(platform: Platform) -> list[int]:
    """A counter of the COMMITs the platform's SQLite connection runs from now on."""
    seen = [0]

    def trace(statement: str) -> None:
        seen[0] += statement.strip().upper() == "COMMIT"

    platform.db._conn.set_trace_callback(trace)  # noqa: SLF001 - sqlite3's own hook
    return seen


def test_queued_payments_share_a_commit_and_each_fails_alone(city: City) -> None:
    lane = LedgerLane(city.platform.db)
    commits = _commits(city.platform) if city.platform.db.dialect == "sqlite" else None
    calls = [city.pay(token) for token in city.payers]
    calls.insert(5, city.pay(city.payers[0], TOP_UP_FEN, "too-much"))  # after its 700
    try:
        answers = _held(lane, calls)
    finally:
        lane.close()
    if commits is not None:  # the holder wrote nothing; the thirteen calls, one COMMIT
        assert commits[0] == 1

    refused = answers.pop(5)
    assert isinstance(refused, Rejected) and refused.code == "exceeds_credits"
    assert [a.amount_fen for a in answers] == [PAYMENT_FEN] * PAYERS
    assert len({a.transfer_id for a in answers}) == PAYERS
    assert [city.balance_fen(t) for t in city.payers] == [TOP_UP_FEN - PAYMENT_FEN] * PAYERS
    assert city.balance_fen(city.merchant_token) == PAYMENT_FEN * PAYERS
    assert city.platform.audit().ok


def test_a_batch_sqlite_rolled_back_answers_every_call_503_and_applies_nothing(
    tmp_path: Path,
) -> None:
    city = City(f"sqlite:///{tmp_path / 'ledger.db'}")
    lane = LedgerLane(city.platform.db)

    def disk_full() -> None:
        with city.platform.db.transaction() as tx:
            tx.execute("ROLLBACK")  # what SQLite does itself on such an error
            raise sqlite3.OperationalError("database or disk is full")

    calls = [city.pay(city.payers[0]), disk_full, city.pay(city.payers[1])]
    try:
        answers = _held(lane, calls)
        assert [type(a) for a in answers] == [StorageUnavailable] * 3
        assert all(a.code == "storage_unavailable" for a in answers)
        assert "retry with the same id" in answers[0].detail
        assert [city.balance_fen(t) for t in city.payers[:2]] == [TOP_UP_FEN] * 2
        again = _held(lane, [city.pay(city.payers[0])])  # the same id, applied once
        assert again[0].amount_fen == PAYMENT_FEN
        assert city.balance_fen(city.payers[0]) == TOP_UP_FEN - PAYMENT_FEN
        assert city.platform.audit().ok
    finally:
        lane.close()
        city.platform.close()


def test_a_full_queue_is_refused_with_a_stable_code(tmp_path: Path) -> None:
    city = City(f"sqlite:///{tmp_path / 'ledger.db'}")
    lane = LedgerLane(city.platform.db, queue_jobs_max=2)
    holder = Holder()

    async def scenario() -> tuple[list[Any], BaseException | None]:
        held = await holder.hold(lane)
        waiting = [asyncio.ensure_future(lane.run(city.pay(t))) for t in city.payers[:2]]
        await holder.until_queued(lane, 2)
        try:
            await lane.run(city.pay(city.payers[2]))
            refused = None
        except Busy as err:
            refused = err
        holder.released.set()
        await held
        return await asyncio.gather(*waiting), refused

    try:
        answered, refused = asyncio.run(scenario())
    finally:
        lane.close()
    assert refused is not None and refused.code == "ledger_queue_full"
    assert [a.amount_fen for a in answered] == [PAYMENT_FEN, PAYMENT_FEN]
    assert city.balance_fen(city.payers[2]) == TOP_UP_FEN  # the refused one changed nothing
    city.platform.close()


def test_a_call_runs_in_its_request_s_context(tmp_path: Path) -> None:
    """A simulation server's clock is a context variable set per request."""
    city = City(f"sqlite:///{tmp_path / 'ledger.db'}")
    lane = LedgerLane(city.platform.db)
    when: contextvars.ContextVar[str] = contextvars.ContextVar("when", default="unset")

    async def ask(value: str) -> str:
        when.set(value)
        return await lane.run(when.get)

    async def both() -> list[str]:
        return await asyncio.gather(ask("monday"), ask("tuesday"))

    try:
        assert asyncio.run(both()) == ["monday", "tuesday"]
    finally:
        lane.close()
        city.platform.close()


def test_close_answers_what_is_queued_and_a_later_call_starts_again(tmp_path: Path) -> None:
    city = City(f"sqlite:///{tmp_path / 'ledger.db'}")
    lane = LedgerLane(city.platform.db)
    try:
        first = asyncio.run(lane.run(city.pay(city.payers[0])))
        lane.close()
        second = asyncio.run(lane.run(city.pay(city.payers[1])))
    finally:
        lane.close()
    assert (first.amount_fen, second.amount_fen) == (PAYMENT_FEN, PAYMENT_FEN)
    assert first.transfer_id != second.transfer_id
    city.platform.close()


def test_every_answer_is_already_in_the_file(tmp_path: Path) -> None:
    """Another process reads each answered transfer at the moment the answer arrives."""
    path = tmp_path / "ledger.db"
    city = City(f"sqlite:///{path}")
    lane = LedgerLane(city.platform.db)
    other = sqlite3.connect(path)

    async def pay_and_look(token: str) -> int:
        receipt = await lane.run(city.pay(token))
        query = "SELECT count(*) FROM transfers WHERE id = ?"
        return other.execute(query, (receipt.transfer_id,)).fetchone()[0]

    async def everyone() -> list[int]:
        return await asyncio.gather(*(pay_and_look(t) for t in city.payers))

    try:
        assert asyncio.run(everyone()) == [1] * PAYERS
    finally:
        other.close()
        lane.close()
        city.platform.close()
