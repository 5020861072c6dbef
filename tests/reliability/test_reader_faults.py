"""Reader faults end to end (bus reader -> upload -> clearing -> ledger): readers offline
for days with a stale deny list, a queue at its bound, clocks off, batches out of order
and sent twice. Every tap ends in exactly one outcome and nothing is charged twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from platform_stub import HttpClient, Platform
from platform_stub.clearing import TapOutcome, UploadedTap
from platform_stub.exceptions import Rejected, StorageUnavailable
from platform_stub.service import luhn_complete
from platform_stub.transit import (
    BusReader,
    Credential,
    derive_private_key,
    encode_code_text,
    public_key_bytes,
    sign_code,
)
from platform_stub.transit.reader import Batch, TapRecord, batch_id_for
from platform_stub.transit.verify import (
    CLEARING_MAX_AGE_S,
    CLEARING_SKEW_S,
    CLOCK_SKEW_S,
    CODE_MAX_AGE_S,
)
from platform_stub.transit_service import STARTER_CREDIT_LIMIT_FEN
from tests.reliability.world import WALLET_FEN, Server, build_city
from tests.transit.riders import PLATFORM_SEED, RIDER_SEED

DAY_S = 86_400
HOUR_S = 3_600
FARE_FEN = 200  # the default Fares: 200 fen, 100 off a ride within 90 minutes of another
OFFLINE_DAYS = 3
UPLOAD_ROUNDS_MAX = 100  # batches one reader uploads in a test, at most
# The shipped bound (reader.QUEUE_TAPS_MAX, 20,000) takes 40,000 Ed25519 verifications to fill
# and clear, 4-20 s on this machine; the bound is a constructor argument and the code
# path is the same, so the test fills a reader built with a smaller one.
QUEUE_BOUND = 60
QUEUE_BATCH = 25
QUEUE_RIDERS = 3
QUEUE_TAP_GAP_S = 20
RACE_RETRIES_MAX = 5


@dataclass
class Phone:
    """A rider's app: wallet credential, rider key and the card credential."""

    token: str
    card_id: int
    credential: Credential
    index: int
    nonces: int = 0

    def code(self, timestamp_s: int) -> str:
        self.nonces += 1
        key = derive_private_key(RIDER_SEED, self.index)
        raw = sign_code(self.credential, key, timestamp_s, self.nonces.to_bytes(8, "big"))
        return encode_code_text(raw)


@dataclass
class Transit:
    platform: Platform
    operator_token: str

    def rider(self, index: int, wallet_fen: int) -> Phone:
        reg = self.platform.register_resident(f"乘客{index}")
        if wallet_fen:
            self.platform.bind_card(reg.token, luhn_complete(f"6222{index:011d}"), "ICBC")
            self.platform.top_up(reg.token, wallet_fen, "first")
        key = derive_private_key(RIDER_SEED, index)
        raw = self.platform.transit.claim_bus_card(reg.token, public_key_bytes(key))
        return Phone(reg.token, reg.participant_id, Credential.from_bytes(raw), index)

    def reader(self, name: str, **limits: int) -> tuple[str, BusReader]:
        reg = self.platform.transit.register_reader(self.operator_token, name)
        keys = self.platform.transit.public_keys(reg.token)
        return reg.token, BusReader(f"R{reg.participant_id}", keys, **limits)

    def upload(self, token: str, batch_id: str, taps: tuple[TapRecord, ...]) -> list[TapOutcome]:
        uploaded = [UploadedTap(t.seq, t.code_text, t.scanned_at_s) for t in taps]
        return self.platform.transit.upload_taps(token, batch_id, uploaded)

    def upload_all(self, token: str, reader: BusReader) -> list[TapOutcome]:
        """What a reader does when it comes online: upload and acknowledge until empty."""
        outcomes: list[TapOutcome] = []
        for _ in range(UPLOAD_ROUNDS_MAX):
            batch = reader.next_batch()
            if batch is None:
                return outcomes
            outcomes += self.upload(token, batch.batch_id, batch.taps)
            assert reader.ack(batch.batch_id)
        raise AssertionError(f"reader still holds taps after {UPLOAD_ROUNDS_MAX} uploads")

    def sync_deny_list(self, token: str, reader: BusReader) -> str:
        delta = self.platform.transit.deny_delta(token, reader.deny_version)
        return reader.apply_deny_changes(delta.since, delta.version, delta.added, delta.removed)

    def outcomes(self) -> list[tuple]:
        with self.platform.db.transaction(write=False) as tx:
            return tx.all(
                "SELECT reader_id, reader_seq, tap_id, outcome, reason, fare_fen"
                " FROM tap_outcomes ORDER BY reader_id, reader_seq"
            )

    def fares_charged_fen(self) -> int:
        """Every fare debited from riders, counted from the ledger's own transfers."""
        with self.platform.db.transaction(write=False) as tx:
            return tx.one(
                "SELECT COALESCE(SUM(amount_fen), 0) FROM transfers"
                " WHERE kind IN ('fare', 'fare_on_credit')"
            )[0]


