"""The platform's transit side: operators, their bus readers, bus cards, clearing.

Readers are participants of their own (kind ``reader``) with their own
credentials; a reader's money account is its operator's, so fares land with the
operator while each reader can only upload its own taps and read the deny list.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from platform_stub import buscards, clearing
from platform_stub.clearing import Clearing, Fares, Reader, TapOutcome, UploadedTap
from platform_stub.exceptions import Forbidden, InvalidRequest, NotFound
from platform_stub.frozen import frozen
from platform_stub.storage import Tx
from platform_stub.transit.credential import Credential, issue_credential
from platform_stub.transit.keys import PlatformKeyring

if TYPE_CHECKING:
    from platform_stub.service import Participant, Platform, Registration

STARTER_CREDIT_LIMIT_FEN = 400  # two flat fares: the first-ride risk open-loop transit accepts
CREDENTIAL_LIFETIME_S = 365 * 24 * 3600
KEYRING_SCHEMA = "CREATE TABLE IF NOT EXISTS platform_keyring (id INTEGER PRIMARY KEY, ring TEXT)"


@frozen
class TransitMetrics:
    taps: int
    cleared: int
    rejected_by_reason: dict[str, int]
    debt_fen: int
    deny_list_size: int


class TransitService:
    def __init__(self, platform: Platform, fares: Fares, keyring_seed: bytes | None) -> None:
        self.platform = platform
        self.ledger = platform.ledger
        ident = platform.ident
        with platform.db.transaction() as tx:
            buscards.create_tables(tx, ident)
            clearing.create_tables(tx)
            tx.execute(KEYRING_SCHEMA)
            self.keyring = _load_or_make_keyring(tx, keyring_seed)
        self._keyring_lock = threading.Lock()
        self.clearing = Clearing(self.ledger, self.keyring.public_keys, fares)

    # -- participants -------------------------------------------------------------

    def register_operator(self, name: str) -> Registration:
        return self.platform.register("operator", name)

    def register_reader(self, operator_token: str, name: str) -> Registration:
        """A bus reader of the calling operator; fares it clears go to that operator."""
        operator = self.platform.authenticate(operator_token)
        if operator.kind != "operator":
            raise Forbidden("forbidden", "only a bus operator registers readers")
        return self.platform.register("reader", name, account_id=operator.account_id)

    # -- riders -------------------------------------------------------------------

    def claim_bus_card(self, token: str, rider_public_key: bytes) -> bytes:
        """Issue the signed credential the app keeps offline; card id = resident id."""
        who = self.platform.resident(token)
        if len(rider_public_key) != 32:
            raise InvalidRequest("invalid_request", "rider_public_key must be 32 bytes")
        expires_at_s = int(time.time()) + CREDENTIAL_LIFETIME_S
        limit_fen = self.credit_limit_fen(who.id)
        credential = issue_credential(self.keyring, who.id, rider_public_key, limit_fen,
                                      expires_at_s)
        with self.platform.db.transaction() as tx:
            buscards.add_card(tx, self.ledger, who.id, limit_fen, expires_at_s)
        return credential.to_bytes()

    def credit_limit_fen(self, participant_id: int) -> int:
        """Ride first, pay later, as far as the rider's credit score allows; everyone gets
        the starter line, so a new resident's first rides are covered."""
        scored = getattr(self.platform, "credit", None)
        by_score = scored.credit_limit_fen(participant_id) if scored else 0
        return max(by_score, STARTER_CREDIT_LIMIT_FEN)

    def revoke_bus_card(self, token: str) -> None:
        """A rider whose phone is lost: codes made after now are refused everywhere."""
        who = self.platform.resident(token)
        with self.platform.db.transaction() as tx:
            if buscards.card(tx, who.id) is None:
                raise NotFound("card_not_bound", "this resident has no bus card")
            buscards.revoke(tx, who.id, int(time.time()))

    def after_top_up(self, tx: Tx, who: Participant, tag: str) -> int:
        """A top-up repays transit debt first; returns the fen repaid."""
        card = buscards.card(tx, who.id)
        if card is None:
            return 0
        return buscards.repay_debt(tx, self.ledger, card, who.account_id, tag)

    # -- readers ------------------------------------------------------------------

    def rotate_keys(self) -> int:
        """Start signing new credentials with a fresh platform key. Older key ids stay
        published, so credentials they signed keep working until they expire."""
        with self._keyring_lock, self.platform.db.transaction() as tx:
            key_id = self.keyring.rotate(int(time.time()))
            tx.execute("UPDATE platform_keyring SET ring = ? WHERE id = 1",
                       (self.keyring.to_json(),))
        return key_id

    def public_keys(self, reader_token: str) -> dict[int, bytes]:
        self._reader(reader_token)
        return self.keyring.public_keys()

    def deny_delta(self, reader_token: str, since: int) -> buscards.DenyDelta:
        self._reader(reader_token)
        with self.platform.db.transaction() as tx:
            return buscards.deny_delta(tx, since)

    def upload_taps(
        self, reader_token: str, batch_id: str, taps: list[UploadedTap]
    ) -> list[TapOutcome]:
        return self.clearing.upload(self._reader(reader_token), batch_id, taps)

    def _reader(self, token: str) -> Reader:
        who = self.platform.authenticate(token)
        if who.kind != "reader":
            raise Forbidden("forbidden", "only a bus reader may do this")
        return Reader(reader_id(who.id), who.account_id)

    # -- metrics ------------------------------------------------------------------

    def metrics(self) -> TransitMetrics:
        with self.platform.db.transaction() as tx:
            rows = tx.all(
                "SELECT outcome, reason, COUNT(*) FROM tap_outcomes GROUP BY outcome, reason"
            )
            debt = tx.one(
                "SELECT COALESCE(SUM(debits_posted - credits_posted), 0)"
                " FROM accounts WHERE kind = 'transit_credit'"
            )[0]
            denied = buscards.deny_list_size(tx)
        rejected = {reason: n for outcome, reason, n in rows if outcome == "rejected"}
        cleared = sum(n for outcome, _, n in rows if outcome == "cleared")
        return TransitMetrics(
            cleared + sum(rejected.values()), cleared, rejected, int(debt), denied
        )


def reader_id(participant_id: int) -> str:
    return f"R{participant_id}"


def credential_from_bytes(data: bytes) -> Credential:
    return Credential.from_bytes(data)


def _load_or_make_keyring(tx: Tx, seed: bytes | None) -> PlatformKeyring:
    row = tx.one("SELECT ring FROM platform_keyring WHERE id = 1")
    if row is not None:
        return PlatformKeyring.from_json(row[0])
    now_s = int(time.time())
    ring = PlatformKeyring.from_seed(seed, now_s) if seed else PlatformKeyring.generate(now_s)
    tx.execute("INSERT INTO platform_keyring (id, ring) VALUES (1, ?)", (ring.to_json(),))
    return ring
