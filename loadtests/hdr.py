"""Latency histograms (HDR) per endpoint and per second, mergeable across processes.

Locust buckets response times before it computes percentiles (1 ms steps under
100 ms, 10 ms under 1 s), so its p99 of a fast endpoint is coarse and can exceed
the max. Every figure this package judges or reports comes from these histograms
instead: microseconds, 3 significant digits for an endpoint's totals and 2 for each
second of it (per-second rows feed the latency report's time series).

Each process records into a :class:`Recorder`; :meth:`Recorder.take` hands over what
it holds as a JSON-able snapshot (histograms base64-encoded, a few hundred bytes
each) and starts afresh, so Locust workers can ship deltas with their periodic
reports. :class:`Histograms` adds snapshots up (the master's or the runner's view)
and turns them into figures.

Series are keyed by ``kind`` and endpoint ("POST /v1/payments"). A Locust run records
one kind, ``latency``. The open-model replay records three: ``latency`` from the time
each request was scheduled (free of coordinated omission), ``service`` from the time
it was sent, and ``lateness``, how long after its scheduled time it was sent.

Limits: a value above ``LATENCY_US_MAX`` is recorded as that maximum; at most
``SECONDS_KEPT_MAX`` per-second histograms are kept (about 5 hours of 10 endpoints),
after which per-second rows are dropped and counted, while totals go on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

HISTOGRAMS_FILE = "histograms.json"
LATENCY_US_MAX = 60_000_000  # a minute; clients time out long before
TOTAL_DIGITS = 3
SECOND_DIGITS = 2
SECONDS_KEPT_MAX = 200_000
SEAL_AFTER_S = 2  # a second's histogram is encoded once it is this far in the past
PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p95_ms": 95.0, "p99_ms": 99.0, "p999_ms": 99.9}
KINDS = ("latency", "service", "lateness")

Key = tuple[str, str]  # (kind, endpoint)
SecondKey = tuple[str, str, int]  # (kind, endpoint, epoch second)


def new_histogram(digits: int) -> HdrHistogram:
    return HdrHistogram(1, LATENCY_US_MAX, digits)


def encode(hdr: HdrHistogram) -> str:
    return hdr.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merge_encoded(texts: Iterable[str], digits: int) -> HdrHistogram:
    merged = new_histogram(digits)
    for text in texts:
        merged.add(decode(text))
    return merged


@dataclass
class Series:
    """Counts and a histogram of one key; failures are counted, and timed, like successes."""

    hdr: HdrHistogram
    count: int = 0
    failures: int = 0

    def record(self, value_us: int, failed: bool) -> None:
        self.hdr.record_value(min(max(value_us, 1), LATENCY_US_MAX))
        self.count += 1
        self.failures += failed


@dataclass
class Recorder:
    """What one process measured since the last :meth:`take`. Thread- and greenlet-safe."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _totals: dict[Key, Series] = field(default_factory=dict)
    _open: dict[SecondKey, Series] = field(default_factory=dict)
    _sealed: dict[SecondKey, list] = field(default_factory=dict)
    _per_second_dropped: int = 0
    _first_s: float | None = None
    _last_s: float | None = None
    _newest_second: int = 0
    _seconds_seen: int = 0  # kept over takes, so the cap holds for a whole run

    def record(
        self, endpoint: str, value_us: int, failed: bool, at_s: float, kind: str = "latency"
    ) -> None:
        """One request of ``endpoint``; ``at_s`` (epoch seconds) picks its per-second row."""
        assert kind in KINDS, f"unknown kind {kind!r}"
        with self._lock:
            self._totals.setdefault((kind, endpoint), Series(new_histogram(TOTAL_DIGITS)))
            self._totals[(kind, endpoint)].record(value_us, failed)
            self._record_second((kind, endpoint, int(at_s)), value_us, failed)
            self._first_s = at_s if self._first_s is None else min(self._first_s, at_s)
            self._last_s = at_s if self._last_s is None else max(self._last_s, at_s)

    def take(self) -> dict[str, Any]:
        """Everything recorded since the last take, as a snapshot; the recorder restarts."""
        with self._lock:
            self._seal_before(None)
            snapshot = {
                "first_s": self._first_s,
                "last_s": self._last_s,
                "totals": [[*key, s.count, s.failures, encode(s.hdr)]
                           for key, s in self._totals.items()],
                "seconds": [[*key, *row] for key, row in self._sealed.items()],
                "per_second_dropped": self._per_second_dropped,
            }
            self._totals, self._sealed, self._per_second_dropped = {}, {}, 0
            self._first_s = self._last_s = None
        return snapshot

    def _record_second(self, key: SecondKey, value_us: int, failed: bool) -> None:
        series = self._open.get(key)
        if series is None:
            if key not in self._sealed:  # a straggler of a sealed second reopens it
                if self._seconds_seen >= SECONDS_KEPT_MAX:
                    self._per_second_dropped += 1
                    return
                self._seconds_seen += 1
            series = self._open[key] = Series(new_histogram(SECOND_DIGITS))
        series.record(value_us, failed)
        if key[2] > self._newest_second:
            self._newest_second = key[2]
            self._seal_before(self._newest_second - SEAL_AFTER_S)

    def _seal_before(self, second: int | None) -> None:
        """Encode open seconds older than ``second`` (all when None): 20 KB becomes ~200 B."""
        for key in [k for k in self._open if second is None or k[2] < second]:
            series = self._open.pop(key)
            row = [series.count, series.failures, encode(series.hdr)]
            if key in self._sealed:
                row = _added_rows(self._sealed[key], row)
            self._sealed[key] = row


