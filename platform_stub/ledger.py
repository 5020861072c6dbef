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

This module is the ledger over a database, one transfer at a time;
:mod:`platform_stub.ledger_rules` holds the records and the checks every transfer
passes, :mod:`platform_stub.ledger_batch` many transfers in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from platform_stub.exceptions import (
    InvalidRequest,
    NotFound,
    PlatformError,
    Rejected,
    StorageUnavailable,
    platform_error,
)
from platform_stub.ledger_batch import LedgerBatch, apply_in_batch
from platform_stub.ledger_rules import (
    ACCOUNT_COLUMNS,
    AMOUNT_FEN_MAX,
    BATCH_TRANSFERS_MAX,
    CONFLICT_RETRIES_MAX,
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    INSERT_SQL,
    OUTCOME_SQL,
    PENDING,
    POST_PENDING,
    REJECTION_SQL,
    TRANSFER_COLUMNS,
    TRANSFER_ID_CHARS_MAX,
    VOID_PENDING,
    Account,
    Deltas,
    Transfer,
    TransferRequest,
    check_limits,
    plain_deltas,
    same_body_or_raise,
    schema,
    transfer_values,
    validate,
)
from platform_stub.storage import Database, Tx, marks, now_us

__all__ = [  # what callers import from here; the rules live in ledger_rules
    "AMOUNT_FEN_MAX",
    "BATCH_TRANSFERS_MAX",
    "CONFLICT_RETRIES_MAX",
    "CREDITS_MUST_NOT_EXCEED_DEBITS",
    "DEBITS_MUST_NOT_EXCEED_CREDITS",
    "PENDING",
    "POST_PENDING",
    "TRANSFER_ID_CHARS_MAX",
    "VOID_PENDING",
    "Account",
    "Ledger",
    "LedgerBatch",
    "Transfer",
    "TransferRequest",
    "schema",
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
        row = tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = ?", (name,))
        if row is None:
            tx.execute(
                "INSERT INTO accounts (name, kind, flags) VALUES (?, ?, ?)", (name, kind, flags)
            )
            row = tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = ?", (name,))
        account = Account(*row)
        if (account.kind, account.flags) != (kind, flags):
            raise Rejected("exists_with_different_fields", f"account {name!r} exists")
        return account

    def account(self, tx: Tx, account_id: int) -> Account:
        row = tx.one(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
        if row is None:
            raise NotFound("account_not_found", f"no account {account_id}")
        return Account(*row)

    def accounts(self, tx: Tx) -> list[Account]:
        return [Account(*r) for r in tx.all(f"SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY id")]

    def accounts_in_credit(self, tx: Tx, kinds: Sequence[str]) -> list[Account]:
        """Accounts of ``kinds`` with a positive balance, in id order: what settlement
        pays out, found by the database rather than by reading every wallet."""
        return [
            Account(*r)
            for r in tx.all(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE kind IN ({marks(kinds)})"
                " AND credits_posted - debits_posted - debits_pending > 0 ORDER BY id",
                kinds,
            )
        ]

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
            tx.execute(REJECTION_SQL, (request.id, body_hash, err.code, err.detail, now_us()))
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
            return apply_in_batch(tx, requests)

    def _transfer_or_refusal(self, tx: Tx, request: TransferRequest) -> Transfer | PlatformError:
        try:
            return self.transfer(tx, request)
        except PlatformError as err:
            return err

    def outcome_of(self, tx: Tx, transfer_id: str) -> Transfer | PlatformError | None:
        """What became of ``transfer_id`` whatever its body: the transfer, the recorded
        refusal, or None if it was never tried (for callers that derive the body)."""
        row = tx.one(OUTCOME_SQL, (transfer_id, transfer_id))
        if row is None:
            return None
        return platform_error(row[-2], row[-1]) if row[0] is None else Transfer(*row[:-3])

    def _previous_outcome(self, tx: Tx, transfer_id: str, body_hash: str) -> Transfer | None:
        row = tx.one(OUTCOME_SQL, (transfer_id, transfer_id))
        if row is None:
            return None
        same_body_or_raise(transfer_id, row[-3], body_hash)
        if row[0] is None:
            raise platform_error(row[-2], row[-1])
        return Transfer(*row[:-3])

    def _apply(self, tx: Tx, request: TransferRequest, body_hash: str) -> Transfer:
        validate(request)
        debit_id, credit_id = request.debit_account_id, request.credit_account_id
        resolves = request.flags & (POST_PENDING | VOID_PENDING)
        if resolves or tx.dialect == "sqlite":
            # The accounts are locked before the pending transfer is read, so two
            # resolutions of one pending transfer cannot both see it unresolved.
            # SQLite takes this path for plain transfers too: there a read and two
            # plain updates cost about 17 us, two UPDATE ... RETURNING about 22 us.
            debit, credit = self._lock_pair(tx, debit_id, credit_id)
            deltas = self._resolution_deltas(tx, request) if resolves else plain_deltas(request)
            check_limits(debit, credit, deltas)
            _update_balances(tx, debit.id, credit.id, deltas)
        else:
            _move_and_check(tx, debit_id, credit_id, plain_deltas(request))
        return self._insert(tx, request, body_hash)

    def _lock_pair(self, tx: Tx, debit_id: int, credit_id: int) -> tuple[Account, Account]:
        rows = tx.all(
            f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN (?, ?) ORDER BY id"
            + tx.for_update(),
            (debit_id, credit_id),
        )
        found = {r[0]: Account(*r) for r in rows}
        for account_id in (debit_id, credit_id):
            if account_id not in found:
                raise NotFound("account_not_found", f"no account {account_id}")
        return found[debit_id], found[credit_id]

    def _resolution_deltas(self, tx: Tx, request: TransferRequest) -> Deltas:
        pending = self._pending(tx, request.pending_id)
        if (pending.debit_account_id, pending.credit_account_id) != (
            request.debit_account_id,
            request.credit_account_id,
        ):
            raise InvalidRequest("invalid_request", "accounts differ from the pending transfer")
        if request.amount_fen > pending.amount_fen:
            raise Rejected("amount_mismatch", "cannot post more than is pending")
        posted = request.amount_fen if request.flags & POST_PENDING else 0
        return Deltas(pending=-pending.amount_fen, posted=posted)

    def _pending(self, tx: Tx, pending_id: str | None) -> Transfer:
        row = tx.one(f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?", (pending_id,))
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
        values = transfer_values(request)
        seq = tx.insert_id(INSERT_SQL, (*values, body_hash, timestamp_us), "seq")
        return Transfer(seq, *values, timestamp_us)

    def transfers_of(self, tx: Tx, account_id: int, limit: int, offset: int) -> list[Transfer]:
        return [
            Transfer(*r)
            for r in tx.all(
                f"SELECT {TRANSFER_COLUMNS} FROM transfers"
                " WHERE debit_account_id = ? OR credit_account_id = ?"
                " ORDER BY seq LIMIT ? OFFSET ?",
                (account_id, account_id, limit, offset),
            )
        ]

    def transfer_count(self, tx: Tx) -> int:
        return tx.one("SELECT COUNT(*) FROM transfers")[0]


_ADD_SQL = {  # add to one side's (pending, posted) columns
    side: f"UPDATE accounts SET {side}_pending = {side}_pending + ?,"
    f" {side}_posted = {side}_posted + ? WHERE id = ?"
    for side in ("debits", "credits")
}
_SIDE_SQL = {  # the same, and the account as it then is
    side: f"{sql} RETURNING {ACCOUNT_COLUMNS}" for side, sql in _ADD_SQL.items()
}
_NO_DELTAS = Deltas(pending=0, posted=0)


def _move_and_check(tx: Tx, debit_id: int, credit_id: int, d: Deltas) -> None:
    """Apply ``d`` to both accounts, then check their limits on what they became: two
    round trips to PostgreSQL (an UPDATE ... RETURNING each) where a locking read and two
    updates took three. The updates lock the rows in id order, so two transfers in opposite
    directions cannot deadlock. A refusal takes the change back before it is raised:
    the caller commits the refusal's record in the same transaction."""
    after: dict[str, Account] = {}
    for account_id, side in sorted(((debit_id, "debits"), (credit_id, "credits"))):
        row = tx.one(_SIDE_SQL[side], (d.pending, d.posted, account_id))
        if row is None:
            _take_back(tx, after, d)
            raise NotFound("account_not_found", f"no account {account_id}")
        after[side] = Account(*row)
    try:
        check_limits(after["debits"], after["credits"], _NO_DELTAS)
    except Rejected:
        _take_back(tx, after, d)
        raise


def _take_back(tx: Tx, moved: dict[str, Account], d: Deltas) -> None:
    for side, account in moved.items():
        tx.execute(_ADD_SQL[side], (-d.pending, -d.posted, account.id))


def _update_balances(tx: Tx, debit_id: int, credit_id: int, d: Deltas) -> None:
    """Apply ``d`` to both accounts, already locked and checked."""
    for account_id, side in ((debit_id, "debits"), (credit_id, "credits")):
        tx.execute(_ADD_SQL[side], (d.pending, d.posted, account_id))
