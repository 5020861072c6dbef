"""Fuzzing the parsers that read untrusted text (collection codes, offline codes,
scenario files) and the request size limit."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import httpx
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_stub import emv
from platform_stub.body_limit import BATCH_PATH, BATCH_REQUEST_BYTES_MAX, REQUEST_BYTES_MAX
from platform_stub.exceptions import QrInvalid, ScenarioError, TapRejected
from platform_stub.transit import (
    CODE_BYTES,
    CODE_CHARS,
    PlatformKeyring,
    decode_code_text,
    parse_code,
    verify_tap,
)
from scenarios.loader import load_scenario
from tests.transit.riders import NOW_S, PLATFORM_SEED, make_rider

EXAMPLES = 300
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
KEYRING = PlatformKeyring.from_seed(PLATFORM_SEED)
RIDER = make_rider(KEYRING)
VALID_CODE = RIDER.code()
VALID_PAYLOAD = emv.encode(emv.MerchantCode("M000123", "早餐店", "武汉", "5812", 1234))
BASELINE = Path(__file__).parents[2] / "scenarios" / "baseline.toml"
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _mutated(text: str, alphabet: str | None = None) -> st.SearchStrategy[str]:
    """The valid text with one stretch replaced, kept or cut."""
    chars = st.text(alphabet=alphabet, max_size=12) if alphabet else st.text(max_size=12)
    return st.tuples(st.integers(0, len(text)), st.integers(0, 12), chars).map(
        lambda t: text[: t[0]] + t[2] + text[t[0] + t[1]:])


def _with_crc(body: str) -> str:
    """A payload whose CRC is right, so the fuzzing reaches the field parser."""
    head = body + "6304"
    return head + f"{emv.crc16_ccitt_false(head.encode()):04X}"


@FUZZ
@given(st.one_of(st.text(max_size=600), _mutated(VALID_PAYLOAD),
                 _mutated(VALID_PAYLOAD[:-8]).map(_with_crc)))
def test_emv_decode_raises_only_qr_invalid(payload: str) -> None:
    try:
        code = emv.decode(payload)
    except QrInvalid:
        return
    assert emv.decode(emv.encode(code)) == code  # what it accepts, it can write back


@FUZZ
@given(st.one_of(st.text(max_size=CODE_CHARS + 4),
                 st.text(alphabet=BASE45, min_size=CODE_CHARS, max_size=CODE_CHARS),
                 _mutated(VALID_CODE, BASE45)))
def test_verify_tap_raises_only_tap_rejected(code_text: str) -> None:
    try:
        verify_tap(code_text, KEYRING.public_keys(), NOW_S, set())
    except TapRejected:
        return
    assert code_text == VALID_CODE  # nothing but the genuine code verifies


@FUZZ
@given(st.one_of(st.binary(max_size=CODE_BYTES + 4),
                 st.binary(min_size=CODE_BYTES, max_size=CODE_BYTES),
                 st.integers(0, CODE_BYTES - 1).flatmap(
                     lambda i: st.integers(0, 255).map(lambda b: (i, b)))
                 .map(lambda ib: _flip(decode_code_text(VALID_CODE), *ib))))
def test_parse_code_raises_only_tap_rejected(data: bytes) -> None:
    try:
        parse_code(data)
    except TapRejected:
        return
    assert len(data) == CODE_BYTES


def _flip(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1:]


TOML_VALUES = st.recursive(
    st.none().map(lambda _: "") | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=4),
    max_leaves=10)
BASELINE_KEYS = st.sampled_from(["name", "seed", "days", "extends", "population", "agents",
                                 "platform", "transit", "residents", "merchants"])


def _baseline_with(key: str, value: object) -> str:
    return BASELINE.read_text() + "\n" + tomli_w.dumps({key: value})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=300),
    st.dictionaries(BASELINE_KEYS | st.text(min_size=1, max_size=10), TOML_VALUES,
                    max_size=6).map(tomli_w.dumps),
    st.tuples(st.text(min_size=1, max_size=10), TOML_VALUES).map(lambda kv: _baseline_with(*kv)),
    _mutated(BASELINE.read_text() if BASELINE.exists() else "")))
def test_scenario_loader_raises_only_scenario_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.toml"
        path.write_text(text, encoding="utf-8")
        with contextlib.suppress(ScenarioError):  # the one documented refusal
            load_scenario(path)


SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_a_body_over_the_limit_gets_413(live_server: str) -> None:
    for path, limit in (("/v1/payments", REQUEST_BYTES_MAX), (BATCH_PATH, BATCH_REQUEST_BYTES_MAX)):
        resp = httpx.post(f"{live_server}{path}", content=b" " * (limit + 1), timeout=10,
                          headers={"Content-Type": "application/json"})
        assert resp.status_code == 413 and resp.json()["code"] == "request_too_large", path


@SQLITE_ONLY
def test_a_chunked_body_over_the_limit_gets_413(live_server: str) -> None:
    chunks = (b" " * 4096 for _ in range(REQUEST_BYTES_MAX // 4096 + 2))
    resp = httpx.post(f"{live_server}/v1/payments", content=chunks, timeout=10,
                      headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["code"] == "request_too_large"
