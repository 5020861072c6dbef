"""One offline verification of a tap, shared by bus readers and by clearing.

Checks run in this order and the first failure names the rejection:

    code_malformed      the text or bytes do not parse (length, version, base45)
    signature_invalid   the platform key id is unknown, or the credential's platform
                        signature does not verify
    credential_expired  now_s >= the credential's expires_at_s
    signature_invalid   the code's rider signature does not verify
    code_expired        the code's timestamp is more than skew_s ahead of now_s, or
                        more than max_age_s behind it
    card_revoked        the card is on the deny list

Readers pass their own clock as ``now_s``. Clearing passes the time the reader scanned
the tap and wider windows (``CLEARING_SKEW_S``, ``CLEARING_MAX_AGE_S``) because a reader
clock that drifted while offline must not turn honest rides into rejections.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from platform_stub.exceptions import TapRejected
from platform_stub.transit.code import OfflineCode, decode_code_text, parse_code, tap_id
from platform_stub.transit.credential import Credential, CredentialCache, verify_credential

# Phones set their clocks from the network but may have been offline for days; 30 s
# covers ordinary drift between a phone and a reader without widening the replay window
# much.
CLOCK_SKEW_S = 30
# The app refreshes its code every ~30 s; a code shown for a whole refresh period plus
# one clock skew is still fresh. A screenshot older than a minute is not.
CODE_REFRESH_S = 30
CODE_MAX_AGE_S = CODE_REFRESH_S + CLOCK_SKEW_S
# How far a reader's clock may drift while it is offline between syncs. Clearing widens
# both windows by this much; the reader already applied the tight ones at the door.
READER_CLOCK_DRIFT_S = 600
CLEARING_SKEW_S = CLOCK_SKEW_S + READER_CLOCK_DRIFT_S
CLEARING_MAX_AGE_S = CODE_MAX_AGE_S + READER_CLOCK_DRIFT_S


@dataclass(frozen=True)
class VerifiedTap:
    tap_id: str
    card_id: int
    key_id: int
    timestamp_s: int
    credit_limit_fen: int
    expires_at_s: int


def verify_tap(
    code: str | bytes,
    public_keys: Mapping[int, bytes],
    now_s: int,
    deny_list: Container[int],
    skew_s: int = CLOCK_SKEW_S,
    max_age_s: int = CODE_MAX_AGE_S,
    credential_cache: CredentialCache | None = None,
) -> VerifiedTap:
    """Verify a scanned code (base45 text, or the binary code) offline at ``now_s``;
    raise ``TapRejected`` with the first failing reason (see the module docstring)."""
    parsed = parse_code(decode_code_text(code) if isinstance(code, str) else bytes(code))
    verify_credential(parsed.credential, public_keys, credential_cache)
    _check_unexpired(parsed.credential, now_s)
    parsed.verify_signature()
    _check_fresh(parsed.timestamp_s, now_s, skew_s, max_age_s)
    _check_not_denied(parsed.credential.card_id, deny_list)
    return _verified(parsed)


def _check_unexpired(credential: Credential, now_s: int) -> None:
    if now_s >= credential.expires_at_s:
        raise TapRejected(
            "credential_expired",
            f"card {credential.card_id}: credential expired at {credential.expires_at_s}, "
            f"now {now_s}; the app renews it when next online",
        )


def _check_fresh(timestamp_s: int, now_s: int, skew_s: int, max_age_s: int) -> None:
    age_s = now_s - timestamp_s
    if age_s < -skew_s:
        raise TapRejected(
            "code_expired",
            f"code is {-age_s} s in the future (limit {skew_s} s); check the phone's clock",
        )
    if age_s > max_age_s:
        raise TapRejected(
            "code_expired", f"code is {age_s} s old (limit {max_age_s} s); show a fresh code"
        )


def _check_not_denied(card_id: int, deny_list: Container[int]) -> None:
    if card_id in deny_list:
        raise TapRejected(
            "card_revoked", f"card {card_id} is on the deny list; settle its debt in the app"
        )


def _verified(code: OfflineCode) -> VerifiedTap:
    credential = code.credential
    return VerifiedTap(
        tap_id=tap_id(code),
        card_id=credential.card_id,
        key_id=credential.key_id,
        timestamp_s=code.timestamp_s,
        credit_limit_fen=credential.credit_limit_fen,
        expires_at_s=credential.expires_at_s,
    )
