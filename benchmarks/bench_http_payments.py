"""Merchant payments per second through the platform's HTTP API, beside a bare endpoint.

    python benchmarks/bench_http_payments.py [--seconds 5] [--concurrency 16] [--rounds 2]

Figure: ``POST /v1/payments`` answered 201 per second by ``python -m platform_stub.server``
(one uvicorn worker, SQLite WAL): authentication, the EMV collection code, one ledger
transfer. Baseline: the same request to ``benchmarks/bare_app.py``, a FastAPI JSON
endpoint with the same body model on the same uvicorn, doing nothing else. One client
for both, in this process: ``--concurrency`` greenlets in a closed loop over keep-alive
connections (geventhttpclient, what Locust's FastHttpUser uses). The two servers take
turns, ``--rounds`` each, and each keeps its best round, so drift on a shared machine
hits both. The ratio is the share of the bare stack's throughput the platform keeps.
"""

import loadtests._patched  # noqa: F401 - first: gevent patches the standard library

# isort: split
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent

from loadtests._processes import free_port, platform_server, start, stop, wait_healthy
from loadtests._replay_world import Http
from platform_stub import Platform
from platform_stub.service import luhn_complete

BENCH_DIR = Path(__file__).parent
MERCHANTS = 8
TOP_UP_FEN = 5_000_000  # the platform's top-up limit: thousands of payments each
PAYMENT_FEN = 1_200  # a breakfast


@contextlib.contextmanager
def bare_server(log_path: Path) -> Iterator[str]:
    """The bare app on the same uvicorn settings as ``platform_stub.server``."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(BENCH_DIR),
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
               "--no-access-log"]
    proc = start(command, log_path, BENCH_DIR, os.environ)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(proc, url, log_path)
        yield url
    finally:
        stop(proc)


def payers(http: Http, count: int) -> list[tuple[str, str]]:
    """(resident token, merchant collection code) for each client greenlet."""
    codes = [http.setup("POST", "/v1/merchants", None, {"name": f"Stall {n}", "city": "Wuhan"})
             ["collection_code"] for n in range(MERCHANTS)]
    pairs = []
    for n in range(count):
        reply = http.setup("POST", "/v1/residents", None, {"name": f"Payer {n}"})
        card = luhn_complete(f"622202{reply['participant_id']:09d}")
        http.setup("POST", "/v1/cards", reply["token"], {"card_number": card, "bank": "ICBC"})
        http.setup("POST", "/v1/topups", reply["token"],
                   {"amount_fen": TOP_UP_FEN, "request_id": f"bench-{n}"})
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
        body = {"collection_code": code, "amount_fen": PAYMENT_FEN,
                "request_id": uuid.uuid4().hex}
        status, _ = http.call("POST", "/v1/payments", token, body)
        paid += status == 201
    return paid


def best_of(rounds: int, *measures: Callable[[], float]) -> list[float]:
    """Each measure's best round, the measures taking turns."""
    best = [0.0] * len(measures)
    for _ in range(rounds):
        for index, measure in enumerate(measures):
            best[index] = max(best[index], measure())
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db_url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        with (platform_server(db_url, Path(folder) / "platform.log", os.environ) as platform_url,
              bare_server(Path(folder) / "bare.log") as bare_url):
            platform_http = Http(platform_url, args.concurrency)
            bare_http = Http(bare_url, args.concurrency)
            pairs = payers(platform_http, args.concurrency)
            figure, baseline = best_of(
                args.rounds,
                lambda: payments_per_s(platform_http, pairs, args.seconds),
                lambda: payments_per_s(bare_http, pairs, args.seconds),
            )
        platform = Platform.open(db_url)
        assert platform.audit().ok, "the ledger must balance after the benchmark"
        platform.close()
    print(json.dumps({
        "name": "http_payments_per_s", "figure": round(figure, 1), "baseline": round(baseline, 1),
        "baseline_name": "bare_fastapi_json_per_s_same_uvicorn",
        "ratio": round(figure / baseline, 3), "concurrency": args.concurrency,
        "seconds": args.seconds, "rounds": args.rounds,
    }))


if __name__ == "__main__":
    main()
