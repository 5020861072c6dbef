"""Community services: providers publish priced services, residents book and pay in the app.

For elderly residents the city's app lists home services (a home physiotherapy visit:
30 RMB, published figure), grocery delivery and the like. A provider registers as a
participant of kind ``provider`` (guarded account ``provider:<id>``) and publishes
services at a fixed price. A resident books one and pays at once: a ledger transfer
wallet -> provider of kind ``service_booking`` with id
``<resident id>:book_service:<request_id>``; a retry of that request_id returns the
first booking (or the first refusal).

Refusals:

- ``service_not_found`` (404): no published service with that id.
- ``service_limit_reached`` (409): the provider already publishes
  ``SERVICES_PER_PROVIDER_MAX`` services.
- ``exists_with_different_fields`` (409): the request_id booked another service.
- ``exceeds_credits`` (409): the wallet holds less than the price; recorded by the
  ledger, so a retry of that request_id gets it again; top up and book with a new one.

Limits: a price is at most ``PRICE_FEN_MAX``; lists return at most ``PAGE_MAX`` rows.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

from platform_stub.api import IdemKey, Token
from platform_stub.exceptions import Forbidden, NotFound, Rejected
from platform_stub.features.bills import (
    ID_MAX,
    OFFSET_MAX,
    add_registration_route,
    check_amount,
    check_page,
    check_text,
    committing,
    participant_of_kind,
    payee_of,
    retrying,
)
from platform_stub.features.paycodes import create_tables
from platform_stub.frozen import frozen
from platform_stub.ledger import TransferRequest
from platform_stub.openapi_errors import errors
from platform_stub.records import check_request_id
from platform_stub.service import NAME_CHARS_MAX, REQUEST_ID_CHARS_MAX, Participant, Registration
from platform_stub.storage import Tx, now_us

if TYPE_CHECKING:
    from platform_stub.service import Platform

BOOKING_KIND = "service_booking"
PRICE_FEN_MAX = 1_000_000  # 10,000 RMB: a month of daily home care
SERVICES_PER_PROVIDER_MAX = 50
PAGE_MAX = 100

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS community_services (
        id {ident}, provider_id BIGINT NOT NULL REFERENCES participants(id),
        name TEXT NOT NULL, price_fen BIGINT NOT NULL CHECK (price_fen > 0))""",
    """CREATE TABLE IF NOT EXISTS bookings (
        id {ident}, service_id BIGINT NOT NULL REFERENCES community_services(id),
        provider_id BIGINT NOT NULL, resident_id BIGINT NOT NULL,
        price_fen BIGINT NOT NULL, transfer_id TEXT NOT NULL UNIQUE,
        booked_at_us BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS bookings_by_provider ON bookings(provider_id, id)",
    "CREATE INDEX IF NOT EXISTS bookings_by_resident ON bookings(resident_id, id)",
]

_BOOKING_COLUMNS = "id, service_id, provider_id, resident_id, price_fen, transfer_id"


@frozen
class Offer:
    """A published service: what a resident can book, and its price."""

    id: int
    provider_id: int
    name: str
    price_fen: int


@frozen
class Booking:
    id: int
    service_id: int
    provider_id: int
    resident_id: int
    price_fen: int
    transfer_id: str


class OfferIn(BaseModel):
    name: str = Field(min_length=1, max_length=NAME_CHARS_MAX)
    price_fen: int


class BookingIn(BaseModel):
    service_id: int = Field(ge=1, le=ID_MAX)
    request_id: str = Field(min_length=1, max_length=REQUEST_ID_CHARS_MAX)


class Service:
    """Publish community services and book them, paid through the ledger."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        create_tables(platform, SCHEMA)

    def register_provider(self, name: str) -> Registration:
        return self.platform.register("provider", name)

    def publish(self, provider_token: str, name: str, price_fen: int) -> Offer:
        """A new service at a fixed price. Creating, not moving money: over HTTP it is
        made safe to retry by an Idempotency-Key, like registrations."""
        provider = payee_of(self.platform, provider_token, "provider")
        check_text(name, "name", NAME_CHARS_MAX)
        check_amount(price_fen, PRICE_FEN_MAX)
        return retrying(lambda: self._publish_once(provider, name, price_fen))

    def offers(self, token: str, limit: int = PAGE_MAX, offset: int = 0) -> list[Offer]:
        """Every published service, for anyone with a credential to browse."""
        self.platform.authenticate(token)
        check_page(limit, offset, PAGE_MAX)
        with self.platform.db.transaction() as tx:
            rows = tx.all("SELECT id, provider_id, name, price_fen FROM community_services"
                          " ORDER BY id LIMIT ? OFFSET ?", (limit, offset))
        return [Offer(*row) for row in rows]

    def book(self, token: str, service_id: int, request_id: str) -> Booking:
        """Book a service and pay its price from the wallet, once per request_id."""
        who = self.platform.resident(token)
        check_request_id(request_id)
        transfer_id = f"{who.id}:book_service:{request_id}"
        return retrying(lambda: committing(
            self.platform, lambda tx: self._book_in(tx, who, service_id, transfer_id)))

    def bookings(self, token: str, limit: int = PAGE_MAX, offset: int = 0) -> list[Booking]:
        """A provider's bookings, or a resident's own, oldest first."""
        who = self.platform.authenticate(token)
        column = {"resident": "resident_id", "provider": "provider_id"}.get(who.kind)
        if column is None:
            raise Forbidden("forbidden", f"a {who.kind} credential has no bookings")
        check_page(limit, offset, PAGE_MAX)
        with self.platform.db.transaction() as tx:
            rows = tx.all(f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE {column} = ?"
                          " ORDER BY id LIMIT ? OFFSET ?", (who.id, limit, offset))
        return [Booking(*row) for row in rows]

    def _publish_once(self, provider: Participant, name: str, price_fen: int) -> Offer:
        with self.platform.db.transaction() as tx:
            tx.execute("SELECT id FROM participants WHERE id = ?" + tx.for_update(),
                       (provider.id,))  # racing publishers of one provider queue here
            count = tx.one("SELECT COUNT(*) FROM community_services WHERE provider_id = ?",
                           (provider.id,))[0]
            if count >= SERVICES_PER_PROVIDER_MAX:
                raise Rejected("service_limit_reached",
                               f"{count} services published, the most allowed")
            tx.execute("INSERT INTO community_services (provider_id, name, price_fen)"
                       " VALUES (?, ?, ?)", (provider.id, name, price_fen))
            row = tx.one("SELECT id, provider_id, name, price_fen FROM community_services"
                         " WHERE provider_id = ? ORDER BY id DESC LIMIT 1", (provider.id,))
        return Offer(*row)

    def _book_in(self, tx: Tx, who: Participant, service_id: int, transfer_id: str) -> Booking:
        """Inside one transaction: replay the request's booking, or pay and record it."""
        prior = _booking(tx, transfer_id)
        if prior is not None:
            if prior.service_id != service_id:
                raise Rejected("exists_with_different_fields",
                               f"{transfer_id!r} booked service {prior.service_id}")
            return prior
        offer = _offer(tx, service_id)
        provider = participant_of_kind(tx, offer.provider_id, "provider")
        transfer = self.platform.ledger.transfer(tx, TransferRequest(
            transfer_id, who.account_id, provider.account_id, offer.price_fen, BOOKING_KIND))
        assert transfer.amount_fen == offer.price_fen, transfer_id
        tx.execute(
            "INSERT INTO bookings (service_id, provider_id, resident_id, price_fen, transfer_id,"
            " booked_at_us) VALUES (?, ?, ?, ?, ?, ?)",
            (offer.id, provider.id, who.id, offer.price_fen, transfer_id, now_us()),
        )
        booking = _booking(tx, transfer_id)
        assert booking is not None, transfer_id
        return booking


