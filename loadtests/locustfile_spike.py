"""A Friday free-ride morning peak: bus readers rush in, then ebb; nothing may be lost.

The users of :mod:`loadtests.locustfile_city` (every role and the settlement
operator) under :class:`loadtests.shapes.SpikeShape`; see that class for the stages.
"""

import locust  # noqa: F401 - first: locust patches the stdlib for gevent

# isort: split
from loadtests.locustfile_city import BillPayer, BusReader, Merchant, Operator, Patient, Shopper
from loadtests.shapes import SpikeShape

__all__ = ["BillPayer", "BusReader", "Merchant", "Operator", "Patient", "Shopper", "SpikeShape"]
