"""The platform's business operations over the ledger: who may move which money.

Every mutating call names its caller by credential (an opaque bearer token) and
carries a caller-chosen ``request_id``; the ledger transfer id is the caller's
participant id plus the operation plus that request id, so one caller can never
collide with, or replay, another's id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable

from platform_stub import emv
from platform_stub.audit import AuditReport, audit
from platform_stub.clearing import CHINA_TZ, Fares
from platform_stub.exceptions import (
    CredentialInvalid,
    CredentialMissing,
    Forbidden,
    InvalidRequest,
    NotFound,
    Rejected,
)
from platform_stub.features import feature_modules
from platform_stub.ledger import DEBITS_MUST_NOT_EXCEED_CREDITS, Ledger, Transfer, TransferRequest
from platform_stub.merchant_payments import MerchantPayments
from platform_stub.promotions import Promotions
from platform_stub.records import (
    REQUEST_ID_CHARS_MAX,
    Participant,
    Payment,
    Receipt,
    Registration,
    StatementLine,
    check_request_id,
)
from platform_stub.settlement import Settlement, SettlementReport
from platform_stub.storage import Database, Tx, open_database
from platform_stub.transit_service import TransitService

NAME_CHARS_MAX = 64
STATEMENT_PAGE_MAX = 500
TOP_UP_FEN_MAX = 5_000_000  # 50,000 RMB per top-up, a typical bank-card limit
ADMIN_TOKEN_CHARS_MIN = 16
MERCHANTS_REMEMBERED_MAX = 1_000_000
# Kinds that hold an account and may read it (a reader shares its operator's, so may not).
ACCOUNT_HOLDER_KINDS = ("resident", "merchant", "operator", "hospital", "biller", "provider")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS participants (
        id {ident}, kind TEXT NOT NULL, name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE, account_id BIGINT NOT NULL REFERENCES accounts(id))""",
    """CREATE TABLE IF NOT EXISTS cards (
        participant_id BIGINT PRIMARY KEY REFERENCES participants(id),
        bank TEXT NOT NULL, last4 TEXT NOT NULL, bank_account_id BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS merchants (
        participant_id BIGINT PRIMARY KEY REFERENCES participants(id),
        merchant_id TEXT NOT NULL UNIQUE, city TEXT NOT NULL, collection_code TEXT NOT NULL)""",
]