@pytest.fixture
def transit(db_url: str) -> Iterator[Transit]:
    platform = Platform.open(db_url, keyring_seed=PLATFORM_SEED)
    operator = platform.transit.register_operator("武汉公交")
    yield Transit(platform, operator.token)
    platform.close()


def _assert_each_tap_once(transit: Transit, accepted: list[TapRecord]) -> None:
    """One outcome row per accepted tap (none missing, none extra), one cleared row per
    code, the fares in the ledger equal the fares in the outcomes, and the audit holds."""
    rows = transit.outcomes()
    assert sorted((r[0], r[1]) for r in rows) == sorted((t.reader_id, t.seq) for t in accepted)
    cleared = [r[2] for r in rows if r[3] == "cleared"]
    assert len(cleared) == len(set(cleared))
    assert transit.fares_charged_fen() == sum(r[5] for r in rows)
    report = transit.platform.audit()
    assert report.ok, report.broken


def _scan(reader: BusReader, phone: Phone, code_at_s: int, reader_at_s: int) -> TapRecord:
    result = reader.scan(phone.code(code_at_s), reader_at_s)
    assert result.accepted, result.reason
    return result.tap


# -- offline for days -------------------------------------------------------------------


def test_a_reader_offline_for_days_clears_every_tap_once_with_its_lag_recorded(
    transit: Transit,
) -> None:
    """A reader offline for three days uploads on its return: every ride clears exactly
    once (a lost acknowledgement and a resend change nothing), and the upload lag is on
    record. Its deny list went stale meanwhile: a card revoked while it was offline is
    still let on at the door but its rides after the revocation are rejected at clearing
    (the rider is not charged, the operator is not paid); a card that fell into debt
    while it was offline keeps riding on credit, past its credit limit, until the
    reader syncs. After the sync the door refuses both cards."""
    token, reader = transit.reader("bus-offline")
    payer = transit.rider(1, wallet_fen=10_000)
    loser = transit.rider(2, wallet_fen=10_000)
    debtor = transit.rider(3, wallet_fen=0)
    now_s = int(time.time())
    went_offline_s = now_s - OFFLINE_DAYS * DAY_S
    accepted = []
    for day in range(OFFLINE_DAYS):  # a morning and an evening ride each day
        for hour in (8, 18):
            at_s = went_offline_s + day * DAY_S + hour * HOUR_S - 18 * HOUR_S
            accepted += [_scan(reader, p, at_s, at_s + 2) for p in (payer, debtor)]
    accepted.append(_scan(reader, loser, went_offline_s + 3600, went_offline_s + 3601))
    transit.platform.transit.revoke_bus_card(loser.token)  # phone lost, while offline
    thief_at_s = int(time.time()) + 5
    accepted.append(_scan(reader, loser, thief_at_s, thief_at_s))  # stale list: let on

    batch = reader.next_batch()
    first = transit.upload(token, batch.batch_id, batch.taps)
    again = transit.upload(token, batch.batch_id, batch.taps)  # the ack was lost
    assert again == first and transit.upload_all(token, reader) == first

    by_card = {
        p.card_id: [o for o in first if o.card_id == p.card_id] for p in (payer, loser, debtor)
    }
    assert [o.outcome for o in by_card[payer.card_id]] == ["cleared"] * 2 * OFFLINE_DAYS
    assert [(o.outcome, o.reason) for o in by_card[loser.card_id]] == [
        ("cleared", None),
        ("rejected", "card_revoked"),
    ]
    assert transit.platform.balance_fen(payer.token) == 10_000 - 2 * OFFLINE_DAYS * FARE_FEN
    assert transit.platform.balance_fen(loser.token) == 10_000 - FARE_FEN
    debt_fen = sum(o.credit_fen for o in by_card[debtor.card_id])
    assert debt_fen == 2 * OFFLINE_DAYS * FARE_FEN > STARTER_CREDIT_LIMIT_FEN
    _assert_each_tap_once(transit, accepted)
    _assert_lag_recorded(transit, went_offline_s)

    assert reader.deny_version == 0 and transit.sync_deny_list(token, reader) == "applied"
    for phone in (loser, debtor):
        at_s = int(time.time())
        assert reader.scan(phone.code(at_s), at_s).reason == "card_revoked"


