"""Double-entry ledger in integer fen, after TigerBeetle.

The ledger is the only code that changes balances. Transfers are immutable and
carry a caller-chosen id: retrying the same id with the same body returns the
first outcome (success or refusal); the same id with another body is refused with
``exists_with_different_fields``. Two-phase transfers reserve into the pending
columns; posting (possibly partially) or voiding is a new transfer pointing at
the pending one, and resolves it exactly once.

Account flags:
- ``DEBITS_MUST_NOT_EXCEED_CREDITS``: refuse when debits_pending + debits_posted +
  amount > credits_posted (a wallet cannot go negative).
- ``CREDITS_MUST_NOT_EXCEED_DEBITS``: the mirror image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from json.encoder import encode_basestring_ascii

from platform_stub.exceptions import (
    InvalidRequest,
    NotFound,
    PlatformError,
    Rejected,
    StorageUnavailable,
    platform_error,
)
from platform_stub.storage import Database, Tx, in_chunks, marks, now_us, rows_in

DEBITS_MUST_NOT_EXCEED_CREDITS = 1
CREDITS_MUST_NOT_EXCEED_DEBITS = 2

PENDING = 1
POST_PENDING = 2
VOID_PENDING = 4

TRANSFER_ID_CHARS_MAX = 128
BATCH_TRANSFERS_MAX = 8_190
CONFLICT_RETRIES_MAX = 3  # a racing retry of one id loses once, then finds the first outcome
AMOUNT_FEN_MAX = 10**15


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
        return hashlib.sha256(_compact_json(body).encode()).hexdigest()[:32]


@dataclass(frozen=True)
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


_ACCOUNT_COLUMNS = (
    "id, name, kind, flags, debits_pending, debits_posted, credits_pending, credits_posted"
)
_TRANSFER_COLUMNS = (
    "seq, id, debit_account_id, credit_account_id, amount_fen, kind, flags, pending_id,"
    " timestamp_us"
)
# A transfer id's outcome in one statement: its transfer row, else its refusal row (an id
# is never both). The last three columns are body_hash, code and detail.
_OUTCOME_SQL = (
    f"SELECT {_TRANSFER_COLUMNS}, body_hash, NULL, NULL FROM transfers WHERE id = ?"
    " UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, body_hash, code,"
    " detail FROM rejections WHERE id = ?"
)
_INSERT_SQL = (
    "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount_fen, kind,"
    " flags, pending_id, body_hash, timestamp_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_REJECTION_SQL = (
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


class Ledger:
    """Accounts and transfers over a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as tx:
            for ddl in schema(db.dialect):
                tx.execute(ddl)

    # -- accounts ---------------------------------------------------------------

    def create_account(self, tx: Tx, name: str, kind: str, flags: int = 0) -> Account:
        """Create an account, or return the existing one of that name and kind."""
        row = tx.one(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE name = ?", (name,))
        if row is None:
            tx.execute(
                "INSERT INTO accounts (name, kind, flags) VALUES (?, ?, ?)", (name, kind, flags)
            )
            row = tx.one(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE name = ?", (name,))
        account = Account(*row)
        if (account.kind, account.flags) != (kind, flags):
            raise Rejected("exists_with_different_fields", f"account {name!r} exists")
        return account

    def account(self, tx: Tx, account_id: int) -> Account:
        row = tx.one(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
        if row is None:
            raise NotFound("account_not_found", f"no account {account_id}")
        return Account(*row)

    def accounts(self, tx: Tx) -> list[Account]:
        return [Account(*r) for r in tx.all(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY id")]

    # -- transfers --------------------------------------------------------------

    def transfer(self, tx: Tx, request: TransferRequest) -> Transfer:
        """Apply one transfer inside ``tx``; a refusal is recorded and re-raised.

        The refusal's record lives in the same transaction, so the caller must
        commit even when this raises a :class:`PlatformError` (``apply`` does).
        """
        body_hash = request.body_hash()
        previous = self._previous_outcome(tx, request.id, body_hash)
        if previous is not None:
            return previous
        return self._apply_or_refuse(tx, request, body_hash)

    def transfer_fresh(self, tx: Tx, request: TransferRequest) -> Transfer:
        """``transfer`` for an id the caller has just found untried (``outcome_of`` gave
        None) in this same transaction, so the lookup of an earlier outcome is skipped."""
        return self._apply_or_refuse(tx, request, request.body_hash())

    def _apply_or_refuse(self, tx: Tx, request: TransferRequest, body_hash: str) -> Transfer:
        """Apply a transfer never tried before, or record its refusal and raise it."""
        try:
            return self._apply(tx, request, body_hash)
        except PlatformError as err:
            tx.execute(_REJECTION_SQL, (request.id, body_hash, err.code, err.detail, now_us()))
            raise

    def apply(
        self, request: TransferRequest, then: Callable[[Tx, Transfer], object] | None = None
    ) -> Transfer:
        """One transfer in its own transaction; refusals are committed then raised.

        ``then`` runs inside the same transaction after the transfer succeeded (or was
        found already applied), for work that must commit with it or not at all.
        """
        for attempt in range(CONFLICT_RETRIES_MAX):
            try:
                return self._apply_once(request, then)
            except StorageUnavailable:
                if attempt + 1 == CONFLICT_RETRIES_MAX:
                    raise
        raise AssertionError("the loop returns or raises")

    def _apply_once(
        self, request: TransferRequest, then: Callable[[Tx, Transfer], object] | None
    ) -> Transfer:
        """One attempt; a racing retry of the same id surfaces as StorageUnavailable."""
        refusal: PlatformError | None = None
        with self.db.transaction() as tx:
            try:
                transfer = self.transfer(tx, request)
            except PlatformError as err:
                refusal = err
            else:
                if then is not None:
                    then(tx, transfer)
                return transfer
        raise refusal

    def apply_batch(self, requests: Sequence[TransferRequest]) -> list[Transfer | PlatformError]:
        """Many transfers in one transaction (clearing's path); each keeps its own outcome,
        as if applied one after another in order.

        Plain and pending transfers go through a :class:`LedgerBatch`: one lookup of
        earlier outcomes, one locking read of the accounts in id order, the checks against
        running balances in memory, then one ``executemany`` per table. A batch that posts
        or voids pending transfers is applied one transfer at a time.
        """
        if len(requests) > BATCH_TRANSFERS_MAX:
            raise InvalidRequest(
                "invalid_request", f"batch of {len(requests)} exceeds {BATCH_TRANSFERS_MAX}"
            )
        with self.db.transaction() as tx:
            if any(r.flags & (POST_PENDING | VOID_PENDING) for r in requests):
                return [self._transfer_or_refusal(tx, request) for request in requests]
            return _apply_in_batch(tx, requests)

    def _transfer_or_refusal(self, tx: Tx, request: TransferRequest) -> Transfer | PlatformError:
        try:
            return self.transfer(tx, request)
        except PlatformError as err:
            return err

    def outcome_of(self, tx: Tx, transfer_id: str) -> Transfer | PlatformError | None:
        """What became of ``transfer_id`` whatever its body: the transfer, the recorded
        refusal, or None if it was never tried (for callers that derive the body)."""
        row = tx.one(_OUTCOME_SQL, (transfer_id, transfer_id))
        if row is None:
            return None
        return platform_error(row[-2], row[-1]) if row[0] is None else Transfer(*row[:-3])

    def _previous_outcome(self, tx: Tx, transfer_id: str, body_hash: str) -> Transfer | None:
        row = tx.one(_OUTCOME_SQL, (transfer_id, transfer_id))
        if row is None:
            return None
        _same_body_or_raise(transfer_id, row[-3], body_hash)
        if row[0] is None:
            raise platform_error(row[-2], row[-1])
        return Transfer(*row[:-3])

    def _apply(self, tx: Tx, request: TransferRequest, body_hash: str) -> Transfer:
        _validate(request)
        debit, credit = self._lock_pair(tx, request.debit_account_id, request.credit_account_id)
        if request.flags & (POST_PENDING | VOID_PENDING):
            deltas = self._resolution_deltas(tx, request)
        else:
            deltas = _plain_deltas(request)
        _check_limits(debit, credit, deltas)
        _update_balances(tx, debit.id, credit.id, deltas)
        return self._insert(tx, request, body_hash)

    def _lock_pair(self, tx: Tx, debit_id: int, credit_id: int) -> tuple[Account, Account]:
        rows = tx.all(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id IN (?, ?) ORDER BY id"
            + tx.for_update(),
            (debit_id, credit_id),
        )
        found = {r[0]: Account(*r) for r in rows}
        for account_id in (debit_id, credit_id):
            if account_id not in found:
                raise NotFound("account_not_found", f"no account {account_id}")
        return found[debit_id], found[credit_id]

    def _resolution_deltas(self, tx: Tx, request: TransferRequest) -> _Deltas:
        pending = self._pending(tx, request.pending_id)
        if (pending.debit_account_id, pending.credit_account_id) != (
            request.debit_account_id,
            request.credit_account_id,
        ):
            raise InvalidRequest("invalid_request", "accounts differ from the pending transfer")
        if request.amount_fen > pending.amount_fen:
            raise Rejected("amount_mismatch", "cannot post more than is pending")
        posted = request.amount_fen if request.flags & POST_PENDING else 0
        return _Deltas(pending=-pending.amount_fen, posted=posted)

    def _pending(self, tx: Tx, pending_id: str | None) -> Transfer:
        row = tx.one(f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = ?", (pending_id,))
        if row is None or not Transfer(*row).flags & PENDING:
            raise NotFound("transfer_not_found", f"no pending transfer {pending_id!r}")
        resolved = tx.one("SELECT id FROM transfers WHERE pending_id = ?", (pending_id,))
        if resolved is not None:
            raise Rejected(
                "pending_already_resolved", f"{pending_id!r} resolved by {resolved[0]!r}"
            )
        return Transfer(*row)

    def _insert(self, tx: Tx, request: TransferRequest, body_hash: str) -> Transfer:
        timestamp_us = now_us()
        values = _transfer_values(request)
        (seq,) = tx.one(_INSERT_SQL + " RETURNING seq", (*values, body_hash, timestamp_us))
        return Transfer(seq, *values, timestamp_us)

    def transfers_of(self, tx: Tx, account_id: int, limit: int, offset: int) -> list[Transfer]:
        return [
            Transfer(*r)
            for r in tx.all(
                f"SELECT {_TRANSFER_COLUMNS} FROM transfers"
                " WHERE debit_account_id = ? OR credit_account_id = ?"
                " ORDER BY seq LIMIT ? OFFSET ?",
                (account_id, account_id, limit, offset),
            )
        ]

    def transfer_count(self, tx: Tx) -> int:
        return tx.one("SELECT COUNT(*) FROM transfers")[0]


class LedgerBatch:
    """Many transfers inside one transaction, checked against running balances in memory
    and written by ``flush`` with one ``executemany`` per table (after TigerBeetle's
    batches). Each transfer gets the outcome ``Ledger.transfer`` would give it, applied one
    after another in order: an earlier outcome of its id is replayed (or refused if the
    body differs), a refusal is recorded, limits see every earlier transfer of the batch.

    Accounts are read and locked (PostgreSQL: ``FOR UPDATE``) once, on first use or all at
    once in id order by ``lock``; earlier outcomes are looked up once per id (``recall``
    many at once). Posting or voiding a pending transfer reads other transfers, so it is
    not done here (``Ledger.transfer``). Nothing but this batch may change these accounts'
    balances or the transfers table in ``tx`` before ``flush``.
    """

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self._accounts: dict[int, Account | None] = {}
        self._outcomes: dict[str, tuple[str, Transfer | PlatformError] | None] = {}
        self._inserts: list[tuple] = []
        self._refusals: list[tuple] = []
        self._deltas: dict[int, list[int]] = {}  # account id -> four balance column deltas

    def lock(self, account_ids: Iterable[int]) -> None:
        """Read and lock, in id order, every account not yet read (missing ones too)."""
        ids = sorted({i for i in account_ids if i not in self._accounts})
        for chunk in in_chunks(ids):
            rows = self.tx.all(
                f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({marks(chunk)})"
                " ORDER BY id" + self.tx.for_update(),
                chunk,
            )
            self._accounts.update(dict.fromkeys(chunk))
            self._accounts.update((r[0], Account(*r)) for r in rows)

    def account(self, account_id: int) -> Account:
        """The account with every transfer of this batch so far applied."""
        if account_id not in self._accounts:
            self.lock((account_id,))
        account = self._accounts[account_id]
        if account is None:
            raise NotFound("account_not_found", f"no account {account_id}")
        return account

    def recall(self, transfer_ids: Iterable[str]) -> None:
        """Look up the earlier outcomes of many ids at once (``transfer`` then needs none)."""
        ids = sorted({i for i in transfer_ids if i not in self._outcomes})
        for chunk in in_chunks(ids):
            in_list = marks(chunk)
            self._outcomes.update(dict.fromkeys(chunk))
            for row in self.tx.all(
                f"SELECT {_TRANSFER_COLUMNS}, body_hash FROM transfers WHERE id IN ({in_list})",
                chunk,
            ):
                self._outcomes[row[1]] = (row[-1], Transfer(*row[:-1]))
            for row in self.tx.all(
                f"SELECT id, body_hash, code, detail FROM rejections WHERE id IN ({in_list})", chunk
            ):
                self._outcomes[row[0]] = (row[1], platform_error(row[2], row[3]))

    def transfer(self, request: TransferRequest) -> Transfer:
        """As ``Ledger.transfer``; a new transfer's ``seq`` is 0 until ``flush``."""
        if request.flags & (POST_PENDING | VOID_PENDING):
            raise AssertionError("posting or voiding a pending transfer needs Ledger.transfer")
        body_hash = request.body_hash()
        if request.id not in self._outcomes:
            self.recall((request.id,))
        previous = self._outcomes[request.id]
        if previous is not None:
            _same_body_or_raise(request.id, previous[0], body_hash)
            if isinstance(previous[1], PlatformError):
                raise previous[1]
            return previous[1]
        try:
            transfer = self._apply(request, body_hash)
        except PlatformError as err:
            self._refusals.append((request.id, body_hash, err.code, err.detail, now_us()))
            self._outcomes[request.id] = (body_hash, err)
            raise
        self._outcomes[request.id] = (body_hash, transfer)
        return transfer

    def _apply(self, request: TransferRequest, body_hash: str) -> Transfer:
        _validate(request)
        debit = self.account(request.debit_account_id)
        credit = self.account(request.credit_account_id)
        deltas = _plain_deltas(request)
        _check_limits(debit, credit, deltas)
        self._accounts[debit.id] = _moved(debit, deltas, debit_side=True)
        self._accounts[credit.id] = _moved(credit, deltas, debit_side=False)
        self._add_deltas(debit.id, 0, deltas)  # debits_pending, debits_posted
        self._add_deltas(credit.id, 2, deltas)  # credits_pending, credits_posted
        values = _transfer_values(request)
        timestamp_us = now_us()
        self._inserts.append((*values, body_hash, timestamp_us))
        return Transfer(0, *values, timestamp_us)

    def _add_deltas(self, account_id: int, first_column: int, deltas: _Deltas) -> None:
        """Add ``deltas`` to one side's (pending, posted) pair of the account's four
        balance columns: the debit side starts at column 0, the credit side at 2."""
        total = self._deltas.get(account_id)
        if total is None:
            total = self._deltas[account_id] = [0, 0, 0, 0]
        total[first_column] += deltas.pending
        total[first_column + 1] += deltas.posted

    def flush(self) -> dict[str, int]:
        """Write what the batch did; returns the new transfers' seqs by id."""
        if self._inserts:
            self.tx.executemany(_INSERT_SQL, self._inserts)
        if self._refusals:
            self.tx.executemany(_REJECTION_SQL, self._refusals)
        if self._deltas:
            self.tx.executemany(
                "UPDATE accounts SET debits_pending = debits_pending + ?,"
                " debits_posted = debits_posted + ?, credits_pending = credits_pending + ?,"
                " credits_posted = credits_posted + ? WHERE id = ?",
                [(*d, account_id) for account_id, d in sorted(self._deltas.items())],
            )
        ids = [row[0] for row in self._inserts]
        seqs = dict(rows_in(self.tx, "SELECT id, seq FROM transfers WHERE id IN ({})", ids))
        self._inserts, self._refusals, self._deltas = [], [], {}
        return seqs


def _apply_in_batch(tx: Tx, requests: Sequence[TransferRequest]) -> list[Transfer | PlatformError]:
    batch = LedgerBatch(tx)
    batch.recall(r.id for r in requests)
    batch.lock(i for r in requests for i in (r.debit_account_id, r.credit_account_id))
    outcomes: list[Transfer | PlatformError] = []
    for request in requests:
        try:
            outcomes.append(batch.transfer(request))
        except PlatformError as err:
            outcomes.append(err)
    seqs = batch.flush()
    return [
        replace(o, seq=seqs[o.id]) if isinstance(o, Transfer) and o.seq == 0 else o
        for o in outcomes
    ]


def _moved(a: Account, d: _Deltas, debit_side: bool) -> Account:
    """The account after ``d``: constructed directly, as ``dataclasses.replace`` is slow."""
    if debit_side:
        return Account(
            a.id,
            a.name,
            a.kind,
            a.flags,
            a.debits_pending + d.pending,
            a.debits_posted + d.posted,
            a.credits_pending,
            a.credits_posted,
        )
    return Account(
        a.id,
        a.name,
        a.kind,
        a.flags,
        a.debits_pending,
        a.debits_posted,
        a.credits_pending + d.pending,
        a.credits_posted + d.posted,
    )


@dataclass(frozen=True)
class _Deltas:
    """Change to both sides' pending and posted columns (debit side mirrors credit side)."""

    pending: int
    posted: int


def _plain_deltas(request: TransferRequest) -> _Deltas:
    if request.flags & PENDING:
        return _Deltas(pending=request.amount_fen, posted=0)
    return _Deltas(pending=0, posted=request.amount_fen)


def _validate(request: TransferRequest) -> None:
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


def _check_limits(debit: Account, credit: Account, d: _Deltas) -> None:
    if debit.flags & DEBITS_MUST_NOT_EXCEED_CREDITS and (
        debit.debits_pending + d.pending + debit.debits_posted + d.posted > debit.credits_posted
    ):
        raise Rejected("exceeds_credits", f"account {debit.name} has too little credit")
    if credit.flags & CREDITS_MUST_NOT_EXCEED_DEBITS and (
        credit.credits_pending + d.pending + credit.credits_posted + d.posted > credit.debits_posted
    ):
        raise Rejected("exceeds_debits", f"account {credit.name} has too little debit")


def _update_balances(tx: Tx, debit_id: int, credit_id: int, d: _Deltas) -> None:
    tx.execute(
        "UPDATE accounts SET debits_pending = debits_pending + ?,"
        " debits_posted = debits_posted + ? WHERE id = ?",
        (d.pending, d.posted, debit_id),
    )
    tx.execute(
        "UPDATE accounts SET credits_pending = credits_pending + ?,"
        " credits_posted = credits_posted + ? WHERE id = ?",
        (d.pending, d.posted, credit_id),
    )


def _compact_json(body: tuple) -> str:
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


def _transfer_values(request: TransferRequest) -> tuple:
    """The request's columns in ``_INSERT_SQL`` order, up to (not including) body_hash."""
    return (
        request.id,
        request.debit_account_id,
        request.credit_account_id,
        request.amount_fen,
        request.kind,
        request.flags,
        request.pending_id,
    )


def _same_body_or_raise(transfer_id: str, stored_hash: str, body_hash: str) -> None:
    if stored_hash != body_hash:
        raise Rejected(
            "exists_with_different_fields", f"transfer {transfer_id!r} exists with another body"
        )
