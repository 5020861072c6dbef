"""Base45 (RFC 9285): binary data as text in the QR alphanumeric character set.

A QR code in alphanumeric mode spends 5.5 bits per character, so base45 (3 characters
per 2 bytes) costs 8.25 bits per byte: almost the cost of byte mode, but the text comes
back from any scanner exactly as it went in (byte mode hands readers a character
decoding to guess). The EU digital COVID certificate uses it for the same reason.
"""

from __future__ import annotations

import numpy as np

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_ALPHABET_BYTES = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)
_NOT_BASE45 = 255
_VALUE_OF_BYTE = np.full(256, _NOT_BASE45, dtype=np.uint8)  # byte -> value, 255 if none
_VALUE_OF_BYTE[_ALPHABET_BYTES] = np.arange(len(ALPHABET), dtype=np.uint8)

# Every bus tap is encoded once (the phone) and decoded twice (reader and clearing), and
# a per-character Python loop cost as much as the tap's Ed25519 check; whole-array numpy
# steps do a 288-character code in a few microseconds.


def b45encode(data: bytes) -> str:
    """Each 2 bytes become 3 characters, a trailing single byte 2 (least significant first)."""
    full = len(data) - len(data) % 2
    pairs = np.frombuffer(data, dtype=">u2", count=full // 2).astype(np.uint32)
    digits = np.stack((pairs % 45, pairs // 45 % 45, pairs // 2025), axis=1).ravel()
    if full < len(data):
        digits = np.append(digits, (data[full] % 45, data[full] // 45))
    return _ALPHABET_BYTES[digits].tobytes().decode("ascii")


def b45decode(text: str) -> bytes:
    """The inverse of ``b45encode``; ValueError on a character outside the alphabet, a
    length of 3k+1, or a group whose value does not fit its bytes (e.g. "GGW")."""
    if len(text) % 3 == 1:
        raise ValueError(f"base45 length {len(text)} leaves a single character")
    values = _values(text)
    full = len(values) - len(values) % 3
    groups = values[:full].reshape(-1, 3) @ np.array((1, 45, 2025), dtype=np.uint32)
    too_large = np.flatnonzero(groups > 0xFFFF)
    if too_large.size:
        pos = int(too_large[0]) * 3
        group = text[pos : pos + 3]
        raise ValueError(f"base45 group {group!r} is {groups[too_large[0]]}, too large for 2 bytes")
    out = groups.astype(">u2").tobytes()
    if full < len(values):
        number = int(values[full]) + int(values[full + 1]) * 45
        if number > 0xFF:
            raise ValueError(f"base45 group {text[full:]!r} is {number}, too large for 1 byte")
        out += bytes((number,))
    return out


def _values(text: str) -> np.ndarray:
    """Each character's value (uint32), or ValueError naming the first one not in the alphabet."""
    try:
        raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        raw = None
    values = None if raw is None else _VALUE_OF_BYTE[raw]
    if values is None or (values == _NOT_BASE45).any():
        bad = next(char for char in text if char not in ALPHABET)
        raise ValueError(f"base45 character {bad!r} is not in the alphabet") from None
    return values.astype(np.uint32)
