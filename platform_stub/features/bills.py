"""Utility bills and fees: a biller presents a bill, the resident pays it from the wallet.

Billers (water, power, gas, property management) register as participants of kind
``biller`` with their own guarded account ``biller:<id>``. A biller presents a bill
to a resident; the resident lists their bills and pays one: a ledger transfer
wallet -> biller of kind ``bill_payment`` with id ``<resident id>:pay_bill:<request_id>``.
A bill paid on or before its due date (on the platform's clock, a China-local day)
counts as an on-time payment for the credit score; one paid later counts as late; one
unpaid after its due date counts as overdue (see :mod:`platform_stub.features.credit`).

Retries: presenting again with the biller's same ``request_id`` returns the first bill
(another body: ``exists_with_different_fields``); paying again with the resident's
same ``request_id`` returns the first receipt (or the ledger's first refusal).

Refusals:

- ``participant_not_found`` (404): the bill names no registered resident.
- ``bill_not_found`` (404): no bill with that id is the caller's (another resident's
  bill gets the same answer as one that never was, so ids cannot be probed).
- ``bill_already_paid`` (409): the bill was paid before, under another request_id.
- ``exists_with_different_fields`` (409): the request_id was used for another bill.
- ``exceeds_credits`` (409): the wallet holds less than the bill; recorded by the
  ledger, so a retry of that request_id gets it again; top up and pay with a new one.

Limits: a bill is at most ``BILL_FEN_MAX``; a list call returns at most
``BILLS_PAGE_MAX`` bills (page with ``offset``).

The helpers at the end are shared by the payee features (bills, community services,
hospital): participants who are paid by residents and hold a guarded account.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import FastAPI, Path, Query
from pydantic import BaseModel, Field

from platform_stub.api import IdemKey, Token
from platform_stub.exceptions import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PlatformError,
    Rejected,
    StorageUnavailable,
)
from platform_stub.features.paycodes import check_request, create_tables
from platform_stub.frozen import frozen
from platform_stub.ledger import CONFLICT_RETRIES_MAX, Transfer, TransferRequest
from platform_stub.openapi_errors import errors
from platform_stub.records import check_request_id
from platform_stub.service import (
    NAME_CHARS_MAX,
    REQUEST_ID_CHARS_MAX,
    Participant,
    Receipt,
    Registration,
)
from platform_stub.storage import Tx, now_us

if TYPE_CHECKING:
    from platform_stub.service import Platform

T = TypeVar("T")

BILL_KIND = "bill_payment"
BILL_FEN_MAX = 10_000_000  # 100,000 RMB: a year's property fee for a large flat fits
REFERENCE_CHARS_MAX = 64
BILLS_PAGE_MAX = 100
ID_MAX = 2**62  # path and body ids above this are no id the database can hold
OFFSET_MAX = 1_000_000
COUNTED_MAX = 1_000  # credit factors count at most this many rows; every cap is far below

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS bills (
        id {ident}, biller_id BIGINT NOT NULL REFERENCES participants(id),
        resident_id BIGINT NOT NULL REFERENCES participants(id),
        amount_fen BIGINT NOT NULL CHECK (amount_fen > 0), due_date TEXT NOT NULL,
        reference TEXT NOT NULL, request_id TEXT NOT NULL, state TEXT NOT NULL,
        paid_on TEXT, transfer_id TEXT, presented_at_us BIGINT NOT NULL,
        UNIQUE (biller_id, request_id))""",
    "CREATE INDEX IF NOT EXISTS bills_by_resident ON bills(resident_id, state)",
]

_BILL_COLUMNS = (
    "id, biller_id, resident_id, amount_fen, due_date, reference, state, paid_on, transfer_id"
)


@frozen
class Bill:
    """A bill as its resident and its biller see it. ``state`` is "due" or "paid"."""

    id: int
    biller_id: int
    resident_id: int
    amount_fen: int
    due_date: dt.date
    reference: str
    state: str
    paid_on: dt.date | None
    transfer_id: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bill:
        paid_on = data["paid_on"]
        return cls(**data | {
            "due_date": dt.date.fromisoformat(data["due_date"]),
            "paid_on": None if paid_on is None else dt.date.fromisoformat(paid_on),
        })


