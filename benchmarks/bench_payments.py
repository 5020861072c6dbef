"""In-process merchant payments per second, beside a bare SQLite loop in the same run.

    python benchmarks/bench_payments.py [--quick] [--payments 3000] [--rounds 2]

Figure 1, ``payments_per_s``: ``InProcessClient.pay_merchant`` (what agents call): the
bearer token, the EMV collection code, the merchant, one transaction that looks up the
request's id, checks campaigns and writes one ledger transfer. Figure 2,
``batch_transfers_per_s``: the same payer-to-merchant transfers through
``Ledger.apply_batch`` in batches of ``--batch`` (one commit each, as clearing does).

Baseline for both: a bare ``sqlite3`` loop on its own file in the same folder with the
settings ``platform_stub.storage`` gives its connection (WAL, synchronous=NORMAL,
foreign keys, the same autocheckpoint bound and background checkpoints, autocommit with
explicit ``BEGIN IMMEDIATE``) and the same ledger tables
and indexes, doing per payment one transaction: insert a transfer row, update two
balances, commit. The three take turns, ``--rounds`` each, and each keeps its best round.
Targets: payments at least 0.5 of the bare loop; batches beat it (ratio above 1).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo and this folder importable
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).parent)]

from _protocol import best_of, main, result

from platform_stub import InProcessClient, Platform
from platform_stub.checkpoint import Checkpointer
from platform_stub.ledger import TransferRequest, schema
from platform_stub.service import luhn_complete
from platform_stub.storage import SQLITE_PRAGMAS

PAYERS = 64
MERCHANTS = 8
TOP_UP_FEN = 5_000_000
PAYMENT_FEN = 1_200
PAYMENTS = 3_000
PAYMENTS_QUICK = 2_000
BATCH = 500


class World:
    """A platform with payers and merchants, and a bare ledger file beside it."""

    def __init__(self, folder: Path) -> None:
        self.platform = Platform.open(f"sqlite:///{folder / 'ledger.db'}")
        self.client = InProcessClient(self.platform)
        merchants = [self.client.register_merchant(f"Stall {n}", "Wuhan") for n in range(MERCHANTS)]
        self.payers = []
        for n in range(PAYERS):
            reg = self.client.register_resident(f"Payer {n}")
            self.client.bind_card(reg.token, luhn_complete(f"6222{n:011d}"), "ICBC")
            self.client.top_up(reg.token, TOP_UP_FEN, f"bench-{n}")
            self.payers.append((reg, merchants[n % MERCHANTS]))
        self.bare = _bare_connection(folder / "bare.db", len(self.payers) + MERCHANTS)
        self.bare_checkpointer = Checkpointer(folder / "bare.db")  # as the platform's file has
        self.round = 0

    def pairs(self, count: int) -> list[tuple]:
        """``count`` (payer, merchant) pairs and a prefix that keeps ids fresh each round."""
        self.round += 1
        return [self.payers[i % len(self.payers)] for i in range(count)]

    def payments_per_s(self, count: int) -> float:
        pairs, prefix = self.pairs(count), f"r{self.round}-"
        pay = self.client.pay_merchant
        start = time.perf_counter()
        for i, (payer, merchant) in enumerate(pairs):
            pay(payer.token, merchant.collection_code, PAYMENT_FEN, f"{prefix}{i}")
        return count / (time.perf_counter() - start)

    def batch_transfers_per_s(self, count: int) -> float:
        pairs, prefix = self.pairs(count), f"b{self.round}-"
        requests = [
            TransferRequest(
                f"{payer.participant_id}:pay_merchant:{prefix}{i}",
                payer.account_id,
                merchant.account_id,
                PAYMENT_FEN,
                "pay_merchant",
            )
            for i, (payer, merchant) in enumerate(pairs)
        ]
        apply_batch = self.platform.ledger.apply_batch
        start = time.perf_counter()
        for first in range(0, count, BATCH):
            outcomes = apply_batch(requests[first : first + BATCH])
            assert not any(isinstance(o, Exception) for o in outcomes), outcomes[:3]
        return count / (time.perf_counter() - start)

    def bare_per_s(self, count: int) -> float:
        """One transaction per payment: insert the transfer, update both balances."""
        pairs, prefix = self.pairs(count), f"x{self.round}-"
        conn, accounts = self.bare, len(self.payers)
        rows = [
            (
                f"{n % accounts + 1}:pay_merchant:{prefix}{n}",
                n % accounts + 1,
                accounts + 1 + n % MERCHANTS,
            )
            for n in range(len(pairs))
        ]
        start = time.perf_counter()
        for transfer_id, debit_id, credit_id in rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount_fen,"
                " kind, flags, pending_id, body_hash, timestamp_us)"
                " VALUES (?, ?, ?, ?, 'pay_merchant', 0, NULL, 'bare', ?)",
                (transfer_id, debit_id, credit_id, PAYMENT_FEN, time.time_ns() // 1000),
            )
            conn.execute(
                "UPDATE accounts SET debits_posted = debits_posted + ? WHERE id = ?",
                (PAYMENT_FEN, debit_id),
            )
            conn.execute(
                "UPDATE accounts SET credits_posted = credits_posted + ? WHERE id = ?",
                (PAYMENT_FEN, credit_id),
            )
            conn.execute("COMMIT")
        return count / (time.perf_counter() - start)

    def close(self) -> None:
        assert self.platform.audit().ok, "the ledger must balance after the benchmark"
        self.platform.close()
        self.bare_checkpointer.stop()
        self.bare.close()


def _bare_connection(path: Path, accounts: int) -> sqlite3.Connection:
    """The settings ``SqliteDatabase`` gives its connection, and the ledger's own tables."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    for ddl in schema("sqlite"):
        conn.execute(ddl)
    conn.executemany(
        "INSERT INTO accounts (name, kind, credits_posted) VALUES (?, 'x', ?)",
        [(f"a{n}", TOP_UP_FEN) for n in range(accounts)],
    )
    return conn


def run(quick: bool = False, payments: int | None = None, rounds: int = 2) -> list[dict]:
    count = payments or (PAYMENTS_QUICK if quick else PAYMENTS)
    with tempfile.TemporaryDirectory() as folder:
        world = World(Path(folder))
        try:
            bare, paid, batched = best_of(
                rounds,
                lambda: world.bare_per_s(count),
                lambda: world.payments_per_s(count),
                lambda: world.batch_transfers_per_s(count),
            )
        finally:
            world.close()
    common = {"payments": count, "rounds": rounds}
    return [
        result(
            "payments_per_s",
            paid,
            "payments/s",
            bare,
            "bare_sqlite_tx_per_payment_per_s",
            target=0.5,
            **common,
        ),
        result(
            "batch_transfers_per_s",
            batched,
            "transfers/s",
            bare,
            "bare_sqlite_tx_per_payment_per_s",
            target=1.0,
            batch=BATCH,
            **common,
        ),
    ]


def _arguments(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--payments", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2)


if __name__ == "__main__":
    main(run, __doc__, _arguments)
