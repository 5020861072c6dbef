"""Base45 against RFC 9285: the QR text encoding of offline codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_stub.transit import b45decode, b45encode
from platform_stub.transit.base45 import b45decode_many

# RFC 9285 sections 4.3 and 4.4.
RFC_VECTORS = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
    (b"", ""),
]


@pytest.mark.parametrize(("data", "text"), RFC_VECTORS)
def test_encodes_the_rfc_9285_examples(data: bytes, text: str) -> None:
    assert b45encode(data) == text


@pytest.mark.parametrize(("data", "text"), RFC_VECTORS)
def test_decodes_the_rfc_9285_examples(data: bytes, text: str) -> None:
    assert b45decode(text) == data


@pytest.mark.parametrize(
    "text",
    ["GGW", "A", "BB8A", "bb8", "BB8\n", "ZZZ", "A:"],
    ids=["over-65535", "one-char", "3k+1-chars", "lower-case", "newline", "ZZZ", "pair-over-255"],
)
def test_refuses_text_rfc_9285_calls_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        b45decode(text)


@given(st.binary(max_size=300))
def test_round_trips_any_bytes(data: bytes) -> None:
    assert b45decode(b45encode(data)) == data


def _decoded_alone(text: str, length: int) -> bytes | None:
    if len(text) != length:
        return None
    try:
        return b45decode(text)
    except ValueError:
        return None


@given(
    st.integers(min_value=1, max_value=40).filter(lambda n: n % 3 != 1),
    st.lists(st.text(alphabet="0123456789ABCGW:$%* a\u00e9", max_size=42), max_size=12),
    st.lists(st.binary(min_size=26, max_size=26), max_size=12),
)
def test_decoding_many_at_once_matches_decoding_each(
    length: int, junk: list[str], data: list[bytes]
) -> None:
    """Good texts of the length decode as alone; anything else (another length, a
    character or group out of range, lower case) is None, never a wrong result."""
    good = [b45encode(d[: length // 3 * 2 + (length % 3 == 2)]) for d in data]
    mixed = [t for pair in zip(good, junk, strict=False) for t in pair]
    texts = mixed + good[len(junk) :] + junk[len(good) :]
    assert b45decode_many(texts, length) == [_decoded_alone(t, length) for t in texts]
    assert all(b is not None for b in b45decode_many(good, length))