def _assert_lag_recorded(transit: Transit, went_offline_s: int) -> None:
    """The lag between the scan (the reader's clock) and the upload (the platform's)."""
    with transit.platform.db.transaction(write=False) as tx:
        lag_s = tx.one(
            "SELECT MAX(b.received_at_us / 1000000 - o.scanned_at_s) FROM tap_outcomes o"
            " JOIN tap_batches b ON b.batch_id = o.batch_id"
        )[0]
    expected_s = int(time.time()) - (went_offline_s - 10 * HOUR_S + 2)
    assert expected_s - 60 <= lag_s <= expected_s + 60
    assert lag_s > (OFFLINE_DAYS - 1) * DAY_S


# -- a queue at its bound ---------------------------------------------------------------


def test_a_full_reader_queue_refuses_scans_and_loses_no_tap(transit: Transit) -> None:
    """At its bound of unsent taps the next scan is refused with reader_queue_full and
    stored nowhere; every queued tap survives; one acknowledged upload makes room for one
    batch more, the refused code is then accepted, and once the reader has uploaded
    everything every tap has exactly one outcome."""
    token, reader = transit.reader(
        "bus-full", queue_taps_max=QUEUE_BOUND, batch_taps_max=QUEUE_BATCH
    )
    phones = [transit.rider(30 + n, wallet_fen=100_000) for n in range(QUEUE_RIDERS)]
    start_s = int(time.time()) - (QUEUE_BOUND + 1) * QUEUE_TAP_GAP_S
    accepted = []
    for n in range(QUEUE_BOUND):
        at_s = start_s + n * QUEUE_TAP_GAP_S
        accepted.append(_scan(reader, phones[n % QUEUE_RIDERS], at_s, at_s))
    at_s = start_s + QUEUE_BOUND * QUEUE_TAP_GAP_S
    refused_code = phones[0].code(at_s)
    refused = reader.scan(refused_code, at_s)
    assert (refused.accepted, refused.reason) == (False, "reader_queue_full")
    assert reader.queued_taps == QUEUE_BOUND

    batch = reader.next_batch()
    assert len(transit.upload(token, batch.batch_id, batch.taps)) == len(batch.taps)
    assert reader.ack(batch.batch_id)
    assert reader.queued_taps == QUEUE_BOUND - QUEUE_BATCH
    retried = reader.scan(refused_code, at_s + 1)  # the rider shows the same code again
    assert retried.accepted
    accepted.append(retried.tap)
    assert [t.seq for t in accepted] == list(range(1, QUEUE_BOUND + 2))

    transit.upload_all(token, reader)
    assert reader.queued_taps == 0
    _assert_each_tap_once(transit, accepted)


# -- clock skew -------------------------------------------------------------------------

DOOR_OFFSETS_S = {  # reader clock minus phone clock -> what the door does
    -CLOCK_SKEW_S - 1: "code_expired",  # reader behind: the code looks 31 s in the future
    -CLOCK_SKEW_S: None,
    0: None,
    CODE_MAX_AGE_S: None,
    CODE_MAX_AGE_S + 1: "code_expired",  # reader ahead: the code looks 61 s old
}
CLEARING_OFFSETS_S = {  # the same, for a reader that let anything on (wrong settings)
    -CLEARING_SKEW_S: "cleared",
    -CLEARING_SKEW_S - 1: "code_expired",
    CLEARING_MAX_AGE_S: "cleared",
    CLEARING_MAX_AGE_S + 1: "code_expired",
    -30 * DAY_S: "code_expired",  # a reader clock reset a month back
}


