"""CityModel: one step is one simulated day of a city's move to mobile payment.

Each day: residents decide whether to adopt (vectorised over the social network),
new adopters open wallets, merchants decide on the collection code, then the
day's purchases run in time order, each through the platform client when both
sides use the app, else in cash. Aggregates are collected per day with numpy.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mesa
import numpy as np
from faker import Faker

from agents.merchants import Merchant
from agents.network import adopted_share, degrees, small_world
from agents.recorder import EventLog
from agents.residents import Resident
from platform_stub.client import PlatformClient
from scenarios.schema import SEGMENTS, PerSegment, Scenario

REGULAR_MERCHANTS = 4  # shops a resident frequents
CHANNELS = ("merchant_qr", "cash", "declined")
# Purchase times: breakfast, lunch and evening peaks (minute of day, spread, weight).
SHOPPING_PEAKS = ((7 * 60 + 30, 40, 0.4), (12 * 60 + 15, 40, 0.3), (18 * 60 + 30, 60, 0.3))
MERCHANT_OPENING_MIN = 6 * 60
ONBOARDING_MIN = 8 * 60
DAY_END_MIN = 22 * 60


class CityModel(mesa.Model):
    """Residents and merchants of a scaled city, calling the platform through ``client``."""

    def __init__(self, scenario: Scenario, client: PlatformClient, seed: int | None = None) -> None:
        super().__init__(seed=scenario.seed if seed is None else seed)
        self.scenario = scenario
        self.client = client
        self.log = EventLog()
        self.day = 0
        self.daily_rows: list[dict[str, Any]] = []
        faker = Faker("zh_CN")
        faker.seed_instance(int(self.rng.integers(2**31)))
        self.merchant_list = self._make_merchants(faker)
        self.resident_list = self._make_residents(faker)
        self._init_adoption()
        self._adopt_initial()

    # -- construction -------------------------------------------------------------

    def _make_merchants(self, faker: Faker) -> list[Merchant]:
        return [
            Merchant(self, i, faker.company()[:32]) for i in range(self.scenario.city.merchants)
        ]

    def _make_residents(self, faker: Faker) -> list[Resident]:
        city = self.scenario.city
        shares = [city.segment_shares.get(s) for s in SEGMENTS]
        segments = self.rng.choice(len(SEGMENTS), size=city.residents, p=shares)
        regulars = self.rng.integers(0, city.merchants, size=(city.residents, REGULAR_MERCHANTS))
        return [
            Resident(self, i, SEGMENTS[segments[i]], faker.name(), regulars[i].tolist())
            for i in range(city.residents)
        ]

    def _init_adoption(self) -> None:
        rules, n = self.scenario.adoption, len(self.resident_list)
        self.segment_of = np.array([SEGMENTS.index(r.segment) for r in self.resident_list])
        self.innovation = self.per_resident(rules.innovation)
        self.imitation = self.per_resident(rules.imitation)
        self.smartphone = self.rng.random(n) < self.per_resident(rules.smartphone_share)
        self.adopted = np.zeros(n, dtype=bool)
        net = self.scenario.network
        self.ties = small_world(n, net.mean_degree, net.rewire_probability, self.rng)
        self.tie_count = degrees(self.ties)

    def per_resident(self, table: PerSegment) -> np.ndarray:
        """Spread a per-segment parameter to one value per resident."""
        return np.array([table.get(s) for s in SEGMENTS])[self.segment_of]

    def _adopt_initial(self) -> None:
        when = self.clock(ONBOARDING_MIN)
        for merchant in self.merchant_list:
            if self.rng.random() < self.scenario.merchants.initial_share:
                merchant.adopt(when)
        first = self.smartphone & (
            self.rng.random(self.smartphone.size) < self.scenario.adoption.initial_share
        )
        self._onboard(np.flatnonzero(first))

    # -- one day ------------------------------------------------------------------

    def step(self) -> None:
        self.spread_adoption()
        self.open_shops()
        counts = self.run_purchases()
        self.close_day(counts)
        self.day += 1
        self.running = self.day < self.scenario.city.days

    def clock(self, minute_of_day: float) -> dt.datetime:
        start = dt.datetime.combine(self.scenario.city.start_date, dt.time())
        return start + dt.timedelta(days=self.day, minutes=float(minute_of_day))

    def spread_adoption(self) -> None:
        """Bass-style adoption over ties; only smartphone owners can adopt."""
        share = adopted_share(self.ties, self.tie_count, self.adopted)
        chance = self.innovation + self.imitation * share
        draws = self.rng.random(self.adopted.size)
        self._onboard(np.flatnonzero(~self.adopted & self.smartphone & (draws < chance)))

    def _onboard(self, indices: np.ndarray) -> None:
        minutes = ONBOARDING_MIN + self.rng.uniform(0, 12 * 60, indices.size)
        for i in np.argsort(minutes, kind="stable"):
            resident = self.resident_list[indices[i]]
            if resident.onboard(self.clock(minutes[i])):
                self.adopted[resident.index] = True

    def open_shops(self) -> None:
        when = self.clock(MERCHANT_OPENING_MIN)
        for merchant in self.merchant_list:
            merchant.consider_adopting(when)

    def run_purchases(self) -> dict[str, int]:
        """Draw the day's purchases and run them in time order."""
        spend = self.scenario.spending
        per_day = self.per_resident(spend.purchases_per_day)
        who = np.repeat(np.arange(per_day.size), self.rng.poisson(per_day))
        minutes = self._purchase_minutes(who.size)
        amounts = np.maximum(
            1,
            np.rint(
                spend.amount_fen_median * np.exp(self.rng.normal(0, spend.amount_sigma, who.size))
            ),
        ).astype(np.int64)
        shops = self.rng.integers(0, REGULAR_MERCHANTS, who.size)
        counts = dict.fromkeys(CHANNELS, 0)
        for i in np.argsort(minutes, kind="stable"):
            resident = self.resident_list[who[i]]
            merchant = self.merchant_list[resident.regular_merchants[shops[i]]]
            channel = resident.shop(self.clock(minutes[i]), merchant, int(amounts[i]))
            counts[channel] += 1
            if channel == "declined":
                counts["cash"] += 1  # the customer still pays, in cash
        return counts

    def _purchase_minutes(self, n: int) -> np.ndarray:
        centres, spreads, weights = np.array(SHOPPING_PEAKS, dtype=float).T
        peak = self.rng.choice(len(weights), size=n, p=weights / weights.sum())
        minutes = self.rng.normal(centres[peak], spreads[peak])
        return np.clip(minutes, MERCHANT_OPENING_MIN, DAY_END_MIN)

    def close_day(self, counts: dict[str, int]) -> None:
        date = self.scenario.city.start_date + dt.timedelta(days=self.day)
        row: dict[str, Any] = {"date": date, "day": self.day, "weekday": date.strftime("%a")}
        for k, segment in enumerate(SEGMENTS):
            in_segment = self.segment_of == k
            row[f"population_{segment}"] = int(in_segment.sum())
            row[f"adopters_{segment}"] = int((self.adopted & in_segment).sum())
        row["population_merchant"] = len(self.merchant_list)
        row["adopters_merchant"] = sum(m.accepts_qr for m in self.merchant_list)
        row.update({f"tx_{c}": n for c, n in counts.items()})
        self.daily_rows.append(row)
        for merchant in self.merchant_list:
            merchant.close_day()
