"""The platform keyring: deterministic keys, rotation, retirement, persistence."""

from __future__ import annotations

import json

import pytest

from platform_stub.transit import PlatformKeyring
from tests.transit.riders import DAY_S, NOW_S, PLATFORM_SEED, make_rider


def test_the_same_seed_gives_the_same_keys_and_credentials() -> None:
    first, second = (PlatformKeyring.from_seed(PLATFORM_SEED, NOW_S) for _ in range(2))
    assert first.public_keys() == second.public_keys()
    assert make_rider(first).credential == make_rider(second).credential


def test_public_keys_are_raw_32_bytes_by_small_int_id(keyring: PlatformKeyring) -> None:
    keyring.rotate(NOW_S)
    keys = keyring.public_keys()
    assert sorted(keys) == [0, 1]
    assert all(len(raw) == 32 for raw in keys.values())
    assert keys[0] != keys[1]


def test_rotation_makes_a_new_active_key(keyring: PlatformKeyring) -> None:
    assert keyring.active_key_id == 0
    assert keyring.rotate(NOW_S) == 1
    assert keyring.active_key_id == 1
    assert make_rider(keyring).credential.key_id == 1


def test_an_old_key_is_published_until_its_last_credential_expires(
    keyring: PlatformKeyring,
) -> None:
    make_rider(keyring, card_id=1, expires_at_s=NOW_S + DAY_S)
    make_rider(keyring, card_id=2, expires_at_s=NOW_S + 3 * DAY_S)
    keyring.rotate(NOW_S)
    assert keyring.retire_after_s(0) == NOW_S + 3 * DAY_S
    assert 0 in keyring.public_keys(NOW_S + 3 * DAY_S - 1)
    assert sorted(keyring.public_keys(NOW_S + 3 * DAY_S)) == [1]


def test_the_active_key_is_published_even_when_it_signed_nothing(
    keyring: PlatformKeyring,
) -> None:
    assert keyring.public_keys(NOW_S + 365 * DAY_S) == {0: keyring.public_keys()[0]}


def test_json_round_trip_keeps_keys_expiries_and_the_next_rotation(
    keyring: PlatformKeyring,
) -> None:
    make_rider(keyring, expires_at_s=NOW_S + DAY_S)
    keyring.rotate(NOW_S)
    restored = PlatformKeyring.from_json(keyring.to_json())
    assert restored.public_keys() == keyring.public_keys()
    assert restored.active_key_id == 1
    assert restored.retire_after_s(0) == NOW_S + DAY_S
    assert restored.rotate(NOW_S) == keyring.rotate(NOW_S) == 2
    assert restored.public_keys() == keyring.public_keys()


def test_json_with_a_key_that_is_not_its_seeds_is_refused(keyring: PlatformKeyring) -> None:
    doc = json.loads(keyring.to_json())
    doc["keys"][0]["private_key"] = "00" * 32
    with pytest.raises(ValueError, match="does not match the seed"):
        PlatformKeyring.from_json(json.dumps(doc))
