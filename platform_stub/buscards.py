"""Electronic bus cards: the credential the platform signs, rider debt, and the deny list.

A card's debt lives in its own unguarded credit account: a fare the wallet cannot
cover is debited there ("ride first, pay later"), so debt = debits - credits of
that account. A card in debt, or revoked, is on the deny list until the debt is
repaid (a top-up repays it first). The deny list is a change log with monotonic
versions, so readers fetch only what changed since the version they hold.
"""

from __future__ import annotations

from platform_stub.frozen import frozen
from platform_stub.ledger import Account, Ledger, TransferRequest
from platform_stub.storage import Tx

DENY_DELTA_MAX = 10_000
REASON_DEBT = "debt"
REASON_REVOKED = "revoked"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS bus_cards (
        card_id BIGINT PRIMARY KEY, participant_id BIGINT NOT NULL UNIQUE,
        credit_account_id BIGINT NOT NULL, credit_limit_fen BIGINT NOT NULL,
        expires_at_s BIGINT NOT NULL, revoked_at_s BIGINT)""",
    """CREATE TABLE IF NOT EXISTS deny_changes (
        version {ident}, card_id BIGINT NOT NULL, listed INTEGER NOT NULL,
        reason TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS deny_changes_card ON deny_changes(card_id, version)",
]


@frozen
class BusCard:
    card_id: int
    participant_id: int
    credit_account_id: int
    credit_limit_fen: int
    expires_at_s: int
    revoked_at_s: int | None


@frozen
class DenyDelta:
    """Changes after ``since``; ``version`` is what the reader holds once applied."""

    since: int
    version: int
    added: list[int]
    removed: list[int]
    more: bool


_CARD_COLUMNS = (
    "card_id, participant_id, credit_account_id, credit_limit_fen, expires_at_s, revoked_at_s"
)


def create_tables(tx: Tx, ident: str) -> None:
    for ddl in SCHEMA:
        tx.execute(ddl.format(ident=ident))


def add_card(
    tx: Tx, ledger: Ledger, participant_id: int, credit_limit_fen: int, expires_at_s: int
) -> BusCard:
    """Record a claimed card (card id = participant id: one card per resident)."""
    credit = ledger.create_account(tx, f"transit_credit:{participant_id}", "transit_credit", 0)
    tx.execute("DELETE FROM bus_cards WHERE card_id = ?", (participant_id,))
    tx.execute(
        f"INSERT INTO bus_cards ({_CARD_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL)",
        (participant_id, participant_id, credit.id, credit_limit_fen, expires_at_s),
    )
    return card(tx, participant_id)


def card(tx: Tx, card_id: int) -> BusCard | None:
    row = tx.one(f"SELECT {_CARD_COLUMNS} FROM bus_cards WHERE card_id = ?", (card_id,))
    return None if row is None else BusCard(*row)


def debt_fen(tx: Tx, ledger: Ledger, bus_card: BusCard) -> int:
    return credit_line_debt_fen(ledger.account(tx, bus_card.credit_account_id))


def credit_line_debt_fen(credit_account: Account) -> int:
    """What a card's credit line is owed: fares it paid less what top-ups repaid."""
    return credit_account.debits_posted - credit_account.credits_posted


def set_listed(tx: Tx, card_id: int, listed: bool, reason: str) -> None:
    """Append a deny-list change, unless the card is already in that state."""
    row = tx.one(
        "SELECT listed FROM deny_changes WHERE card_id = ? ORDER BY version DESC LIMIT 1",
        (card_id,),
    )
    if bool(row and row[0]) == listed:
        return
    tx.execute(
        "INSERT INTO deny_changes (card_id, listed, reason) VALUES (?, ?, ?)",
        (card_id, int(listed), reason),
    )


def revoke(tx: Tx, card_id: int, at_s: int) -> None:
    tx.execute("UPDATE bus_cards SET revoked_at_s = ? WHERE card_id = ?", (at_s, card_id))
    set_listed(tx, card_id, True, REASON_REVOKED)


def deny_delta(tx: Tx, since: int) -> DenyDelta:
    """Net changes after version ``since``, at most DENY_DELTA_MAX rows per call."""
    rows = tx.all(
        "SELECT version, card_id, listed FROM deny_changes WHERE version > ?"
        " ORDER BY version LIMIT ?",
        (since, DENY_DELTA_MAX + 1),
    )
    more = len(rows) > DENY_DELTA_MAX
    rows = rows[:DENY_DELTA_MAX]
    state = {card_id: bool(listed) for _, card_id, listed in rows}  # last change wins
    version = rows[-1][0] if rows else since
    return DenyDelta(
        since,
        version,
        sorted(c for c, on in state.items() if on),
        sorted(c for c, on in state.items() if not on),
        more,
    )


def deny_list_size(tx: Tx) -> int:
    row = tx.one(
        "SELECT COUNT(*) FROM deny_changes d WHERE d.listed = 1 AND d.version ="
        " (SELECT MAX(version) FROM deny_changes e WHERE e.card_id = d.card_id)"
    )
    return int(row[0])


def repay_debt(tx: Tx, ledger: Ledger, bus_card: BusCard, wallet_id: int, tag: str) -> int:
    """Repay what the wallet can of the card's debt; lift the deny listing when clear."""
    owed = debt_fen(tx, ledger, bus_card)
    if owed <= 0:
        return 0
    repay_id = f"repay:{bus_card.card_id}:{tag}"
    if tx.one("SELECT 1 FROM transfers WHERE id = ?", (repay_id,)) is not None:
        return 0  # a retried top-up already repaid what it could
    paid = min(owed, ledger.account(tx, wallet_id).balance_fen)
    if paid > 0:
        ledger.transfer(
            tx,
            TransferRequest(
                id=repay_id,
                debit_account_id=wallet_id,
                credit_account_id=bus_card.credit_account_id,
                amount_fen=paid,
                kind="debt_repayment",
            ),
        )
    if paid == owed and bus_card.revoked_at_s is None:
        set_listed(tx, bus_card.card_id, False, REASON_DEBT)
    return paid
