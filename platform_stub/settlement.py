"""Settlement windows: deferred net settlement, after Mojaloop.

One window is open at a time. Closing it takes every posted transfer since the
previous close (a contiguous range of ledger sequence numbers), nets each
account's position, pays each payee's balance out to its bank (a ``payout``
transfer inside the closing window) and opens the next window. Positions sum to
zero because every transfer has one debit and one credit. A closed window's
range is fixed, so it never changes; a tap cleared later lands in the open window.

States: OPEN -> SETTLED (closing and paying out are one transaction here).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from platform_stub.frozen import frozen
from platform_stub.ledger import POST_PENDING, Ledger, TransferRequest
from platform_stub.storage import Tx, now_us

PAYEE_KINDS = ("merchant", "operator", "hospital", "biller", "provider")
PAYOUT_ACCOUNT = "bank:payouts"
PAYOUT_KIND = "payout"

SCHEMA = """CREATE TABLE IF NOT EXISTS settlement_windows (
    id BIGINT PRIMARY KEY, state TEXT NOT NULL, opened_at_us BIGINT NOT NULL,
    closed_at_us BIGINT, first_seq BIGINT NOT NULL, last_seq BIGINT)"""


@frozen
class Position:
    account: str
    kind: str
    debits_fen: int
    credits_fen: int
    payout_fen: int

    @property
    def net_fen(self) -> int:
        return self.credits_fen - self.debits_fen


@frozen
class SettlementReport:
    window_id: int
    first_seq: int
    last_seq: int
    positions: list[Position]

    @property
    def payout_total_fen(self) -> int:
        return sum(p.payout_fen for p in self.positions)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "window_id": self.window_id,
                    "account": p.account,
                    "kind": p.kind,
                    "debits_fen": p.debits_fen,
                    "credits_fen": p.credits_fen,
                    "net_fen": p.net_fen,
                    "payout_fen": p.payout_fen,
                }
                for p in self.positions
            ],
            schema={
                "window_id": pl.Int64,
                "account": pl.Utf8,
                "kind": pl.Utf8,
                "debits_fen": pl.Int64,
                "credits_fen": pl.Int64,
                "net_fen": pl.Int64,
                "payout_fen": pl.Int64,
            },
        )

    def write(self, folder: Path) -> list[Path]:
        """The settlement report as CSV (for people) and Parquet (for tools)."""
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"settlement-{self.window_id:05d}"
        frame = self.frame()
        frame.write_csv(stem.with_suffix(".csv"))
        frame.write_parquet(stem.with_suffix(".parquet"))
        return [stem.with_suffix(".csv"), stem.with_suffix(".parquet")]


class Settlement:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        with ledger.db.transaction() as tx:
            tx.execute(SCHEMA)
            if tx.one("SELECT COUNT(*) FROM settlement_windows")[0] == 0:
                tx.execute(
                    "INSERT INTO settlement_windows (id, state, opened_at_us, first_seq)"
                    " VALUES (1, 'OPEN', ?, 1)",
                    (now_us(),),
                )

    def open_window_id(self) -> int:
        with self.ledger.db.transaction() as tx:
            return tx.one("SELECT id FROM settlement_windows WHERE state = 'OPEN'")[0]

    def close_window(self) -> SettlementReport:
        """Net, pay out and close the open window; open the next one."""
        with self.ledger.db.transaction() as tx:
            tx.lock_table("transfers")  # no transfer may commit into a closing window
            window_id, first_seq = tx.one(
                "SELECT id, first_seq FROM settlement_windows WHERE state = 'OPEN'"
                + tx.for_update()
            )
            payouts = self._pay_out(tx, window_id)
            last_seq = tx.one("SELECT COALESCE(MAX(seq), 0) FROM transfers")[0]
            positions = _positions(tx, first_seq, last_seq, payouts)
            assert sum(p.net_fen for p in positions) == 0, "positions must sum to zero"
            now = now_us()
            tx.execute(
                "UPDATE settlement_windows SET state = 'SETTLED', closed_at_us = ?,"
                " last_seq = ? WHERE id = ?",
                (now, last_seq, window_id),
            )
            tx.execute(
                "INSERT INTO settlement_windows (id, state, opened_at_us, first_seq)"
                " VALUES (?, 'OPEN', ?, ?)",
                (window_id + 1, now, last_seq + 1),
            )
        return SettlementReport(window_id, first_seq, last_seq, positions)

    def _pay_out(self, tx: Tx, window_id: int) -> dict[str, int]:
        """Move each payee's whole balance to its bank; returns account name -> fen."""
        bank = self.ledger.create_account(tx, PAYOUT_ACCOUNT, "bank", 0)
        payouts: dict[str, int] = {}
        for account in self.ledger.accounts_in_credit(tx, PAYEE_KINDS):
            self.ledger.transfer(
                tx,
                TransferRequest(
                    id=f"settlement:{window_id}:{account.id}",
                    debit_account_id=account.id,
                    credit_account_id=bank.id,
                    amount_fen=account.balance_fen,
                    kind=PAYOUT_KIND,
                ),
            )
            payouts[account.name] = account.balance_fen
        return payouts


def _positions(tx: Tx, first_seq: int, last_seq: int, payouts: dict[str, int]) -> list[Position]:
    posted = f"(t.flags = 0 OR t.flags = {POST_PENDING}) AND t.kind != '{PAYOUT_KIND}'"
    # Each side summed over the window's transfers (one range scan each), then the
    # accounts that took part looked up by id: joining every account to its transfers
    # read the debit and credit indexes once per account, 100,000 times a day in a city.
    side = (
        "SELECT {col} AS account_id, SUM(CASE WHEN {posted} THEN t.amount_fen ELSE 0 END)"
        " AS fen FROM transfers t WHERE t.seq BETWEEN ? AND ? GROUP BY {col}"
    )
    rows = tx.all(
        f"WITH d AS ({side.format(col='t.debit_account_id', posted=posted)}),"
        f" c AS ({side.format(col='t.credit_account_id', posted=posted)})"
        " SELECT a.name, a.kind, COALESCE(d.fen, 0), COALESCE(c.fen, 0) FROM accounts a"
        " LEFT JOIN d ON d.account_id = a.id LEFT JOIN c ON c.account_id = a.id"
        " WHERE a.id IN (SELECT account_id FROM d UNION SELECT account_id FROM c)"
        " ORDER BY a.id",
        (first_seq, last_seq, first_seq, last_seq),
    )
    return [Position(name, kind, int(d), int(c), payouts.get(name, 0)) for name, kind, d, c in rows]
