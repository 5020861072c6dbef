"""Load tests of the platform's HTTP API, the open-model replay, and the runner that judges them.

Roles, one Locust user class each: ``Shopper`` (``locustfile_payments.py``: pays
stalls' collection codes), ``BusReader`` (``locustfile_transit.py``: riders' signed
offline taps, batch uploads, deny lists), ``Merchant`` (``locustfile_paycodes.py``:
charges customers' payment codes), ``Patient`` (``locustfile_hospital.py``: visits on
a hold or paid now), ``BillPayer`` (``locustfile_bills.py``: pays utility bills) and
``Operator`` (``locustfile_city.py``, where all roles run together: closes settlement
windows under traffic). ``locustfile_ramp``,
``_spike``, ``_soak`` and ``_cityday`` run the city under the shapes of ``shapes.py``.
``replay.py`` replays a simulated day from ``trace.parquet`` in an open model.

Measuring and judging: ``hdr.py`` (HDR histograms per endpoint and second),
``_recording.py`` (feeds them from Locust, ships them from workers), ``slo.py``
(service-level files), ``taps.py`` (lost-tap check), ``results.py`` (the run folder's
``loadtest.json`` and ``latency.parquet``), ``stats.py`` (per-endpoint rows from Locust's
CSV or our histograms) and ``runner.py`` (``run_loadtest``: serve
the platform, run Locust or the replay headless, audit, judge). See README.md.

Names are imported lazily: Locust and the replay patch the standard library with
gevent before anything else loads, and this package must not import it first.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LOCUSTFILES": "loadtests.runner",
    "SCENARIOS": "loadtests.runner",
    "FailureRow": "loadtests.stats",
    "LoadtestError": "loadtests.runner",
    "LoadtestResult": "loadtests.runner",
    "StatsRow": "loadtests.stats",
    "run_loadtest": "loadtests.runner",
    "Breach": "loadtests.slo",
    "ServiceLevels": "loadtests.slo",
    "load_service_levels": "loadtests.slo",
    "summary_table": "loadtests.summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'loadtests' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
