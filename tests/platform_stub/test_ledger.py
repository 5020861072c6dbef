"""The ledger's promises, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import random

import pytest

from platform_stub.audit import audit
from platform_stub.exceptions import NotFound, Rejected
from platform_stub.ledger import (
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    PENDING,
    POST_PENDING,
    VOID_PENDING,
    Ledger,
    TransferRequest,
)
from platform_stub.storage import open_database

GUARDED = DEBITS_MUST_NOT_EXCEED_CREDITS


@pytest.fixture
def ledger(db_url: str):
    db = open_database(db_url)
    yield Ledger(db)
    db.close()


def make_accounts(ledger: Ledger) -> tuple[int, int, int]:
    with ledger.db.transaction() as tx:
        bank = ledger.create_account(tx, "bank:ICBC", "bank").id
        wallet = ledger.create_account(tx, "wallet:1", "resident", GUARDED).id
        shop = ledger.create_account(tx, "merchant:1", "merchant", GUARDED).id
    return bank, wallet, shop


def balances(ledger: Ledger) -> dict[str, tuple[int, int, int, int]]:
    with ledger.db.transaction() as tx:
        return {
            a.name: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in ledger.accounts(tx)
        }


def count(ledger: Ledger) -> int:
    with ledger.db.transaction() as tx:
        return ledger.transfer_count(tx)


def test_retry_with_same_id_returns_first_result(ledger: Ledger) -> None:
    bank, wallet, _ = make_accounts(ledger)
    request = TransferRequest("t1", bank, wallet, 500, "top_up")
    first = ledger.apply(request)
    again = ledger.apply(request)
    assert again == first
    assert count(ledger) == 1
    assert balances(ledger)["wallet:1"] == (0, 0, 0, 500)


def test_same_id_with_another_body_is_rejected_and_changes_nothing(ledger: Ledger) -> None:
    bank, wallet, _ = make_accounts(ledger)
    ledger.apply(TransferRequest("t1", bank, wallet, 500, "top_up"))
    before = balances(ledger)
    with pytest.raises(Rejected) as caught:
        ledger.apply(TransferRequest("t1", bank, wallet, 501, "top_up"))
    assert caught.value.code == "exists_with_different_fields"
    assert balances(ledger) == before
    assert count(ledger) == 1


def test_debit_beyond_credits_is_rejected_changes_nothing_and_stays_rejected(
    ledger: Ledger,
) -> None:
    bank, wallet, shop = make_accounts(ledger)
    ledger.apply(TransferRequest("top", bank, wallet, 300, "top_up"))
    before = balances(ledger)
    pay = TransferRequest("pay", wallet, shop, 301, "pay_merchant")
    with pytest.raises(Rejected) as caught:
        ledger.apply(pay)
    assert caught.value.code == "exceeds_credits"
    assert balances(ledger) == before and count(ledger) == 1
    ledger.apply(TransferRequest("top2", bank, wallet, 1000, "top_up"))
    with pytest.raises(Rejected, match="exceeds_credits"):
        ledger.apply(pay)  # an id refused for a business reason stays refused
    assert balances(ledger)["merchant:1"] == (0, 0, 0, 0)


@pytest.mark.parametrize("missing_side", ["debit", "credit"])
def test_an_unknown_account_on_either_side_changes_nothing(
    ledger: Ledger, missing_side: str
) -> None:
    """The account that exists is updated first when its id is lower; the refusal must
    take that change back, as the refusal's record commits."""
    bank, wallet, _ = make_accounts(ledger)
    ledger.apply(TransferRequest("top", bank, wallet, 300, "top_up"))
    before = balances(ledger)
    unknown = 9_999
    debit, credit = (unknown, wallet) if missing_side == "debit" else (wallet, unknown)
    with pytest.raises(NotFound) as caught:
        ledger.apply(TransferRequest("lost", debit, credit, 100, "pay_merchant"))
    assert caught.value.code == "account_not_found" and str(unknown) in caught.value.detail
    assert balances(ledger) == before and count(ledger) == 1


