"""Offline taps cleared per second, beside a bare Ed25519 verify loop in the same run.

    python benchmarks/bench_clearing.py [--taps 4000] [--batch 500]

Clearing does per tap: one rider-signature verify (the credential's platform
signature is cached per card), a replay lookup, pricing, two to three ledger
writes, and one operator credit per batch. The baseline is the floor under all
of that: one Ed25519 verify per tap on one core. The ratio is what the rest costs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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

PLATFORM_SEED = b"benchmark platform seed, fixed.."
RIDER_SEED = b"benchmark riders seed, fixed...."
RIDERS = 200
START_S = 1_500_000_000


def make_world(folder: Path, taps: int) -> tuple[Platform, str, list[str]]:
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
    return platform, reader.token, codes


def bare_verify_per_s(codes: list[str]) -> float:
    """One Ed25519 verify per tap, nothing else: the physical floor of clearing."""
    parsed = [parse_code(decode_code_text(c)) for c in codes]
    work = [(Ed25519PublicKey.from_public_bytes(p.credential.rider_public_key),
             p.signature, p.signed_message()) for p in parsed]
    start = time.perf_counter()
    for key, signature, message in work:
        key.verify(signature, message)
    return len(work) / (time.perf_counter() - start)


def cleared_per_s(platform: Platform, reader_token: str, codes: list[str], batch: int) -> float:
    taps = [UploadedTap(i, code, START_S + i * 60 + 5) for i, code in enumerate(codes)]
    start = time.perf_counter()
    for first in range(0, len(taps), batch):
        chunk = taps[first : first + batch]
        outcomes = platform.transit.upload_taps(reader_token, f"b{first}", chunk)
        assert all(o.outcome == "cleared" for o in outcomes), "benchmark taps must all clear"
    return len(taps) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        platform, reader_token, codes = make_world(Path(folder), args.taps)
        baseline = bare_verify_per_s(codes)
        figure = cleared_per_s(platform, reader_token, codes, args.batch)
        assert platform.audit().ok
        platform.close()
    result = {"name": "taps_cleared_per_s", "figure": round(figure, 1),
              "baseline": round(baseline, 1), "baseline_name": "ed25519_verify_per_s_one_core",
              "ratio": round(figure / baseline, 3), "taps": args.taps, "batch": args.batch}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
