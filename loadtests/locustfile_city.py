"""The whole city at once: every role, and the operator closing settlement windows.

Shoppers pay stalls' collection codes (:mod:`locustfile_payments`), bus readers
upload riders' offline taps (:mod:`locustfile_transit`), merchants charge payment
codes (:mod:`locustfile_paycodes`), patients visit the hospital
(:mod:`locustfile_hospital`), residents pay bills (:mod:`locustfile_bills`), and one
``Operator`` closes the settlement window every ``SETTLEMENT_EVERY_S`` while that
traffic runs. Users split by the classes' ``weight`` (shoppers 4, readers 2,
merchants 2, patients 1, bill payers 1) after the one operator, so give at least 6
users for every role to appear. The load-shape locustfiles (ramp, spike, soak,
cityday) run these same users.

The operator's credential is the platform's ``CASHLESS_ADMIN_TOKEN``, read from the
environment as the server reads it (the runner sets both when it serves the platform).

    CASHLESS_ADMIN_TOKEN=... python loadtests/locustfile_city.py --host http://127.0.0.1:8080
"""

from locust import constant, run_single_user, task  # first: locust patches the stdlib

# isort: split
import logging
import os

from locust.exception import StopUser

from loadtests._common import PlatformUser, install
from loadtests.locustfile_bills import BillPayer
from loadtests.locustfile_hospital import Patient
from loadtests.locustfile_paycodes import Merchant
from loadtests.locustfile_payments import Shopper
from loadtests.locustfile_transit import BusReader
from platform_stub.client import ADMIN_TOKEN_ENV

SETTLEMENT_EVERY_S = 3.0  # daily in the city; every few seconds under load
SETTLEMENT_FIELDS = ("window_id", "first_seq", "last_seq", "payout_total_fen", "positions")
ROLES = (Shopper, BusReader, Merchant, Patient, BillPayer)

install()
logger = logging.getLogger("loadtests")


class Operator(PlatformUser):
    """The platform operator: closes the open settlement window, checks the netting."""

    fixed_count = 1
    wait_time = constant(SETTLEMENT_EVERY_S)
    last_window_id: int = 0

    def on_start(self) -> None:
        self.token = os.environ.get(ADMIN_TOKEN_ENV, "")
        if not self.token:
            logger.warning("%s is not set: the Operator closes no windows", ADMIN_TOKEN_ENV)
            raise StopUser()

    @task
    def close_window(self) -> None:
        with self.client.post(
            "/v1/settlement/close", headers=self.auth_headers(),
            name="/v1/settlement/close", catch_response=True,
        ) as resp:
            report = self.expect(resp, 200, SETTLEMENT_FIELDS)
            if report is None:
                return
            problem = _netting_problem(report, self.last_window_id)
            if problem:
                resp.failure(problem)
            self.last_window_id = max(self.last_window_id, report["window_id"])


def _netting_problem(report: dict, last_window_id: int) -> str | None:
    """What is wrong with a settlement report, if anything (positions must sum to zero)."""
    positions = report["positions"]
    if sum(p["net_fen"] for p in positions) != 0:
        return "net positions do not sum to zero"
    if sum(p["payout_fen"] for p in positions) != report["payout_total_fen"]:
        return "payouts do not add up to payout_total_fen"
    if report["window_id"] <= last_window_id:
        return "window ids do not increase"
    return None


__all__ = ["BillPayer", "BusReader", "Merchant", "Operator", "Patient", "Shopper"]

if __name__ == "__main__":
    run_single_user(Operator)
