"""The bus reader: each refusal a rider can meet, the replay window, the bounded queue,
idempotent batches and the versioned deny list."""

from __future__ import annotations

import pytest

from platform_stub.transit import (
    CREDENTIAL_BYTES,
    BusReader,
    CredentialCache,
    PlatformKeyring,
    ScanResult,
    decode_code_text,
)
from tests.transit.riders import DAY_S, NOW_S, Rider, make_rider

_TIMESTAMP_AT = 1 + CREDENTIAL_BYTES  # the code's version byte, then the credential


def _refused(result: ScanResult) -> str | None:
    assert result.tap is None, "a refused scan must store nothing"
    return result.reason


def _fill(reader: BusReader, keyring: PlatformKeyring, taps: int, now_s: int = NOW_S) -> None:
    for card_id in range(1, taps + 1):
        assert reader.scan(make_rider(keyring, card_id).code(now_s), now_s).accepted


# --- accepted taps -----------------------------------------------------------------


def test_a_valid_code_is_accepted_and_queued_with_a_sequence_number(
    reader: BusReader, rider: Rider
) -> None:
    result = reader.scan(rider.code(), NOW_S + 2)
    assert result.accepted and result.reason is None
    tap = result.tap
    assert tap is not None and result.verified is not None
    assert (tap.reader_id, tap.scanned_at_s, tap.seq) == ("bus-7/front", NOW_S + 2, 1)
    assert (tap.code_text, tap.tap_id) == (rider.code(), result.verified.tap_id)
    assert reader.queued_taps == 1


def test_a_binary_scan_is_stored_as_the_same_text(reader: BusReader, rider: Rider) -> None:
    tap = reader.scan(decode_code_text(rider.code()), NOW_S).tap
    assert tap is not None and tap.code_text == rider.code()


# --- one test per refusal ------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    ["", "hello bus", "%" * 288, b"\x00" * 192, b"\xff\xfe garbage"],
    ids=["empty", "short-text", "bad-base45", "zero-bytes", "garbage-bytes"],
)
def test_garbage_is_code_malformed(reader: BusReader, code: str | bytes) -> None:
    assert _refused(reader.scan(code, NOW_S)) == "code_malformed"


@pytest.mark.parametrize("cut", [1, 64, 191])
def test_truncated_bytes_are_code_malformed(reader: BusReader, rider: Rider, cut: int) -> None:
    data = decode_code_text(rider.code())
    assert _refused(reader.scan(data[:cut], NOW_S)) == "code_malformed"
    assert _refused(reader.scan(rider.code()[: cut + 1], NOW_S)) == "code_malformed"


def test_a_credential_signed_by_a_key_outside_the_ring_is_signature_invalid(
    reader: BusReader,
) -> None:
    """A forger with its own 'platform' key, reusing key id 0."""
    forger = PlatformKeyring.from_seed(b"a forger's own platform key seed")
    assert _refused(reader.scan(make_rider(forger).code(), NOW_S)) == "signature_invalid"


def test_a_code_signed_by_another_riders_key_is_signature_invalid(
    keyring: PlatformKeyring, reader: BusReader, rider: Rider
) -> None:
    """Someone copies a rider's credential and signs codes with their own key."""
    thief = decode_code_text(make_rider(keyring, card_id=6666).code())
    forged = thief[:1] + rider.credential.to_bytes() + thief[_TIMESTAMP_AT:]
    assert _refused(reader.scan(forged, NOW_S)) == "signature_invalid"


def test_a_tampered_timestamp_is_signature_invalid(reader: BusReader, rider: Rider) -> None:
    """An old screenshot with its time field rewritten to now."""
    data = bytearray(decode_code_text(rider.code(NOW_S - 3600)))
    data[_TIMESTAMP_AT : _TIMESTAMP_AT + 4] = NOW_S.to_bytes(4, "big")
    assert _refused(reader.scan(bytes(data), NOW_S)) == "signature_invalid"


def test_an_expired_credential_is_credential_expired(
    keyring: PlatformKeyring, reader: BusReader
) -> None:
    lapsed = make_rider(keyring, expires_at_s=NOW_S)
    assert _refused(reader.scan(lapsed.code(NOW_S), NOW_S)) == "credential_expired"
    assert reader.scan(lapsed.code(NOW_S - 1), NOW_S - 1).accepted


def test_a_code_older_than_max_age_is_code_expired(reader: BusReader, rider: Rider) -> None:
    assert _refused(reader.scan(rider.code(NOW_S - 61), NOW_S)) == "code_expired"