@frozen
class BillHistory:
    """A resident's bill record, as the credit score reads it."""

    on_time: int
    late: int
    overdue: int


class NewPayee(BaseModel):
    name: str = Field(min_length=1, max_length=NAME_CHARS_MAX)


class BillIn(BaseModel):
    resident_id: int = Field(ge=1, le=ID_MAX)
    amount_fen: int
    due_date: dt.date
    reference: str = Field(min_length=1, max_length=REFERENCE_CHARS_MAX)
    request_id: str = Field(min_length=1, max_length=REQUEST_ID_CHARS_MAX)


class PayIn(BaseModel):
    request_id: str = Field(min_length=1, max_length=REQUEST_ID_CHARS_MAX)


class Service:
    """Billers present bills; residents pay them once, through the ledger."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.clock: Callable[[], dt.datetime] = lambda: platform.clock()  # tests set their own
        create_tables(platform, SCHEMA)

    def register_biller(self, name: str) -> Registration:
        return self.platform.register("biller", name)

    def present(self, biller_token: str, resident_id: int, amount_fen: int,
                due_date: dt.date, reference: str, request_id: str) -> Bill:
        """Put a bill in front of a resident; a retry of ``request_id`` returns it again."""
        biller = payee_of(self.platform, biller_token, "biller")
        check_request(amount_fen, BILL_FEN_MAX, request_id, REQUEST_ID_CHARS_MAX)
        check_text(reference, "reference", REFERENCE_CHARS_MAX)
        if not isinstance(due_date, dt.date) or isinstance(due_date, dt.datetime):
            raise InvalidRequest("invalid_request", "due_date must be a date (no time)")
        body = (resident_id, amount_fen, due_date.isoformat(), reference)
        return retrying(lambda: self._present_once(biller, body, request_id))

    def bills(self, token: str, limit: int = BILLS_PAGE_MAX, offset: int = 0) -> list[Bill]:
        """A resident's bills, or the bills a biller presented, oldest first."""
        who = self.platform.authenticate(token)
        column = {"resident": "resident_id", "biller": "biller_id"}.get(who.kind)
        if column is None:
            raise Forbidden("forbidden", f"a {who.kind} credential has no bills")
        check_page(limit, offset, BILLS_PAGE_MAX)
        with self.platform.db.transaction() as tx:
            rows = tx.all(f"SELECT {_BILL_COLUMNS} FROM bills WHERE {column} = ?"
                          " ORDER BY id LIMIT ? OFFSET ?", (who.id, limit, offset))
        return [_bill(row) for row in rows]

    def bill(self, token: str, bill_id: int) -> Bill:
        """One bill, for its resident or its biller only."""
        who = self.platform.authenticate(token)
        with self.platform.db.transaction() as tx:
            found = _bill_row(tx, bill_id, "")
        if found is None or who.id not in (found.resident_id, found.biller_id):
            raise NotFound("bill_not_found", f"no bill {bill_id} of yours")
        return found

    def pay(self, token: str, bill_id: int, request_id: str) -> Receipt:
        """Pay one of the resident's bills in full from the wallet."""
        who = self.platform.resident(token)
        check_request_id(request_id)
        transfer_id = f"{who.id}:pay_bill:{request_id}"
        return retrying(lambda: committing(
            self.platform, lambda tx: self._pay_in(tx, who, bill_id, transfer_id)))

    def _present_once(self, biller: Participant, body: tuple[int, int, str, str],
                      request_id: str) -> Bill:
        with self.platform.db.transaction() as tx:
            prior = tx.one(f"SELECT {_BILL_COLUMNS} FROM bills"
                           " WHERE biller_id = ? AND request_id = ?", (biller.id, request_id))
            if prior is not None:
                return _same_bill_or_raise(_bill(prior), body, request_id)
            participant_of_kind(tx, body[0], "resident")
            tx.execute(
                "INSERT INTO bills (biller_id, resident_id, amount_fen, due_date, reference,"
                " request_id, state, presented_at_us) VALUES (?, ?, ?, ?, ?, ?, 'due', ?)",
                (biller.id, *body, request_id, now_us()),
            )
            row = tx.one(f"SELECT {_BILL_COLUMNS} FROM bills"
                         " WHERE biller_id = ? AND request_id = ?", (biller.id, request_id))
        return _bill(row)

    def _pay_in(self, tx: Tx, who: Participant, bill_id: int, transfer_id: str) -> Receipt:
        """Inside one transaction: replay, refuse, or pay and mark the bill paid."""
        found = _bill_row(tx, bill_id, tx.for_update())
        if found is None or found.resident_id != who.id:
            raise NotFound("bill_not_found", f"no bill {bill_id} of yours")
        ledger = self.platform.ledger
        if found.state == "paid":
            if found.transfer_id != transfer_id:
                raise Rejected("bill_already_paid", f"bill {bill_id} was paid on {found.paid_on}")
            return receipt_of(ledger.outcome_of(tx, transfer_id))
        if isinstance(ledger.outcome_of(tx, transfer_id), Transfer):
            raise Rejected("exists_with_different_fields",
                           f"{transfer_id!r} paid something else; use a new request_id")
        biller = participant_of_kind(tx, found.biller_id, "biller")
        transfer = ledger.transfer(tx, TransferRequest(
            transfer_id, who.account_id, biller.account_id, found.amount_fen, BILL_KIND))
        tx.execute("UPDATE bills SET state = 'paid', paid_on = ?, transfer_id = ? WHERE id = ?",
                   (self.clock().date().isoformat(), transfer_id, bill_id))
        return receipt_of(transfer)


