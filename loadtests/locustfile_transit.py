"""Bus readers at the doors: riders tap real signed offline codes, readers upload them.

Each ``BusReader`` user is one bus's reader, registered under the process's bus
operator. Its riders (a pool shared by this process's buses, so riders change buses
and earn transfer discounts) are residents with a bound card, a topped-up wallet and
a bus card: an Ed25519 key the platform certified. At a stop, riders sign codes with
their keys at the current time and the reader (the real offline ``BusReader`` of
:mod:`platform_stub.transit`) verifies and stores them; each scan is a ``SCAN offline
code`` row in the stats, failed if the reader refuses the code. An upload sends the
oldest queued taps as one batch and expects one outcome per tap, each ``cleared``; a
deny-list refresh (at start, then now and then) fetches the change since the version
the reader holds. On stop a
reader uploads what it still holds (at most ``UPLOADS_AT_STOP_MAX`` batches).

Every accepted and every acknowledged tap is counted (:mod:`loadtests.taps`); after
the run the runner finds each acknowledged tap's outcome row in the platform's
database, and a lost tap fails the run.

    python loadtests/locustfile_transit.py --host http://127.0.0.1:8080
"""

from locust import between, run_single_user, task  # first: locust patches the stdlib

# isort: split
import random
import time

from gevent.lock import Semaphore
from locust.exception import StopUser

from loadtests._common import (
    REGISTRATION_FIELDS,
    PlatformUser,
    enrol_resident,
    ensure_funds,
    install,
)
from loadtests._people import Rider
from loadtests._recording import tap_ledger
from platform_stub.transit import Batch, Credential, RiderKey
from platform_stub.transit import BusReader as OfflineReader

RIDERS_PER_PROCESS = 24
RIDER_TOP_UP_FEN = 200_000  # 2,000 RMB: a thousand flat fares
RIDER_TOP_UP_BELOW_FEN = 20_000
BOARDING_RIDERS_MAX = 3  # riders getting on at one stop
BATCH_TAPS_MAX = 50  # taps per upload: a bus's riders between two connected stops
UPLOADS_AT_STOP_MAX = 20
DENY_FIELDS = ("since", "version", "added", "removed", "more")
SCAN_REQUEST = ("SCAN", "offline code")  # (request type, name) of a scan in the stats

install()


# The process's bus operator (its token) and riders, made by the first bus to start;
# the lock makes the other buses wait for them instead of making their own.
_operator: list[str] = []
_riders: list[Rider] = []
_setup_lock = Semaphore()


def _operator_token(user: PlatformUser) -> str | None:
    with _setup_lock:
        if not _operator:
            body = {"name": "Loadtest Bus Company"}
            reply = user.call_as(None, "POST", "/v1/operators", body, (201, REGISTRATION_FIELDS))
            if reply is not None:
                _operator.append(reply["token"])
        return _operator[0] if _operator else None


def _riders_enrolled_by(user: PlatformUser) -> list[Rider]:
    """The process's riders, enrolling the missing ones (at most RIDERS_PER_PROCESS)."""
    with _setup_lock:
        for number in range(len(_riders), RIDERS_PER_PROCESS):
            rider = _enrol_rider(user, number)
            if rider is None:
                break
            _riders.append(rider)
        return list(_riders)


def _enrol_rider(user: PlatformUser, number: int) -> Rider | None:
    resident = enrol_resident(user, f"Rider {number + 1}", RIDER_TOP_UP_FEN)
    if resident is None:
        return None
    key = RiderKey.generate()
    body = {"rider_public_key": key.public_key.hex()}
    reply = user.call_as(resident.token, "POST", "/v1/buscards", body, (201, ("credential",)))
    if reply is None:
        return None
    return Rider(resident, key, Credential.from_bytes(bytes.fromhex(reply["credential"])))


