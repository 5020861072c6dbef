"""Residents paying their utility bills from the wallet.

Each ``BillPayer`` is a resident with a topped-up wallet; the process's utility (a
biller) is registered by the first payer to start. At the start and now and then
after, the utility presents the payer a bill due in a week (``POST /v1/bills``, as the
biller); the payer lists its bills (``GET /v1/bills``, oldest first, from the first one
it has not paid) and pays every one still due (``POST /v1/bills/{id}/pay``). A receipt
must repeat the bill's amount, the payer's wallet and the biller's account.

    python loadtests/locustfile_bills.py --host http://127.0.0.1:8080
"""

from locust import between, run_single_user, task  # first: locust patches the stdlib

# isort: split
import datetime as dt
import random
import uuid

from gevent.lock import Semaphore
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
from platform_stub.clearing import CHINA_TZ

PAYER_TOP_UP_FEN = 100_000
BILL_FEN_MIN = 2_000  # a month's water
BILL_FEN_MAX = 30_000  # a winter month's power and gas
DUE_IN_DAYS = 7
BILL_FIELDS = ("id", "amount_fen", "state", "due_date")
LIST_LIMIT = 20  # a payer holds few due bills: it pays them as they come

install()

# The process's utility: (token, account id), registered once.
_biller: list[tuple[str, int]] = []
_biller_lock = Semaphore()


def _biller_of(user: PlatformUser) -> tuple[str, int] | None:
    with _biller_lock:
        if not _biller:
            body = {"name": "Wuhan Water and Power"}
            reply = user.call_as(None, "POST", "/v1/billers", body, (201, REGISTRATION_FIELDS))
            if reply is not None:
                _biller.append((reply["token"], reply["account_id"]))
        return _biller[0] if _biller else None


class BillPayer(PlatformUser):
    """A resident paying the bills its utility presents."""

    weight = 1
    wait_time = between(0.1, 0.4)
    payer: Resident
    biller: tuple[str, int]
    listed_from: int = 0  # the payer's bills before this position are all paid

    def on_start(self) -> None:
        biller = _biller_of(self)
        payer = enrol_resident(self, "Bill payer", PAYER_TOP_UP_FEN) if biller else None
        if biller is None or payer is None:
            raise StopUser()
        self.biller, self.payer = biller, payer
        self.token = payer.token
        self.receive_bill()  # a payer has a bill from the start: its first listing pays one

    @task(1)
    def receive_bill(self) -> None:
        """The utility presents this resident a bill due in a week (China's date)."""
        due = dt.datetime.now(CHINA_TZ).date() + dt.timedelta(days=DUE_IN_DAYS)
        body = {"resident_id": self.payer.participant_id,
                "amount_fen": random.randint(BILL_FEN_MIN, BILL_FEN_MAX),
                "due_date": due.isoformat(), "reference": f"meter {uuid.uuid4().hex[:8]}",
                "request_id": uuid.uuid4().hex}
        self.call_as(self.biller[0], "POST", "/v1/bills", body, (201, BILL_FIELDS))

    @task(2)
    def pay_due_bills(self) -> None:
        path = f"/v1/bills?limit={LIST_LIMIT}&offset={self.listed_from}"
        listed = self.call_as(self.token, "GET", path, None, (200, ("bills",)), name="/v1/bills")
        if listed is None:
            return
        leading_paid = True
        for bill in listed["bills"]:
            paid = bill["state"] == "paid" or (bill["state"] == "due" and self.pay(bill))
            leading_paid = leading_paid and paid
            self.listed_from += leading_paid

    def pay(self, bill: dict) -> bool:
        ensure_funds(self, self.payer, bill["amount_fen"], PAYER_TOP_UP_FEN)
        with self.client.post(
            f"/v1/bills/{bill['id']}/pay", json={"request_id": uuid.uuid4().hex},
            headers=self.auth_headers(), name="/v1/bills/{id}/pay", catch_response=True,
        ) as resp:
            receipt = self.expect(resp, 201, RECEIPT_FIELDS)
            if receipt is None:
                self.payer.wallet_fen = None
                return False
            expected = (bill["amount_fen"], self.payer.account_id, self.biller[1])
            got = (receipt["amount_fen"], receipt["debit_account_id"],
                   receipt["credit_account_id"])
            if got != expected:
                resp.failure("bill receipt differs from the bill (amount or accounts)")
        self.payer.spent(bill["amount_fen"])
        return True


if __name__ == "__main__":
    run_single_user(BillPayer)
