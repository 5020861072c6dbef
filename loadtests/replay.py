"""Open-model replay of a simulated city's day: every call at its own time (as wrk2 does).

Locust runs a closed model: a user waits for each reply before its next request, so
a slow server slows the load that measures it and the worst latencies never happen
("coordinated omission"). Here the schedule is fixed in advance: each call of the
trace's day goes out at its own (compressed) time whatever happened to the others.
A bounded pool of ``--concurrency`` greenlets sends them; when all are busy, the
next call starts late. Each call records three figures in microseconds:

    latency   reply time minus *scheduled* time   (judged by the service levels)
    service   reply time minus the time it was sent (what Locust would have shown)
    lateness  sent time minus scheduled time

so a server that falls behind shows in ``latency`` even while ``service`` looks fine.

This is a separate runner path rather than a Locust user: Locust's users and their
wait times are the closed model this path exists to avoid. It runs in its own process
(gevent patches the standard library first)::

    python -m loadtests.replay --host http://127.0.0.1:8080 --trace runs/baseline-seed20170615 \\
        --duration 60 --results-dir out/ [--slo FILE] [--trace-day N]

It writes ``histograms.json`` (kinds latency, service, lateness), ``reader_taps.json``
and ``replay.json`` (what was planned, sent, skipped, late, refused) into
``--results-dir``; exit 0, 3 when a service level broke, 2 when it could not run.
"""

import loadtests._patched  # noqa: F401 - first: gevent patches the standard library

# isort: split
import argparse
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Pool

from loadtests._replay_world import Http, ReplayError, World, build_world
from loadtests.hdr import HISTOGRAMS_FILE, Histograms, Recorder, latency_ms_of, merge_encoded
from loadtests.slo import load_service_levels
from loadtests.taps import READER_TAPS_FILE, TapLedger
from loadtests.trace import Plan, Planned, plan_day
from platform_stub.client import ADMIN_TOKEN_ENV
from platform_stub.exceptions import ScenarioError
from platform_stub.service import TOP_UP_FEN_MAX

CONCURRENCY_MAX = 64
SETUP_CONCURRENCY = 16  # set-up calls before the clock starts, whatever --concurrency says
TAPS_PER_UPLOAD = 10
START_LEAD_S = 0.5  # from the last set-up call to the first scheduled one
DRAIN_WAIT_S = 30.0  # calls still in flight after the schedule ends get this long
SLO_BREACHED_EXIT_CODE = 3
CANNOT_RUN_EXIT_CODE = 2
REPLAY_FILE = "replay.json"


@dataclass
class Call:
    """One request ready to send, and what to do with its reply (a problem, or None)."""

    endpoint: str
    path: str
    token: str | None
    body: Any
    status: int
    check: Any = None  # Callable[[Any], str | None]

    @property
    def method(self) -> str:
        return self.endpoint.split(" ", 1)[0]


