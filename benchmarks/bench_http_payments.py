"""Merchant payments per second through the platform's HTTP API, beside a bare endpoint.

    python benchmarks/bench_http_payments.py [--quick] [--seconds 5] [--concurrency 16]
        [--rounds 2] [--paced-seconds 10]

Figure: ``POST /v1/payments`` answered 201 per second by ``python -m platform_stub.server``
(one uvicorn worker, SQLite WAL): authentication, the EMV collection code, one ledger
transfer, run on the ledger lane (``platform_stub/ledger_lane.py``: queued payments
share a COMMIT, answered after it). Baseline: the same request to
``benchmarks/bare_app.py``, an ``async`` FastAPI JSON endpoint with the same body model
on the same uvicorn, doing nothing else: the fastest path the stack has. One client
for both, in this process: ``--concurrency`` greenlets in a closed loop over keep-alive
connections (geventhttpclient, what Locust's FastHttpUser uses). The two servers take
turns, ``--rounds`` each, and each keeps its best round, so drift on a shared machine
hits both. The ratio is the share of the bare stack's throughput the platform keeps.
Target: at least 0.5.

Second figure, ``http_payment_latency_ms_p99``: an open model at half the platform's
measured peak. Payment ``i`` is due at ``start + i / rate`` whatever happened before
(wrk2's way, no coordinated omission), on up to ``PACED_IN_FLIGHT_MAX`` connections; its
latency runs from when it was due to its answer, so a late start counts. Baseline: the
bare app's p99 under the same schedule. Target: the platform's p99 under 20 ms.
"""

import loadtests._patched  # noqa: F401 - first: gevent patches the standard library

# isort: split
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import gevent
from gevent.pool import Pool

sys.path.insert(0, str(Path(__file__).parent))
from _protocol import best_of, main, result  # noqa: E402 - after gevent's patching, like the rest

from loadtests._processes import free_port, platform_server, start, stop, wait_healthy  # noqa: E402
from loadtests._replay_world import Http  # noqa: E402
from platform_stub import Platform  # noqa: E402
from platform_stub.service import luhn_complete  # noqa: E402

BENCH_DIR = Path(__file__).parent
MERCHANTS = 8
TOP_UP_FEN = 5_000_000  # the platform's top-up limit: thousands of payments each
PAYMENT_FEN = 1_200  # a breakfast
PACED_IN_FLIGHT_MAX = 64  # connections the paced client may hold open at once
QUICK = {"seconds": 3.0, "rounds": 2, "paced_seconds": 6.0}


