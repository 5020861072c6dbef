"""verify_tap as readers and clearing use it: order of checks, windows, hostile input."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_stub.exceptions import TapRejected
from platform_stub.transit import (
    CLEARING_MAX_AGE_S,
    CLEARING_SKEW_S,
    CLOCK_SKEW_S,
    CODE_BYTES,
    CODE_CHARS,
    CODE_MAX_AGE_S,
    CredentialCache,
    PlatformKeyring,
    b45encode,
    decode_code_text,
    encode_code_text,
    verify_tap,
)
from tests.transit.riders import NOW_S, PLATFORM_SEED, Rider, make_rider

_ANY_KEYS = {0: PlatformKeyring.from_seed(PLATFORM_SEED).public_keys()[0]}


def _reason(code: str | bytes, keys: dict[int, bytes], now_s: int = NOW_S) -> str:
    with pytest.raises(TapRejected) as caught:
        verify_tap(code, keys, now_s, set())
    return caught.value.code


def test_windows_are_a_refresh_period_plus_skew_and_clearing_is_wider() -> None:
    assert (CLOCK_SKEW_S, CODE_MAX_AGE_S) == (30, 60)
    assert CLEARING_SKEW_S > CLOCK_SKEW_S and CLEARING_MAX_AGE_S > CODE_MAX_AGE_S


def test_a_fresh_code_verifies_and_reports_the_credential(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    tap = verify_tap(rider.code(), keyring.public_keys(), NOW_S + 10, set())
    credential = rider.credential
    assert (tap.card_id, tap.key_id, tap.timestamp_s) == (credential.card_id, 0, NOW_S)
    assert (tap.credit_limit_fen, tap.expires_at_s) == (5_000, credential.expires_at_s)


def test_binary_and_text_forms_verify_to_the_same_tap(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    text = rider.code()
    keys = keyring.public_keys()
    binary = decode_code_text(text)
    assert verify_tap(text, keys, NOW_S, set()) == verify_tap(binary, keys, NOW_S, set())


@pytest.mark.parametrize("age_s", [-CLOCK_SKEW_S, 0, CODE_MAX_AGE_S])
def test_the_freshness_window_includes_its_edges(
    keyring: PlatformKeyring, rider: Rider, age_s: int
) -> None:
    verify_tap(rider.code(NOW_S - age_s), keyring.public_keys(), NOW_S, set())


def test_a_forged_credential_is_refused_before_its_expiry_is_looked_at(
    keyring: PlatformKeyring,
) -> None:
    """Order of checks: an expired and forged credential reports the forgery."""
    stranger = make_rider(PlatformKeyring.from_seed(b"not the platform, but key id 0 too"))
    expired = make_rider(keyring, expires_at_s=NOW_S - 1)
    forged = dataclasses.replace(
        expired,
        credential=dataclasses.replace(expired.credential, signature=stranger.credential.signature),
    )
    assert _reason(forged.code(), keyring.public_keys()) == "signature_invalid"


def test_an_expired_credential_is_refused_before_a_bad_code_signature(
    keyring: PlatformKeyring,
) -> None:
    expired = make_rider(keyring, expires_at_s=NOW_S)
    data = bytearray(decode_code_text(expired.code()))
    data[-1] ^= 1
    assert _reason(bytes(data), keyring.public_keys()) == "credential_expired"


def test_clearing_judges_freshness_at_the_tap_time_with_wider_windows(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    """A reader whose clock ran 5 minutes fast accepted the tap; clearing, a day later,
    passes the reader's scan time and the clearing windows."""
    scanned_at_s = NOW_S + 300
    assert _reason(rider.code(), keyring.public_keys(), scanned_at_s) == "code_expired"
    tap = verify_tap(
        rider.code(),
        keyring.public_keys(),
        scanned_at_s,
        set(),
        skew_s=CLEARING_SKEW_S,
        max_age_s=CLEARING_MAX_AGE_S,
        credential_cache=CredentialCache(),
    )
    assert tap.timestamp_s == NOW_S


@settings(max_examples=300)
@given(st.binary(max_size=2 * CODE_BYTES))
def test_any_bytes_are_refused_only_with_tap_rejected(data: bytes) -> None:
    with pytest.raises(TapRejected):
        verify_tap(data, _ANY_KEYS, NOW_S, set())


@settings(max_examples=300)
@given(st.binary(min_size=CODE_BYTES - 2, max_size=CODE_BYTES - 2))
def test_any_well_framed_bytes_are_refused_only_with_tap_rejected(body: bytes) -> None:
    """Right length and version bytes, so the garbage reaches the signature checks."""
    with pytest.raises(TapRejected):
        verify_tap(b"\x01\x01" + body, _ANY_KEYS, NOW_S, set())


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(max_size=2 * CODE_CHARS),
        st.binary(max_size=CODE_BYTES).map(b45encode),
    )
)
def test_any_text_is_refused_only_with_tap_rejected(text: str) -> None:
    with pytest.raises(TapRejected):
        verify_tap(text, _ANY_KEYS, NOW_S, set())


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(0, CODE_BYTES - 1), flip=st.integers(1, 255))
def test_any_changed_byte_of_a_valid_code_is_refused(
    keyring: PlatformKeyring, rider: Rider, position: int, flip: int
) -> None:
    data = bytearray(decode_code_text(rider.code()))
    data[position] ^= flip
    with pytest.raises(TapRejected) as caught:
        verify_tap(encode_code_text(bytes(data)), keyring.public_keys(), NOW_S, set())
    # Every byte is under a signature or is a version byte, and both are checked before
    # expiry, freshness and the deny list.
    assert caught.value.code in {"code_malformed", "signature_invalid"}
