"""Run every benchmark, write ``benchmarks/results.json``, exit 1 when a target is missed.

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--out PATH]

Protocol (a new benchmark follows it and is picked up with no change here)
---------------------------------------------------------------------------
- A file ``benchmarks/bench_<name>.py`` (every such file is run, in name order;
  ``bench_simulation.py`` too once it exists).
- It defines ``run(quick: bool = False, **options) -> list[dict]``: one dict per figure,
  built with ``_protocol.result(...)``, holding at least::

      name           snake_case, units last ("taps_cleared_per_s")
      figure         the measured value
      unit           e.g. "payments/s", "ms", "s"
      baseline       the floor or reference measured in the same run, same machine
      baseline_name  what the baseline is
      ratio          figure / baseline
      target         the number the target compares with
      target_of      "ratio" or "figure": which value the target bounds
      target_is      "min" (value >= target) or "max" (value <= target)

  Any other keys (sizes, rounds, workers) are kept as they are.
- Run as a script it accepts ``--quick`` and prints each dict as one JSON line on
  stdout (``_protocol.main``); anything else it says goes to stderr. ``--quick`` sizes
  finish in a minute or two on the shared 2-core machine.
- Figures must be ratios to a baseline taken in the same run (the machine is shared);
  both sides do the same work, and nothing is cached from one run to the next.

Each bench runs in its own process (the HTTP bench patches the standard library with
gevent; no bench inherits another's caches), bounded by ``BENCH_S_MAX``. A bench that
fails, times out or prints no result is recorded with ``"error"`` and counts as a miss.
``results.json`` holds every result with ``met`` added, the command, and the time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from _protocol import REQUIRED_KEYS, met

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results.json"
BENCH_S_MAX = 900  # per bench; the quick sizes take a minute or two
QUICK_BENCH_S_MAX = 420
STDERR_TAIL_CHARS = 2_000


def bench_files(only: list[str] | None = None) -> list[Path]:
    files = sorted(BENCH_DIR.glob("bench_*.py"))
    if only:
        files = [f for f in files if f.stem.removeprefix("bench_") in only or f.stem in only]
    return files


def run_bench(path: Path, quick: bool) -> list[dict]:
    """One bench in its own process; its results, or one error record."""
    command = [sys.executable, str(path)] + (["--quick"] if quick else [])
    limit_s = QUICK_BENCH_S_MAX if quick else BENCH_S_MAX
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=limit_s, cwd=BENCH_DIR.parent
        )
    except subprocess.TimeoutExpired:
        return [_error(path, f"still running after {limit_s} s")]
    elapsed_s = round(time.monotonic() - started, 1)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not results:
        return [_error(path, f"exit code {done.returncode}: {done.stderr[-STDERR_TAIL_CHARS:]}")]
    for res in results:
        missing = [k for k in REQUIRED_KEYS if k not in res]
        res["met"] = met(res) if not missing else False
        if missing:
            res["error"] = f"result lacks {missing} (see the protocol in run_all.py)"
        res.update(
            bench=path.name,
            bench_s=elapsed_s,
            command=" ".join(
                ["python", f"benchmarks/{path.name}"] + (["--quick"] if quick else [])
            ),
        )
    return results


def _error(path: Path, message: str) -> dict:
    return {"name": path.stem, "bench": path.name, "error": message, "met": False}


def show(res: dict) -> str:
    if "error" in res and "figure" not in res:
        return f"MISS {res['name']}: {res['error'].strip().splitlines()[-1:] or ''}"
    bound = ">=" if res["target_is"] == "min" else "<="
    return (
        f"{'ok  ' if res['met'] else 'MISS'} {res['name']}: {res['figure']:g} {res['unit']}"
        f" vs {res['baseline']:g} ({res['baseline_name']}), ratio {res['ratio']:g};"
        f" target {res['target_of']} {bound} {res['target']:g}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: minutes in all")
    parser.add_argument("--only", nargs="*", help="bench names, e.g. clearing payments")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    args = parser.parse_args()
    results: list[dict] = []
    for path in bench_files(args.only):
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        for res in run_bench(path, args.quick):
            print(show(res), flush=True)
            results.append(res)
    args.out.write_text(
        json.dumps(
            {
                "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "quick": args.quick,
                "all_met": all(r["met"] for r in results),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}", file=sys.stderr)
    sys.exit(0 if results and all(r["met"] for r in results) else 1)


if __name__ == "__main__":
    main()
