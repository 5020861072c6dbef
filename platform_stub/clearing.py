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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

from platform_stub import buscards
from platform_stub.exceptions import InvalidRequest, PlatformError, Rejected, TapRejected
from platform_stub.ledger import Ledger, TransferRequest
from platform_stub.storage import Tx, now_us
from platform_stub.transit.credential import CredentialCache
from platform_stub.transit.verify import (
    CLEARING_MAX_AGE_S,
    CLEARING_SKEW_S,
    VerifiedTap,
    verify_tap,
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


@dataclass(frozen=True)
class Fares:
    """How rides are priced; part of the platform's configuration."""

    fare_fen: int = 200
    transfer_discount_fen: int = 100
    transfer_window_s: int = 90 * 60
    free_ride_dates: frozenset[dt.date] = field(default_factory=frozenset)


@dataclass(frozen=True)
class UploadedTap:
    reader_seq: int
    code: str
    scanned_at_s: int


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Reader:
    reader_id: str
    operator_account_id: int


_OUTCOME_FIELDS = tuple(f.name for f in fields(TapOutcome))


def create_tables(tx: Tx) -> None:
    for ddl in SCHEMA:
        tx.execute(ddl)


def batch_hash(taps: list[UploadedTap]) -> str:
    body = json.dumps([(t.reader_seq, t.code, t.scanned_at_s) for t in taps],
                      separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


class Clearing:
    def __init__(
        self, ledger: Ledger, public_keys: Callable[[], Mapping[int, bytes]], fares: Fares
    ) -> None:
        self.ledger = ledger
        self.public_keys = public_keys  # every key id still valid; keys rotate
        self.fares = fares
        self._credential_cache = CredentialCache()
        with ledger.db.transaction() as tx:  # made once, committed: its id never changes
            self._clearing_id = ledger.create_account(tx, CLEARING_ACCOUNT, "clearing", 0).id

    def upload(self, reader: Reader, batch_id: str, taps: list[UploadedTap]) -> list[TapOutcome]:
        """Clear one batch in one transaction; re-sending it returns the same outcomes."""
        _check_batch(batch_id, taps)
        digest = batch_hash(taps)
        with self.ledger.db.transaction() as tx:
            if self._seen_batch(tx, reader, batch_id, digest):
                return [self._outcome(tx, reader.reader_id, t.reader_seq) for t in taps]
            tx.execute(
                "INSERT INTO tap_batches (batch_id, reader_id, body_hash, received_at_us)"
                " VALUES (?, ?, ?, ?)",
                (batch_id, reader.reader_id, digest, now_us()),
            )
            outcomes = [self._clear_once(tx, reader, batch_id, t) for t in taps]
            self._credit_operator(tx, reader, batch_id, outcomes)
        return outcomes

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

    def _clear_once(self, tx: Tx, reader: Reader, batch_id: str, tap: UploadedTap) -> TapOutcome:
        previous = self._outcome(tx, reader.reader_id, tap.reader_seq)
        if previous is not None:  # an overlapping batch already carried this tap
            return previous
        outcome = self._clear(tx, reader, batch_id, tap)
        tx.execute(
            f"INSERT INTO tap_outcomes ({_OUTCOME_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            astuple_outcome(outcome),
        )
        return outcome

    def _clear(self, tx: Tx, reader: Reader, batch_id: str, tap: UploadedTap) -> TapOutcome:
        base = dict(
            reader_id=reader.reader_id,
            reader_seq=tap.reader_seq,
            scanned_at_s=tap.scanned_at_s,
            batch_id=batch_id,
        )
        try:
            verified = verify_tap(
                tap.code,
                self.public_keys(),
                now_s=tap.scanned_at_s,
                deny_list=frozenset(),
                skew_s=CLEARING_SKEW_S,
                max_age_s=CLEARING_MAX_AGE_S,
                credential_cache=self._credential_cache,
            )
        except TapRejected as err:
            return _rejected(base, _fallback_tap_id(tap.code), None, None, err.code, None)
        ident = dict(
            tap_id=verified.tap_id, card_id=verified.card_id, tapped_at_s=verified.timestamp_s
        )
        first_reader = self._first_reader(tx, verified.tap_id)
        if first_reader is not None:
            return _rejected(base, **ident, reason="replayed_code", first_reader_id=first_reader)
        card = buscards.card(tx, verified.card_id)
        if _revoked(card, verified):
            return _rejected(base, **ident, reason="card_revoked", first_reader_id=None)
        charge = self._charge(tx, verified, card)
        return TapOutcome(
            **base, **ident, outcome="cleared", reason=None, **charge, first_reader_id=None
        )

    def _first_reader(self, tx: Tx, tap_id: str) -> str | None:
        """The reader whose copy of this code was cleared, if one was: then this is a replay."""
        row = tx.one(
            "SELECT reader_id FROM tap_outcomes WHERE tap_id = ? AND outcome = 'cleared'",
            (tap_id,),
        )
        return None if row is None else row[0]

    def _charge(self, tx: Tx, verified: VerifiedTap, card: buscards.BusCard) -> dict[str, int]:
        """Price the ride and move the money: promo budget, then wallet, then credit."""
        fare = self._price(tx, verified)
        clearing_id = self._clearing_id
        promo = self._promo_share(tx, verified, fare)
        wallet_id = _wallet_of(tx, card.participant_id)
        wallet = min(fare - promo, max(0, self.ledger.account(tx, wallet_id).balance_fen))
        credit = fare - promo - wallet
        legs = ((wallet_id, wallet, "fare"), (card.credit_account_id, credit, "fare_on_credit"))
        for debit_id, amount, kind in legs:
            if amount > 0:
                self.ledger.transfer(
                    tx,
                    TransferRequest(
                        id=f"tap:{verified.tap_id}:{kind}",
                        debit_account_id=debit_id,
                        credit_account_id=clearing_id,
                        amount_fen=amount,
                        kind=kind,
                    ),
                )
        if buscards.debt_fen(tx, self.ledger, card) > 0:
            buscards.set_listed(tx, card.card_id, True, buscards.REASON_DEBT)
        return {"fare_fen": fare, "wallet_fen": wallet, "credit_fen": credit, "promo_fen": promo}

    def _price(self, tx: Tx, verified: VerifiedTap) -> int:
        earlier = tx.one(
            "SELECT COUNT(*) FROM tap_outcomes WHERE card_id = ? AND outcome = 'cleared'"
            " AND tapped_at_s >= ? AND tapped_at_s < ?",
            (
                verified.card_id,
                verified.timestamp_s - self.fares.transfer_window_s,
                verified.timestamp_s,
            ),
        )[0]
        discount = self.fares.transfer_discount_fen if earlier else 0
        return max(0, self.fares.fare_fen - discount)

    def _promo_share(self, tx: Tx, verified: VerifiedTap, fare: int) -> int:
        """On a free-ride day the campaign pays the fare while its budget lasts."""
        day = dt.datetime.fromtimestamp(verified.timestamp_s, CHINA_TZ).date()
        if fare == 0 or day not in self.fares.free_ride_dates:
            return 0
        promo = tx.one("SELECT id FROM accounts WHERE name = ?", (PROMO_ACCOUNT,))
        if promo is None:
            return 0
        try:
            self.ledger.transfer(
                tx,
                TransferRequest(
                    id=f"tap:{verified.tap_id}:promo",
                    debit_account_id=promo[0],
                    credit_account_id=self._clearing_id,
                    amount_fen=fare,
                    kind="fare_promo",
                ),
            )
        except PlatformError:
            return 0  # budget spent: the campaign has stopped, the rider pays
        return fare

    def _credit_operator(
        self, tx: Tx, reader: Reader, batch_id: str, outcomes: list[TapOutcome]
    ) -> None:
        total = sum(
            o.fare_fen for o in outcomes if o.outcome == "cleared" and o.batch_id == batch_id
        )
        if total > 0:
            self.ledger.transfer(
                tx,
                TransferRequest(
                    id=f"batch:{batch_id}",
                    debit_account_id=self._clearing_id,
                    credit_account_id=reader.operator_account_id,
                    amount_fen=total,
                    kind="fares_to_operator",
                ),
            )


def _rejected(
    base: dict,
    tap_id: str,
    card_id: int | None,
    tapped_at_s: int | None,
    reason: str,
    first_reader_id: str | None,
) -> TapOutcome:
    return TapOutcome(
        **base,
        tap_id=tap_id,
        card_id=card_id,
        tapped_at_s=tapped_at_s,
        outcome="rejected",
        reason=reason,
        fare_fen=0,
        wallet_fen=0,
        credit_fen=0,
        promo_fen=0,
        first_reader_id=first_reader_id,
    )


def _revoked(card: buscards.BusCard | None, verified: VerifiedTap) -> bool:
    """Revoked before the ride (a debtor's card is listed but still charged)."""
    return card is None or (
        card.revoked_at_s is not None and card.revoked_at_s <= verified.timestamp_s
    )


def _fallback_tap_id(code: str) -> str:
    """An unverifiable code still needs an id for its outcome row: hash its text."""
    return "x" + hashlib.sha256(code.encode(errors="replace")).hexdigest()[:31]


def _wallet_of(tx: Tx, participant_id: int) -> int:
    return tx.one("SELECT account_id FROM participants WHERE id = ?", (participant_id,))[0]


def astuple_outcome(outcome: TapOutcome) -> tuple:
    """Field values in column order; a flat getattr, as ``asdict`` deep-copies (hot path)."""
    return tuple(getattr(outcome, name) for name in _OUTCOME_FIELDS)


def _check_batch(batch_id: str, taps: list[UploadedTap]) -> None:
    if not 0 < len(batch_id) <= 128:
        raise InvalidRequest("invalid_request", "batch_id must be 1-128 characters")
    if not 0 < len(taps) <= BATCH_TAPS_MAX:
        raise InvalidRequest("invalid_request", f"a batch holds 1-{BATCH_TAPS_MAX} taps")
    seqs = [t.reader_seq for t in taps]
    if len(set(seqs)) != len(seqs):
        raise InvalidRequest("invalid_request", "reader_seq repeats inside the batch")
