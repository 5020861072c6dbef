"""Scenario files, their schema and loader, the runner and the `cashless` CLI."""

from scenarios.loader import load_scenario
from scenarios.schema import Scenario

__all__ = ["Scenario", "load_scenario"]
