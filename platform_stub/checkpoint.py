"""WAL checkpoints on a thread of their own, so that no commit waits for one.

In WAL mode SQLite copies the log back into the database file (a checkpoint, with an
fsync) inside whichever commit crosses ``wal_autocheckpoint`` pages. On a big ledger
that made every commit pay about 300 us on average, and a checkpoint of thousands of
pages stalls the request that triggers it by tens of milliseconds. Here a thread with
its own connection runs a PASSIVE checkpoint every ``CHECKPOINT_INTERVAL_S``: it never
blocks writers or readers (it skips what they hold and returns), and it runs while the
GIL is released, so a server or a simulation keeps working meanwhile. The commit-time
autocheckpoint stays on at a higher bound, as the limit on the log should this thread
fall behind.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

CHECKPOINT_INTERVAL_S = 0.1
STOP_WAIT_S = 5.0


class Checkpointer:
    """Checkpoints ``path``'s WAL every ``interval_s`` until ``stop``."""

    def __init__(self, path: Path, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self.interval_s = interval_s
        # (frames in the log, frames of it in the database file) after the last turn.
        self.last_frames: tuple[int, int] = (0, 0)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                self._checkpoint()
        finally:
            self._conn.close()

    def _checkpoint(self) -> None:
        try:
            busy, log, done = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return  # locked or busy now: the next turn (or the autocheckpoint) catches up
        if not busy:
            self.last_frames = (log, done)

    def stop(self) -> None:
        """Stop after the checkpoint under way, if any; the connection closes with it."""
        self._stop.set()
        self._thread.join(timeout=STOP_WAIT_S)