class Replayer:
    """Sends a plan's calls at their times through a bounded pool, recording each."""

    def __init__(
        self, http: Http, world: World, concurrency: int, admin_token: str, taps_per_upload: int
    ) -> None:
        self.http, self.world, self.admin_token = http, world, admin_token
        self.taps_per_upload = taps_per_upload
        self.pool = Pool(concurrency)
        self.recorder = Recorder()
        self.taps = TapLedger()
        self.refusals: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.sent = 0

    def run(self, plan: Plan) -> int:
        """Fire every call at its time; the number still unfinished after the drain wait."""
        start_mono = time.monotonic() + START_LEAD_S
        start_wall = time.time() + START_LEAD_S
        for planned in plan.calls:
            delay_s = start_mono + planned.at_s - time.monotonic()
            if delay_s > 0:
                gevent.sleep(delay_s)
            # Pool.spawn waits for a free greenlet: when all are busy, this call is late.
            self.pool.spawn(self.fire, planned, start_mono + planned.at_s,
                            start_wall + planned.at_s)
        self.pool.join(timeout=DRAIN_WAIT_S)
        unfinished = len(self.pool)
        self.pool.kill(block=True, timeout=DRAIN_WAIT_S)
        return unfinished

    def fire(self, planned: Planned, due_mono: float, due_wall: float) -> None:
        call = self.prepare(planned)
        if call is None:
            self.skipped[planned.operation] += 1
            return
        sent_mono = time.monotonic()
        status, reply = self.http.call(call.method, call.path, call.token, call.body)
        done_mono = time.monotonic()
        self.sent += 1
        problem = self.problem(call, status, reply)
        if problem:
            self.refusals[f"{call.endpoint}: {problem}"] += 1
        done_wall = due_wall + (done_mono - due_mono)
        record = self.recorder.record
        record(call.endpoint, _us(done_mono - due_mono), bool(problem), done_wall, "latency")
        record(call.endpoint, _us(done_mono - sent_mono), bool(problem), done_wall, "service")
        record(call.endpoint, _us(sent_mono - due_mono), False, done_wall, "lateness")

    @staticmethod
    def problem(call: Call, status: int, reply: Any) -> str | None:
        if status != call.status:
            code = reply.get("code") if isinstance(reply, dict) else None
            return f"HTTP {status} {code or ''}".strip()
        return call.check(reply) if call.check else None

    def prepare(self, planned: Planned) -> Call | None:
        """The request for a trace row, or None when this world cannot make it."""
        maker = getattr(self, f"_{planned.operation}", None)
        return None if maker is None else maker(planned)

    def _pay_merchant(self, planned: Planned) -> Call:
        body = {"collection_code": self.world.merchant(planned.target_id),
                "amount_fen": max(1, planned.amount_fen), "request_id": uuid.uuid4().hex}
        token = self.world.resident(planned.agent_id).token
        return Call("POST /v1/payments", "/v1/payments", token, body, 201)

    def _top_up(self, planned: Planned) -> Call:
        amount_fen = min(TOP_UP_FEN_MAX, max(1, planned.amount_fen))
        body = {"amount_fen": amount_fen, "request_id": uuid.uuid4().hex}
        token = self.world.resident(planned.agent_id).token
        return Call("POST /v1/topups", "/v1/topups", token, body, 201)

    def _register_resident(self, planned: Planned) -> Call:
        body = {"name": f"Replay newcomer {planned.agent_id}"}
        return Call("POST /v1/residents", "/v1/residents", None, body, 201)

    def _register_merchant(self, planned: Planned) -> Call:
        body = {"name": f"Replay new shop {planned.agent_id}", "city": "Wuhan"}
        return Call("POST /v1/merchants", "/v1/merchants", None, body, 201)

    def _close_settlement(self, planned: Planned) -> Call | None:
        if not self.admin_token:
            return None
        return Call("POST /v1/settlement/close", "/v1/settlement/close", self.admin_token,
                    None, 200, _netting_problem)

    def _deny_delta(self, planned: Planned) -> Call | None:
        bus = self.world.bus(planned.agent_id)
        if bus is None:
            return None
        reader = bus.reader
        since = reader.deny_version

        def apply(delta: Any) -> str | None:
            if delta["version"] > since and reader.apply_deny_changes(
                delta["since"], delta["version"], delta["added"], delta["removed"]
            ) == "gap":
                return "deny delta gap"
            return None

        return Call("GET /v1/transit/deny", f"/v1/transit/deny?since={since}", bus.token,
                    None, 200, apply)

    def _upload_taps(self, planned: Planned) -> Call | None:
        """Riders tap real signed codes on the bus's reader; its oldest batch goes up."""
        bus = self.world.bus(planned.agent_id)
        if bus is None or not self.world.riders:
            return None
        now_s = int(time.time())
        for rider in random.choices(self.world.riders, k=self.taps_per_upload):
            if bus.reader.scan(rider.code(now_s), now_s).accepted:
                self.taps.accepted(bus.reader.reader_id)
        batch = bus.reader.next_batch()
        if batch is None:
            return None
        taps = [{"reader_seq": t.seq, "code": t.code_text, "scanned_at_s": t.scanned_at_s}
                for t in batch.taps]

        def acknowledge(reply: Any) -> str | None:
            outcomes = reply.get("outcomes", []) if isinstance(reply, dict) else []
            if [o.get("reader_seq") for o in outcomes] != [t.seq for t in batch.taps]:
                return "outcomes do not match the batch"
            if bus.reader.ack(batch.batch_id):
                self.taps.uploaded(bus.reader.reader_id, batch.taps[-1].seq)
            refused = sorted({o.get("reason") or "?" for o in outcomes
                              if o.get("outcome") != "cleared"})
            return f"rejected at clearing: {', '.join(refused)}" if refused else None

        body = {"batch_id": batch.batch_id, "taps": taps}
        return Call("POST /v1/transit/batches", "/v1/transit/batches", bus.token, body, 200,
                    acknowledge)


