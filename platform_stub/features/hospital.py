"""Hospital visits: "treat first, pay later" on a two-phase hold, or pay as you go.

Hospitals register as participants of kind ``hospital`` (guarded account
``hospital:<id>``). A resident registers a visit at a hospital; what happens next
depends on the resident's credit (the ``treat_first_pay_later`` gate of
:mod:`platform_stub.features.credit`) and wallet:

- **Treat first, pay later** (mode ``pay_later``): the resident passes the gate and the
  wallet holds at least ``HOLD_FEN_MIN``. Opening the visit places a ledger PENDING
  transfer wallet -> hospital of ``min(wallet balance, HOLD_FEN_MAX)``: the wallet's
  spendable balance drops by the hold, the hospital is not yet credited. The hospital
  adds charges as treatment goes on, and nobody queues to pay between steps (the
  published figure: visits 52.7 minutes shorter). Finalizing posts the bill: the hold
  is POSTED for ``min(bill, hold)`` (the rest of the hold goes back to the wallet); a
  bill above the hold posts the whole hold and charges the excess as a plain transfer
  in the same transaction. If the wallet cannot cover that excess the finalize is
  refused (``exceeds_credits``) and nothing changes: the visit stays open, the hold
  stays, the resident tops up and the hospital finalizes again. A bill of 0 voids
  the hold. Cancelling voids the hold whole: charges added so far are waived.
  ``HOLD_FEN_MAX`` is a typical outpatient bill, so the hold covers most visits while
  the rest of the wallet stays spendable.
- **Pay now** (mode ``pay_now``): everyone else. Each charge is due at once and the
  resident pays it (a plain transfer wallet -> hospital); a visit is finalized only
  when no charge is due (``charges_unpaid`` otherwise). Cancelling waives charges still
  due; paid ones stay paid (the treatment happened).

Ledger transfer ids: the hold ``<resident id>:visit_hold:<request_id>`` (so a retried
open returns the same visit); a pay-now charge ``<resident id>:hospital_charge:<request_id>``;
finalize and cancel act once per visit, so theirs are keyed by the visit:
``<hospital id>:visit_post|visit_rest|visit_void:<visit id>``. A second finalize or
cancel is ``visit_closed`` and changes nothing (a caller whose answer was lost reads
the visit to learn its state). Adding a charge is keyed by the hospital's request_id
within the visit.

Who sees what: only the visit's hospital adds charges, finalizes or cancels; only the
visit's resident pays its charges; the resident and the hospital may read it. Anyone
else is told ``visit_not_found``, as if it did not exist. Another kind of credential
(a resident adding a charge) is ``forbidden``.

Refusals: ``participant_not_found`` (no such hospital), ``visit_not_found``,
``charge_not_found``, ``visit_closed``, ``visit_limit_reached`` (the resident already has
``OPEN_VISITS_MAX`` open visits), ``charge_limit_reached`` (``CHARGES_PER_VISIT_MAX``),
``charges_unpaid``, ``charge_not_due`` (a pay-later charge is paid at finalize),
``charge_already_paid``, ``exceeds_credits``, ``exists_with_different_fields``.

A hold has no timeout: an inpatient stay lasts weeks. ``OPEN_VISITS_MAX`` bounds how
many holds one resident can have open. The tables, limits and reads of a visit are in
:mod:`platform_stub.features.hospital_visits`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Path
from pydantic import BaseModel, Field

from platform_stub.api import Token
from platform_stub.exceptions import NotFound, Rejected
from platform_stub.features.bills import (
    ID_MAX,
    add_registration_route,
    check_amount,
    check_text,
    committing,
    count_rows,
    participant_of_kind,
    payee_of,
    receipt_of,
    retrying,
)
from platform_stub.features.hospital_visits import (
    SCHEMA,
    Charge,
    Visit,
    VisitRow,
    charge_by_request,
    check_open,
    check_open_visits,
    check_room,
    find_charge,
    load_visit,
    same_charge_or_raise,
    same_visit_or_raise,
    visit_bill_fen,
    visit_row,
)
from platform_stub.features.paycodes import create_tables
from platform_stub.ledger import (
    PENDING,
    POST_PENDING,
    VOID_PENDING,
    Transfer,
    TransferRequest,
)
from platform_stub.openapi_errors import errors
from platform_stub.records import check_request_id
from platform_stub.service import REQUEST_ID_CHARS_MAX, Participant, Receipt, Registration
from platform_stub.storage import Tx, now_us

if TYPE_CHECKING:
    from platform_stub.service import Platform

TREAT_FIRST_GATE = "treat_first_pay_later"
HOLD_FEN_MAX = 50_000  # 500 RMB
HOLD_FEN_MIN = 1_000  # 10 RMB: a smaller hold guarantees nothing, so such a wallet pays now
CHARGE_FEN_MAX = 5_000_000  # 50,000 RMB, the wallet's top-up limit
ITEM_CHARS_MAX = 64


class VisitIn(BaseModel):
    hospital_id: int = Field(ge=1, le=ID_MAX)
    request_id: str = Field(min_length=1, max_length=REQUEST_ID_CHARS_MAX)


class ChargeIn(BaseModel):
    amount_fen: int
    item: str = Field(min_length=1, max_length=ITEM_CHARS_MAX)
    request_id: str = Field(min_length=1, max_length=REQUEST_ID_CHARS_MAX)


class PayIn(BaseModel):
    request_id: str = Field(min_length=1, max_length=REQUEST_ID_CHARS_MAX)


VisitId = Annotated[int, Path(ge=1, le=ID_MAX)]
_Closer = Callable[[Tx, VisitRow, Participant], None]


class Service:
    """Hospital visits over the ledger: a hold for trusted residents, pay-now otherwise."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        create_tables(platform, SCHEMA)

    def register_hospital(self, name: str) -> Registration:
        return self.platform.register("hospital", name)

    def open_visit(self, token: str, hospital_id: int, request_id: str) -> Visit:
        """Register a visit; with enough credit it opens a hold on the wallet."""
        who = self.platform.resident(token)
        check_request_id(request_id)
        with self.platform.db.transaction() as tx:
            hospital = participant_of_kind(tx, hospital_id, "hospital")
        trusted = self.platform.credit.gate(who.id, TREAT_FIRST_GATE)
        return retrying(lambda: self._open_once(who, hospital, request_id, trusted))

    def visit(self, token: str, visit_id: int) -> Visit:
        """A visit, for its resident or its hospital only."""
        who = self.platform.authenticate(token)
        with self.platform.db.transaction() as tx:
            row = visit_row(tx, visit_id, "")
            if row is None or who.id not in (row.resident_id, row.hospital_id):
                raise NotFound("visit_not_found", f"no visit {visit_id} of yours")
            return load_visit(tx, row)

    def add_charge(self, hospital_token: str, visit_id: int, amount_fen: int, item: str,
                   request_id: str) -> Charge:
        """Put an item on an open visit's bill; a retry of ``request_id`` returns it."""
        hospital = payee_of(self.platform, hospital_token, "hospital")
        check_amount(amount_fen, CHARGE_FEN_MAX)
        check_text(item, "item", ITEM_CHARS_MAX)
        check_request_id(request_id)
        return retrying(lambda: self._charge_once(hospital, visit_id, amount_fen, item,
                                                  request_id))

    def pay_charge(self, token: str, visit_id: int, charge_id: int, request_id: str) -> Receipt:
        """Pay one due charge of a pay-now visit from the wallet."""
        who = self.platform.resident(token)
        check_request_id(request_id)
        transfer_id = f"{who.id}:hospital_charge:{request_id}"
        return retrying(lambda: committing(
            self.platform, lambda tx: self._pay_in(tx, who, visit_id, charge_id, transfer_id)))

    def finalize(self, hospital_token: str, visit_id: int) -> Visit:
        """Close the bill: post the hold (pay later) or check every charge is paid."""
        hospital = payee_of(self.platform, hospital_token, "hospital")
        return retrying(lambda: self._close_once(hospital, visit_id, self._finalize_in))

    def cancel(self, hospital_token: str, visit_id: int) -> Visit:
        """End the visit without billing what is unpaid: void the hold, waive what is due."""
        hospital = payee_of(self.platform, hospital_token, "hospital")
        return retrying(lambda: self._close_once(hospital, visit_id, self._cancel_in))

    # -- one transaction each ------------------------------------------------------

    def _open_once(self, who: Participant, hospital: Participant, request_id: str,
                   trusted: bool) -> Visit:
        with self.platform.db.transaction() as tx:
            # One resident's opens (and racing retries of one) queue on this row lock, so
            # the open-visit limit holds and a retry finds the visit its twin made.
            tx.execute("SELECT id FROM participants WHERE id = ?" + tx.for_update(), (who.id,))
            prior = tx.one("SELECT id FROM hospital_visits WHERE resident_id = ?"
                           " AND request_id = ?", (who.id, request_id))
            if prior is not None:
                return same_visit_or_raise(tx, int(prior[0]), hospital.id, request_id)
            check_open_visits(tx, who.id)
            hold_id = f"{who.id}:visit_hold:{request_id}"
            hold_fen = self._hold(tx, who, hospital, hold_id) if trusted else 0
            tx.execute(
                "INSERT INTO hospital_visits (hospital_id, resident_id, request_id, mode, state,"
                " hold_fen, hold_id, settled_fen, opened_at_us) VALUES (?, ?, ?, ?, 'open',"
                " ?, ?, 0, ?)",
                (hospital.id, who.id, request_id, "pay_later" if hold_fen else "pay_now",
                 hold_fen, hold_id if hold_fen else None, now_us()),
            )
            visit_id = tx.one("SELECT id FROM hospital_visits WHERE resident_id = ?"
                              " AND request_id = ?", (who.id, request_id))[0]
            return load_visit(tx, visit_row(tx, visit_id, ""))

    def _hold(self, tx: Tx, who: Participant, hospital: Participant, hold_id: str) -> int:
        """Reserve what the wallet can give up to HOLD_FEN_MAX; 0 if under HOLD_FEN_MIN.
        Both accounts are locked (in id order, as the ledger does) before the balance is
        read, so the hold cannot be refused by a payment racing it."""
        tx.all("SELECT id FROM accounts WHERE id IN (?, ?) ORDER BY id" + tx.for_update(),
               (who.account_id, hospital.account_id))
        hold_fen = min(self.platform.ledger.account(tx, who.account_id).balance_fen,
                       HOLD_FEN_MAX)
        if hold_fen < HOLD_FEN_MIN:
            return 0
        self.platform.ledger.transfer(tx, TransferRequest(
            hold_id, who.account_id, hospital.account_id, hold_fen, "hospital_hold",
            flags=PENDING))
        return hold_fen

    def _charge_once(self, hospital: Participant, visit_id: int, amount_fen: int, item: str,
                     request_id: str) -> Charge:
        with self.platform.db.transaction() as tx:
            row = visit_row(tx, visit_id, tx.for_update())
            if row is None or row.hospital_id != hospital.id:
                raise NotFound("visit_not_found", f"no visit {visit_id} at this hospital")
            prior = charge_by_request(tx, visit_id, request_id)
            if prior is not None:
                return same_charge_or_raise(prior, amount_fen, item, request_id)
            check_open(row)
            check_room(tx, visit_id)
            tx.execute(
                "INSERT INTO hospital_charges (visit_id, request_id, item, amount_fen, state)"
                " VALUES (?, ?, ?, ?, ?)",
                (visit_id, request_id, item, amount_fen,
                 "held" if row.mode == "pay_later" else "due"),
            )
            added = charge_by_request(tx, visit_id, request_id)
            assert added is not None, "a charge just inserted is there"
            return added

    def _pay_in(self, tx: Tx, who: Participant, visit_id: int, charge_id: int,
                transfer_id: str) -> Receipt:
        """Inside one transaction: replay, refuse, or pay the charge and mark it paid."""
        row = visit_row(tx, visit_id, tx.for_update())
        if row is None or row.resident_id != who.id:
            raise NotFound("visit_not_found", f"no visit {visit_id} of yours")
        charge = find_charge(tx, visit_id, charge_id)
        ledger = self.platform.ledger
        if charge.state == "paid":
            if charge.transfer_id != transfer_id:
                raise Rejected("charge_already_paid", f"charge {charge_id} was paid before")
            return receipt_of(ledger.outcome_of(tx, transfer_id))
        check_open(row)
        if charge.state == "held":
            raise Rejected("charge_not_due", "a treat-first-pay-later visit is paid at finalize")
        if isinstance(ledger.outcome_of(tx, transfer_id), Transfer):
            raise Rejected("exists_with_different_fields",
                           f"{transfer_id!r} paid something else; use a new request_id")
        hospital = participant_of_kind(tx, row.hospital_id, "hospital")
        transfer = ledger.transfer(tx, TransferRequest(
            transfer_id, who.account_id, hospital.account_id, charge.amount_fen,
            "hospital_charge"))
        tx.execute("UPDATE hospital_charges SET state = 'paid', transfer_id = ? WHERE id = ?",
                   (transfer_id, charge_id))
        tx.execute("UPDATE hospital_visits SET settled_fen = settled_fen + ? WHERE id = ?",
                   (charge.amount_fen, visit_id))
        return receipt_of(transfer)

    def _close_once(self, hospital: Participant, visit_id: int, close: _Closer) -> Visit:
        """Lock the visit, check it is this hospital's and open, then finalize or cancel.
        Any refusal rolls the whole transaction back: a posted hold never goes without
        its visit's new state."""
        with self.platform.db.transaction() as tx:
            row = visit_row(tx, visit_id, tx.for_update())
            if row is None or row.hospital_id != hospital.id:
                raise NotFound("visit_not_found", f"no visit {visit_id} at this hospital")
            check_open(row)
            close(tx, row, hospital)
            return load_visit(tx, visit_row(tx, visit_id, ""))

    def _finalize_in(self, tx: Tx, row: VisitRow, hospital: Participant) -> None:
        if row.mode == "pay_now":
            due = count_rows(tx, "SELECT 1 FROM hospital_charges WHERE visit_id = ?"
                             " AND state = 'due'", (row.id,))
            if due:
                raise Rejected("charges_unpaid", f"{due} charge(s) of visit {row.id} are due")
            settled_fen = row.settled_fen
        else:
            settled_fen = self._post_bill(tx, row, hospital, visit_bill_fen(tx, row.id))
            tx.execute("UPDATE hospital_charges SET state = 'paid' WHERE visit_id = ?"
                       " AND state = 'held'", (row.id,))
        tx.execute("UPDATE hospital_visits SET state = 'finalized', settled_fen = ?,"
                   " closed_at_us = ? WHERE id = ?", (settled_fen, now_us(), row.id))

    def _post_bill(self, tx: Tx, row: VisitRow, hospital: Participant, bill_fen: int) -> int:
        """Post the hold for the bill (void it for a bill of 0); charge any excess."""
        wallet_id = self._wallet(tx, row.resident_id)
        ledger = self.platform.ledger
        if bill_fen == 0:
            self._void(tx, row, hospital, wallet_id)
            return 0
        ledger.transfer(tx, TransferRequest(
            f"{hospital.id}:visit_post:{row.id}", wallet_id, hospital.account_id,
            min(bill_fen, row.hold_fen), "hospital_bill", flags=POST_PENDING,
            pending_id=row.hold_id))
        if bill_fen > row.hold_fen:
            ledger.transfer(tx, TransferRequest(
                f"{hospital.id}:visit_rest:{row.id}", wallet_id, hospital.account_id,
                bill_fen - row.hold_fen, "hospital_bill"))
        return bill_fen

    def _cancel_in(self, tx: Tx, row: VisitRow, hospital: Participant) -> None:
        if row.mode == "pay_later":
            self._void(tx, row, hospital, self._wallet(tx, row.resident_id))
        tx.execute("UPDATE hospital_charges SET state = 'waived' WHERE visit_id = ?"
                   " AND state IN ('due', 'held')", (row.id,))
        tx.execute("UPDATE hospital_visits SET state = 'cancelled', closed_at_us = ?"
                   " WHERE id = ?", (now_us(), row.id))

    def _void(self, tx: Tx, row: VisitRow, hospital: Participant, wallet_id: int) -> None:
        self.platform.ledger.transfer(tx, TransferRequest(
            f"{hospital.id}:visit_void:{row.id}", wallet_id, hospital.account_id,
            row.hold_fen, "hospital_void", flags=VOID_PENDING, pending_id=row.hold_id))

    def _wallet(self, tx: Tx, resident_id: int) -> int:
        return participant_of_kind(tx, resident_id, "resident").account_id


