"""Batched paths give what one-at-a-time gives: ``Ledger.apply_batch`` (a LedgerBatch),
clearing's up-front reads, and tap verification spread over worker processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from platform_stub.clearing import Fares, UploadedTap
from platform_stub.exceptions import PlatformError, StorageUnavailable
from platform_stub.ledger import (
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    PENDING,
    Ledger,
    LedgerBatch,
    Transfer,
    TransferRequest,
)
from platform_stub.storage import open_database
from platform_stub.transit import PlatformKeyring
from platform_stub.transit.verify import (
    PARALLEL_TAPS_MIN,
    TapVerifier,
    verify_taps,
)
from tests.platform_stub.test_clearing import make_platform, make_reader, make_rider
from tests.transit.riders import DAY_S, NOW_S, PLATFORM_SEED
from tests.transit.riders import make_rider as make_test_rider


@pytest.fixture
def ledger(db_url: str):
    db = open_database(db_url)
    yield Ledger(db)
    db.close()


def _accounts(ledger: Ledger) -> tuple[int, int, int]:
    with ledger.db.transaction() as tx:
        bank = ledger.create_account(tx, "bank:ICBC", "bank").id
        wallet = ledger.create_account(tx, "wallet:1", "resident", DEBITS_MUST_NOT_EXCEED_CREDITS)
        shop = ledger.create_account(tx, "merchant:1", "merchant", DEBITS_MUST_NOT_EXCEED_CREDITS)
    return bank, wallet.id, shop.id


def _summary(outcome: Transfer | PlatformError) -> tuple:
    if isinstance(outcome, PlatformError):
        return ("refused", outcome.code)
    return ("ok", outcome.id, outcome.amount_fen)


def test_apply_batch_gives_each_transfer_the_outcome_it_would_get_alone(ledger) -> None:
    """Running balances, in-batch repeats, earlier outcomes and refusals, as in order."""
    bank, wallet, shop = _accounts(ledger)
    ledger.apply(TransferRequest("old-ok", bank, wallet, 100, "top_up"))
    with pytest.raises(PlatformError):
        ledger.apply(TransferRequest("old-refused", wallet, shop, 10**6, "pay"))
    requests = [
        TransferRequest("fund", bank, wallet, 1_000, "top_up"),
        TransferRequest("pay-1", wallet, shop, 600, "pay"),
        TransferRequest("pay-2", wallet, shop, 600, "pay"),  # 500 left: refused
        TransferRequest("pay-3", wallet, shop, 500, "pay"),  # exactly what is left
        TransferRequest("pay-1", wallet, shop, 600, "pay"),  # a repeat: the first outcome
        TransferRequest("pay-1", wallet, shop, 601, "pay"),  # same id, another body
        TransferRequest("old-ok", bank, wallet, 100, "top_up"),
        TransferRequest("old-refused", wallet, shop, 10**6, "pay"),
        TransferRequest("self", wallet, wallet, 1, "pay"),
        TransferRequest("nobody", wallet, 99_999, 1, "pay"),
        TransferRequest("hold", bank, shop, 5, "hold", flags=PENDING),
    ]
    outcomes = ledger.apply_batch(requests)
    assert [_summary(o) for o in outcomes] == [
        ("ok", "fund", 1_000),
        ("ok", "pay-1", 600),
        ("refused", "exceeds_credits"),
        ("ok", "pay-3", 500),
        ("ok", "pay-1", 600),
        ("refused", "exists_with_different_fields"),
        ("ok", "old-ok", 100),
        ("refused", "exceeds_credits"),
        ("refused", "same_account"),
        ("refused", "account_not_found"),
        ("ok", "hold", 5),
    ]
    assert outcomes[1] == outcomes[4] and outcomes[1].seq > 0
    assert [_summary(o) for o in ledger.apply_batch(requests)] == [_summary(o) for o in outcomes]
    with ledger.db.transaction() as tx:
        assert ledger.account(tx, wallet).balance_fen == 0
        assert ledger.account(tx, shop).credits_pending == 5
        assert isinstance(ledger.outcome_of(tx, "pay-2"), PlatformError)
        seqs = [t.seq for t in ledger.transfers_of(tx, wallet, 50, 0)]
    assert seqs == sorted(seqs)


def test_a_ledger_batch_reads_and_locks_an_account_once(ledger) -> None:
    bank, wallet, shop = _accounts(ledger)
    with ledger.db.transaction() as tx:
        batch = LedgerBatch(tx)
        batch.lock([bank, wallet, shop])
        batch.transfer(TransferRequest("t1", bank, wallet, 300, "top_up"))
        assert batch.account(wallet).balance_fen == 300  # not yet written
        assert ledger.account(tx, wallet).balance_fen == 0
        batch.flush()
        assert ledger.account(tx, wallet).balance_fen == 300


def test_an_id_wrongly_taken_as_fresh_fails_the_batch_and_changes_nothing(ledger) -> None:
    """``transfer_fresh`` skips the lookup, not the unique id: a caller that is wrong about
    an id gets a failed transaction, never a second transfer."""
    bank, wallet, _ = _accounts(ledger)
    ledger.apply(TransferRequest("t1", bank, wallet, 300, "top_up"))
    refused = (StorageUnavailable, sqlite3.IntegrityError)
    with pytest.raises(refused), ledger.db.transaction() as tx:
        batch = LedgerBatch(tx)
        batch.transfer_fresh(TransferRequest("t2", bank, wallet, 50, "top_up"))
        batch.transfer_fresh(TransferRequest("t1", bank, wallet, 300, "top_up"))
        batch.flush()
    with ledger.db.transaction() as tx:
        assert ledger.account(tx, wallet).balance_fen == 300
        assert ledger.outcome_of(tx, "t2") is None


def _codes(count: int) -> list[tuple[str, int]]:
    """Good codes from a few riders, with bad ones mixed in (each rejection kind)."""
    keyring = PlatformKeyring.from_seed(PLATFORM_SEED, NOW_S - DAY_S)
    riders = [make_test_rider(keyring, card_id=100 + n) for n in range(5)]
    codes = [(riders[i % 5].code(NOW_S, i), NOW_S + 3) for i in range(count)]
    codes[3] = (codes[3][0][:-6] + "ABCDEF", NOW_S)  # signature_invalid
    codes[7] = ("NOT A CODE", NOW_S)  # code_malformed
    codes[11] = (codes[11][0], NOW_S + DAY_S)  # code_expired
    return codes, keyring.public_keys()


def test_verifying_on_worker_processes_agrees_with_verifying_here() -> None:
    codes, keys = _codes(PARALLEL_TAPS_MIN + 9)
    verifier = TapVerifier(workers=2)
    try:
        spread = verifier.verify(codes, keys)
    finally:
        verifier.close()
    here = verify_taps(codes, keys, 630, 660)
    assert spread == here
    assert [c for c in here if isinstance(c, str)] == [
        "signature_invalid",
        "code_malformed",
        "code_expired",
    ]


@pytest.mark.parametrize("newest_first", [False, True])
def test_a_big_batch_clears_alike_with_and_without_workers(
    tmp_path, monkeypatch, newest_first: bool
) -> None:
    """Replays inside the batch, transfer discounts against rides stored before and
    cleared earlier in the batch (whichever chunk they are in), wallet then credit."""
    results = []
    for workers in ("0", "2"):
        monkeypatch.setenv("CASHLESS_VERIFY_WORKERS", workers)
        platform = make_platform(f"sqlite:///{tmp_path / f'{newest_first}{workers}.db'}", Fares())
        try:
            operator = platform.transit.register_operator("bus co")
            token, _ = make_reader(platform, operator.token, "bus-1")
            riders = [make_rider(platform, n, 500 if n else 0) for n in range(4)]
            count = PARALLEL_TAPS_MIN * 2
            stamps = [NOW_S + i * 600 for i in range(count)]
            if newest_first:  # later chunks hold earlier rides: the ride window widens
                stamps.reverse()
            taps = [
                UploadedTap(i, riders[i % 4].code(stamp, i), stamp + 5)
                for i, stamp in enumerate(stamps)
            ]
            taps[10] = UploadedTap(10, taps[2].code, taps[2].scanned_at_s + 4)  # a replay
            before = [
                UploadedTap(count + n, riders[n].code(NOW_S - 900, 9_999), NOW_S - 895)
                for n in range(4)
            ]
            platform.transit.upload_taps(token, "before", before)
            outcomes = platform.transit.upload_taps(token, "b1", taps)
            assert platform.transit.clearing.verifier.workers == int(workers)
            assert platform.audit().ok
            results.append(
                [(o.outcome, o.reason, o.fare_fen, o.wallet_fen, o.credit_fen) for o in outcomes]
            )
        finally:
            platform.transit.clearing.verifier.close()
            platform.close()
    assert results[0] == results[1]
    assert {r[1] for r in results[0]} == {None, "replayed_code"}
    assert 100 in {r[2] for r in results[0]}  # transfer discounts were given
    assert any(r[4] > 0 for r in results[0])  # the rider with an empty wallet rode on credit


@pytest.mark.parametrize(("declared", "expected"), [(False, 0), (True, None)])
def test_a_plain_script_gets_verify_workers_only_when_it_declares_its_main_safe(
    tmp_path, monkeypatch, declared: bool, expected: int | None
) -> None:
    """A script's top level would run again in every spawned worker, so it gets none,
    unless its entry point says it is guarded (the ``cashless`` console script does)."""
    monkeypatch.delenv("CASHLESS_VERIFY_WORKERS", raising=False)
    script = tmp_path / "entry.py"
    script.write_text(
        "from platform_stub.transit import verify\n"
        + ("verify.declare_main_import_safe()\n" if declared else "")
        + "print(verify.TapVerifier().workers)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, check=True
    )
    assert int(out.stdout) == ((os.cpu_count() or 1) if expected is None else expected)
