"""A simulated city's day (--trace RUN_DIR) compressed into --run-time.

The users of :mod:`loadtests.locustfile_city` (every role and the settlement
operator) under :class:`loadtests.shapes.CityDayShape`; see that class for the stages.
"""

import locust  # noqa: F401 - first: locust patches the stdlib for gevent

# isort: split
from loadtests.locustfile_city import BillPayer, BusReader, Merchant, Operator, Patient, Shopper
from loadtests.shapes import CityDayShape

__all__ = ["BillPayer", "BusReader", "Merchant", "Operator", "Patient", "Shopper", "CityDayShape"]
