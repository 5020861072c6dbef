"""Lost taps: every tap a reader accepted and uploaded must have exactly one outcome.

A ``BusReader`` user counts, per reader, the taps it accepted offline and the taps
the platform acknowledged (the batches whose upload returned an outcome per tap).
A reader's sequence numbers start at 1 and batches leave in order, so the uploaded
taps are seqs 1..``uploaded``. After the run the platform's ``tap_outcomes`` table
(keyed by reader and seq, so never two rows for one tap) must hold a row for each
of them: a missing row is a lost tap, and a load test with one fails whatever its
latency. Rows past ``uploaded`` are batches whose reply was lost at the stop; they
are counted (``unacknowledged``), not failed: the reader would resend them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from platform_stub import open_database

READER_TAPS_FILE = "reader_taps.json"


@dataclass
class TapTally:
    accepted: int = 0  # scans the reader stored
    uploaded: int = 0  # taps in acknowledged batches: seqs 1..uploaded


@dataclass
class TapLedger:
    """One process's tallies, by reader id ("R<participant id>")."""

    tallies: dict[str, TapTally] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, reader_id: str) -> None:
        with self._lock:
            self.tallies.setdefault(reader_id, TapTally()).accepted += 1

    def uploaded(self, reader_id: str, last_seq: int) -> None:
        """A batch ending at ``last_seq`` was acknowledged (batches go in seq order)."""
        with self._lock:
            tally = self.tallies.setdefault(reader_id, TapTally())
            assert last_seq > tally.uploaded, "a reader acknowledges batches in seq order"
            tally.uploaded = last_seq

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Cumulative (not a delta): a newer snapshot of a reader replaces an older one."""
        with self._lock:
            return {reader: asdict(tally) for reader, tally in self.tallies.items()}


@dataclass(frozen=True)
class TapCheck:
    readers: int
    accepted: int
    uploaded: int
    outcome_rows: int  # rows for uploaded taps; equals ``uploaded`` unless taps were lost
    lost: int
    unacknowledged: int
    lost_by_reader: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.lost == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def check_taps(db_url: str, tallies: Mapping[str, Mapping[str, int]]) -> TapCheck:
    """Count each reader's outcome rows in the platform's database (after the run)."""
    db = open_database(db_url)
    try:
        with db.transaction() as tx:
            rows = {reader: _rows(tx, reader, t["uploaded"]) for reader, t in tallies.items()}
    finally:
        db.close()
    lost = {r: tallies[r]["uploaded"] - rows[r][0] for r in tallies}
    return TapCheck(
        readers=len(tallies),
        accepted=sum(t["accepted"] for t in tallies.values()),
        uploaded=sum(t["uploaded"] for t in tallies.values()),
        outcome_rows=sum(counted for counted, _ in rows.values()),
        lost=sum(lost.values()),
        unacknowledged=sum(extra for _, extra in rows.values()),
        lost_by_reader={r: n for r, n in sorted(lost.items()) if n},
    )


def _rows(tx: Any, reader_id: str, uploaded: int) -> tuple[int, int]:
    """(rows for seqs 1..uploaded, rows after them)."""
    within, after = tx.one(
        "SELECT COALESCE(SUM(CASE WHEN reader_seq <= ? THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN reader_seq > ? THEN 1 ELSE 0 END), 0)"
        " FROM tap_outcomes WHERE reader_id = ?",
        (uploaded, uploaded, reader_id),
    )
    return int(within), int(after)
