"""A hospital visit's tables and how a visit is read and checked.

:mod:`platform_stub.features.hospital` moves the money (holds, charges, the bill);
this module holds what it stores and reads: the visit and charge rows, the limits on
open visits and charges, and the queries the credit score asks of settled visits.
"""

from __future__ import annotations

from typing import Any

from platform_stub.exceptions import NotFound, Rejected
from platform_stub.features.bills import count_rows
from platform_stub.frozen import frozen
from platform_stub.storage import Tx

CHARGES_PER_VISIT_MAX = 100
OPEN_VISITS_MAX = 3

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS hospital_visits (
        id {ident}, hospital_id BIGINT NOT NULL REFERENCES participants(id),
        resident_id BIGINT NOT NULL REFERENCES participants(id), request_id TEXT NOT NULL,
        mode TEXT NOT NULL, state TEXT NOT NULL, hold_fen BIGINT NOT NULL,
        hold_id TEXT, settled_fen BIGINT NOT NULL, opened_at_us BIGINT NOT NULL,
        closed_at_us BIGINT, UNIQUE (resident_id, request_id))""",
    "CREATE INDEX IF NOT EXISTS hospital_visits_by_resident ON hospital_visits(resident_id, state)",
    """CREATE TABLE IF NOT EXISTS hospital_charges (
        id {ident}, visit_id BIGINT NOT NULL REFERENCES hospital_visits(id),
        request_id TEXT NOT NULL, item TEXT NOT NULL,
        amount_fen BIGINT NOT NULL CHECK (amount_fen > 0), state TEXT NOT NULL,
        transfer_id TEXT, UNIQUE (visit_id, request_id))""",
]

_VISIT_COLUMNS = "id, hospital_id, resident_id, mode, state, hold_fen, hold_id, settled_fen"
_CHARGE_COLUMNS = "id, visit_id, item, amount_fen, state, transfer_id"


@frozen
class Charge:
    """One item on a visit's bill. ``state``: held (pay later, paid at finalize), due,
    paid, or waived (the visit was cancelled before it was paid)."""

    id: int
    visit_id: int
    item: str
    amount_fen: int
    state: str
    transfer_id: str | None


@frozen
class Visit:
    """``mode`` is pay_later or pay_now; ``state`` open, finalized or cancelled;
    ``bill_fen`` sums the charges not waived; ``settled_fen`` is what the hospital has
    been paid for the visit so far."""

    id: int
    hospital_id: int
    resident_id: int
    mode: str
    state: str
    hold_fen: int
    bill_fen: int
    settled_fen: int
    charges: list[Charge]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Visit:
        return cls(**data | {"charges": [Charge(**c) for c in data["charges"]]})


@frozen
class VisitRow:
    """A ``hospital_visits`` row as stored: the hold's transfer id, which ``Visit``
    leaves out, and no charges or bill (``load_visit`` reads those)."""

    id: int
    hospital_id: int
    resident_id: int
    mode: str
    state: str
    hold_fen: int
    hold_id: str | None
    settled_fen: int


def settled_visits(tx: Tx, resident_id: int) -> int:
    """Visits finalized with a bill paid in full, as the credit score reads them."""
    return count_rows(tx, "SELECT 1 FROM hospital_visits WHERE resident_id = ?"
                      " AND state = 'finalized' AND settled_fen > 0", (resident_id,))


def visit_row(tx: Tx, visit_id: int, lock: str) -> VisitRow | None:
    row = tx.one(f"SELECT {_VISIT_COLUMNS} FROM hospital_visits WHERE id = ?" + lock,
                 (visit_id,))
    return None if row is None else VisitRow(*row)


def load_visit(tx: Tx, row: VisitRow | None) -> Visit:
    assert row is not None, "a visit just read or written is there"
    charges = [Charge(*c) for c in tx.all(
        f"SELECT {_CHARGE_COLUMNS} FROM hospital_charges WHERE visit_id = ? ORDER BY id",
        (row.id,))]
    bill_fen = sum(c.amount_fen for c in charges if c.state != "waived")
    assert row.settled_fen <= bill_fen, f"visit {row.id} settled more than its bill"
    return Visit(row.id, row.hospital_id, row.resident_id, row.mode, row.state, row.hold_fen,
                 bill_fen, row.settled_fen, charges)


def visit_bill_fen(tx: Tx, visit_id: int) -> int:
    return int(tx.one("SELECT COALESCE(SUM(amount_fen), 0) FROM hospital_charges"
                      " WHERE visit_id = ? AND state <> 'waived'", (visit_id,))[0])


def find_charge(tx: Tx, visit_id: int, charge_id: int) -> Charge:
    row = tx.one(f"SELECT {_CHARGE_COLUMNS} FROM hospital_charges WHERE id = ?"
                 " AND visit_id = ?", (charge_id, visit_id))
    if row is None:
        raise NotFound("charge_not_found", f"no charge {charge_id} on visit {visit_id}")
    return Charge(*row)


def check_open(row: VisitRow) -> None:
    if row.state != "open":
        raise Rejected("visit_closed", f"visit {row.id} is {row.state}; nothing was changed")


def check_open_visits(tx: Tx, resident_id: int) -> None:
    open_count = count_rows(tx, "SELECT 1 FROM hospital_visits WHERE resident_id = ?"
                            " AND state = 'open'", (resident_id,))
    if open_count >= OPEN_VISITS_MAX:
        raise Rejected("visit_limit_reached",
                       f"{open_count} visits are open; a hospital must close one first")


def check_room(tx: Tx, visit_id: int) -> None:
    count = count_rows(tx, "SELECT 1 FROM hospital_charges WHERE visit_id = ?", (visit_id,))
    if count >= CHARGES_PER_VISIT_MAX:
        raise Rejected("charge_limit_reached", f"visit {visit_id} has {count} charges")


def charge_by_request(tx: Tx, visit_id: int, request_id: str) -> Charge | None:
    """The charge a hospital's request added to the visit, if it did."""
    row = tx.one(f"SELECT {_CHARGE_COLUMNS} FROM hospital_charges"
                 " WHERE visit_id = ? AND request_id = ?", (visit_id, request_id))
    return None if row is None else Charge(*row)


def same_visit_or_raise(tx: Tx, visit_id: int, hospital_id: int, request_id: str) -> Visit:
    row = visit_row(tx, visit_id, "")
    if row is None or row.hospital_id != hospital_id:
        raise Rejected("exists_with_different_fields",
                       f"request {request_id!r} opened a visit elsewhere; use a new request_id")
    return load_visit(tx, row)


def same_charge_or_raise(charge: Charge, amount_fen: int, item: str, request_id: str) -> Charge:
    if (charge.amount_fen, charge.item) != (amount_fen, item):
        raise Rejected("exists_with_different_fields",
                       f"request {request_id!r} added another charge; use a new request_id")
    return charge