def test_a_code_from_beyond_the_clock_skew_is_code_expired(reader: BusReader, rider: Rider) -> None:
    assert _refused(reader.scan(rider.code(NOW_S + 31), NOW_S)) == "code_expired"
    assert reader.scan(rider.code(NOW_S + 30), NOW_S).accepted


def test_a_card_revoked_by_a_deny_delta_is_card_revoked(reader: BusReader, rider: Rider) -> None:
    card_id = rider.credential.card_id
    assert reader.apply_deny_delta(1, added=[card_id], removed=[]) == "applied"
    assert _refused(reader.scan(rider.code(NOW_S, 0), NOW_S)) == "card_revoked"
    assert reader.apply_deny_delta(2, added=[], removed=[card_id]) == "applied"
    assert reader.scan(rider.code(NOW_S, 1), NOW_S).accepted


def test_the_same_code_twice_at_one_reader_is_replayed_code(
    reader: BusReader, rider: Rider
) -> None:
    code = rider.code()
    assert reader.scan(code, NOW_S).accepted
    assert _refused(reader.scan(code, NOW_S + 20)) == "replayed_code"
    assert reader.queued_taps == 1
    assert reader.scan(rider.code(NOW_S, nonce_index=1), NOW_S + 20).accepted


def test_a_replay_at_another_reader_is_left_to_clearing(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    """Readers share nothing offline; the same tap id reaches clearing twice and is
    charged once there."""
    front, back = (BusReader(door, keyring.public_keys()) for door in ("bus-7/front", "bus-7/back"))
    taps = [door.scan(rider.code(), NOW_S).tap for door in (front, back)]
    assert taps[0] is not None and taps[1] is not None
    assert taps[0].tap_id == taps[1].tap_id


def test_the_replay_window_is_bounded_by_age_and_by_size(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    reader = BusReader("r", keyring.public_keys(), replay_window_s=10, replay_ids_max=2)
    code = rider.code()
    assert reader.scan(code, NOW_S).accepted
    assert reader.scan(code, NOW_S + 10).reason == "replayed_code"
    assert reader.scan(code, NOW_S + 11).accepted  # forgotten: clearing catches this one
    _fill(reader, keyring, 2, NOW_S + 11)  # two more ids push the code's out
    assert reader.scan(code, NOW_S + 11).accepted


# --- key rotation ----------------------------------------------------------------------


def test_after_rotation_an_old_keys_credential_verifies_until_it_expires(
    keyring: PlatformKeyring,
) -> None:
    old = make_rider(keyring, card_id=1, expires_at_s=NOW_S + DAY_S)
    keyring.rotate(NOW_S)
    new = make_rider(keyring, card_id=2, expires_at_s=NOW_S + 7 * DAY_S)
    reader = BusReader("r", keyring.public_keys(NOW_S))
    assert (old.credential.key_id, new.credential.key_id) == (0, 1)
    assert reader.scan(old.code(), NOW_S).accepted
    assert reader.scan(new.code(), NOW_S).accepted
    last_s = NOW_S + DAY_S - 1
    reader.set_public_keys(keyring.public_keys(last_s))
    assert reader.scan(old.code(last_s), last_s).accepted
    assert reader.scan(old.code(last_s + 1), last_s + 1).reason == "credential_expired"


def test_a_code_under_a_retired_key_id_is_signature_invalid(keyring: PlatformKeyring) -> None:
    old = make_rider(keyring, card_id=1, expires_at_s=NOW_S + DAY_S)
    keyring.rotate(NOW_S)
    later_s = NOW_S + 2 * DAY_S
    reader = BusReader("r", keyring.public_keys(later_s))
    assert 0 not in keyring.public_keys(later_s)
    assert _refused(reader.scan(old.code(later_s), later_s)) == "signature_invalid"


# --- the bounded queue and batches -------------------------------------------------------


def test_the_queue_takes_exactly_its_limit_then_refuses_until_an_ack(
    keyring: PlatformKeyring,
) -> None:
    reader = BusReader("r", keyring.public_keys(), queue_taps_max=3, batch_taps_max=2)
    _fill(reader, keyring, 3)
    extra = make_rider(keyring, card_id=99)
    assert _refused(reader.scan(extra.code(), NOW_S)) == "reader_queue_full"
    assert reader.queued_taps == 3
    batch = reader.next_batch()
    assert batch is not None and reader.ack(batch.batch_id)
    assert reader.queued_taps == 1
    assert reader.scan(extra.code(), NOW_S).accepted


def test_a_refused_scan_for_a_full_queue_can_be_scanned_again_later(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    """A queue_full refusal is not remembered as seen: it is not a replay afterwards."""
    reader = BusReader("r", keyring.public_keys(), queue_taps_max=1)
    _fill(reader, keyring, 1)
    assert reader.scan(rider.code(), NOW_S).reason == "reader_queue_full"
    batch = reader.next_batch()
    assert batch is not None and reader.ack(batch.batch_id)
    assert reader.scan(rider.code(), NOW_S).accepted


def test_batches_are_bounded_and_oldest_first(keyring: PlatformKeyring) -> None:
    reader = BusReader("bus-9", keyring.public_keys(), batch_taps_max=2)
    _fill(reader, keyring, 5)
    sequences = []
    while (batch := reader.next_batch()) is not None:
        assert len(batch.taps) <= 2 and batch.reader_id == "bus-9"
        sequences.append([tap.seq for tap in batch.taps])
        assert batch.batch_id == f"bus-9/{batch.taps[0].seq}-{batch.taps[-1].seq}"
        assert reader.ack(batch.batch_id)
    assert sequences == [[1, 2], [3, 4], [5]]
    assert reader.queued_taps == 0


def test_an_unacked_batch_is_resent_identically_even_as_taps_arrive(
    keyring: PlatformKeyring,
) -> None:
    reader = BusReader("r", keyring.public_keys(), batch_taps_max=3)
    _fill(reader, keyring, 2)
    first = reader.next_batch()
    assert first is not None and len(first.taps) == 2
    assert reader.scan(make_rider(keyring, card_id=50).code(), NOW_S).accepted
    assert reader.next_batch() == first
    assert reader.next_batch() == first
    assert reader.ack(first.batch_id)
    second = reader.next_batch()
    assert second is not None and [tap.seq for tap in second.taps] == [3]


def test_ack_of_any_other_id_changes_nothing(keyring: PlatformKeyring) -> None:
    reader = BusReader("r", keyring.public_keys(), batch_taps_max=1)
    _fill(reader, keyring, 2)
    assert not reader.ack("r/1-1")  # not sent yet
    batch = reader.next_batch()
    assert batch is not None and reader.ack(batch.batch_id)
    assert not reader.ack(batch.batch_id)  # the platform confirmed twice
    assert reader.queued_taps == 1


def test_an_empty_reader_has_no_batch(reader: BusReader) -> None:
    assert reader.next_batch() is None


# --- the deny list -------------------------------------------------------------------------


def test_deny_deltas_apply_in_order_and_stale_ones_are_ignored(reader: BusReader) -> None:
    assert reader.apply_deny_delta(1, added=[1, 2], removed=[]) == "applied"
    assert reader.apply_deny_delta(2, added=[3], removed=[1]) == "applied"
    assert reader.apply_deny_delta(2, added=[1], removed=[]) == "stale"
    assert reader.apply_deny_delta(1, added=[9], removed=[]) == "stale"
    assert reader.deny_version == 2
    assert [reader.is_denied(card) for card in (1, 2, 3, 9)] == [False, True, True, False]


def test_a_gap_in_deny_versions_is_not_applied_and_a_full_list_repairs_it(
    reader: BusReader,
) -> None:
    assert reader.apply_deny_delta(1, added=[1], removed=[]) == "applied"
    assert reader.apply_deny_delta(3, added=[3], removed=[]) == "gap"
    assert reader.deny_version == 1 and not reader.is_denied(3)
    assert reader.load_deny_list(3, [2, 3])
    assert reader.deny_version == 3
    assert [reader.is_denied(card) for card in (1, 2, 3)] == [False, True, True]
    assert not reader.load_deny_list(2, [1])
    assert reader.apply_deny_delta(4, added=[1], removed=[]) == "applied"


def test_a_delta_that_adds_and_removes_one_card_is_refused(reader: BusReader) -> None:
    with pytest.raises(ValueError, match="both adds and removes"):
        reader.apply_deny_delta(1, added=[5], removed=[5])
    assert reader.deny_version == 0


# --- the reader's credential cache ---------------------------------------------------------


def test_the_reader_verifies_a_riders_credential_signature_once(
    keyring: PlatformKeyring, rider: Rider
) -> None:
    cache = CredentialCache()
    reader = BusReader("r", keyring.public_keys(), credential_cache=cache)
    for nonce_index in range(4):
        assert reader.scan(rider.code(NOW_S, nonce_index), NOW_S).accepted
    assert (cache.signature_checks, cache.hits) == (1, 3)
