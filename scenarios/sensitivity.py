"""Which parameters move a result: Morris elementary effects (``cashless sensitivity``).

SALib's Morris method samples ``trajectories`` one-at-a-time paths through the
parameter box on a grid of ``levels`` levels: ``trajectories x (parameters + 1)``
runs per seed. Per parameter it reports ``mu_star``, the mean absolute change of the
metric per full-range step (how much it matters), and ``sigma``, the spread of those
changes (interaction, non-linearity and seed noise). Every run uses the same seeds
(common random numbers) so a change comes from the parameter, not the dice; the
metric is the mean over the seeds. Sampling and bootstrap use ``seed``: same
arguments, same table.

A metric is a dotted summary.json key (``adoption.overall``) or a daily.parquet
column as ``daily.COLUMN`` or ``daily.COLUMN:STAT`` (STAT: last, mean, sum, max, min;
default last).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from platform_stub.exceptions import ScenarioError
from scenarios.evaluate import STATS, Measure, MeasureError, dotted_get, process_pool, simulate
from scenarios.loader import load_scenario

TRAJECTORIES_MAX = 200
FACTORS_MAX = 20
LEVELS = 4  # SALib's default grid; an even number keeps the steps symmetric


@dataclass(frozen=True)
class Factor:
    key: str
    lo: float
    hi: float
    integer: bool = False

    def value(self, x: float) -> float | int:
        return round(x) if self.integer else float(x)


def parse_factor(text: str) -> tuple[str, float, float]:
    """``key=lo,hi`` -> (key, lo, hi)."""
    key, sep, raw = text.partition("=")
    try:
        lo, hi = (float(v) for v in raw.split(","))
    except ValueError:
        lo = hi = 0.0
        sep = ""
    if not sep or not key or not lo < hi:
        raise ScenarioError("(command line)", "--params", "key=lo,hi with lo < hi", text)
    return key, lo, hi


def parse_metric(text: str) -> Measure:
    """A summary key, or ``daily.COLUMN[:STAT]``."""
    if not text.startswith("daily."):
        return Measure(summary=text)
    column, _, stat = text.removeprefix("daily.").partition(":")
    stat = stat or "last"
    if not column or stat not in STATS or stat == "value":
        choices = ", ".join(s for s in STATS if s != "value")
        raise ScenarioError(
            "(command line)", "--metric", f"daily.COLUMN[:STAT], STAT {choices}", text
        )
    return Measure(column=column, stat=stat)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Study:
    """A scenario, the factors to vary and the metric; picklable for worker processes."""

    scenario: str
    sets: dict[str, Any]
    factors: tuple[Factor, ...]
    metric: Measure
    seeds: tuple[int, ...]

    def evaluate(self, x: Sequence[float]) -> float | None:
        point = {f.key: f.value(v) for f, v in zip(self.factors, x, strict=True)}
        scenario = load_scenario(self.scenario, self.sets | point)
        try:
            values = [
                self.metric.read(run.daily, run.summary)
                for run in (simulate(scenario, seed) for seed in self.seeds)
            ]
        except MeasureError:
            return None
        return float(np.mean(values))


def make_study(
    scenario: str,
    sets: dict[str, Any],
    params: Sequence[str],
    metric: str,
    seeds: Sequence[int],
) -> Study:
    """Validate the factors against the scenario (a numeric key each) and build the study."""
    if not 1 <= len(params) <= FACTORS_MAX:
        raise ScenarioError("(command line)", "--params", f"1 to {FACTORS_MAX} key=lo,hi", params)
    base = load_scenario(scenario, sets).model_dump()
    factors = []
    for text in params:
        key, lo, hi = parse_factor(text)
        try:
            current = dotted_get(base, key)
        except KeyError:
            raise ScenarioError(scenario, key, "a numeric key of the scenario") from None
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise ScenarioError(scenario, key, "a numeric key of the scenario", current)
        factors.append(Factor(key, lo, hi, isinstance(current, int)))
    return Study(scenario, sets, tuple(factors), parse_metric(metric), tuple(seeds))


def problem_of(study: Study) -> dict[str, Any]:
    return {
        "num_vars": len(study.factors),
        "names": [f.key for f in study.factors],
        "bounds": [[f.lo, f.hi] for f in study.factors],
    }


def morris(
    study: Study,
    trajectories: int,
    seed: int = 0,
    jobs: int = 1,
    on_eval: Callable[[], None] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-parameter indices sorted by mu_star, every sampled run with its metric)."""
    from SALib.analyze import morris as analyze
    from SALib.sample import morris as sample

    if not 2 <= trajectories <= TRAJECTORIES_MAX:
        raise ScenarioError(
            "(command line)", "--trajectories", f"2 to {TRAJECTORIES_MAX}", trajectories
        )
    problem = problem_of(study)
    x = sample.sample(problem, trajectories, num_levels=LEVELS, seed=seed)
    y = _evaluate_all(study, x, jobs, on_eval)
    result = analyze.analyze(problem, x, y, num_levels=LEVELS, seed=seed, print_to_console=False)
    indices = pl.DataFrame(
        {
            "param": problem["names"],
            "mu": np.asarray(result["mu"], dtype=float),
            "mu_star": np.asarray(result["mu_star"], dtype=float),
            "sigma": np.asarray(result["sigma"], dtype=float),
            "mu_star_conf": np.asarray(result["mu_star_conf"], dtype=float),
        }
    ).sort("mu_star", descending=True)
    used = [[float(f.value(v)) for f, v in zip(study.factors, row, strict=True)] for row in x]
    samples = pl.DataFrame(used, schema=problem["names"], orient="row").with_columns(
        pl.Series("metric", y)
    )
    return indices, samples


def _evaluate_all(
    study: Study, x: np.ndarray, jobs: int, on_eval: Callable[[], None] | None
) -> np.ndarray:
    rows = [tuple(float(v) for v in row) for row in x]
    values: list[float | None] = []
    pool = process_pool(jobs)
    try:
        results = pool.map(study.evaluate, rows) if pool else map(study.evaluate, rows)
        for value in results:
            values.append(value)
            if on_eval:
                on_eval()
    finally:
        if pool is not None:
            pool.shutdown()
    missing = [rows[i] for i, v in enumerate(values) if v is None]
    if missing:
        raise ScenarioError(
            "(command line)",
            "--metric",
            f"a number every run has ({study.metric.describe()} "
            f"was missing at {dict(zip(problem_of(study)['names'], missing[0], strict=True))})",
        )
    return np.asarray(values, dtype=float)
