"""The city at --users for a long --run-time (30 minutes and up): leaks and drifts.

The users of :mod:`loadtests.locustfile_city` (every role and the settlement
operator) under :class:`loadtests.shapes.SoakShape`; see that class for the stages.
"""

import locust  # noqa: F401 - first: locust patches the stdlib for gevent

# isort: split
from loadtests.locustfile_city import BillPayer, BusReader, Merchant, Operator, Patient, Shopper
from loadtests.shapes import SoakShape

__all__ = ["BillPayer", "BusReader", "Merchant", "Operator", "Patient", "Shopper", "SoakShape"]
