"""Clearing offline taps: every tap ends in exactly one outcome, money moves once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from platform_stub import Platform
from platform_stub.clearing import CHINA_TZ, PROMO_ACCOUNT, Fares, UploadedTap
from platform_stub.exceptions import Forbidden, Rejected
from platform_stub.ledger import TransferRequest
from platform_stub.service import luhn_complete
from platform_stub.transit import (
    BusReader,
    Credential,
    derive_private_key,
    encode_code_text,
    public_key_bytes,
    sign_code,
)
from tests.transit.riders import NOW_S, PLATFORM_SEED, RIDER_SEED

FARES = Fares(fare_fen=200, transfer_discount_fen=100, transfer_window_s=5400)


@dataclass
class App:
    """A rider's phone: wallet token, rider key and the platform's credential."""

    token: str
    card_id: int
    credential: Credential
    seed_index: int

    def code(self, timestamp_s: int, nonce: int = 0) -> str:
        key = derive_private_key(RIDER_SEED, self.seed_index)
        raw = sign_code(self.credential, key, timestamp_s, nonce.to_bytes(8, "big"))
        return encode_code_text(raw)


def make_platform(db_url: str, fares: Fares = FARES) -> Platform:
    return Platform.open(db_url, fares=fares, keyring_seed=PLATFORM_SEED)


def make_rider(platform: Platform, n: int, wallet_fen: int) -> App:
    reg = platform.register_resident(f"乘客{n}")
    platform.bind_card(reg.token, luhn_complete(f"6222{n:011d}"), "ICBC")
    if wallet_fen:
        platform.top_up(reg.token, wallet_fen, "first")
    key = derive_private_key(RIDER_SEED, n)
    raw = platform.transit.claim_bus_card(reg.token, public_key_bytes(key))
    return App(reg.token, reg.participant_id, Credential.from_bytes(raw), n)


def make_reader(platform: Platform, operator_token: str, name: str) -> tuple[str, BusReader]:
    reg = platform.transit.register_reader(operator_token, name)
    keys = platform.transit.public_keys(reg.token)
    return reg.token, BusReader(f"R{reg.participant_id}", keys)


@pytest.fixture
def world(db_url: str):
    platform = make_platform(db_url)
    operator = platform.transit.register_operator("武汉公交")
    yield platform, operator
    platform.close()


def upload(platform: Platform, token: str, reader: BusReader):
    batch = reader.next_batch()
    taps = [UploadedTap(t.seq, t.code_text, t.scanned_at_s) for t in batch.taps]
    outcomes = platform.transit.upload_taps(token, batch.batch_id, taps)
    reader.ack(batch.batch_id)
    return outcomes


def balance(platform: Platform, name: str) -> int:
    with platform.db.transaction() as tx:
        row = tx.one("SELECT credits_posted - debits_posted FROM accounts WHERE name = ?", (name,))
    return row[0]


def test_a_tap_clears_once_debits_the_rider_and_credits_the_operator(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    token, reader = make_reader(platform, operator.token, "bus-1")
    assert reader.scan(rider.code(NOW_S), NOW_S).accepted
    [outcome] = upload(platform, token, reader)
    assert (outcome.outcome, outcome.fare_fen, outcome.wallet_fen) == ("cleared", 200, 200)
    assert platform.balance_fen(rider.token) == 800
    assert balance(platform, f"operator:{operator.participant_id}") == 200
    assert platform.audit().ok


def test_the_same_or_an_overlapping_batch_clears_once(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 5000)
    token, reader = make_reader(platform, operator.token, "bus-1")
    for k in range(3):
        reader.scan(rider.code(NOW_S + 7200 * k, k), NOW_S + 7200 * k)
    batch = reader.next_batch()
    taps = [UploadedTap(t.seq, t.code_text, t.scanned_at_s) for t in batch.taps]
    first = platform.transit.upload_taps(token, batch.batch_id, taps)
    again = platform.transit.upload_taps(token, batch.batch_id, taps)
    overlap = platform.transit.upload_taps(token, "overlap-1", taps[1:])
    assert again == first and overlap == first[1:]
    assert platform.balance_fen(rider.token) == 5000 - 3 * 200
    with pytest.raises(Rejected, match="exists_with_different_fields"):
        platform.transit.upload_taps(token, batch.batch_id, taps[:1])
    assert platform.transit.metrics().taps == 3


def test_one_code_at_two_readers_is_charged_once_and_names_both_readers(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    token_a, front = make_reader(platform, operator.token, "bus-1/front")
    token_b, back = make_reader(platform, operator.token, "bus-1/back")
    code = rider.code(NOW_S)
    front.scan(code, NOW_S)
    back.scan(code, NOW_S + 5)
    [cleared] = upload(platform, token_a, front)
    [replay] = upload(platform, token_b, back)
    assert cleared.outcome == "cleared"
    assert (replay.outcome, replay.reason) == ("rejected", "replayed_code")
    assert (replay.reader_id, replay.first_reader_id) == (back.reader_id, front.reader_id)
    assert platform.balance_fen(rider.token) == 800


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda code: code[:-6] + "ABCDEF", "signature_invalid"),
        (lambda code: "NOT A CODE", "code_malformed"),
    ],
)
def test_a_tampered_reader_forwarding_a_bad_tap_is_caught_at_clearing(world, mangle, reason):
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    token, _ = make_reader(platform, operator.token, "bus-1")
    tap = UploadedTap(1, mangle(rider.code(NOW_S)), NOW_S)
    [outcome] = platform.transit.upload_taps(token, "forged-1", [tap])
    assert (outcome.outcome, outcome.reason) == ("rejected", reason)
    assert platform.balance_fen(rider.token) == 1000
    assert platform.transit.metrics().rejected_by_reason == {reason: 1}


def test_stale_and_foreign_codes_are_rejected_at_clearing(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    token, _ = make_reader(platform, operator.token, "bus-1")
    stranger = Platform.open("sqlite:///:memory:", keyring_seed=b"another platform's seed!!")
    outsider = make_rider(stranger, 2, 0)
    taps = [
        UploadedTap(1, rider.code(NOW_S - 3 * 3600), NOW_S),  # a screenshot hours old
        UploadedTap(2, outsider.code(NOW_S), NOW_S),
    ]
    outcomes = platform.transit.upload_taps(token, "b-1", taps)
    assert [o.reason for o in outcomes] == ["code_expired", "signature_invalid"]
    assert platform.balance_fen(rider.token) == 1000
    stranger.close()


def test_a_revoked_card_is_refused_for_rides_after_revocation(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    token, reader = make_reader(platform, operator.token, "bus-1")
    platform.transit.revoke_bus_card(rider.token)
    later = int(dt.datetime.now().timestamp()) + 60
    reader.scan(rider.code(later), later)  # the reader is offline: it never heard
    [outcome] = upload(platform, token, reader)
    assert outcome.reason == "card_revoked"
    assert rider.card_id in platform.transit.deny_delta(token, 0).added


def test_a_shortfall_becomes_debt_lists_the_card_and_a_top_up_repays_it(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 150)
    token, reader = make_reader(platform, operator.token, "bus-1")
    reader.scan(rider.code(NOW_S), NOW_S)
    [outcome] = upload(platform, token, reader)
    assert (outcome.wallet_fen, outcome.credit_fen) == (150, 50)
    delta = platform.transit.deny_delta(token, 0)
    assert delta.added == [rider.card_id] and platform.transit.metrics().debt_fen == 50
    platform.top_up(rider.token, 500, "repay")
    assert platform.balance_fen(rider.token) == 450
    assert platform.transit.metrics().debt_fen == 0
    later = platform.transit.deny_delta(token, delta.version)
    assert later.removed == [rider.card_id] and later.version > delta.version
    assert platform.transit.metrics().deny_list_size == 0
    assert platform.audit().ok


def test_a_transfer_within_the_window_is_discounted(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    token, reader = make_reader(platform, operator.token, "bus-1")
    for k, offset_s in enumerate((0, 1800, 9000)):
        reader.scan(rider.code(NOW_S + offset_s, k), NOW_S + offset_s)
    fares = [o.fare_fen for o in upload(platform, token, reader)]
    assert fares == [200, 100, 200]


def test_free_ride_days_are_paid_by_the_campaign_until_its_budget_is_spent(db_url: str) -> None:
    day = dt.datetime.fromtimestamp(NOW_S, CHINA_TZ).date()
    platform = make_platform(db_url, Fares(fare_fen=200, free_ride_dates=frozenset({day})))
    operator = platform.transit.register_operator("武汉公交")
    with platform.db.transaction() as tx:
        budget = platform.ledger.create_account(tx, PROMO_ACCOUNT, "promotion", 1)
        source = platform.ledger.create_account(tx, "platform:marketing", "platform", 0)
    platform.ledger.apply(TransferRequest("fund", source.id, budget.id, 300, "campaign_budget"))
    rider = make_rider(platform, 1, 1000)
    token, reader = make_reader(platform, operator.token, "bus-1")
    for k in range(2):
        reader.scan(rider.code(NOW_S + 7200 * k, k), NOW_S + 7200 * k)
    outcomes = upload(platform, token, reader)
    assert [(o.promo_fen, o.wallet_fen) for o in outcomes] == [(200, 0), (0, 200)]
    assert platform.balance_fen(rider.token) == 800
    assert platform.audit().ok
    platform.close()


def test_only_readers_upload_and_only_operators_register_readers(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    with pytest.raises(Forbidden):
        platform.transit.upload_taps(rider.token, "b", [UploadedTap(1, rider.code(NOW_S), NOW_S)])
    with pytest.raises(Forbidden):
        platform.transit.register_reader(rider.token, "fake reader")
    assert platform.transit.metrics().taps == 0


def test_after_key_rotation_old_credentials_still_clear_and_new_ones_use_the_new_key(
    world,
) -> None:
    platform, operator = world
    old = make_rider(platform, 1, 1000)
    new_key_id = platform.transit.rotate_keys()
    new = make_rider(platform, 2, 1000)
    assert (old.credential.key_id, new.credential.key_id) == (new_key_id - 1, new_key_id)
    token, reader = make_reader(platform, operator.token, "bus-1")
    for k, rider in enumerate((old, new)):
        assert reader.scan(rider.code(NOW_S + k, k), NOW_S + k).accepted
    assert [o.outcome for o in upload(platform, token, reader)] == ["cleared", "cleared"]
    reopened = Platform(platform.db)  # a restarted server loads the rotated ring
    assert set(reopened.transit.keyring.public_keys()) == {new_key_id - 1, new_key_id}


def test_a_reader_cannot_pass_off_another_readers_batch(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    token_a, front = make_reader(platform, operator.token, "bus-1")
    token_b, _ = make_reader(platform, operator.token, "bus-2")
    front.scan(rider.code(NOW_S), NOW_S)
    batch = front.next_batch()
    taps = [UploadedTap(t.seq, t.code_text, t.scanned_at_s) for t in batch.taps]
    platform.transit.upload_taps(token_a, batch.batch_id, taps)
    with pytest.raises(Rejected, match="exists_with_different_fields"):
        platform.transit.upload_taps(token_b, batch.batch_id, taps)
    [stolen] = platform.transit.upload_taps(token_b, "stolen", taps)  # same codes, new id
    assert stolen.reason == "replayed_code" and platform.balance_fen(rider.token) == 800


def test_a_code_made_after_its_credential_expired_is_rejected_at_clearing(world) -> None:
    platform, operator = world
    rider = make_rider(platform, 1, 1000)
    token, _ = make_reader(platform, operator.token, "bus-1")
    late_s = rider.credential.expires_at_s + 3600
    [outcome] = platform.transit.upload_taps(
        token, "late-1", [UploadedTap(1, rider.code(late_s), late_s)])
    assert (outcome.outcome, outcome.reason) == ("rejected", "credential_expired")
    assert platform.balance_fen(rider.token) == 1000