def add_routes(app: FastAPI, platform: Platform) -> None:
    service: Service = platform.community
    store = app.state.idempotency
    add_registration_route(app, platform, "/v1/providers", "provider")

    @app.post("/v1/services", status_code=201, responses=errors(
        "amount_invalid", "service_limit_reached", "exists_with_different_fields",
        "request_in_progress"))
    def publish_service(body: OfferIn, token: Token, key: IdemKey = None) -> dict:
        return store.run(f"{_caller(platform, token)}:/v1/services", key, body.model_dump(),
                         lambda: asdict(service.publish(token, body.name, body.price_fen)))

    @app.get("/v1/services", responses=errors())
    def list_services(token: Token, limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
                      offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0) -> dict:
        return {"services": [asdict(o) for o in service.offers(token, limit, offset)]}

    @app.post("/v1/bookings", status_code=201, responses=errors(
        "service_not_found", "exceeds_credits", "exists_with_different_fields"))
    def book_service(body: BookingIn, token: Token) -> dict:
        return asdict(service.book(token, body.service_id, body.request_id))

    @app.get("/v1/bookings", responses=errors())
    def list_bookings(token: Token, limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
                      offset: Annotated[int, Query(ge=0, le=OFFSET_MAX)] = 0) -> dict:
        return {"bookings": [asdict(b) for b in service.bookings(token, limit, offset)]}


def _caller(platform: Platform, token: str | None) -> str:
    """Idempotency keys are per provider, so one cannot collide with another's."""
    return f"provider:{payee_of(platform, token, 'provider').id}"


def _offer(tx: Tx, service_id: int) -> Offer:
    row = tx.one("SELECT id, provider_id, name, price_fen FROM community_services WHERE id = ?",
                 (service_id,))
    if row is None:
        raise NotFound("service_not_found", f"no published service {service_id}")
    return Offer(*row)


def _booking(tx: Tx, transfer_id: str) -> Booking | None:
    row = tx.one(f"SELECT {_BOOKING_COLUMNS} FROM bookings WHERE transfer_id = ?",
                 (transfer_id,))
    return None if row is None else Booking(*row)

