"""Refunds: a merchant gives back all or part of a payment it received.

The money goes merchant -> payer's wallet as a ledger transfer of kind ``refund``,
with id ``<merchant id>:refund:<request_id>``. A retry of that request with the same
payment and amount returns the first receipt (or the first refusal); with another
payment or amount it is ``exists_with_different_fields``.

Refusals:

- ``transfer_not_found`` (404): no payment (``pay_merchant`` or ``pay_code``) with that
  id was credited to the calling merchant. Another merchant's payment gets the same
  answer as one that never was, so a merchant cannot probe which transfer ids exist.
- ``refund_exceeds_payment`` (409): the refunds of a payment would add up to more than
  the payer paid (a campaign's discount was never the payer's, so it is not refunded).
- ``refund_limit_reached`` (409): the payment already has ``REFUNDS_PER_PAYMENT_MAX``
  refunds.
- ``exceeds_credits`` (409): the merchant's account holds less than the refund (it was
  paid out at settlement); recorded by the ledger, so a retry gets it again.

Racing refunds of one payment cannot overdraw it: the check and the transfer happen in
one transaction holding the payment's row lock (PostgreSQL ``SELECT ... FOR UPDATE``;
SQLite's single writer serialises them anyway).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from fastapi import FastAPI
from pydantic import BaseModel, Field

from platform_stub.api import Token
from platform_stub.exceptions import (
    InvalidRequest,
    NotFound,
    PlatformError,
    Rejected,
    StorageUnavailable,
)
from platform_stub.features.paycodes import check_request, create_tables, merchant_of
from platform_stub.frozen import frozen
from platform_stub.ledger import (
    AMOUNT_FEN_MAX,
    CONFLICT_RETRIES_MAX,
    TRANSFER_ID_CHARS_MAX,
    TransferRequest,
)
from platform_stub.openapi_errors import errors
from platform_stub.service import REQUEST_ID_CHARS_MAX, Participant, Receipt
from platform_stub.storage import Tx, now_us

if TYPE_CHECKING:
    from platform_stub.service import Platform

REFUND_KIND = "refund"
PAYMENT_KINDS = ("pay_merchant", "pay_code")
REFUNDS_PER_PAYMENT_MAX = 50  # WeChat Pay's limit on partial refunds of one order

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS refunds (
        id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, merchant_id BIGINT NOT NULL,
        amount_fen BIGINT NOT NULL CHECK (amount_fen > 0), timestamp_us BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS refunds_by_payment ON refunds(payment_id)",
]


@frozen
class _Payment:
    id: str
    payer_account_id: int
    amount_fen: int


@frozen
class _Refund:
    payment_id: str
    amount_fen: int


class RefundIn(BaseModel):
    transfer_id: str = Field(min_length=1, max_length=TRANSFER_ID_CHARS_MAX)
    amount_fen: int
    request_id: str = Field(min_length=1, max_length=REQUEST_ID_CHARS_MAX)


class Service:
    """Refund merchants' payments through the ledger, never more than was paid."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        create_tables(platform, SCHEMA)

    def refund(
        self, merchant_token: str, transfer_id: str, amount_fen: int, request_id: str
    ) -> Receipt:
        """Pay ``amount_fen`` of the payment ``transfer_id`` back to its payer."""
        who = merchant_of(self.platform, merchant_token)
        _check_refund(transfer_id, amount_fen, request_id)
        refund_id = f"{who.id}:{REFUND_KIND}:{request_id}"
        for attempt in range(CONFLICT_RETRIES_MAX):
            try:
                return self._refund_once(who, transfer_id, amount_fen, refund_id)
            except StorageUnavailable:  # a deadlock or a racing retry; nothing was applied
                if attempt + 1 == CONFLICT_RETRIES_MAX:
                    raise
        raise AssertionError("the loop returns or raises")

    def refunded_fen(self, transfer_id: str) -> int:
        """How much of a payment has been refunded so far."""
        with self.platform.db.transaction() as tx:
            return _refunded(tx, transfer_id)[1]

    def _refund_once(
        self, who: Participant, payment_id: str, amount_fen: int, refund_id: str
    ) -> Receipt:
        """One transaction: replay a known refund, else check room and transfer. A ledger
        refusal's record commits with the transaction, then the refusal is raised."""
        refusal: PlatformError | None = None
        with self.platform.db.transaction() as tx:
            prior = _prior(tx, refund_id)
            if prior is None:
                payment = _locked_payment(tx, who, payment_id)
                # Waiting for that row lock, a racing retry of this refund may have won.
                prior = _prior(tx, refund_id)
            if prior is not None:
                return self._replay(tx, who, prior, payment_id, amount_fen, refund_id)
            try:
                return self._refund_fresh(tx, who, payment, amount_fen, refund_id)
            except PlatformError as err:
                refusal = err
        raise refusal

    def _refund_fresh(
        self, tx: Tx, who: Participant, payment: _Payment, amount_fen: int, refund_id: str
    ) -> Receipt:
        ledger = self.platform.ledger
        if ledger.outcome_of(tx, refund_id) is None:  # else the ledger replays its refusal
            _check_room(tx, payment, amount_fen)
        transfer = ledger.transfer(tx, TransferRequest(
            refund_id, who.account_id, payment.payer_account_id, amount_fen, REFUND_KIND))
        tx.execute(
            "INSERT INTO refunds (id, payment_id, merchant_id, amount_fen, timestamp_us)"
            " VALUES (?, ?, ?, ?, ?)",
            (refund_id, payment.id, who.id, amount_fen, now_us()),
        )
        assert _refunded(tx, payment.id)[1] <= payment.amount_fen, "refunds exceed payment"
        return Receipt(transfer.id, transfer.amount_fen, transfer.debit_account_id,
                       transfer.credit_account_id)

    def _replay(self, tx: Tx, who: Participant, prior: _Refund, payment_id: str,
                amount_fen: int, refund_id: str) -> Receipt:
        if (prior.payment_id, prior.amount_fen) != (payment_id, amount_fen):
            raise Rejected(
                "exists_with_different_fields",
                f"refund {refund_id!r} was for another payment or amount; use a new request_id",
            )
        transfer = self.platform.ledger.outcome_of(tx, refund_id)
        assert transfer is not None and not isinstance(transfer, PlatformError), refund_id
        return Receipt(transfer.id, transfer.amount_fen, transfer.debit_account_id,
                       transfer.credit_account_id)


