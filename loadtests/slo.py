"""Service levels: what a load test must achieve, per endpoint, in a TOML file.

In the spirit of k6's thresholds (``http_req_duration{name:...}: p(99)<200``), one
table per endpoint, named as Locust names requests ("METHOD /path")::

    [default]                       # every endpoint that has no table of its own
    p99_ms = 1000
    failure_ratio_max = 0.01

    [endpoints."POST /v1/payments"] # overrides [default] key by key
    p50_ms = 50
    p99_ms = 200
    rps_min = 5

    [total]                         # all requests together
    rps_min = 20

Keys: ``p50_ms``, ``p90_ms``, ``p95_ms``, ``p99_ms``, ``p999_ms`` and ``max_ms``
(upper bounds, from our HDR histograms, not Locust's bucketed figures),
``failure_ratio_max`` (failures / requests, 0 to 1) and ``rps_min`` (requests per
second over the run's window). A level breaks when its figure is above the bound
(below, for ``rps_min``). An endpoint that saw no request breaks only an explicit
``rps_min``: percentiles of nothing are not measured, and a shared file may name
endpoints a scenario never calls.

A file that cannot be used raises :class:`ScenarioError` (code ``scenario_invalid``)
naming the file, the key and what was expected.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.hdr import EndpointFigures
from platform_stub.exceptions import ScenarioError

DEFAULT_SLO = Path(__file__).parent / "slo_default.toml"
LATENCY_KEYS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms")
LEVEL_KEYS = (*LATENCY_KEYS, "failure_ratio_max", "rps_min")
SECTIONS = ("default", "endpoints", "total")
ENDPOINT_NAME = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /\S*$")


@dataclass(frozen=True)
class Breach:
    """One level a run failed: which, the bound and what was measured."""

    endpoint: str
    level: str
    bound: float
    measured: float

    def __str__(self) -> str:
        relation = "<" if self.level == "rps_min" else ">"
        return (
            f"{self.endpoint}: {self.level} {_show(self.measured)} {relation} {_show(self.bound)}"
        )


@dataclass(frozen=True)
class ServiceLevels:
    """A validated service-level file."""

    source: str
    default: Mapping[str, float]
    endpoints: Mapping[str, Mapping[str, float]]
    total: Mapping[str, float]

    def levels_for(self, endpoint: str) -> dict[str, float]:
        return {**self.default, **self.endpoints.get(endpoint, {})}

    def check(
        self, figures: Mapping[str, EndpointFigures], total: EndpointFigures | None
    ) -> list[Breach]:
        """Every breached level; an empty list is a pass."""
        breaches = []
        for endpoint in sorted(set(figures) | set(self.endpoints)):
            measured = figures.get(endpoint)
            breaches += _breaches(endpoint, self.levels_for(endpoint), measured)
        if self.total:
            breaches += _breaches("total", dict(self.total), total)
        return breaches


def load_service_levels(path: Path | str) -> ServiceLevels:
    """Read and validate a service-level file; ScenarioError names what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ScenarioError(str(path), "(file)", "a readable TOML file", exc.strerror) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), "(file)", "valid TOML", str(exc)) from None
    return parse_service_levels(data, str(path))


def parse_service_levels(data: Mapping[str, Any], source: str) -> ServiceLevels:
    for key in data:
        if key not in SECTIONS:
            raise ScenarioError(source, key, f"one of the tables {', '.join(SECTIONS)}")
    endpoints = _table(data, "endpoints", source)
    for name in endpoints:
        if not ENDPOINT_NAME.match(name):
            raise ScenarioError(source, f"endpoints.{name}", 'a name such as "POST /v1/payments"')
    return ServiceLevels(
        source=source,
        default=_levels(_table(data, "default", source), "default", source),
        endpoints={
            name: _levels(_table(endpoints, name, source, f"endpoints.{name}"),
                          f'endpoints."{name}"', source)
            for name in endpoints
        },
        total=_levels(_table(data, "total", source), "total", source),
    )


def _table(data: Mapping[str, Any], key: str, source: str, shown: str = "") -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ScenarioError(source, shown or key, "a table", value)
    return value


def _levels(table: Mapping[str, Any], where: str, source: str) -> dict[str, float]:
    levels = {}
    for key, value in table.items():
        if key not in LEVEL_KEYS:
            raise ScenarioError(source, f"{where}.{key}", f"one of {', '.join(LEVEL_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(source, f"{where}.{key}", "a number", value)
        if not (math.isfinite(value) and value >= 0):
            raise ScenarioError(source, f"{where}.{key}", "a finite number >= 0", value)
        if key == "failure_ratio_max" and value > 1:
            raise ScenarioError(source, f"{where}.{key}", "a ratio from 0 to 1", value)
        levels[key] = float(value)
    return levels


def _breaches(
    endpoint: str, levels: Mapping[str, float], measured: EndpointFigures | None
) -> list[Breach]:
    if measured is None or measured.count == 0:
        rps_min = levels.get("rps_min", 0.0)
        return [Breach(endpoint, "rps_min", rps_min, 0.0)] if rps_min > 0 else []
    found = []
    for level, bound in levels.items():
        value = _figure(level, measured)
        broken = value < bound if level == "rps_min" else value > bound
        if broken:
            found.append(Breach(endpoint, level, bound, value))
    return found


def _figure(level: str, measured: EndpointFigures) -> float:
    if level == "rps_min":
        return measured.requests_per_s
    if level == "failure_ratio_max":
        return measured.failure_ratio
    return measured.latency[level]


def _show(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
