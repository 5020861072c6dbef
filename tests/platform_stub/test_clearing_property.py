"""Exactly once under retries: random batches with duplicates, overlaps and reordering."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_stub.clearing import UploadedTap
from tests.platform_stub.test_clearing import make_platform, make_reader, make_rider
from tests.transit.riders import NOW_S

RIDERS = 3
TAPS = 8


def upload_plan():
    """Batches as (first, last) slices of the reader's taps, in any order, repeats allowed."""
    span = st.tuples(st.integers(0, TAPS - 1), st.integers(1, 4)).map(
        lambda p: (p[0], min(TAPS, p[0] + p[1]))
    )
    return st.lists(span, min_size=1, max_size=10)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=upload_plan(),
    riders_of=st.lists(st.integers(0, RIDERS - 1), min_size=TAPS, max_size=TAPS),
    duplicate_at=st.sets(st.integers(1, TAPS - 1), max_size=3),
)
def test_every_signed_tap_has_exactly_one_outcome_and_money_matches(
    plan, riders_of, duplicate_at
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        platform = make_platform(f"sqlite:///{Path(folder) / 'l.db'}")
        operator = platform.transit.register_operator("公交")
        token, _ = make_reader(platform, operator.token, "bus")
        riders = [make_rider(platform, n + 1, 10_000) for n in range(RIDERS)]
        source = [i - 1 if i in duplicate_at else i for i in range(TAPS)]  # a copied code
        made = [riders[r].code(NOW_S + 6000 * i, i) for i, r in enumerate(riders_of)]
        codes = [made[source[i]] for i in range(TAPS)]
        taps = [UploadedTap(seq, codes[seq], NOW_S + 6000 * source[seq] + 5) for seq in range(TAPS)]
        for first, last in [*plan, (0, TAPS)]:  # a final full upload: every tap arrives
            platform.transit.upload_taps(token, f"b{first}-{last}", taps[first:last])
        with platform.db.transaction() as tx:
            rows = tx.all("SELECT reader_seq, tap_id, outcome, reason FROM tap_outcomes")
        assert sorted(r[0] for r in rows) == list(range(TAPS))  # one outcome per tap
        cleared = [r for r in rows if r[2] == "cleared"]
        assert len({r[1] for r in cleared}) == len(cleared) == len(set(codes))
        assert all(r[3] == "replayed_code" for r in rows if r[2] == "rejected")
        fares = platform.transit.metrics().cleared * 200  # rides 100 min apart: no discount
        spent = sum(10_000 - platform.balance_fen(r.token) for r in riders)
        assert spent == fares and platform.audit().ok
        platform.close()
