"""A code signed and checked ahead (another core) and then admitted by the reader gets
the answer a scan of the same code gets, refusals included."""

from __future__ import annotations

import pytest

from platform_stub.transit import BusReader, PlatformKeyring, RiderKey, ScanResult
from platform_stub.transit.ride_ahead import (
    ReaderSettings,
    admit_checked,
    sign_and_check,
    sign_and_check_many,
)
from platform_stub.transit.verify import VerifiedTap
from tests.transit.riders import NOW_S, Rider, make_rider

NONCE = bytes(range(8))


def _settings(reader: BusReader) -> ReaderSettings:
    return dict(reader.public_keys), reader.skew_s, reader.max_age_s


def _ahead(reader: BusReader, rider: Rider, now_s: int) -> ScanResult:
    """Sign and check at ``now_s`` as a worker would, then admit."""
    key = RiderKey.of(rider.private_key)
    checked = sign_and_check(rider.credential.to_bytes(), key.secret_key, now_s, NONCE,
                             _settings(reader))
    return admit_checked(reader, checked, now_s)


def _scan(reader: BusReader, rider: Rider, code_at_s: int, now_s: int) -> ScanResult:
    return reader.scan(rider.code(code_at_s, int.from_bytes(NONCE, "big")), now_s)


def _seen(result: ScanResult) -> tuple:
    tap = result.tap
    return (result.reason, result.verified,
            None if tap is None else (tap.tap_id, tap.code_text, tap.scanned_at_s, tap.seq))


def test_a_checked_code_is_the_code_the_rider_shows(keyring: PlatformKeyring, rider: Rider) -> None:
    reader = BusReader("bus-1/front", keyring.public_keys(NOW_S))
    text, passed, _ = sign_and_check(rider.credential.to_bytes(),
                                     RiderKey.of(rider.private_key).secret_key, NOW_S, NONCE,
                                     _settings(reader))
    assert passed
    assert text == rider.code(NOW_S, int.from_bytes(NONCE, "big"))


@pytest.mark.parametrize(
    ("expires_in_s", "reason"),
    [(3_600, None), (1, None), (0, "credential_expired"), (-60, "credential_expired")],
)
def test_ahead_and_at_the_ride_agree(
    keyring: PlatformKeyring, expires_in_s: int, reason: str | None
) -> None:
    """The phone signs at the time the reader scans (a worker does both at ``now_s``),
    so what can differ ahead is the credential: valid, or expired by the ride."""
    rider = make_rider(keyring, expires_at_s=NOW_S + expires_in_s)
    here = BusReader("bus-1/front", keyring.public_keys(NOW_S))
    there = BusReader("bus-1/front", keyring.public_keys(NOW_S))
    scanned, admitted = _scan(here, rider, NOW_S, NOW_S), _ahead(there, rider, NOW_S)
    assert scanned.reason == admitted.reason == reason
    assert _seen(scanned) == _seen(admitted)


def test_a_credential_from_outside_the_readers_ring_is_refused_ahead_too(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    stranger = PlatformKeyring.from_seed(b"some other platform's seed.....", now_s=NOW_S)
    reader = BusReader("bus-1/front", stranger.public_keys(NOW_S))
    assert _ahead(reader, rider, NOW_S).reason == "signature_invalid"
    assert reader.queued_taps == 0


def test_admit_refuses_a_denied_card_a_replay_and_a_full_queue(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    reader = BusReader("bus-1/front", keyring.public_keys(NOW_S), queue_taps_max=1)
    assert reader.apply_deny_delta(1, added=[rider.credential.card_id], removed=[]) == "applied"
    assert _ahead(reader, rider, NOW_S).reason == "card_revoked"
    assert reader.apply_deny_delta(2, added=[], removed=[rider.credential.card_id]) == "applied"
    assert _ahead(reader, rider, NOW_S).accepted
    assert _ahead(reader, rider, NOW_S).reason == "replayed_code"  # the same code again
    other = make_rider(keyring, card_id=2002)
    assert _ahead(reader, other, NOW_S).reason == "reader_queue_full"
    assert reader.queued_taps == 1


def test_many_rides_come_back_in_order_each_with_its_readers_settings(
    keyring: PlatformKeyring,
) -> None:
    riders = [make_rider(keyring, card_id=3000 + i) for i in range(3)]
    good = _settings(BusReader("a", keyring.public_keys(NOW_S)))
    stranger = PlatformKeyring.from_seed(b"some other platform's seed.....", now_s=NOW_S)
    bad = _settings(BusReader("b", stranger.public_keys(NOW_S)))
    rides = [
        (r.credential.to_bytes(), RiderKey.of(r.private_key).secret_key, NOW_S, NONCE, i % 2)
        for i, r in enumerate(riders)
    ]
    checked = sign_and_check_many(rides, [good, bad])
    assert [passed for _, passed, _ in checked] == [True, False, True]
    assert [VerifiedTap(*fields).card_id for _, passed, fields in checked if passed] == [3000, 3002]
    assert checked[1][2][0] == "signature_invalid"
