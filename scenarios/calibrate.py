"""Fit scenario parameters to published figures (``cashless calibrate``).

The optimiser is ``scipy.optimize.differential_evolution``: derivative-free,
bounded by construction, global, and reproducible with a fixed ``rng`` seed. A
simulated city is a step function of its parameters (agents are discrete), so
gradient and simplex methods stall on flat steps; a population search does not.
``polish`` is off (it is a gradient method) and ``updating="deferred"`` so that a
whole generation can be simulated in parallel with the same result as serially.

Every candidate is simulated with the same seeds (common random numbers), so the
loss is a deterministic function of the parameters and the start point, which is
always in the first generation, bounds the result: the fit is never worse than the
scenario it started from.

Loss: the weighted mean over targets of the squared relative error
``((simulated - published) / published)^2`` (the squared error itself for a
published value of 0), where ``simulated`` is the mean over the seeds.

Budget: the population is ``popsize x parameters`` members (at least 5) and each
generation simulates every member once, so ``budget // population - 1``
generations fit the budget; fewer run when the population converges (``tol``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from platform_stub.exceptions import ScenarioError
from scenarios.evaluate import MeasureError, dotted_get, process_pool, simulate
from scenarios.loader import load_scenario
from scenarios.schema import Scenario
from scenarios.targets import Target, TargetsFile

BUDGET_MIN, BUDGET_MAX = 10, 10_000
POPSIZE_MAX = 15  # scipy's default members per parameter
FAILED_LOSS = 1e6  # a candidate whose run lacks a target's figure (e.g. no visits)


@dataclass(frozen=True)
class Param:
    """One fitted parameter: a dotted scenario key, its bounds and start value."""

    key: str
    lo: float
    hi: float
    start: float
    integer: bool = False

    def value(self, x: float) -> float | int:
        return round(x) if self.integer else float(x)


@dataclass(frozen=True)
class Evaluation:
    x: tuple[float, ...]
    loss: float
    simulated: tuple[float | None, ...]  # per target, mean over seeds


@dataclass(frozen=True)
class Problem:
    """What to fit: picklable, so worker processes can evaluate candidates."""

    scenario: str
    sets: dict[str, Any]
    params: tuple[Param, ...]
    targets: tuple[Target, ...]
    seeds: tuple[int, ...]
    targets_file: str = "(targets file)"

    def overrides(self, x: Sequence[float]) -> dict[str, Any]:
        return self.sets | {p.key: p.value(v) for p, v in zip(self.params, x, strict=True)}

    def evaluate(self, x: Sequence[float]) -> Evaluation:
        scenario = load_scenario(self.scenario, self.overrides(x))
        runs = [simulate(scenario, seed) for seed in self.seeds]
        simulated = []
        for target in self.targets:
            try:
                values = [target.measure.read(r.daily, r.summary) for r in runs]
            except MeasureError:
                values = []
            simulated.append(float(np.mean(values)) if values else None)
        return Evaluation(
            tuple(float(v) for v in x), loss_of(self.targets, simulated), tuple(simulated)
        )


def loss_of(targets: Sequence[Target], simulated: Sequence[float | None]) -> float:
    """Weighted mean squared relative error; ``FAILED_LOSS`` when a figure is missing."""
    if any(s is None for s in simulated):
        return FAILED_LOSS
    terms = [
        t.weight * relative_error(t.published, s) ** 2
        for t, s in zip(targets, simulated, strict=True)
    ]  # type: ignore[arg-type]
    return math.fsum(terms) / math.fsum(t.weight for t in targets)


def relative_error(published: float, simulated: float) -> float:
    """(simulated - published) / |published|; the plain error for a published 0."""
    error = simulated - published
    return error / abs(published) if published else error


def resolve_params(
    targets: TargetsFile, chosen: Sequence[str], scenario: Scenario, file: str
) -> tuple[Param, ...]:
    """The parameters to fit: ``KEY`` (bounds from the targets file) or ``KEY=lo,hi``."""
    bounds = dict(targets.params)
    names = []
    for text in chosen:
        key, sep, raw = text.partition("=")
        if sep:
            bounds[key] = _parse_bounds(raw, text)
        names.append(key)
    names = names or list(bounds)
    if not names:
        raise ScenarioError(file, "params", "a [params] table or --params KEY=lo,hi")
    return tuple(_param(key, bounds, scenario, file) for key in names)


def _parse_bounds(raw: str, text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in raw.split(","))
    except ValueError:
        raise ScenarioError("(command line)", "--params", "KEY or KEY=lo,hi", text) from None
    if not lo < hi:
        raise ScenarioError("(command line)", "--params", "lo < hi", text)
    return lo, hi


def _param(
    key: str, bounds: dict[str, tuple[float, float]], scenario: Scenario, file: str
) -> Param:
    if key not in bounds:
        raise ScenarioError(file, f"params.{key}", "bounds [lo, hi] here or --params KEY=lo,hi")
    try:
        current = dotted_get(scenario.model_dump(), key)
    except KeyError:
        raise ScenarioError(file, f"params.{key}", "a numeric key of the scenario") from None
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise ScenarioError(file, f"params.{key}", "a numeric key of the scenario", current)
    lo, hi = bounds[key]
    return Param(key, lo, hi, min(max(float(current), lo), hi), isinstance(current, int))


def plan_budget(budget: int, n_params: int) -> tuple[int, int]:
    """(popsize per parameter, generations after the first) within ``budget`` runs."""
    if not BUDGET_MIN <= budget <= BUDGET_MAX:
        raise ScenarioError("(command line)", "--budget", f"{BUDGET_MIN} to {BUDGET_MAX}", budget)
    popsize = max(1, min(POPSIZE_MAX, budget // (4 * n_params)))
    members = max(5, popsize * n_params)
    return popsize, budget // members - 1


@dataclass
class Fit:
    """The result: every evaluation in order, the start and the best."""

    problem: Problem
    history: list[Evaluation] = field(default_factory=list)
    popsize: int = 0
    generations: int = 0

    @property
    def start(self) -> Evaluation:
        return self.history[0]

    @property
    def best(self) -> Evaluation:
        return min(self.history, key=lambda e: e.loss)  # min keeps the first of equals


class _Mapper:
    """The map differential_evolution calls per generation: it simulates each candidate
    (in ``pool`` when given), records it, and reports progress."""

    def __init__(self, fit: Fit, pool: Any, on_eval: Callable[[Evaluation], None] | None) -> None:
        self.fit, self.pool, self.on_eval = fit, pool, on_eval
        self.seen: dict[tuple[float, ...], Evaluation] = {}

    def __call__(self, _func: Any, population: Iterable[Sequence[float]]) -> list[float]:
        xs = [tuple(float(v) for v in x) for x in population]
        todo = [x for x in dict.fromkeys(xs) if x not in self.seen]
        evaluate = self.fit.problem.evaluate
        results = self.pool.map(evaluate, todo) if self.pool else map(evaluate, todo)
        for evaluation in results:
            self.record(evaluation)
        return [self.seen[x].loss for x in xs]

    def record(self, evaluation: Evaluation) -> None:
        self.seen[evaluation.x] = evaluation
        self.fit.history.append(evaluation)
        if self.on_eval:
            self.on_eval(evaluation)


def calibrate(
    problem: Problem,
    budget: int,
    seed: int = 0,
    jobs: int = 1,
    on_eval: Callable[[Evaluation], None] | None = None,
) -> Fit:
    """Differential evolution from the scenario's own values; at most ``budget`` runs per seed."""
    from scipy.optimize import differential_evolution

    popsize, generations = plan_budget(budget, len(problem.params))
    fit = Fit(problem, popsize=popsize, generations=generations)
    x0 = [p.start for p in problem.params]
    pool = process_pool(jobs)
    try:
        mapper = _Mapper(fit, pool, on_eval)
        mapper.record(_checked_start(problem, x0))
        if generations >= 1:
            differential_evolution(
                _unused_loss,
                [(p.lo, p.hi) for p in problem.params],
                maxiter=generations,
                popsize=popsize,
                rng=seed,
                polish=False,
                updating="deferred",
                workers=mapper,
                x0=x0,
                integrality=[p.integer for p in problem.params],
                init="latinhypercube",
            )
    finally:
        if pool is not None:
            pool.shutdown()
    return fit


