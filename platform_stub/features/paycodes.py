"""Payment codes: the customer shows a code, the merchant's scanner charges the wallet.

A resident asks for a code: 18 digits (as the big wallets print under the barcode
and QR code) bound to the wallet, valid ``PAYCODE_TTL_S`` on the platform's clock.
The app asks for a fresh one every ``PAYCODE_REFRESH_S``; a new code supersedes the
resident's older ones, so a code photographed over a shoulder dies at the next refresh.
A merchant charges a code at most once: the charge claims the code, then the money
moves through :meth:`MerchantPayments.pay_to_merchant` (campaign discounts and listeners
included). The merchant's ``request_id`` keys the charge, so a retry gets the first
receipt even after the code was spent or expired.

Only a SHA-256 of each code is stored, so a copy of the database cannot replay codes.
The hash is unsalted: 10^16 codes can be searched offline, but not within a code's life.

Refusals, checked in this order; each changes nothing:

- ``paycode_unknown`` (404): no code with that hash, never issued or forgotten (only a
  resident's newest ``PAYCODES_KEPT_MAX`` codes are kept).
- ``paycode_used`` (409): the code was charged before, by any merchant.
- ``paycode_superseded`` (409): the resident has been given a newer code since.
- ``paycode_expired`` (409): more than ``PAYCODE_TTL_S`` old.

A charge the ledger refuses (``exceeds_credits``) still spends the code: that refusal is
the request's outcome, a retry gets it again, and the customer shows a fresh code.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from fastapi import FastAPI
from pydantic import BaseModel, Field

from platform_stub import emv
from platform_stub.api import Token
from platform_stub.exceptions import (
    Forbidden,
    InvalidRequest,
    NotFound,
    QrInvalid,
    Rejected,
    StorageUnavailable,
)
from platform_stub.frozen import frozen
from platform_stub.ledger import CONFLICT_RETRIES_MAX
from platform_stub.openapi_errors import errors
from platform_stub.service import Participant, Receipt
from platform_stub.storage import Tx

if TYPE_CHECKING:
    from platform_stub.service import Platform

PAYCODE_TTL_S = 60
PAYCODE_REFRESH_S = 30
PAYCODE_PREFIX = "28"  # Alipay's codes start 25-30, WeChat Pay's 10-15
PAYCODE_RANDOM_DIGITS = 16
PAYCODE_CHARS_MAX = 32  # longer input is no wallet's code: invalid_request, not unknown
PAYCODES_KEPT_MAX = 120  # per resident, an hour of refreshes; older ones are forgotten
CHARGE_REQUEST_ID_CHARS_MAX = 40  # "m<merchant id>:" + this fits the platform's 64
CHARGE_FEN_MAX = 5_000_000  # 50,000 RMB, the wallet's top-up limit
ISSUE_ATTEMPTS_MAX = 3  # drawing a code already in use, 3 times running, is a broken RNG
PAY_CODE_KIND = "pay_code"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS paycodes (
        id {ident}, participant_id BIGINT NOT NULL REFERENCES participants(id),
        code_hash TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
        issued_at_ms BIGINT NOT NULL, expires_at_ms BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS paycodes_by_resident ON paycodes(participant_id, id)",
    """CREATE TABLE IF NOT EXISTS paycode_charges (
        merchant_id BIGINT NOT NULL, request_id TEXT NOT NULL, code_hash TEXT NOT NULL,
        payer_id BIGINT NOT NULL, amount_fen BIGINT NOT NULL, charged_at_ms BIGINT NOT NULL,
        PRIMARY KEY (merchant_id, request_id))""",
]

_REFUSAL_BY_STATE = {"used": "paycode_used", "superseded": "paycode_superseded"}


@frozen
class PayCode:
    """A code to show, and when it stops working (platform clock, ms since the epoch)."""

    code: str
    expires_at_ms: int


@frozen
class _Code:
    id: int
    participant_id: int
    state: str
    expires_at_ms: int
    code_hash: str


@frozen
class _Charge:
    code_hash: str
    payer_id: int
    amount_fen: int


class ChargeIn(BaseModel):
    code: str = Field(min_length=1, max_length=PAYCODE_CHARS_MAX)
    amount_fen: int
    request_id: str = Field(min_length=1, max_length=CHARGE_REQUEST_ID_CHARS_MAX)


class Service:
    """Issue codes to residents and charge them for merchants."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.time_s: Callable[[], float] = time.time  # tests and simulations set their own
        create_tables(platform, SCHEMA)

    def issue(self, token: str) -> PayCode:
        """A fresh code for the resident's wallet; every older code stops working."""
        who = self.platform.resident(token)
        issued_at_ms = self._now_ms()
        expires_at_ms = issued_at_ms + PAYCODE_TTL_S * 1000
        with self.platform.db.transaction() as tx:
            code, code_hash = _unused_code(tx)
            tx.execute(
                "UPDATE paycodes SET state = 'superseded'"
                " WHERE participant_id = ? AND state = 'active'",
                (who.id,),
            )
            tx.execute(
                "INSERT INTO paycodes (participant_id, code_hash, state, issued_at_ms,"
                " expires_at_ms) VALUES (?, ?, 'active', ?, ?)",
                (who.id, code_hash, issued_at_ms, expires_at_ms),
            )
            _forget_old_codes(tx, who.id)
        return PayCode(code, expires_at_ms)

    def charge(self, merchant_token: str, code: str, amount_fen: int, request_id: str) -> Receipt:
        """Charge a shown code once for the calling merchant; a retry of ``request_id``
        returns the first receipt (or the first refusal), whatever became of the code."""
        merchant = merchant_of(self.platform, merchant_token)
        _check_charge(code, amount_fen, request_id)
        for attempt in range(CONFLICT_RETRIES_MAX):
            try:
                payer, mcc = self._claim(merchant, _digest(code), amount_fen, request_id)
                break
            except StorageUnavailable:  # a racing retry of this request claimed first
                if attempt + 1 == CONFLICT_RETRIES_MAX:
                    raise
        return self.platform.payments.pay_to_merchant(
            payer, PAY_CODE_KIND, f"m{merchant.id}:{request_id}", merchant.account_id,
            amount_fen, mcc,
        )

    def _claim(
        self, merchant: Participant, code_hash: str, amount_fen: int, request_id: str
    ) -> tuple[Participant, str]:
        """Spend the code for this request, or find the request's earlier claim; returns
        the payer and the merchant's category code (campaigns select on it)."""
        with self.platform.db.transaction() as tx:
            prior = _prior_charge(tx, merchant.id, request_id)
            code = None
            if prior is None:
                code = _locked_code(tx, code_hash)
                # Waiting for that row lock, a racing retry of this request may have won.
                prior = _prior_charge(tx, merchant.id, request_id)
            if prior is not None:
                _same_charge_or_raise(prior, code_hash, amount_fen, request_id)
                payer_id = prior.payer_id
            else:
                payer_id = self._spend(tx, code, merchant.id, request_id, amount_fen)
            return _participant(tx, payer_id), _mcc(tx, merchant.id)

    def _spend(
        self, tx: Tx, code: _Code | None, merchant_id: int, request_id: str, amount_fen: int
    ) -> int:
        """Mark a live code used and record the charge; returns the payer's id."""
        now_ms = self._now_ms()
        code = _live_or_raise(code, now_ms)
        tx.execute("UPDATE paycodes SET state = 'used' WHERE id = ?", (code.id,))
        tx.execute(
            "INSERT INTO paycode_charges (merchant_id, request_id, code_hash, payer_id,"
            " amount_fen, charged_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (merchant_id, request_id, code.code_hash, code.participant_id, amount_fen, now_ms),
        )
        return code.participant_id

    def _now_ms(self) -> int:
        return int(self.time_s() * 1000)


