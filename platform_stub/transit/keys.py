"""The platform's Ed25519 signing keys for transit credentials, by key id.

The platform signs every rider credential with its active key; bus readers hold the
public keys by key id and verify offline. ``rotate`` makes a new active key; an older
key stays in the ring for verification until every credential it signed has expired
(its ``retire_after_s``, the latest expiry it signed), so rotating never strands a
rider holding a still-valid credential. Key ids are small ints (0, 1, 2, ...) because
they travel in a 16-bit field of the credential.

Every key derives from one seed: key ``i`` is the Ed25519 private seed
SHA-256(seed || i as 4 big-endian bytes). A simulation with a fixed seed therefore gets
the same keys, and (Ed25519 signing being deterministic) the same credentials, codes
and tap ids on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

SIGNATURE_BYTES = 64  # an Ed25519 signature (libsodium's crypto_sign puts it first)
PUBLIC_KEY_BYTES = 32  # a raw Ed25519 public key (libsodium's secret key ends with it)
KEY_IDS_MAX = 65_536  # key ids are an unsigned 16-bit field in the credential
SEED_BYTES_MIN = 16
KEYRING_JSON_VERSION = 1


def derive_private_key(seed: bytes, index: int) -> Ed25519PrivateKey:
    """Key ``index`` of ``seed``; also how simulations make reproducible rider keys."""
    digest = hashlib.sha256(seed + index.to_bytes(4, "big")).digest()
    return Ed25519PrivateKey.from_private_bytes(digest)


def public_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key, the form credentials and readers carry."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class RiderKey:
    """A rider's signing key as the app keeps it: libsodium's secret key and the raw
    public key, both worked out once. The app signs a code on every ride; libsodium
    signs in about 25 us where OpenSSL (``Ed25519PrivateKey.sign``) takes 38, and the
    public key is not derived again for each code. Ed25519 is deterministic, so the
    signatures are the same bytes either way."""

    secret_key: bytes  # libsodium's 64 bytes: the 32-byte seed, then the public key
    public_key: bytes

    @classmethod
    def of(cls, private_key: Ed25519PrivateKey) -> RiderKey:
        public_key, secret_key = crypto_sign_seed_keypair(_private_key_bytes(private_key))
        return cls(secret_key, public_key)

    @classmethod
    def from_secret_key(cls, secret_key: bytes) -> RiderKey:
        """The key back from libsodium's secret key alone (what a worker is sent)."""
        return cls(secret_key, secret_key[-PUBLIC_KEY_BYTES:])

    @classmethod
    def generate(cls) -> RiderKey:
        """A new random key, as a phone makes one when its owner claims a card."""
        return cls.of(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return crypto_sign(message, self.secret_key)[:SIGNATURE_BYTES]


def _private_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


@dataclass
class _PlatformKey:
    private_key: Ed25519PrivateKey
    created_at_s: int
    retire_after_s: int  # latest expiry this key signed; never earlier than creation


class PlatformKeyring:
    """Signing keys by id; one active key signs, older keys only verify until retired."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) < SEED_BYTES_MIN:
            raise ValueError(f"keyring seed must be at least {SEED_BYTES_MIN} bytes")
        self._seed = seed
        self._keys: dict[int, _PlatformKey] = {}
        self._active_key_id: int | None = None

    @classmethod
    def from_seed(cls, seed: bytes, now_s: int = 0) -> PlatformKeyring:
        """A reproducible ring whose first key (id 0) is active from ``now_s``."""
        ring = cls(seed)
        ring.rotate(now_s)
        return ring

    @classmethod
    def generate(cls, now_s: int) -> PlatformKeyring:
        """A ring from a fresh random seed, for a platform that is not a simulation."""
        return cls.from_seed(os.urandom(32), now_s)

    @property
    def active_key_id(self) -> int:
        if self._active_key_id is None:
            raise ValueError("keyring has no key yet: call rotate(now_s) first")
        return self._active_key_id

    def rotate(self, now_s: int) -> int:
        """Make a new active key and return its id; older keys keep verifying."""
        key_id = len(self._keys)
        if key_id >= KEY_IDS_MAX:
            raise ValueError(f"keyring is full: {KEY_IDS_MAX} key ids used")
        private_key = derive_private_key(self._seed, key_id)
        self._keys[key_id] = _PlatformKey(private_key, now_s, now_s)
        self._active_key_id = key_id
        return key_id

    def sign(self, key_id: int, message: bytes, *, expires_at_s: int | None = None) -> bytes:
        """Sign with key ``key_id``. Pass the expiry of what is signed so the key is kept
        for verification at least that long."""
        key = self._key(key_id)
        if expires_at_s is not None:
            key.retire_after_s = max(key.retire_after_s, expires_at_s)
        return key.private_key.sign(message)

    def retire_after_s(self, key_id: int) -> int:
        """The latest expiry signed by ``key_id``: after it the key verifies nothing."""
        return self._key(key_id).retire_after_s

    def public_keys(self, now_s: int | None = None) -> dict[int, bytes]:
        """Raw public keys by id for readers; with ``now_s``, only keys still in use
        (the active key, and older keys whose credentials have not all expired)."""
        return {
            key_id: public_key_bytes(key.private_key)
            for key_id, key in self._keys.items()
            if now_s is None or key_id == self._active_key_id or now_s < key.retire_after_s
        }

    def to_json(self) -> str:
        """Everything needed to restore the ring, private keys in hex: store it as a secret."""
        return json.dumps(
            {
                "version": KEYRING_JSON_VERSION,
                "seed": self._seed.hex(),
                "active_key_id": self._active_key_id,
                "keys": [_key_to_dict(key_id, key) for key_id, key in self._keys.items()],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PlatformKeyring:
        """Restore a ring, checking that every stored key is the one its seed derives."""
        doc = json.loads(text)
        if doc.get("version") != KEYRING_JSON_VERSION:
            raise ValueError(f"keyring JSON version {doc.get('version')!r} is not supported")
        ring = cls(bytes.fromhex(doc["seed"]))
        for index, item in enumerate(doc["keys"]):
            ring._keys[index] = _key_from_dict(ring._seed, index, item)
        ring._active_key_id = doc["active_key_id"]
        if ring._active_key_id is not None and ring._active_key_id not in ring._keys:
            raise ValueError(f"keyring JSON: active key {ring._active_key_id} is not stored")
        return ring

    def _key(self, key_id: int) -> _PlatformKey:
        key = self._keys.get(key_id)
        if key is None:
            raise KeyError(f"no platform key with id {key_id!r}")
        return key


def _key_to_dict(key_id: int, key: _PlatformKey) -> dict[str, Any]:
    return {
        "key_id": key_id,
        "private_key": _private_key_bytes(key.private_key).hex(),
        "created_at_s": key.created_at_s,
        "retire_after_s": key.retire_after_s,
    }


def _key_from_dict(seed: bytes, index: int, item: dict[str, Any]) -> _PlatformKey:
    stored = bytes.fromhex(str(item["private_key"]))
    if item["key_id"] != index or stored != _private_key_bytes(derive_private_key(seed, index)):
        raise ValueError(f"keyring JSON: key {item['key_id']!r} does not match the seed")
    return _PlatformKey(
        Ed25519PrivateKey.from_private_bytes(stored),
        int(item["created_at_s"]),
        int(item["retire_after_s"]),
    )
