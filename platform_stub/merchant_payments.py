"""Payments from a resident's wallet to a merchant: one transaction each, replayed by
id, less any campaign discount, announced to the payment listeners.

:meth:`Platform.pay_merchant` (a scanned collection code) and the payment-code feature
(:mod:`platform_stub.features.paycodes`) both end here, through
:meth:`MerchantPayments.pay_to_merchant`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_stub.exceptions import PlatformError, StorageUnavailable
from platform_stub.frozen import frozen
from platform_stub.ledger import CONFLICT_RETRIES_MAX, TransferRequest
from platform_stub.promotions import Campaign
from platform_stub.records import Participant, Payment, Receipt, check_request_id
from platform_stub.storage import Tx

if TYPE_CHECKING:
    from platform_stub.service import Platform


@frozen
class _Order:
    """A payment to a merchant as asked: who pays, what kind, the ledger id it gets, to
    which merchant account, how much and under which merchant category code."""

    payer: Participant
    kind: str
    transfer_id: str
    merchant_account_id: int
    amount_fen: int
    mcc: str


class MerchantPayments:
    """Wallet-to-merchant payments of one platform (its database, ledger, campaigns,
    clock and payment listeners, read from the platform at each call: simulations set
    the platform's clock after start-up)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.db = platform.db
        self.ledger = platform.ledger
        self.promotions = platform.promotions

    def pay_to_merchant(
        self,
        payer: Participant,
        kind: str,
        request_id: str,
        merchant_account_id: int,
        amount_fen: int,
        mcc: str = "",
    ) -> Receipt:
        """Wallet to merchant, less any campaign discount (the campaign pays that part),
        then tell the payment listeners (voice announcements)."""
        check_request_id(request_id)
        order = _Order(
            payer, kind, f"{payer.id}:{kind}:{request_id}", merchant_account_id, amount_fen, mcc
        )
        for attempt in range(CONFLICT_RETRIES_MAX):
            try:
                receipt = self._pay_once(order)
                break
            except StorageUnavailable:
                if attempt + 1 == CONFLICT_RETRIES_MAX:
                    raise
        payment = Payment(order.transfer_id, merchant_account_id, amount_fen, kind)
        for listener in self.platform.payment_listeners:
            listener(payment)
        return receipt

    def _pay_once(self, order: _Order) -> Receipt:
        """One transaction: replay a known id as it went, else price, pay, discount."""
        refusal: PlatformError | None = None
        with self.db.transaction() as tx:
            prior = self.ledger.outcome_of(tx, order.transfer_id)
            if isinstance(prior, PlatformError):
                refusal = prior
            elif prior is not None:
                return self._receipt_of(tx, order)
            else:
                # A payment a campaign paid whole left no transfer, only a campaign use;
                # with no campaign at all there is none to look for.
                campaigns = self.promotions.campaigns(tx)
                if campaigns and self.promotions.discount_given(tx, order.transfer_id):
                    return self._receipt_of(tx, order)
                try:
                    return self._pay_fresh(tx, order, campaigns)
                except PlatformError as err:
                    refusal = err  # the refusal's record commits with this transaction
        raise refusal

    def _pay_fresh(self, tx: Tx, order: _Order, campaigns: list[Campaign]) -> Receipt:
        """Price, pay, discount; the caller found the order's transfer id untried in
        ``tx`` and read the ``campaigns``."""
        payer, amount_fen = order.payer, order.amount_fen
        offer, day = None, None
        if campaigns:  # the day matters only to a campaign
            day = self.platform.clock().date()
            offer = self.promotions.offer(tx, payer.id, order.mcc, amount_fen, day, campaigns)
        discount = offer[1] if offer else 0
        paid_fen = 0
        if amount_fen > discount:
            request = TransferRequest(
                order.transfer_id,
                payer.account_id,
                order.merchant_account_id,
                amount_fen - discount,
                order.kind,
            )
            paid_fen = self.ledger.transfer_fresh(tx, request).amount_fen
        if offer:
            self.promotions.grant(
                tx, offer[0], payer.id, order.merchant_account_id, discount, day, order.transfer_id
            )
        return Receipt(
            order.transfer_id, paid_fen, payer.account_id, order.merchant_account_id, discount
        )

    def _receipt_of(self, tx: Tx, order: _Order) -> Receipt:
        """The receipt of an order paid before: what the wallet and a campaign paid."""
        paid = self.ledger.outcome_of(tx, order.transfer_id)
        paid_fen = paid.amount_fen if paid is not None else 0
        discount = self.promotions.discount_given(tx, order.transfer_id) or 0
        return Receipt(
            order.transfer_id, paid_fen, order.payer.account_id, order.merchant_account_id,
            discount,
        )
