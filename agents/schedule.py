"""The day's timetable: purchases, bus trips and reader connections, as
(minute of day, kind, arguments) rows the model runs in time order.

Purchases follow three peaks; the breakfast peak goes to breakfast stalls, the others
to the other kinds by their shares. Commuters ride to work and back on workdays
(departure spread ``departure_spread_min``); everyone takes occasional off-peak
trips; on a free-ride day holders of the e-bus card take
Poisson(``free_ride_extra_trips``) extra trips, because free fares pull in leisure
trips. Readers look for a network after each rush hour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from agents.model import CityModel

Activity = tuple[float, str, tuple]
BREAKFAST, LUNCH, EVENING = 0, 1, 2
# Purchase peaks: (mean minute of day, spread, weight).
SHOPPING_PEAKS = ((7 * 60 + 30, 40, 0.4), (12 * 60 + 15, 40, 0.3), (18 * 60 + 30, 60, 0.3))
MERCHANT_OPENING_MIN = 6 * 60
DAY_END_MIN = 22 * 60
COMMUTES = (8 * 60, 18 * 60)  # mean departure to work and home
OFF_PEAK_MIN = (9 * 60 + 30, 16 * 60 + 30)
RUSH_ENDS_MIN = (9 * 60 + 30, 19 * 60 + 30)
WORKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri")


def purchases(model: CityModel) -> list[Activity]:
    people, spend = model.people, model.scenario.spending
    per_day = people.per_resident(spend.purchases_per_day)
    who = np.repeat(np.arange(per_day.size), model.rng.poisson(per_day))
    centres, spreads, weights = np.array(SHOPPING_PEAKS, dtype=float).T
    peak = model.rng.choice(len(weights), size=who.size, p=weights / weights.sum())
    minutes = np.clip(
        model.rng.normal(centres[peak], spreads[peak]), MERCHANT_OPENING_MIN, DAY_END_MIN
    )
    kinds = model.kind_names
    other = [k for k in kinds if k != "breakfast_stall"]
    weights = np.array([model.scenario.merchants.kinds[k].share for k in other])
    kind = np.array(other)[model.rng.choice(len(other), size=who.size, p=weights / weights.sum())]
    if "breakfast_stall" in kinds:
        kind = np.where(peak == BREAKFAST, "breakfast_stall", kind)
    medians = np.array([model.scenario.merchants.kinds[k].amount_fen_median for k in kind])
    amounts = np.maximum(1, np.rint(
        medians * np.exp(model.rng.normal(0, spend.amount_sigma, who.size))
    )).astype(np.int64)  # fmt: skip
    rush = peak == BREAKFAST
    return [
        (float(minutes[i]), "purchase", (int(who[i]), str(kind[i]), int(amounts[i]), bool(rush[i])))
        for i in range(who.size)
    ]


def rides(model: CityModel, weekday: str, free_day: bool) -> list[Activity]:
    people, transit, rng = model.people, model.scenario.transit, model.rng
    trips: list[Activity] = []
    commuting = people.commuter if weekday in WORKDAYS else np.zeros(people.size, dtype=bool)
    riders = np.flatnonzero(commuting)
    for centre in COMMUTES:
        minutes = rng.normal(centre, transit.departure_spread_min, riders.size)
        buses = model.bus_on_route(people.route_of[riders])
        trips += [
            (float(m), "ride", (int(r), int(b)))
            for m, r, b in zip(minutes, riders, buses, strict=True)
        ]
    rate = np.where(commuting, 0.0, people.per_resident(transit.occasional_trips_per_day))
    if free_day:
        rate = rate + model.card_holders_mask() * transit.free_ride_extra_trips
    count = rng.poisson(rate)
    who = np.repeat(np.arange(people.size), count)
    minutes = rng.uniform(*OFF_PEAK_MIN, who.size)
    routes = rng.integers(0, transit.routes, who.size)
    buses = model.bus_on_route(routes)
    trips += [
        (float(m), "ride", (int(r), int(b))) for m, r, b in zip(minutes, who, buses, strict=True)
    ]
    return trips


def coverage_checks(model: CityModel) -> list[Activity]:
    covered = model.rng.random((len(RUSH_ENDS_MIN), len(model.bus_list)))
    coverage = model.scenario.transit.coverage
    return [
        (float(minute), "connect", (b, bool(covered[k, b] < coverage)))
        for k, minute in enumerate(RUSH_ENDS_MIN)
        for b in range(len(model.bus_list))
    ]
