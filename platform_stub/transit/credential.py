"""The rider credential: the platform vouches for a rider key, a card and a credit limit.

Issued when a resident claims the e-bus card and refreshed whenever the app is online.
It is the first link of the offline signature chain: a reader that trusts the platform
key trusts the rider key inside, and the rider key then signs each code.

Layout (big-endian, fixed width, 115 bytes)::

    version       1  CREDENTIAL_VERSION
    key_id        2  platform key that signed
    card_id       8  unsigned 64-bit
    rider_key    32  raw Ed25519 public key
    credit_fen    4  unsigned 32-bit credit limit in fen (up to 42.9 million RMB)
    expires_at_s  4  unsigned 32-bit unix seconds (good until 2106)
    signature    64  platform Ed25519 over CONTEXT || the 51 bytes above

The signed message starts with a context string so a signature the platform makes for
another purpose (deny lists, later) can never pass as a credential signature.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Mapping

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from platform_stub.exceptions import TapRejected
from platform_stub.frozen import frozen
from platform_stub.transit.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, PlatformKeyring

CREDENTIAL_VERSION = 1
_BODY = struct.Struct(">BHQ32sII")
_WHOLE = struct.Struct(f"{_BODY.format}{SIGNATURE_BYTES}s")
CREDENTIAL_BODY_BYTES = _BODY.size
CREDENTIAL_BYTES = _WHOLE.size
_KEY_ID = struct.Struct(">xH")  # the key id, after the version byte
_CONTEXT = b"cashless-city/transit-credential/v1\x00"
# A bus sees a few thousand distinct riders a day; past this many the least recently
# seen credential is forgotten and its signature checked again on its next tap.
CACHE_ENTRIES_MAX = 8_192
_LIMITS = {
    "card_id": 2**64,
    "credit_limit_fen": 2**32,
    "expires_at_s": 2**32,
}


@frozen
class Credential:
    key_id: int
    card_id: int
    rider_public_key: bytes
    credit_limit_fen: int
    expires_at_s: int
    signature: bytes

    def body(self) -> bytes:
        """The fixed layout the platform signs (everything but the signature)."""
        return _BODY.pack(
            CREDENTIAL_VERSION,
            self.key_id,
            self.card_id,
            self.rider_public_key,
            self.credit_limit_fen,
            self.expires_at_s,
        )

    def signed_message(self) -> bytes:
        return _CONTEXT + self.body()

    def to_bytes(self) -> bytes:
        return self.body() + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> Credential:
        """Parse the 115-byte form; ``code_malformed`` on a wrong length or version."""
        return cls(*credential_fields(data))


def credential_fields(data: bytes) -> tuple[int, int, bytes, int, int, bytes]:
    """The 115-byte form's fields in ``Credential``'s order, without building one (a
    verification reads them straight from the code); ``code_malformed`` on a wrong length
    or version."""
    if len(data) != CREDENTIAL_BYTES:
        raise TapRejected(
            "code_malformed", f"credential is {len(data)} bytes, expected {CREDENTIAL_BYTES}"
        )
    version, *fields = _WHOLE.unpack(data)
    if version != CREDENTIAL_VERSION:
        raise TapRejected("code_malformed", f"credential version {version} is not supported")
    return tuple(fields)  # type: ignore[return-value]


def issue_credential(
    keyring: PlatformKeyring,
    card_id: int,
    rider_public_key: bytes,
    credit_limit_fen: int,
    expires_at_s: int,
) -> Credential:
    """Sign a credential with the ring's active key (which is then kept until expiry)."""
    _check_fields(card_id, rider_public_key, credit_limit_fen, expires_at_s)
    key_id = keyring.active_key_id
    unsigned = Credential(key_id, card_id, rider_public_key, credit_limit_fen, expires_at_s, b"")
    signature = keyring.sign(key_id, unsigned.signed_message(), expires_at_s=expires_at_s)
    return Credential(key_id, card_id, rider_public_key, credit_limit_fen, expires_at_s, signature)


