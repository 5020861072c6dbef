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


@pytest.mark.parametrize(
    "code",
    [
        emv.MerchantCode("M000000042", "Stall One", "Wuhan", "5812", 350),
        emv.MerchantCode("M000000007", "Noodles", "Xian", "5814", None),
        emv.MerchantCode("M123456789", "热干面", "武汉", "5499", 123456),
    ],
)
def test_an_independent_emv_parser_reads_our_payloads_the_same_way(code) -> None:
    """brcode (a Pix/EMV MPM parser from PyPI, not ours) agrees field by field."""
    from brcode.brcode import QR

    payload = emv.encode(code)
    theirs = QR(payload)
    assert (theirs.PFI_value, theirs.PIM_value) == ("01", "12" if code.dynamic else "11")
    assert (theirs.MAI_GUI_value, theirs.MAI_CHAVEPIX_value) == (emv.PLATFORM_GUID,
                                                                 code.merchant_id)
    assert (theirs.MCC_value, theirs.TC_value, theirs.CC_value) == (code.mcc, "156", "CN")
    assert (theirs.MN_value, theirs.MC_value) == (code.name, code.city)
    assert theirs.CRC_value == payload[-4:]
    if code.dynamic:
        assert theirs.TA_value == f"{code.amount_fen // 100}.{code.amount_fen % 100:02d}"