def test_unguarded_account_may_go_below_zero(ledger: Ledger) -> None:
    bank, wallet, _ = make_accounts(ledger)
    ledger.apply(TransferRequest("t1", bank, wallet, 10**9, "top_up"))
    assert balances(ledger)["bank:ICBC"][1] == 10**9


def test_pending_post_and_void_resolve_once(ledger: Ledger) -> None:
    bank, wallet, shop = make_accounts(ledger)
    ledger.apply(TransferRequest("top", bank, wallet, 1000, "top_up"))
    ledger.apply(TransferRequest("hold", wallet, shop, 800, "hold", PENDING))
    assert balances(ledger)["wallet:1"] == (800, 0, 0, 1000)
    with pytest.raises(Rejected, match="exceeds_credits"):
        ledger.apply(TransferRequest("pay", wallet, shop, 300, "pay_merchant"))
    ledger.apply(TransferRequest("post", wallet, shop, 600, "hold", POST_PENDING, "hold"))
    assert balances(ledger)["wallet:1"] == (0, 600, 0, 1000)
    with pytest.raises(Rejected, match="pending_already_resolved"):
        ledger.apply(TransferRequest("void", wallet, shop, 0, "hold", VOID_PENDING, "hold"))
    assert audit(ledger.db).ok


def test_random_transfers_keep_every_invariant(ledger: Ledger) -> None:
    """Seeded random top-ups, payments, holds, posts and voids: the audit's sums match
    a plain Python model of the same operations."""
    rng = random.Random(7)
    bank, *guarded = make_accounts(ledger)
    with ledger.db.transaction() as tx:
        guarded += [
            ledger.create_account(tx, f"wallet:{i}", "resident", GUARDED).id for i in range(2, 6)
        ]
    spendable = dict.fromkeys(guarded, 0)
    open_holds: list[TransferRequest] = []
    for n in range(300):
        op = rng.choice(["top", "pay", "pay", "hold", "resolve"])
        source, target = rng.sample(guarded, 2)
        amount = rng.randint(1, 900)
        if op == "top":
            ledger.apply(TransferRequest(f"t{n}", bank, source, amount, "top_up"))
            spendable[source] += amount
        elif op in ("pay", "hold"):
            flags = PENDING if op == "hold" else 0
            request = TransferRequest(f"t{n}", source, target, amount, op, flags)
            try:
                ledger.apply(request)
            except Rejected as err:
                assert err.code == "exceeds_credits" and amount > spendable[source]
                continue
            assert amount <= spendable[source]
            spendable[source] -= amount
            if op == "hold":
                open_holds.append(request)
            else:
                spendable[target] += amount
        elif open_holds:
            hold = open_holds.pop(rng.randrange(len(open_holds)))
            post = rng.random() < 0.5
            posted = rng.randint(1, hold.amount_fen) if post else 0
            ledger.apply(
                TransferRequest(
                    f"t{n}",
                    hold.debit_account_id,
                    hold.credit_account_id,
                    posted,
                    "hold",
                    POST_PENDING if post else VOID_PENDING,
                    hold.id,
                )
            )
            spendable[hold.debit_account_id] += hold.amount_fen - posted
            spendable[hold.credit_account_id] += posted
    report = audit(ledger.db)
    assert report.ok, report.broken
    with ledger.db.transaction() as tx:
        assert {a: ledger.account(tx, a).balance_fen for a in guarded} == spendable
        sums = tx.one("SELECT SUM(debits_posted), SUM(credits_posted) FROM accounts")
    assert sums[0] == sums[1] > 0


def test_audit_names_the_broken_invariant(ledger: Ledger) -> None:
    bank, wallet, shop = make_accounts(ledger)
    ledger.apply(TransferRequest("top", bank, wallet, 500, "top_up"))
    with ledger.db.transaction() as tx:  # tamper behind the ledger's back
        tx.execute(
            "UPDATE accounts SET debits_posted = debits_posted + 900 WHERE id = ?", (wallet,)
        )
    report = audit(ledger.db)
    assert not report.ok
    assert {c.name for c in report.broken} == {
        "debits_equal_credits",
        "balances_match_transfers",
        "account_flags_hold",
    }