def _netting_problem(report: Any) -> str | None:
    positions = report.get("positions", []) if isinstance(report, dict) else []
    return None if sum(p["net_fen"] for p in positions) == 0 else "net positions do not sum to 0"


def _us(seconds: float) -> int:
    return max(1, round(seconds * 1_000_000))


def write_results(folder: Path, replayer: Replayer, plan: Plan, summary: dict) -> Histograms:
    histograms = Histograms.from_snapshots([replayer.recorder.take()])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HISTOGRAMS_FILE).write_text(json.dumps(histograms.snapshot()) + "\n")
    (folder / READER_TAPS_FILE).write_text(json.dumps(replayer.taps.snapshot(), indent=1) + "\n")
    lateness = [row[2] for (kind, _), row in histograms.totals.items() if kind == "lateness"]
    summary |= {
        "day": plan.day, "speedup": round(plan.speedup, 3), "planned": len(plan.calls),
        "cut": plan.cut, "sent": replayer.sent,
        "skipped": dict(sorted((Counter(plan.skipped) + replayer.skipped).items())),
        "lateness_ms": latency_ms_of(merge_encoded(lateness, 3)) if lateness else {},
        "refusals": dict(replayer.refusals.most_common()),
    }
    (folder / REPLAY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return histograms


def verdict(slo_path: str, histograms: Histograms) -> int:
    if not slo_path:
        return 0
    breaches = load_service_levels(slo_path).check(
        histograms.figures("latency"), histograms.all_requests("latency")
    )
    for breach in breaches:
        print(f"service level breached: {breach}", file=sys.stderr)
    return SLO_BREACHED_EXIT_CODE if breaches else 0


def replay(args: argparse.Namespace) -> int:
    plan = plan_day(args.trace, None if args.trace_day < 0 else args.trace_day, args.duration)
    http = Http(args.host, max(args.concurrency, SETUP_CONCURRENCY))
    try:
        world = build_world(http, plan, Pool(SETUP_CONCURRENCY))
        admin_token = os.environ.get(ADMIN_TOKEN_ENV, "")
        replayer = Replayer(http, world, args.concurrency, admin_token, args.taps_per_upload)
        unfinished = replayer.run(plan)
    finally:
        http.close()
    summary = {"trace": str(args.trace), "world": world.counts, "unfinished": unfinished,
               "concurrency": args.concurrency}
    histograms = write_results(Path(args.results_dir), replayer, plan, summary)
    return verdict(args.slo, histograms)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--trace", required=True, help="A run folder or its trace.parquet.")
    parser.add_argument("--trace-day", type=int, default=-1, help="Default: the busiest day.")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="Seconds the simulated day is compressed into.")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY_MAX,
                        help="Requests in flight at most; more calls due start late.")
    parser.add_argument("--taps-per-upload", type=int, default=TAPS_PER_UPLOAD,
                        help="Taps riders make before each traced upload (1-500).")
    parser.add_argument("--results-dir", default=".")
    parser.add_argument("--slo", default="")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (1 <= args.concurrency <= 1_000 and 1 <= args.taps_per_upload <= 500):
        print("Error: --concurrency must be 1-1000 and --taps-per-upload 1-500", file=sys.stderr)
        return CANNOT_RUN_EXIT_CODE
    try:
        return replay(args)
    except (ReplayError, ScenarioError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return CANNOT_RUN_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
