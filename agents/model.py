"""CityModel: one step is one simulated day of a city's move to mobile payment.

Each day: residents learn the app (classes, volunteers, family), decide whether to
adopt (vectorised over the social network), new users open wallets and claim the
e-bus card, merchants decide on the collection code, then the day's purchases, bus
trips, hospital visits, bills and services run in time order, each through the
platform client when the resident and the other side use this platform, else by
rival wallet, transit card or cash. Buses park, the settlement window closes, and
the day's counters become one row of ``daily.parquet``. See agents/README.md (ODD).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import mesa
import numpy as np
import polars as pl
from faker import Faker

from agents import daily, households, patients, schedule
from agents.adoption import OURS, Adoption
from agents.buses import Bus
from agents.learning import teach
from agents.merchants import Merchant
from agents.population import build_population
from agents.recorder import EventLog, SealedLog
from agents.residents import Resident
from agents.ride_codes import RideCodes
from platform_stub.clearing import CHINA_TZ, TapOutcome
from platform_stub.client import PlatformClient
from scenarios.schema import SEGMENTS, Scenario

ONBOARDING_MIN = 8 * 60
DEPOT_MIN = 23 * 60
class SimClock:
    """Simulated local time of the activity under way, shared with the platform (its
    clock in-process, a request header over HTTP) from before the first call."""

    def __init__(self, start: dt.date) -> None:
        self.now = dt.datetime.combine(start, dt.time())

    def aware(self) -> dt.datetime:
        return self.now.replace(tzinfo=CHINA_TZ)


class CityModel(mesa.Model):
    """Residents, merchants, buses, hospitals and billers of a scaled city, calling
    the platform through ``client``."""

    def __init__(
        self,
        scenario: Scenario,
        client: PlatformClient,
        seed: int | None = None,
        sim_clock: SimClock | None = None,
    ) -> None:
        super().__init__(seed=scenario.seed if seed is None else seed)
        self.scenario = scenario
        self.client = client
        self.log = EventLog()
        self.day = 0
        self._midnight_of: tuple[int, dt.datetime] = (-1, dt.datetime.min)
        self.sim_clock = sim_clock or SimClock(scenario.city.start_date)
        self.today: Counter[str] = Counter()
        self.daily_rows: list[dict[str, Any]] = []
        self.taps = SealedLog(daily.TAP_SCHEMA)  # rows of taps.parquet
        self.settlement_rows: list[dict[str, Any]] = []
        self.reader_rejections: dict[str, int] = {}
        self.ride_codes = RideCodes()
        self.rider_key_seed = self.rng.bytes(32)
        self.people = build_population(scenario, self.rng)
        self.adoption = Adoption(scenario, self.people, self.rng)
        faker = Faker("zh_CN")
        faker.seed_instance(int(self.rng.integers(2**31)))
        self.kind_names = tuple(scenario.merchants.kinds)
        self.merchant_list = self._make_merchants(faker)
        self.resident_list = self._make_residents(faker)
        self.bus_list = self._make_buses()
        self.reader_order = self.rng.permutation(len(self.bus_list))
        self.hospitals = patients.register_hospitals(self, self.clock(0))
        self.billers, self.provider = households.register_providers(self, self.clock(0))
        self._adopt_initial()

    # -- construction -------------------------------------------------------------

    def _make_merchants(self, faker: Faker) -> list[Merchant]:
        rules = self.scenario.merchants
        shares = np.array([rules.kinds[k].share for k in self.kind_names])
        kinds = self.rng.choice(len(shares), size=self.scenario.city.merchants, p=shares)
        underground = (
            self.rng.random(kinds.size)
            < np.array([rules.kinds[k].underground_share for k in self.kind_names])[kinds]
        )
        return [
            Merchant(self, i, faker.company()[:32], self.kind_names[k], bool(u))
            for i, (k, u) in enumerate(zip(kinds, underground, strict=True))
        ]

    def _make_residents(self, faker: Faker) -> list[Resident]:
        n = self.people.size
        regulars: dict[str, np.ndarray] = {}
        for kind in self.kind_names:
            of_kind = [m.index for m in self.merchant_list if m.kind == kind]
            if of_kind:
                regulars[kind] = np.array(of_kind)[self.rng.integers(0, len(of_kind), n)]
        return [
            Resident(
                self,
                i,
                SEGMENTS[self.people.segment_of[i]],
                faker.name(),
                {k: int(v[i]) for k, v in regulars.items()},
            )
            for i in range(n)
        ]

    def _make_buses(self) -> list[Bus]:
        """One operator; each bus has its own reader with its own credential."""
        when, transit = self.clock(0), self.scenario.transit
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
        for i in range(transit.buses):
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
            route = i % transit.routes
            buses.append(
                Bus(
                    self,
                    i,
                    reg.value.token,
                    f"R{reg.value.participant_id}",
                    route,
                    brt=route < transit.brt_routes,
                )
            )
        return buses

    def _adopt_initial(self) -> None:
        when = self.clock(ONBOARDING_MIN)
        for merchant in self.merchant_list:
            if self.rng.random() < self.scenario.merchants.initial_share:
                merchant.adopt(when)
        self._start_using(self.adoption.initial())

    # -- one day ------------------------------------------------------------------

    def step(self) -> None:
        date = self.date
        weekday = date.strftime("%a")
        free_day = self._free_ride_day(date)
        self.fit_readers(date)
        lessons = teach(
            self.scenario, self.people, self.adoption.active, weekday, self.day, self.rng
        )
        self.today["learned"] += lessons.learned
        self._start_using(self.adoption.set_up(lessons.set_up))
        self._start_using(self.adoption.spread(free_day or self._promotion_day(date)))
        self.claim_cards()
        self.open_shops()
        self.run_activities(weekday, free_day)
        self.park_buses()
        self.close_settlement_window()
        self.close_day()
        self.day += 1
        self.running = self.day < self.scenario.city.days

    @property
    def now(self) -> dt.datetime:
        """Simulated local time of the activity under way."""
        return self.sim_clock.now

    @now.setter
    def now(self, when: dt.datetime) -> None:
        self.sim_clock.now = when

    @property
    def date(self) -> dt.date:
        return self.scenario.city.start_date + dt.timedelta(days=self.day)

    @property
    def scale_up(self) -> float:
        return self.scenario.city.scale_factor

    @staticmethod
    def unix_s(when: dt.datetime) -> int:
        """Simulated local time (China, UTC+8) as the unix seconds codes carry."""
        return int(when.replace(tzinfo=CHINA_TZ).timestamp())

    def clock(self, minute_of_day: float) -> dt.datetime:
        return self._midnight() + dt.timedelta(minutes=float(minute_of_day))

    def _midnight(self) -> dt.datetime:
        """Today's 00:00, worked out once a day: ``clock`` runs for every activity."""
        if self._midnight_of[0] != self.day:
            start = dt.datetime.combine(self.scenario.city.start_date, dt.time())
            self._midnight_of = (self.day, start + dt.timedelta(days=self.day))
        return self._midnight_of[1]

    def count(self, key: str, n: int = 1) -> None:
        self.today[key] += n

    def cannot_pay(self, segment: str) -> None:
        """A resident who wanted to pay could not: no app, and the merchant takes no cash."""
        self.today["cannot_pay"] += 1
        self.today["cannot_pay_total"] += 1
        if segment == "elderly":
            self.today["cannot_pay_elderly"] += 1

    def _free_ride_day(self, date: dt.date) -> bool:
        transit = self.scenario.transit
        return (
            transit.free_ride_budget_fen > 0 and date.strftime("%a") in transit.free_ride_weekdays
        )

    def _promotion_day(self, date: dt.date) -> bool:
        return any(
            p.start_date <= date <= p.end_date
            and (not p.weekdays or date.strftime("%a") in p.weekdays)
            for p in self.scenario.promotions
        )

    def reader_share(self, date: dt.date) -> float:
        """Share of buses with a QR reader on ``date``: linear between rollout points."""
        points = self.scenario.transit.reader_rollout
        if not points:
            return 1.0
        start = points[0].date
        days = [(p.date - start).days for p in points]
        return float(np.interp((date - start).days, days, [p.share for p in points]))

    def fit_readers(self, date: dt.date) -> None:
        """Readers go in, in a fixed random order, as the rollout says; BRT had them
        from the start."""
        fitted = round(self.reader_share(date) * len(self.bus_list))
        for rank, b in enumerate(self.reader_order):
            bus = self.bus_list[b]
            bus.has_reader = bus.brt or rank < fitted

    def bus_on_route(self, routes: np.ndarray) -> np.ndarray:
        """A random bus of each route (route r runs buses r, r + routes, ...)."""
        transit = self.scenario.transit
        per_route = max(1, transit.buses // transit.routes)
        return (
            routes + transit.routes * self.rng.integers(0, per_route, routes.size)
        ) % transit.buses

    def card_holders_mask(self) -> np.ndarray:
        return np.array([r.credential is not None for r in self.resident_list])

    def _start_using(self, new: Any) -> None:
        """New users of this platform open a wallet through the day; rival users start."""
        self.adoption.start(new.rival)
        minutes = ONBOARDING_MIN + self.rng.uniform(0, 12 * 60, new.ours.size)
        for i in np.argsort(minutes, kind="stable"):
            resident = self.resident_list[new.ours[i]]
            self.now = self.clock(minutes[i])
            if resident.onboard(self.now):
                self.adoption.start(np.array([resident.index]))

    def claim_cards(self) -> None:
        """App users without the e-bus card claim it at ``card_claims_per_day``."""
        rate = self.scenario.transit.card_claims_per_day
        if rate <= 0:
            return
        users = self.adoption.active & (self.adoption.wallet == OURS) & ~self.card_holders_mask()
        claim = np.flatnonzero(users & (self.rng.random(users.size) < rate))
        self.now = self.clock(ONBOARDING_MIN)
        for i in claim:
            self.resident_list[i].claim_bus_card(self.now)

    def open_shops(self) -> None:
        when = self.clock(schedule.MERCHANT_OPENING_MIN)
        for merchant in self.merchant_list:
            merchant.consider_adopting(when)

    def run_activities(self, weekday: str, free_day: bool) -> None:
        """The day's purchases, trips, visits, errands and reader uploads, in time order."""
        activities = sorted(
            [
                *schedule.purchases(self),
                *schedule.rides(self, weekday, free_day),
                *schedule.coverage_checks(self),
                *patients.todays_visits(self),
                *households.todays_errands(self),
            ],
            key=lambda a: a[0],
        )
        self._plan_rides(activities)
        for minute, kind, args in activities:
            self.now = self.clock(minute)
            getattr(self, f"_do_{kind}")(self.now, *args)

    def _plan_rides(self, activities: list[tuple[float, str, tuple]]) -> None:
        """Every ride's nonce, and its code signed and verified ahead where it pays."""
        rides = [
            (self.unix_s(self.clock(minute)), self.resident_list[args[0]], self.bus_list[args[1]])
            for minute, kind, args in activities
            if kind == "ride"
        ]
        self.ride_codes.plan(self.rng, rides)

    def _do_purchase(
        self, when: dt.datetime, who: int, kind: str, amount_fen: int, rush: bool
    ) -> None:
        resident = self.resident_list[who]
        if kind in resident.regulars:
            resident.shop(when, self.merchant_list[resident.regulars[kind]], amount_fen, rush)

    def _do_ride(self, when: dt.datetime, who: int, bus: int) -> None:
        self.resident_list[who].ride(when, self.bus_list[bus], self.ride_codes.take(who))

    def _do_connect(self, when: dt.datetime, bus: int, covered: bool) -> None:
        self.bus_list[bus].connect(when, covered or self.bus_list[bus].brt)

    def _do_visit(self, when: dt.datetime, who: int, hospital: int) -> None:
        patients.visit(self, self.resident_list[who], self.hospitals[hospital], when)

    def _do_bill(self, when: dt.datetime, who: int, biller: int) -> None:
        households.pay_bill(self, self.resident_list[who], self.billers[biller], when)

    def _do_service(self, when: dt.datetime, who: int) -> None:
        households.book_service(self, self.resident_list[who], when)

    def park_buses(self) -> None:
        """At the depot a reader uploads everything if the depot has a network; a bus
        whose depot has none stays offline until its next connection (days, maybe).
        On the last day every reader is collected, so no tap is left behind."""
        when = self.clock(DEPOT_MIN)
        last_day = self.day + 1 >= self.scenario.city.days
        covered = self.rng.random(len(self.bus_list)) < self.scenario.transit.depot_coverage
        for bus, has_network in zip(self.bus_list, covered, strict=True):
            bus.connect(when, covered=bool(has_network) or last_day or bus.brt)

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

    def note_reader_rejection(self, reason: str | None) -> None:
        key = reason or "unknown"
        self.reader_rejections[key] = self.reader_rejections.get(key, 0) + 1

    def record_tap(self, outcome: TapOutcome, tapped_at_s: int, uploaded_at_s: int) -> None:
        """One row of ``taps.parquet``; a ride on credit or paid by a campaign is counted."""
        self.taps.append(daily.tap_row(outcome, self.day, tapped_at_s, uploaded_at_s))
        if getattr(outcome, "credit_fen", 0):
            self.today["pay_later_rides"] += 1
        self.today["promo_cost_fen"] += getattr(outcome, "promo_fen", 0) or 0

    def close_day(self) -> None:
        """The day's counters become one row of ``daily.parquet``; a new day starts at 0;
        the day's events and taps are sealed into frames (memory)."""
        self.daily_rows.append(daily.day_row(self))
        self.today.clear()
        self.log.seal()
        self.taps.seal()
