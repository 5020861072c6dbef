"""Problem details: the problem+json responses, and in the OpenAPI document the codes
each endpoint can return.

``responses=errors("exceeds_credits", ...)`` on a route documents, per HTTP status,
every stable code a client must handle. Codes every endpoint can return (a
malformed body, an oversized one, storage unavailable) are added for you, and the
credential codes for endpoints that need a credential.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from platform_stub.exceptions import http_status_of

ALWAYS = ("invalid_request", "request_too_large", "storage_unavailable")
WITH_CREDENTIAL = ("credential_missing", "credential_invalid", "forbidden")


class Problem(BaseModel):
    """RFC 9457 problem details, with the stable ``code`` of platform_stub.exceptions."""

    type: str
    title: str
    status: int
    code: str
    detail: str


def errors(*codes: str, credential: bool = True) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` table for a route that may fail with ``codes``."""
    every = {*ALWAYS, *(WITH_CREDENTIAL if credential else ()), *codes}
    by_status: dict[int, list[str]] = defaultdict(list)
    for code in sorted(every):
        by_status[http_status_of(code)].append(code)
    return {
        status: {
            "model": Problem,
            "description": "Problem codes: " + ", ".join(found),
        }
        for status, found in sorted(by_status.items())
    }


def problem(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        media_type="application/problem+json",
        content={
            "type": f"urn:cashless:error:{code}",
            "title": code,
            "status": status,
            "code": code,
            "detail": detail,
        },
    )
