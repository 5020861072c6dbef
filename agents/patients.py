"""Patients: outpatient visits, with or without treat first, pay later.

A visit is registration, ``payments_per_visit`` steps (consultation, lab, pharmacy)
and the care itself. Its minutes:

- registration: an exponential wait with mean ``registration_queue_min``, for
  everyone (so the saving below measures treat first, pay later alone);
- care: ``care_min`` (the same for everyone, so it cancels in the saving);
- pay now: after each step, an exponential wait at the payment window with mean
  ``payment_queue_min``, paying cash or by app at the window;
- treat first, pay later: no payment queues; the platform holds funds when the visit
  opens and posts the bill when the hospital finalizes it. The platform decides the
  mode from the resident's credit score (``[credit]``).

So the expected saving is ``payments_per_visit x payment_queue_min``: 3 x 17.5 =
52.5 minutes against the published 52.7 (DOMAIN.md), the calibration target.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np

from platform_stub.frozen import frozen

if TYPE_CHECKING:
    from agents.model import CityModel
    from agents.residents import Resident

ITEMS = ("consultation", "lab", "pharmacy", "imaging", "treatment")
VISIT_OPENS_MIN = (8 * 60, 16 * 60)


@frozen
class Hospital:
    index: int
    participant_id: int
    token: str


def register_hospitals(model: CityModel, when: dt.datetime) -> list[Hospital]:
    hospitals = []
    for i in range(model.scenario.hospital.hospitals):
        reg = model.log.call(
            when,
            0,
            i,
            "hospital",
            "register_hospital",
            "app",
            0,
            model.client.register_hospital,
            f"武汉市第{i + 1}医院",
        )
        if not reg.ok:
            raise RuntimeError(f"cannot register hospital {i}: {reg.error_code}")
        hospitals.append(Hospital(i, reg.value.participant_id, reg.value.token))
    return hospitals


def todays_visits(model: CityModel) -> list[tuple[float, str, tuple]]:
    """(minute, "visit", (resident, hospital)) for every visit of the day."""
    rate = model.people.per_resident(model.scenario.hospital.visits_per_year) / 365
    who = np.flatnonzero(model.rng.random(rate.size) < rate)
    minutes = model.rng.uniform(*VISIT_OPENS_MIN, who.size)
    hospital = model.rng.integers(0, len(model.hospitals), who.size)
    return [
        (float(m), "visit", (int(r), int(h)))
        for m, r, h in zip(minutes, who, hospital, strict=True)
    ]


def visit(model: CityModel, patient: Resident, hospital: Hospital, when: dt.datetime) -> None:
    rules, rng = model.scenario.hospital, model.rng
    charges = np.maximum(100, np.rint(
        rules.charge_fen_median * np.exp(rng.normal(0, 0.6, rules.payments_per_visit))
    )).astype(np.int64)  # fmt: skip
    window_waits = rng.exponential(rules.payment_queue_min, rules.payments_per_visit)
    on_app = patient.on_platform
    minutes = rules.care_min + rng.exponential(rules.registration_queue_min)
    mode = _visit_on_platform(model, patient, hospital, when, charges) if on_app else "cash"
    if mode != "pay_later":
        minutes += float(window_waits.sum())
    model.count(f"hospital_visits_{'paylater' if mode == 'pay_later' else 'paynow'}")
    model.count(
        f"hospital_minutes_{'paylater' if mode == 'pay_later' else 'paynow'}_sum", round(minutes)
    )
    model.count("hospital_visits")
    if mode == "cash":
        model.count("cash", int(charges.size))


def _visit_on_platform(
    model: CityModel, patient: Resident, hospital: Hospital, when: dt.datetime, charges: np.ndarray
) -> str:
    """Open the visit (the platform picks the mode), charge each step, pay now or let
    the hospital finalize; returns the mode, or "cash" when the app could not be used."""
    bill_fen = int(charges.sum())
    if patient.balance_fen < bill_fen:
        patient.top_up(when, max(bill_fen, model.scenario.spending.top_up_fen))
    opened = patient.call(
        when,
        "open_visit",
        "hospital",
        0,
        model.client.open_visit,
        patient.token,
        hospital.participant_id,
        patient.request_id(),
    )
    if not opened.ok:
        return "cash"
    visit_id, mode = opened.value.id, opened.value.mode
    for step, amount_fen in enumerate(charges.tolist()):
        item = ITEMS[step % len(ITEMS)]
        charge = model.log.call(
            when,
            model.day,
            hospital.index,
            "hospital",
            "add_charge",
            "hospital",
            amount_fen,
            model.client.add_charge,
            hospital.token,
            visit_id,
            amount_fen,
            item,
            f"v{visit_id}s{step}",
        )
        if charge.ok and mode == "pay_now":
            paid = patient.call(
                when,
                "pay_charge",
                "hospital",
                amount_fen,
                model.client.pay_charge,
                patient.token,
                visit_id,
                charge.value.id,
                patient.request_id(),
            )
            model.count("app_services" if paid.ok else "cash")
    closed = model.log.call(
        when,
        model.day,
        hospital.index,
        "hospital",
        "finalize_visit",
        "hospital",
        bill_fen,
        model.client.finalize_visit,
        hospital.token,
        visit_id,
    )
    if mode == "pay_later":
        model.count("app_services" if closed.ok else "cash")
    patient.balance_fen -= bill_fen
    return mode
