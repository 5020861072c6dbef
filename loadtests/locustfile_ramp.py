"""The city's users climbing in steps to --users: where does latency bend?

The users of :mod:`loadtests.locustfile_city` (every role and the settlement
operator) under :class:`loadtests.shapes.RampShape`; see that class for the stages.
"""

import locust  # noqa: F401 - first: locust patches the stdlib for gevent

# isort: split
from loadtests.locustfile_city import BillPayer, BusReader, Merchant, Operator, Patient, Shopper
from loadtests.shapes import RampShape

__all__ = ["BillPayer", "BusReader", "Merchant", "Operator", "Patient", "Shopper", "RampShape"]