def add_routes(app: FastAPI, platform: Platform) -> None:
    service: Service = platform.paycodes

    @app.post("/v1/paycodes", status_code=201, responses=errors())
    def issue_paycode(token: Token) -> dict:
        paycode = service.issue(token)
        return asdict(paycode) | {"ttl_s": PAYCODE_TTL_S, "refresh_s": PAYCODE_REFRESH_S}

    @app.post(
        "/v1/paycodes/charge",
        status_code=201,
        responses=errors(
            "amount_invalid", "paycode_unknown", "paycode_used", "paycode_superseded",
            "paycode_expired", "exceeds_credits", "exists_with_different_fields",
        ),
    )
    def charge_paycode(body: ChargeIn, token: Token) -> dict:
        return asdict(service.charge(token, body.code, body.amount_fen, body.request_id))


# -- shared by the merchant features ------------------------------------------------


def merchant_of(platform: Platform, token: str | None) -> Participant:
    """The calling merchant; any other credential is forbidden."""
    who = platform.authenticate(token)
    if who.kind != "merchant":
        raise Forbidden("forbidden", f"a {who.kind} credential cannot do this; use a merchant's")
    return who


def create_tables(platform: Platform, ddl: list[str]) -> None:
    """Run ``CREATE ... IF NOT EXISTS`` statements. Worker processes starting together on
    one PostgreSQL database can collide creating the same table; the loser retries."""
    for attempt in range(CONFLICT_RETRIES_MAX):
        try:
            with platform.db.transaction() as tx:
                for statement in ddl:
                    tx.execute(statement.format(ident=platform.ident))
            return
        except StorageUnavailable:
            if attempt + 1 == CONFLICT_RETRIES_MAX:
                raise


