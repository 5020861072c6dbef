"""The day's ride codes, signed and verified ahead on the other core.

A ride by code costs two or three Ed25519 operations: the phone signs the code, the
reader verifies it and, when its cache misses, the credential. In the late days of a
big city they were a fifth of the main process's time. Each is a pure function of
what the model knows once the day's rides are drawn: the rider's card and key, the
minute, a nonce (drawn for every ride, in ride order, from the model's rng) and the
reader's keys and windows. So ``plan`` hands the day's rides that may use a code to
one worker process, in chunks, while the main process runs the day; at each ride
``scan`` takes the worker's code and verdict, and the reader makes the checks whose
answer changes during the day (deny list, replays, queue room) at the ride.

The outcome never depends on the worker. A ride whose inputs changed since the plan
(a card claimed during the day, a reader given new keys) is signed and verified at
the ride, as is every ride of a day with fewer than ``RIDES_AHEAD_MIN`` candidates,
and every ride where there are no workers (``CASHLESS_VERIFY_WORKERS=0``, a plain
script): the same functions, the same bytes, the same result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import numpy as np

from platform_stub.frozen import frozen
from platform_stub.transit import NONCE_BYTES, ScanResult, encode_code_text, sign_code
from platform_stub.transit.ride_ahead import (
    Checked,
    ReaderSettings,
    RideInputs,
    admit_checked,
    sign_and_check_many,
)
from platform_stub.transit.verify import default_workers, spawn_pool

if TYPE_CHECKING:
    from agents.buses import Bus
    from agents.residents import Resident

RIDES_AHEAD_MIN = 1_000  # a smaller day is signed at the ride: a worker would not pay
FIRST_CHUNK_RIDES = 250  # the day's first ride waits for this chunk alone
CHUNK_RIDES = 2_000  # one worker call, about a quarter of a second of Ed25519
CHUNKS_IN_FLIGHT_MAX = 16  # chunks handed to the worker and not yet taken


@frozen
class PlannedRide:
    """One ride of the day: its nonce, and where its checked code will be (``slot``,
    -1 for a ride not sent ahead)."""

    who: int
    now_s: int
    nonce: bytes
    slot: int
    credential: object  # the card the plan signed with: a new card means sign again
    settings: int  # index of the reader settings the plan verified with


class RideCodes:
    """The day's planned rides, in order, and the worker's results for them."""

    def __init__(self, workers: int | None = None, rides_ahead_min: int = RIDES_AHEAD_MIN) -> None:
        self.workers = min(1, default_workers() if workers is None else workers)
        self.rides_ahead_min = rides_ahead_min
        self.signed_ahead = 0  # rides whose code and verdict came from the worker
        self._pool: ProcessPoolExecutor | None = None
        self._rides: deque[PlannedRide] = deque()
        self._inputs: list[RideInputs] = []
        self._settings: list[ReaderSettings] = []
        self._settings_by_key: dict[tuple, int] = {}
        self._chunks: deque[Future] = deque()
        self._sent = 0  # inputs handed to the worker so far
        self._results: list[Checked] = []

    def plan(self, rng: np.random.Generator, rides: Sequence[tuple[int, Resident, Bus]]) -> None:
        """The day's rides as (unix time, resident, bus) in the order they will happen;
        draws every ride's nonce and starts the worker on those that may use a code."""
        nonces = rng.bytes(NONCE_BYTES * len(rides))
        self._reset()
        ahead = self.workers > 0 and self._candidates(rides) >= self.rides_ahead_min
        for i, (now_s, resident, bus) in enumerate(rides):
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            slot, settings = -1, -1
            if ahead and _may_use_code(resident, bus):
                slot, settings = len(self._inputs), self._settings_index(bus)
                self._inputs.append((resident.credential.to_bytes(),
                                     resident.bus_key.secret_key, now_s, nonce, settings))
            self._rides.append(
                PlannedRide(resident.index, now_s, nonce, slot, resident.credential, settings)
            )
        self._send()

    def take(self, who: int) -> PlannedRide:
        """The next ride of the plan, which must be ``who``'s."""
        ride = self._rides.popleft()
        assert ride.who == who, f"ride of resident {who} out of plan order ({ride.who})"
        return ride

    def scan(self, ride: PlannedRide, resident: Resident, bus: Bus, now_s: int) -> ScanResult:
        """The rider shows the code and the bus reader scans it."""
        if ride.slot >= 0 and self._unchanged(ride, resident, bus, now_s):
            checked = self._result(ride.slot)
            if checked is not None:
                self.signed_ahead += 1
                return admit_checked(bus, checked, now_s)
        code = sign_code(resident.credential, resident.bus_key, now_s, ride.nonce)
        return bus.scan(encode_code_text(code), now_s)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _candidates(self, rides: Sequence[tuple[int, Resident, Bus]]) -> int:
        return sum(1 for _, resident, bus in rides if _may_use_code(resident, bus))

    def _settings_index(self, bus: Bus) -> int:
        """Readers share a few settings (usually one): each travels once per chunk."""
        reader = bus.reader
        key = (tuple(sorted(reader.public_keys.items())), reader.skew_s, reader.max_age_s)
        index = self._settings_by_key.get(key)
        if index is None:
            index = self._settings_by_key[key] = len(self._settings)
            self._settings.append((dict(reader.public_keys), reader.skew_s, reader.max_age_s))
        return index

    def _unchanged(self, ride: PlannedRide, resident: Resident, bus: Bus, now_s: int) -> bool:
        """Whether the worker signed and verified with what holds at the ride."""
        reader = bus.reader
        keys, skew_s, max_age_s = self._settings[ride.settings]
        return (
            resident.credential is ride.credential
            and now_s == ride.now_s
            and reader.skew_s == skew_s
            and reader.max_age_s == max_age_s
            and reader.public_keys == keys
        )

    def _reset(self) -> None:
        for future in self._chunks:
            future.cancel()
        self._rides.clear()
        self._inputs, self._settings, self._results = [], [], []
        self._settings_by_key.clear()
        self._chunks.clear()
        self._sent = 0

    def _send(self) -> None:
        """Keep up to ``CHUNKS_IN_FLIGHT_MAX`` chunks with the worker."""
        while self._sent < len(self._inputs) and len(self._chunks) < CHUNKS_IN_FLIGHT_MAX:
            size = FIRST_CHUNK_RIDES if self._sent == 0 else CHUNK_RIDES
            chunk = self._inputs[self._sent : self._sent + size]
            try:
                future = self._started().submit(sign_and_check_many, chunk, self._settings)
                self._chunks.append(future)
            except BrokenProcessPool:
                self._broken()
                return
            self._sent += len(chunk)

    def _result(self, slot: int) -> Checked | None:
        """The worker's result for ``slot``, waiting for its chunk; None if the worker
        broke (the ride is then signed and verified here)."""
        while slot >= len(self._results) and self._chunks:
            try:
                self._results += self._chunks.popleft().result()
            except BrokenProcessPool:
                self._broken()
                return None
            self._send()
        return self._results[slot] if slot < len(self._results) else None

    def _broken(self) -> None:
        self.close()
        self._chunks.clear()
        self._sent = len(self._inputs)  # nothing more is sent today

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = spawn_pool(self.workers)
        return self._pool


def _may_use_code(resident: Resident, bus: Bus) -> bool:
    return bus.has_reader and resident.credential is not None
