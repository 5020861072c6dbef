"""The ledger's records and rules, without a database: account flags and limits,
``Account``, ``TransferRequest`` and ``Transfer``, the checks every transfer must pass,
its body hash, and the tables' layout with the SQL text that reads and writes them.

:class:`platform_stub.ledger.Ledger` (one transfer at a time) and
:class:`platform_stub.ledger_batch.LedgerBatch` (many in one transaction) both apply
these rules, so the two paths cannot drift apart; ``platform_stub.ledger`` re-exports
the public names.
"""

from __future__ import annotations

import hashlib
import json
from json.encoder import encode_basestring_ascii

from platform_stub.exceptions import InvalidRequest, Rejected
from platform_stub.frozen import frozen

DEBITS_MUST_NOT_EXCEED_CREDITS = 1
CREDITS_MUST_NOT_EXCEED_DEBITS = 2

PENDING = 1
POST_PENDING = 2
VOID_PENDING = 4

TRANSFER_ID_CHARS_MAX = 128
BATCH_TRANSFERS_MAX = 8_190
CONFLICT_RETRIES_MAX = 3  # a racing retry of one id loses once, then finds the first outcome
AMOUNT_FEN_MAX = 10**15


@frozen
class Account:
    id: int
    name: str
    kind: str
    flags: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def balance_fen(self) -> int:
        """Credits posted less debits posted and pending: what the holder may spend."""
        return self.credits_posted - self.debits_posted - self.debits_pending


@frozen
class TransferRequest:
    id: str
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    kind: str
    flags: int = 0
    pending_id: str | None = None

    def body_hash(self) -> str:
        """Everything but the id; a retry must match it to get the first outcome."""
        body = (
            self.debit_account_id,
            self.credit_account_id,
            self.amount_fen,
            self.kind,
            self.flags,
            self.pending_id,
        )
        return hashlib.sha256(compact_json(body).encode()).hexdigest()[:32]


@frozen
class Transfer:
    seq: int
    id: str
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    kind: str
    flags: int
    pending_id: str | None
    timestamp_us: int


