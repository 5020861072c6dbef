"""Every error the project reports, each with a stable snake_case code.

The code is the contract: the same string appears in problem+json bodies, in the
event log of a run and in the tests. Messages are for people and may change.

    CashlessError                       base; .code, .http_status, .detail
    ├── ScenarioError                   scenario_invalid (file, key, expected)
    ├── StorageLost                     storage_lost: a commit group failed, so work
    │                                   already answered is gone (a run must stop)
    └── PlatformError                   a platform call was refused; nothing changed
        ├── InvalidRequest        400   invalid_request, amount_invalid, card_invalid,
        │                               same_account
        ├── QrInvalid             400   qr_malformed, qr_crc_mismatch
        ├── CredentialMissing     401   credential_missing
        ├── CredentialInvalid     401   credential_invalid
        ├── Forbidden             403   forbidden
        ├── RequestTooLarge       413   request_too_large
        ├── NotFound              404   account_not_found, merchant_not_found,
        │                               card_not_bound, transfer_not_found,
        │                               paycode_unknown, participant_not_found,
        │                               bill_not_found, service_not_found,
        │                               visit_not_found, charge_not_found
        ├── TapRejected           422   code_malformed, signature_invalid, code_expired,
        │                               credential_expired, card_revoked, replayed_code,
        │                               reader_queue_full (offline transit taps)
        ├── Rejected              409   exceeds_credits, exceeds_debits,
        │                               exists_with_different_fields,
        │                               pending_already_resolved, amount_mismatch,
        │                               request_in_progress, paycode_used,
        │                               paycode_superseded, paycode_expired,
        │                               refund_exceeds_payment, refund_limit_reached,
        │                               bill_already_paid, service_limit_reached,
        │                               visit_closed, visit_limit_reached,
        │                               charge_limit_reached, charges_unpaid,
        │                               charge_not_due, charge_already_paid
        ├── StorageUnavailable    503   storage_unavailable (retry with the same id)
        └── Busy                  503   announcement_streams_full, ledger_queue_full
                                        (retry shortly)

Programmer errors (a broken ledger invariant) are assertions, not CashlessErrors.
"""

from __future__ import annotations

from typing import ClassVar


class CashlessError(Exception):
    """Base of every reported error: a stable ``code`` plus a human ``detail``."""

    http_status: ClassVar[int] = 500
    codes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, code: str, detail: str) -> None:
        if self.codes and code not in self.codes:
            raise AssertionError(f"{type(self).__name__} cannot carry code {code!r}")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ScenarioError(CashlessError):
    """A scenario file that cannot be run; names the file, the key and the expectation."""

    http_status = 400
    codes = frozenset({"scenario_invalid"})

    def __init__(self, file: str, key: str, expected: str, value: object = None) -> None:
        shown = "" if value is None else f" (got {value!r})"
        super().__init__("scenario_invalid", f"{file}: key '{key}': expected {expected}{shown}")
        self.file, self.key, self.expected, self.value = file, key, expected, value


class PlatformError(CashlessError):
    """A platform call was refused. The refusal changed nothing but its own record."""


class InvalidRequest(PlatformError):
    http_status = 400
    codes = frozenset({"invalid_request", "amount_invalid", "card_invalid", "same_account"})


class QrInvalid(PlatformError):
    http_status = 400
    codes = frozenset({"qr_malformed", "qr_crc_mismatch"})


class CredentialMissing(PlatformError):
    http_status = 401
    codes = frozenset({"credential_missing"})


class CredentialInvalid(PlatformError):
    http_status = 401
    codes = frozenset({"credential_invalid"})


class Forbidden(PlatformError):
    http_status = 403
    codes = frozenset({"forbidden"})


class RequestTooLarge(PlatformError):
    http_status = 413
    codes = frozenset({"request_too_large"})


class NotFound(PlatformError):
    http_status = 404
    codes = frozenset(
        {
            "account_not_found",
            "merchant_not_found",
            "card_not_bound",
            "transfer_not_found",
            "paycode_unknown",
            "participant_not_found",
            "bill_not_found",
            "service_not_found",
            "visit_not_found",
            "charge_not_found",
        }
    )


class TapRejected(PlatformError):
    """An offline transit tap refused at the reader or at clearing. The reasons map to
    the outcomes riders and operators talk about: malformed, forged
    (signature_invalid), expired (code_expired, credential_expired), revoked
    (card_revoked), replay (replayed_code); reader_queue_full means a reader's
    bounded offline queue has no room and the rider must pay another way."""

    http_status = 422
    codes = frozenset(
        {
            "code_malformed",
            "signature_invalid",
            "code_expired",
            "credential_expired",
            "card_revoked",
            "replayed_code",
            "reader_queue_full",
        }
    )


class Rejected(PlatformError):
    """A well-formed request the ledger refuses by its rules; retrying the same id
    returns the same refusal."""

    http_status = 409
    codes = frozenset(
        {
            "exceeds_credits",
            "exceeds_debits",
            "exists_with_different_fields",
            "pending_already_resolved",
            "amount_mismatch",
            "request_in_progress",
            "paycode_used",
            "paycode_superseded",
            "paycode_expired",
            "refund_exceeds_payment",
            "refund_limit_reached",
            "bill_already_paid",
            "service_limit_reached",
            "visit_closed",
            "visit_limit_reached",
            "charge_limit_reached",
            "charges_unpaid",
            "charge_not_due",
            "charge_already_paid",
        }
    )


class StorageLost(CashlessError):
    """A commit group (``SqliteDatabase(commit_group_max > 1)``) failed to commit:
    transactions already answered are not in the file. Not a ``PlatformError``, so no
    caller mistakes it for one refused call and carries on; a simulation stops."""

    codes = frozenset({"storage_lost"})


class StorageUnavailable(PlatformError):
    http_status = 503
    codes = frozenset({"storage_unavailable"})


class Busy(PlatformError):
    """A bounded server resource is full (open announcement streams, the ledger lane's
    queue); nothing is wrong with the request, so it may be sent again shortly."""

    http_status = 503
    codes = frozenset({"announcement_streams_full", "ledger_queue_full"})


PLATFORM_ERRORS: tuple[type[PlatformError], ...] = (
    InvalidRequest,
    QrInvalid,
    CredentialMissing,
    CredentialInvalid,
    Forbidden,
    RequestTooLarge,
    NotFound,
    TapRejected,
    Rejected,
    StorageUnavailable,
    Busy,
)

_CLASS_BY_CODE: dict[str, type[PlatformError]] = {
    code: cls for cls in PLATFORM_ERRORS for code in cls.codes
}


def platform_error(code: str, detail: str) -> PlatformError:
    """Rebuild the error a code names (the HTTP client uses this on problem+json)."""
    cls = _CLASS_BY_CODE.get(code)
    if cls is None:
        return PlatformError(code, detail)
    return cls(code, detail)


def http_status_of(code: str) -> int:
    """The HTTP status a code is served with (unknown codes would be a bug: 500)."""
    cls = _CLASS_BY_CODE.get(code)
    if cls is None:
        raise AssertionError(f"unknown error code {code!r}")
    return cls.http_status
