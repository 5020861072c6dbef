"""Shared transit fixtures: a seeded platform keyring, a rider, a reader."""

from __future__ import annotations

import pytest

from platform_stub.transit import BusReader, PlatformKeyring
from tests.transit.riders import DAY_S, NOW_S, PLATFORM_SEED, Rider, make_rider


@pytest.fixture
def keyring() -> PlatformKeyring:
    return PlatformKeyring.from_seed(PLATFORM_SEED, now_s=NOW_S - 30 * DAY_S)


@pytest.fixture
def rider(keyring: PlatformKeyring) -> Rider:
    return make_rider(keyring)


@pytest.fixture
def reader(keyring: PlatformKeyring) -> BusReader:
    return BusReader("bus-7/front", keyring.public_keys(NOW_S))
