"""Locust load tests of the platform's HTTP API and the runner that judges them.

``locustfile_payments.py`` holds the ``Shopper`` (registers, binds a card, tops up,
pays breakfast stalls); ``runner.py`` holds ``run_loadtest`` (serve the platform, run
Locust headless, read its figures, audit the ledger); ``_common.py`` holds the
``PlatformUser`` base and the final-figures CSV that every locustfile here writes.
"""

from loadtests.runner import (
    LOCUSTFILES,
    FailureRow,
    LoadtestError,
    LoadtestResult,
    StatsRow,
    run_loadtest,
)

__all__ = [
    "LOCUSTFILES",
    "FailureRow",
    "LoadtestError",
    "LoadtestResult",
    "StatsRow",
    "run_loadtest",
]
