"""Who takes up mobile payment, with which wallet, and who gives up on it.

Daily, for every resident who can (owns a smartphone, can use the app) and does not
use a wallet yet:

    P(adopt) = innovation + imitation x (share of ties using a wallet)
               + promotion_boost (on a day a campaign runs)

A new user picks the rival wallet with P = (1 - w) x rival_share + w x (share of
their adopted ties on the rival), w = rival_imitation; otherwise this platform's.
A failed payment (dead zone, decline) makes the resident stop using the app with
P = lapse_after_failure; a lapsed resident keeps the wallet and adopts again by the
same rule. Everything is vectorised over residents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.network import adopted_share
from agents.population import Population
from scenarios.schema import Scenario

NO_WALLET, OURS, RIVAL = 0, 1, 2


@dataclass
class NewUsers:
    ours: np.ndarray  # resident indices choosing this platform's wallet
    rival: np.ndarray


class Adoption:
    """The adoption state of every resident and the daily rule that moves it."""

    def __init__(self, scenario: Scenario, people: Population, rng: np.random.Generator) -> None:
        rules = scenario.adoption
        self.scenario, self.people, self.rng = scenario, people, rng
        self.innovation = people.per_resident(rules.innovation)
        self.imitation = people.per_resident(rules.imitation)
        self.wallet = np.zeros(people.size, dtype=np.int8)  # chosen wallet, kept after a lapse
        self.active = np.zeros(people.size, dtype=bool)  # uses the app now
        self.lapses = 0

    @property
    def able(self) -> np.ndarray:
        return self.people.smartphone & self.people.literate

    def initial(self) -> NewUsers:
        share = self.scenario.adoption.initial_share
        return self._choose(np.flatnonzero(self.able & (self.rng.random(self.people.size) < share)))

    def spread(self, campaign_day: bool) -> NewUsers:
        """Today's new (or returning) users, each with the wallet they pick."""
        people = self.people
        share = adopted_share(people.ties, people.tie_count, self.active)
        chance = self.innovation + self.imitation * share
        if campaign_day:
            chance = chance + self.scenario.adoption.promotion_boost
        draws = self.rng.random(people.size)
        return self._choose(np.flatnonzero(~self.active & self.able & (draws < chance)))

    def set_up(self, who: np.ndarray) -> NewUsers:
        """Residents a class or volunteer just set the app up with, if not using one."""
        who = who[~self.active[who]]
        return self._choose(who)

    def _choose(self, who: np.ndarray) -> NewUsers:
        returning = self.wallet[who] != NO_WALLET  # a lapsed user goes back to their wallet
        fresh = who[~returning]
        rules = self.scenario.competition
        rival_ties = adopted_share(
            self.people.ties, self.people.tie_count, self.active & (self.wallet == RIVAL)
        )
        adopted_ties = adopted_share(self.people.ties, self.people.tie_count, self.active)
        tie_rival = np.divide(
            rival_ties, adopted_ties, out=np.zeros_like(rival_ties), where=adopted_ties > 0
        )[fresh]
        p_rival = (
            1 - rules.rival_imitation
        ) * rules.rival_share + rules.rival_imitation * tie_rival
        self.wallet[fresh] = np.where(self.rng.random(fresh.size) < p_rival, RIVAL, OURS)
        return NewUsers(who[self.wallet[who] == OURS], who[self.wallet[who] == RIVAL])

    def start(self, who: np.ndarray) -> None:
        self.active[who] = True

    def after_failure(self, resident: int) -> bool:
        """A bad experience; returns whether the resident gives up on the app."""
        if self.rng.random() < self.scenario.adoption.lapse_after_failure:
            self.active[resident] = False
            self.lapses += 1
            return True
        return False
