"""Patients at a hospital: treat first and pay later on a hold, or pay each charge now.

Each ``Patient`` is a resident with a topped-up wallet; the process's hospital is
registered by the first patient to start. A visit: the patient registers it
(``POST /v1/hospital/visits``; the platform decides pay-later, with a hold on the
wallet, or pay-now from the patient's credit), the hospital adds one to three
charges, a pay-now patient pays each as it falls due, and the hospital finalizes.
The finalized visit must have settled exactly its bill, which is the sum of the
charges. A visit that went wrong on the way is cancelled, so a patient never runs
into the platform's limit of open visits.

Parametrised paths are grouped by ``name`` ("/v1/hospital/visits/{id}/charges").

    python loadtests/locustfile_hospital.py --host http://127.0.0.1:8080
"""

from locust import between, run_single_user, task  # first: locust patches the stdlib

# isort: split
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

PATIENT_TOP_UP_FEN = 200_000
CHARGES_PER_VISIT_MAX = 3
CHARGE_FEN_MIN = 500  # a registration fee
CHARGE_FEN_MAX = 20_000  # a scan
VISIT_FIELDS = ("id", "mode", "state", "hold_fen", "bill_fen", "settled_fen", "charges")
CHARGE_FIELDS = ("id", "amount_fen", "state")
VISITS = "/v1/hospital/visits"
ITEMS = ("registration", "blood test", "x-ray", "consultation", "medicine")

install()

# The process's hospital: (token, participant id, account id), registered once.
_hospital: list[tuple[str, int, int]] = []
_hospital_lock = Semaphore()


def _hospital_of(user: PlatformUser) -> tuple[str, int, int] | None:
    with _hospital_lock:
        if not _hospital:
            body = {"name": "Wuhan Union Hospital"}
            reply = user.call_as(None, "POST", "/v1/hospitals", body, (201, REGISTRATION_FIELDS))
            if reply is not None:
                _hospital.append((reply["token"], reply["participant_id"], reply["account_id"]))
        return _hospital[0] if _hospital else None


class Patient(PlatformUser):
    """A resident who visits the hospital; plays the hospital's part in the visit too."""

    weight = 1
    wait_time = between(0.1, 0.4)
    patient: Resident
    hospital: tuple[str, int, int]

    def on_start(self) -> None:
        hospital = _hospital_of(self)
        patient = enrol_resident(self, "Patient", PATIENT_TOP_UP_FEN) if hospital else None
        if hospital is None or patient is None:
            raise StopUser()
        self.hospital, self.patient = hospital, patient
        self.token = patient.token

    @task
    def visit(self) -> None:
        bill_fen_max = CHARGES_PER_VISIT_MAX * CHARGE_FEN_MAX
        ensure_funds(self, self.patient, bill_fen_max, PATIENT_TOP_UP_FEN)
        body = {"hospital_id": self.hospital[1], "request_id": uuid.uuid4().hex}
        visit = self.call_as(self.patient.token, "POST", VISITS, body, (201, VISIT_FIELDS))
        if visit is None:
            return
        billed_fen = self.treat(visit)
        if billed_fen is None or not self.finalize(visit["id"], billed_fen):
            self.cancel(visit["id"])

    def treat(self, visit: dict) -> int | None:
        """The hospital adds charges; on a pay-now visit the patient pays each one.
        The bill so far, or None when a step failed."""
        billed_fen = 0
        for _ in range(random.randint(1, CHARGES_PER_VISIT_MAX)):
            amount_fen = random.randint(CHARGE_FEN_MIN, CHARGE_FEN_MAX)
            body = {"amount_fen": amount_fen, "item": random.choice(ITEMS),
                    "request_id": uuid.uuid4().hex}
            path = f"{VISITS}/{visit['id']}/charges"
            charge = self.call_as(self.hospital[0], "POST", path, body, (201, CHARGE_FIELDS),
                                  name=f"{VISITS}/{{id}}/charges")
            if charge is None:
                return None
            billed_fen += amount_fen
            if charge["state"] == "due" and not self.pay(visit["id"], charge, amount_fen):
                return None
        return billed_fen

    def pay(self, visit_id: int, charge: dict, amount_fen: int) -> bool:
        path = f"{VISITS}/{visit_id}/charges/{charge['id']}/pay"
        with self.client.post(
            path, json={"request_id": uuid.uuid4().hex}, headers=self.auth_headers(),
            name=f"{VISITS}/{{id}}/charges/{{id}}/pay", catch_response=True,
        ) as resp:
            receipt = self.expect(resp, 201, RECEIPT_FIELDS)
            if receipt is None:
                return False
            expected = (amount_fen, self.patient.account_id, self.hospital[2])
            got = (receipt["amount_fen"], receipt["debit_account_id"],
                   receipt["credit_account_id"])
            if got != expected:
                resp.failure("charge receipt differs from the charge (amount or accounts)")
                return False
        return True

    def finalize(self, visit_id: int, billed_fen: int) -> bool:
        """The hospital closes the bill: it must have settled exactly the charges."""
        headers = {"Authorization": f"Bearer {self.hospital[0]}"}
        with self.client.post(
            f"{VISITS}/{visit_id}/finalize", headers=headers,
            name=f"{VISITS}/{{id}}/finalize", catch_response=True,
        ) as resp:
            visit = self.expect(resp, 200, VISIT_FIELDS)
            if visit is None:
                return False
            closed = (visit["state"], visit["bill_fen"], visit["settled_fen"])
            if closed != ("finalized", billed_fen, billed_fen):
                resp.failure("finalized visit did not settle exactly its charges")
        self.patient.spent(billed_fen)
        return True

    def cancel(self, visit_id: int) -> None:
        self.patient.wallet_fen = None  # part of the bill may have been paid: re-count
        self.call_as(self.hospital[0], "POST", f"{VISITS}/{visit_id}/cancel", None,
                     (200, ("state",)), name=f"{VISITS}/{{id}}/cancel")


if __name__ == "__main__":
    run_single_user(Patient)
