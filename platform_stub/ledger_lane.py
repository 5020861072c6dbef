"""The server's ledger lane: one thread runs the queued payments in batches, one COMMIT each.

Why: on one uvicorn worker a plain ``def`` endpoint costs a thread-pool hop per
request, and a dozen pool threads queueing for SQLite's one writer hand the GIL back
and forth at every statement. Measured with 16 clients, a payment then cost the server
twice the CPU of the same payment run on the event loop. Here the endpoint hands its
call to this thread and awaits it. The thread takes what is queued (up to
``BATCH_JOBS_MAX``), runs each call as a savepoint of one transaction
(``Database.commit_group``), commits once, then answers the whole batch in one call
back into the event loop. Each call still fails alone (its savepoint is undone).

An answer is as durable as before: nothing is answered before its COMMIT. A batch whose
COMMIT fails, or whose transaction SQLite rolls back, answers every call in it
``storage_unavailable``. Nothing of the batch was applied, so a retry with the same
request id is safe.

A backend that does not group commits (PostgreSQL: a connection per thread, row locks)
needs no lane. There ``run`` is the thread pool FastAPI would have used.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from platform_stub.exceptions import Busy, StorageLost, StorageUnavailable
from platform_stub.storage import Database

BATCH_JOBS_MAX = 64  # calls per COMMIT: bounds how long other threads wait for the file
QUEUE_JOBS_MAX = 4_096  # calls waiting for the lane; past it, ledger_queue_full (503)


@dataclass(frozen=True, slots=True)
class _Job:
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future
    context: contextvars.Context  # the request's (a simulation server's clock lives there)
    call: Callable[..., Any]
    args: tuple
    queued_s: float  # time.monotonic() when queued


class LedgerLane:
    """Run ledger calls from async endpoints, batched into shared COMMITs."""

    def __init__(
        self,
        db: Database,
        batch_jobs_max: int = BATCH_JOBS_MAX,
        queue_jobs_max: int = QUEUE_JOBS_MAX,
    ) -> None:
        if batch_jobs_max < 1 or queue_jobs_max < 1:
            raise ValueError("batch_jobs_max and queue_jobs_max must be at least 1")
        self.db = db
        self.batch_jobs_max = batch_jobs_max
        self._jobs: queue.Queue[_Job | None] = queue.Queue(queue_jobs_max)
        self._busy_s = float("-inf")  # when a call last found the database busy
        self._thread: threading.Thread | None = None  # started by the first call
        self._start_lock = threading.Lock()

    @property
    def queued(self) -> int:
        """Calls waiting for the lane (not counting the batch it is running)."""
        return self._jobs.qsize()

    async def run(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` on the lane (or the thread pool); its result or its error."""
        if not self.db.groups_commits:
            return await run_in_threadpool(call, *args)
        self._start()
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        job = _Job(loop, loop.create_future(), context, call, args, time.monotonic())
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise Busy(
                "ledger_queue_full", f"{self._jobs.maxsize} ledger calls queued; retry shortly"
            ) from None
        return await job.answer

    def close(self) -> None:
        """Finish what is queued, then stop the thread (a later call starts it again)."""
        with self._start_lock:
            if self._thread is not None:
                self._jobs.put(None)
                self._thread.join()
                self._thread = None

    def _start(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._serve, name="ledger-lane", daemon=True
                    )
                    self._thread.start()

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._take()
            if batch:
                try:
                    outcomes = self._run_batch(batch)
                except Exception as exc:  # noqa: BLE001 - a bug: answered (500), not left waiting
                    outcomes = [(job, False, exc) for job in batch]
                _answer(outcomes)

    def _take(self) -> tuple[list[_Job], bool]:
        """The first queued call (waiting for it), then whatever else is queued now;
        and whether ``close`` asked the lane to stop."""
        batch: list[_Job] = []
        job = self._jobs.get()
        while job is not None:
            batch.append(job)
            if len(batch) == self.batch_jobs_max:
                return batch, False
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _run_batch(self, batch: list[_Job]) -> list[tuple[_Job, bool, Any]]:
        """(job, succeeded, result or error) for every job; one COMMIT for the batch."""
        outcomes: list[tuple[_Job, bool, Any]] = []
        try:
            with self.db.commit_group():
                outcomes.extend(self._run_one(job) for job in batch)
        except StorageLost as exc:
            lost = StorageUnavailable(
                "storage_unavailable",
                f"the batch's commit failed and applied nothing ({exc.detail});"
                " retry with the same id",
            )
            return [(job, False, lost) for job in batch]
        return outcomes

    def _run_one(self, job: _Job) -> tuple[_Job, bool, Any]:
        """A call that was queued while another found the database busy (another
        process holds the write lock) is answered 503 at once: it has waited its turn
        already, and the service's own retries bound a call's wait, not a queue's."""
        if job.queued_s < self._busy_s:
            busy = StorageUnavailable(
                "storage_unavailable", "the database was busy while this call waited; retry"
            )
            return job, False, busy
        try:
            return job, True, job.context.run(job.call, *job.args)
        except StorageLost:
            raise
        except StorageUnavailable as exc:
            self._busy_s = time.monotonic()
            return job, False, exc
        except Exception as exc:  # noqa: BLE001 - the caller's to see, alone
            return job, False, exc


def _answer(outcomes: list[tuple[_Job, bool, Any]]) -> None:
    """One call into each event loop answers all its jobs of the batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, bool, Any]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, mine in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
            loop.call_soon_threadsafe(_settle, mine)


def _settle(outcomes: list[tuple[_Job, bool, Any]]) -> None:
    for job, succeeded, value in outcomes:
        if job.answer.done():  # the request was cancelled (the client went away)
            continue
        if succeeded:
            job.answer.set_result(value)
        else:
            job.answer.set_exception(value)
