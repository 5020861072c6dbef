"""Credit: a score of 350-950 (the Sesame kind) built from a resident's payment history.

The score gates the services a city offers on trust: ride first pay later on the bus,
treat first pay later at the hospital, deposit-free bike rental. It is computed when
asked, from the ledger and the feature tables, so it can never disagree with them.

Rules (each is a constant below, and each factor is reported by name in
``CreditScore.factors``, zero when it does not apply):

- ``base``: SCORE_BASE = 550 for every resident.
- ``tenure``: +TENURE_POINTS_MAX (100) x days / TENURE_DAYS_FULL (365), whole points,
  at most +100. Days count from the first time the credit service saw the resident (a
  score, a gate, or a hospital visit asks), on ``Service.clock``, which defaults to the
  platform's clock (simulations set their own). The ledger's timestamps are wall-clock
  records, not the simulation's clock, so they are not used.
- ``on_time_payments``: +ON_TIME_POINTS_EACH (10) per on-time repayment, at most
  +ON_TIME_POINTS_MAX (150): each transit debt repayment (a ``debt_repayment``
  transfer out of the wallet) and each bill paid on or before its due date.
- ``hospital_settled``: +HOSPITAL_POINTS_EACH (20) per hospital visit finalized with
  its bill paid, at most +HOSPITAL_POINTS_MAX (100).
- ``transit_debt``: TRANSIT_DEBT_POINTS (-150) while the bus card's
  ``transit_credit:<id>`` account shows debt (debits posted > credits posted).
- ``overdue_bills``: OVERDUE_POINTS_EACH (-60) per bill unpaid after its due date, at
  most OVERDUE_POINTS_MIN (-240).
- ``late_payments``: LATE_POINTS_EACH (-15) per bill paid after its due date, at most
  LATE_POINTS_MIN (-90).

The score is the sum clamped to SCORE_MIN..SCORE_MAX (350..950). So a new resident
scores 550; one with a year's tenure and three bills paid on time 680; a new resident
who owes the bus a fare 400, until a top-up repays it.

Gates (``GATE_THRESHOLDS``; a service is open at a score >= its threshold):
pay_later_transit 600, treat_first_pay_later 650, deposit_free 700. A new resident
gets none; 183 days of tenure, or five on-time payments, opens ride first pay later.

Ride first pay later's credit line (``credit_limit_fen``): 0 below 600; from
CREDIT_LIMIT_FEN_MIN (1,000 fen, five flat fares, the transit service's line today)
at 600, linearly up to CREDIT_LIMIT_FEN_MAX (3,000 fen) at 950, rounded down to whole
yuan.

Every count reads at most ``COUNTED_MAX`` rows; every cap is far below it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from fastapi import FastAPI

from platform_stub.api import Token
from platform_stub.exceptions import InvalidRequest
from platform_stub.features import bills, hospital_visits
from platform_stub.features.bills import count_rows, participant_of_kind, retrying
from platform_stub.features.paycodes import create_tables
from platform_stub.frozen import frozen
from platform_stub.openapi_errors import errors
from platform_stub.storage import Tx

if TYPE_CHECKING:
    from platform_stub.service import Participant, Platform

SCORE_MIN = 350
SCORE_MAX = 950
SCORE_BASE = 550
TENURE_POINTS_MAX = 100
TENURE_DAYS_FULL = 365
ON_TIME_POINTS_EACH = 10
ON_TIME_POINTS_MAX = 150
HOSPITAL_POINTS_EACH = 20
HOSPITAL_POINTS_MAX = 100
TRANSIT_DEBT_POINTS = -150
OVERDUE_POINTS_EACH = -60
OVERDUE_POINTS_MIN = -240
LATE_POINTS_EACH = -15
LATE_POINTS_MIN = -90

TREAT_FIRST = "treat_first_pay_later"
GATE_THRESHOLDS: dict[str, int] = {
    "pay_later_transit": 600,
    "treat_first_pay_later": 650,
    "deposit_free": 700,
}
CREDIT_LIMIT_FEN_MIN = 1_000
CREDIT_LIMIT_FEN_MAX = 3_000
CREDIT_LIMIT_STEP_FEN = 100
DAY_S = 86_400
REPAYMENT_KIND = "debt_repayment"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS credit_residents (
        participant_id BIGINT PRIMARY KEY REFERENCES participants(id),
        first_seen_at_s BIGINT NOT NULL)""",
]


@frozen
class CreditScore:
    """The score and the points each rule gave or took (see the module docstring)."""

    score: int
    factors: dict[str, int]


