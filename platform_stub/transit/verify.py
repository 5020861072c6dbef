"""One offline verification of a tap, shared by bus readers and by clearing.

Checks run in this order and the first failure names the rejection:

    code_malformed      the text or bytes do not parse (length, version, base45)
    signature_invalid   the platform key id is unknown, or the credential's platform
                        signature does not verify
    credential_expired  now_s >= the credential's expires_at_s
    signature_invalid   the code's rider signature does not verify
    code_expired        the code's timestamp is more than skew_s ahead of now_s, or
                        more than max_age_s behind it
    card_revoked        the card is on the deny list

Readers pass their own clock as ``now_s``. Clearing passes the time the reader scanned
the tap and wider windows (``CLEARING_SKEW_S``, ``CLEARING_MAX_AGE_S``) because a reader
clock that drifted while offline must not turn honest rides into rejections.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Container, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from platform_stub.exceptions import TapRejected
from platform_stub.frozen import frozen, row_getter
from platform_stub.transit.code import (
    decode_code_text,
    decode_codes_text,
    signed_message,
    split_code,
    tap_id_of,
)
from platform_stub.transit.credential import (
    CredentialCache,
    credential_fields,
    verify_credential_bytes,
    verify_signature,
)

# Phones set their clocks from the network but may have been offline for days; 30 s
# covers ordinary drift between a phone and a reader without widening the replay window
# much.
CLOCK_SKEW_S = 30
# The app refreshes its code every ~30 s; a code shown for a whole refresh period plus
# one clock skew is still fresh. A screenshot older than a minute is not.
CODE_REFRESH_S = 30
CODE_MAX_AGE_S = CODE_REFRESH_S + CLOCK_SKEW_S
# How far a reader's clock may drift while it is offline between syncs. Clearing widens
# both windows by this much; the reader already applied the tight ones at the door.
READER_CLOCK_DRIFT_S = 600
CLEARING_SKEW_S = CLOCK_SKEW_S + READER_CLOCK_DRIFT_S
CLEARING_MAX_AGE_S = CODE_MAX_AGE_S + READER_CLOCK_DRIFT_S


@frozen
class VerifiedTap:
    tap_id: str
    card_id: int
    key_id: int
    timestamp_s: int
    credit_limit_fen: int
    expires_at_s: int


VERIFIED_ROW = row_getter(VerifiedTap)  # ``VerifiedTap(*row)`` builds it back


def verify_tap(
    code: str | bytes,
    public_keys: Mapping[int, bytes],
    now_s: int,
    deny_list: Container[int],
    skew_s: int = CLOCK_SKEW_S,
    max_age_s: int = CODE_MAX_AGE_S,
    credential_cache: CredentialCache | None = None,
) -> VerifiedTap:
    """Verify a scanned code (base45 text, or the binary code) offline at ``now_s``;
    raise ``TapRejected`` with the first failing reason (see the module docstring).

    Every reader scan and every cleared tap comes here, so the fields are read straight
    from the bytes (``split_code``, ``credential_fields``) and the signed parts sliced
    from them: no ``OfflineCode`` or ``Credential`` is built and nothing packed again."""
    data = decode_code_text(code) if isinstance(code, str) else bytes(code)
    credential, timestamp_s, nonce, signature = split_code(data)
    key_id, card_id, rider_key, credit_limit_fen, expires_at_s, _ = credential_fields(credential)
    verify_credential_bytes(credential, public_keys, credential_cache)
    _check_unexpired(card_id, expires_at_s, now_s)
    verify_signature(rider_key, signature, signed_message(data), "code")
    _check_fresh(timestamp_s, now_s, skew_s, max_age_s)
    check_not_denied(card_id, deny_list)
    return VerifiedTap(
        tap_id_of(card_id, timestamp_s, nonce),
        card_id,
        key_id,
        timestamp_s,
        credit_limit_fen,
        expires_at_s,
    )


def _check_unexpired(card_id: int, expires_at_s: int, now_s: int) -> None:
    if now_s >= expires_at_s:
        raise TapRejected(
            "credential_expired",
            f"card {card_id}: credential expired at {expires_at_s}, "
            f"now {now_s}; the app renews it when next online",
        )


def _check_fresh(timestamp_s: int, now_s: int, skew_s: int, max_age_s: int) -> None:
    age_s = now_s - timestamp_s
    if age_s < -skew_s:
        raise TapRejected(
            "code_expired",
            f"code is {-age_s} s in the future (limit {skew_s} s); check the phone's clock",
        )
    if age_s > max_age_s:
        raise TapRejected(
            "code_expired", f"code is {age_s} s old (limit {max_age_s} s); show a fresh code"
        )


def check_not_denied(card_id: int, deny_list: Container[int]) -> None:
    if card_id in deny_list:
        raise TapRejected(
            "card_revoked", f"card {card_id} is on the deny list; settle its debt in the app"
        )


# -- many taps at once (clearing) ---------------------------------------------------

# Below this many taps a batch is verified in the calling thread: handing work to other
# processes costs more than it saves.
PARALLEL_TAPS_MIN = 64
VERIFY_WORKERS_ENV = "CASHLESS_VERIFY_WORKERS"  # 0: verify in the calling thread only
# A batch is cut into this many chunks per worker: the first comes back early, and the
# caller works on it while the workers go on with the rest.
CHUNKS_PER_WORKER = 4
FIRST_CHUNK_TAPS = 16
_PARENT_POLL_S = 1.0
# Clearing sees every card holder in the city, a reader only its own riders (the
# credential module's default): with too small a cache every tap's platform signature
# is verified again. About 170 bytes an entry, so about 22 MB when full.
CLEARING_CACHE_ENTRIES_MAX = 131_072


def verify_taps(
    taps: Sequence[tuple[str, int]],
    public_keys: Mapping[int, bytes],
    skew_s: int,
    max_age_s: int,
    credential_cache: CredentialCache | None = None,
) -> list[VerifiedTap | str]:
    """``verify_tap`` for each (code, now_s) with an empty deny list: the verified tap,
    or the rejection's code."""
    checked: list[VerifiedTap | str] = []
    decoded = decode_codes_text([code for code, _ in taps])
    for (text, now_s), binary in zip(taps, decoded, strict=True):
        code = text if binary is None else binary  # None: verify_tap says why it fails
        try:
            checked.append(
                verify_tap(code, public_keys, now_s, (), skew_s, max_age_s, credential_cache)
            )
        except TapRejected as err:
            checked.append(err.code)
    return checked


