"""The platform's HTTP API (FastAPI): a thin layer over :class:`Platform`.

Errors are problem+json (RFC 9457) with the stable ``code`` of
:mod:`platform_stub.exceptions`; the HTTP client turns them back into the same
exception classes, so agents see identical outcomes in-process and over HTTP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from platform_stub.body_limit import BATCH_PATH, BodyLimit
from platform_stub.clearing import BATCH_TAPS_MAX, UploadedTap
from platform_stub.emv import render_png
from platform_stub.exceptions import CashlessError
from platform_stub.features import feature_modules
from platform_stub.idempotency import IdempotencyStore
from platform_stub.ledger_lane import LedgerLane
from platform_stub.openapi_errors import errors, problem
from platform_stub.service import Platform


class NewResident(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class NewMerchant(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    city: str = Field(min_length=1, max_length=64)
    mcc: str = Field(default="5812", pattern=r"^\d{4}$")


class CardBinding(BaseModel):
    card_number: str = Field(min_length=16, max_length=19)
    bank: str = Field(min_length=1, max_length=64)


class TopUp(BaseModel):
    amount_fen: int
    request_id: str = Field(min_length=1, max_length=64)


class MerchantPayment(BaseModel):
    collection_code: str = Field(min_length=1, max_length=512)
    amount_fen: int
    request_id: str = Field(min_length=1, max_length=64)


class NewOperator(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class BusCardClaim(BaseModel):
    rider_public_key: str = Field(pattern=r"^[0-9a-f]{64}$", description="Ed25519, hex")


class NewCampaign(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    discount_fen: int = Field(gt=0, le=1_000_000)
    min_amount_fen: int = Field(ge=0, le=100_000_000)
    budget_fen: int = Field(gt=0, le=10**12)
    start_date: dt.date
    end_date: dt.date
    weekdays: list[Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]] = Field(
        default=[], max_length=7
    )
    mccs: list[Annotated[str, Field(pattern=r"^\d{4}$")]] = Field(default=[], max_length=50)
    per_person_per_day: int = Field(default=1, gt=0, le=100)


class TapIn(BaseModel):
    reader_seq: int = Field(ge=0, le=2**62)
    code: str = Field(min_length=1, max_length=1024)
    scanned_at_s: int = Field(ge=0, le=2**32)


class TapBatch(BaseModel):
    batch_id: str = Field(min_length=1, max_length=128)
    taps: list[TapIn] = Field(min_length=1, max_length=BATCH_TAPS_MAX)


async def _bearer(authorization: Annotated[str | None, Header()] = None) -> str | None:
    """The bearer token, if any. ``async`` though it never awaits: FastAPI runs a plain
    ``def`` dependency in its thread pool, a thread hop per request for a string split."""
    if authorization and authorization.startswith("Bearer "):
        return authorization.removeprefix("Bearer ").strip()
    return None


Token = Annotated[str | None, Depends(_bearer)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)]


def _scope(path: str, token: str | None) -> str:
    """Keys are per caller and per endpoint: one caller cannot collide with another."""
    caller = hashlib.sha256(token.encode()).hexdigest()[:16] if token else "anonymous"
    return f"{caller}:{path}"


def create_app(platform: Platform) -> FastAPI:
    """Build the app around one platform instance (one database)."""
    lane = LedgerLane(platform.db)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        lane.close()  # what is queued is answered first

    app = FastAPI(title="Cashless City reference platform", version="0.1.0", lifespan=lifespan)
    app.state.platform = platform
    app.state.lane = lane
    app.state.idempotency = IdempotencyStore(platform.db)
    _install_error_handlers(app)
    _install_size_limit(app)
    _add_routes(app, platform)
    _add_transit_routes(app, platform)
    for module in feature_modules().values():
        module.add_routes(app, platform)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CashlessError)
    async def _cashless(_: Request, exc: CashlessError) -> JSONResponse:
        return problem(exc.http_status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(400, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")


def _install_size_limit(app: FastAPI) -> None:
    app.add_middleware(BodyLimit)


def _add_routes(app: FastAPI, platform: Platform) -> None:
    store = app.state.idempotency
    lane = app.state.lane

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post(
        "/v1/residents",
        status_code=201,
        responses=errors("exists_with_different_fields", "request_in_progress", credential=False),
    )
    def register_resident(body: NewResident, key: IdemKey = None) -> dict:
        return store.run(
            _scope("/v1/residents", None),
            key,
            body.model_dump(),
            lambda: asdict(platform.register_resident(body.name)),
        )

    @app.post(
        "/v1/merchants",
        status_code=201,
        responses=errors("exists_with_different_fields", "request_in_progress", credential=False),
    )
    def register_merchant(body: NewMerchant, key: IdemKey = None) -> dict:
        return store.run(
            _scope("/v1/merchants", None),
            key,
            body.model_dump(),
            lambda: asdict(platform.register_merchant(body.name, body.city, body.mcc)),
        )

    @app.post(
        "/v1/cards",
        status_code=201,
        responses=errors("card_invalid", "exists_with_different_fields", "request_in_progress"),
    )
    def bind_card(body: CardBinding, token: Token, key: IdemKey = None) -> dict:
        return store.run(
            _scope("/v1/cards", token),
            key,
            body.model_dump(),
            lambda: {"card": platform.bind_card(token, body.card_number, body.bank)},
        )

    @app.post(
        "/v1/topups",
        status_code=201,
        responses=errors("amount_invalid", "card_not_bound", "exists_with_different_fields"),
    )
    def top_up(body: TopUp, token: Token) -> dict:
        return asdict(platform.top_up(token, body.amount_fen, body.request_id))

    @app.get("/v1/collection-code", responses=errors("amount_invalid"))
    def collection_code(token: Token, amount_fen: int | None = None) -> dict:
        return {"payload": platform.collection_code(token, amount_fen)}

    @app.get(
        "/v1/collection-code.png",
        response_class=Response,
        responses=errors("amount_invalid") | {200: {"content": {"image/png": {}}}},
    )
    def collection_code_png(token: Token, amount_fen: int | None = None) -> Response:
        payload = platform.collection_code(token, amount_fen)
        return Response(render_png(payload), media_type="image/png")

    @app.post(
        "/v1/withdrawals",
        status_code=201,
        responses=errors(
            "amount_invalid", "card_not_bound", "exceeds_credits", "exists_with_different_fields"
        ),
    )
    def withdraw(body: TopUp, token: Token) -> dict:
        return asdict(platform.withdraw(token, body.amount_fen, body.request_id))

    @app.post(
        "/v1/payments",
        status_code=201,
        responses=errors(
            "qr_malformed",
            "qr_crc_mismatch",
            "amount_invalid",
            "amount_mismatch",
            "merchant_not_found",
            "exceeds_credits",
            "exists_with_different_fields",
        ),
    )
    async def pay_merchant(body: MerchantPayment, token: Token) -> dict:
        receipt = await lane.run(
            platform.pay_merchant, token, body.collection_code, body.amount_fen, body.request_id
        )
        return asdict(receipt)

    @app.get("/v1/balance", responses=errors())
    def balance(token: Token) -> dict:
        return {"balance_fen": platform.balance_fen(token)}

    @app.get("/v1/statement", responses=errors())
    def statement(token: Token, limit: int = 50, offset: int = 0) -> dict:
        lines = platform.statement(token, limit, offset)
        return {"lines": [asdict(line) for line in lines], "limit": limit, "offset": offset}


def _add_transit_routes(app: FastAPI, platform: Platform) -> None:
    transit, store = platform.transit, app.state.idempotency

    @app.post(
        "/v1/operators",
        status_code=201,
        responses=errors("exists_with_different_fields", "request_in_progress", credential=False),
    )
    def register_operator(body: NewOperator, key: IdemKey = None) -> dict:
        return store.run(
            _scope("/v1/operators", None),
            key,
            body.model_dump(),
            lambda: asdict(transit.register_operator(body.name)),
        )

    @app.post(
        "/v1/readers",
        status_code=201,
        responses=errors("exists_with_different_fields", "request_in_progress"),
    )
    def register_reader(body: NewOperator, token: Token, key: IdemKey = None) -> dict:
        return store.run(
            _scope("/v1/readers", token),
            key,
            body.model_dump(),
            lambda: asdict(transit.register_reader(token, body.name)),
        )

    @app.post(
        "/v1/buscards",
        status_code=201,
        responses=errors("exists_with_different_fields", "request_in_progress"),
    )
    def claim_bus_card(body: BusCardClaim, token: Token, key: IdemKey = None) -> dict:
        def claim() -> dict:
            credential = transit.claim_bus_card(token, bytes.fromhex(body.rider_public_key))
            return {"credential": credential.hex()}

        return store.run(_scope("/v1/buscards", token), key, body.model_dump(), claim)

    @app.post("/v1/buscards/revoke", responses=errors("card_not_bound"))
    def revoke_bus_card(token: Token) -> dict:
        transit.revoke_bus_card(token)
        return {"revoked": True}

    @app.get("/v1/transit/keys", responses=errors())
    def public_keys(token: Token) -> dict:
        return {"keys": {str(k): v.hex() for k, v in transit.public_keys(token).items()}}

    @app.get("/v1/transit/deny", responses=errors())
    def deny_delta(token: Token, since: int = 0) -> dict:
        return asdict(transit.deny_delta(token, since))

    @app.post(BATCH_PATH, responses=errors("exists_with_different_fields"))
    def upload_taps(body: TapBatch, token: Token) -> dict:
        taps = [UploadedTap(t.reader_seq, t.code, t.scanned_at_s) for t in body.taps]
        outcomes = transit.upload_taps(token, body.batch_id, taps)
        return {"outcomes": [asdict(o) for o in outcomes]}

    @app.post("/v1/transit/keys/rotate", responses=errors())
    def rotate_keys(token: Token) -> dict:
        platform.admin(token)
        return {"active_key_id": transit.rotate_keys()}

    @app.get("/v1/transit/metrics", responses=errors())
    def transit_metrics(token: Token) -> dict:
        platform.admin(token)
        return asdict(transit.metrics())

    @app.post(
        "/v1/campaigns",
        status_code=201,
        responses=errors("amount_invalid", "exists_with_different_fields"),
    )
    def create_campaign(body: NewCampaign, token: Token) -> dict:
        platform.admin(token)
        campaign = platform.promotions.create(
            body.name,
            body.discount_fen,
            body.min_amount_fen,
            body.budget_fen,
            body.start_date,
            body.end_date,
            tuple(body.weekdays),
            tuple(body.mccs),
            body.per_person_per_day,
        )
        return asdict(campaign) | {"budget_fen": body.budget_fen}

    @app.post("/v1/settlement/close", responses=errors())
    def close_settlement(token: Token) -> dict:
        platform.admin(token)
        report = platform.close_settlement()
        return {
            "window_id": report.window_id,
            "first_seq": report.first_seq,
            "last_seq": report.last_seq,
            "payout_total_fen": report.payout_total_fen,
            "positions": [asdict(p) | {"net_fen": p.net_fen} for p in report.positions],
        }
