"""Idempotency keys for calls that create things rather than move money.

Money moves carry a ``request_id`` the ledger keys on. Registrations, card
bindings and bus-card claims take an ``Idempotency-Key`` header instead: the first
request with a key claims it, runs, and stores its response; a retry with the same
key and body gets that response again; the same key with another body is refused
(``exists_with_different_fields``); a retry while the first is still running is
refused (``request_in_progress``) and may be sent again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from platform_stub.exceptions import InvalidRequest, PlatformError, Rejected
from platform_stub.storage import Database

KEY_CHARS_MAX = 128
SCHEMA = """CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, response TEXT,
    PRIMARY KEY (scope, key))"""


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as tx:
            tx.execute(SCHEMA)

    def run(self, scope: str, key: str | None, body: Any, fn: Callable[[], dict]) -> dict:
        """``fn()`` once per (scope, key); without a key, simply ``fn()``."""
        if key is None:
            return fn()
        if not 0 < len(key) <= KEY_CHARS_MAX:
            raise InvalidRequest(
                "invalid_request", f"Idempotency-Key must be 1-{KEY_CHARS_MAX} characters"
            )
        digest = _hash(body)
        stored = self._claim(scope, key, digest)
        if stored is not None:
            return stored
        try:
            response = fn()
        except PlatformError:
            self._release(scope, key)  # nothing was created: the key may be used again
            raise
        with self.db.transaction() as tx:
            tx.execute("UPDATE idempotency_keys SET response = ? WHERE scope = ? AND key = ?",
                       (json.dumps(response), scope, key))
        return response

    def _claim(self, scope: str, key: str, digest: str) -> dict | None:
        with self.db.transaction() as tx:
            claimed = tx.execute(
                "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES (?, ?, ?)"
                " ON CONFLICT (scope, key) DO NOTHING",
                (scope, key, digest),
            )
            if claimed:
                return None
            row = tx.one("SELECT request_hash, response FROM idempotency_keys"
                         " WHERE scope = ? AND key = ?", (scope, key))
        if row[0] != digest:
            raise Rejected("exists_with_different_fields", f"Idempotency-Key {key!r} was used")
        if row[1] is None:
            raise Rejected("request_in_progress", f"a request with key {key!r} is running")
        return json.loads(row[1])

    def _release(self, scope: str, key: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM idempotency_keys WHERE scope = ? AND key = ?", (scope, key))


def _hash(body: Any) -> str:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
