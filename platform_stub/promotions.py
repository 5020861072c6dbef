"""Budgeted promotions on merchant payments, e.g. Xi'an's "one-cent breakfast".

A campaign has its own guarded ledger account, funded once from the platform's
marketing account; every discount is a transfer from it to the merchant, so a
campaign can never give away more than its budget and stops by itself when the
budget is spent (the next discount would exceed its credits: no discount, full
price). Rules: a minimum purchase, a fixed discount (never above the price),
the weekdays and dates it runs, merchant category codes it applies to, and at
most ``per_person_per_day`` discounts per resident per day.

Free-ride days on the bus are the transit side of the same idea (see clearing).
"""

from __future__ import annotations

import datetime as dt

from platform_stub.exceptions import InvalidRequest, Rejected
from platform_stub.frozen import frozen
from platform_stub.ledger import DEBITS_MUST_NOT_EXCEED_CREDITS, Ledger, TransferRequest
from platform_stub.storage import Database, Tx

MARKETING_ACCOUNT = "platform:marketing"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CAMPAIGNS_MAX = 1_000

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS campaigns (
        id {ident}, name TEXT NOT NULL UNIQUE, account_id BIGINT NOT NULL,
        discount_fen BIGINT NOT NULL, min_amount_fen BIGINT NOT NULL, weekdays TEXT NOT NULL,
        start_date TEXT NOT NULL, end_date TEXT NOT NULL, mccs TEXT NOT NULL,
        per_person_per_day INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS campaign_uses (
        campaign_id BIGINT NOT NULL, participant_id BIGINT NOT NULL, day TEXT NOT NULL,
        transfer_id TEXT NOT NULL PRIMARY KEY, discount_fen BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS campaign_uses_by_person ON campaign_uses(campaign_id,"
    " participant_id, day)",
]


@frozen
class Campaign:
    id: int
    name: str
    account_id: int
    discount_fen: int
    min_amount_fen: int
    weekdays: str  # comma-separated, e.g. "Fri"; empty: every day
    start_date: str
    end_date: str
    mccs: str  # comma-separated merchant category codes; empty: every merchant
    per_person_per_day: int

    def applies(self, day: dt.date, mcc: str, amount_fen: int) -> bool:
        return (
            self.start_date <= day.isoformat() <= self.end_date
            and (not self.weekdays or WEEKDAYS[day.weekday()] in self.weekdays.split(","))
            and (not self.mccs or mcc in self.mccs.split(","))
            and amount_fen >= self.min_amount_fen
        )


_COLUMNS = (
    "id, name, account_id, discount_fen, min_amount_fen, weekdays, start_date, end_date, mccs,"
    " per_person_per_day"
)


class Promotions:
    def __init__(self, db: Database, ledger: Ledger, ident: str) -> None:
        self.db, self.ledger = db, ledger
        with db.transaction() as tx:
            for ddl in SCHEMA:
                tx.execute(ddl.format(ident=ident))

    def create(self, name: str, discount_fen: int, min_amount_fen: int, budget_fen: int,
               start_date: dt.date, end_date: dt.date, weekdays: tuple[str, ...] = (),
               mccs: tuple[str, ...] = (), per_person_per_day: int = 1) -> Campaign:
        """Open a campaign and move its whole budget into its own account."""
        _check_campaign(discount_fen, min_amount_fen, budget_fen, weekdays, per_person_per_day)
        with self.db.transaction() as tx:
            if tx.one("SELECT 1 FROM campaigns WHERE name = ?", (name,)) is not None:
                raise Rejected("exists_with_different_fields", f"campaign {name!r} exists")
            if tx.one("SELECT COUNT(*) FROM campaigns")[0] >= CAMPAIGNS_MAX:
                raise InvalidRequest("invalid_request", f"at most {CAMPAIGNS_MAX} campaigns")
            account = self.ledger.create_account(tx, f"promo:{name}", "promotion",
                                                 DEBITS_MUST_NOT_EXCEED_CREDITS)
            marketing = self.ledger.create_account(tx, MARKETING_ACCOUNT, "platform", 0)
            self.ledger.transfer(tx, TransferRequest(
                f"campaign:{name}:budget", marketing.id, account.id, budget_fen, "campaign_budget"))
            tx.execute(
                f"INSERT INTO campaigns ({_COLUMNS.removeprefix('id, ')})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, account.id, discount_fen, min_amount_fen, ",".join(weekdays),
                 start_date.isoformat(), end_date.isoformat(), ",".join(mccs), per_person_per_day),
            )
            return Campaign(*tx.one(f"SELECT {_COLUMNS} FROM campaigns WHERE name = ?", (name,)))

    def campaigns(self, tx: Tx) -> list[Campaign]:
        return [Campaign(*r) for r in tx.all(f"SELECT {_COLUMNS} FROM campaigns ORDER BY id")]

    def offer(self, tx: Tx, payer_id: int, mcc: str, amount_fen: int, day: dt.date,
              campaigns: list[Campaign] | None = None) -> tuple[Campaign, int] | None:
        """The first campaign that applies and can still pay, with its discount. Locks the
        campaign's account, so the later ``grant`` in the same transaction cannot fail.
        ``campaigns``: what ``campaigns(tx)`` gave earlier in ``tx``, if it was read."""
        for campaign in self.campaigns(tx) if campaigns is None else campaigns:
            if not campaign.applies(day, mcc, amount_fen):
                continue
            if self._used_up(tx, campaign, payer_id, day):
                continue
            discount = min(campaign.discount_fen, amount_fen)
            if self._budget_fen(tx, campaign) >= discount:
                return campaign, discount
        return None  # none applies, or every applicable budget is spent

    def grant(self, tx: Tx, campaign: Campaign, payer_id: int, merchant_account_id: int,
              discount_fen: int, day: dt.date, transfer_id: str) -> None:
        """The campaign pays the merchant the discount; recorded against the payer."""
        self.ledger.transfer(tx, TransferRequest(
            f"{transfer_id}:promo", campaign.account_id, merchant_account_id, discount_fen,
            "promotion"))
        tx.execute(
            "INSERT INTO campaign_uses (campaign_id, participant_id, day, transfer_id,"
            " discount_fen) VALUES (?, ?, ?, ?, ?)",
            (campaign.id, payer_id, day.isoformat(), transfer_id, discount_fen),
        )

    def _budget_fen(self, tx: Tx, campaign: Campaign) -> int:
        row = tx.one(
            "SELECT credits_posted - debits_posted - debits_pending FROM accounts WHERE id = ?"
            + tx.for_update(),
            (campaign.account_id,),
        )
        return int(row[0])

    def discount_given(self, tx: Tx, transfer_id: str) -> int | None:
        row = tx.one("SELECT discount_fen FROM campaign_uses WHERE transfer_id = ?",
                     (transfer_id,))
        return None if row is None else int(row[0])

    def spent_fen(self, campaign_id: int) -> int:
        with self.db.transaction() as tx:
            row = tx.one("SELECT COALESCE(SUM(discount_fen), 0) FROM campaign_uses"
                         " WHERE campaign_id = ?", (campaign_id,))
        return int(row[0])

    def _used_up(self, tx: Tx, campaign: Campaign, payer_id: int, day: dt.date) -> bool:
        used = tx.one(
            "SELECT COUNT(*) FROM campaign_uses WHERE campaign_id = ? AND participant_id = ?"
            " AND day = ?", (campaign.id, payer_id, day.isoformat()))[0]
        return used >= campaign.per_person_per_day


def _check_campaign(discount_fen: int, min_amount_fen: int, budget_fen: int,
                    weekdays: tuple[str, ...], per_person_per_day: int) -> None:
    if min(discount_fen, budget_fen, per_person_per_day) <= 0 or min_amount_fen < 0:
        raise InvalidRequest("amount_invalid", "discount, budget and per-person limit must be > 0")
    unknown = set(weekdays) - set(WEEKDAYS)
    if unknown:
        raise InvalidRequest("invalid_request", f"unknown weekdays {sorted(unknown)}")

