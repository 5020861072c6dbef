"""Base45 against RFC 9285: the QR text encoding of offline codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_stub.transit import b45decode, b45encode

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