def test_reader_clock_skew_is_refused_at_the_door_or_at_clearing_never_charged_twice(
    transit: Transit,
) -> None:
    """A reader judges a code against its own clock with the tight windows (30 s ahead,
    60 s old), so a reader clock off by more refuses honest riders at the door. Clearing
    judges against the clock the reader recorded with windows 600 s wider, so it never
    rejects what a correctly set reader accepted; taps from a reader that let codes on
    beyond that (wrong settings, a reset clock) are rejected there, uncharged."""
    token, door = transit.reader("bus-door")
    loose_token, loose = transit.reader("bus-loose", skew_s=10**8, max_age_s=10**8)
    phone = transit.rider(5, wallet_fen=50_000)
    phone_s = int(time.time()) - DAY_S
    accepted = []
    for k, (offset_s, expected) in enumerate(DOOR_OFFSETS_S.items()):
        at_s = phone_s + k * 2 * HOUR_S  # two hours apart: each ride pays the full fare
        result = door.scan(phone.code(at_s), at_s + offset_s)
        assert result.reason == expected, offset_s
        accepted += [result.tap] if result.accepted else []
    door_outcomes = transit.upload_all(token, door)
    assert [o.outcome for o in door_outcomes] == ["cleared"] * 3

    for k, offset_s in enumerate(CLEARING_OFFSETS_S):
        at_s = phone_s + (k + 10) * 2 * HOUR_S
        accepted.append(_scan(loose, phone, at_s, at_s + offset_s))
    loose_outcomes = transit.upload_all(loose_token, loose)
    assert [o.reason or o.outcome for o in loose_outcomes] == list(CLEARING_OFFSETS_S.values())
    assert all(o.fare_fen == 0 for o in loose_outcomes if o.outcome == "rejected")
    assert transit.platform.balance_fen(phone.token) == 50_000 - 5 * FARE_FEN
    _assert_each_tap_once(transit, accepted)


# -- batches out of order ---------------------------------------------------------------


def _batches(reader: BusReader, taps: list[TapRecord], size: int) -> list[tuple]:
    """The batches the reader would send, in its order, made ahead of time (as if its
    uploads had been queued somewhere that delivered them out of order)."""
    groups = [tuple(taps[i : i + size]) for i in range(0, len(taps), size)]
    return [(batch_id_for(reader.reader_id, g[0].seq, g[-1].seq), g) for g in groups]


def test_batches_out_of_order_clear_each_tap_once(transit: Transit) -> None:
    """Batch 3 arrives before batch 2 (and batch 1 last of all, again after the reader's
    own in-order resends): each tap has exactly one outcome, the one it got first, and
    the rider pays each ride once."""
    token, reader = transit.reader("bus-order", batch_taps_max=3)
    phones = [transit.rider(10 + n, wallet_fen=10_000) for n in range(3)]
    start_s = int(time.time()) - DAY_S
    taps = [
        _scan(reader, phones[n % 3], start_s + n * 2 * HOUR_S, start_s + n * 2 * HOUR_S)
        for n in range(9)
    ]
    first, second, third = _batches(reader, taps, 3)
    got = {}
    for batch_id, group in (third, second, first, third):
        for outcome in transit.upload(token, batch_id, group):
            got.setdefault(outcome.reader_seq, outcome)
            assert got[outcome.reader_seq] == outcome
    resent = transit.upload_all(token, reader)  # the reader, unaware, sends 1, 2, 3
    assert resent == [got[t.seq] for t in taps]
    assert all(o.outcome == "cleared" for o in resent)
    for phone in phones:
        assert transit.platform.balance_fen(phone.token) == 10_000 - 3 * FARE_FEN
    _assert_each_tap_once(transit, taps)


