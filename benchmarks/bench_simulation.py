"""Simulation speed and memory: the adoption-only city, a million residents, the full system.

    python benchmarks/bench_simulation.py [--quick | --full [--full-days 30]]
                                          [--parts ratio million full]

Each case runs in a fresh process (``--case``), so its peak RSS (``ru_maxrss``) is its
own; each figure has a bare Mesa loop beside it, measured in the same run: a
``mesa.Model`` with N ``mesa.Agent`` that each draw one number from ``model.rng`` per
step (``model.agents.shuffle_do("step")``). Results follow ``_protocol.py``.

1. ``adoption_resident_days_per_s``: the adoption-only day (everything in a day that
   makes no platform call: ``learning.teach``, ``Adoption.set_up``, ``Adoption.spread``
   and ``Adoption.start``, in ``AdoptionCity`` below) in resident-days per second, steps
   only, over the bare loop's. Target ratio >= 0.5. 100,000 x 30 (``--quick`` 20,000 x 30).
2. ``adoption_wall_s`` / ``adoption_peak_rss_gib``: 1,000,000 residents x 365 days
   adoption-only, population build included. Targets: under 600 s and under 8 GiB.
   ``--quick`` runs 100,000 x 60 days against the targets scaled linearly (time by
   resident-days, memory by residents); nothing is extrapolated. The bare loop beside
   it runs the same agents for at most 3 days (a million Agent objects take seconds a
   step), so its ratio compares unequal work: read it as context, not a target.
3. ``full_wall_s`` / ``full_peak_rss_gib``: ``scenarios.runner.run_scenario``
   in-process on SQLite (population, platform, run folder and report included; days
   per minute over the simulation alone as ``days_per_min``). ``--full`` runs 100,000
   x 30 days (the issue's "completes" case); ``--full --full-days 120`` the 100,000 x
   120 case that must finish in 30 minutes. The time target is that budget per day
   (15 s a day) times the days run, at any size: not scaled down by residents for the
   default (20,000 x 14) and ``--quick`` (5,000 x 7) cases, whose time is mostly fixed
   costs (population, platform set-up, report), so a smaller city must merely keep
   within the big city's daily budget. Memory: the 8 GiB budget (the issue sets none).
   Merchants stay at the scenario's 150.

All cases use ``scenarios/baseline.toml`` with ``city.residents`` and ``city.days``
overridden. ``cpu_s`` is kept beside wall times: the 2-core machine is shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mesa
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the repo and this folder importable
    sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from _protocol import main, met, result  # noqa: E402

from agents.adoption import Adoption  # noqa: E402
from agents.learning import teach  # noqa: E402
from agents.population import build_population  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402
from scenarios.schema import Scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "baseline.toml"
GIB = 1024**3
# Issue targets at full size.
RATIO_MIN = 0.5
MILLION, MILLION_DAYS, MILLION_WALL_S, MILLION_RSS_GIB = 1_000_000, 365, 600.0, 8.0
PARTS = ("ratio", "million", "full")
BARE_DAYS_MAX = 3  # days of the bare loop beside the million case
FULL_RESIDENTS, FULL_TARGET_DAYS, FULL_TARGET_MIN = 100_000, 120, 30.0


def scenario(residents: int, days: int) -> Scenario:
    return load_scenario(SCENARIO, {"city.residents": residents, "city.days": days})


# -- the models ---------------------------------------------------------------------


class AdoptionCity(mesa.Model):
    """The city's day without the platform: residents learn the app (classes,
    volunteers, family), then adopt by the network rule; every new user starts at once
    (in ``CityModel`` a new user of this platform starts only once onboarding succeeds).
    No promotion days. Vectorised over residents: no Agent objects."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        super().__init__(seed=scenario.seed if seed is None else seed)
        self.scenario = scenario
        self.day = 0
        self.people = build_population(scenario, self.rng)
        self.adoption = Adoption(scenario, self.people, self.rng)
        self.users_by_day: list[int] = []
        self._start(self.adoption.initial())

    def _start(self, new: Any) -> None:
        self.adoption.start(new.ours)
        self.adoption.start(new.rival)

    def step(self) -> None:
        date = self.scenario.city.start_date + dt.timedelta(days=self.day)
        lessons = teach(
            self.scenario,
            self.people,
            self.adoption.active,
            date.strftime("%a"),
            self.day,
            self.rng,
        )
        self._start(self.adoption.set_up(lessons.set_up))
        self._start(self.adoption.spread(campaign_day=False))
        self.users_by_day.append(int(np.count_nonzero(self.adoption.active)))
        self.day += 1
        self.running = self.day < self.scenario.city.days