def _check_fields(card_id: int, rider_public_key: bytes, credit_fen: int, expires_s: int) -> None:
    values = {"card_id": card_id, "credit_limit_fen": credit_fen, "expires_at_s": expires_s}
    for name, value in values.items():
        if not 0 <= value < _LIMITS[name]:
            raise ValueError(f"{name}={value} does not fit its field (0 to {_LIMITS[name] - 1})")
    if len(rider_public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"rider public key must be {PUBLIC_KEY_BYTES} raw bytes")


class CredentialCache:
    """Credentials whose platform signature already verified, least recently used first.

    A rider taps the same credential for days, so a reader checks its platform signature
    once and afterwards only the code signature: half the Ed25519 work per scan. Entries
    are keyed by SHA-256 of (platform public key || credential bytes): any changed byte,
    or the same key id bound to another key, misses the cache and is verified afresh.
    """

    def __init__(self, entries_max: int = CACHE_ENTRIES_MAX) -> None:
        if entries_max < 1:
            raise ValueError("a credential cache needs room for at least one entry")
        self.entries_max = entries_max
        self.signature_checks = 0  # platform signatures actually verified
        self.hits = 0
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._verified)

    def seen(self, key: bytes) -> bool:
        """True for a verified credential; a miss means the caller verifies the signature."""
        if key not in self._verified:
            self.signature_checks += 1
            return False
        self._verified.move_to_end(key)
        self.hits += 1
        return True

    def remember(self, key: bytes) -> None:
        self._verified[key] = None
        if len(self._verified) > self.entries_max:
            self._verified.popitem(last=False)


def verify_credential(
    credential: Credential,
    public_keys: Mapping[int, bytes],
    cache: CredentialCache | None = None,
) -> None:
    """``signature_invalid`` unless a platform key the reader knows signed ``credential``.

    Expiry is not checked here (it needs a clock); ``verify_tap`` checks it next.
    """
    verify_credential_bytes(credential.to_bytes(), public_keys, cache)


def verify_credential_bytes(
    data: bytes, public_keys: Mapping[int, bytes], cache: CredentialCache | None = None
) -> None:
    """``verify_credential`` of the credential's 115-byte form, which ``verify_tap`` slices
    from the code: nothing is packed again. ``data`` is a whole credential, checked by
    ``credential_fields`` or made by ``Credential.to_bytes``."""
    platform_key = _known_platform_key(_KEY_ID.unpack_from(data)[0], public_keys)
    cache_key = b""
    if cache is not None:
        cache_key = hashlib.sha256(platform_key + data).digest()
        if cache.seen(cache_key):
            return
    body, signature = data[:CREDENTIAL_BODY_BYTES], data[CREDENTIAL_BODY_BYTES:]
    verify_signature(platform_key, signature, _CONTEXT + body, "credential")
    if cache is not None:
        cache.remember(cache_key)


def _known_platform_key(key_id: int, public_keys: Mapping[int, bytes]) -> bytes:
    platform_key = public_keys.get(key_id)
    if platform_key is None:
        raise TapRejected(
            "signature_invalid", f"platform key {key_id} is unknown here; refresh the reader's keys"
        )
    return platform_key


def verify_signature(public_key: bytes, signature: bytes, message: bytes, what: str) -> None:
    """Ed25519 verification that reports every failure, bad key bytes included, as
    ``signature_invalid``.

    libsodium (PyNaCl), not OpenSSL (``cryptography``, the keyring's signer): it
    verifies in about 60 us against OpenSSL's 125-150 us on this machine, and every tap
    is verified twice (reader and clearing). Ed25519 is one standard; the libraries
    cross-check in tests."""
    if len(signature) != SIGNATURE_BYTES:  # else signature + message could split elsewhere
        raise TapRejected("signature_invalid", f"{what} signature is not {SIGNATURE_BYTES} bytes")
    try:
        crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, ValueError, TypeError):
        raise TapRejected("signature_invalid", f"{what} signature does not verify") from None