class Platform:
    """The reference platform, in-process. The HTTP API is a thin layer over this."""

    def __init__(
        self, db: Database, fares: Fares | None = None, keyring_seed: bytes | None = None
    ) -> None:
        self.db = db
        self.ledger = Ledger(db)
        sqlite = db.dialect == "sqlite"
        self.ident = "INTEGER PRIMARY KEY AUTOINCREMENT" if sqlite else "BIGSERIAL PRIMARY KEY"
        with db.transaction() as tx:
            for ddl in _SCHEMA:
                tx.execute(ddl.format(ident=self.ident))
        self._by_token: dict[str, Participant] = {}
        self._cache_lock = threading.Lock()
        self._admin_hash: str | None = None
        self._merchant_accounts: dict[str, int] = {}
        self.settlement = Settlement(self.ledger)
        self.promotions = Promotions(db, self.ledger, self.ident)
        self.clock: Callable[[], dt.datetime] = china_now  # simulations set their own
        self.transit = TransitService(self, fares or Fares(), keyring_seed)
        self.payment_listeners: list[Callable[[Payment], None]] = []
        self.payments = MerchantPayments(self)
        for name, module in feature_modules().items():
            setattr(self, name, module.Service(self))

    @classmethod
    def open(
        cls,
        url: str,
        fares: Fares | None = None,
        keyring_seed: bytes | None = None,
        commit_group_max: int = 1,
        in_memory: bool = False,
    ) -> Platform:
        """``commit_group_max`` > 1 and ``in_memory`` only for a simulation's own SQLite
        file (see ``platform_stub.storage``)."""
        return cls(open_database(url, commit_group_max, in_memory), fares, keyring_seed)

    def close(self) -> None:
        self.transit.clearing.verifier.close()  # its worker processes, if it started any
        self.db.close()

    # -- participants -----------------------------------------------------------

    def register_resident(self, name: str) -> Registration:
        """A resident's wallet: it can never be debited beyond what was paid in."""
        return self.register("resident", name)

    def register_merchant(self, name: str, city: str, mcc: str = "5812") -> Registration:
        """A merchant account plus its printed (static) collection code."""
        _check_name(city, "city")
        reg = self.register("merchant", name)
        merchant_id = f"M{reg.participant_id:09d}"
        code = emv.encode(emv.MerchantCode(merchant_id, name, city, mcc))
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO merchants (participant_id, merchant_id, city, collection_code)"
                " VALUES (?, ?, ?, ?)",
                (reg.participant_id, merchant_id, city, code),
            )
        return Registration(reg.participant_id, reg.token, reg.account_id, code)

    def register(
        self, kind: str, name: str, account_id: int | None = None, token: str | None = None
    ) -> Registration:
        """A participant with a fresh credential and, unless given one, its own guarded
        account named ``kind:id`` (so runs on any backend name accounts alike)."""
        _check_name(name, "name")
        token = token or secrets.token_urlsafe(24)
        with self.db.transaction() as tx:
            if account_id is None:
                account_id = self.ledger.create_account(
                    tx, f"new:{_hash(token)}", kind, DEBITS_MUST_NOT_EXCEED_CREDITS
                ).id
                rename = True
            else:
                rename = False
            tx.execute(
                "INSERT INTO participants (kind, name, token_hash, account_id) VALUES (?, ?, ?, ?)",
                (kind, name, _hash(token), account_id),
            )
            pid = tx.one("SELECT id FROM participants WHERE token_hash = ?", (_hash(token),))[0]
            if rename:
                tx.execute(
                    "UPDATE accounts SET name = ? WHERE id = ?", (f"{kind}:{pid}", account_id)
                )
        return Registration(pid, token, account_id)

    def authenticate(self, token: str | None) -> Participant:
        if not token:
            raise CredentialMissing("credential_missing", "send 'Authorization: Bearer <token>'")
        hit = self._by_token.get(token)
        if hit is not None:
            return hit
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT id, kind, name, account_id FROM participants WHERE token_hash = ?",
                (_hash(token),),
            )
        if row is None:
            raise CredentialInvalid("credential_invalid", "unknown or revoked credential")
        with self._cache_lock:
            self._by_token[token] = Participant(*row)
        return self._by_token[token]

    # -- wallets ----------------------------------------------------------------

    def bind_card(self, token: str, card_number: str, bank: str) -> str:
        """Bind one bank card to a resident's wallet; returns the masked number."""
        who = self.resident(token)
        _check_card(card_number)
        _check_name(bank, "bank")
        with self.db.transaction() as tx:
            bank_account = self.ledger.create_account(tx, f"bank:{bank}", "bank", 0)
            tx.execute("DELETE FROM cards WHERE participant_id = ?", (who.id,))
            tx.execute(
                "INSERT INTO cards (participant_id, bank, last4, bank_account_id)"
                " VALUES (?, ?, ?, ?)",
                (who.id, bank, card_number[-4:], bank_account.id),
            )
        return f"{bank} ****{card_number[-4:]}"

    def top_up(self, token: str, amount_fen: int, request_id: str) -> Receipt:
        """Move money from the bound card's bank into the wallet."""
        who = self.resident(token)
        _check_amount(amount_fen, TOP_UP_FEN_MAX)
        return self._move(
            who,
            "top_up",
            request_id,
            self._bound_bank_account(who),
            who.account_id,
            amount_fen,
            then=lambda tx, t: self.transit.after_top_up(tx, who, str(t.seq)),
        )

    def collection_code(self, token: str, amount_fen: int | None = None) -> str:
        """The merchant's printed (static) code, or a dynamic one asking ``amount_fen``."""
        who = self.authenticate(token)
        if who.kind != "merchant":
            raise Forbidden("forbidden", "only a merchant has a collection code")
        with self.db.transaction(write=False) as tx:
            static = tx.one(
                "SELECT collection_code FROM merchants WHERE participant_id = ?", (who.id,)
            )[0]
        if amount_fen is None:
            return static
        _check_amount(amount_fen, emv.AMOUNT_FEN_MAX)
        code = emv.decode(static)
        return emv.encode(
            emv.MerchantCode(code.merchant_id, code.name, code.city, code.mcc, amount_fen)
        )

    def withdraw(self, token: str, amount_fen: int, request_id: str) -> Receipt:
        """Move money from the wallet back to the bound card's bank."""
        who = self.resident(token)
        _check_amount(amount_fen, TOP_UP_FEN_MAX)
        bank_account_id = self._bound_bank_account(who)
        return self._move(who, "withdraw", request_id, who.account_id, bank_account_id, amount_fen)

    def _bound_bank_account(self, who: Participant) -> int:
        with self.db.transaction() as tx:
            row = tx.one("SELECT bank_account_id FROM cards WHERE participant_id = ?", (who.id,))
        if row is None:
            raise NotFound("card_not_bound", "bind a bank card first")
        return row[0]

    def pay_merchant(
        self, token: str, collection_code: str, amount_fen: int, request_id: str
    ) -> Receipt:
        """Pay the merchant a scanned collection code names, from the payer's wallet."""
        who = self.resident(token)
        code = emv.decode(collection_code)
        _check_amount(amount_fen, None)
        if code.dynamic and code.amount_fen != amount_fen:
            raise Rejected("amount_mismatch", f"code asks {code.amount_fen} fen, not {amount_fen}")
        merchant_account = self._merchant_account(code.merchant_id)
        return self.payments.pay_to_merchant(
            who, "pay_merchant", request_id, merchant_account, amount_fen, code.mcc
        )

    def balance_fen(self, token: str) -> int:
        who = self.account_holder(token)
        with self.db.transaction() as tx:
            return self.ledger.account(tx, who.account_id).balance_fen

    def statement(self, token: str, limit: int = 50, offset: int = 0) -> list[StatementLine]:
        who = self.account_holder(token)
        if not 0 < limit <= STATEMENT_PAGE_MAX or offset < 0:
            raise InvalidRequest("invalid_request", f"limit must be 1..{STATEMENT_PAGE_MAX}")
        with self.db.transaction() as tx:
            rows = self.ledger.transfers_of(tx, who.account_id, limit, offset)
        return [
            StatementLine(
                t.id,
                t.kind,
                t.amount_fen,
                "in" if t.credit_account_id == who.account_id else "out",
                t.timestamp_us,
            )
            for t in rows
        ]

    def audit(self) -> AuditReport:
        return audit(self.db)

    def ensure_admin(self, token: str) -> None:
        """Make ``token`` the platform operator's credential (settlement, metrics). It is
        configuration, not a participant, so it leaves account numbering untouched."""
        if len(token) < ADMIN_TOKEN_CHARS_MIN:
            raise InvalidRequest(
                "invalid_request", f"admin token under {ADMIN_TOKEN_CHARS_MIN} chars"
            )
        self._admin_hash = _hash(token)

    def admin(self, token: str | None) -> None:
        """Refuse anyone but the platform operator."""
        if not token:
            raise CredentialMissing("credential_missing", "send 'Authorization: Bearer <token>'")
        if self._admin_hash and hmac.compare_digest(_hash(token), self._admin_hash):
            return
        who = self.authenticate(token)  # an unknown credential is credential_invalid
        raise Forbidden("forbidden", f"a {who.kind} credential cannot do this")

    def close_settlement(self) -> SettlementReport:
        """Close the open settlement window (the platform operator's daily job)."""
        return self.settlement.close_window()

    # -- helpers ----------------------------------------------------------------

    def account_holder(self, token: str) -> Participant:
        """Readers share their operator's account but may not read it."""
        who = self.authenticate(token)
        if who.kind not in ACCOUNT_HOLDER_KINDS:
            raise Forbidden("forbidden", f"a {who.kind} credential cannot read accounts")
        return who

    def resident(self, token: str) -> Participant:
        who = self.authenticate(token)
        if who.kind != "resident":
            raise Forbidden("forbidden", f"a {who.kind} credential cannot do this")
        return who

    def _merchant_account(self, merchant_id: str) -> int:
        """A merchant's account id; merchant ids never change hands, so remember them."""
        known = self._merchant_accounts.get(merchant_id)
        if known is not None:
            return known
        with self.db.transaction(write=False) as tx:
            row = tx.one(
                "SELECT p.account_id FROM merchants m JOIN participants p"
                " ON p.id = m.participant_id WHERE m.merchant_id = ?",
                (merchant_id,),
            )
        if row is None:
            raise NotFound("merchant_not_found", f"no merchant {merchant_id!r}")
        if len(self._merchant_accounts) < MERCHANTS_REMEMBERED_MAX:
            self._merchant_accounts[merchant_id] = row[0]
        return row[0]

    def _move(
        self,
        who: Participant,
        op: str,
        request_id: str,
        debit_id: int,
        credit_id: int,
        amount_fen: int,
        then: Callable[[Tx, Transfer], object] | None = None,
    ) -> Receipt:
        check_request_id(request_id)
        transfer = self.ledger.apply(
            TransferRequest(
                id=f"{who.id}:{op}:{request_id}",
                debit_account_id=debit_id,
                credit_account_id=credit_id,
                amount_fen=amount_fen,
                kind=op,
            ),
            then,
        )
        return Receipt(
            transfer.id, transfer.amount_fen, transfer.debit_account_id, transfer.credit_account_id
        )