class BusReader(PlatformUser):
    """A bus's offline reader: scans riders' codes, uploads batches, refreshes its deny list."""

    weight = 2
    wait_time = between(0.05, 0.2)
    reader: OfflineReader
    riders: list[Rider]
    rider_of_seq: dict[int, Rider]  # queued taps' riders, to count their fares

    def on_start(self) -> None:
        operator_token = _operator_token(self)
        if operator_token is None or not self.register(operator_token):
            raise StopUser()
        self.riders = _riders_enrolled_by(self)
        if not self.riders:
            raise StopUser()
        self.rider_of_seq = {}
        self.refresh_deny_list()  # a reader coming online fetches the list before any tap

    def register(self, operator_token: str) -> bool:
        """Register under the operator and install the platform's public keys."""
        body = {"name": "Bus reader"}
        expected = (201, REGISTRATION_FIELDS)
        reply = self.call_as(operator_token, "POST", "/v1/readers", body, expected)
        if reply is None:
            return False
        self.token = reply["token"]
        keys = self.call_as(self.token, "GET", "/v1/transit/keys", None, (200, ("keys",)))
        if keys is None:
            return False
        public_keys = {int(k): bytes.fromhex(v) for k, v in keys["keys"].items()}
        self.reader = OfflineReader(
            f"R{reply['participant_id']}", public_keys, batch_taps_max=BATCH_TAPS_MAX
        )
        return True

    @task(10)
    def board(self) -> None:
        """Riders at a stop show their codes; the reader checks each one offline."""
        count = random.randint(1, min(BOARDING_RIDERS_MAX, len(self.riders)))
        for rider in random.sample(self.riders, count):
            self.scan(rider)

    def scan(self, rider: Rider) -> None:
        """Time the reader's offline check alone: signing is the rider's phone's work."""
        start_time = time.time()
        now_s = int(start_time)
        code = rider.code(now_s)
        started = time.perf_counter()
        result = self.reader.scan(code, now_s)
        request_type, name = SCAN_REQUEST
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None if result.accepted else ScanRefused(result.reason or "refused"),
            context={},
            start_time=start_time,
        )
        if result.accepted and result.tap is not None:
            tap_ledger.accepted(self.reader.reader_id)
            self.rider_of_seq[result.tap.seq] = rider

    @task(4)
    def upload(self) -> None:
        batch = self.reader.next_batch()
        if batch is not None:
            self.send(batch)

    def send(self, batch: Batch) -> bool:
        """Upload one batch; acknowledge it once the platform returned its outcomes."""
        taps = [{"reader_seq": t.seq, "code": t.code_text, "scanned_at_s": t.scanned_at_s}
                for t in batch.taps]
        body = {"batch_id": batch.batch_id, "taps": taps}
        with self.client.post(
            "/v1/transit/batches", json=body, headers=self.auth_headers(),
            name="/v1/transit/batches", catch_response=True,
        ) as resp:
            reply = self.expect(resp, 200, ("outcomes",))
            if reply is None:
                return False
            outcomes = reply["outcomes"]
            if [o.get("reader_seq") for o in outcomes] != [t.seq for t in batch.taps]:
                resp.failure("outcomes do not match the batch's taps one for one")
                return False
            refused = sorted({o["reason"] or "?" for o in outcomes if o["outcome"] != "cleared"})
            if refused:
                resp.failure(f"taps rejected at clearing: {', '.join(refused)}")
        self.acknowledge(batch, outcomes)
        return True

    def acknowledge(self, batch: Batch, outcomes: list[dict]) -> None:
        """Drop the batch from the queue, count it and the riders' fares; top up the short."""
        if not self.reader.ack(batch.batch_id):
            return
        tap_ledger.uploaded(self.reader.reader_id, batch.taps[-1].seq)
        riders = [self.rider_of_seq.pop(o["reader_seq"], None) for o in outcomes]
        for rider, outcome in zip(riders, outcomes, strict=True):
            if rider is not None:
                rider.resident.spent(outcome.get("wallet_fen", 0))
        for rider in {id(r): r for r in riders if r is not None}.values():
            ensure_funds(self, rider.resident, RIDER_TOP_UP_BELOW_FEN, RIDER_TOP_UP_FEN)

    @task(1)
    def refresh_deny_list(self) -> None:
        since = self.reader.deny_version
        with self.client.get(
            f"/v1/transit/deny?since={since}", headers=self.auth_headers(),
            name="/v1/transit/deny", catch_response=True,
        ) as resp:
            delta = self.expect(resp, 200, DENY_FIELDS)
            if delta is None or delta["version"] <= since:
                return
            applied = self.reader.apply_deny_changes(
                delta["since"], delta["version"], delta["added"], delta["removed"]
            )
            if applied != "applied":
                resp.failure(f"deny delta from {since} not applicable: {applied}")

    def on_stop(self) -> None:
        """Leave nothing behind: upload what is queued, a bounded number of batches."""
        if not hasattr(self, "reader"):
            return
        for _ in range(UPLOADS_AT_STOP_MAX):
            batch = self.reader.next_batch()
            if batch is None or not self.send(batch):
                return


class ScanRefused(Exception):
    """The offline reader refused a code (its reason is the exception's message)."""


if __name__ == "__main__":
    run_single_user(BusReader)