ACCOUNT_COLUMNS = (
    "id, name, kind, flags, debits_pending, debits_posted, credits_pending, credits_posted"
)
TRANSFER_COLUMNS = (
    "seq, id, debit_account_id, credit_account_id, amount_fen, kind, flags, pending_id,"
    " timestamp_us"
)
# A transfer id's outcome in one statement: its transfer row, else its refusal row (an id
# is never both). The last three columns are body_hash, code and detail.
OUTCOME_SQL = (
    f"SELECT {TRANSFER_COLUMNS}, body_hash, NULL, NULL FROM transfers WHERE id = ?"
    " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, body_hash, code,"
    " detail FROM rejections WHERE id = ?"
)
INSERT_SQL = (
    "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount_fen, kind,"
    " flags, pending_id, body_hash, timestamp_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
REJECTION_SQL = (
    "INSERT INTO rejections (id, body_hash, code, detail, timestamp_us) VALUES (?, ?, ?, ?, ?)"
)


def schema(dialect: str) -> list[str]:
    """DDL for the ledger tables; identical but for the identity column.

    Every page a transaction changes is one more write at commit, so the schema keeps
    them few: no AUTOINCREMENT on SQLite (its ``sqlite_sequence`` row is rewritten by
    every insert; accounts and transfers are never deleted, so ``max + 1`` ids still
    only grow), and the pending index holds only the transfers that have a pending id.
    About 9 pages a payment became 7; a payment's write transaction about 25% faster."""
    ident = "INTEGER PRIMARY KEY" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    return [
        f"""CREATE TABLE IF NOT EXISTS accounts (
            id {ident}, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            flags INTEGER NOT NULL DEFAULT 0,
            debits_pending BIGINT NOT NULL DEFAULT 0, debits_posted BIGINT NOT NULL DEFAULT 0,
            credits_pending BIGINT NOT NULL DEFAULT 0, credits_posted BIGINT NOT NULL DEFAULT 0)""",
        f"""CREATE TABLE IF NOT EXISTS transfers (
            seq {ident}, id TEXT NOT NULL UNIQUE,
            debit_account_id BIGINT NOT NULL REFERENCES accounts(id),
            credit_account_id BIGINT NOT NULL REFERENCES accounts(id),
            amount_fen BIGINT NOT NULL CHECK (amount_fen >= 0), kind TEXT NOT NULL,
            flags INTEGER NOT NULL, pending_id TEXT, body_hash TEXT NOT NULL,
            timestamp_us BIGINT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS transfers_pending ON transfers(pending_id)"
        " WHERE pending_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS transfers_debit ON transfers(debit_account_id, seq)",
        "CREATE INDEX IF NOT EXISTS transfers_credit ON transfers(credit_account_id, seq)",
        """CREATE TABLE IF NOT EXISTS rejections (
            id TEXT PRIMARY KEY, body_hash TEXT NOT NULL, code TEXT NOT NULL,
            detail TEXT NOT NULL, timestamp_us BIGINT NOT NULL)""",
    ]


@frozen
class Deltas:
    """Change to both sides' pending and posted columns (debit side mirrors credit side)."""

    pending: int
    posted: int


def plain_deltas(request: TransferRequest) -> Deltas:
    if request.flags & PENDING:
        return Deltas(pending=request.amount_fen, posted=0)
    return Deltas(pending=0, posted=request.amount_fen)


def validate(request: TransferRequest) -> None:
    if not request.id or len(request.id) > TRANSFER_ID_CHARS_MAX:
        raise InvalidRequest(
            "invalid_request", f"transfer id must be 1-{TRANSFER_ID_CHARS_MAX} chars"
        )
    if not 0 < request.amount_fen <= AMOUNT_FEN_MAX and not request.flags & VOID_PENDING:
        raise InvalidRequest("amount_invalid", f"amount_fen must be 1..{AMOUNT_FEN_MAX}")
    if request.debit_account_id == request.credit_account_id:
        raise InvalidRequest("same_account", "debit and credit accounts must differ")
    kinds = request.flags & (PENDING | POST_PENDING | VOID_PENDING)
    if kinds not in (0, PENDING, POST_PENDING, VOID_PENDING):
        raise InvalidRequest("invalid_request", "at most one of pending, post, void")
    if bool(kinds & (POST_PENDING | VOID_PENDING)) != (request.pending_id is not None):
        raise InvalidRequest("invalid_request", "pending_id goes with post or void, only")


def check_limits(debit: Account, credit: Account, d: Deltas) -> None:
    if debit.flags & DEBITS_MUST_NOT_EXCEED_CREDITS and (
        debit.debits_pending + d.pending + debit.debits_posted + d.posted > debit.credits_posted
    ):
        raise Rejected("exceeds_credits", f"account {debit.name} has too little credit")
    if credit.flags & CREDITS_MUST_NOT_EXCEED_DEBITS and (
        credit.credits_pending + d.pending + credit.credits_posted + d.posted > credit.debits_posted
    ):
        raise Rejected("exceeds_debits", f"account {credit.name} has too little debit")


def compact_json(body: tuple) -> str:
    """``json.dumps(body, separators=(",", ":"))``, spelled out for ints, strings and None
    (stored hashes must not change); anything else goes through ``json.dumps``."""
    parts = []
    for value in body:
        if type(value) is int:
            parts.append(repr(value))
        elif type(value) is str:
            parts.append(encode_basestring_ascii(value))
        elif value is None:
            parts.append("null")
        else:
            return json.dumps(body, separators=(",", ":"))
    return "[" + ",".join(parts) + "]"


def transfer_values(request: TransferRequest) -> tuple:
    """The request's columns in ``INSERT_SQL`` order, up to (not including) body_hash."""
    return (
        request.id,
        request.debit_account_id,
        request.credit_account_id,
        request.amount_fen,
        request.kind,
        request.flags,
        request.pending_id,
    )


def same_body_or_raise(transfer_id: str, stored_hash: str, body_hash: str) -> None:
    if stored_hash != body_hash:
        raise Rejected(
            "exists_with_different_fields", f"transfer {transfer_id!r} exists with another body"
        )
