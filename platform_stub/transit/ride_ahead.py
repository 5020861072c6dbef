"""A ride's code signed and verified in one call, for work done ahead on another core.

``sign_and_check`` is what the rider's phone and the bus reader do with a code, less
the reader's checks whose answer changes from one scan to the next: those (deny list,
replays, queue room) are ``BusReader.admit``'s. A simulation that knows the day's rides
in advance runs it for many rides in a worker process (``agents.ride_codes``) and
hands each result to the reader at the ride.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from platform_stub.exceptions import TapRejected
from platform_stub.transit.code import encode_code_text, sign_code
from platform_stub.transit.credential import Credential, CredentialCache
from platform_stub.transit.keys import RiderKey
from platform_stub.transit.reader import ScanResult
from platform_stub.transit.verify import VERIFIED_ROW, WORKER_CACHE, VerifiedTap, verify_tap

# What a reader verifies with: its platform keys, clock skew and code age windows.
ReaderSettings = tuple[Mapping[int, bytes], int, int]
# One ride's inputs: credential bytes, the rider's libsodium secret key, the time, the
# nonce, and an index into the reader settings sent with it.
RideInputs = tuple[bytes, bytes, int, bytes, int]
# The code as text; whether it passed; the VerifiedTap as a tuple, or (code, detail).
Checked = tuple[str, bool, tuple]


def sign_and_check(
    credential: bytes,
    secret_key: bytes,
    now_s: int,
    nonce: bytes,
    settings: ReaderSettings,
    credential_cache: CredentialCache | None = None,
) -> Checked:
    """The code the phone shows at ``now_s`` and what ``verify_tap`` says of it with
    an empty deny list. Tuples, not dataclasses, travel back: cheaper to pickle."""
    key = RiderKey.from_secret_key(secret_key)
    code = sign_code(Credential.from_bytes(credential), key, now_s, nonce)
    public_keys, skew_s, max_age_s = settings
    try:
        verified = verify_tap(code, public_keys, now_s, (), skew_s, max_age_s, credential_cache)
    except TapRejected as rejection:
        return encode_code_text(code), False, (rejection.code, rejection.detail)
    return encode_code_text(code), True, VERIFIED_ROW(verified)


def sign_and_check_many(
    rides: Sequence[RideInputs], settings: Sequence[ReaderSettings]
) -> list[Checked]:
    """``sign_and_check`` for each ride, in order: one worker call. The worker keeps
    one credential cache (``verify.WORKER_CACHE``) for every reader: a rider's card is
    verified once, not at every ride, and the cache is keyed by the platform key too."""
    return [
        sign_and_check(credential, secret_key, now_s, nonce, settings[index], WORKER_CACHE)
        for credential, secret_key, now_s, nonce, index in rides
    ]


class Admits(Protocol):
    def admit(self, verified: VerifiedTap, code_text: str, now_s: int) -> ScanResult: ...


def admit_checked(reader: Admits, checked: Checked, now_s: int) -> ScanResult:
    """The scan's answer for a code checked ahead: a rejection as it came back, else
    the reader's ``admit`` (a ``BusReader``, or a bus that notes its taps)."""
    text, passed, fields = checked
    if not passed:
        return ScanResult(rejection=TapRejected(*fields))
    return reader.admit(VerifiedTap(*fields), text, now_s)
