"""Offline codes: layout, parsing, tap ids, and real QR images read by an independent decoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import segno
import zxingcpp
from PIL import Image

from platform_stub.exceptions import TapRejected
from platform_stub.transit import (
    CODE_BYTES,
    CODE_CHARS,
    PlatformKeyring,
    RiderKey,
    decode_code_text,
    encode_code_text,
    parse_code,
    sign_code,
    tap_id,
    verify_tap,
)
from tests.transit.riders import NOW_S, Rider, make_rider


def test_a_code_is_192_bytes_and_288_base45_characters(rider: Rider) -> None:
    data = sign_code(rider.credential, rider.private_key, NOW_S, bytes(8))
    assert len(data) == CODE_BYTES == 192
    assert len(encode_code_text(data)) == CODE_CHARS == 288


def test_the_code_text_fits_a_version_10_qr_at_level_m(rider: Rider) -> None:
    """The figure quoted in code.py's docstring."""
    qr = segno.make(rider.code(), error="m")
    assert (qr.version, qr.mode) == (10, "alphanumeric")


def test_a_code_parses_back_to_its_fields(rider: Rider) -> None:
    nonce = bytes.fromhex("0102030405060708")
    parsed = parse_code(sign_code(rider.credential, rider.private_key, NOW_S, nonce))
    assert (parsed.credential, parsed.timestamp_s, parsed.nonce) == (
        rider.credential,
        NOW_S,
        nonce,
    )
    parsed.verify_signature()


def test_signing_with_a_key_the_credential_does_not_vouch_for_is_refused(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    other = make_rider(keyring, card_id=2002)
    with pytest.raises(ValueError, match="vouches"):
        sign_code(rider.credential, other.private_key, NOW_S, bytes(8))


def test_a_rider_key_signs_the_same_bytes_as_the_private_key(rider: Rider) -> None:
    """libsodium (RiderKey) and OpenSSL (Ed25519PrivateKey) make one deterministic
    signature, so a simulation's codes and tap ids do not depend on which signs."""
    key = RiderKey.of(rider.private_key)
    for timestamp_s, nonce in ((NOW_S, bytes(8)), (NOW_S + 31, b"\xff" * 8)):
        by_openssl = sign_code(rider.credential, rider.private_key, timestamp_s, nonce)
        by_sodium = sign_code(rider.credential, key, timestamp_s, nonce)
        assert by_sodium == by_openssl
        parse_code(by_sodium).verify_signature()
    message = b"any message"
    assert key.sign(message) == rider.private_key.sign(message)


def test_a_rider_key_for_another_card_is_refused(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    other = RiderKey.of(make_rider(keyring, card_id=2002).private_key)
    with pytest.raises(ValueError, match="vouches"):
        sign_code(rider.credential, other, NOW_S, bytes(8))


def test_without_a_nonce_each_code_gets_a_random_one(rider: Rider) -> None:
    first, second = (sign_code(rider.credential, rider.private_key, NOW_S) for _ in range(2))
    assert tap_id(parse_code(first)) != tap_id(parse_code(second))


def test_tap_id_is_stable_and_depends_on_card_time_and_nonce(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    def tap_of(r: Rider, timestamp_s: int, nonce_index: int) -> str:
        return tap_id(parse_code(decode_code_text(r.code(timestamp_s, nonce_index))))

    base = tap_of(rider, NOW_S, 0)
    assert base == tap_of(rider, NOW_S, 0)
    assert len(base) == 32 and int(base, 16) >= 0
    other = make_rider(keyring, card_id=2002)
    changed = [tap_of(rider, NOW_S + 1, 0), tap_of(rider, NOW_S, 1), tap_of(other, NOW_S, 0)]
    assert len({base, *changed}) == 4


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01", bytes(CODE_BYTES - 1), bytes(CODE_BYTES + 1)],
    ids=["empty", "one-byte", "one-short", "one-long"],
)
def test_a_code_of_the_wrong_length_is_malformed(data: bytes) -> None:
    with pytest.raises(TapRejected) as caught:
        parse_code(data)
    assert caught.value.code == "code_malformed"


@pytest.mark.parametrize("position", [0, 1], ids=["code-version", "credential-version"])
def test_a_code_with_an_unknown_version_byte_is_malformed(rider: Rider, position: int) -> None:
    data = bytearray(decode_code_text(rider.code()))
    data[position] = 9
    with pytest.raises(TapRejected, match="version 9") as caught:
        parse_code(bytes(data))
    assert caught.value.code == "code_malformed"


def _scan_png(text: str) -> list[str]:
    png = io.BytesIO()
    segno.make(text, error="m").save(png, kind="png", scale=4, border=4)
    image = np.asarray(Image.open(io.BytesIO(png.getvalue())).convert("L"))
    return [result.text for result in zxingcpp.read_barcodes(image)]


@pytest.mark.parametrize("nonce_index", [0, 1, 2])
def test_a_qr_image_decoded_by_zxing_verifies(
    keyring: PlatformKeyring, rider: Rider, nonce_index: int
) -> None:
    """Render the code as a PNG, read it back with an independent decoder, verify it."""
    text = rider.code(NOW_S, nonce_index)
    assert _scan_png(text) == [text]
    tap = verify_tap(_scan_png(text)[0], keyring.public_keys(), NOW_S + 3, set())
    assert tap.card_id == rider.credential.card_id