def _unused_loss(x: np.ndarray) -> float:
    raise AssertionError("differential_evolution evaluates through the mapper only")


def _checked_start(problem: Problem, x0: list[float]) -> Evaluation:
    """The start point, evaluated first: a target no run can show is an input error."""
    start = problem.evaluate(x0)
    for i, (target, value) in enumerate(zip(problem.targets, start.simulated, strict=True)):
        if value is None:
            scenario = load_scenario(problem.scenario, problem.overrides(x0))
            run = simulate(scenario, problem.seeds[0])
            try:
                target.measure.read(run.daily, run.summary)
            except MeasureError as exc:
                raise ScenarioError(
                    problem.targets_file, f"targets.{i}", f"a figure the run has; {exc}"
                ) from None
    return start


def fitted_scenario(fit: Fit) -> Scenario:
    """The scenario with the best parameters, renamed ``<name>_calibrated``."""
    problem = fit.problem
    scenario = load_scenario(problem.scenario, problem.overrides(fit.best.x))
    note = f" Calibrated to {Path(problem.targets_file).name} by `cashless calibrate`."
    return scenario.model_copy(
        update={"name": f"{scenario.name}_calibrated", "description": scenario.description + note}
    )


def target_rows(
    targets: Sequence[Target],
    simulated: Sequence[float | None],
    start: Sequence[float | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per target: published, source, where it is read, simulated and errors."""
    rows = []
    for i, target in enumerate(targets):
        sim = simulated[i]
        row = {
            "target": target.name,
            "published": target.published,
            "source": target.source,
            "measure": target.measure.describe() + (" x scale factor" if target.scaled else ""),
            "simulated": sim,
            "error": None if sim is None else sim - target.published,
            "relative_error": None if sim is None else relative_error(target.published, sim),
        }
        if start is not None:
            first = start[i]
            row["simulated_start"] = first
            row["relative_error_start"] = (
                None if first is None else relative_error(target.published, first)
            )
        rows.append(row)
    return rows


def measure_run(targets: Sequence[Target], daily: Any, summary: dict[str, Any]) -> list[dict]:
    """Target rows for one finished run; a figure the run lacks has simulated ``None``."""
    simulated: list[float | None] = []
    for target in targets:
        try:
            simulated.append(target.measure.read(daily, summary))
        except MeasureError:
            simulated.append(None)
    return target_rows(targets, simulated)


def fit_record(fit: Fit, seed: int, budget: int) -> dict[str, Any]:
    """calibration.json: the optimiser, the parameters and each target, start and fitted."""
    problem, best, start = fit.problem, fit.best, fit.start
    params = [
        {"key": p.key, "lo": p.lo, "hi": p.hi, "start": p.value(s), "fitted": p.value(b)}
        for p, s, b in zip(problem.params, start.x, best.x, strict=True)
    ]
    return {
        "kind": "calibration",
        "scenario": problem.scenario,
        "targets_file": problem.targets_file,
        "optimiser": {
            "method": "scipy.optimize.differential_evolution",
            "rng_seed": seed,
            "budget": budget,
            "popsize_per_param": fit.popsize,
            "generations_max": fit.generations,
            "evaluations": len(fit.history),
            "loss": "weighted mean squared relative error",
        },
        "seeds": list(problem.seeds),
        "loss": {"start": start.loss, "fitted": best.loss},
        "params": params,
        "targets": target_rows(problem.targets, best.simulated, start.simulated),
    }
