"""Merchants scanning their customers' payment codes (the customer-presented flow).

At a till the customer's wallet app asks the platform for a fresh payment code
(``POST /v1/paycodes``, as the customer) and the merchant's scanner charges it
(``POST /v1/paycodes/charge``, as the merchant). The receipt must name the amount,
the customer's wallet and the merchant's account. A customer stands at one till at a
time: customers wait in a process-wide queue and each sale takes the next one, so no
customer's code is superseded by a second till mid-sale (that refusal,
``paycode_superseded``, is correct but not what this role measures). The queue grows
to at most ``CUSTOMERS_PER_PROCESS_MAX`` customers; beyond it a till waits for one.

    python loadtests/locustfile_paycodes.py --host http://127.0.0.1:8080
"""

from locust import between, run_single_user, task  # first: locust patches the stdlib

# isort: split
import random
import uuid

from gevent.queue import Empty, Queue
from locust.exception import StopUser

from loadtests._common import (
    RECEIPT_FIELDS,
    REGISTRATION_FIELDS,
    PlatformUser,
    Resident,
    enrol_resident,
    ensure_funds,
    install,
)

CUSTOMERS_PER_PROCESS_MAX = 40
CUSTOMER_WAIT_S = 5.0  # a till with no customer for this long skips the sale
CUSTOMER_TOP_UP_FEN = 100_000
SALE_FEN_MIN = 300  # a bottle of water
SALE_FEN_MAX = 8_000  # a week's groceries for one
PAYCODE_FIELDS = ("code", "expires_at_ms")
TILL_CITY = "Wuhan"

install()

# Customers not at a till right now; ``_customers_enrolled`` counts all of them.
_waiting: Queue = Queue(maxsize=CUSTOMERS_PER_PROCESS_MAX)
_customers_enrolled: list[int] = [0]


def _next_customer(user: PlatformUser) -> Resident | None:
    """A waiting customer, a newly enrolled one while under the cap, else wait for one."""
    try:
        return _waiting.get_nowait()
    except Empty:
        pass
    if _customers_enrolled[0] < CUSTOMERS_PER_PROCESS_MAX:
        _customers_enrolled[0] += 1
        number = _customers_enrolled[0]
        customer = enrol_resident(user, f"Customer {number}", CUSTOMER_TOP_UP_FEN)
        if customer is None:
            _customers_enrolled[0] -= 1
        return customer
    try:
        return _waiting.get(timeout=CUSTOMER_WAIT_S)
    except Empty:
        return None


class Merchant(PlatformUser):
    """A shop's till: takes the next customer, scans the customer's code, charges it."""

    weight = 2
    wait_time = between(0.05, 0.2)
    account_id: int = 0

    def on_start(self) -> None:
        body = {"name": "Corner shop", "city": TILL_CITY, "mcc": "5411"}
        reply = self.call_as(None, "POST", "/v1/merchants", body, (201, REGISTRATION_FIELDS))
        if reply is None:
            raise StopUser()
        self.token, self.account_id = reply["token"], reply["account_id"]

    @task
    def sell(self) -> None:
        customer = _next_customer(self)
        if customer is None:
            return
        try:
            self.charge(customer, random.randint(SALE_FEN_MIN, SALE_FEN_MAX))
        finally:
            _waiting.put(customer)

    def charge(self, customer: Resident, amount_fen: int) -> None:
        ensure_funds(self, customer, amount_fen, CUSTOMER_TOP_UP_FEN)
        shown = self.call_as(customer.token, "POST", "/v1/paycodes", None, (201, PAYCODE_FIELDS))
        if shown is None:
            return
        body = {"code": shown["code"], "amount_fen": amount_fen, "request_id": uuid.uuid4().hex}
        with self.client.post(
            "/v1/paycodes/charge", json=body, headers=self.auth_headers(),
            name="/v1/paycodes/charge", catch_response=True,
        ) as resp:
            receipt = self.expect(resp, 201, RECEIPT_FIELDS)
            if receipt is None:
                customer.wallet_fen = None  # a refusal may or may not have moved money: re-count
                return
            expected = (amount_fen, customer.account_id, self.account_id)
            got = (receipt["amount_fen"], receipt["debit_account_id"],
                   receipt["credit_account_id"])
            if got != expected:
                resp.failure("receipt differs from the sale (amount or accounts)")
                return
        customer.spent(amount_fen)


if __name__ == "__main__":
    run_single_user(Merchant)
