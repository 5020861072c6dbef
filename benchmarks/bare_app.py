"""A bare FastAPI JSON endpoint on the platform's own stack: the HTTP benchmark's floor.

The same FastAPI and pydantic body model, served by the same uvicorn with the same
settings; it answers a payment with a receipt-shaped JSON body and touches nothing
else. The endpoint is ``async``: the stack's fastest path, with no hop to a thread (a
plain ``def`` endpoint answers about half as many). What the platform spends beyond
this is its own work: authentication, the EMV code, the hop to the ledger lane, the
ledger, SQLite.

    python -m uvicorn bare_app:app --app-dir benchmarks --port 8081 --log-level warning
"""

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="bare")


class Payment(BaseModel):
    """The fields and limits of the platform's ``POST /v1/payments`` body."""

    collection_code: str = Field(min_length=1, max_length=512)
    amount_fen: int
    request_id: str = Field(min_length=1, max_length=64)


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/v1/payments", status_code=201)
async def pay(body: Payment) -> dict:
    return {
        "transfer_id": f"bare:pay_merchant:{body.request_id}",
        "amount_fen": body.amount_fen,
        "debit_account_id": 1,
        "credit_account_id": 2,
    }
