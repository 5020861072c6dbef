"""The offline code the rider's app shows: a credential, a time, a nonce, a rider signature.

The app makes a code with no network: it signs, with the rider key the credential
vouches for, everything in the code before the signature. The timestamp is in unix
**seconds** (freshness is judged in seconds; the nonce, not the clock, keeps two codes
made in the same second apart). The nonce is 8 bytes from ``os.urandom`` or, in
simulations, from the model's seeded generator.

Layout (big-endian, fixed width)::

    version        1  CODE_VERSION
    credential   115  see credential.py
    timestamp_s    4  unsigned 32-bit unix seconds
    nonce          8
    signature     64  rider Ed25519 over CONTEXT || the 128 bytes above

Size: 192 bytes, 288 characters of base45 (RFC 9285), which a QR code carries in
alphanumeric mode: ``segno.make(text, error="m").version`` is 10 (57x57 modules).
Base64url in byte mode would take 256 characters and version 12. Base45 text survives
every scanner unchanged, whereas byte mode leaves readers to guess a text encoding.
"""

from __future__ import annotations

import hashlib
import os
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from platform_stub.exceptions import TapRejected
from platform_stub.frozen import frozen
from platform_stub.transit.base45 import b45decode, b45decode_many, b45encode
from platform_stub.transit.credential import (
    CREDENTIAL_BYTES,
    SIGNATURE_BYTES,
    Credential,
    verify_signature,
)
from platform_stub.transit.keys import RiderKey

CODE_VERSION = 1
NONCE_BYTES = 8
_CODE = struct.Struct(f">B{CREDENTIAL_BYTES}sI{NONCE_BYTES}s{SIGNATURE_BYTES}s")
CODE_BYTES = _CODE.size
CODE_CHARS = CODE_BYTES // 2 * 3 + (2 if CODE_BYTES % 2 else 0)
_CONTEXT = b"cashless-city/transit-code/v1\x00"
_TAP_ID_PREFIX = b"tap/v1\x00"
_TAP_ID_KEY = struct.Struct(">QI")  # card id, timestamp; the nonce follows


@frozen
class OfflineCode:
    credential: Credential
    timestamp_s: int
    nonce: bytes
    signature: bytes

    def signed_message(self) -> bytes:
        return signed_message(self.to_bytes())

    def to_bytes(self) -> bytes:
        return _CODE.pack(
            CODE_VERSION, self.credential.to_bytes(), self.timestamp_s, self.nonce, self.signature
        )

    def verify_signature(self) -> None:
        """``signature_invalid`` unless the credential's rider key signed this code."""
        rider_key = self.credential.rider_public_key
        verify_signature(rider_key, self.signature, self.signed_message(), "code")


def signed_message(data: bytes) -> bytes:
    """What the rider signs, from a code's bytes: context, then every field of the code
    but the signature."""
    return _CONTEXT + data[:-SIGNATURE_BYTES]


def new_nonce() -> bytes:
    """A fresh random nonce, for apps; simulations pass bytes from their seeded rng."""
    return os.urandom(NONCE_BYTES)


def sign_code(
    credential: Credential,
    rider_key: RiderKey | Ed25519PrivateKey,
    timestamp_s: int,
    nonce: bytes | None = None,
) -> bytes:
    """The binary code the app shows at ``timestamp_s``; no network needed. An app that
    signs many codes passes a ``RiderKey`` (see there); a private key is converted."""
    key = rider_key if isinstance(rider_key, RiderKey) else RiderKey.of(rider_key)
    if key.public_key != credential.rider_public_key:
        raise ValueError(f"rider key is not the one card {credential.card_id} vouches for")
    nonce = new_nonce() if nonce is None else nonce
    if len(nonce) != NONCE_BYTES or not 0 <= timestamp_s < 2**32:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes and timestamp_s a uint32")
    unsigned = OfflineCode(credential, timestamp_s, nonce, bytes(SIGNATURE_BYTES))
    signature = key.sign(unsigned.signed_message())
    return OfflineCode(credential, timestamp_s, nonce, signature).to_bytes()


def parse_code(data: bytes) -> OfflineCode:
    """Split a binary code into its fields; ``code_malformed`` on any wrong length or
    version. Signatures are not checked here (see ``verify_tap``)."""
    credential, timestamp_s, nonce, signature = split_code(data)
    return OfflineCode(Credential.from_bytes(credential), timestamp_s, nonce, signature)


def split_code(data: bytes) -> tuple[bytes, int, bytes, bytes]:
    """The code's (credential bytes, timestamp_s, nonce, signature), without building
    objects (``verify_tap`` reads the credential with ``credential_fields``);
    ``code_malformed`` on a wrong length or version."""
    if len(data) != CODE_BYTES:
        raise TapRejected("code_malformed", f"code is {len(data)} bytes, expected {CODE_BYTES}")
    version, credential, timestamp_s, nonce, signature = _CODE.unpack(data)
    if version != CODE_VERSION:
        raise TapRejected("code_malformed", f"code version {version} is not supported")
    return credential, timestamp_s, nonce, signature


def tap_id(code: OfflineCode) -> str:
    """A stable id for de-duplication: the same card, second and nonce is the same tap,
    whoever scanned it and however often."""
    return tap_id_of(code.credential.card_id, code.timestamp_s, code.nonce)


def tap_id_of(card_id: int, timestamp_s: int, nonce: bytes) -> str:
    """``tap_id`` from the fields it hashes."""
    key = _TAP_ID_KEY.pack(card_id, timestamp_s) + nonce
    return hashlib.sha256(_TAP_ID_PREFIX + key).hexdigest()[:32]


def encode_code_text(data: bytes) -> str:
    """The text to put in the QR code (base45, QR alphanumeric mode)."""
    return b45encode(data)


def decode_code_text(text: str) -> bytes:
    """The binary code back from scanned text; ``code_malformed`` on anything else."""
    if len(text) != CODE_CHARS:
        raise TapRejected(
            "code_malformed", f"code text is {len(text)} characters, expected {CODE_CHARS}"
        )
    try:
        return b45decode(text)
    except ValueError as exc:
        raise TapRejected("code_malformed", f"code text is not base45: {exc}") from None


def decode_codes_text(texts: list[str]) -> list[bytes | None]:
    """``decode_code_text`` of many texts at once (clearing's batches); None where it
    would raise (``decode_code_text`` of that text gives the rejection)."""
    return b45decode_many(texts, CODE_CHARS)
