"""Request body limits, for bodies with a Content-Length and for chunked ones alike.

``BodyLimit`` refuses a body whose Content-Length is not a number or is over the path's
limit before reading it, and reads any other body up to its limit before the app sees
it (one plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a task and a
stream per request, a large share of a payment's time in the server): a chunked body
(no Content-Length) cannot make the server buffer more; past the limit the request
is answered ``request_too_large`` at once, within it the app gets the bytes replayed.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from platform_stub.exceptions import RequestTooLarge
from platform_stub.openapi_errors import problem

REQUEST_BYTES_MAX = 64 * 1024
BATCH_REQUEST_BYTES_MAX = 1024 * 1024  # a full tap batch: 1,000 codes of ~300 characters
BATCH_PATH = "/v1/transit/batches"


def body_limit(path: str) -> int:
    return BATCH_REQUEST_BYTES_MAX if path == BATCH_PATH else REQUEST_BYTES_MAX


class BodyLimit:
    """Reads a body up to the limit before the app sees it, so a chunked body (no
    Content-Length) cannot make the server buffer more: past the limit the request is
    answered request_too_large at once; within it the app gets the bytes replayed."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _too_large(limit)(scope, receive, send)  # refused before reading a byte
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await _too_large(limit)(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Any) -> Any:
    """The buffered body first, then the client's own messages (a disconnect, which
    a streaming response listens for)."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _header(scope: dict, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as Starlette's ``Headers.get``."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _too_large(limit: int) -> JSONResponse:
    too_large = RequestTooLarge("request_too_large", f"limit is {limit} bytes")
    return problem(too_large.http_status, too_large.code, too_large.detail)
