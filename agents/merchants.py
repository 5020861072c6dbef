"""Merchants: breakfast stalls, wholesalers, supermarkets and shops.

A merchant adopts the collection code on customer demand (yesterday's customers who
asked to pay by app), on its kind's motives (counterfeit notes, theft, bookkeeping)
against its cost; see ``scenarios.schema_services.MerchantKind``. It takes cash
unless the legal-tender rule is off and it is one of the adopters that refuse it.
Underground merchants sit in a dead zone where online payments may fail. A
breakfast stall's morning queue is an M/D/1 queue whose service time falls as more
customers pay by app.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import mesa

from agents.adoption import OURS, RIVAL

if TYPE_CHECKING:
    from agents.model import CityModel

MCC_OF_KIND = {
    "breakfast_stall": "5814",
    "wholesaler": "5411",
    "supermarket": "5411",
    "shop": "5999",
}
RUSH_S = 3600  # a breakfast stall's morning rush, seconds
UTILISATION_MAX = 0.95  # beyond this a queue's wait is capped: customers walk away


class Merchant(mesa.Agent):
    model: CityModel

    def __init__(
        self, model: CityModel, index: int, name: str, kind: str, underground: bool
    ) -> None:
        super().__init__(model)
        self.index = index
        self.name = name
        self.kind = kind
        self.underground = underground
        self.collection_code: str | None = None
        self.takes_ours = self.takes_rival = False
        self.integrated_register = True
        self.refuses_cash = False
        self.customers_today = 0
        self.app_requests_today = 0
        self.rush_cash = self.rush_app = 0  # breakfast-rush customers by how they paid
        self.demand_share = 0.0  # yesterday: customers who asked for the app, of all

    @property
    def accepts_qr(self) -> bool:
        return self.takes_ours or self.takes_rival

    def takes(self, wallet: int) -> bool:
        return (wallet == OURS and self.takes_ours) or (wallet == RIVAL and self.takes_rival)

    def close_day(self) -> float | None:
        """Remember today's demand for the app; returns the rush queue wait (minutes)
        of a breakfast stall that had customers, else None."""
        self.demand_share = self.app_requests_today / max(self.customers_today, 1)
        wait_min = self._rush_wait_min() if self.rush_cash + self.rush_app else None
        self.customers_today = self.app_requests_today = self.rush_cash = self.rush_app = 0
        return wait_min

    def _rush_wait_min(self) -> float:
        """M/D/1 mean wait: Wq = rho x s / (2 (1 - rho)), s the mean service time."""
        rules = self.model.scenario.merchants
        n = self.rush_cash + self.rush_app
        service_s = (
            self.rush_cash * rules.cash_service_s + self.rush_app * rules.app_service_s
        ) / n
        rho = min(UTILISATION_MAX, n * service_s / RUSH_S)
        return rho * service_s / (2 * (1 - rho)) / 60

    def consider_adopting(self, when: dt.datetime) -> None:
        if self.accepts_qr:
            return
        rules = self.model.scenario.merchants
        kind = rules.kinds[self.kind]
        motive = kind.counterfeit_risk + kind.theft_risk + kind.bookkeeping_gain - kind.cost
        chance = rules.innovation + rules.demand_response * self.demand_share
        chance += rules.motive_weight * motive
        if self.model.rng.random() < chance:
            self.adopt(when)

    def adopt(self, when: dt.datetime) -> None:
        """Choose the wallet(s), register with this platform if it is one of them, and
        print the collection code."""
        model, rules = self.model, self.model.scenario
        draw = model.rng.random()
        rival_only = rules.competition.merchant_rival_share
        both = rival_only + rules.competition.merchant_both_share
        self.integrated_register = (
            model.rng.random() < rules.merchants.kinds[self.kind].integrated_register_share
        )
        refuse = not rules.merchants.must_accept_cash
        self.refuses_cash = refuse and model.rng.random() < rules.merchants.cash_refusal_share
        if draw < rival_only:
            self.takes_rival = True
            return
        self.takes_rival = draw < both
        reg = model.log.call(
            when, model.day, self.index, "merchant", "register_merchant", "app", 0,
            model.client.register_merchant, self.name, rules.city.name, MCC_OF_KIND[self.kind],
        )  # fmt: skip
        if reg.ok:
            self.collection_code = reg.value.collection_code
            self.takes_ours = True
