"""Offline taps cleared per second, beside a bare Ed25519 verify loop in the same run.

    python benchmarks/bench_clearing.py [--quick] [--taps 4000] [--batch 500] [--rounds 3]

Clearing does per tap: base45 decoding, parsing, the rider-signature verify (the
credential's platform signature is verified once per card and worker), a replay lookup,
pricing, one or two ledger transfers, and one operator credit per batch, all in one
transaction per batch. Verification runs before the transaction, split over one worker
process per core (``TapVerifier``); the pool is started during set-up, as a server
starts it once. The baseline is the floor under all of that: one Ed25519 verify per tap,
nothing else, on one core. The two take turns on fresh taps, ``--rounds`` each, and each
keeps its best round. Target: at least 0.7 of the bare loop.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo and this folder importable
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).parent)]

from _protocol import main, result
from nacl.bindings import crypto_sign_open

from platform_stub import Platform
from platform_stub.clearing import UploadedTap
from platform_stub.service import luhn_complete
from platform_stub.transit import (
    Credential,
    decode_code_text,
    derive_private_key,
    encode_code_text,
    parse_code,
    public_key_bytes,
    sign_code,
)
from platform_stub.transit.verify import VERIFY_WORKERS_ENV

PLATFORM_SEED = b"benchmark platform seed, fixed.."
RIDER_SEED = b"benchmark riders seed, fixed...."
RIDERS = 200
START_S = 1_500_000_000
TAPS, TAPS_QUICK = 4_000, 3_000
BATCH = 500


def make_world(folder: Path, taps: int) -> tuple[Platform, str, list[str]]:
    # This script keeps its work under ``__main__``, so spawned verify workers may import
    # it: opt in to one worker per core, as the server (``python -m``) has by default.
    os.environ.setdefault(VERIFY_WORKERS_ENV, str(os.cpu_count() or 1))
    platform = Platform.open(f"sqlite:///{folder / 'ledger.db'}", keyring_seed=PLATFORM_SEED)
    operator = platform.transit.register_operator("bench operator")
    reader = platform.transit.register_reader(operator.token, "bench reader")
    riders = []
    for n in range(RIDERS):
        reg = platform.register_resident(f"rider {n}")
        platform.bind_card(reg.token, luhn_complete(f"6222{n:011d}"), "ICBC")
        platform.top_up(reg.token, 1_000_000, "bench")
        key = derive_private_key(RIDER_SEED, n)
        raw = platform.transit.claim_bus_card(reg.token, public_key_bytes(key))
        riders.append((key, Credential.from_bytes(raw)))
    codes = []
    for i in range(taps):
        key, credential = riders[i % RIDERS]
        stamp = START_S + i * 60  # a rider every minute: no transfer discounts to muddle
        codes.append(encode_code_text(sign_code(credential, key, stamp, i.to_bytes(8, "big"))))
    platform.transit.clearing.verifier.start()  # a server starts its workers once
    return platform, reader.token, codes


def verify_work(codes: list[str]) -> list[tuple[bytes, bytes]]:
    """Each tap's signed message and rider key, parsed ahead: the bare loop's input."""
    parsed = [parse_code(decode_code_text(c)) for c in codes]
    return [(p.signature + p.signed_message(), p.credential.rider_public_key) for p in parsed]


def verify_all(work: list[tuple[bytes, bytes]]) -> None:
    """One Ed25519 verify per tap, nothing else: the physical floor of clearing. The
    same libsodium call clearing makes (``credential.verify_signature``)."""
    for signed, key in work:
        crypto_sign_open(signed, key)


def bare_verify_per_s(codes: list[str]) -> float:
    work = verify_work(codes)
    start = time.perf_counter()
    verify_all(work)
    return len(work) / (time.perf_counter() - start)


def cleared_per_s(
    platform: Platform, reader_token: str, codes: list[str], batch: int, first_seq: int = 0
) -> float:
    """One reader uploads the taps batch after batch; taps cleared per second."""
    taps = [
        UploadedTap(first_seq + i, code, START_S + (first_seq + i) * 60 + 5)
        for i, code in enumerate(codes)
    ]
    start = time.perf_counter()
    for first in range(0, len(taps), batch):
        chunk = taps[first : first + batch]
        outcomes = platform.transit.upload_taps(reader_token, f"b{chunk[0].reader_seq}", chunk)
        assert all(o.outcome == "cleared" for o in outcomes), "benchmark taps must all clear"
    return len(taps) / (time.perf_counter() - start)


def run(
    quick: bool = False, taps: int | None = None, batch: int = BATCH, rounds: int = 3
) -> list[dict]:
    count = taps or (TAPS_QUICK if quick else TAPS)
    baseline = figure = 0.0
    with tempfile.TemporaryDirectory() as folder:
        platform, reader_token, codes = make_world(Path(folder), count * rounds)
        workers = platform.transit.clearing.verifier.workers
        for n in range(rounds):  # each round clears taps never seen before
            fresh = codes[n * count : (n + 1) * count]
            baseline = max(baseline, bare_verify_per_s(fresh))
            figure = max(figure, cleared_per_s(platform, reader_token, fresh, batch, n * count))
        assert platform.audit().ok
        platform.close()
    return [
        result(
            "taps_cleared_per_s",
            figure,
            "taps/s",
            baseline,
            "ed25519_verify_per_s_one_core",
            target=0.7,
            taps=count,
            batch=batch,
            rounds=rounds,
            verify_workers=workers,
        )
    ]


def _arguments(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--taps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--rounds", type=int, default=3)


if __name__ == "__main__":
    main(run, __doc__, _arguments)
