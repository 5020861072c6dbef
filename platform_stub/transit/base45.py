"""Base45 (RFC 9285): binary data as text in the QR alphanumeric character set.

A QR code in alphanumeric mode spends 5.5 bits per character, so base45 (3 characters
per 2 bytes) costs 8.25 bits per byte: almost the cost of byte mode, but the text comes
back from any scanner exactly as it went in (byte mode hands readers a character
decoding to guess). The EU digital COVID certificate uses it for the same reason.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {char: value for value, char in enumerate(ALPHABET)}


def b45encode(data: bytes) -> str:
    """Each 2 bytes become 3 characters, a trailing single byte 2 (least significant first)."""
    chars: list[str] = []
    full = len(data) - len(data) % 2
    for pos in range(0, full, 2):
        number = (data[pos] << 8) | data[pos + 1]
        chars += (ALPHABET[number % 45], ALPHABET[number // 45 % 45], ALPHABET[number // 2025])
    if full < len(data):
        chars += (ALPHABET[data[full] % 45], ALPHABET[data[full] // 45])
    return "".join(chars)


def b45decode(text: str) -> bytes:
    """The inverse of ``b45encode``; ValueError on a character outside the alphabet, a
    length of 3k+1, or a group whose value does not fit its bytes (e.g. "GGW").

    Every bus tap is decoded twice (reader and clearing), so this is one flat loop
    over precomputed values rather than a function call per group."""
    if len(text) % 3 == 1:
        raise ValueError(f"base45 length {len(text)} leaves a single character")
    values = _values(text)
    out = bytearray()
    full = len(values) - len(values) % 3
    for pos in range(0, full, 3):
        number = values[pos] + values[pos + 1] * 45 + values[pos + 2] * 2025
        if number > 0xFFFF:
            group = text[pos : pos + 3]
            raise ValueError(f"base45 group {group!r} is {number}, too large for 2 bytes")
        out.append(number >> 8)
        out.append(number & 0xFF)
    if full < len(values):
        number = values[full] + values[full + 1] * 45
        if number > 0xFF:
            raise ValueError(f"base45 group {text[full:]!r} is {number}, too large for 1 byte")
        out.append(number)
    return bytes(out)


def _values(text: str) -> list[int]:
    try:
        return [_VALUE[char] for char in text]
    except KeyError as exc:
        raise ValueError(f"base45 character {exc.args[0]!r} is not in the alphabet") from None