class DrawAgent(mesa.Agent):
    def step(self) -> None:
        self.draw = self.model.rng.random()


class BareModel(mesa.Model):
    """N agents, each drawing one random number per step, in random order."""

    def __init__(self, n: int, seed: int = 1) -> None:
        super().__init__(seed=seed)
        DrawAgent.create_agents(self, n)

    def step(self) -> None:
        self.agents.shuffle_do("step")


# -- cases, each measured in a fresh process ------------------------------------------


def case_adoption(residents: int, days: int) -> dict[str, Any]:
    start = time.perf_counter()
    model = AdoptionCity(scenario(residents, days))
    built, cpu = time.perf_counter(), time.process_time()
    while model.running:
        model.step()
    end = time.perf_counter()
    return {
        "build_s": built - start,
        "step_s": end - built,
        "step_cpu_s": time.process_time() - cpu,
        "wall_s": end - start,
        "users_last_day": model.users_by_day[-1],
    }


def case_bare(residents: int, days: int) -> dict[str, Any]:
    start = time.perf_counter()
    model = BareModel(residents)
    built, cpu = time.perf_counter(), time.process_time()
    for _ in range(days):
        model.step()
    end = time.perf_counter()
    return {
        "build_s": built - start,
        "step_s": end - built,
        "step_cpu_s": time.process_time() - cpu,
        "wall_s": end - start,
    }


def case_full(residents: int, days: int) -> dict[str, Any]:
    from rich.console import Console

    from platform_stub.transit.verify import declare_main_import_safe
    from scenarios.runner import run_scenario

    # As `cashless run` does: this script keeps its work under ``__main__``, so clearing
    # may verify big uploads on worker processes.
    declare_main_import_safe()
    with tempfile.TemporaryDirectory(prefix="bench_sim_") as folder:
        start = time.perf_counter()
        result = run_scenario(
            scenario(residents, days), Path(folder), console=Console(stderr=True, quiet=True)
        )
        wall = time.perf_counter() - start
    timings = result.summary["timings"]
    return {
        "wall_s": wall,
        "sim_s": timings["wall_s"],  # to the last day, before outputs
        "day_cpu_s": timings["day_cpu_s"],  # later days carry more payments and taps
    }


CASES = {"adoption": case_adoption, "bare": case_bare, "full": case_full}


