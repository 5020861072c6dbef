"""What a simulated day leaves behind: the counters that become one row of
``daily.parquet`` and the rows of ``taps.parquet``.

The :class:`~agents.model.CityModel` counts into ``model.today`` as the day runs;
``day_row`` turns those counts and the city's state at midnight into the day's row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from agents.adoption import OURS
from platform_stub.clearing import TapOutcome
from scenarios.schema import SEGMENTS

if TYPE_CHECKING:
    from agents.model import CityModel

# Ways to pay, then attempts that failed (the purchase is then also counted under the
# way it was finally paid, or under cannot_pay).
PAID_CHANNELS = (
    "merchant_qr",
    "app_services",
    "rival_wallet",
    "cash",
    "offline_qr",
    "transit_card",
    "bus_cash",
)
ATTEMPT_CHANNELS = ("declined", "failed_online", "cannot_pay")
CHANNELS = PAID_CHANNELS + ATTEMPT_CHANNELS
DAILY_COUNTS = (
    "hospital_visits",
    "hospital_visits_paylater",
    "hospital_visits_paynow",
    "hospital_minutes_paylater_sum",
    "hospital_minutes_paynow_sum",
    "cannot_pay_elderly",
    "cannot_pay_total",
    "promo_cost_fen",
    "payments_unbooked",
    "pay_later_rides",
)
TAP_SCHEMA = {  # the columns of taps.parquet
    "day": pl.Int32,
    "reader_id": pl.Utf8,
    "reader_seq": pl.Int64,
    "tap_id": pl.Utf8,
    "card_id": pl.Int64,
    "tapped_at_s": pl.Int64,
    "uploaded_at_s": pl.Int64,
    "outcome": pl.Utf8,
    "reason": pl.Utf8,
    "fare_fen": pl.Int64,
    "wallet_fen": pl.Int64,
    "credit_fen": pl.Int64,
    "promo_fen": pl.Int64,
    "first_reader_id": pl.Utf8,
    "lag_s": pl.Int64,
}


def tap_row(outcome: TapOutcome, day: int, tapped_at_s: int, uploaded_at_s: int) -> tuple:
    """One tap's outcome as a ``taps.parquet`` row (``TAP_SCHEMA`` order), with when it
    was tapped and uploaded; a field the outcome lacks is null."""
    own = {"day": day, "tapped_at_s": tapped_at_s, "uploaded_at_s": uploaded_at_s,
           "lag_s": uploaded_at_s - tapped_at_s}
    return tuple(own[k] if k in own else getattr(outcome, k, None) for k in TAP_SCHEMA)


def day_row(model: CityModel) -> dict[str, Any]:
    """The day's row: adopters by segment, payments by channel, the day's counters."""
    date, adoption = model.date, model.adoption
    row: dict[str, Any] = {"date": date, "day": model.day, "weekday": date.strftime("%a")}
    ours = adoption.active & (adoption.wallet == OURS)
    for k, segment in enumerate(SEGMENTS):
        in_segment = model.people.segment_of == k
        row[f"population_{segment}"] = int(in_segment.sum())
        row[f"adopters_{segment}"] = int((adoption.active & in_segment).sum())
        row[f"platform_users_{segment}"] = int((ours & in_segment).sum())
        row[f"able_{segment}"] = int(
            (model.people.smartphone & model.people.literate & in_segment).sum()
        )
    row["rival_users"] = int((adoption.active & (adoption.wallet != OURS)).sum())
    row["population_merchant"] = len(model.merchant_list)
    row["adopters_merchant"] = sum(m.accepts_qr for m in model.merchant_list)
    row["merchants_cash_only"] = row["population_merchant"] - row["adopters_merchant"]
    row.update({f"tx_{c}": model.today[c] for c in CHANNELS})
    row.update({k: model.today[k] for k in (*DAILY_COUNTS, "learned")})
    row["lapses"] = adoption.lapses
    row["card_holders"] = int(model.card_holders_mask().sum())
    row["reader_share"] = sum(b.has_reader for b in model.bus_list) / len(model.bus_list)
    waits = [w for m in model.merchant_list if (w := m.close_day()) is not None]
    row["breakfast_wait_min_mean"] = float(np.mean(waits)) if waits else None
    return row
