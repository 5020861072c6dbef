"""Instructions per payment and per cleared tap, counted by callgrind beside their bare
baselines: figures that do not move with the machine's load.

    python benchmarks/instructions.py [--payments 2000] [--taps 1000]

On this shared 2-core machine a bare loop's speed varies 20-30 % between identical runs,
so a change worth 5 % cannot be seen in seconds. ``valgrind --tool=callgrind`` counts the
instructions a process executes, which is the same run after run whatever else the
machine does (the WAL checkpoint thread, which wakes by the clock, is idle in these
runs; see ``_child``). Each case runs in a child process under valgrind three times: set-up only,
set-up plus N operations of the platform, set-up plus N of the bare loop. The
differences divided by N are the instructions per operation; the ratio bare / platform
reads like the throughput ratios of ``run_all.py`` (higher is better) on one core.

- ``payments``: ``InProcessClient.pay_merchant`` against ``bench_payments``'s bare
  SQLite loop (one transaction per payment: insert a transfer, update two balances).
- ``clearing``: ``upload_taps`` in batches of 500 with verification in the calling
  process (``CASHLESS_VERIFY_WORKERS=0``: all the work a tap needs, wherever it runs)
  against one libsodium verify per tap. The codes are parsed in every run, so the bare
  figure is the verify alone.

This is not one of ``run_all.py``'s benches (valgrind runs Python about 50x slower: the
six runs take 3-5 minutes); it is the tool for judging a change, alongside them.
Needs ``valgrind`` on the PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo and this folder importable
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).parent)]

SIDES = ("setup", "platform", "bare")
WARM_UP = 200  # operations of each side before counting starts (caches, statements)
CLEARING_WARM_UP_TAPS = 500
_COLLECTED = re.compile(r"Collected : (\d+)")


def _payments(side: str, count: int, folder: Path) -> None:
    from bench_payments import World

    world = World(folder)
    world.payments_per_s(WARM_UP)
    world.bare_per_s(WARM_UP)
    if side == "platform":
        world.payments_per_s(count)
    elif side == "bare":
        world.bare_per_s(count)


def _clearing(side: str, count: int, folder: Path) -> None:
    os.environ["CASHLESS_VERIFY_WORKERS"] = "0"
    import bench_clearing as bc

    platform, reader_token, codes = bc.make_world(folder, CLEARING_WARM_UP_TAPS + count)
    bc.cleared_per_s(platform, reader_token, codes[:CLEARING_WARM_UP_TAPS], bc.BATCH)
    counted = codes[CLEARING_WARM_UP_TAPS:]
    work = bc.verify_work(counted)  # parsed in every run: the bare side is the verify alone
    if side == "platform":
        bc.cleared_per_s(platform, reader_token, counted, bc.BATCH, CLEARING_WARM_UP_TAPS)
    elif side == "bare":
        bc.verify_all(work)
    platform.close()


CASES = {"payments": _payments, "clearing": _clearing}


def _child(case: str, side: str, count: int) -> None:
    from platform_stub.checkpoint import Checkpointer

    # The checkpoint thread wakes every 0.1 s: under valgrind, some 50x slower, it would
    # run 50x as often per payment, and as often as the run's speed allows, so counts
    # would vary. It works off the payment's path anyway; the checkpoints a commit makes
    # when the log passes its page bound still run, and those depend on pages, not time.
    Checkpointer._checkpoint = lambda self: None  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder:
        CASES[case](side, count, Path(folder))


def _count(case: str, side: str, count: int) -> int:
    """Instructions of one child run under callgrind."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            case,
            side,
            str(count),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same string hashes every run
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{case}/{side} failed under valgrind:\n{done.stderr[-2000:]}")
    print(f"  {case:9} {side:8} {int(found.group(1)):>15,} instructions", file=sys.stderr)
    return int(found.group(1))


def measure(counts: dict[str, int]) -> list[dict]:
    """Per-operation instructions of each case's platform and bare sides, and their ratio."""
    runs = [(case, side) for case in counts for side in SIDES]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        totals = dict(zip(runs, pool.map(lambda r: _count(*r, counts[r[0]]), runs), strict=True))
    figures = []
    for case, count in counts.items():
        setup = totals[(case, "setup")]
        platform = (totals[(case, "platform")] - setup) / count
        bare = (totals[(case, "bare")] - setup) / count
        figures.append(
            {
                "name": f"{case}_instructions_per_op",
                "figure": round(platform),
                "baseline": round(bare),
                "ratio": round(bare / platform, 3),
                "operations": count,
            }
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=2000, help="payments counted")
    parser.add_argument("--taps", type=int, default=1000, help="taps counted")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--child", nargs=3, metavar=("CASE", "SIDE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, side, count = args.child
        _child(case, side, int(count))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not on the PATH (Debian: apt-get install valgrind)")
    sizes = {"payments": args.payments, "clearing": args.taps}
    print("counting instructions under callgrind (3-5 minutes) ...", file=sys.stderr)
    for figure in measure({case: sizes[case] for case in args.only}):
        print(json.dumps(figure))
        print(
            f"{figure['name']}: {figure['figure']:,} vs bare {figure['baseline']:,},"
            f" ratio {figure['ratio']}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
