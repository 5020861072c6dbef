"""Voice announcements: every payment a merchant receives, spoken at the stall.

Merchants value the speaker that says "收款 3.50 元" because it stops fraud (a faked
payment screen says nothing). ``GET /v1/announcements`` is a server-sent-event stream
of the merchant's received payments (kinds ``pay_merchant`` and ``pay_code``), each
within about ``POLL_S`` of its commit.

The stream polls the ledger rather than listening in-process, because the server may
run several worker processes on one PostgreSQL database and the payment may commit in
any of them. It reads the transfers credited to the merchant after the last seq it
sent. Seq order is commit order for one merchant: every such transfer locks the
merchant's account row before it draws its seq and holds the lock until commit, so a
later seq never becomes visible before an earlier one and the stream skips none.

Limits: ``STREAMS_OPEN_MAX`` open streams per worker process (the next caller gets
``announcement_streams_full``, 503: reconnect later); a stream ends after
``max_events`` events or ``timeout_s`` seconds (reconnect with ``since_seq`` or the
``Last-Event-ID`` header, which is the last seq received); each poll reads at most
``POLL_PAGE_MAX`` transfers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import FastAPI, Header, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from platform_stub.api import Token
from platform_stub.exceptions import Busy, InvalidRequest
from platform_stub.features.paycodes import merchant_of
from platform_stub.frozen import frozen
from platform_stub.openapi_errors import errors

if TYPE_CHECKING:
    from platform_stub.service import Platform

ANNOUNCED_KINDS = ("pay_merchant", "pay_code")
POLL_S = 0.2
POLL_PAGE_MAX = 100
EVENTS_MAX = 1_000  # per stream or call; at the limit the stream ends and the app reconnects
STREAM_TIMEOUT_S_DEFAULT = 600.0
STREAM_TIMEOUT_S_MAX = 3_600.0
STREAMS_OPEN_MAX = 100  # per worker process; each open stream polls the database 5 times a second
HEARTBEAT_S = 15.0  # an SSE comment keeps proxies from closing a quiet stream
RECONNECT_MS = 1_000  # the SSE "retry:" hint for EventSource clients
SEQ_MAX = 2**62

# Transfers credited to the merchant after the last seen seq. The ledger's index on
# (credit_account_id, seq) makes this and the merchant's latest seq cheap.
_KINDS_SQL = ", ".join("?" for _ in ANNOUNCED_KINDS)
_PAGE_SQL = (
    "SELECT seq, id, amount_fen, timestamp_us FROM transfers"
    f" WHERE credit_account_id = ? AND kind IN ({_KINDS_SQL}) AND seq > ?"
    " ORDER BY seq LIMIT ?"
)
_LATEST_SQL = (
    "SELECT COALESCE(MAX(seq), 0) FROM transfers"
    f" WHERE credit_account_id = ? AND kind IN ({_KINDS_SQL})"
)


@frozen
class Announcement:
    """One received payment, as the stall's speaker says it; ``seq`` orders them."""

    seq: int
    transfer_id: str
    amount_fen: int
    text: str
    timestamp_us: int


def spoken(amount_fen: int) -> str:
    """What the speaker says: "收款 3.50 元" for 350 fen."""
    return f"收款 {amount_fen // 100}.{amount_fen % 100:02d} 元"


class Service:
    """Read a merchant's announcements, in-process or as the stream's database poll."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.streams = StreamSlots(STREAMS_OPEN_MAX)

    def announcements(
        self, token: str, since_seq: int = 0, limit: int = 100
    ) -> list[Announcement]:
        """The merchant's payments after ``since_seq``, oldest first, at most ``limit``."""
        who = merchant_of(self.platform, token)
        _check_page(since_seq, limit)
        return self.page(who.account_id, since_seq, limit)

    def subscribe(self, token: str | None, since_seq: int | None) -> tuple[int, int]:
        """Authenticate a stream; returns the merchant's account and the seq it starts
        after: ``since_seq`` if given, else the merchant's newest payment (a global
        newest seq could skip this merchant's payments still committing)."""
        who = merchant_of(self.platform, token)
        if since_seq is not None:
            _check_seq(since_seq)
            return who.account_id, since_seq
        with self.platform.db.transaction(write=False) as tx:
            latest = tx.one(_LATEST_SQL, (who.account_id, *ANNOUNCED_KINDS))[0]
        return who.account_id, int(latest)

    def page(self, account_id: int, after_seq: int, limit: int) -> list[Announcement]:
        """One bounded read of the payments credited to ``account_id`` after a seq."""
        with self.platform.db.transaction(write=False) as tx:
            rows = tx.all(_PAGE_SQL, (account_id, *ANNOUNCED_KINDS, after_seq, limit))
        return [
            Announcement(int(seq), transfer_id, int(amount), spoken(int(amount)), int(ts))
            for seq, transfer_id, amount, ts in rows
        ]