def add_routes(app: FastAPI, platform: Platform) -> None:
    service: Service = platform.hospital
    add_registration_route(app, platform, "/v1/hospitals", "hospital")
    base = "/v1/hospital/visits"

    @app.post(base, status_code=201, responses=errors(
        "participant_not_found", "visit_limit_reached", "exists_with_different_fields"))
    def open_visit(body: VisitIn, token: Token) -> dict:
        return asdict(service.open_visit(token, body.hospital_id, body.request_id))

    @app.get(base + "/{visit_id}", responses=errors("visit_not_found"))
    def get_visit(visit_id: VisitId, token: Token) -> dict:
        return asdict(service.visit(token, visit_id))

    @app.post(base + "/{visit_id}/charges", status_code=201, responses=errors(
        "amount_invalid", "visit_not_found", "visit_closed", "charge_limit_reached",
        "exists_with_different_fields"))
    def add_charge(visit_id: VisitId, body: ChargeIn, token: Token) -> dict:
        return asdict(service.add_charge(token, visit_id, body.amount_fen, body.item,
                                         body.request_id))

    @app.post(base + "/{visit_id}/charges/{charge_id}/pay", status_code=201, responses=errors(
        "visit_not_found", "charge_not_found", "visit_closed", "charge_not_due",
        "charge_already_paid", "exceeds_credits", "exists_with_different_fields"))
    def pay_charge(visit_id: VisitId, charge_id: Annotated[int, Path(ge=1, le=ID_MAX)],
                   body: PayIn, token: Token) -> dict:
        return asdict(service.pay_charge(token, visit_id, charge_id, body.request_id))

    @app.post(base + "/{visit_id}/finalize", responses=errors(
        "visit_not_found", "visit_closed", "charges_unpaid", "exceeds_credits"))
    def finalize_visit(visit_id: VisitId, token: Token) -> dict:
        return asdict(service.finalize(token, visit_id))

    @app.post(base + "/{visit_id}/cancel", responses=errors("visit_not_found", "visit_closed"))
    def cancel_visit(visit_id: VisitId, token: Token) -> dict:
        return asdict(service.cancel(token, visit_id))
