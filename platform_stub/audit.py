"""Ledger invariants, checked from the stored rows alone.

An audit recomputes every balance from the transfers and compares; it trusts
nothing the ledger cached. Each check has a stable name so a failing audit says
which promise broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from platform_stub.frozen import frozen
from platform_stub.ledger import (
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    PENDING,
    POST_PENDING,
    VOID_PENDING,
)
from platform_stub.storage import Database, Tx

EXAMPLES_MAX = 5


@frozen
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class AuditReport:
    checks: list[Check] = field(default_factory=list)
    transfer_count: int = 0
    account_count: int = 0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def broken(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def as_dict(self) -> dict:
        return {
            "audit_ok": self.ok,
            "transfer_count": self.transfer_count,
            "account_count": self.account_count,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


def audit(db: Database) -> AuditReport:
    """Run every invariant check in one read transaction."""
    with db.transaction(write=False) as tx:
        report = AuditReport(
            transfer_count=tx.one("SELECT COUNT(*) FROM transfers")[0],
            account_count=tx.one("SELECT COUNT(*) FROM accounts")[0],
        )
        report.checks = [
            _debits_equal_credits(tx),
            _balances_match_transfers(tx),
            _account_flags_hold(tx),
            _pending_resolved_once(tx),
        ]
    return report


def _debits_equal_credits(tx: Tx) -> Check:
    dp, dq, cp, cq = tx.one(
        "SELECT COALESCE(SUM(debits_posted),0), COALESCE(SUM(debits_pending),0),"
        " COALESCE(SUM(credits_posted),0), COALESCE(SUM(credits_pending),0) FROM accounts"
    )
    ok = (dp, dq) == (cp, cq)
    return Check("debits_equal_credits", ok, f"posted {dp} vs {cp} fen, pending {dq} vs {cq} fen")


_POSTED_AMOUNT = f"CASE WHEN t.flags = 0 OR t.flags = {POST_PENDING} THEN t.amount_fen ELSE 0 END"
_OPEN_PENDING_AMOUNT = (
    f"CASE WHEN t.flags = {PENDING} AND NOT EXISTS (SELECT 1 FROM transfers r"
    " WHERE r.pending_id = t.id) THEN t.amount_fen ELSE 0 END"
)


def _side_sums(tx: Tx, side: str) -> dict[int, tuple[int, int]]:
    rows = tx.all(
        f"SELECT t.{side}_account_id, SUM({_POSTED_AMOUNT}), SUM({_OPEN_PENDING_AMOUNT})"
        f" FROM transfers t GROUP BY t.{side}_account_id"
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def _balances_match_transfers(tx: Tx) -> Check:
    debits, credits = _side_sums(tx, "debit"), _side_sums(tx, "credit")
    bad: list[str] = []
    for acc_id, name, dpost, dpend, cpost, cpend in tx.all(
        "SELECT id, name, debits_posted, debits_pending, credits_posted, credits_pending"
        " FROM accounts ORDER BY id"
    ):
        expected = (*debits.get(acc_id, (0, 0)), *credits.get(acc_id, (0, 0)))
        if (dpost, dpend, cpost, cpend) != expected:
            bad.append(f"{name}: stored {(dpost, dpend, cpost, cpend)} vs transfers {expected}")
    return Check("balances_match_transfers", not bad, _examples(bad, "every balance matches"))


def _account_flags_hold(tx: Tx) -> Check:
    rows = tx.all(
        "SELECT name FROM accounts WHERE"
        f" ((flags & {DEBITS_MUST_NOT_EXCEED_CREDITS}) != 0"
        " AND debits_posted + debits_pending > credits_posted)"
        f" OR ((flags & {CREDITS_MUST_NOT_EXCEED_DEBITS}) != 0"
        " AND credits_posted + credits_pending > debits_posted)"
        " ORDER BY id"
    )
    bad = [r[0] for r in rows]
    return Check("account_flags_hold", not bad, _examples(bad, "no account breaks its flags"))


def _pending_resolved_once(tx: Tx) -> Check:
    rows = tx.all(
        "SELECT pending_id FROM transfers WHERE pending_id IS NOT NULL"
        f" AND (flags & {POST_PENDING | VOID_PENDING}) != 0"
        " GROUP BY pending_id HAVING COUNT(*) > 1"
    )
    bad = [r[0] for r in rows]
    return Check(
        "pending_resolved_once", not bad, _examples(bad, "each hold resolved at most once")
    )


def _examples(bad: list[str], fine: str) -> str:
    if not bad:
        return fine
    shown = "; ".join(bad[:EXAMPLES_MAX])
    return f"{len(bad)} broken, e.g. {shown}"
