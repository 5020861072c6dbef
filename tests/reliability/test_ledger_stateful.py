"""Random sequences of ledger operations keep every audit invariant and match a model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from platform_stub.audit import audit
from platform_stub.exceptions import PlatformError
from platform_stub.ledger import (
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    PENDING,
    POST_PENDING,
    VOID_PENDING,
    Ledger,
    TransferRequest,
)
from platform_stub.storage import open_database

EXAMPLES_MAX = 20
STEPS_MAX = 30
AMOUNTS = st.integers(min_value=1, max_value=1_000)
FLAGS = st.sampled_from([0, DEBITS_MUST_NOT_EXCEED_CREDITS, CREDITS_MUST_NOT_EXCEED_DEBITS])


class LedgerMachine(RuleBasedStateMachine):
    """Model: per account [debits_pending, debits_posted, credits_pending, credits_posted]
    and flags; per pending transfer its accounts, amount and whether it is resolved."""

    accounts = Bundle("accounts")
    pendings = Bundle("pendings")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-sm-"))
        self.db = open_database(f"sqlite:///{self.dir / 'ledger.db'}")
        self.ledger = Ledger(self.db)
        self.model: dict[int, list[int]] = {}
        self.flags: dict[int, int] = {}
        self.held: dict[str, tuple[int, int, int]] = {}
        self.resolved: set[str] = set()
        self.outcomes: dict[str, tuple[TransferRequest, str]] = {}
        self.ids = 0

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(target=accounts, flags=FLAGS)
    def create_account(self, flags: int) -> int:
        with self.db.transaction() as tx:
            account = self.ledger.create_account(tx, f"acc{len(self.model)}", "test", flags)
        self.model[account.id], self.flags[account.id] = [0, 0, 0, 0], flags
        return account.id

    @rule(target=pendings, debit=accounts, credit=accounts, amount=AMOUNTS,
          pending=st.booleans())
    def transfer(self, debit: int, credit: int, amount: int, pending: bool) -> str:
        request = self._request(debit, credit, amount, PENDING if pending else 0)
        expected = self._expect_plain(request)
        self._check(request, expected)
        if pending and expected == "ok":
            self.held[request.id] = (debit, credit, amount)
        return request.id

    @rule(pending_id=pendings, amount=AMOUNTS)
    def post(self, pending_id: str, amount: int) -> None:
        self._resolve(pending_id, amount, POST_PENDING)

    @rule(pending_id=pendings)
    def void(self, pending_id: str) -> None:
        held = self.held.get(pending_id)
        self._resolve(pending_id, held[2] if held else 1, VOID_PENDING)

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The same id and body again returns the first outcome and changes nothing."""
        if self.outcomes:
            transfer_id = data.draw(st.sampled_from(sorted(self.outcomes)))
            request, first = self.outcomes[transfer_id]
            assert self._run(request) == first

    @invariant()
    def audit_holds_and_balances_match_model(self) -> None:
        report = audit(self.db)
        assert report.ok, report.broken
        with self.db.transaction(write=False) as tx:
            stored = {a.id: [a.debits_pending, a.debits_posted, a.credits_pending,
                             a.credits_posted] for a in self.ledger.accounts(tx)}
        assert stored == self.model

    def _resolve(self, pending_id: str, amount: int, flag: int) -> None:
        held = self.held.get(pending_id)
        if held is None:  # the pending transfer was refused; resolve it anyway
            return self._check(self._request(1, 2, amount, flag, pending_id), None)
        debit, credit, pending_fen = held
        request = self._request(debit, credit, amount, flag, pending_id)
        if pending_id in self.resolved:
            return self._check(request, "pending_already_resolved")
        if amount > pending_fen:
            return self._check(request, "amount_mismatch")
        posted = amount if flag == POST_PENDING else 0
        expected = self._expect(debit, credit, -pending_fen, posted)
        self._check(request, expected)
        if expected == "ok":
            self.resolved.add(pending_id)
        return None

    def _request(self, debit: int, credit: int, amount: int, flags: int,
                 pending_id: str | None = None) -> TransferRequest:
        self.ids += 1
        return TransferRequest(f"t{self.ids}", debit, credit, amount, "test", flags, pending_id)

    def _expect_plain(self, request: TransferRequest) -> str:
        if request.debit_account_id == request.credit_account_id:
            return "same_account"
        pending = request.amount_fen if request.flags & PENDING else 0
        return self._expect(request.debit_account_id, request.credit_account_id, pending,
                            request.amount_fen - pending)

    def _expect(self, debit: int, credit: int, pending: int, posted: int) -> str:
        d, c = self.model[debit], self.model[credit]
        if self.flags[debit] & DEBITS_MUST_NOT_EXCEED_CREDITS and (
                d[0] + pending + d[1] + posted > d[3]):
            return "exceeds_credits"
        if self.flags[credit] & CREDITS_MUST_NOT_EXCEED_DEBITS and (
                c[2] + pending + c[3] + posted > c[1]):
            return "exceeds_debits"
        d[0], d[1], c[2], c[3] = d[0] + pending, d[1] + posted, c[2] + pending, c[3] + posted
        return "ok"

    def _check(self, request: TransferRequest, expected: str | None) -> None:
        """Apply and compare with the model; ``None`` accepts any refusal (not success)."""
        outcome = self._run(request)
        if expected is None:
            assert outcome != "ok"
        else:
            assert outcome == expected, (request, outcome, expected)
        self.outcomes[request.id] = (request, outcome)

    def _run(self, request: TransferRequest) -> str:
        try:
            self.ledger.apply(request)
        except PlatformError as err:
            return err.code
        return "ok"


LedgerMachine.TestCase.settings = settings(
    max_examples=EXAMPLES_MAX, stateful_step_count=STEPS_MAX, deadline=None)
test_ledger_model = LedgerMachine.TestCase