@pytest.mark.xfail(
    strict=True,
    reason="clearing.py prices a ride against the rides already cleared, so a ride whose"
    " earlier ride comes in a later batch is charged as a first ride (not ours to edit)",
)
def test_the_fare_does_not_depend_on_the_order_batches_arrive_in(transit: Transit) -> None:
    """Rides at 0, 80 and 160 minutes: each of the later two is within 90 minutes of the
    one before, so in order they cost 200 + 100 + 100. Batch 3 before batch 2 should not
    change that, but the third ride is then priced before the second is known."""
    token, reader = transit.reader("bus-fares", batch_taps_max=1)
    phone = transit.rider(20, wallet_fen=10_000)
    start_s = int(time.time()) - DAY_S
    taps = [_scan(reader, phone, start_s + m * 60, start_s + m * 60) for m in (0, 80, 160)]
    first, second, third = _batches(reader, taps, 1)
    for batch_id, group in (first, third, second):
        transit.upload(token, batch_id, group)
    _assert_each_tap_once(transit, taps)  # holds: the fault is the price, not the count
    assert transit.platform.balance_fen(phone.token) == 10_000 - (200 + 100 + 100)


# -- the same batch twice ----------------------------------------------------------------


def test_the_same_batch_twice_at_once_clears_once(transit: Transit) -> None:
    """Two uploads of one batch race (a retry overtaking the first): on PostgreSQL the
    loser gets storage_unavailable and its retry the winner's outcomes; on SQLite they
    take turns. Either way one outcome row per tap, the rider charged once, and the same
    batch id with other taps is refused with exists_with_different_fields."""
    token, reader = transit.reader("bus-twice")
    phone = transit.rider(40, wallet_fen=10_000)
    start_s = int(time.time()) - DAY_S
    taps = [
        _scan(reader, phone, start_s + n * 2 * HOUR_S, start_s + n * 2 * HOUR_S) for n in range(3)
    ]
    batch = reader.next_batch()
    first, twin = _upload_at_once(transit, token, batch)
    assert twin == first and [o.outcome for o in first] == ["cleared"] * 3
    assert transit.upload_all(token, reader) == first  # the reader's own resend
    with pytest.raises(Rejected, match="exists_with_different_fields"):
        transit.upload(token, batch.batch_id, batch.taps[:2])
    assert transit.platform.balance_fen(phone.token) == 10_000 - 3 * FARE_FEN
    _assert_each_tap_once(transit, taps)


def _upload_at_once(transit: Transit, token: str, batch: Batch) -> list:
    results: list = [None, None]
    gate = threading.Barrier(2)

    def send(slot: int) -> None:
        gate.wait(timeout=10)
        for _ in range(RACE_RETRIES_MAX):
            try:
                results[slot] = transit.upload(token, batch.batch_id, batch.taps)
                return
            except StorageUnavailable:
                time.sleep(0.05)

    threads = [threading.Thread(target=send, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.slow
def test_the_same_batch_again_after_a_server_restart_clears_once(
    pg_url: str, tmp_path: Path
) -> None:
    """A batch uploaded over HTTP, the server SIGKILLed before the reader got the
    acknowledgement, restarted on the same database, the batch sent again: the same
    outcomes, one outcome row per tap, the rider charged once. (PostgreSQL only: the
    SIGKILL tests in test_crash.py already resend batches on both backends.)"""
    server = Server(pg_url, tmp_path / "server")
    client = HttpClient(server.start())
    try:
        city = build_city(client, server.url)
        city.scan_taps(3)
        batch_id, taps = city.uploaded()
        first = client.upload_taps(city.reader_token, batch_id, taps)
        server.kill()  # the acknowledgement never reached the reader
        client.close()
        client = HttpClient(server.start())
        assert client.upload_taps(city.reader_token, batch_id, taps) == first
        assert city.reader.ack(batch_id) and not city.reader.ack(batch_id)
    finally:
        client.close()
        server.stop()
    platform = Platform.open(pg_url)
    try:
        fares = sum(o.wallet_fen for o in first)
        assert [o.outcome for o in first] == ["cleared"] * 3 and fares > 0
        assert platform.balance_fen(city.rider_token) == WALLET_FEN - fares
        assert platform.transit.metrics().taps == 3
        assert platform.audit().ok
    finally:
        platform.close()
