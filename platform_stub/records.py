"""The platform's records that callers hold: participants, registrations, receipts,
payments, statement lines; and the request-id rule every money move shares.

They live apart from :mod:`platform_stub.service` so the modules that move money
(:mod:`platform_stub.merchant_payments`, the features) can use them without importing
the whole platform; ``platform_stub.service`` re-exports them.
"""

from __future__ import annotations

from platform_stub.exceptions import InvalidRequest
from platform_stub.frozen import frozen

REQUEST_ID_CHARS_MAX = 64


@frozen
class Participant:
    id: int
    kind: str
    name: str
    account_id: int


@frozen
class Registration:
    participant_id: int
    token: str
    account_id: int
    collection_code: str | None = None


@frozen
class Receipt:
    """What a money move did. ``amount_fen`` is what the payer paid; a campaign paid
    ``discount_fen`` on top, so the merchant received their sum."""

    transfer_id: str
    amount_fen: int
    debit_account_id: int
    credit_account_id: int
    discount_fen: int = 0


@frozen
class Payment:
    """A payment a merchant received; listeners (announcements, promotions) get these."""

    transfer_id: str
    merchant_account_id: int
    amount_fen: int
    kind: str


@frozen
class StatementLine:
    transfer_id: str
    kind: str
    amount_fen: int
    direction: str  # "in" or "out"
    timestamp_us: int


def check_request_id(request_id: str) -> None:
    """A caller's request id: 1-64 characters (the ledger id adds the caller and kind)."""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= REQUEST_ID_CHARS_MAX:
        raise InvalidRequest(
            "invalid_request", f"request_id must be 1-{REQUEST_ID_CHARS_MAX} characters"
        )
