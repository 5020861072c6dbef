"""Residents: they shop, ride the bus, see a doctor and pay bills, by app where they
and the other side can, else by transit card or cash.

The adoption arrays on the model say whether a resident uses a wallet today and
which; a ``Resident`` holds what the phone holds (token, e-bus-card key) and what the
app shows (``balance_fen``). Every platform call goes through ``model.log.call``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import mesa

from agents.adoption import NO_WALLET, OURS, RIVAL
from platform_stub.service import luhn_complete
from platform_stub.transit import Credential, RiderKey, derive_private_key

if TYPE_CHECKING:
    from agents.buses import Bus
    from agents.merchants import Merchant
    from agents.model import CityModel
    from agents.ride_codes import PlannedRide

CARD_BIN = "6222"  # synthetic card numbers: bank prefix + resident index + Luhn digit
BANKS = ("ICBC", "CCB", "ABC", "BOC")
SCORE_REFRESH_DAYS = 30  # the app re-reads the credit score about monthly


class Resident(mesa.Agent):
    """One resident. ``index`` is the row in the model's population arrays."""

    model: CityModel

    def __init__(
        self, model: CityModel, index: int, segment: str, name: str, regulars: dict[str, int]
    ) -> None:
        super().__init__(model)
        self.index = index
        self.segment = segment
        self.name = name
        self.regulars = regulars  # merchant kind -> the merchant this resident goes to
        self.token: str | None = None
        self.participant_id: int | None = None
        self.balance_fen = 0  # what the app shows; the ledger is the truth
        self.bus_key: RiderKey | None = None
        self.credential: Credential | None = None
        self.pay_later_transit = False
        self.score_read_day = -SCORE_REFRESH_DAYS
        self._requests = 0

    # -- which wallet, if any ---------------------------------------------------

    @property
    def wallet(self) -> int:
        """The wallet this resident pays with today (NO_WALLET when not using one)."""
        adoption = self.model.adoption
        return int(adoption.wallet[self.index]) if adoption.active[self.index] else NO_WALLET

    @property
    def on_platform(self) -> bool:
        return self.wallet == OURS and self.token is not None

    def onboard(self, when: dt.datetime) -> bool:
        """Open a wallet, bind a card and top up (a returning user just comes back)."""
        if self.token is not None:
            return True
        client = self.model.client
        reg = self.call(when, "register_resident", "app", 0, client.register_resident, self.name)
        if not reg.ok:
            return False
        card = luhn_complete(f"{CARD_BIN}{self.index:011d}")
        bank = BANKS[self.index % len(BANKS)]
        bound = self.call(
            when, "bind_card", "app", 0, client.bind_card, reg.value.token, card, bank
        )
        if not bound.ok:
            return False
        self.token, self.participant_id = reg.value.token, reg.value.participant_id
        funded = self.top_up(when, self.model.scenario.spending.top_up_fen)
        card_share = self.model.scenario.transit.card_share
        commuter = bool(self.model.people.commuter[self.index])
        if funded and commuter and self.model.rng.random() < card_share:
            self.claim_bus_card(when)
        return funded

    def claim_bus_card(self, when: dt.datetime) -> None:
        """The e-bus card: a key on the phone, vouched for by the platform."""
        key = RiderKey.of(derive_private_key(self.model.rider_key_seed, self.index))
        claim = self.call(
            when, "claim_bus_card", "app", 0, self.model.client.claim_bus_card, self.token,
            key.public_key,
        )  # fmt: skip
        if claim.ok:
            self.bus_key, self.credential = key, Credential.from_bytes(claim.value)
            self.read_credit_score(when)

    def read_credit_score(self, when: dt.datetime) -> None:
        """Ride first pay later is open when the city runs it and the score passes."""
        credit = self.model.scenario.credit
        self.score_read_day = self.model.day
        if not credit.pay_later:
            self.pay_later_transit = False
            return
        score = self.call(
            when, "credit_score", "app", 0, self.model.client.credit_score, self.token
        )
        self.pay_later_transit = (
            score.ok and score.value.score >= credit.pay_later_transit_min_score
        )

    # -- paying ---------------------------------------------------------------

    def shop(self, when: dt.datetime, merchant: Merchant, amount_fen: int, rush: bool) -> None:
        """One purchase: by app if both sides can, else cash if the merchant takes it."""
        model, wallet = self.model, self.wallet
        merchant.customers_today += 1
        if wallet != NO_WALLET and merchant.takes(wallet):
            if self._pay_by_app(when, merchant, amount_fen, wallet):
                merchant.rush_app += rush
                return
        elif wallet != NO_WALLET:
            merchant.app_requests_today += 1
        if merchant.refuses_cash:
            model.cannot_pay(self.segment)
            return
        merchant.rush_cash += rush
        model.count("cash")

    def _pay_by_app(
        self, when: dt.datetime, merchant: Merchant, amount_fen: int, wallet: int
    ) -> bool:
        """Try up to ``payment_attempts_max`` times; underground, an attempt may find no
        signal. A failure is a bad experience that may make the resident lapse."""
        model, rules = self.model, self.model.scenario.merchants
        for _ in range(rules.payment_attempts_max):
            if merchant.underground and model.rng.random() < rules.underground_failure:
                model.count("failed_online")
                continue
            if wallet == RIVAL:
                model.count("rival_wallet")
                return True
            if self._pay_merchant(when, merchant, amount_fen):
                return True
            break  # declined by the platform: retrying would not help
        model.adoption.after_failure(self.index)
        return False

    def _pay_merchant(self, when: dt.datetime, merchant: Merchant, amount_fen: int) -> bool:
        if self.balance_fen < amount_fen:
            self.top_up(when, max(self.model.scenario.spending.top_up_fen, amount_fen))
        paid = self.call(
            when, "pay_merchant", "merchant_qr", amount_fen, self.model.client.pay_merchant,
            self.token, merchant.collection_code, amount_fen, self.request_id(),
            target_id=merchant.index,
        )  # fmt: skip
        if not paid.ok:
            self.model.count("declined")
            return False
        self.balance_fen -= paid.value.amount_fen  # a campaign may have paid part
        self.model.count("merchant_qr")
        self.model.count("promo_cost_fen", amount_fen - paid.value.amount_fen)
        if not merchant.integrated_register:
            self.model.count("payments_unbooked")
        return True

    def ride(self, when: dt.datetime, bus: Bus, planned: PlannedRide) -> None:
        """Board a bus: the offline code where the bus has a reader and the rider the
        card, else the transit card or cash."""
        model = self.model
        habit = model.rng.random() >= model.scenario.transit.code_share
        if habit or not (bus.has_reader and self.credential is not None and self.on_platform):
            model.count("transit_card" if model.people.transit_card[self.index] else "bus_cash")
            return
        fare_fen = model.scenario.transit.fare_fen
        if model.day - self.score_read_day >= SCORE_REFRESH_DAYS:
            self.read_credit_score(when)
        if not self.pay_later_transit and self.balance_fen < fare_fen:
            self.top_up(when, model.scenario.spending.top_up_fen)  # prepay: no credit line
        scanned = model.ride_codes.scan(planned, self, bus, model.unix_s(when))
        if not scanned.accepted:
            model.note_reader_rejection(scanned.reason)
            model.count("transit_card" if model.people.transit_card[self.index] else "bus_cash")
            return
        self.balance_fen -= fare_fen  # what the app expects; clearing may differ
        model.count("offline_qr")

    def top_up(self, when: dt.datetime, amount_fen: int) -> bool:
        result = self.call(
            when, "top_up", "bank_card", amount_fen, self.model.client.top_up, self.token,
            amount_fen, self.request_id(),
        )  # fmt: skip
        if result.ok:
            self.balance_fen += amount_fen
        return result.ok

    def request_id(self) -> str:
        self._requests += 1
        return f"r{self._requests}"

    def call(self, when, operation, channel, amount_fen, fn, *args, target_id=None):  # noqa: ANN001, ANN201
        """A platform call on this resident's behalf, logged with its latency."""
        return self.model.log.call(
            when, self.model.day, self.index, self.segment, operation, channel, amount_fen, fn,
            *args, target_id=target_id,
        )  # fmt: skip
