"""Calibration targets files: published figures, where a run shows each, and bounds.

A targets file is TOML::

    # Each [[targets]] entry is one published figure.
    [[targets]]
    name = "e-bus card holders"           # unique; labels tables and figures
    published = 2_170_000                  # the published value
    source = "Wuhan, 14 Oct 2017 (DOMAIN.md)"
    column = "card_holders"                # a daily.parquet column ...
    # summary = "adoption.overall"         # ... or a dotted summary.json key (not both)
    date = 2017-10-14                      # the value on that date, or
    # window = [2017-10-01, 2017-10-31]    # a window (both ends included)
    stat = "value"                         # value (on date) | last | mean | sum | max | min
    scaled = true                          # x city.scale_factor (real_population / residents)
    weight = 1.0                           # its weight in the fit (default 1)

    # Parameters `cashless calibrate` may move, each with its bounds [lo, hi].
    [params]
    "adoption.innovation.youth" = [0.001, 0.02]

``stat`` defaults to ``value`` with a ``date``, ``mean`` with a ``window`` and
``last`` with neither; a summary key takes no date, window or stat.

The library's targets files live in ``scenarios/targets/``, one per scenario they
calibrate, and a bare name (``wuhan_2017``) finds one there, as a scenario name does.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from platform_stub.exceptions import ScenarioError
from scenarios.evaluate import Measure
from scenarios.loader import LIBRARY_DIR

TARGETS_DIR = LIBRARY_DIR / "targets"
TARGETS_MAX = 50
PARAMS_MAX = 12


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    published: float
    source: str = Field(min_length=1, description="Where the figure was published.")
    column: str | None = None
    summary: str | None = None
    date: dt.date | None = None
    window: tuple[dt.date, dt.date] | None = None
    stat: Literal["value", "last", "mean", "sum", "max", "min"] | None = None
    scaled: bool = False
    weight: float = Field(default=1.0, gt=0, le=1_000)

    @model_validator(mode="after")
    def _one_place(self) -> Target:
        if (self.column is None) == (self.summary is None):
            raise ValueError("exactly one of 'column' (daily.parquet) and 'summary' (a key)")
        if self.summary and (self.date or self.window or self.stat):
            raise ValueError("a summary key takes no date, window or stat")
        if self.date and self.window:
            raise ValueError("either 'date' or 'window', not both")
        if self.window and self.window[0] > self.window[1]:
            raise ValueError("a window [first, last] with first <= last")
        if self.stat == "value" and self.date is None:
            raise ValueError("stat 'value' needs a 'date'")
        if self.date and self.stat not in (None, "value"):
            raise ValueError("a 'date' takes stat 'value'; use a 'window' for mean/sum/max/min")
        return self

    @property
    def measure(self) -> Measure:
        stat = self.stat or ("value" if self.date else "mean" if self.window else "last")
        return Measure(self.column, self.summary, stat, self.date, self.window, self.scaled)


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: list[Target] = Field(min_length=1, max_length=TARGETS_MAX)
    params: dict[str, tuple[float, float]] = Field(default_factory=dict, max_length=PARAMS_MAX)

    @field_validator("params")
    @classmethod
    def _ordered(cls, params: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for key, (lo, hi) in params.items():
            if not lo < hi:
                raise ValueError(f"bounds [lo, hi] with lo < hi for '{key}'")
        return params

    @model_validator(mode="after")
    def _unique(self) -> TargetsFile:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("target names must be unique")
        return self


def resolve_targets_path(name_or_path: str | Path) -> Path:
    """A path as given, or a library targets file by name (``wuhan_2017``).

    A missing path is returned as given, so that reading it names the file the user typed.
    """
    path = Path(name_or_path)
    library = TARGETS_DIR / f"{path.stem}.toml"
    if path.exists() or path.suffix not in ("", ".toml") or path.parent != Path("."):
        return path
    return library if library.exists() else path


def load_targets(path: str | Path) -> TargetsFile:
    """Read and validate a targets file (a path or a library name); errors name the
    file, the key and the expectation."""
    path = resolve_targets_path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(str(path), "(file)", f"a readable file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), "(syntax)", f"valid TOML: {exc}") from None
    try:
        return TargetsFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ScenarioError(str(path), key, _expected(first), _shown(first)) from None


def _expected(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "no such key (a typo?); see scenarios/targets.py for the format"
    if error["type"] == "missing":
        return "this key to be present"
    return str(error["msg"]).removeprefix("Value error, ")


def _shown(error: dict[str, Any]) -> Any:
    value = error.get("input")
    return None if isinstance(value, dict) else value


def check_dates(targets: TargetsFile, first: dt.date, last: dt.date, file: str) -> None:
    """Every date and window must fall within the simulated days."""
    for i, target in enumerate(targets.targets):
        days = [d for d in (target.date, *(target.window or ())) if d is not None]
        for day in days:
            if not first <= day <= last:
                key = f"targets.{i}.{'date' if target.date else 'window'}"
                raise ScenarioError(file, key, f"a date within the run, {first}..{last}", day)
