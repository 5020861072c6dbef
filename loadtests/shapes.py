"""Load shapes: how many users, over the run, for the ramp, spike, soak and city-day tests.

Each shape scales to the run's ``--users`` (the peak) and ``--run-time`` (so
``use_common_options``): settings are class attributes, shares of those two. A
shape ticks about once a second and ends the run at ``--run-time``. A locustfile
imports the one shape it runs (Locust takes the shape class it finds there).

``CityDayShape`` reads a simulation's trace (``--trace RUN_DIR``; ``--trace-day N``,
default the busiest day): users follow the number of platform calls per slice of
that day, its 24 hours compressed into the run time, the busiest slice at ``--users``.
"""

from locust import LoadTestShape  # first: locust patches the stdlib

# isort: split
import math
from abc import abstractmethod
from typing import Any

from locust.argument_parser import LocustArgumentParser

from loadtests._hooks import hook_once
from loadtests.locustfile_transit import BusReader

DEFAULT_USERS = 10
DEFAULT_RUN_TIME_S = 60
TRACE_OPTION = "--trace"
TRACE_DAY_OPTION = "--trace-day"


def install_trace_options() -> None:
    """``--trace`` and ``--trace-day`` for the city-day shape, added once per process."""
    hook_once(__name__, init_command_line_parser=_add_trace_options)


def _add_trace_options(parser: LocustArgumentParser, **_kwargs: Any) -> None:
    parser.add_argument(TRACE_OPTION, default="", include_in_web_ui=False,
                        help="A run folder (or its trace.parquet) for the city-day shape.")
    parser.add_argument(TRACE_DAY_OPTION, type=int, default=-1, include_in_web_ui=False,
                        help="The simulated day to follow; default the busiest.")


class ScaledShape(LoadTestShape):
    """A shape scaled to ``--users`` and ``--run-time``; subclasses give ``users_at``."""

    abstract = True
    use_common_options = True

    def tick(self) -> tuple[int, float] | tuple[int, float, list] | None:
        elapsed_s = self.get_run_time()
        if elapsed_s >= self.run_time_s():
            return None
        return max(1, self.users_at(elapsed_s / self.run_time_s())), self.spawn_rate()

    @abstractmethod
    def users_at(self, share: float) -> int:
        """Users at ``share`` (0 to 1) of the run; each shape says."""

    def peak_users(self) -> int:
        return self._option("num_users") or DEFAULT_USERS

    def run_time_s(self) -> float:
        return self._option("run_time") or DEFAULT_RUN_TIME_S

    def spawn_rate(self) -> float:
        return self._option("spawn_rate") or float(self.peak_users())

    def _option(self, name: str) -> Any:
        options = self.runner.environment.parsed_options if self.runner else None
        return getattr(options, name, None)


class RampShape(ScaledShape):
    """Users climb in equal steps to the peak over ``ramp_share`` of the run, then hold:
    where does latency bend as load grows?"""

    ramp_share = 0.7
    steps = 7

    def users_at(self, share: float) -> int:
        step = min(self.steps, math.floor(share / self.ramp_share * self.steps) + 1)
        return math.ceil(self.peak_users() * step / self.steps)


class SpikeShape(ScaledShape):
    """A Friday free-ride morning: a quarter of the peak, then the doors are rushed (the
    extra users are bus readers, spawned at once) from ``start_share`` to ``end_share``
    of the run, then back to the quarter: does the platform recover, and lose no tap?"""

    base_share = 0.25
    start_share = 0.3
    end_share = 0.6
    surge_classes = (BusReader,)

    def tick(self) -> tuple[int, float] | tuple[int, float, list] | None:
        ticked = super().tick()
        if ticked is None:
            return None
        share = self.get_run_time() / self.run_time_s()
        if self.start_share <= share < self.end_share:
            return self.peak_users(), float(self.peak_users()), list(self.surge_classes)
        return ticked

    def users_at(self, share: float) -> int:
        return math.ceil(self.peak_users() * self.base_share)


class SoakShape(ScaledShape):
    """The peak for the whole run, long (``--duration 30m`` and up): leaks, growing
    tables and slow drifts show up only over time."""

    def users_at(self, share: float) -> int:
        return self.peak_users()


class CityDayShape(ScaledShape):
    """Users follow a simulated city's day from its trace (see the module docstring)."""

    floor_users = 6  # every role stays present through the quiet night
    _profile: list[float] | None = None

    def users_at(self, share: float) -> int:
        profile = self.profile()
        level = profile[min(len(profile) - 1, int(share * len(profile)))]
        floor = min(self.floor_users, self.peak_users())
        return max(floor, math.ceil(self.peak_users() * level))

    def profile(self) -> list[float]:
        """Calls per slice of the day, one slice per second of run time, read once."""
        if self._profile is None:
            trace = self._option("trace")
            if not trace:
                raise ValueError("the cityday shape needs --trace RUN_DIR")
            from loadtests.trace import day_profile  # polars: only the city day needs it

            day = self._option("trace_day")
            bins = max(1, int(self.run_time_s()))
            self._profile = day_profile(trace, None if day is None or day < 0 else day, bins)
        return self._profile


install_trace_options()
