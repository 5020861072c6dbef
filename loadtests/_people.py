"""The residents and riders a load test acts for, shared by the Locust users and the
replay (which runs without Locust, so nothing here imports it)."""

from __future__ import annotations

from dataclasses import dataclass

from platform_stub.transit import Credential, RiderKey, encode_code_text, sign_code


@dataclass
class Resident:
    """A resident another role acts for (a rider at a bus door, a customer at a till).
    ``wallet_fen`` is the role's own count of the wallet; None once a reply left it unknown."""

    participant_id: int
    token: str
    account_id: int
    wallet_fen: int | None = 0

    def spent(self, amount_fen: int) -> None:
        if self.wallet_fen is not None:
            self.wallet_fen -= amount_fen

    def received(self, amount_fen: int) -> None:
        self.spent(-amount_fen)


@dataclass
class Rider:
    """A resident with a bus card: the phone's key and the platform's credential."""

    resident: Resident
    key: RiderKey
    credential: Credential

    def code(self, now_s: int) -> str:
        """What the app shows: a fresh code signed offline with the rider's key."""
        return encode_code_text(sign_code(self.credential, self.key, now_s))
