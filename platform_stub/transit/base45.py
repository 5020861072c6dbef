"""Base45 (RFC 9285): binary data as text in the QR alphanumeric character set.

A QR code in alphanumeric mode spends 5.5 bits per character, so base45 (3 characters
per 2 bytes) costs 8.25 bits per byte: almost the cost of byte mode, but the text comes
back from any scanner exactly as it went in (byte mode hands readers a character
decoding to guess). The EU digital COVID certificate uses it for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def b45decode_many(texts: Sequence[str], length: int) -> list[bytes | None]:
    """``b45decode`` of every text of ``length`` characters in one numpy product, for
    clearing's batches (the per-call cost of numpy is most of a single decode). None
    where a text is not decoded here (another length, a character or group out of
    range, or ``length`` 0): ``b45decode`` of it gives the result or the reason."""
    if length % 3 == 1 or length == 0 or not texts:
        return [None] * len(texts)
    fits = [isinstance(t, str) and len(t) == length and t.isascii() for t in texts]
    joined = "".join(t for t, ok in zip(texts, fits, strict=True) if ok).encode("ascii")
    values = np.frombuffer(joined.translate(_VALUE_OF_BYTE), dtype=np.uint8).reshape(-1, length)
    full = length - length % 3
    groups = values[:, :full].reshape(len(values), full // 3, 3).astype(np.uint32) @ _WEIGHTS
    good = (values != _NOT_BASE45).all(axis=1) & (groups <= 0xFFFF).all(axis=1)
    rows = groups.astype(">u2")
    tails: list[bytes] = [b""] * len(values)
    if full < length:
        numbers = values[:, full].astype(np.uint32) + values[:, full + 1].astype(np.uint32) * 45
        good &= numbers <= 0xFF
        tails = [bytes((n,)) for n in (numbers & 0xFF).tolist()]
    decoded = iter(
        row.tobytes() + tail if ok else None
        for row, tail, ok in zip(rows, tails, good.tolist(), strict=True)
    )
    return [next(decoded) if ok else None for ok in fits]


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
