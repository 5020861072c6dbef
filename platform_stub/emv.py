"""EMVCo merchant-presented QR payloads: the printed collection code at a stall.

A payload is a run of TLV fields (two-digit tag, two-digit length counted in
characters, value) ending with tag 63, a CRC-16/CCITT-FALSE over the UTF-8 of
everything before the CRC value, including "6304". Static codes (initiation
"11") carry no amount; dynamic codes ("12") carry tag 54.
"""

from __future__ import annotations

import functools
import io

import segno

from platform_stub.exceptions import QrInvalid
from platform_stub.frozen import frozen

PLATFORM_GUID = "city.cashless.pay"
CURRENCY_CNY = "156"
COUNTRY_CN = "CN"
PAYLOAD_CHARS_MAX = 512
FIELD_CHARS_MAX = 99
DECODED_CODES_MAX = 65_536  # printed codes repeat all day: decode once (refusals: every time)
AMOUNT_FEN_MAX = 99_999_999_99  # tag 54 holds at most 13 characters: 9,999,999,999.99 yuan


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xor-out.
    Table-driven: every payment decodes a collection code, so this is a hot path."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFF00) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


@frozen
class MerchantCode:
    merchant_id: str
    name: str
    city: str
    mcc: str = "5812"
    amount_fen: int | None = None

    @property
    def dynamic(self) -> bool:
        return self.amount_fen is not None


def _tlv(tag: str, value: str) -> str:
    if len(value) > FIELD_CHARS_MAX:
        raise QrInvalid("qr_malformed", f"field {tag} longer than {FIELD_CHARS_MAX} characters")
    return f"{tag}{len(value):02d}{value}"


def encode(code: MerchantCode) -> str:
    """The payload string a QR image carries."""
    account = _tlv("00", PLATFORM_GUID) + _tlv("01", code.merchant_id)
    parts = [
        _tlv("00", "01"),
        _tlv("01", "12" if code.dynamic else "11"),
        _tlv("26", account),
        _tlv("52", code.mcc),
        _tlv("53", CURRENCY_CNY),
    ]
    if code.dynamic:
        parts.append(_tlv("54", f"{code.amount_fen // 100}.{code.amount_fen % 100:02d}"))
    parts += [_tlv("58", COUNTRY_CN), _tlv("59", code.name), _tlv("60", code.city)]
    body = "".join(parts) + "6304"
    return body + f"{crc16_ccitt_false(body.encode()):04X}"


def parse_fields(payload: str) -> dict[str, str]:
    """Split a TLV string into tag -> value, refusing truncated or repeated tags."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(payload):
        head = payload[pos : pos + 4]
        if len(head) < 4 or not head.isdigit():
            raise QrInvalid("qr_malformed", f"bad TLV header at character {pos}")
        tag, length = head[:2], int(head[2:])
        value = payload[pos + 4 : pos + 4 + length]
        if len(value) != length:
            raise QrInvalid("qr_malformed", f"field {tag} is truncated")
        if tag in fields:
            raise QrInvalid("qr_malformed", f"field {tag} repeated")
        fields[tag] = value
        pos += 4 + length
    return fields


@functools.lru_cache(maxsize=DECODED_CODES_MAX)
def decode(payload: str) -> MerchantCode:
    """Parse and validate a payload; every failure is a ``QrInvalid`` with its reason."""
    if not isinstance(payload, str) or not 0 < len(payload) <= PAYLOAD_CHARS_MAX:
        raise QrInvalid("qr_malformed", f"payload must be 1-{PAYLOAD_CHARS_MAX} characters")
    _check_crc(payload)
    fields = parse_fields(payload[:-8])
    if fields.get("00") != "01" or fields.get("01") not in ("11", "12"):
        raise QrInvalid("qr_malformed", "not an EMVCo merchant-presented payload")
    if fields.get("53") != CURRENCY_CNY:
        raise QrInvalid("qr_malformed", f"currency must be {CURRENCY_CNY}")
    account = parse_fields(fields.get("26", ""))
    if account.get("00") != PLATFORM_GUID or not account.get("01"):
        raise QrInvalid("qr_malformed", "no merchant account of this platform in tag 26")
    return MerchantCode(
        merchant_id=account["01"],
        name=fields.get("59", ""),
        city=fields.get("60", ""),
        mcc=fields.get("52", ""),
        amount_fen=_amount_fen(fields),
    )


def _check_crc(payload: str) -> None:
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise QrInvalid("qr_malformed", "payload does not end with a CRC field (6304)")
    expected = f"{crc16_ccitt_false(payload[:-4].encode()):04X}"
    if payload[-4:].upper() != expected:
        raise QrInvalid("qr_crc_mismatch", f"CRC {payload[-4:]} does not match {expected}")


def _amount_fen(fields: dict[str, str]) -> int | None:
    if fields["01"] == "11":
        return None
    text = fields.get("54", "")
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or len(frac) > 2 or (frac and not frac.isdigit()):
        raise QrInvalid("qr_malformed", f"amount {text!r} is not a decimal yuan amount")
    return int(whole) * 100 + int(frac.ljust(2, "0") or 0)


def render_png(payload: str, scale: int = 6) -> bytes:
    """The payload as a QR code PNG (error level M, quiet zone of four modules)."""
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