def china_now() -> dt.datetime:
    """The platform's clock: wall time in China (campaign days are local days)."""
    return dt.datetime.now(CHINA_TZ)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not 0 < len(value.strip()) <= NAME_CHARS_MAX:
        raise InvalidRequest("invalid_request", f"{what} must be 1-{NAME_CHARS_MAX} characters")


def _check_amount(amount_fen: int, most: int | None) -> None:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise InvalidRequest("amount_invalid", "amount_fen must be a positive integer")
    if most is not None and amount_fen > most:
        raise InvalidRequest("amount_invalid", f"amount_fen above the limit of {most}")


def _check_card(number: str) -> None:
    """Card numbers are 16-19 digits with a valid Luhn check digit."""
    if not isinstance(number, str) or not number.isdigit() or not 16 <= len(number) <= 19:
        raise InvalidRequest("card_invalid", "card number must be 16-19 digits")
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    if total % 10:
        raise InvalidRequest("card_invalid", "card number fails its check digit")


def luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit (for synthetic residents' cards)."""
    for digit in "0123456789":
        try:
            _check_card(prefix + digit)
            return prefix + digit
        except InvalidRequest:
            continue
    raise AssertionError("some digit always completes a Luhn number")


__all__ = [
    "REQUEST_ID_CHARS_MAX",
    "Participant",
    "Payment",
    "Platform",
    "Receipt",
    "Registration",
    "StatementLine",
]
