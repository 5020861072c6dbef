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
import polars as pl
from faker import Faker

from agents.buses import Bus
from agents.merchants import Merchant
from agents.network import adopted_share, degrees, small_world
from agents.recorder import EventLog
from agents.residents import Resident
from platform_stub.clearing import CHINA_TZ, TapOutcome
from platform_stub.client import PlatformClient
from scenarios.schema import SEGMENTS, PerSegment, Scenario

REGULAR_MERCHANTS = 4  # shops a resident frequents
CHANNELS = ("merchant_qr", "cash", "declined", "offline_qr", "bus_cash")
# Purchase times: breakfast, lunch and evening peaks (minute of day, spread, weight).
SHOPPING_PEAKS = ((7 * 60 + 30, 40, 0.4), (12 * 60 + 15, 40, 0.3), (18 * 60 + 30, 60, 0.3))
MERCHANT_OPENING_MIN = 6 * 60
ONBOARDING_MIN = 8 * 60
DAY_END_MIN = 22 * 60
# Commutes: (mean minute of day, spread); rush-hour ends, when readers may find coverage.
COMMUTES = ((8 * 60, 30), (18 * 60, 40))
RUSH_ENDS_MIN = (9 * 60 + 30, 19 * 60 + 30)
DEPOT_MIN = 23 * 60
TAP_COLUMNS = (
    "day",
    "reader_id",
    "reader_seq",
    "tap_id",
    "card_id",
    "tapped_at_s",
    "uploaded_at_s",
    "outcome",
    "reason",
    "fare_fen",
    "wallet_fen",
    "credit_fen",
    "promo_fen",
    "first_reader_id",
    "lag_s",
)