@contextlib.contextmanager
def bare_server(log_path: Path) -> Iterator[str]:
    """The bare app on the same uvicorn settings as ``platform_stub.server``."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = start(command, log_path, BENCH_DIR, os.environ)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(proc, url, log_path)
        yield url
    finally:
        stop(proc)


def payers(http: Http, count: int) -> list[tuple[str, str]]:
    """(resident token, merchant collection code) for each client greenlet."""
    codes = [
        http.setup("POST", "/v1/merchants", None, {"name": f"Stall {n}", "city": "Wuhan"})[
            "collection_code"
        ]
        for n in range(MERCHANTS)
    ]
    pairs = []
    for n in range(count):
        reply = http.setup("POST", "/v1/residents", None, {"name": f"Payer {n}"})
        card = luhn_complete(f"622202{reply['participant_id']:09d}")
        http.setup("POST", "/v1/cards", reply["token"], {"card_number": card, "bank": "ICBC"})
        http.setup(
            "POST",
            "/v1/topups",
            reply["token"],
            {"amount_fen": TOP_UP_FEN, "request_id": f"bench-{n}"},
        )
        pairs.append((reply["token"], codes[n % MERCHANTS]))
    return pairs


def payments_per_s(http: Http, pairs: list[tuple[str, str]], seconds: float) -> float:
    """Every greenlet pays in a loop until the time is up; 201s per second."""
    until = time.monotonic() + seconds
    started = time.monotonic()
    loops = [gevent.spawn(_pay_until, http, token, code, until) for token, code in pairs]
    gevent.joinall(loops, timeout=seconds + 30)
    return sum(g.value or 0 for g in loops) / (time.monotonic() - started)


def _pay_until(http: Http, token: str, code: str, until: float) -> int:
    paid = 0
    while time.monotonic() < until:
        body = {"collection_code": code, "amount_fen": PAYMENT_FEN, "request_id": uuid.uuid4().hex}
        status, _ = http.call("POST", "/v1/payments", token, body)
        paid += status == 201
    return paid


def paced_latencies_ms(
    http: Http, pairs: list[tuple[str, str]], rate_per_s: float, seconds: float
) -> tuple[list[float], int]:
    """Open model: payment ``i`` due at ``start + i / rate``; latency from that time.
    Returns the sorted latencies of 201s and the count of other answers."""
    count = max(1, int(rate_per_s * seconds))
    pool = Pool(PACED_IN_FLIGHT_MAX)
    latencies: list[float] = []
    failed = [0]
    start_at = time.monotonic() + 0.05

    def pay(index: int, due: float) -> None:
        token, code = pairs[index % len(pairs)]
        body = {"collection_code": code, "amount_fen": PAYMENT_FEN, "request_id": uuid.uuid4().hex}
        status, _ = http.call("POST", "/v1/payments", token, body)
        if status == 201:
            latencies.append((time.monotonic() - due) * 1000)
        else:
            failed[0] += 1

    for index in range(count):
        due = start_at + index / rate_per_s
        gevent.sleep(max(0.0, due - time.monotonic()))
        pool.spawn(pay, index, due)  # waits for a free slot: that wait counts as latency
    pool.join(timeout=seconds + 30)
    return sorted(latencies), failed[0]


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


def run(
    quick: bool = False,
    seconds: float = 5.0,
    concurrency: int = 16,
    rounds: int = 2,
    paced_seconds: float = 10.0,
) -> list[dict]:
    if quick:
        seconds, rounds, paced_seconds = QUICK["seconds"], QUICK["rounds"], QUICK["paced_seconds"]
    with tempfile.TemporaryDirectory() as folder:
        db_url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        with (
            platform_server(db_url, Path(folder) / "platform.log", os.environ) as platform_url,
            bare_server(Path(folder) / "bare.log") as bare_url,
        ):
            platform_http = Http(platform_url, max(concurrency, PACED_IN_FLIGHT_MAX))
            bare_http = Http(bare_url, max(concurrency, PACED_IN_FLIGHT_MAX))
            pairs = payers(platform_http, concurrency)
            figure, baseline = best_of(
                rounds,
                lambda: payments_per_s(platform_http, pairs, seconds),
                lambda: payments_per_s(bare_http, pairs, seconds),
            )
            rate = figure / 2
            paced, failed = paced_latencies_ms(platform_http, pairs, rate, paced_seconds)
            bare_paced, _ = paced_latencies_ms(bare_http, pairs, rate, paced_seconds)
        platform = Platform.open(db_url)
        assert platform.audit().ok, "the ledger must balance after the benchmark"
        platform.close()
    return [
        result(
            "http_payments_per_s",
            figure,
            "payments/s",
            baseline,
            "bare_async_fastapi_json_per_s_same_uvicorn",
            target=0.5,
            concurrency=concurrency,
            seconds=seconds,
            rounds=rounds,
        ),
        result(
            "http_payment_latency_ms_p99",
            percentile(paced, 99),
            "ms",
            percentile(bare_paced, 99),
            "bare_async_fastapi_latency_ms_p99_same_schedule",
            target=20.0,
            target_of="figure",
            target_is="max",
            rate_per_s=round(rate, 1),
            seconds=paced_seconds,
            latency_ms_p50=round(percentile(paced, 50), 2),
            answered=len(paced),
            failed=failed,
            in_flight_max=PACED_IN_FLIGHT_MAX,
        ),
    ]


def _arguments(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paced-seconds", type=float, default=10.0)


if __name__ == "__main__":
    main(run, __doc__, _arguments)
