"""Collection codes: EMVCo payloads, their CRC, and real QR images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import segno
import zxingcpp
from PIL import Image

from platform_stub import emv
from platform_stub.exceptions import QrInvalid


def test_crc_matches_the_published_check_value() -> None:
    assert emv.crc16_ccitt_false(b"123456789") == 0x29B1


@pytest.mark.parametrize("amount_fen", [None, 350, 1, 123456])
def test_payload_round_trips(amount_fen: int | None) -> None:
    code = emv.MerchantCode("M000000042", "早餐铺", "武汉", "5812", amount_fen)
    assert emv.decode(emv.encode(code)) == code


def test_lengths_count_characters_not_bytes() -> None:
    payload = emv.encode(emv.MerchantCode("M1", "热干面", "武汉"))
    assert emv.parse_fields(payload[:-8])["59"] == "热干面"
    assert "5903热干面" in payload


def test_a_changed_character_fails_the_crc() -> None:
    payload = emv.encode(emv.MerchantCode("M000000042", "Stall", "Wuhan"))
    forged = payload.replace("M000000042", "M000000043")
    with pytest.raises(QrInvalid) as caught:
        emv.decode(forged)
    assert caught.value.code == "qr_crc_mismatch"


@pytest.mark.parametrize("payload", ["", "hello", "0002016304ABCD", "00020101021163041234" * 30])
def test_malformed_payloads_get_a_stable_code(payload: str) -> None:
    with pytest.raises(QrInvalid) as caught:
        emv.decode(payload)
    assert caught.value.code in {"qr_malformed", "qr_crc_mismatch"}


def test_truncated_field_is_malformed_even_with_a_valid_crc() -> None:
    body = "000201010211" + "2699" + "0017city" + "6304"
    payload = body + f"{emv.crc16_ccitt_false(body.encode()):04X}"
    with pytest.raises(QrInvalid, match="truncated"):
        emv.decode(payload)


def test_qr_image_decodes_to_the_same_payload_with_an_independent_decoder() -> None:
    payload = emv.encode(emv.MerchantCode("M000000042", "老王热干面", "武汉", amount_fen=350))
    png = io.BytesIO()
    segno.make(payload, error="m").save(png, kind="png", scale=4, border=4)
    image = np.asarray(Image.open(io.BytesIO(png.getvalue())).convert("L"))
    results = zxingcpp.read_barcodes(image)
    assert [r.text for r in results] == [payload]
    assert emv.decode(results[0].text).amount_fen == 350