class CityModel(mesa.Model):
    """Residents and merchants of a scaled city, calling the platform through ``client``."""

    def __init__(self, scenario: Scenario, client: PlatformClient, seed: int | None = None) -> None:
        super().__init__(seed=scenario.seed if seed is None else seed)
        self.scenario = scenario
        self.client = client
        self.log = EventLog()
        self.day = 0
        self.now = self.clock(0)  # simulated local time of the activity under way
        self.daily_rows: list[dict[str, Any]] = []
        self.tap_rows: list[dict[str, Any]] = []
        self.settlement_rows: list[dict[str, Any]] = []
        self.reader_rejections: dict[str, int] = {}
        self.rider_key_seed = self.rng.bytes(32)
        faker = Faker("zh_CN")
        faker.seed_instance(int(self.rng.integers(2**31)))
        self.merchant_list = self._make_merchants(faker)
        self.resident_list = self._make_residents(faker)
        self.bus_list = self._make_buses()
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
        transit = self.scenario.transit
        rides = (
            self.rng.random(city.residents)
            < np.array([transit.rider_share.get(s) for s in SEGMENTS])[segments]
        )
        first_bus = self.rng.integers(0, transit.buses, city.residents)
        return [
            Resident(
                self,
                i,
                SEGMENTS[segments[i]],
                faker.name(),
                regulars[i].tolist(),
                (int(first_bus[i]), int(first_bus[i] + 1) % transit.buses) if rides[i] else None,
            )
            for i in range(city.residents)
        ]

    def _make_buses(self) -> list[Bus]:
        """One operator; each bus has its own reader with its own credential."""
        when = self.clock(0)
        operator = self.log.call(
            when,
            0,
            0,
            "operator",
            "register_operator",
            "app",
            0,
            self.client.register_operator,
            "武汉公交集团",
        )
        if not operator.ok:
            raise RuntimeError(f"cannot register the bus operator: {operator.error_code}")
        buses = []
        for i in range(self.scenario.transit.buses):
            reg = self.log.call(
                when,
                0,
                i,
                "bus",
                "register_reader",
                "app",
                0,
                self.client.register_reader,
                operator.value.token,
                f"bus-{i}",
            )
            if not reg.ok:
                raise RuntimeError(f"cannot register reader {i}: {reg.error_code}")
            buses.append(Bus(self, i, reg.value.token, f"R{reg.value.participant_id}"))
        return buses

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
        counts = self.run_activities()
        self.park_buses()
        self.close_settlement_window()
        self.close_day(counts)
        self.day += 1
        self.running = self.day < self.scenario.city.days

    @staticmethod
    def unix_s(when: dt.datetime) -> int:
        """Simulated local time (China, UTC+8) as the unix seconds codes carry."""
        return int(when.replace(tzinfo=CHINA_TZ).timestamp())

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

    def run_activities(self) -> dict[str, int]:
        """The day's purchases, bus rides and reader uploads, in time order."""
        counts = dict.fromkeys(CHANNELS, 0)
        activities = sorted(
            [*self._purchases(), *self._rides(), *self._coverage_checks()],
            key=lambda a: a[0],
        )
        for minute, kind, args in activities:
            self.now = self.clock(minute)
            channel = getattr(self, f"_do_{kind}")(self.now, *args)
            if channel:
                counts[channel] += 1
                if channel == "declined":
                    counts["cash"] += 1  # the customer still pays, in cash
        return counts

    def _purchases(self) -> list[tuple[float, str, tuple]]:
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
        return [
            (float(minutes[i]), "purchase", (int(who[i]), int(shops[i]), int(amounts[i])))
            for i in range(who.size)
        ]

    def _rides(self) -> list[tuple[float, str, tuple]]:
        riders = [r for r in self.resident_list if r.route is not None]
        rides = []
        for leg, (centre, spread) in enumerate(COMMUTES):
            minutes = self.rng.normal(centre, spread, len(riders))
            rides += [
                (float(m), "ride", (r.index, r.route[leg]))
                for r, m in zip(riders, minutes, strict=True)
            ]
        return rides

    def _coverage_checks(self) -> list[tuple[float, str, tuple]]:
        covered = self.rng.random((len(RUSH_ENDS_MIN), len(self.bus_list)))
        coverage = self.scenario.transit.coverage
        return [
            (float(minute), "connect", (b, bool(covered[k, b] < coverage)))
            for k, minute in enumerate(RUSH_ENDS_MIN)
            for b in range(len(self.bus_list))
        ]

    def _do_purchase(self, when: dt.datetime, who: int, shop: int, amount_fen: int) -> str:
        resident = self.resident_list[who]
        merchant = self.merchant_list[resident.regular_merchants[shop]]
        return resident.shop(when, merchant, amount_fen)

    def _do_ride(self, when: dt.datetime, who: int, bus: int) -> str:
        return self.resident_list[who].ride(when, self.bus_list[bus])

    def _do_connect(self, when: dt.datetime, bus: int, covered: bool) -> None:
        self.bus_list[bus].connect(when, covered)

    def park_buses(self) -> None:
        """At the depot a reader uploads everything if the depot has a network; a bus
        whose depot has none stays offline until its next connection (days, maybe).
        On the last day every reader is collected, so no tap is left behind."""
        when = self.clock(DEPOT_MIN)
        last_day = self.day + 1 >= self.scenario.city.days
        covered = self.rng.random(len(self.bus_list)) < self.scenario.transit.depot_coverage
        for bus, has_network in zip(self.bus_list, covered, strict=True):
            bus.connect(when, covered=bool(has_network) or last_day)

    def close_settlement_window(self) -> None:
        when = self.clock(DEPOT_MIN + 30)
        closed = self.log.call(
            when,
            self.day,
            0,
            "platform",
            "close_settlement",
            "app",
            0,
            self.client.close_settlement,
        )
        if closed.ok:
            frame = closed.value.frame().with_columns(pl.lit(self.day).alias("day"))
            self.settlement_rows.extend(frame.to_dicts())

    def record_tap(self, outcome: TapOutcome, tapped_at_s: int, uploaded_at_s: int) -> None:
        row = {k: getattr(outcome, k) for k in TAP_COLUMNS if hasattr(outcome, k)}
        row.update(
            day=self.day,
            tapped_at_s=tapped_at_s,
            uploaded_at_s=uploaded_at_s,
            lag_s=uploaded_at_s - tapped_at_s,
        )
        self.tap_rows.append(row)

    def note_reader_rejection(self, reason: str | None) -> None:
        key = reason or "unknown"
        self.reader_rejections[key] = self.reader_rejections.get(key, 0) + 1

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