class StreamSlots:
    """A counter of open streams with a ceiling: open ones are never cut, new ones wait."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.open >= self.most:
                raise Busy(
                    "announcement_streams_full",
                    f"{self.most} announcement streams open on this worker; retry shortly",
                )
            self.open += 1

    def give_back(self) -> None:
        with self._lock:
            assert self.open > 0, "gave back a stream slot never taken"
            self.open -= 1


class _StreamThenRelease(StreamingResponse):
    """A streaming response that calls ``on_close`` however it ends: finished, client
    gone, or server shutting down. (A generator's ``finally`` does not run if the
    generator never started, so it cannot hold the slot.)"""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


@frozen
class _Stream:
    account_id: int
    after_seq: int
    max_events: int
    timeout_s: float


async def _events(service: Service, stream: _Stream) -> AsyncIterator[str]:
    """SSE frames: the reconnect hint at once (the client knows it is subscribed), then
    each payment; polls the database in a worker thread so the event loop never waits."""
    yield f"retry: {RECONNECT_MS}\n\n"
    deadline = time.monotonic() + stream.timeout_s
    after_seq, sent, last_write = stream.after_seq, 0, time.monotonic()
    while sent < stream.max_events:
        asked = min(POLL_PAGE_MAX, stream.max_events - sent)
        page = await run_in_threadpool(service.page, stream.account_id, after_seq, asked)
        for announcement in page:
            yield _frame(announcement)
        if page:
            after_seq, sent, last_write = page[-1].seq, sent + len(page), time.monotonic()
        if len(page) == asked:
            continue  # a backlog: read on before sleeping
        if time.monotonic() >= deadline:
            return
        if time.monotonic() - last_write >= HEARTBEAT_S:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
        await anyio.sleep(POLL_S)


def _frame(announcement: Announcement) -> str:
    data = json.dumps(asdict(announcement), ensure_ascii=False, separators=(",", ":"))
    return f"id: {announcement.seq}\nevent: payment\ndata: {data}\n\n"


def add_routes(app: FastAPI, platform: Platform) -> None:
    service: Service = platform.announcements
    ok = {200: {"description": "text/event-stream of payment events",
                "content": {"text/event-stream": {}}}}

    @app.get("/v1/announcements", response_class=StreamingResponse,
             responses=ok | errors("announcement_streams_full"))
    async def announcements(
        token: Token,
        since_seq: Annotated[int | None, Query(ge=0, le=SEQ_MAX)] = None,
        max_events: Annotated[int, Query(ge=1, le=EVENTS_MAX)] = EVENTS_MAX,
        timeout_s: Annotated[float, Query(ge=0, le=STREAM_TIMEOUT_S_MAX)] = (
            STREAM_TIMEOUT_S_DEFAULT),
        last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    ) -> StreamingResponse:
        """The merchant's received payments as they happen; ``timeout_s=0`` returns
        what is there after ``since_seq`` (up to ``max_events``) and ends."""
        since = since_seq if since_seq is not None else _seq_of(last_event_id)
        account_id, after_seq = await run_in_threadpool(service.subscribe, token, since)
        service.streams.take()
        stream = _Stream(account_id, after_seq, max_events, timeout_s)
        return _StreamThenRelease(_events(service, stream), service.streams.give_back)


def _seq_of(last_event_id: str | None) -> int | None:
    """The ``Last-Event-ID`` an EventSource sends on reconnecting: the last seq it got."""
    if last_event_id is None:
        return None
    if not last_event_id.isdigit() or int(last_event_id) > SEQ_MAX:
        raise InvalidRequest("invalid_request", "Last-Event-ID must be a seq we sent")
    return int(last_event_id)


def _check_page(since_seq: int, limit: int) -> None:
    _check_seq(since_seq)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= EVENTS_MAX:
        raise InvalidRequest("invalid_request", f"limit must be 1..{EVENTS_MAX}")


def _check_seq(seq: int) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= SEQ_MAX:
        raise InvalidRequest("invalid_request", f"since_seq must be 0..{SEQ_MAX}")
