"""A bus reader: verifies codes offline, remembers recent taps, queues them for upload.

The reader never changes money; it only stores. Each accepted tap goes into a bounded
queue and leaves it only when the platform acknowledges the batch that carried it, so a
tap is never dropped silently: when the queue is full, scans are refused with
``reader_queue_full`` and the rider pays another way (cash, or a code once the reader
has uploaded). Clearing re-verifies every tap and removes duplicates; the reader's own
replay check only stops the same code being shown twice at the same door.

Limits and what happens at them:

    queue_taps_max   accepted taps not yet acknowledged; beyond it: reader_queue_full
    batch_taps_max   taps per upload batch; the rest wait for the next batch
    replay_window_s  how long a tap id is remembered; a code older than this fails the
                     freshness check anyway (the default is skew + max age)
    replay_ids_max   tap ids remembered at most; beyond it the oldest are forgotten and
                     a replay of one would be caught (and charged once) at clearing
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from itertools import islice
from types import MappingProxyType
from typing import Literal

from platform_stub.exceptions import TapRejected
from platform_stub.frozen import frozen
from platform_stub.transit.code import encode_code_text
from platform_stub.transit.credential import CredentialCache
from platform_stub.transit.verify import (
    CLOCK_SKEW_S,
    CODE_MAX_AGE_S,
    VerifiedTap,
    check_not_denied,
    verify_tap,
)

QUEUE_TAPS_MAX = 20_000  # several days of a busy route's taps while the reader is offline
BATCH_TAPS_MAX = 500  # one upload request; clearing applies a batch in one transaction
REPLAY_WINDOW_S = CLOCK_SKEW_S + CODE_MAX_AGE_S  # a code is fresh at most this long
REPLAY_IDS_MAX = 4_096  # far more codes than one door sees in REPLAY_WINDOW_S

DenyDeltaOutcome = Literal["applied", "stale", "gap"]


@frozen
class TapRecord:
    """One accepted tap as the reader stores and uploads it."""

    tap_id: str
    reader_id: str
    code_text: str
    scanned_at_s: int
    seq: int  # the reader's own sequence number, from 1, one per accepted tap


@frozen
class Batch:
    """The oldest queued taps, sent as one upload; resent unchanged until acknowledged."""

    batch_id: str
    reader_id: str
    taps: tuple[TapRecord, ...]


@frozen
class ScanResult:
    """What the reader shows the rider: the stored tap, or why the code was refused."""

    tap: TapRecord | None = None
    verified: VerifiedTap | None = None
    rejection: TapRejected | None = None

    @property
    def accepted(self) -> bool:
        return self.tap is not None

    @property
    def reason(self) -> str | None:
        return None if self.rejection is None else self.rejection.code


def batch_id_for(reader_id: str, first_seq: int, last_seq: int) -> str:
    """Deterministic, so a resent batch carries the same id and clearing applies it once."""
    return f"{reader_id}/{first_seq}-{last_seq}"


class BusReader:
    """An offline reader at a bus door. Every method takes the reader's clock explicitly."""

    def __init__(
        self,
        reader_id: str,
        public_keys: Mapping[int, bytes],
        *,
        queue_taps_max: int = QUEUE_TAPS_MAX,
        batch_taps_max: int = BATCH_TAPS_MAX,
        replay_window_s: int = REPLAY_WINDOW_S,
        replay_ids_max: int = REPLAY_IDS_MAX,
        skew_s: int = CLOCK_SKEW_S,
        max_age_s: int = CODE_MAX_AGE_S,
        credential_cache: CredentialCache | None = None,
    ) -> None:
        if min(queue_taps_max, batch_taps_max, replay_ids_max) < 1 or replay_window_s < 0:
            raise ValueError("reader limits must be positive")
        self.reader_id = reader_id
        self.queue_taps_max = queue_taps_max
        self.batch_taps_max = batch_taps_max
        self.replay_window_s = replay_window_s
        self.replay_ids_max = replay_ids_max
        self.skew_s = skew_s
        self.max_age_s = max_age_s
        # ``is None``, not ``or``: an empty cache is falsy and would be replaced.
        self.credential_cache = CredentialCache() if credential_cache is None else credential_cache
        self.deny_version = 0  # version of the deny list held; 0 is the empty list
        self._public_keys = dict(public_keys)
        self._deny: set[int] = set()
        self._seen: OrderedDict[str, int] = OrderedDict()  # tap id -> scanned_at_s
        self._queue: deque[TapRecord] = deque()
        self._in_flight: Batch | None = None
        self._next_seq = 1

    @property
    def queued_taps(self) -> int:
        return len(self._queue)

    def scan(self, code: str | bytes, now_s: int) -> ScanResult:
        """Verify a code offline and store the tap, or say why not. Never raises for a
        bad code: every refusal is a ``TapRejected`` in the result."""
        try:
            verified = verify_tap(
                code,
                self._public_keys,
                now_s,
                (),  # the deny list is checked by ``admit``, after every other check
                skew_s=self.skew_s,
                max_age_s=self.max_age_s,
                credential_cache=self.credential_cache,
            )
        except TapRejected as rejection:
            return ScanResult(rejection=rejection)
        text = code if isinstance(code, str) else encode_code_text(bytes(code))
        return self.admit(verified, text, now_s)

    def admit(self, verified: VerifiedTap, code_text: str, now_s: int) -> ScanResult:
        """The rest of a scan, for a code that ``verify_tap`` passed at ``now_s`` with
        this reader's keys and windows (``public_keys``, ``skew_s``, ``max_age_s``) and
        an empty deny list, here or on another core: the checks whose answer changes from
        one scan to the next (deny list, replays, queue room), then the stored tap."""
        try:
            check_not_denied(verified.card_id, self._deny)
            self._check_not_replayed(verified.tap_id, now_s)
            self._check_room()
        except TapRejected as rejection:
            return ScanResult(rejection=rejection)
        return ScanResult(tap=self._store(verified.tap_id, code_text, now_s), verified=verified)

    @property
    def public_keys(self) -> Mapping[int, bytes]:
        """The platform keys this reader verifies with, read-only."""
        return MappingProxyType(self._public_keys)

    def next_batch(self) -> Batch | None:
        """The batch to upload: the oldest taps, at most ``batch_taps_max``. Until it is
        acknowledged the same batch comes back, byte for byte, however many taps arrive."""
        if self._in_flight is None and self._queue:
            taps = tuple(islice(self._queue, self.batch_taps_max))
            batch_id = batch_id_for(self.reader_id, taps[0].seq, taps[-1].seq)
            self._in_flight = Batch(batch_id, self.reader_id, taps)
        return self._in_flight

    def ack(self, batch_id: str) -> bool:
        """Drop the batch's taps once the platform confirms it; False (and no change) for
        any other id, such as a second confirmation of a batch already dropped."""
        batch = self._in_flight
        if batch is None or batch.batch_id != batch_id:
            return False
        for tap in batch.taps:
            dropped = self._queue.popleft()
            assert dropped is tap, "the in-flight batch must be the head of the queue"
        self._in_flight = None
        return True

    def apply_deny_delta(
        self, version: int, added: Iterable[int], removed: Iterable[int]
    ) -> DenyDeltaOutcome:
        """Apply the platform's change from ``version - 1`` to ``version``. An older or
        repeated version is ignored ("stale"); a skipped version is not applied ("gap"):
        the reader must fetch the full list (``load_deny_list``) from ``deny_version``."""
        if version <= self.deny_version:
            return "stale"
        if version > self.deny_version + 1:
            return "gap"
        added, removed = set(added), set(removed)
        if added & removed:
            raise ValueError(f"deny delta {version} both adds and removes {added & removed}")
        self._deny -= removed
        self._deny |= added
        self.deny_version = version
        return "applied"

    def apply_deny_changes(
        self, since: int, version: int, added: Iterable[int], removed: Iterable[int]
    ) -> DenyDeltaOutcome:
        """Apply the platform's net change from version ``since`` to ``version`` (the
        platform's versions are change-log positions, so they may jump). A change that
        does not start where this reader stands is "stale" or a "gap", as above."""
        if version <= self.deny_version or since < self.deny_version:
            return "stale"
        if since > self.deny_version:
            return "gap"
        self.deny_version = version - 1  # a net change is one step from the reader's view
        return self.apply_deny_delta(version, added, removed)

    def load_deny_list(self, version: int, card_ids: Iterable[int]) -> bool:
        """Replace the deny list by the full list at ``version``; ignored if older."""
        if version < self.deny_version:
            return False
        self._deny = set(card_ids)
        self.deny_version = version
        return True

    def is_denied(self, card_id: int) -> bool:
        return card_id in self._deny

    def set_public_keys(self, public_keys: Mapping[int, bytes]) -> None:
        """Install the platform's current key set (after a rotation or a retirement)."""
        self._public_keys = dict(public_keys)

    def _check_not_replayed(self, tap_id: str, now_s: int) -> None:
        self._forget_old_taps(now_s)
        seen_at_s = self._seen.get(tap_id)
        if seen_at_s is not None:
            raise TapRejected(
                "replayed_code",
                f"reader {self.reader_id} accepted this code at {seen_at_s}; show a fresh one",
            )

    def _forget_old_taps(self, now_s: int) -> None:
        while self._seen:
            oldest_id, seen_at_s = next(iter(self._seen.items()))
            if now_s - seen_at_s <= self.replay_window_s and len(self._seen) < self.replay_ids_max:
                return
            del self._seen[oldest_id]

    def _check_room(self) -> None:
        if len(self._queue) >= self.queue_taps_max:
            raise TapRejected(
                "reader_queue_full",
                f"reader {self.reader_id} holds {len(self._queue)} unsent taps; "
                "pay another way until it uploads",
            )

    def _store(self, tap_id: str, code_text: str, now_s: int) -> TapRecord:
        tap = TapRecord(tap_id, self.reader_id, code_text, now_s, self._next_seq)
        self._next_seq += 1
        self._queue.append(tap)
        self._seen[tap_id] = now_s
        return tap
