"""Each policy moves its outcome the way it intends, against the baseline on the same
seeds (scaled down: 800 residents, 21 days), by a stated margin.

Seeds are paired, but a run's random stream diverges as soon as a policy changes one
draw, so each comparison sums two seeds and asks for a margin well above the
seed-to-seed spread seen in baseline runs of this size.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.agents.policy_runs import run_daily

SEEDS = (1, 2)


def both_seeds(name: str, tmp: Path) -> pl.DataFrame:
    return pl.concat(
        [run_daily(name, seed, tmp).with_columns(pl.lit(seed).alias("seed")) for seed in SEEDS],
        how="vertical_relaxed",
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    return both_seeds("baseline", tmp_path_factory.mktemp("baseline"))


def last_days(daily: pl.DataFrame) -> pl.DataFrame:
    return daily.filter(pl.col("day") == daily["day"].max())


def total(daily: pl.DataFrame, column: str) -> int:
    return int(daily[column].sum())


def share(daily: pl.DataFrame, part: str, whole: str) -> float:
    return total(daily, part) / max(total(daily, whole), 1)


def cash_share(daily: pl.DataFrame) -> float:
    paid = ("merchant_qr", "app_services", "rival_wallet", "cash")
    return total(daily, "tx_cash") / sum(total(daily, f"tx_{c}") for c in paid)


def test_more_training_more_elderly_users(baseline: pl.DataFrame, tmp_path: Path) -> None:
    trained = both_seeds("elderly_training", tmp_path)
    before = share(last_days(baseline), "adopters_elderly", "population_elderly")
    after = share(last_days(trained), "adopters_elderly", "population_elderly")
    assert after > before + 0.10, (before, after)


def test_more_dead_zones_more_failed_payments_and_more_cash(
    baseline: pl.DataFrame, tmp_path: Path
) -> None:
    dead = both_seeds("underground_deadzones", tmp_path)
    assert total(dead, "tx_failed_online") > 5 * total(baseline, "tx_failed_online")
    assert cash_share(dead) > cash_share(baseline) + 0.01


def test_credit_gating_off_fewer_pay_later_rides_and_visits(
    baseline: pl.DataFrame, tmp_path: Path
) -> None:
    off = both_seeds("credit_gating_off", tmp_path)
    assert total(baseline, "pay_later_rides") > 0 and total(off, "pay_later_rides") == 0
    assert total(baseline, "hospital_visits_paylater") >= 10
    assert total(off, "hospital_visits_paylater") == 0


def test_cash_refused_leaves_residents_unable_to_pay(
    baseline: pl.DataFrame, tmp_path: Path
) -> None:
    refused = both_seeds("cash_acceptance", tmp_path)
    assert total(baseline, "cannot_pay_total") == 0
    assert total(refused, "cannot_pay_total") > 100
    assert total(refused, "cannot_pay_elderly") > 0


def test_a_rival_wallet_takes_users_from_the_platform(
    baseline: pl.DataFrame, tmp_path: Path
) -> None:
    rival = both_seeds("competing_wallet", tmp_path)
    users = [f"platform_users_{s}" for s in ("youth", "adult", "elderly")]
    ours = last_days(rival).select(pl.sum_horizontal(users)).to_series().sum()
    before = last_days(baseline).select(pl.sum_horizontal(users)).to_series().sum()
    assert total(last_days(rival), "rival_users") > 0.2 * before
    assert ours < 0.85 * before


def fridays(daily: pl.DataFrame) -> pl.DataFrame:
    return daily.filter(pl.col("weekday") == "Fri")


def test_free_ride_fridays_pull_in_trips(baseline: pl.DataFrame, tmp_path: Path) -> None:
    free = both_seeds("free_ride_friday", tmp_path)
    per_holder_free = share(fridays(free), "tx_offline_qr", "card_holders")
    per_holder_base = share(fridays(baseline), "tx_offline_qr", "card_holders")
    assert per_holder_free > per_holder_base + 0.15, (per_holder_base, per_holder_free)
    assert total(free, "promo_cost_fen") > 0 == total(baseline, "promo_cost_fen")


def test_breakfast_subsidy_spends_its_budget_and_draws_users(
    baseline: pl.DataFrame, tmp_path: Path
) -> None:
    subsidy = both_seeds("breakfast_subsidy", tmp_path)
    assert total(subsidy, "promo_cost_fen") >= 350 * 20  # at least 20 one-cent breakfasts
    users = ["platform_users_youth", "platform_users_adult", "platform_users_elderly"]
    after = last_days(subsidy).select(pl.sum_horizontal(users)).to_series().sum()
    before = last_days(baseline).select(pl.sum_horizontal(users)).to_series().sum()
    assert after > 1.05 * before, (before, after)
