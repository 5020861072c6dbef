"""How residents who cannot use the app learn it: classes, volunteers, family.

DOMAIN.md: many elderly residents cannot use a smartphone; training classes run by
student volunteers, family help and community programmes change that slowly. Each
day (vectorised over residents):

- on a class day, ``classes_per_week / len(class_weekdays)`` classes of
  ``class_capacity`` seats take smartphone owners who cannot use the app, elderly
  first, chosen at random; each attendee learns with P ``class_success``;
- ``volunteer_visits_per_week / 7`` home visits teach one such resident each;
- a resident whose household has an app user learns with P ``family_help`` a day,
  and one without a smartphone is given one with P ``family_phone`` a day.

A class or a volunteer sets the app up with the learner, so those who learn there
start using it that day (``Lessons.set_up``); family learners adopt by the usual rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agents.population import Population
from scenarios.schema import SEGMENTS, Scenario

ELDERLY = SEGMENTS.index("elderly")


@dataclass
class Lessons:
    """What the day's teaching did (counts of residents)."""

    class_seats: int = 0
    learned_in_class: int = 0
    learned_from_volunteers: int = 0
    learned_from_family: int = 0
    phones_given: int = 0
    set_up: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def learned(self) -> int:
        return self.learned_in_class + self.learned_from_volunteers + self.learned_from_family


def teach(
    scenario: Scenario,
    people: Population,
    active: np.ndarray,
    weekday: str,
    day: int,
    rng: np.random.Generator,
) -> Lessons:
    rules, lessons = scenario.elderly, Lessons()
    if weekday in rules.class_weekdays and rules.classes_per_week:
        per_day = rules.classes_per_week / len(rules.class_weekdays)
        seats = int(per_day * rules.class_capacity)
        attendees = _learners(people, seats, rng)
        lessons.class_seats = seats
        in_class = _learn(people, attendees, rules.class_success, rng)
        lessons.learned_in_class = int(in_class.size)
        lessons.set_up = in_class
    visits = _visits_today(rules.volunteer_visits_per_week, day)
    visited = _learn(people, _learners(people, visits, rng), 1.0, rng)
    lessons.learned_from_volunteers = int(visited.size)
    lessons.set_up = np.concatenate([lessons.set_up, visited])
    helped = people.households_using(active)
    can_learn = helped & people.smartphone & ~people.literate
    family = _learn(people, np.flatnonzero(can_learn), rules.family_help, rng)
    lessons.learned_from_family = int(family.size)
    gift = np.flatnonzero(
        helped & ~people.smartphone & (rng.random(people.size) < rules.family_phone)
    )
    people.smartphone[gift] = True
    lessons.phones_given = int(gift.size)
    return lessons


def _visits_today(per_week: int, day: int) -> int:
    """Spread a weekly count over the days so that every week gets exactly ``per_week``."""
    return (per_week * (day + 1)) // 7 - (per_week * day) // 7


def _learners(people: Population, seats: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``seats`` residents who own a smartphone but cannot use the app, elderly first."""
    if seats <= 0:
        return np.zeros(0, dtype=np.int64)
    waiting = np.flatnonzero(people.smartphone & ~people.literate)
    elderly_first = np.lexsort((rng.random(waiting.size), people.segment_of[waiting] != ELDERLY))
    return waiting[elderly_first[:seats]]


def _learn(
    people: Population, who: np.ndarray, success: float, rng: np.random.Generator
) -> np.ndarray:
    learned = who[rng.random(who.size) < success]
    people.literate[learned] = True
    return learned
