"""The metrics ``cashless compare`` reads from a run, each tolerant of a run that lacks it.

Each reader returns the metric's value, or a string saying why the run cannot show it
(a column or key the model does not write yet); the comparison skips it with that note.

Series (one value per day): ``adoption.<segment>`` (share 0-1), ``cash_share`` (0-1),
``cannot_pay_elderly`` (residents per day), ``promo_cost_cum_fen`` (fen so far).
Scalars (one value per run): the last day's ``adoption.<segment>``, run totals
``transactions.<channel>``, ``cash_share``, ``cannot_pay_elderly``,
``merchants_cash_only`` (last day), ``hospital.minutes_saved_per_visit``,
``hospital.visits_paylater`` and ``pay_later_rides`` (run totals of the daily columns
``hospital_visits_paylater`` and ``pay_later_rides``: treat first, pay later visits and
ride first, pay later bus rides), ``clearing_lag.p50_h``/``p99_h`` and ``promotions.cost_fen``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from reports.analysis import adoption_shares, channels, purchase_channels

if TYPE_CHECKING:
    from scenarios.compare import RunRecord

CASH_CHANNELS = ("cash", "bus_cash")  # as summary.json's transactions.cash_share counts them
HOSPITAL_COLUMNS = (
    "hospital_minutes_paylater_sum",
    "hospital_minutes_paynow_sum",
    "hospital_visits_paylater",
    "hospital_visits_paynow",
)

Value = Any  # a float, a date/value frame, or a str: why the run lacks the metric


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is shown: a label, its unit and the factor to that unit."""

    label: str
    unit: str
    scale: float = 1.0


def metric_info(metric: str) -> MetricInfo:
    family, _, name = metric.partition(".")
    if family == "adoption":
        return MetricInfo(f"adopted, {name}", "%", 100.0)
    if family == "transactions":
        return MetricInfo(f"transactions, {name}", "count over the run")
    return FIXED_INFO.get(metric, MetricInfo(metric, "value"))


FIXED_INFO = {
    "cash_share": MetricInfo("cash share of purchases", "%", 100.0),
    "cannot_pay_elderly": MetricInfo("elderly who could not pay", "residents"),
    "merchants_cash_only": MetricInfo("merchants still cash-only", "merchants, last day"),
    "hospital.minutes_saved_per_visit": MetricInfo("hospital minutes saved per visit", "min"),
    "hospital.visits_paylater": MetricInfo("pay-later hospital visits", "visits over the run"),
    "pay_later_rides": MetricInfo("pay-later bus rides", "rides over the run"),
    "clearing_lag.p50_h": MetricInfo("clearing lag p50", "h"),
    "clearing_lag.p99_h": MetricInfo("clearing lag p99", "h"),
    "promotions.cost_fen": MetricInfo("platform cost of promotions", "RMB", 0.01),
    "promo_cost_cum_fen": MetricInfo("promotion cost so far", "RMB", 0.01),
}


def _missing(columns: tuple[str, ...] | list[str], daily: pl.DataFrame) -> str | None:
    absent = [c for c in columns if c not in daily.columns]
    return f"daily.parquet has no column {', '.join(absent)}" if absent else None


def _summary(summary: dict[str, Any], dotted: str) -> float | None:
    data: Any = summary
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return float(data) if isinstance(data, int | float) and not isinstance(data, bool) else None


def _frame(daily: pl.DataFrame, values: pl.Expr) -> pl.DataFrame:
    return daily.sort("date").select("date", values.cast(pl.Float64).alias("value"))


# -- series ----------------------------------------------------------------------------


def series_metrics(run: RunRecord) -> dict[str, Value]:
    daily = run.daily
    found: dict[str, Value] = {}
    shares = adoption_shares(daily)
    for segment in shares.columns[1:]:
        found[f"adoption.{segment}"] = shares.select("date", pl.col(segment).alias("value"))
    found["cash_share"] = _cash_share_series(daily)
    found["cannot_pay_elderly"] = _missing(["cannot_pay_elderly"], daily) or _frame(
        daily, pl.col("cannot_pay_elderly")
    )
    found["promo_cost_cum_fen"] = _missing(["promo_cost_fen"], daily) or _frame(
        daily, pl.col("promo_cost_fen").cum_sum()
    )
    return found


