"""Merchants: they adopt the collection code when customers ask for it, and always
take cash (legal tender)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import mesa

if TYPE_CHECKING:
    from agents.model import CityModel


class Merchant(mesa.Agent):
    model: CityModel

    def __init__(self, model: CityModel, index: int, name: str) -> None:
        super().__init__(model)
        self.index = index
        self.name = name
        self.collection_code: str | None = None
        self.customers_today = 0
        self.app_requests_today = 0
        self.demand_share = 0.0  # yesterday: customers who asked for the app, of all

    @property
    def accepts_qr(self) -> bool:
        return self.collection_code is not None

    def close_day(self) -> None:
        """Remember how many customers asked to pay by app, for tomorrow's decision."""
        self.demand_share = self.app_requests_today / max(self.customers_today, 1)
        self.customers_today = self.app_requests_today = 0

    def consider_adopting(self, when: dt.datetime) -> None:
        if self.accepts_qr:
            return
        rules = self.model.scenario.merchants
        if self.model.rng.random() < rules.innovation + rules.demand_response * self.demand_share:
            self.adopt(when)

    def adopt(self, when: dt.datetime) -> None:
        """Register with the platform and print the collection code."""
        city = self.model.scenario.city.name
        reg = self.model.log.call(
            when,
            self.model.day,
            self.index,
            "merchant",
            "register_merchant",
            "app",
            0,
            self.model.client.register_merchant,
            self.name,
            city,
        )
        if reg.ok:
            self.collection_code = reg.value.collection_code