def check_request(amount_fen: int, amount_fen_max: int, request_id: str, chars_max: int) -> None:
    """The same refusals as the platform's own calls: amount_invalid, invalid_request."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise InvalidRequest("amount_invalid", "amount_fen must be a positive integer")
    if amount_fen > amount_fen_max:
        raise InvalidRequest("amount_invalid", f"amount_fen above the limit of {amount_fen_max}")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= chars_max:
        raise InvalidRequest("invalid_request", f"request_id must be 1-{chars_max} characters")


# -- helpers -----------------------------------------------------------------------


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _unused_code(tx: Tx) -> tuple[str, str]:
    """A random code no stored code shares, and its hash."""
    for _ in range(ISSUE_ATTEMPTS_MAX):
        code = PAYCODE_PREFIX + f"{secrets.randbelow(10**PAYCODE_RANDOM_DIGITS):016d}"
        if tx.one("SELECT 1 FROM paycodes WHERE code_hash = ?", (_digest(code),)) is None:
            return code, _digest(code)
    raise AssertionError(f"{ISSUE_ATTEMPTS_MAX} random codes all in use: the RNG is broken")


def _forget_old_codes(tx: Tx, participant_id: int) -> None:
    """Keep the resident's newest PAYCODES_KEPT_MAX codes, so the table stays bounded."""
    tx.execute(
        "DELETE FROM paycodes WHERE participant_id = ? AND id <= (SELECT id FROM paycodes"
        " WHERE participant_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (participant_id, participant_id, PAYCODES_KEPT_MAX),
    )


def _check_charge(code: str, amount_fen: int, request_id: str) -> None:
    if not isinstance(code, str) or not 0 < len(code) <= PAYCODE_CHARS_MAX:
        raise InvalidRequest("invalid_request", f"code must be 1-{PAYCODE_CHARS_MAX} characters")
    check_request(amount_fen, CHARGE_FEN_MAX, request_id, CHARGE_REQUEST_ID_CHARS_MAX)


def _locked_code(tx: Tx, code_hash: str) -> _Code | None:
    """The code's row, locked until commit so two scanners cannot both spend it."""
    row = tx.one(
        "SELECT id, participant_id, state, expires_at_ms, code_hash FROM paycodes"
        " WHERE code_hash = ?" + tx.for_update(),
        (code_hash,),
    )
    return None if row is None else _Code(int(row[0]), int(row[1]), row[2], int(row[3]), row[4])


def _live_or_raise(code: _Code | None, now_ms: int) -> _Code:
    """Refuse a code that cannot be charged, naming why (see the module docstring)."""
    if code is None:
        raise NotFound("paycode_unknown", "no such payment code; ask for a fresh one")
    if code.state in _REFUSAL_BY_STATE:
        refusal = _REFUSAL_BY_STATE[code.state]
        raise Rejected(refusal, f"payment code {code.state}; show a fresh one")
    assert code.state == "active", f"paycode state {code.state!r}"
    if now_ms > code.expires_at_ms:
        raise Rejected("paycode_expired", f"expired {now_ms - code.expires_at_ms} ms ago")
    return code


def _prior_charge(tx: Tx, merchant_id: int, request_id: str) -> _Charge | None:
    row = tx.one(
        "SELECT code_hash, payer_id, amount_fen FROM paycode_charges"
        " WHERE merchant_id = ? AND request_id = ?",
        (merchant_id, request_id),
    )
    return None if row is None else _Charge(row[0], int(row[1]), int(row[2]))


def _same_charge_or_raise(
    prior: _Charge, code_hash: str, amount_fen: int, request_id: str
) -> None:
    if (prior.code_hash, prior.amount_fen) != (code_hash, amount_fen):
        raise Rejected(
            "exists_with_different_fields",
            f"request {request_id!r} charged another code or amount; use a new request_id",
        )


def _participant(tx: Tx, participant_id: int) -> Participant:
    row = tx.one(
        "SELECT id, kind, name, account_id FROM participants WHERE id = ?", (participant_id,)
    )
    assert row is not None, f"paycode names participant {participant_id} that does not exist"
    return Participant(*row)


def _mcc(tx: Tx, merchant_id: int) -> str:
    """The merchant category code printed in its collection code ("" if it has none)."""
    row = tx.one("SELECT collection_code FROM merchants WHERE participant_id = ?", (merchant_id,))
    if row is None:
        return ""
    try:
        return emv.decode(row[0]).mcc
    except QrInvalid:
        return ""