def add_routes(app: FastAPI, platform: Platform) -> None:
    service: Service = platform.refunds

    @app.post(
        "/v1/refunds",
        status_code=201,
        responses=errors(
            "amount_invalid", "transfer_not_found", "refund_exceeds_payment",
            "refund_limit_reached", "exceeds_credits", "exists_with_different_fields",
        ),
    )
    def refund(body: RefundIn, token: Token) -> dict:
        return asdict(service.refund(token, body.transfer_id, body.amount_fen, body.request_id))


def _check_refund(transfer_id: str, amount_fen: int, request_id: str) -> None:
    if not isinstance(transfer_id, str) or not 0 < len(transfer_id) <= TRANSFER_ID_CHARS_MAX:
        raise InvalidRequest(
            "invalid_request", f"transfer_id must be 1-{TRANSFER_ID_CHARS_MAX} characters"
        )
    check_request(amount_fen, AMOUNT_FEN_MAX, request_id, REQUEST_ID_CHARS_MAX)


def _locked_payment(tx: Tx, who: Participant, payment_id: str) -> _Payment:
    """The payment, row-locked until commit: refunds of one payment queue up here."""
    row = tx.one(
        "SELECT id, debit_account_id, credit_account_id, amount_fen, kind FROM transfers"
        " WHERE id = ?" + tx.for_update(),
        (payment_id,),
    )
    if row is None or row[4] not in PAYMENT_KINDS or row[2] != who.account_id:
        raise NotFound("transfer_not_found", f"no payment {payment_id!r} to this merchant")
    return _Payment(row[0], int(row[1]), int(row[3]))


def _prior(tx: Tx, refund_id: str) -> _Refund | None:
    row = tx.one("SELECT payment_id, amount_fen FROM refunds WHERE id = ?", (refund_id,))
    return None if row is None else _Refund(row[0], int(row[1]))


def _refunded(tx: Tx, payment_id: str) -> tuple[int, int]:
    """How many refunds the payment has had, and their sum in fen."""
    count, total = tx.one(
        "SELECT COUNT(*), COALESCE(SUM(amount_fen), 0) FROM refunds WHERE payment_id = ?",
        (payment_id,),
    )
    return int(count), int(total)


def _check_room(tx: Tx, payment: _Payment, amount_fen: int) -> None:
    count, refunded_fen = _refunded(tx, payment.id)
    if count >= REFUNDS_PER_PAYMENT_MAX:
        raise Rejected(
            "refund_limit_reached", f"{payment.id!r} has {count} refunds, the most allowed"
        )
    if refunded_fen + amount_fen > payment.amount_fen:
        raise Rejected(
            "refund_exceeds_payment",
            f"{refunded_fen} of {payment.amount_fen} fen already refunded;"
            f" at most {payment.amount_fen - refunded_fen} fen more",
        )