def _added_rows(first: list, second: list) -> list:
    merged = merge_encoded((first[2], second[2]), SECOND_DIGITS)
    return [first[0] + second[0], first[1] + second[1], encode(merged)]


@dataclass(frozen=True)
class EndpointFigures:
    """One series' totals: counts, rate over the run's window, and HDR percentiles in ms."""

    kind: str
    endpoint: str
    count: int
    failures: int
    requests_per_s: float
    latency: dict[str, float]  # p50_ms, p90_ms, p95_ms, p99_ms, p999_ms, max_ms, mean_ms

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.count if self.count else 0.0


class Histograms:
    """Snapshots added up: totals per (kind, endpoint) and rows per second."""

    def __init__(self) -> None:
        self.totals: dict[Key, list] = {}  # key -> [count, failures, encoded]
        self.seconds: dict[SecondKey, list] = {}
        self.per_second_dropped = 0
        self.first_s: float | None = None
        self.last_s: float | None = None

    def add(self, snapshot: dict[str, Any]) -> None:
        for kind, endpoint, count, failures, text in snapshot["totals"]:
            self._add_row(self.totals, (kind, endpoint), [count, failures, text], TOTAL_DIGITS)
        for kind, endpoint, second, count, failures, text in snapshot["seconds"]:
            key = (kind, endpoint, int(second))
            self._add_row(self.seconds, key, [count, failures, text], SECOND_DIGITS)
        self.per_second_dropped += snapshot.get("per_second_dropped", 0)
        for name, pick in (("first_s", min), ("last_s", max)):
            theirs, ours = snapshot.get(name), getattr(self, name)
            if theirs is not None:
                setattr(self, name, theirs if ours is None else pick(ours, theirs))

    @staticmethod
    def _add_row(table: dict, key: tuple, row: list, digits: int) -> None:
        if key in table:
            old = table[key]
            merged = merge_encoded((old[2], row[2]), digits)
            row = [old[0] + row[0], old[1] + row[1], encode(merged)]
        table[key] = row

    @property
    def window_s(self) -> float:
        """From the first to the last request recorded; at least a second."""
        if self.first_s is None or self.last_s is None:
            return 1.0
        return max(1.0, self.last_s - self.first_s)

    def snapshot(self) -> dict[str, Any]:
        """The merged state in the snapshot format (what ``histograms.json`` holds)."""
        return {
            "first_s": self.first_s,
            "last_s": self.last_s,
            "totals": [[*k, *row] for k, row in sorted(self.totals.items())],
            "seconds": [[*k, *row] for k, row in sorted(self.seconds.items())],
            "per_second_dropped": self.per_second_dropped,
        }

    @classmethod
    def from_snapshots(cls, snapshots: Iterable[dict[str, Any]]) -> Histograms:
        merged = cls()
        for snapshot in snapshots:
            merged.add(snapshot)
        return merged

    def figures(self, kind: str = "latency") -> dict[str, EndpointFigures]:
        """Each endpoint's figures for one kind, by endpoint name."""
        return {
            endpoint: EndpointFigures(
                kind, endpoint, count, failures, count / self.window_s,
                latency_ms_of(decode(text)),
            )
            for (k, endpoint), (count, failures, text) in sorted(self.totals.items())
            if k == kind
        }

    def all_requests(self, kind: str = "latency") -> EndpointFigures | None:
        """Every endpoint of a kind together ("total" in a service-level file)."""
        rows = [row for (k, _), row in self.totals.items() if k == kind]
        if not rows:
            return None
        merged = merge_encoded((row[2] for row in rows), TOTAL_DIGITS)
        count, failures = sum(r[0] for r in rows), sum(r[1] for r in rows)
        return EndpointFigures(
            kind, "total", count, failures, count / self.window_s, latency_ms_of(merged)
        )

    def per_second_rows(self) -> list[dict[str, Any]]:
        """One row per kind, endpoint and second: the latency report's time series."""
        rows = []
        for (kind, endpoint, second), (count, failures, text) in sorted(self.seconds.items()):
            figures = latency_ms_of(decode(text))
            rows.append({"kind": kind, "endpoint": endpoint, "second": second,
                         "count": count, "failures": failures, **figures})
        return rows


def latency_ms_of(hdr: HdrHistogram) -> dict[str, float]:
    """Percentiles, max and mean in milliseconds (the histogram holds microseconds)."""
    if hdr.get_total_count() == 0:
        return {}
    values = hdr.get_percentile_to_value_dict(list(PERCENTILES.values()))
    figures = {name: values[p] / 1000 for name, p in PERCENTILES.items()}
    figures["max_ms"] = hdr.get_max_value() / 1000
    figures["mean_ms"] = round(hdr.get_mean_value() / 1000, 3)
    return figures
