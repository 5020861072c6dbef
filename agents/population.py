"""The synthetic population: who lives where, works where, rides what, and knows whom.

Everything here is numpy over all residents at once, drawn from the model's seeded
generator, so the same seed gives the same city and a million residents take
seconds. Residents of a household are contiguous indices and share a home cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from agents.network import degrees, small_world
from scenarios.schema import SEGMENTS, PerSegment, Scenario

WORKMATES_PER_WORKER = 4  # ties to the next workers on the workplace roster
HOUSEHOLD_SIZE_MAX = 8


@dataclass
class Population:
    """One row per resident in every array; ``ties`` is the symmetric social network."""

    segment_of: np.ndarray  # index into SEGMENTS
    household_of: np.ndarray
    home_cell: np.ndarray
    work_cell: np.ndarray
    commuter: np.ndarray  # rides the bus to work on workdays
    route_of: np.ndarray  # the route between home and work cells
    transit_card: np.ndarray  # holds a physical transit card
    smartphone: np.ndarray
    literate: np.ndarray  # can use the app unaided
    ties: sp.csr_matrix
    tie_count: np.ndarray

    @property
    def size(self) -> int:
        return int(self.segment_of.size)

    def per_resident(self, table: PerSegment) -> np.ndarray:
        """Spread a per-segment parameter to one value per resident."""
        return np.array([table.get(s) for s in SEGMENTS])[self.segment_of]

    def households_using(self, active: np.ndarray) -> np.ndarray:
        """Per resident: does anyone else in the household use the app?"""
        users = np.bincount(
            self.household_of, weights=active, minlength=self.household_of.max() + 1
        )
        return (users[self.household_of] - active) > 0


def build_population(scenario: Scenario, rng: np.random.Generator) -> Population:
    city, transit, net = scenario.city, scenario.transit, scenario.network
    n = city.residents
    shares = [city.segment_shares.get(s) for s in SEGMENTS]
    segment_of = rng.choice(len(SEGMENTS), size=n, p=shares).astype(np.int8)
    household_of = _households(n, net.household_size_mean, rng)
    cells = transit.neighbourhoods
    home_cell = rng.integers(0, cells, household_of.max() + 1)[household_of]
    work_cell = rng.integers(0, cells, n)
    by_segment = np.array([transit.rider_share.get(s) for s in SEGMENTS])[segment_of]
    commuter = rng.random(n) < by_segment
    route_of = (home_cell * 31 + work_cell * 17) % transit.routes
    transit_card = rng.random(n) < transit.transit_card_share
    adoption = scenario.adoption
    smartphone = (
        rng.random(n) < np.array([adoption.smartphone_share.get(s) for s in SEGMENTS])[segment_of]
    )
    literate = (
        rng.random(n) < np.array([adoption.digital_literacy.get(s) for s in SEGMENTS])[segment_of]
    )
    ties = social_ties(
        segment_of,
        household_of,
        net.mean_degree,
        net.rewire_probability,
        net.workplace_size_mean,
        rng,
    )
    return Population(
        segment_of,
        household_of,
        home_cell,
        work_cell,
        commuter,
        route_of,
        transit_card,
        smartphone,
        literate,
        ties,
        degrees(ties),
    )


def _households(n: int, size_mean: float, rng: np.random.Generator) -> np.ndarray:
    """Household id per resident: sizes 1 + Poisson(mean - 1), capped, filled in order."""
    sizes = 1 + np.minimum(rng.poisson(size_mean - 1, n), HOUSEHOLD_SIZE_MAX - 1)
    return np.repeat(np.arange(n), sizes)[:n]


def social_ties(
    segment_of: np.ndarray,
    household_of: np.ndarray,
    mean_degree: int,
    rewire_probability: float,
    workplace_size_mean: float,
    rng: np.random.Generator,
) -> sp.csr_matrix:
    """Households (everyone at home), workplaces (youth and adults) and a small world."""
    n = segment_of.size
    pairs = [_household_pairs(household_of), _workplace_pairs(segment_of, workplace_size_mean, rng)]
    world = small_world(n, mean_degree, rewire_probability, rng).tocoo()
    source = np.concatenate([p[0] for p in pairs] + [world.row])
    target = np.concatenate([p[1] for p in pairs] + [world.col])
    ones = np.ones(source.size * 2, dtype=np.float32)
    adj = sp.coo_matrix((ones, (np.r_[source, target], np.r_[target, source])), shape=(n, n))
    adj = adj.tocsr()
    adj.data[:] = 1.0  # a tie counts once, however many layers share it
    return adj


def _household_pairs(household_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sources, targets = [], []
    for gap in range(1, HOUSEHOLD_SIZE_MAX):
        i = np.arange(household_of.size - gap)
        same = household_of[i] == household_of[i + gap]
        sources.append(i[same])
        targets.append(i[same] + gap)
    return np.concatenate(sources), np.concatenate(targets)


def _workplace_pairs(
    segment_of: np.ndarray, size_mean: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each worker tied to the next few on the roster of a randomly drawn workplace."""
    workers = np.flatnonzero(segment_of != SEGMENTS.index("elderly"))
    places = max(1, int(workers.size / size_mean))
    workplace = rng.integers(0, places, workers.size)
    order = np.argsort(workplace, kind="stable")
    roster, place = workers[order], workplace[order]
    sources, targets = [], []
    for gap in range(1, WORKMATES_PER_WORKER + 1):
        same = place[:-gap] == place[gap:] if gap < place.size else np.zeros(0, dtype=bool)
        sources.append(roster[:-gap][same])
        targets.append(roster[gap:][same])
    return np.concatenate(sources), np.concatenate(targets)
