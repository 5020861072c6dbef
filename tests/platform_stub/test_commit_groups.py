"""An in-process run's storage (platform_stub/storage.py): transactions share COMMITs
(commit groups), the ledger stays in memory until close, and nothing else changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from platform_stub.exceptions import StorageLost
from platform_stub.storage import SqliteDatabase, open_database
from scenarios import runner
from scenarios.loader import load_scenario

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny.toml"


def _db(tmp_path: Path, group: int) -> SqliteDatabase:
    db = SqliteDatabase(tmp_path / "ledger.db", commit_group_max=group)
    with db.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    return db


def _insert(db: SqliteDatabase, value: str) -> None:
    with db.transaction() as tx:
        tx.execute("INSERT INTO t (v) VALUES (?)", (value,))


def _seen_elsewhere(path: Path) -> list[str]:
    """What another connection (another process, say) reads: committed rows only."""
    other = sqlite3.connect(path)
    try:
        return [v for (v,) in other.execute("SELECT v FROM t ORDER BY id")]
    except sqlite3.OperationalError:  # the table itself is not committed yet
        return []
    finally:
        other.close()


def _seen_here(db: SqliteDatabase) -> list[str]:
    with db.transaction(write=False) as tx:
        return [v for (v,) in tx.all("SELECT v FROM t ORDER BY id")]


def test_a_group_commits_when_it_is_full_and_its_transactions_see_each_other(
    tmp_path: Path,
) -> None:
    db = _db(tmp_path, 4)  # the CREATE TABLE was the group's first transaction
    try:
        _insert(db, "a")
        _insert(db, "b")
        assert _seen_here(db) == ["a", "b"]  # the 4th transaction: the group commits
        assert _seen_elsewhere(db.path) == ["a", "b"]
        _insert(db, "c")
        assert _seen_here(db) == ["a", "b", "c"]
        assert _seen_elsewhere(db.path) == ["a", "b"]
        db.flush()
        assert _seen_elsewhere(db.path) == ["a", "b", "c"]
    finally:
        db.close()


def test_a_failed_transaction_is_undone_alone(tmp_path: Path) -> None:
    db = _db(tmp_path, 64)
    try:
        _insert(db, "kept")
        with pytest.raises(RuntimeError), db.transaction() as tx:
            tx.execute("INSERT INTO t (v) VALUES ('undone')")
            raise RuntimeError("refused half way")
        _insert(db, "after")
        assert _seen_here(db) == ["kept", "after"]
    finally:
        db.close()  # close commits the open group
    assert _seen_elsewhere(tmp_path / "ledger.db") == ["kept", "after"]


def test_a_group_sqlite_rolled_back_itself_stops_the_run(tmp_path: Path) -> None:
    """Some errors (disk full, I/O) make SQLite abandon the whole transaction: the group's
    answered work is gone, which no caller may take for one refused call."""
    db = _db(tmp_path, 64)
    db.flush()
    try:
        _insert(db, "answered")
        with pytest.raises(StorageLost) as err, db.transaction() as tx:
            tx.execute("ROLLBACK")  # what SQLite does itself on such an error
            raise sqlite3.OperationalError("database or disk is full")
        assert err.value.code == "storage_lost"
        assert "1 answered transaction(s) lost" in err.value.detail
        _insert(db, "next")  # the file is usable again, without the lost rows
        db.flush()
        assert _seen_elsewhere(db.path) == ["next"]
    finally:
        db.close()


def test_commit_groups_are_refused_for_postgresql_and_below_one() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        open_database("postgresql://127.0.0.1/test", commit_group_max=8)
    with pytest.raises(ValueError, match="at least 1"):
        SqliteDatabase(Path("unused.db"), commit_group_max=0)


def test_an_in_memory_ledger_reaches_its_file_whole_on_flush_and_close(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    db = SqliteDatabase(path, commit_group_max=4, in_memory=True)
    try:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        for value in ("a", "b", "c", "d", "e"):
            _insert(db, value)  # two groups commit, in memory only
        assert not path.exists()
        with pytest.raises(RuntimeError), db.transaction() as tx:
            tx.execute("INSERT INTO t (v) VALUES ('undone')")
            raise RuntimeError("refused half way")
        db.flush()
        assert _seen_elsewhere(path) == ["a", "b", "c", "d", "e"]
        _insert(db, "f")
        assert _seen_elsewhere(path) == ["a", "b", "c", "d", "e"]  # until the next flush
    finally:
        db.close()
    assert _seen_elsewhere(path) == ["a", "b", "c", "d", "e", "f"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.db"]  # no partial copy


def test_an_in_memory_ledger_starts_from_its_file_and_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first = _db(tmp_path, 1)
    _insert(first, "earlier")
    first.close()
    stale_log = path.with_name("ledger.db-wal")
    stale_log.write_bytes(b"not a log of this file")  # a crashed process's leftovers
    db = SqliteDatabase(path, in_memory=True)
    try:
        assert _seen_here(db) == ["earlier"]
        _insert(db, "later")
    finally:
        db.close()
    assert not stale_log.exists()
    assert _seen_elsewhere(path) == ["earlier", "later"]


def test_in_memory_ledgers_are_refused_for_postgresql() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        open_database("postgresql://127.0.0.1/test", in_memory=True)


def test_a_run_gives_the_same_results_on_the_file_alone_and_grouped_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = load_scenario(TINY)
    frames = {}
    for group, in_memory in ((1, False), (runner.COMMIT_GROUP_MAX, True)):
        monkeypatch.setattr(runner, "COMMIT_GROUP_MAX", group)
        monkeypatch.setattr(runner, "LEDGER_IN_MEMORY", in_memory)
        folder = tmp_path / f"group{group}"
        result = runner.run_scenario(scenario, folder, console=Console(quiet=True))
        assert result.summary["ledger"]["audit_ok"]
        frames[group] = [
            pl.read_parquet(folder / name) for name in ("daily.parquet", "taps.parquet")
        ]
        with sqlite3.connect(folder / "ledger.db") as ledger:  # all of it committed
            frames[group].append(
                pl.DataFrame(
                    ledger.execute(
                        "SELECT name, debits_posted, credits_posted FROM accounts ORDER BY id"
                    ).fetchall(),
                    orient="row",
                )
            )
    grouped, single = frames[runner.COMMIT_GROUP_MAX], frames[1]
    assert grouped[1].height > 0  # taps were cleared
    for a, b in zip(grouped, single, strict=True):
        assert a.equals(b)
