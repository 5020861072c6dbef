"""Utility bills and community services (home care, groceries) for residents.

Billers present bills through the platform to residents who use this platform's
wallet, and those residents pay them in the app; everyone else pays at a counter in
cash. Elderly residents book community services: in the app where they use it, else
by phone, paying the provider in cash (DOMAIN.md: a home physio visit, 30 RMB).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np

from platform_stub.frozen import frozen
from scenarios.schema import SEGMENTS

if TYPE_CHECKING:
    from agents.model import CityModel
    from agents.residents import Resident

BILL_DUE_DAYS = 14
BILLER_NAMES = ("武汉水务", "国网武汉供电", "武汉天然气")
DAY_HOURS_MIN = (9 * 60, 20 * 60)


@frozen
class Provider:
    """A biller, or a community-service provider with the one service it offers."""

    index: int
    token: str
    service_id: int | None = None


def register_providers(model: CityModel, when: dt.datetime) -> tuple[list[Provider], Provider]:
    billers = []
    for i in range(model.scenario.bills.billers):
        name = BILLER_NAMES[i % len(BILLER_NAMES)] + (
            f"{i // len(BILLER_NAMES) + 1}" if i >= 3 else ""
        )
        reg = model.log.call(
            when, 0, i, "biller", "register_biller", "app", 0, model.client.register_biller, name
        )
        if not reg.ok:
            raise RuntimeError(f"cannot register biller {i}: {reg.error_code}")
        billers.append(Provider(i, reg.value.token))
    reg = model.log.call(
        when,
        0,
        0,
        "provider",
        "register_provider",
        "app",
        0,
        model.client.register_provider,
        "社区居家养老服务中心",
    )
    price_fen = model.scenario.elderly.service_price_fen
    offer = model.log.call(
        when,
        0,
        0,
        "provider",
        "publish_service",
        "app",
        0,
        model.client.publish_service,
        reg.value.token,
        "居家康复理疗",
        price_fen,
    )
    if not (reg.ok and offer.ok):
        raise RuntimeError("cannot register the community-service provider")
    return billers, Provider(0, reg.value.token, offer.value.id)


def todays_errands(model: CityModel) -> list[tuple[float, str, tuple]]:
    """Bills due for payment and community services booked today."""
    n = model.people.size
    bill_rate = model.scenario.bills.per_resident_per_month / 30
    bills = np.flatnonzero(model.rng.random(n) < bill_rate)
    elderly = model.people.segment_of == SEGMENTS.index("elderly")
    service_rate = model.scenario.elderly.services_per_month / 30
    services = np.flatnonzero(elderly & (model.rng.random(n) < service_rate))
    minutes = model.rng.uniform(*DAY_HOURS_MIN, bills.size + services.size)
    billers = model.rng.integers(0, len(model.billers), bills.size)
    errands = [(float(minutes[i]), "bill", (int(r), int(billers[i]))) for i, r in enumerate(bills)]
    errands += [
        (float(minutes[bills.size + i]), "service", (int(r),)) for i, r in enumerate(services)
    ]
    return errands


def pay_bill(model: CityModel, resident: Resident, biller: Provider, when: dt.datetime) -> None:
    rules = model.scenario.bills
    amount_fen = max(100, round(rules.amount_fen_median * float(np.exp(model.rng.normal(0, 0.5)))))
    if not resident.on_platform:
        model.count("cash")
        return
    reference = f"{biller.index}-{resident.index}-{model.day}"
    due = when.date() + dt.timedelta(days=BILL_DUE_DAYS)
    bill = model.log.call(
        when,
        model.day,
        biller.index,
        "biller",
        "present_bill",
        "bill",
        amount_fen,
        model.client.present_bill,
        biller.token,
        resident.participant_id,
        amount_fen,
        due,
        reference,
        reference,
    )
    if not bill.ok:
        model.count("cash")
        return
    if resident.balance_fen < amount_fen:
        resident.top_up(when, max(amount_fen, model.scenario.spending.top_up_fen))
    paid = resident.call(
        when,
        "pay_bill",
        "bill",
        amount_fen,
        model.client.pay_bill,
        resident.token,
        bill.value.id,
        resident.request_id(),
    )
    if paid.ok:
        resident.balance_fen -= amount_fen
    model.count("app_services" if paid.ok else "cash")


def book_service(model: CityModel, resident: Resident, when: dt.datetime) -> None:
    provider, price_fen = model.provider, model.scenario.elderly.service_price_fen
    if not resident.on_platform:
        model.count("cash")
        return
    if resident.balance_fen < price_fen:
        resident.top_up(when, model.scenario.spending.top_up_fen)
    booked = resident.call(
        when,
        "book_service",
        "community",
        price_fen,
        model.client.book_service,
        resident.token,
        provider.service_id,
        resident.request_id(),
    )
    if booked.ok:
        resident.balance_fen -= price_fen
    model.count("app_services" if booked.ok else "cash")
