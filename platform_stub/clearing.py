"""Clearing offline transit taps: every tap ends in exactly one outcome.

Readers upload batches of taps they accepted offline. Clearing never trusts the
reader: it re-verifies each code (platform and rider signatures, expiry,
freshness against the reader's clock with a wide skew allowance, revocation at
the tap's time), removes duplicates (a code already cleared is a replay; the
record names the reader that cleared it first), prices the ride (flat fare,
transfer discount, free-ride days funded by a campaign budget), debits the rider
(wallet first, then the card's credit line, which puts the card on the deny
list) and credits the bus operator once per batch (a hot account touched once,
not once per tap).

Outcome rows are keyed by (reader_id, reader_seq): a batch sent twice, or two
overlapping batches, clear each tap once and return the first outcome.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field, fields
from itertools import chain

from platform_stub import buscards
from platform_stub.exceptions import InvalidRequest, PlatformError, Rejected
from platform_stub.frozen import frozen, row_getter
from platform_stub.ledger import Ledger, LedgerBatch, TransferRequest
from platform_stub.storage import Tx, in_chunks, marks, now_us, rows_in
from platform_stub.transit.verify import (
    CLEARING_MAX_AGE_S,
    CLEARING_SKEW_S,
    TapVerifier,
    VerifiedTap,
)

BATCH_TAPS_MAX = 1_000
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
CLEARING_ACCOUNT = "platform:transit_clearing"
PROMO_ACCOUNT = "promo:free_rides"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS tap_batches (
        batch_id TEXT PRIMARY KEY, reader_id TEXT NOT NULL, body_hash TEXT NOT NULL,
        received_at_us BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tap_outcomes (
        reader_id TEXT NOT NULL, reader_seq BIGINT NOT NULL, tap_id TEXT NOT NULL,
        card_id BIGINT, tapped_at_s BIGINT, scanned_at_s BIGINT NOT NULL,
        batch_id TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT,
        fare_fen BIGINT NOT NULL, wallet_fen BIGINT NOT NULL, credit_fen BIGINT NOT NULL,
        promo_fen BIGINT NOT NULL, first_reader_id TEXT,
        PRIMARY KEY (reader_id, reader_seq))""",
    "CREATE UNIQUE INDEX IF NOT EXISTS tap_cleared_once ON tap_outcomes(tap_id)"
    " WHERE outcome = 'cleared'",
    "CREATE INDEX IF NOT EXISTS tap_outcomes_card ON tap_outcomes(card_id, tapped_at_s)",
]
_OUTCOME_COLUMNS = (
    "reader_id, reader_seq, tap_id, card_id, tapped_at_s, scanned_at_s, batch_id, outcome,"
    " reason, fare_fen, wallet_fen, credit_fen, promo_fen, first_reader_id"
)


@frozen
class Fares:
    """How rides are priced; part of the platform's configuration."""

    fare_fen: int = 200
    transfer_discount_fen: int = 100
    transfer_window_s: int = 90 * 60
    free_ride_dates: frozenset[dt.date] = field(default_factory=frozenset)


@frozen
class UploadedTap:
    reader_seq: int
    code: str
    scanned_at_s: int


@frozen
class TapOutcome:
    reader_id: str
    reader_seq: int
    tap_id: str
    card_id: int | None
    tapped_at_s: int | None
    scanned_at_s: int
    batch_id: str
    outcome: str  # "cleared" or "rejected"
    reason: str | None
    fare_fen: int
    wallet_fen: int
    credit_fen: int
    promo_fen: int
    first_reader_id: str | None


@frozen
class Reader:
    reader_id: str
    operator_account_id: int


_OUTCOME_ROW = row_getter(TapOutcome)  # an outcome's values in column order


def create_tables(tx: Tx) -> None:
    for ddl in SCHEMA:
        tx.execute(ddl)


