"""Lost taps: an acknowledged tap without an outcome row in the platform is counted lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loadtests.taps import TapLedger, check_taps
from platform_stub import Platform
from platform_stub.clearing import UploadedTap
from platform_stub.service import luhn_complete
from platform_stub.transit import (
    BusReader,
    Credential,
    derive_private_key,
    encode_code_text,
    public_key_bytes,
    sign_code,
)

RIDER_SEED = b"loadtest lost-tap test riders.."


def cleared_reader(db_url: str, taps: int) -> str:
    """A reader whose first ``taps`` taps were uploaded and cleared; its id."""
    platform = Platform.open(db_url)
    try:
        operator = platform.transit.register_operator("bus company")
        registration = platform.transit.register_reader(operator.token, "bus")
        rider = platform.register_resident("rider")
        platform.bind_card(rider.token, luhn_complete("622202000000077"), "ICBC")
        platform.top_up(rider.token, 10_000, "t1")
        key = derive_private_key(RIDER_SEED, 1)
        credential = Credential.from_bytes(
            platform.transit.claim_bus_card(rider.token, public_key_bytes(key))
        )
        reader = BusReader(f"R{registration.participant_id}",
                           platform.transit.public_keys(registration.token))
        now_s = int(time.time())
        for _ in range(taps):
            assert reader.scan(encode_code_text(sign_code(credential, key, now_s)), now_s).accepted
        batch = reader.next_batch()
        uploaded = [UploadedTap(t.seq, t.code_text, t.scanned_at_s) for t in batch.taps]
        platform.transit.upload_taps(registration.token, batch.batch_id, uploaded)
        return reader.reader_id
    finally:
        platform.close()


@pytest.fixture
def reader_with_three_taps(tmp_path: Path) -> tuple[str, str]:
    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    return db_url, cleared_reader(db_url, 3)


def test_every_acknowledged_tap_with_its_outcome_row_is_not_lost(
    reader_with_three_taps: tuple[str, str],
) -> None:
    db_url, reader_id = reader_with_three_taps
    check = check_taps(db_url, {reader_id: {"accepted": 4, "uploaded": 3}})
    assert check.ok
    assert (check.accepted, check.uploaded, check.outcome_rows, check.lost) == (4, 3, 3, 0)


def test_an_acknowledged_tap_without_a_row_is_lost(
    reader_with_three_taps: tuple[str, str],
) -> None:
    db_url, reader_id = reader_with_three_taps
    check = check_taps(db_url, {reader_id: {"accepted": 5, "uploaded": 5}, "R999": {
        "accepted": 1, "uploaded": 1}})
    assert not check.ok
    assert check.lost == 3
    assert check.lost_by_reader == {reader_id: 2, "R999": 1}
    assert check.as_dict()["ok"] is False


def test_rows_past_the_acknowledged_taps_are_unacknowledged_not_lost(
    reader_with_three_taps: tuple[str, str],
) -> None:
    db_url, reader_id = reader_with_three_taps
    check = check_taps(db_url, {reader_id: {"accepted": 3, "uploaded": 1}})
    assert (check.ok, check.unacknowledged) == (True, 2)


def test_the_ledger_counts_accepted_and_acknowledged_taps_per_reader() -> None:
    ledger = TapLedger()
    for _ in range(3):
        ledger.accepted("R7")
    ledger.uploaded("R7", 2)
    assert ledger.snapshot() == {"R7": {"accepted": 3, "uploaded": 2}}
    with pytest.raises(AssertionError):
        ledger.uploaded("R7", 2)  # batches are acknowledged in seq order, once
