"""Residents: they shop every day, by app where they and the merchant can, else cash."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import mesa

from platform_stub.service import luhn_complete
from platform_stub.transit import (
    Credential,
    derive_private_key,
    encode_code_text,
    public_key_bytes,
    sign_code,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agents.buses import Bus
    from agents.merchants import Merchant
    from agents.model import CityModel

CARD_BIN = "6222"  # synthetic card numbers: bank prefix + resident index + Luhn digit
BANKS = ("ICBC", "CCB", "ABC", "BOC")


class Resident(mesa.Agent):
    """One resident. ``index`` is the row in the model's adoption arrays."""

    model: CityModel

    def __init__(
        self,
        model: CityModel,
        index: int,
        segment: str,
        name: str,
        regular_merchants: list[int],
        route: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(model)
        self.index = index
        self.segment = segment
        self.name = name
        self.regular_merchants = regular_merchants
        self.token: str | None = None
        self.balance_fen = 0  # what the app shows; the ledger is the truth
        self.route = route  # the two buses of a rider's line, or None for non-riders
        self.bus_key: Ed25519PrivateKey | None = None
        self.credential: Credential | None = None
        self._requests = 0

    @property
    def adopted(self) -> bool:
        return self.token is not None

    def onboard(self, when: dt.datetime) -> bool:
        """Open a wallet, bind a card and top up; adopted only if all three worked."""
        client = self.model.client
        reg = self._call(when, "register_resident", "app", 0, client.register_resident, self.name)
        if not reg.ok:
            return False
        card = luhn_complete(f"{CARD_BIN}{self.index:011d}")
        bank = BANKS[self.index % len(BANKS)]
        bound = self._call(
            when, "bind_card", "app", 0, client.bind_card, reg.value.token, card, bank
        )
        if not bound.ok:
            return False
        self.token = reg.value.token
        funded = self.top_up(when, self.model.scenario.spending.top_up_fen)
        if funded and self.route is not None:
            self.claim_bus_card(when)
        return funded

    def claim_bus_card(self, when: dt.datetime) -> None:
        """Riders who want it get the e-bus card: a key on the phone, vouched for."""
        if self.model.rng.random() >= self.model.scenario.transit.card_share:
            return
        key = derive_private_key(self.model.rider_key_seed, self.index)
        claim = self._call(
            when,
            "claim_bus_card",
            "app",
            0,
            self.model.client.claim_bus_card,
            self.token,
            public_key_bytes(key),
        )
        if claim.ok:
            self.bus_key, self.credential = key, Credential.from_bytes(claim.value)

    def ride(self, when: dt.datetime, bus: Bus) -> str:
        """Board a bus: show the offline code if there is a card, else pay cash."""
        if self.credential is None:
            return "bus_cash"
        now_s = self.model.unix_s(when)
        code = sign_code(self.credential, self.bus_key, now_s, self.model.rng.bytes(8))
        scanned = bus.scan(encode_code_text(code), now_s)
        if not scanned.accepted:
            self.model.note_reader_rejection(scanned.reason)
            return "bus_cash"
        self.balance_fen -= self.model.scenario.transit.fare_fen  # what the app expects
        return "offline_qr"

    def top_up(self, when: dt.datetime, amount_fen: int) -> bool:
        result = self._call(
            when,
            "top_up",
            "bank_card",
            amount_fen,
            self.model.client.top_up,
            self.token,
            amount_fen,
            self._request_id(),
        )
        if result.ok:
            self.balance_fen += amount_fen
        return result.ok

    def shop(self, when: dt.datetime, merchant: Merchant, amount_fen: int) -> str:
        """One purchase; returns the channel it went through (merchant_qr or cash)."""
        merchant.customers_today += 1
        if not self.adopted:
            return "cash"
        if not merchant.accepts_qr:
            merchant.app_requests_today += 1
            return "cash"
        if self.balance_fen < amount_fen:
            self.top_up(when, self.model.scenario.spending.top_up_fen)
        paid = self._call(
            when,
            "pay_merchant",
            "merchant_qr",
            amount_fen,
            self.model.client.pay_merchant,
            self.token,
            merchant.collection_code,
            amount_fen,
            self._request_id(),
            target_id=merchant.index,
        )
        if not paid.ok:
            return "declined"
        self.balance_fen -= paid.value.amount_fen  # a campaign may have paid part
        return "merchant_qr"

    def _request_id(self) -> str:
        self._requests += 1
        return f"r{self._requests}"

    def _call(self, when, operation, channel, amount_fen, fn, *args, target_id=None):  # noqa: ANN001, ANN202
        return self.model.log.call(
            when,
            self.model.day,
            self.index,
            self.segment,
            operation,
            channel,
            amount_fen,
            fn,
            *args,
            target_id=target_id,
        )
