"""Credentials: fixed layout, issuance limits, platform signature, the verification cache."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from platform_stub.exceptions import TapRejected
from platform_stub.transit import (
    CREDENTIAL_BYTES,
    Credential,
    CredentialCache,
    PlatformKeyring,
    RiderKey,
    issue_credential,
    verify_credential,
)
from platform_stub.transit.credential import verify_signature
from tests.transit.riders import Rider, make_rider


def test_credential_is_115_bytes_version_first_and_round_trips(rider: Rider) -> None:
    data = rider.credential.to_bytes()
    assert len(data) == CREDENTIAL_BYTES == 115
    assert data[0] == 1
    assert Credential.from_bytes(data) == rider.credential


@pytest.mark.parametrize(
    "data", [b"", bytes(114), bytes(116)], ids=["empty", "one-short", "one-long"]
)
def test_a_credential_of_the_wrong_length_is_malformed(data: bytes) -> None:
    with pytest.raises(TapRejected) as caught:
        Credential.from_bytes(data)
    assert caught.value.code == "code_malformed"


def test_a_credential_of_an_unknown_version_is_malformed(rider: Rider) -> None:
    data = b"\x02" + rider.credential.to_bytes()[1:]
    with pytest.raises(TapRejected, match="version 2"):
        Credential.from_bytes(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("card_id", -1), ("card_id", 2**64), ("credit_limit_fen", 2**32), ("expires_at_s", -5)],
)
def test_issuing_a_value_that_does_not_fit_its_field_is_refused(
    keyring: PlatformKeyring, field: str, value: int
) -> None:
    args = {"card_id": 1, "credit_limit_fen": 100, "expires_at_s": 2_000_000_000} | {field: value}
    with pytest.raises(ValueError, match=field):
        issue_credential(keyring, rider_public_key=bytes(32), **args)


def test_a_credential_verifies_against_the_keys_that_signed_it(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    verify_credential(rider.credential, keyring.public_keys())


def test_a_changed_credit_limit_breaks_the_platform_signature(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    inflated = dataclasses.replace(rider.credential, credit_limit_fen=10**9)
    with pytest.raises(TapRejected) as caught:
        verify_credential(inflated, keyring.public_keys())
    assert caught.value.code == "signature_invalid"


def test_the_cache_verifies_each_credentials_platform_signature_once(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    cache = CredentialCache()
    for _ in range(5):
        verify_credential(rider.credential, keyring.public_keys(), cache)
    assert (cache.signature_checks, cache.hits) == (1, 4)


def test_a_failed_verification_is_not_cached(keyring: PlatformKeyring, rider: Rider) -> None:
    cache = CredentialCache()
    forged = dataclasses.replace(rider.credential, signature=bytes(64))
    for _ in range(2):
        with pytest.raises(TapRejected):
            verify_credential(forged, keyring.public_keys(), cache)
    assert (cache.signature_checks, cache.hits, len(cache)) == (2, 0, 0)


def test_the_cache_is_bounded_and_forgets_the_least_recently_used(
    keyring: PlatformKeyring,
) -> None:
    cache = CredentialCache(entries_max=2)
    first, second, third = (make_rider(keyring, card_id=n).credential for n in (1, 2, 3))
    for credential in (first, second, first, third):  # first is reused, so second goes
        verify_credential(credential, keyring.public_keys(), cache)
    assert len(cache) == 2
    checks = cache.signature_checks
    verify_credential(first, keyring.public_keys(), cache)
    assert cache.signature_checks == checks
    verify_credential(second, keyring.public_keys(), cache)
    assert cache.signature_checks == checks + 1


def test_a_cached_credential_is_refused_once_its_key_id_means_another_key(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    cache = CredentialCache()
    verify_credential(rider.credential, keyring.public_keys(), cache)
    other_ring = PlatformKeyring.from_seed(b"another platform, same key ids")
    with pytest.raises(TapRejected) as caught:
        verify_credential(rider.credential, other_ring.public_keys(), cache)
    assert caught.value.code == "signature_invalid"


# -- the two Ed25519 libraries agree --------------------------------------------------
# OpenSSL (``cryptography``) signs, libsodium (PyNaCl) verifies: each must accept what
# the other makes and refuse the same forgeries, or a library bump could split them.
# Riders' apps sign with libsodium (``RiderKey``): the same bytes as OpenSSL's.

_MESSAGES = st.binary(min_size=0, max_size=300)


@given(message=_MESSAGES, seed=st.binary(min_size=32, max_size=32))
def test_libsodium_signs_the_same_bytes_as_openssl(message: bytes, seed: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    rider_key = RiderKey.of(key)
    assert rider_key.public_key == key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert rider_key.sign(message) == key.sign(message)


@given(message=_MESSAGES, seed=st.binary(min_size=32, max_size=32))
def test_libsodium_accepts_openssl_signatures_and_refuses_any_changed_byte(
    message: bytes, seed: bytes
) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = key.sign(message)
    verify_signature(public, signature, message, "test")  # no error
    for i in (0, 31, 63):
        forged = bytearray(signature)
        forged[i] ^= 0x01
        with pytest.raises(TapRejected) as err:
            verify_signature(public, bytes(forged), message, "test")
        assert err.value.code == "signature_invalid"
    with pytest.raises(TapRejected):
        verify_signature(public, signature, message + b"\x00", "test")


@given(message=_MESSAGES, seed=st.binary(min_size=32, max_size=32))
def test_openssl_accepts_libsodium_signatures(message: bytes, seed: bytes) -> None:
    signed = SigningKey(seed).sign(message)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    public.verify(signed.signature, message)  # raises InvalidSignature if they disagree
    assert signed.signature == Ed25519PrivateKey.from_private_bytes(seed).sign(message)


@pytest.mark.parametrize(
    ("public", "signature"),
    [(b"\x00" * 31, b"\x01" * 64), (b"\x01" * 32, b"\x01" * 63), (b"\x00" * 32, b"\x00" * 64)],
    ids=["short key", "short signature", "small-order key"],
)
def test_bad_key_or_signature_bytes_are_signature_invalid(public: bytes, signature: bytes) -> None:
    with pytest.raises(TapRejected) as err:
        verify_signature(public, signature, b"message", "test")
    assert err.value.code == "signature_invalid"