class Service:
    """Score residents from their history and gate the services offered on trust."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.clock: Callable[[], dt.datetime] = lambda: platform.clock()  # tests set their own
        # A city sets its own thresholds (a scenario's [credit] section); a service
        # switched off gets a threshold above SCORE_MAX, so no score opens it.
        self.thresholds: dict[str, int] = dict(GATE_THRESHOLDS)
        # The score reads the bill and visit tables, so it makes sure they exist.
        create_tables(platform, [*bills.SCHEMA, *hospital_visits.SCHEMA, *SCHEMA])

    def score(self, participant_id: int) -> CreditScore:
        """The resident's score now; the first call starts the resident's tenure."""
        now = self.clock()
        return retrying(lambda: self._score_once(participant_id, now))

    def my_score(self, token: str) -> CreditScore:
        """The calling resident's own score: nobody reads another's."""
        return self.score(self.platform.resident(token).id)

    def gate(self, participant_id: int, service: str) -> bool:
        """Whether the resident's score opens ``service`` (one of GATE_THRESHOLDS)."""
        if service not in GATE_THRESHOLDS:
            raise InvalidRequest("invalid_request",
                                 f"service must be one of {sorted(GATE_THRESHOLDS)}")
        return self.passes(self.score(participant_id).score, service)

    def passes(self, score: int, service: str) -> bool:
        return score >= self.thresholds[service]

    def credit_limit_fen(self, participant_id: int) -> int:
        """The ride-first-pay-later line this resident's score earns."""
        return limit_for(self.score(participant_id).score, self.thresholds["pay_later_transit"])

    def configure(
        self, pay_later: bool, transit_min_score: int, treat_first_min_score: int
    ) -> None:
        """Set the city's gates; ``pay_later=False`` closes both pay-later services."""
        closed = SCORE_MAX + 1
        self.thresholds["pay_later_transit"] = transit_min_score if pay_later else closed
        self.thresholds[TREAT_FIRST] = treat_first_min_score if pay_later else closed

    def _score_once(self, participant_id: int, now: dt.datetime) -> CreditScore:
        with self.platform.db.transaction() as tx:
            who = participant_of_kind(tx, participant_id, "resident")
            factors = self._factors(tx, who, now)
        return CreditScore(clamp(sum(factors.values())), factors)

    def _factors(self, tx: Tx, who: Participant, now: dt.datetime) -> dict[str, int]:
        record = bills.history(tx, who.id, now.date())
        repaid = count_rows(tx, "SELECT 1 FROM transfers WHERE debit_account_id = ?"
                            " AND kind = ?", (who.account_id, REPAYMENT_KIND))
        days = (int(now.timestamp()) - _first_seen_s(tx, who.id, now)) // DAY_S
        return {
            "base": SCORE_BASE,
            "tenure": min(TENURE_POINTS_MAX, TENURE_POINTS_MAX * max(0, days) // TENURE_DAYS_FULL),
            "on_time_payments": points(repaid + record.on_time, ON_TIME_POINTS_EACH,
                                       ON_TIME_POINTS_MAX),
            "hospital_settled": points(hospital_visits.settled_visits(tx, who.id),
                                       HOSPITAL_POINTS_EACH, HOSPITAL_POINTS_MAX),
            "transit_debt": TRANSIT_DEBT_POINTS if _transit_debt_fen(tx, who.id) > 0 else 0,
            "overdue_bills": points(record.overdue, OVERDUE_POINTS_EACH, OVERDUE_POINTS_MIN),
            "late_payments": points(record.late, LATE_POINTS_EACH, LATE_POINTS_MIN),
        }


def add_routes(app: FastAPI, platform: Platform) -> None:
    service: Service = platform.credit

    @app.get("/v1/credit", responses=errors())
    def credit(token: Token) -> dict:
        """The caller's own score, its factors, and what it opens."""
        score = service.my_score(token)
        gates = {name: service.passes(score.score, name) for name in service.thresholds}
        limit_fen = limit_for(score.score, service.thresholds["pay_later_transit"])
        return asdict(score) | {"credit_limit_fen": limit_fen, "gates": gates}


def clamp(total: int) -> int:
    return max(SCORE_MIN, min(SCORE_MAX, total))


def points(count: int, each: int, cap: int) -> int:
    """``count`` times ``each``, no further from zero than ``cap`` (either sign)."""
    return max(cap, count * each) if each < 0 else min(cap, count * each)


def limit_for(score: int, floor: int = GATE_THRESHOLDS["pay_later_transit"]) -> int:
    """The credit line at ``score`` when ride first pay later opens at ``floor``."""
    if score < floor:
        return 0
    span_fen = CREDIT_LIMIT_FEN_MAX - CREDIT_LIMIT_FEN_MIN
    limit_fen = CREDIT_LIMIT_FEN_MIN + (score - floor) * span_fen // (SCORE_MAX - floor)
    return limit_fen - limit_fen % CREDIT_LIMIT_STEP_FEN


def _first_seen_s(tx: Tx, participant_id: int, now: dt.datetime) -> int:
    """When tenure began: recorded the first time the resident is seen, then kept."""
    tx.execute("INSERT INTO credit_residents (participant_id, first_seen_at_s) VALUES (?, ?)"
               " ON CONFLICT (participant_id) DO NOTHING", (participant_id, int(now.timestamp())))
    row = tx.one("SELECT first_seen_at_s FROM credit_residents WHERE participant_id = ?",
                 (participant_id,))
    return int(row[0])


def _transit_debt_fen(tx: Tx, participant_id: int) -> int:
    """What the bus card owes (its credit account is created when the card is claimed)."""
    row = tx.one("SELECT debits_posted - credits_posted FROM accounts WHERE name = ?",
                 (f"transit_credit:{participant_id}",))
    return 0 if row is None else int(row[0])
