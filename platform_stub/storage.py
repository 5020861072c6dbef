"""Storage backends: one SQLite file (the embedded default) or a PostgreSQL server.

Both speak the same SQL; the only differences are the parameter marker, the
identity column and how a write transaction takes its locks. SQLite runs in WAL
mode and a process-wide lock serialises writers (SQLite allows one writer
anyway); PostgreSQL gives every thread its own connection and relies on row locks
(``SELECT ... FOR UPDATE``) taken in account-id order.

A SQLite transaction waits at most ``SQLITE_BUSY_TIMEOUT_MS`` in all for its turn:
first for the process-wide lock (other threads of this process), then for the file's
write lock (other processes). Past that it fails with ``storage_unavailable`` and
nothing was applied. The bound holds however many requests queue, so the service's
retries (``ledger.CONFLICT_RETRIES_MAX`` attempts) answer 503 well within the HTTP
client's timeout (``client.HTTP_TIMEOUT_S``) instead of leaving it without an answer.

Commit groups (SQLite, ``commit_group_max > 1``) are for the in-process simulation: a
COMMIT writes every page the transaction changed to the log, about 75 us for a payment
here, so up to ``commit_group_max`` transactions share one. Each runs as a savepoint
inside the group: one that fails is undone alone, and the others see its effects as
usual. Nothing outside the process reads the file mid-run, and a run that crashes is
lost whatever was committed, so answering before the COMMIT changes nothing anyone
can see; a group whose COMMIT fails raises ``StorageLost`` and the run stops.
A server answers only what is committed: other processes read the file and every
answer must be durable. Its ledger lane (``platform_stub/ledger_lane.py``) still shares
COMMITs, through ``commit_group``: it answers a batch's calls after the COMMIT.

For the same reason a simulation keeps its ledger in memory (``in_memory``): SQLite
then writes no log and checkpoints nothing, and a big ledger's pages never leave
memory. On the ledger of a 100,000-resident run at day 60 (830 MB) a payment's
transfer took 105-130 us against 190-235 us on the file in WAL mode. There a COMMIT
costs time in proportion to the whole database (its page cache), so a simulation's
groups are big (``scenarios.runner.COMMIT_GROUP_MAX``). ``flush`` and
``close`` write the database to its file whole (a copy, then a rename): the file holds
a complete ledger or none, never a half-written one.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Protocol

from platform_stub.checkpoint import Checkpointer
from platform_stub.exceptions import StorageLost, StorageUnavailable

# 3 attempts x 2 s stays under the HTTP client's 10 s timeout (see the module docstring).
SQLITE_BUSY_TIMEOUT_MS = 2_000
SQLITE_BUSY_TIMEOUT_ENV = "CASHLESS_SQLITE_BUSY_TIMEOUT_MS"  # overrides the default
# Checkpoints run on a thread of their own (platform_stub/checkpoint.py); a commit
# checkpoints only if that thread falls this far behind (about 40 MB of log). Inside a
# commit, on the ledger of a 100,000-resident run (435 MB), they cost 300 us a commit at
# SQLite's default of 1,000 pages.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
# SQLite's default page cache is 2 MB; a city's ledger grows to hundreds of MB and its
# indexes are written at random places, so with the default most page reads are system
# calls. (A memory map, tried too, made commits no faster here.)
SQLITE_CACHE_KIB = 65_536
# What every connection to a ledger file runs first (the benchmarks' bare loops too).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT_PAGES}",
    f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}",
    "PRAGMA foreign_keys=ON",
)
PG_CONNECTIONS_MAX = 16  # per process; several workers share the server's max_connections
PG_CONNECTION_WAIT_S = 10


class Cursor(Protocol):
    rowcount: int

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Database:
    """A connection factory with one method that matters: ``transaction()``."""

    dialect: str
    url: str

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:  # pragma: no cover - interface
        raise AssertionError("abstract")
        yield

    def flush(self) -> None:
        """Make every answered transaction durable now; only commit groups defer it."""

    @property
    def groups_commits(self) -> bool:
        """Whether ``commit_group`` makes transactions share one COMMIT here."""
        return False

    @contextmanager
    def commit_group(self) -> Iterator[None]:
        """Transactions inside share one COMMIT where the backend can group them; here
        each commits on its own."""
        yield

    def close(self) -> None:  # pragma: no cover - interface
        pass


class Tx:
    """A cursor inside one transaction; SQL uses ``?`` markers on every backend."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._sql(sql), tuple(params))
        return self._cursor.rowcount

    def insert_id(self, sql: str, params: Sequence[Any], id_column: str) -> int:
        """Run an INSERT and return the new row's ``id_column``, its identity column. On
        SQLite that is an ``INTEGER PRIMARY KEY``, so the rowid the insert hands back
        (``RETURNING`` costs 4-5 us more a row); PostgreSQL reads it with ``RETURNING``."""
        if self.dialect == "sqlite":
            self._cursor.execute(sql, tuple(params))
            return self._cursor.lastrowid
        self._cursor.execute(self._sql(f"{sql} RETURNING {id_column}"), tuple(params))
        return self._cursor.fetchone()[0]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(self._sql(sql), [tuple(r) for r in rows])

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        self._cursor.execute(self._sql(sql), tuple(params))
        return self._cursor.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self._cursor.execute(self._sql(sql), tuple(params))
        return self._cursor.fetchall()

    def lock_table(self, table: str) -> None:
        """Keep other writers out of ``table`` until commit (SQLite: already so)."""
        if self.dialect != "sqlite":
            self.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")

    def for_update(self) -> str:
        """Row-lock suffix: PostgreSQL locks rows; SQLite already holds the write lock."""
        return "" if self.dialect == "sqlite" else " FOR UPDATE"


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(
        self,
        path: Path,
        busy_timeout_ms: int | None = None,
        commit_group_max: int = 1,
        in_memory: bool = False,
    ) -> None:
        if commit_group_max < 1:
            raise ValueError(f"commit_group_max must be at least 1, not {commit_group_max}")
        self.commit_group_max = commit_group_max
        self.in_memory = in_memory
        self._grouped = 0  # transactions in the open commit group (0: none open)
        self._group_held = 0  # commit_group() blocks this thread is inside
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if busy_timeout_ms is None:
            busy_timeout_ms = int(os.environ.get(SQLITE_BUSY_TIMEOUT_ENV, SQLITE_BUSY_TIMEOUT_MS))
        if busy_timeout_ms < 1:
            raise ValueError(f"busy_timeout_ms must be positive, not {busy_timeout_ms}")
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            ":memory:" if in_memory else self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout_ms / 1000,
        )
        if in_memory:
            self._load_file()
            self._conn.execute("PRAGMA foreign_keys=ON")
        else:
            for pragma in SQLITE_PRAGMAS:
                self._conn.execute(pragma)
        self._conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        self._busy_timeout_set_ms = busy_timeout_ms
        self.checkpointer = None if in_memory else Checkpointer(self.path)

    def _load_file(self) -> None:
        """An in-memory database starts as a copy of the file, if there is one."""
        if self.path.exists():
            with closing(sqlite3.connect(self.path)) as source:
                source.backup(self._conn)

    def _save_file(self) -> None:
        """Write an in-memory database to its file whole: a copy beside it, then a rename,
        so the file is always a complete ledger (the old one, or this one)."""
        partial = self.path.with_name(self.path.name + ".partial")
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(partial)) as target:
            self._conn.backup(target)
        os.replace(partial, self.path)
        for stale in ("-wal", "-shm"):  # an earlier file's log must not replay over this one
            self.path.with_name(self.path.name + stale).unlink(missing_ok=True)

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        """``write=False`` begins a deferred (read) transaction: other processes' writers
        are not held up while it reads (WAL gives it a consistent snapshot)."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        waited = not self._lock.acquire(blocking=False)
        if waited and not self._lock.acquire(timeout=self.busy_timeout_ms / 1000):
            raise StorageUnavailable(
                "storage_unavailable",
                f"database busy: no turn within {self.busy_timeout_ms} ms; retry with the same id",
            )
        left = deadline if waited else None  # None: the whole timeout is left
        try:
            cur = self._conn.cursor()
            if self.commit_group_max > 1 or self._group_held:
                yield from self._grouped_transaction(cur, left)
                return
            self._begin(cur, write, left)
            try:
                yield Tx(cur, self.dialect)
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._commit(cur)
        finally:
            self._lock.release()

    def _grouped_transaction(self, cur: sqlite3.Cursor, deadline: float | None) -> Iterator[Tx]:
        """One transaction as a savepoint of the open commit group (begun if none is)."""
        if self._grouped == 0:
            self._begin(cur, True, deadline)
        cur.execute("SAVEPOINT tx")
        self._grouped += 1
        try:
            yield Tx(cur, self.dialect)
        except BaseException:
            self._undo_savepoint(cur)
            raise
        cur.execute("RELEASE tx")
        if self._grouped >= self.commit_group_max and not self._group_held:
            self._commit_group(cur)

    @property
    def groups_commits(self) -> bool:
        return True

    @contextmanager
    def commit_group(self) -> Iterator[None]:
        """Every transaction this thread runs inside is a savepoint of one transaction,
        committed once on the way out (``StorageLost`` if that fails). Other threads wait
        for the whole block, so none of their work joins a group they cannot see end.
        An exception out of the block undoes the block's work."""
        with self._lock:
            outermost = not self._group_held
            if outermost and self._grouped:  # a simulation's open group is not the block's
                self._commit_group(self._conn.cursor())
            self._group_held += 1
            try:
                yield
            except BaseException:
                if outermost and self._grouped:
                    self._grouped = 0
                    self._conn.rollback()
                raise
            finally:
                self._group_held -= 1
            if outermost and self._grouped:
                self._commit_group(self._conn.cursor())

    def _undo_savepoint(self, cur: sqlite3.Cursor) -> None:
        if not self._conn.in_transaction:  # SQLite rolled the whole group back itself
            lost, self._grouped = self._grouped - 1, 0
            raise StorageLost(
                "storage_lost",
                f"SQLite rolled the commit group back: {lost} answered transaction(s) lost",
            )
        cur.execute("ROLLBACK TO tx")
        cur.execute("RELEASE tx")

    def _commit_group(self, cur: sqlite3.Cursor) -> None:
        grouped, self._grouped = self._grouped, 0
        try:
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.rollback()
            raise StorageLost(
                "storage_lost", f"commit failed, {grouped} answered transaction(s) lost: {exc}"
            ) from exc

    def flush(self) -> None:
        """Commit the open commit group, and write an in-memory database to its file:
        before another process reads the file."""
        with self._lock:
            if self._grouped:
                self._commit_group(self._conn.cursor())
            if self.in_memory:
                self._save_file()

    def _begin(self, cur: sqlite3.Cursor, write: bool, deadline: float | None) -> None:
        """Begin, waiting for other processes' write lock only as long as is left of
        ``deadline`` (None: the turn came at once, so the whole timeout is left)."""
        left_ms = self.busy_timeout_ms
        if deadline is not None:
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
        if left_ms != self._busy_timeout_set_ms:  # a PRAGMA costs as much as a small read
            cur.execute(f"PRAGMA busy_timeout = {left_ms}")
            self._busy_timeout_set_ms = left_ms
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            detail = f"{exc}; retry with the same id"
            raise StorageUnavailable("storage_unavailable", detail) from exc

    def _commit(self, cur: sqlite3.Cursor) -> None:
        try:
            cur.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._conn.rollback()
            raise StorageUnavailable("storage_unavailable", str(exc)) from exc

    def close(self) -> None:
        self.flush()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        with self._lock:
            self._conn.close()