def _cash_total(daily: pl.DataFrame) -> tuple[pl.Expr, pl.Expr] | str:
    paid = purchase_channels(daily)
    cash = [c for c in CASH_CHANNELS if c in paid]
    if not cash:
        return "daily.parquet has no tx_cash column"
    return pl.sum_horizontal(*(f"tx_{c}" for c in cash)), pl.sum_horizontal(
        *(f"tx_{c}" for c in paid)
    )


def _cash_share_series(daily: pl.DataFrame) -> Value:
    found = _cash_total(daily)
    if isinstance(found, str):
        return found
    cash, total = found
    return _frame(daily, pl.when(total > 0).then(cash / total).otherwise(None))


# -- scalars ---------------------------------------------------------------------------


def scalar_metrics(run: RunRecord) -> dict[str, Value]:
    daily = run.daily.sort("date")
    found: dict[str, Value] = {}
    shares = adoption_shares(daily)
    for segment in shares.columns[1:]:
        last = shares[segment][-1]
        found[f"adoption.{segment}"] = last if last is not None else "no population"
    for channel in channels(daily):
        found[f"transactions.{channel}"] = float(daily[f"tx_{channel}"].sum())
    for name, reader in SCALAR_READERS.items():
        found[name] = reader(run)
    return found


def _cash_share(run: RunRecord) -> Value:
    share = _summary(run.summary, "transactions.cash_share")
    if share is not None:
        return share
    found = _cash_total(run.daily)
    if isinstance(found, str):
        return found
    cash, total = run.daily.select(found[0].sum(), found[1].sum()).row(0)
    return cash / total if total else "no purchases in the run"


def _run_total(column: str) -> Callable[[RunRecord], Value]:
    """The daily column summed over the run, or why the run lacks it."""

    def read(run: RunRecord) -> Value:
        return _missing([column], run.daily) or float(run.daily[column].sum())

    return read


def _merchants_cash_only(run: RunRecord) -> Value:
    daily = run.daily.sort("date")
    return _missing(["merchants_cash_only"], daily) or float(daily["merchants_cash_only"][-1])


def _minutes_saved(run: RunRecord) -> Value:
    daily = run.daily
    absent = _missing(HOSPITAL_COLUMNS, daily)
    if absent:
        saved = _summary(run.summary, "hospital.minutes_saved_per_visit")
        return absent if saved is None else saved
    sums = {c: float(daily[c].sum()) for c in HOSPITAL_COLUMNS}
    later, now = sums["hospital_visits_paylater"], sums["hospital_visits_paynow"]
    if not later or not now:
        return "no pay-later or no pay-now hospital visit in the run"
    minutes_now = sums["hospital_minutes_paynow_sum"] / now
    return minutes_now - sums["hospital_minutes_paylater_sum"] / later


def _lag(quantile: float, key: str) -> Callable[[RunRecord], Value]:
    def read(run: RunRecord) -> Value:
        taps = run.taps
        if taps is not None and "lag_s" in taps.columns and taps.height:
            return float(taps["lag_s"].cast(pl.Float64).quantile(quantile, "linear")) / 3600
        seconds = _summary(run.summary, f"transit.clearing_lag_s.{key}")
        return "no offline taps (taps.parquet lag_s)" if seconds is None else seconds / 3600

    return read


def _promo_cost(run: RunRecord) -> Value:
    if "promo_cost_fen" in run.daily.columns:
        return float(run.daily["promo_cost_fen"].sum())
    cost = _summary(run.summary, "promotions.cost_fen")
    return "daily.parquet has no column promo_cost_fen" if cost is None else cost


SCALAR_READERS: dict[str, Callable[[RunRecord], Value]] = {
    "cash_share": _cash_share,
    "cannot_pay_elderly": _run_total("cannot_pay_elderly"),
    "merchants_cash_only": _merchants_cash_only,
    "hospital.minutes_saved_per_visit": _minutes_saved,
    "hospital.visits_paylater": _run_total("hospital_visits_paylater"),
    "pay_later_rides": _run_total("pay_later_rides"),
    "clearing_lag.p50_h": _lag(0.5, "p50"),
    "clearing_lag.p99_h": _lag(0.99, "p99"),
    "promotions.cost_fen": _promo_cost,
}