def history(tx: Tx, resident_id: int, today: dt.date) -> BillHistory:
    """Bills paid on or before their due date, paid after it, and unpaid past it."""
    base = "SELECT 1 FROM bills WHERE resident_id = ? AND "
    return BillHistory(
        on_time=count_rows(tx, base + "state = 'paid' AND paid_on <= due_date", (resident_id,)),
        late=count_rows(tx, base + "state = 'paid' AND paid_on > due_date", (resident_id,)),
        overdue=count_rows(tx, base + "state = 'due' AND due_date < ?",
                           (resident_id, today.isoformat())),
    )


def add_routes(app: FastAPI, platform: Platform) -> None:
    service: Service = platform.bills
    add_registration_route(app, platform, "/v1/billers", "biller")

    @app.post("/v1/bills", status_code=201, responses=errors(
        "amount_invalid", "participant_not_found", "exists_with_different_fields"))
    def present_bill(body: BillIn, token: Token) -> dict:
        return asdict(service.present(token, body.resident_id, body.amount_fen, body.due_date,
                                      body.reference, body.request_id))

    @app.get("/v1/bills", responses=errors())
    def list_bills(token: Token, limit: Annotated[int, Query(ge=1, le=BILLS_PAGE_MAX)] = 50,
                   offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0) -> dict:
        return {"bills": [asdict(b) for b in service.bills(token, limit, offset)]}

    @app.get("/v1/bills/{bill_id}", responses=errors("bill_not_found"))
    def get_bill(bill_id: Annotated[int, Path(ge=1, le=ID_MAX)], token: Token) -> dict:
        return asdict(service.bill(token, bill_id))

    @app.post("/v1/bills/{bill_id}/pay", status_code=201, responses=errors(
        "bill_not_found", "bill_already_paid", "exceeds_credits",
        "exists_with_different_fields"))
    def pay_bill(bill_id: Annotated[int, Path(ge=1, le=ID_MAX)], body: PayIn,
                 token: Token) -> dict:
        return asdict(service.pay(token, bill_id, body.request_id))


def _bill(row: tuple) -> Bill:
    paid_on = None if row[7] is None else dt.date.fromisoformat(row[7])
    return Bill(int(row[0]), int(row[1]), int(row[2]), int(row[3]),
                dt.date.fromisoformat(row[4]), row[5], row[6], paid_on, row[8])


def _bill_row(tx: Tx, bill_id: int, lock: str) -> Bill | None:
    row = tx.one(f"SELECT {_BILL_COLUMNS} FROM bills WHERE id = ?" + lock, (bill_id,))
    return None if row is None else _bill(row)