def batch_hash(taps: list[UploadedTap]) -> str:
    body = json.dumps([(t.reader_seq, t.code, t.scanned_at_s) for t in taps], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


class Clearing:
    def __init__(
        self, ledger: Ledger, public_keys: Callable[[], Mapping[int, bytes]], fares: Fares
    ) -> None:
        self.ledger = ledger
        self.public_keys = public_keys  # every key id still valid; keys rotate
        self.fares = fares
        self.verifier = TapVerifier()
        with ledger.db.transaction() as tx:  # made once, committed: its id never changes
            self._clearing_id = ledger.create_account(tx, CLEARING_ACCOUNT, "clearing", 0).id

    def upload(self, reader: Reader, batch_id: str, taps: list[UploadedTap]) -> list[TapOutcome]:
        """Clear one batch in one transaction; re-sending it returns the same outcomes.

        A big batch's codes are verified in chunks on worker processes (every core),
        from before the transaction begins: each chunk's taps are cleared while the
        workers verify the next ones."""
        _check_batch(batch_id, taps)
        digest = batch_hash(taps)
        checks = self.verifier.verify_chunks(
            [(t.code, t.scanned_at_s) for t in taps],
            self.public_keys(),
            skew_s=CLEARING_SKEW_S,
            max_age_s=CLEARING_MAX_AGE_S,
        )
        with self.ledger.db.transaction() as tx:
            if self._seen_batch(tx, reader, batch_id, digest):
                return [self._outcome(tx, reader.reader_id, t.reader_seq) for t in taps]
            tx.execute(
                "INSERT INTO tap_batches (batch_id, reader_id, body_hash, received_at_us)"
                " VALUES (?, ?, ?, ?)",
                (batch_id, reader.reader_id, digest, now_us()),
            )
            return _BatchClearing(self, tx, reader, batch_id).clear(taps, checks)

    def _seen_batch(self, tx: Tx, reader: Reader, batch_id: str, digest: str) -> bool:
        row = tx.one("SELECT reader_id, body_hash FROM tap_batches WHERE batch_id = ?", (batch_id,))
        if row is None:
            return False
        if row != (reader.reader_id, digest):
            raise Rejected("exists_with_different_fields", f"batch {batch_id!r} differs")
        return True

    def _outcome(self, tx: Tx, reader_id: str, seq: int) -> TapOutcome | None:
        row = tx.one(
            f"SELECT {_OUTCOME_COLUMNS} FROM tap_outcomes WHERE reader_id = ? AND reader_seq = ?",
            (reader_id, seq),
        )
        return None if row is None else TapOutcome(*row)


class _BatchClearing:
    """One new batch inside its transaction: what a chunk of taps needs is read up front in
    a few statements, money moves through a :class:`LedgerBatch`, and the chunk's
    transfers and outcomes are written together.

    Taps are still cleared one after another in upload order, each seeing the ones
    before it: a code cleared earlier in the batch is a replay, a ride earlier in the
    batch counts towards the transfer discount, a fare earlier in the batch has already
    left the wallet.
    """

    def __init__(self, clearing: Clearing, tx: Tx, reader: Reader, batch_id: str) -> None:
        self.clearing, self.tx, self.reader, self.batch_id = clearing, tx, reader, batch_id
        self.fares = clearing.fares
        self.money = LedgerBatch(tx)
        self.promo_id: int | None = None
        self.first_readers: dict[str, str] = {}  # tap id -> the reader that cleared it
        self.cards: dict[int, buscards.BusCard | None] = {}
        self.wallets: dict[int, int] = {}  # participant id -> wallet account id
        self.window: tuple[int, int] | None = None  # tapped_at_s range of stored_rides
        self.stored_rides: dict[int, list[int]] = {}  # card id -> rides cleared before
        self.batch_rides: dict[int, list[int]] = {}  # card id -> rides cleared in this batch

    def clear(
        self, taps: list[UploadedTap], checks: Iterable[list[VerifiedTap | str]]
    ) -> list[TapOutcome]:
        """``checks`` holds the taps' verifications in consecutive chunks, in order. Each
        chunk's money and outcome rows are written as soon as it is cleared, while the
        workers verify the next chunks (only the operator's credit waits for the end)."""
        earlier = self._earlier_outcomes(taps)
        outcomes: list[TapOutcome] = []
        for part in checks:
            chunk = taps[len(outcomes) : len(outcomes) + len(part)]
            self._read_up_front(
                [
                    c
                    for t, c in zip(chunk, part, strict=True)
                    if t.reader_seq not in earlier and not isinstance(c, str)
                ]
            )
            new: list[TapOutcome] = []
            for tap, check in zip(chunk, part, strict=True):
                outcome = earlier.get(tap.reader_seq)
                if outcome is None:  # else an overlapping batch already carried this tap
                    outcome = self._clear(tap, check)
                    new.append(outcome)
                outcomes.append(outcome)
            self._write(new)
        assert len(outcomes) == len(taps), "every tap has exactly one outcome"
        self._credit_operator(outcomes)
        self.money.flush()
        return outcomes

    def _write(self, new: list[TapOutcome]) -> None:
        self.money.flush()
        if new:
            self.tx.executemany(
                f"INSERT INTO tap_outcomes ({_OUTCOME_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_OUTCOME_ROW(o) for o in new],
            )

    def _earlier_outcomes(self, taps: list[UploadedTap]) -> dict[int, TapOutcome]:
        found: dict[int, TapOutcome] = {}
        for chunk in in_chunks([t.reader_seq for t in taps]):
            rows = self.tx.all(
                f"SELECT {_OUTCOME_COLUMNS} FROM tap_outcomes WHERE reader_id = ?"
                f" AND reader_seq IN ({marks(chunk)})",
                (self.reader.reader_id, *chunk),
            )
            found.update((row[1], TapOutcome(*row)) for row in rows)
        return found

    def _read_up_front(self, verified: list[VerifiedTap]) -> None:
        """For the next chunk: replays, cards, wallets, earlier rides in the discount
        window, and a lock on every account its taps may move money on (in id order)."""
        tx = self.tx
        self.first_readers.update(
            rows_in(
                tx,
                "SELECT tap_id, reader_id FROM tap_outcomes WHERE outcome = 'cleared'"
                " AND tap_id IN ({})",
                [v.tap_id for v in verified if v.tap_id not in self.first_readers],
            )
        )
        card_ids = sorted({v.card_id for v in verified} - self.cards.keys())
        self.cards.update(dict.fromkeys(card_ids))
        self.cards.update(
            (row[0], buscards.BusCard(*row))
            for row in rows_in(
                tx, f"SELECT {_CARD_COLUMNS} FROM bus_cards WHERE card_id IN ({{}})", card_ids
            )
        )
        cards = [self.cards[i] for i in card_ids if self.cards[i] is not None]
        self.wallets.update(
            rows_in(
                tx,
                "SELECT id, account_id FROM participants WHERE id IN ({})",
                sorted({c.participant_id for c in cards} - self.wallets.keys()),
            )
        )
        self._load_rides(verified)
        if self.fares.free_ride_dates and self.promo_id is None:
            row = tx.one("SELECT id FROM accounts WHERE name = ?", (PROMO_ACCOUNT,))
            self.promo_id = None if row is None else row[0]
        accounts = {
            self.clearing._clearing_id,
            self.reader.operator_account_id,
            *self.wallets.values(),
            *(c.credit_account_id for c in cards),
        }
        if self.promo_id is not None:
            accounts.add(self.promo_id)
        self.money.lock(accounts)
        self.money.recall([f"batch:{self.batch_id}"])

    def _load_rides(self, verified: list[VerifiedTap]) -> None:
        """Each card's cleared rides stored before this batch, over a window that covers
        every transfer window the taps so far need. A new card is read over the whole
        window; when a later chunk widens it, the cards read before get only the added
        slices. This batch's own rides are kept apart in ``batch_rides`` (the chunks
        already written are left out of the reads)."""
        if not verified:
            return
        low = min(v.timestamp_s for v in verified) - self.fares.transfer_window_s
        high = max(v.timestamp_s for v in verified)
        if self.window is not None:
            old_low, old_high = self.window
            low, high = min(low, old_low), max(high, old_high)
            old_cards = sorted(self.stored_rides)
            self._read_rides(old_cards, low, old_low)
            self._read_rides(old_cards, old_high, high)
        self.window = (low, high)
        new_cards = sorted({v.card_id for v in verified} - self.stored_rides.keys())
        for card_id in new_cards:
            self.stored_rides[card_id] = []
        self._read_rides(new_cards, low, high)

    def _read_rides(self, card_ids: list[int], low: int, high: int) -> None:
        """Add the cards' cleared rides with ``low <= tapped_at_s < high``."""
        if low >= high:
            return
        for chunk in in_chunks(card_ids):
            for card_id, tapped_at_s in self.tx.all(
                "SELECT card_id, tapped_at_s FROM tap_outcomes WHERE outcome = 'cleared'"
                f" AND card_id IN ({marks(chunk)}) AND tapped_at_s >= ? AND tapped_at_s < ?"
                " AND batch_id <> ?",
                (*chunk, low, high, self.batch_id),
            ):
                self.stored_rides[card_id].append(tapped_at_s)

    def _clear(self, tap: UploadedTap, check: VerifiedTap | str) -> TapOutcome:
        if isinstance(check, str):
            return self._outcome(tap, _fallback_tap_id(tap.code), None, None, check)
        verified = check
        ident = (verified.tap_id, verified.card_id, verified.timestamp_s)
        first_reader = self.first_readers.get(verified.tap_id)
        if first_reader is not None:
            return self._outcome(tap, *ident, "replayed_code", first_reader_id=first_reader)
        card = self.cards.get(verified.card_id)
        if _revoked(card, verified):
            return self._outcome(tap, *ident, "card_revoked")
        amounts = self._charge(verified, card)
        self.first_readers[verified.tap_id] = self.reader.reader_id
        self.batch_rides.setdefault(verified.card_id, []).append(verified.timestamp_s)
        return self._outcome(tap, *ident, None, amounts)

    def _outcome(
        self,
        tap: UploadedTap,
        tap_id: str,
        card_id: int | None,
        tapped_at_s: int | None,
        reason: str | None,
        amounts: tuple[int, int, int, int] = (0, 0, 0, 0),
        first_reader_id: str | None = None,
    ) -> TapOutcome:
        """The tap's outcome row: cleared when there is no ``reason``, else rejected with
        it; ``amounts`` are what ``_charge`` moved (fare, wallet, credit, promotion)."""
        fare, wallet, credit, promo = amounts
        return TapOutcome(
            reader_id=self.reader.reader_id,
            reader_seq=tap.reader_seq,
            tap_id=tap_id,
            card_id=card_id,
            tapped_at_s=tapped_at_s,
            scanned_at_s=tap.scanned_at_s,
            batch_id=self.batch_id,
            outcome="cleared" if reason is None else "rejected",
            reason=reason,
            fare_fen=fare,
            wallet_fen=wallet,
            credit_fen=credit,
            promo_fen=promo,
            first_reader_id=first_reader_id,
        )

    def _charge(self, verified: VerifiedTap, card: buscards.BusCard) -> tuple[int, int, int, int]:
        """Price the ride and move the money: promo budget, then wallet, then credit.
        Returns (fare, from the wallet, on credit, from the promotion), in fen.

        The legs go through ``LedgerBatch.transfer_fresh``: a tap's legs are written only
        in the transaction that records it cleared, and a cleared tap is a replay
        (``first_readers``), never charged again."""
        fare = self._price(verified)
        clearing_id = self.clearing._clearing_id
        promo = self._promo_share(verified, fare)
        wallet_id = self.wallets[card.participant_id]
        wallet = min(fare - promo, max(0, self.money.account(wallet_id).balance_fen))
        credit = fare - promo - wallet
        legs = ((wallet_id, wallet, "fare"), (card.credit_account_id, credit, "fare_on_credit"))
        for debit_id, amount, kind in legs:
            if amount > 0:
                self.money.transfer_fresh(
                    TransferRequest(
                        id=f"tap:{verified.tap_id}:{kind}",
                        debit_account_id=debit_id,
                        credit_account_id=clearing_id,
                        amount_fen=amount,
                        kind=kind,
                    ),
                )
        if buscards.credit_line_debt_fen(self.money.account(card.credit_account_id)) > 0:
            buscards.set_listed(self.tx, card.card_id, True, buscards.REASON_DEBT)
        return fare, wallet, credit, promo

    def _price(self, verified: VerifiedTap) -> int:
        since_s = verified.timestamp_s - self.fares.transfer_window_s
        rides = chain(
            self.stored_rides[verified.card_id], self.batch_rides.get(verified.card_id, ())
        )
        earlier = any(since_s <= t < verified.timestamp_s for t in rides)
        discount = self.fares.transfer_discount_fen if earlier else 0
        return max(0, self.fares.fare_fen - discount)

    def _promo_share(self, verified: VerifiedTap, fare: int) -> int:
        """On a free-ride day the campaign pays the fare while its budget lasts."""
        if fare == 0 or not self.fares.free_ride_dates or self.promo_id is None:
            return 0
        day = dt.datetime.fromtimestamp(verified.timestamp_s, CHINA_TZ).date()
        if day not in self.fares.free_ride_dates:
            return 0
        try:
            self.money.transfer_fresh(
                TransferRequest(
                    id=f"tap:{verified.tap_id}:promo",
                    debit_account_id=self.promo_id,
                    credit_account_id=self.clearing._clearing_id,
                    amount_fen=fare,
                    kind="fare_promo",
                ),
            )
        except PlatformError:
            return 0  # budget spent: the campaign has stopped, the rider pays
        return fare

    def _credit_operator(self, outcomes: list[TapOutcome]) -> None:
        total = sum(
            o.fare_fen for o in outcomes if o.outcome == "cleared" and o.batch_id == self.batch_id
        )
        if total > 0:
            self.money.transfer(
                TransferRequest(
                    id=f"batch:{self.batch_id}",
                    debit_account_id=self.clearing._clearing_id,
                    credit_account_id=self.reader.operator_account_id,
                    amount_fen=total,
                    kind="fares_to_operator",
                ),
            )


_CARD_COLUMNS = ", ".join(f.name for f in fields(buscards.BusCard))
def _revoked(card: buscards.BusCard | None, verified: VerifiedTap) -> bool:
    """Revoked before the ride (a debtor's card is listed but still charged)."""
    return card is None or (
        card.revoked_at_s is not None and card.revoked_at_s <= verified.timestamp_s
    )


def _fallback_tap_id(code: str) -> str:
    """An unverifiable code still needs an id for its outcome row: hash its text."""
    return "x" + hashlib.sha256(code.encode(errors="replace")).hexdigest()[:31]


def _check_batch(batch_id: str, taps: list[UploadedTap]) -> None:
    if not 0 < len(batch_id) <= 128:
        raise InvalidRequest("invalid_request", "batch_id must be 1-128 characters")
    if not 0 < len(taps) <= BATCH_TAPS_MAX:
        raise InvalidRequest("invalid_request", f"a batch holds 1-{BATCH_TAPS_MAX} taps")
    seqs = [t.reader_seq for t in taps]
    if len(set(seqs)) != len(seqs):
        raise InvalidRequest("invalid_request", "reader_seq repeats inside the batch")