class PostgresDatabase(Database):
    """A bounded pool of connections; a transaction borrows one and gives it back.

    Write conflicts (a unique id inserted by a racing retry, a deadlock, a
    serialisation failure) and lost connections become ``storage_unavailable``:
    nothing was applied, and a retry with the same id gets the first outcome.
    """

    dialect = "postgres"

    def __init__(self, url: str, connections_max: int = PG_CONNECTIONS_MAX) -> None:
        import psycopg  # imported here: SQLite-only runs never need it

        self._psycopg = psycopg
        self.url = url
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(connections_max)
        self._all: list[Any] = []
        self._all_lock = threading.Lock()

    def _borrow(self) -> Any:
        if not self._slots.acquire(timeout=PG_CONNECTION_WAIT_S):
            raise StorageUnavailable("storage_unavailable", "no database connection free")
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = None
        if conn is None or conn.closed:
            conn = self._connect()
        return conn

    def _connect(self) -> Any:
        try:
            conn = self._psycopg.connect(self.url, autocommit=False)
        except self._psycopg.OperationalError as exc:
            self._slots.release()
            raise StorageUnavailable("storage_unavailable", str(exc)) from exc
        with self._all_lock:  # forget connections the server dropped: no leak across drops
            self._all = [c for c in self._all if not c.closed]
            self._all.append(conn)
        return conn

    def _give_back(self, conn: Any) -> None:
        if _usable(conn):
            self._idle.put(conn)
        elif not conn.closed:
            conn.close()
        self._slots.release()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Tx]:
        conn = self._borrow()
        try:
            with conn.cursor() as cur:
                if not write:  # one snapshot for every statement: audits add up
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield Tx(cur, self.dialect)
            conn.commit()
        except BaseException as exc:
            self._roll_back(conn)
            if self._transient(exc, conn):
                raise StorageUnavailable("storage_unavailable", _first_line(exc)) from exc
            raise
        finally:
            self._give_back(conn)

    def _transient(self, exc: BaseException, conn: Any) -> bool:
        """A conflict, or any database error on a connection that is gone (a killed
        backend can surface as an interface error too): nothing was applied, and a retry
        with the same id gets the first outcome. Other errors are bugs and stay so."""
        psycopg = self._psycopg
        if isinstance(exc, psycopg.OperationalError | psycopg.IntegrityError):
            return True
        return isinstance(exc, psycopg.Error) and not _usable(conn)

    def _roll_back(self, conn: Any) -> None:
        """Roll back if the connection still answers; a lost one is dropped on return."""
        if _usable(conn):
            try:
                conn.rollback()
            except self._psycopg.Error:
                conn.close()

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