def measure(case: str, residents: int, days: int) -> dict[str, Any]:
    """Run one case in a fresh interpreter; its own wall times and peak RSS."""
    proc = subprocess.run(
        [sys.executable, __file__, "--case", case, str(residents), str(days)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} {residents}x{days} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(case: str, residents: int, days: int) -> None:
    out = CASES[case](residents, days)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_bytes"] = usage.ru_maxrss * 1024  # KiB on Linux
    out["cpu_s"] = usage.ru_utime + usage.ru_stime  # wall drifts on a shared machine
    print(json.dumps(out))


# -- results --------------------------------------------------------------------------


def _checked(res: dict[str, Any]) -> dict[str, Any]:
    return res | {"met": met(res)}


def adoption_ratio(residents: int, days: int) -> list[dict[str, Any]]:
    city = measure("adoption", residents, days)
    bare = measure("bare", residents, days)
    return [
        _checked(
            result(
                "adoption_resident_days_per_s",
                residents * days / city["step_s"],
                "resident-days/s (AdoptionCity: learning + adoption, no platform calls)",
                residents * days / bare["step_s"],
                "bare_mesa_loop_resident_days_per_s (one model.rng draw per agent-step)",
                target=RATIO_MIN,
                residents=residents,
                days=days,
                city_step_s=round(city["step_s"], 3),
                bare_step_s=round(bare["step_s"], 3),
                cpu_ratio=round(bare["step_cpu_s"] / city["step_cpu_s"], 3),
            )
        )
    ]


def adoption_million(residents: int, days: int) -> list[dict[str, Any]]:
    """Wall time and peak RSS; targets scaled linearly when this is not 1M x 365."""
    city = measure("adoption", residents, days)
    bare_days = min(days, BARE_DAYS_MAX)  # a million Agent objects step ~1 M/s at best
    bare = measure("bare", residents, bare_days)
    scale_time = residents * days / (MILLION * MILLION_DAYS)
    scaled = "" if scale_time == 1 else ", target scaled linearly from 1M x 365"
    common = {
        "residents": residents,
        "days": days,
        "build_s": round(city["build_s"], 3),
        "cpu_s": round(city["cpu_s"], 1),
        "resident_days_per_s": round(residents * days / city["step_s"]),
        "bare_days": bare_days,
        "bare_resident_days_per_s": round(residents * bare_days / bare["step_s"]),
        "scope": f"{residents:,} residents x {days} days adoption-only{scaled}",
    }
    bare_size = f"{residents:,}_agents_x_{bare_days}_days"
    return [
        _checked(
            result(
                "adoption_wall_s",
                city["wall_s"],
                "s (population build included)",
                bare["wall_s"],
                f"bare_mesa_loop_wall_s_{bare_size} (agent creation included)",
                target=round(MILLION_WALL_S * scale_time, 1),
                target_of="figure",
                target_is="max",
                **common,
            )
        ),
        _checked(
            result(
                "adoption_peak_rss_gib",
                city["peak_rss_bytes"] / GIB,
                "GiB (ru_maxrss of the process running the case)",
                bare["peak_rss_bytes"] / GIB,
                f"bare_mesa_loop_peak_rss_gib_{bare_size}",
                target=round(MILLION_RSS_GIB * residents / MILLION, 3),
                target_of="figure",
                target_is="max",
                **common,
            )
        ),
    ]


def full_system(residents: int, days: int) -> list[dict[str, Any]]:
    """Wall time against 30 min per 120 days, scaled by days (not by residents); peak
    RSS against the 8 GiB budget (the issue sets none here)."""
    full = measure("full", residents, days)
    bare = measure("bare", residents, days)
    scale = days / FULL_TARGET_DAYS  # not by residents: fixed costs dominate small cities
    scaled = "" if scale == 1 else ", target 30 min per 120 days scaled by days"
    common = {
        "residents": residents,
        "days": days,
        "sim_s": round(full["sim_s"], 1),
        "cpu_s": round(full["cpu_s"], 1),
        "days_per_min": round(days / full["sim_s"] * 60, 3),
        "last_week_cpu_s_per_day": round(float(np.mean(full["day_cpu_s"][-7:])), 2),
        "bare_days_per_min": round(days / bare["step_s"] * 60, 1),
        "scope": f"run_scenario in-process on SQLite, {residents:,} residents x {days} days"
        f"{scaled}",
    }
    size = f"{residents:,}_agents_x_{days}_days"
    return [
        _checked(
            result(
                "full_wall_s",
                full["wall_s"],
                "s (population, platform, run folder and report included)",
                bare["wall_s"],
                f"bare_mesa_loop_wall_s_{size} (agent creation included)",
                target=round(FULL_TARGET_MIN * 60 * scale, 1),
                target_of="figure",
                target_is="max",
                **common,
            )
        ),
        _checked(
            result(
                "full_peak_rss_gib",
                full["peak_rss_bytes"] / GIB,
                "GiB (ru_maxrss of the process running the case)",
                bare["peak_rss_bytes"] / GIB,
                f"bare_mesa_loop_peak_rss_gib_{size}",
                target=MILLION_RSS_GIB,
                target_of="figure",
                target_is="max",
                **common,
            )
        ),
    ]


def run(
    quick: bool = False,
    full: bool = False,
    full_days: int = 30,
    parts: list[str] | None = None,
) -> list[dict[str, Any]]:
    """``quick``: small sizes; ``full``: the full system at 100,000 residents."""
    parts = parts or list(PARTS)
    results: list[dict[str, Any]] = []
    if "ratio" in parts:
        results += adoption_ratio(*((20_000, 30) if quick else (100_000, 30)))
    if "million" in parts:
        results += adoption_million(*((100_000, 60) if quick else (MILLION, MILLION_DAYS)))
    if "full" in parts:
        if quick:
            size = (5_000, 7)
        elif full:
            size = (FULL_RESIDENTS, full_days)
        else:
            size = (20_000, 14)
        results += full_system(*size)
    return results


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--full", action="store_true", help="full system at 100,000 residents (long)"
    )
    parser.add_argument("--full-days", type=int, default=30, help="days for --full")
    parser.add_argument("--parts", nargs="+", choices=PARTS, help="run only these parts")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--case":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main(run, __doc__, _arguments)
