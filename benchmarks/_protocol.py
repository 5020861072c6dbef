"""The result protocol every ``benchmarks/bench_*.py`` follows (see ``run_all.py``).

A bench module defines ``run(quick: bool = False) -> list[dict]``, one dict per figure,
each made by :func:`result`; run standalone it prints each dict as one JSON line
(:func:`main`). ``quick`` picks sizes that finish in well under a minute or two.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

REQUIRED_KEYS = (
    "name",
    "figure",
    "unit",
    "baseline",
    "baseline_name",
    "ratio",
    "target",
    "target_of",
    "target_is",
)


def result(
    name: str,
    figure: float,
    unit: str,
    baseline: float,
    baseline_name: str,
    target: float,
    target_of: str = "ratio",
    target_is: str = "min",
    **extra: Any,
) -> dict:
    """One figure beside its same-run baseline. ``target`` bounds ``target_of`` (the ratio
    or the figure itself) from below (``target_is="min"``) or above (``"max"``)."""
    assert target_of in ("ratio", "figure") and target_is in ("min", "max")
    ratio = figure / baseline if baseline else float("nan")
    return {
        "name": name,
        "figure": round(figure, 3),
        "unit": unit,
        "baseline": round(baseline, 3),
        "baseline_name": baseline_name,
        "ratio": round(ratio, 3),
        "target": target,
        "target_of": target_of,
        "target_is": target_is,
        **extra,
    }


def met(res: dict) -> bool:
    """Whether the figure meets its target (a missing or non-numeric value does not)."""
    value = res.get(res.get("target_of", "ratio"))
    if not isinstance(value, int | float) or value != value:  # NaN never meets a target
        return False
    return value >= res["target"] if res["target_is"] == "min" else value <= res["target"]


def main(
    run: Callable[..., list[dict]],
    doc: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Standalone entry point: ``--quick`` plus the bench's own options; JSON lines out."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the sizes run_all --quick uses")
    if add_arguments is not None:
        add_arguments(parser)
    options = vars(parser.parse_args())
    for res in run(**options):
        print(json.dumps(res), flush=True)


def best_of(rounds: int, *measures: Callable[[], float]) -> list[float]:
    """Each measure's best round, the measures taking turns."""
    best = [0.0] * len(measures)
    for _ in range(rounds):
        for index, measure in enumerate(measures):
            best[index] = max(best[index], measure())
    return best