IN_LIST_MAX = 500  # parameters per IN list, well under every backend's limit


def in_chunks(values: Sequence) -> list[Sequence]:
    """``values`` cut into lists short enough for one ``IN (...)`` each."""
    return [values[i : i + IN_LIST_MAX] for i in range(0, len(values), IN_LIST_MAX)]


def marks(values: Sequence) -> str:
    """One ``?`` per value, comma-separated: the inside of an ``IN (...)``."""
    return ", ".join("?" * len(values))


def rows_in(tx: Tx, sql: str, values: Sequence) -> list[tuple]:
    """``sql`` with its one ``IN ({})`` list filled from ``values``, chunk by chunk."""
    rows: list[tuple] = []
    for chunk in in_chunks(values):
        rows += tx.all(sql.format(marks(chunk)), chunk)
    return rows


def _usable(conn: Any) -> bool:
    """Open and not broken (psycopg marks a connection whose server went away broken)."""
    return not conn.closed and not getattr(conn, "broken", False)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def now_us() -> int:
    """Wall-clock microseconds, the platform's timestamps (records, not decisions)."""
    return time.time_ns() // 1_000


def open_database(url: str, commit_group_max: int = 1, in_memory: bool = False) -> Database:
    """Open ``sqlite:///path``, a bare file path, or ``postgresql://...``.
    ``commit_group_max`` > 1 groups commits and ``in_memory`` keeps the ledger in memory
    until close (SQLite only, for a simulation's own file; see the module docstring)."""
    if url.startswith(("postgresql://", "postgres://")):
        if commit_group_max != 1 or in_memory:
            raise ValueError(
                "commit groups and in-memory ledgers are for an in-process SQLite file,"
                " not PostgreSQL"
            )
        return PostgresDatabase(url)
    if "://" in url and not url.startswith("sqlite:///"):
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://")
    path = Path(url.removeprefix("sqlite:///"))
    return SqliteDatabase(path, commit_group_max=commit_group_max, in_memory=in_memory)
