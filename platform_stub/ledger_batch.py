"""Many transfers in one transaction, checked in memory: clearing's path (and
``Ledger.apply_batch``), after TigerBeetle's batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from platform_stub.exceptions import NotFound, PlatformError, platform_error
from platform_stub.ledger_rules import (
    ACCOUNT_COLUMNS,
    INSERT_SQL,
    POST_PENDING,
    REJECTION_SQL,
    TRANSFER_COLUMNS,
    VOID_PENDING,
    Account,
    Deltas,
    Transfer,
    TransferRequest,
    check_limits,
    plain_deltas,
    same_body_or_raise,
    transfer_values,
    validate,
)
from platform_stub.storage import Tx, in_chunks, marks, now_us, rows_in


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
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({marks(chunk)})"
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
                f"SELECT {TRANSFER_COLUMNS}, body_hash FROM transfers WHERE id IN ({in_list})",
                chunk,
            ):
                self._outcomes[row[1]] = (row[-1], Transfer(*row[:-1]))
            for row in self.tx.all(
                f"SELECT id, body_hash, code, detail FROM rejections WHERE id IN ({in_list})", chunk
            ):
                self._outcomes[row[0]] = (row[1], platform_error(row[2], row[3]))

    def transfer(self, request: TransferRequest) -> Transfer:
        """As ``Ledger.transfer``; a new transfer's ``seq`` is 0 until ``flush``."""
        body_hash = _body_hash(request)
        if request.id not in self._outcomes:
            self.recall((request.id,))
        previous = self._outcomes[request.id]
        if previous is not None:
            same_body_or_raise(request.id, previous[0], body_hash)
            if isinstance(previous[1], PlatformError):
                raise previous[1]
            return previous[1]
        return self._apply_or_refuse(request, body_hash)

    def transfer_fresh(self, request: TransferRequest) -> Transfer:
        """As ``Ledger.transfer_fresh``: ``transfer`` for an id the caller's own records
        prove never tried, so it is not looked up (clearing: a tap's legs are written only
        in the transaction that records the tap cleared, and a cleared tap is never
        cleared again). The unique id column still refuses a duplicate at ``flush``, which
        then fails the whole transaction rather than pass silently."""
        return self._apply_or_refuse(request, _body_hash(request))

    def _apply_or_refuse(self, request: TransferRequest, body_hash: str) -> Transfer:
        """Apply a transfer never tried before, or record its refusal and raise it."""
        try:
            transfer = self._apply(request, body_hash)
        except PlatformError as err:
            self._refusals.append((request.id, body_hash, err.code, err.detail, now_us()))
            self._outcomes[request.id] = (body_hash, err)
            raise
        self._outcomes[request.id] = (body_hash, transfer)
        return transfer

    def _apply(self, request: TransferRequest, body_hash: str) -> Transfer:
        validate(request)
        debit = self.account(request.debit_account_id)
        credit = self.account(request.credit_account_id)
        deltas = plain_deltas(request)
        check_limits(debit, credit, deltas)
        self._accounts[debit.id] = _moved(debit, deltas, debit_side=True)
        self._accounts[credit.id] = _moved(credit, deltas, debit_side=False)
        self._add_deltas(debit.id, 0, deltas)  # debits_pending, debits_posted
        self._add_deltas(credit.id, 2, deltas)  # credits_pending, credits_posted
        values = transfer_values(request)
        timestamp_us = now_us()
        self._inserts.append((*values, body_hash, timestamp_us))
        return Transfer(0, *values, timestamp_us)

    def _add_deltas(self, account_id: int, first_column: int, deltas: Deltas) -> None:
        """Add ``deltas`` to one side's (pending, posted) pair of the account's four
        balance columns: the debit side starts at column 0, the credit side at 2."""
        total = self._deltas.get(account_id)
        if total is None:
            total = self._deltas[account_id] = [0, 0, 0, 0]
        total[first_column] += deltas.pending
        total[first_column + 1] += deltas.posted

    def flush(self) -> list[str]:
        """Write what the batch did; returns the new transfers' ids, in order (their
        ``seq`` is the database's: ``seqs_of`` reads it, for callers that need it)."""
        if self._inserts:
            self.tx.executemany(INSERT_SQL, self._inserts)
        if self._refusals:
            self.tx.executemany(REJECTION_SQL, self._refusals)
        if self._deltas:
            self.tx.executemany(
                "UPDATE accounts SET debits_pending = debits_pending + ?,"
                " debits_posted = debits_posted + ?, credits_pending = credits_pending + ?,"
                " credits_posted = credits_posted + ? WHERE id = ?",
                [(*d, account_id) for account_id, d in sorted(self._deltas.items())],
            )
        ids = [row[0] for row in self._inserts]
        self._inserts, self._refusals, self._deltas = [], [], {}
        return ids


def seqs_of(tx: Tx, transfer_ids: Sequence[str]) -> dict[str, int]:
    """The database's ``seq`` of each written transfer, by id."""
    return dict(rows_in(tx, "SELECT id, seq FROM transfers WHERE id IN ({})", transfer_ids))


def apply_in_batch(tx: Tx, requests: Sequence[TransferRequest]) -> list[Transfer | PlatformError]:
    batch = LedgerBatch(tx)
    batch.recall(r.id for r in requests)
    batch.lock(i for r in requests for i in (r.debit_account_id, r.credit_account_id))
    outcomes: list[Transfer | PlatformError] = []
    for request in requests:
        try:
            outcomes.append(batch.transfer(request))
        except PlatformError as err:
            outcomes.append(err)
    seqs = seqs_of(tx, batch.flush())
    return [
        replace(o, seq=seqs[o.id]) if isinstance(o, Transfer) and o.seq == 0 else o
        for o in outcomes
    ]


def _body_hash(request: TransferRequest) -> str:
    """The request's body hash, once it is known to be a plain or pending transfer."""
    if request.flags & (POST_PENDING | VOID_PENDING):
        raise AssertionError("posting or voiding a pending transfer needs Ledger.transfer")
    return request.body_hash()


def _moved(a: Account, d: Deltas, debit_side: bool) -> Account:
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