def _same_bill_or_raise(bill: Bill, body: tuple[int, int, str, str], request_id: str) -> Bill:
    if (bill.resident_id, bill.amount_fen, bill.due_date.isoformat(), bill.reference) != body:
        raise Rejected("exists_with_different_fields",
                       f"request {request_id!r} presented another bill; use a new request_id")
    return bill


# -- shared by the payee features (bills, community services, hospital) -------------


def payee_of(platform: Platform, token: str | None, kind: str) -> Participant:
    """The calling participant, who must be of ``kind``; any other credential is forbidden."""
    who = platform.authenticate(token)
    if who.kind != kind:
        raise Forbidden("forbidden", f"a {who.kind} credential cannot do this; use a {kind}'s")
    return who


def participant_of_kind(tx: Tx, participant_id: int, kind: str) -> Participant:
    """A registered participant of ``kind``, else ``participant_not_found``."""
    row = tx.one("SELECT id, kind, name, account_id FROM participants WHERE id = ?",
                 (participant_id,))
    if row is None or row[1] != kind:
        raise NotFound("participant_not_found", f"no {kind} {participant_id}")
    return Participant(*row)


def add_registration_route(app: FastAPI, platform: Platform, path: str, kind: str) -> None:
    """``POST path {name}`` registers a participant of ``kind`` (no credential needed),
    under an optional Idempotency-Key as residents and merchants are."""
    store = app.state.idempotency

    @app.post(path, status_code=201, name=f"register_{kind}", responses=errors(
        "exists_with_different_fields", "request_in_progress", credential=False))
    def register(body: NewPayee, key: IdemKey = None) -> dict:
        return store.run(f"anonymous:{path}", key, body.model_dump(),
                         lambda: asdict(platform.register(kind, body.name)))


def retrying(attempt: Callable[[], T]) -> T:
    """Run a one-transaction operation again when it met a racing retry of itself or a
    deadlock (``storage_unavailable``: nothing was applied); the next attempt finds the
    first outcome. Gives up after ``CONFLICT_RETRIES_MAX`` attempts."""
    for n in range(CONFLICT_RETRIES_MAX):
        try:
            return attempt()
        except StorageUnavailable:
            if n + 1 == CONFLICT_RETRIES_MAX:
                raise
    raise AssertionError("the loop returns or raises")


def committing(platform: Platform, work: Callable[[Tx], T]) -> T:
    """Run ``work`` in one transaction that commits even when it raises a refusal: the
    ledger's record of a refused transfer must outlive the request, so a retry gets the
    same refusal. Only for work whose ledger transfer is its first write."""
    refusal: PlatformError | None = None
    with platform.db.transaction() as tx:
        try:
            return work(tx)
        except PlatformError as err:
            refusal = err
    raise refusal


def receipt_of(transfer: Transfer | PlatformError | None) -> Receipt:
    assert isinstance(transfer, Transfer), f"a paid record names no transfer: {transfer!r}"
    return Receipt(transfer.id, transfer.amount_fen, transfer.debit_account_id,
                   transfer.credit_account_id)


def count_rows(tx: Tx, select: str, params: tuple) -> int:
    """How many rows ``select`` returns, counting at most ``COUNTED_MAX``."""
    row = tx.one(f"SELECT COUNT(*) FROM ({select} LIMIT {COUNTED_MAX}) counted", params)
    return int(row[0])


def check_text(value: str, what: str, chars_max: int) -> None:
    """1..chars_max characters, not all blank, no control characters (PostgreSQL text
    cannot hold NUL, and a bill's reference is printed on statements)."""
    ok = isinstance(value, str) and value.strip() != "" and len(value) <= chars_max
    if not ok or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidRequest(
            "invalid_request", f"{what} must be 1-{chars_max} printable characters")


def check_amount(amount_fen: int, most_fen: int) -> None:
    """The platform's own refusal for a bad amount: ``amount_invalid``."""
    check_request(amount_fen, most_fen, "-", 1)


def check_page(limit: int, offset: int, page_max: int) -> None:
    if not 0 < limit <= page_max or not 0 <= offset <= OFFSET_MAX:
        raise InvalidRequest("invalid_request",
                             f"limit must be 1..{page_max}, offset 0..{OFFSET_MAX}")
