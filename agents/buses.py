"""Buses and their offline readers.

A reader verifies codes with no network, queues the taps, and uploads them only
when it has coverage: after a rush hour with probability ``coverage`` (dead
zones, underground stretches), after every tap on a BRT line (station gates are
online), and at the depot at night if the depot has a network. Uploads and
deny-list refreshes go through the platform client like any other call.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import mesa

from platform_stub.clearing import UploadedTap
from platform_stub.transit import BusReader, ScanResult
from platform_stub.transit.verify import VerifiedTap

if TYPE_CHECKING:
    from agents.model import CityModel

UPLOADS_PER_CONNECTION_MAX = 50  # batches per connection: a bound on one upload session
DENY_FETCHES_MAX = 20  # deny-list pages per connection


class Bus(mesa.Agent):
    model: CityModel

    def __init__(
        self, model: CityModel, index: int, reader_token: str, reader_id: str, route: int,
        brt: bool,
    ) -> None:  # fmt: skip
        super().__init__(model)
        self.index = index
        self.route = route
        self.brt = brt  # BRT station gates have a network: the reader is never offline
        self.has_reader = True  # a QR reader is fitted (see the rollout in the model)
        self.reader_token = reader_token
        keys = model.client.transit_public_keys(reader_token)
        self.reader = BusReader(reader_id, keys)
        self.tapped_at_s: dict[int, int] = {}  # reader seq -> tap time, for clearing lag

    def scan(self, code: str, now_s: int) -> ScanResult:
        return self._noted(self.reader.scan(code, now_s), now_s)

    def admit(self, verified: VerifiedTap, code: str, now_s: int) -> ScanResult:
        """A scan whose code was verified on another core (``agents.ride_codes``)."""
        return self._noted(self.reader.admit(verified, code, now_s), now_s)

    def _noted(self, result: ScanResult, now_s: int) -> ScanResult:
        if result.accepted:
            self.tapped_at_s[result.tap.seq] = now_s
        return result

    def connect(self, when: dt.datetime, covered: bool) -> None:
        """Upload queued taps and refresh the deny list, if there is a network."""
        if not covered:
            return
        for _ in range(UPLOADS_PER_CONNECTION_MAX):
            if not self._upload_one(when):
                break
        self._refresh_deny_list(when)

    def _upload_one(self, when: dt.datetime) -> bool:
        batch = self.reader.next_batch()
        if batch is None:
            return False
        taps = [UploadedTap(t.seq, t.code_text, t.scanned_at_s) for t in batch.taps]
        result = self.model.log.call(
            when,
            self.model.day,
            self.index,
            "bus",
            "upload_taps",
            "offline_qr",
            0,
            self.model.client.upload_taps,
            self.reader_token,
            batch.batch_id,
            taps,
        )
        if not result.ok:
            return False  # kept in the queue; re-sent identically next time
        self.reader.ack(batch.batch_id)
        uploaded_s = self.model.unix_s(when)
        for outcome in result.value:
            self.model.record_tap(outcome, self.tapped_at_s.pop(outcome.reader_seq), uploaded_s)
        return True

    def _refresh_deny_list(self, when: dt.datetime) -> None:
        for _ in range(DENY_FETCHES_MAX):
            result = self.model.log.call(
                when,
                self.model.day,
                self.index,
                "bus",
                "deny_delta",
                "offline_qr",
                0,
                self.model.client.deny_delta,
                self.reader_token,
                self.reader.deny_version,
            )
            if not result.ok:
                return
            delta = result.value
            self.reader.apply_deny_changes(delta.since, delta.version, delta.added, delta.removed)
            if not delta.more:
                return
