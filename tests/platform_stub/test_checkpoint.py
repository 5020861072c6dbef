"""WAL checkpoints happen on the checkpointer's thread, not inside commits."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from platform_stub.checkpoint import Checkpointer
from platform_stub.storage import SqliteDatabase

WAIT_S = 5.0


def _write_rows(db: SqliteDatabase, count: int) -> None:
    with db.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    for n in range(count):
        with db.transaction() as tx:
            tx.execute("INSERT INTO t (v) VALUES (?)", ("x" * 200 + str(n),))


def _wal_written_back(checkpointer: Checkpointer) -> tuple[int, int]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        log, done = checkpointer.last_frames
        if log > 0 and done == log:
            return log, done
        time.sleep(0.02)
    return checkpointer.last_frames


def test_the_thread_writes_the_log_back_though_no_commit_reached_the_bound(
    tmp_path: Path,
) -> None:
    db = SqliteDatabase(tmp_path / "ledger.db")
    try:
        _write_rows(db, 50)  # far fewer pages than the commit-time autocheckpoint bound
        log, done = _wal_written_back(db.checkpointer)
        assert log > 0 and done == log, (log, done)
    finally:
        db.close()
    check = sqlite3.connect(tmp_path / "ledger.db")
    assert check.execute("SELECT COUNT(*) FROM t").fetchone() == (50,)  # nothing lost
    check.close()


def test_close_stops_the_thread(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "ledger.db")
    thread = db.checkpointer._thread
    assert thread.is_alive()
    db.close()
    assert not thread.is_alive()


def test_a_reader_holding_the_log_delays_the_checkpoint_but_blocks_no_writer(
    tmp_path: Path,
) -> None:
    db = SqliteDatabase(tmp_path / "ledger.db")
    reader = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        _write_rows(db, 5)
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == (5,)  # a snapshot
        started = time.monotonic()
        _write_rows(db, 20)  # the writer goes on while the reader holds its snapshot
        assert time.monotonic() - started < WAIT_S
        assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == (5,)
        reader.execute("COMMIT")
        log, done = _wal_written_back(db.checkpointer)
        assert done == log > 0
    finally:
        reader.close()
        db.close()


def test_a_non_positive_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="interval_s must be positive"):
        Checkpointer(tmp_path / "x.db", interval_s=0)
