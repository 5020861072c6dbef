"""Base45 (RFC 9285): binary data as text in the QR alphanumeric character set.

A QR code in alphanumeric mode spends 5.5 bits per character, so base45 (3 characters
per 2 bytes) costs 8.25 bits per byte: almost the cost of byte mode, but the text comes
back from any scanner exactly as it went in (byte mode hands readers a character
decoding to guess). The EU digital COVID certificate uses it for the same reason.
"""

from __future__ import annotations

import numpy as np

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_NOT_BASE45 = 255
# byte -> its value for ``bytes.translate``; 255 (find's -1) for a byte outside the alphabet
_VALUE_OF_BYTE = bytes(ALPHABET.find(chr(b)) % 256 for b in range(256))
_CHAR_OF_VALUE = ALPHABET.encode("ascii").ljust(256, b"\0")  # value -> its character
_WEIGHTS = np.array((1, 45, 2025), dtype=np.uint32)

# Every bus tap is encoded once (the phone) and decoded twice (reader and clearing), and
# a per-character Python loop cost as much as the tap's Ed25519 check. Characters map to
# values with ``bytes.translate`` and groups are one small numpy product: a 288-character
# code decodes in about 7 us (a lookup-table index and a matrix product took 16).


def b45encode(data: bytes) -> str:
    """Each 2 bytes become 3 characters, a trailing single byte 2 (least significant first)."""
    full = len(data) - len(data) % 2
    pairs = np.frombuffer(data, dtype=">u2", count=full // 2).astype(np.uint32)
    digits = np.empty((pairs.size, 3), dtype=np.uint8)
    digits[:, 0] = pairs % 45
    digits[:, 1] = pairs // 45 % 45
    digits[:, 2] = pairs // 2025
    text = digits.tobytes()
    if full < len(data):
        text += bytes((data[full] % 45, data[full] // 45))
    return text.translate(_CHAR_OF_VALUE).decode("ascii")


def b45decode(text: str) -> bytes:
    """The inverse of ``b45encode``; ValueError on a character outside the alphabet, a
    length of 3k+1, or a group whose value does not fit its bytes (e.g. "GGW")."""
    if len(text) % 3 == 1:
        raise ValueError(f"base45 length {len(text)} leaves a single character")
    values = _values(text)
    full = len(values) - len(values) % 3
    triples = np.frombuffer(values, dtype=np.uint8, count=full).reshape(-1, 3)
    groups = np.dot(triples.astype(np.uint32), _WEIGHTS)
    if groups.size and groups.max() > 0xFFFF:
        first = int(np.flatnonzero(groups > 0xFFFF)[0])
        group = text[first * 3 : first * 3 + 3]
        raise ValueError(f"base45 group {group!r} is {groups[first]}, too large for 2 bytes")
    out = groups.astype(">u2").tobytes()
    if full < len(values):
        number = values[full] + values[full + 1] * 45
        if number > 0xFF:
            raise ValueError(f"base45 group {text[full:]!r} is {number}, too large for 1 byte")
        out += bytes((number,))
    return out


def _values(text: str) -> bytes:
    """Each character's value, or ValueError naming the first one not in the alphabet."""
    try:
        values = text.encode("ascii").translate(_VALUE_OF_BYTE)
    except UnicodeEncodeError:
        values = None
    if values is None or _NOT_BASE45 in values:
        bad = next(char for char in text if char not in ALPHABET)
        raise ValueError(f"base45 character {bad!r} is not in the alphabet") from None
    return values
