"""Residents paying breakfast stalls by scanning the stalls' printed collection codes.

Each ``Shopper`` registers, binds a bank card, tops up its wallet and then pays
stalls. A shopper is the only one who moves money out of its wallet, so it keeps
its own count of the balance: a receipt or a balance that disagrees with it is a
failure, and so is ``exceeds_credits``, because a shopper tops up before it runs short.

Headless runs go through :func:`loadtests.run_loadtest`. To debug one user::

    python loadtests/locustfile_payments.py --host http://127.0.0.1:8080
"""

from locust import between, run_single_user, task  # first: locust patches the stdlib

# isort: split
import random
import uuid
from typing import Any, NamedTuple

from gevent.lock import Semaphore
from locust.exception import StopUser

from loadtests._common import (
    CARD_PREFIX,
    OUTCOME_UNKNOWN_STATUSES,
    RECEIPT_FIELDS,
    REGISTRATION_FIELDS,
    PlatformUser,
    install,
)
from platform_stub.service import luhn_complete

STALLS_PER_PROCESS = 8
STALL_CITY = "Hangzhou"
TOP_UP_FEN = 100_000  # 1,000 RMB, about a hundred breakfasts; the platform allows 5,000,000
PAYMENT_FEN_MIN = 150  # one steamed bun
PAYMENT_FEN_MAX = 2_000  # a full breakfast set for two
MERCHANT_FIELDS = (*REGISTRATION_FIELDS, "collection_code")

install()


class Stall(NamedTuple):
    collection_code: str
    account_id: int


# Breakfast stalls shared by every shopper of this process, registered by the first
# shopper to start; the lock makes the others wait instead of registering their own.
_stalls: list[Stall] = []
_stalls_lock = Semaphore()


def _stalls_registered_by(user: PlatformUser) -> list[Stall]:
    """The process's stalls, registering the missing ones (at most STALLS_PER_PROCESS)."""
    with _stalls_lock:
        for number in range(len(_stalls), STALLS_PER_PROCESS):
            body = {"name": f"Breakfast stall {number + 1}", "city": STALL_CITY}
            reply = user.post_expecting("/v1/merchants", body, MERCHANT_FIELDS)
            if reply is None:
                break
            _stalls.append(Stall(reply["collection_code"], reply["account_id"]))
        return list(_stalls)


class Shopper(PlatformUser):
    """A resident who pays for breakfast with the wallet app, checking every receipt."""

    weight = 4
    wait_time = between(0.05, 0.2)
    participant_id: int = 0
    account_id: int = 0
    # This shopper's count of its balance; None after a reply that leaves it unknown.
    wallet_fen: int | None = 0
    stalls: list[Stall]

    def on_start(self) -> None:
        if not (self.register() and self.bind_card()):
            raise StopUser()
        self.stalls = _stalls_registered_by(self)
        if not self.stalls:
            raise StopUser()
        self.top_up()

    def register(self) -> bool:
        reply = self.post_expecting("/v1/residents", {"name": "Shopper"}, REGISTRATION_FIELDS)
        if reply is not None:
            self.token, self.account_id = reply["token"], reply["account_id"]
            self.participant_id = reply["participant_id"]
        return reply is not None

    def bind_card(self) -> bool:
        """Bind a card whose number is unique to this resident (its participant id)."""
        number = luhn_complete(f"{CARD_PREFIX}{self.participant_id % 10**9:09d}")
        body = {"card_number": number, "bank": "ICBC"}
        return self.post_expecting("/v1/cards", body, ("card",)) is not None

    def top_up(self) -> None:
        body = {"amount_fen": TOP_UP_FEN, "request_id": uuid.uuid4().hex}
        with self.client.post(
            "/v1/topups",
            json=body,
            headers=self.auth_headers(),
            name="/v1/topups",
            catch_response=True,
        ) as resp:
            receipt = self.expect(resp, 201, RECEIPT_FIELDS)
            if receipt is not None and self.receipt_matches(
                resp, receipt, TOP_UP_FEN, credit_account_id=self.account_id
            ):
                self.count_into_wallet(TOP_UP_FEN)
            else:
                self.forget_wallet_if_unknown(resp)

    @task(10)
    def pay(self) -> None:
        if self.wallet_fen is None or self.wallet_fen < PAYMENT_FEN_MAX:
            self.top_up()
        stall = random.choice(self.stalls)
        amount_fen = random.randint(PAYMENT_FEN_MIN, PAYMENT_FEN_MAX)
        body = {
            "collection_code": stall.collection_code,
            "amount_fen": amount_fen,
            "request_id": uuid.uuid4().hex,
        }
        with self.client.post(
            "/v1/payments",
            json=body,
            headers=self.auth_headers(),
            name="/v1/payments",
            catch_response=True,
        ) as resp:
            receipt = self.expect(resp, 201, RECEIPT_FIELDS)
            if receipt is None:
                self.forget_wallet_if_unknown(resp)
            elif self.receipt_matches(resp, receipt, amount_fen, self.account_id, stall.account_id):
                self.count_into_wallet(-amount_fen)

    @task(1)
    def balance(self) -> None:
        with self.client.get(
            "/v1/balance", headers=self.auth_headers(), name="/v1/balance", catch_response=True
        ) as resp:
            reply = self.expect(resp, 200, ("balance_fen",))
            if reply is None:
                return
            if self.wallet_fen is not None and reply["balance_fen"] != self.wallet_fen:
                resp.failure("balance differs from the shopper's own count")
            self.wallet_fen = reply["balance_fen"]

    def receipt_matches(
        self,
        resp: Any,
        receipt: dict,
        amount_fen: int,
        debit_account_id: int | None = None,
        credit_account_id: int | None = None,
    ) -> bool:
        """A receipt must repeat the amount and the accounts the request implies."""
        expected = {
            "amount_fen": amount_fen,
            "debit_account_id": debit_account_id,
            "credit_account_id": credit_account_id,
        }
        wrong = [k for k, v in expected.items() if v is not None and receipt[k] != v]
        if wrong:
            resp.failure(f"receipt {', '.join(wrong)} differ from the request")
            self.wallet_fen = None
        return not wrong

    def count_into_wallet(self, delta_fen: int) -> None:
        if self.wallet_fen is not None:
            self.wallet_fen += delta_fen

    def forget_wallet_if_unknown(self, resp: Any) -> None:
        """After a timeout or a 5xx the money may have moved; the balance task re-reads it."""
        if resp.status_code in OUTCOME_UNKNOWN_STATUSES:
            self.wallet_fen = None


if __name__ == "__main__":
    run_single_user(Shopper)