class TapVerifier:
    """Verifies a batch's taps on every core, split over worker processes: libsodium
    releases the GIL during a verify, but the parsing and checks around it are Python,
    and on threads they took turns with the caller's clearing (0.26-0.29 of the bare
    loop against 0.41-0.52 with processes, ``benchmarks/README.md``).

    The pool starts on the first batch of ``PARALLEL_TAPS_MIN`` taps or more, with one
    worker per core (``CASHLESS_VERIFY_WORKERS`` overrides; 0 keeps all work here).
    Workers are spawned, and a spawned process imports the parent's ``__main__``: that
    is safe for ``python -m module`` (the server, ``python -m pytest``) and an interactive
    session, but a plain script would run its top level again in every worker (a script
    that moves money would move it again). So by default a plain script gets no workers;
    one that keeps its work under ``if __name__ == "__main__":`` may opt in with the
    variable (the benchmarks do).
    Each worker keeps its own credential cache. Workers exit when this process does,
    even when it is killed. A pool that breaks is replaced and its batch verified here,
    so every tap still gets its verification.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else max(0, workers)
        self.cache = CredentialCache(CLEARING_CACHE_ENTRIES_MAX)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._here_lock = threading.Lock()

    def verify(
        self,
        taps: Sequence[tuple[str, int]],
        public_keys: Mapping[int, bytes],
        skew_s: int = CLEARING_SKEW_S,
        max_age_s: int = CLEARING_MAX_AGE_S,
    ) -> list[VerifiedTap | str]:
        """Every tap's check, in order."""
        return [
            c for part in self.verify_chunks(taps, public_keys, skew_s, max_age_s) for c in part
        ]

    def verify_chunks(
        self,
        taps: Sequence[tuple[str, int]],
        public_keys: Mapping[int, bytes],
        skew_s: int = CLEARING_SKEW_S,
        max_age_s: int = CLEARING_MAX_AGE_S,
    ) -> Iterator[list[VerifiedTap | str]]:
        """The checks of consecutive chunks of ``taps``, in order, each as soon as it is
        done, so a caller can work on one chunk while the workers verify the next. The
        work starts now, not on the first ``next``: a small batch is verified here before
        this returns, a big one is handed to the workers."""
        if self.workers < 2 or len(taps) < PARALLEL_TAPS_MIN:
            return iter([self._verify_here(taps, public_keys, skew_s, max_age_s)])
        keys = dict(public_keys)
        size = max(PARALLEL_TAPS_MIN // 2, -(-len(taps) // (self.workers * CHUNKS_PER_WORKER)))
        # A small first chunk: the caller waits for it with nothing else to do.
        chunks = [taps[:FIRST_CHUNK_TAPS]] + [
            taps[i : i + size] for i in range(FIRST_CHUNK_TAPS, len(taps), size)
        ]
        try:
            pool = self._started()
            futures = [
                pool.submit(_verify_in_worker, chunk, keys, skew_s, max_age_s) for chunk in chunks
            ]
        except BrokenProcessPool:
            futures = []
        return self._results(chunks, futures, public_keys, skew_s, max_age_s)

    def _results(
        self,
        chunks: list[Sequence[tuple[str, int]]],
        futures: list[Future],
        public_keys: Mapping[int, bytes],
        skew_s: int,
        max_age_s: int,
    ) -> Iterator[list[VerifiedTap | str]]:
        for index, chunk in enumerate(chunks):
            try:
                rows = futures[index].result() if futures else None
            except BrokenProcessPool:
                rows = None
            if rows is None:  # the pool broke: this and every later chunk verified here
                self._discard_pool()
                futures = []
                yield self._verify_here(chunk, public_keys, skew_s, max_age_s)
            else:
                yield [r if isinstance(r, str) else VerifiedTap(*r) for r in rows]

    def _verify_here(
        self,
        taps: Sequence[tuple[str, int]],
        public_keys: Mapping[int, bytes],
        skew_s: int,
        max_age_s: int,
    ) -> list[VerifiedTap | str]:
        """In this thread; one thread at a time, as the credential cache is not shared-safe
        (small batches, every batch where there are no workers, and a broken pool's)."""
        with self._here_lock:
            return verify_taps(taps, public_keys, skew_s, max_age_s, self.cache)

    def start(self) -> None:
        """Start the workers now rather than on the first big batch (a server's start-up)
        and wait until each has imported this module."""
        if self.workers >= 2:
            pool = self._started()
            list(pool.map(_ready, range(self.workers * 2)))

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = spawn_pool(self.workers)
            return self._pool

    def _discard_pool(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._discard_pool()


# A worker process's credential cache (clearing's verify workers, the ride worker of
# agents.ride_codes): each process has its own, kept across its calls.
WORKER_CACHE = CredentialCache(CLEARING_CACHE_ENTRIES_MAX)


def _verify_in_worker(
    taps: Sequence[tuple[str, int]], public_keys: Mapping[int, bytes], skew_s: int, max_age_s: int
) -> list[tuple | str]:
    """Checks travel back as plain tuples: pickling a dataclass costs both processes
    about 1 us a tap, a tuple a fifth of that."""
    checks = verify_taps(taps, public_keys, skew_s, max_age_s, WORKER_CACHE)
    return [c if isinstance(c, str) else VERIFIED_ROW(c) for c in checks]


def default_workers() -> int:
    """Verification workers: one per core where spawned workers may import
    ``__main__``, else none; ``CASHLESS_VERIFY_WORKERS`` overrides (0: all work in the
    calling process)."""
    configured = os.environ.get(VERIFY_WORKERS_ENV)
    if configured:
        return max(0, int(configured))
    return (os.cpu_count() or 1) if _main_is_import_safe() else 0


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """Spawned (no fork of this process's threads) workers that exit with this process."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_watch_parent,
        initargs=(os.getpid(),),
    )


_main_declared_safe = False


def declare_main_import_safe() -> None:
    """Called by an entry point that knows its ``__main__`` keeps its work under
    ``if __name__ == "__main__":``, as the console scripts pip writes do (``cashless``):
    verifiers made afterwards get one worker per core."""
    global _main_declared_safe
    _main_declared_safe = True


def _main_is_import_safe() -> bool:
    """Whether spawned workers may import ``__main__``: declared so, a module run with
    ``-m`` (its ``__name__ == "__main__"`` block is skipped) or no main file at all."""
    if _main_declared_safe:
        return True
    main_module = sys.modules.get("__main__")
    return getattr(main_module, "__spec__", None) is not None or not hasattr(
        main_module, "__file__"
    )


def _ready(_: int) -> bool:
    return True


def _watch_parent(parent_pid: int) -> None:
    """In a worker: exit once the parent is gone (a killed server leaves no workers)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
