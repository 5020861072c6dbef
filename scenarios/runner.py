"""Run one scenario end to end and write its run folder.

run folder/
  scenario.resolved.toml   exactly what ran, seed included
  ledger.db                the platform's SQLite ledger (in-process runs; saved at the end)
  events.parquet           one row per platform call
  daily.parquet            one row per simulated day
  summary.json             headline figures (see ``summarise``)
  report.html, figures/    the pictures
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from agents import CityModel
from agents.daily import PAID_CHANNELS
from agents.model import SimClock
from platform_stub import HttpClient, InProcessClient, Platform, PlatformClient
from platform_stub.audit import AuditReport
from platform_stub.exceptions import PlatformError
from platform_stub.simclock import send_sim_time
from platform_stub.transit_service import TransitMetrics
from scenarios.loader import dump_toml
from scenarios.platform_config import configure_platform, scenario_fares
from scenarios.schema import SEGMENTS, Scenario

LEDGER_FILE = "ledger.db"
# Transactions sharing one COMMIT in an in-process run (platform_stub/storage.py). On
# the in-memory ledger a COMMIT's cost grows with the whole database, not only with the
# pages the group changed (20,000 residents: 25 us on day 1, 750 us by day 29 for a
# group of 64), so big groups keep it small per transaction (100,000 x 120: 30 min 56 s
# with 8,192). A group's undo log holds a copy of each page it changed (4 KiB), once.
COMMIT_GROUP_MAX = 8_192
# The ledger stays in memory until the run ends, then is written to LEDGER_FILE whole:
# a big run's transfers cost about half as much as on the file (platform_stub/storage.py).
LEDGER_IN_MEMORY = True
RUN_FILES = (
    "scenario.resolved.toml",
    "events.parquet",
    "daily.parquet",
    "taps.parquet",
    "trace.parquet",
    "settlement.csv",
    "settlement.parquet",
    "summary.json",
    "report.html",
    LEDGER_FILE,
    f"{LEDGER_FILE}-wal",
    f"{LEDGER_FILE}-shm",
)
TRACE_COLUMNS = ("time", "day", "agent_id", "segment", "operation", "amount_fen", "target_id")


@dataclass
class RunResult:
    out_dir: Path
    summary: dict[str, Any]


def default_out_dir(scenario: Scenario, seed: int) -> Path:
    return Path("runs") / f"{scenario.name}-seed{seed}"


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    seed: int | None = None,
    platform_url: str | None = None,
    console: Console | None = None,
) -> RunResult:
    """Simulate ``scenario`` against a fresh platform and write the run folder.

    With ``platform_url`` the agents call a running server over HTTP; otherwise the
    platform runs in-process, its ledger in memory and saved as ``ledger.db`` inside
    the run folder when the run ends.
    """
    seed = scenario.seed if seed is None else seed
    scenario = scenario.model_copy(update={"seed": seed})
    console = console or Console(stderr=True)
    _prepare(out_dir)
    (out_dir / "scenario.resolved.toml").write_text(dump_toml(scenario), encoding="utf-8")
    started = time.perf_counter()
    platform = None if platform_url else open_platform(scenario, out_dir / LEDGER_FILE)
    client: PlatformClient = HttpClient(platform_url) if platform_url else InProcessClient(platform)
    sim_clock = SimClock(scenario.city.start_date)
    if platform:  # campaigns, due dates, credit tenure: the platform keeps sim time
        platform.clock = sim_clock.aware
    else:  # a server started with --sim-clock reads it from each request
        send_sim_time(client, sim_clock.aware)
    model = None
    try:
        model = CityModel(scenario, client, seed=seed, sim_clock=sim_clock)
        day_s = _step_with_progress(model, console)
        audit = platform.audit() if platform else None
        metrics = _transit_metrics(client)
    finally:
        if model is not None:
            model.ride_codes.close()
        client.close()
        if platform:
            platform.close()
    timings = {"wall_s": round(time.perf_counter() - started, 3), **day_s}
    return _write_outputs(model, audit, metrics, out_dir, timings)


def open_platform(scenario: Scenario, ledger_path: Path) -> Platform:
    """The in-process platform on ``ledger_path``, configured by the scenario."""
    keyring_seed = hashlib.sha256(f"platform keys, seed {scenario.seed}".encode()).digest()
    platform = Platform.open(
        f"sqlite:///{ledger_path}",
        fares=scenario_fares(scenario),
        keyring_seed=keyring_seed,
        commit_group_max=COMMIT_GROUP_MAX,
        in_memory=LEDGER_IN_MEMORY,
    )
    configure_platform(platform, scenario)
    return platform


def _transit_metrics(client: PlatformClient) -> TransitMetrics | None:
    """Platform-wide transit figures; a remote platform needs the operator credential."""
    try:
        return client.transit_metrics()
    except PlatformError:
        return None


def _prepare(out_dir: Path) -> None:
    """A run folder holds one run: files of an earlier run there are replaced."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)


def _step_with_progress(model: CityModel, console: Console) -> dict[str, list[float]]:
    """Step to the last day; each day's wall and process CPU seconds (a run's speed
    over time: later days carry more payments as adoption grows)."""
    days = model.scenario.city.days
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeRemainingColumn(),
    )
    day_wall_s: list[float] = []
    day_cpu_s: list[float] = []
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"{model.scenario.name}", total=days)
        while model.running:
            wall, cpu = time.perf_counter(), time.process_time()
            model.step()
            day_wall_s.append(round(time.perf_counter() - wall, 3))
            day_cpu_s.append(round(time.process_time() - cpu, 3))
            progress.advance(task)
    return {"day_wall_s": day_wall_s, "day_cpu_s": day_cpu_s}


def _write_outputs(
    model: CityModel,
    audit: AuditReport | None,
    metrics: TransitMetrics | None,
    out_dir: Path,
    timings: dict[str, Any],
) -> RunResult:
    from reports import build_run_report  # reports import matplotlib: load it late

    events = model.log.frame()
    daily = pl.DataFrame(model.daily_rows)
    taps = model.taps.frame()
    events.write_parquet(out_dir / "events.parquet")
    events.select(TRACE_COLUMNS).write_parquet(out_dir / "trace.parquet")
    daily.write_parquet(out_dir / "daily.parquet")
    taps.write_parquet(out_dir / "taps.parquet")
    _write_settlement(model, out_dir)
    summary = summarise(model, events, daily, audit)
    summary["transit"] = transit_summary(model, taps, metrics)
    summary["timings"] = timings
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    build_run_report(out_dir)
    return RunResult(out_dir, json.loads((out_dir / "summary.json").read_text()))


def summarise(
    model: CityModel, events: pl.DataFrame, daily: pl.DataFrame, audit: AuditReport | None
) -> dict[str, Any]:
    """Headline figures; everything but latency and timings is fixed by the seed."""
    from reports import overall_latency_ms

    scenario, last = model.scenario, daily.row(-1, named=True)
    channels = [c.removeprefix("tx_") for c in daily.columns if c.startswith("tx_")]
    by_channel = {c: int(daily[f"tx_{c}"].sum()) for c in channels}
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "days": scenario.city.days,
        "start_date": scenario.city.start_date.isoformat(),
        "population": {
            "residents": scenario.city.residents,
            "merchants": scenario.city.merchants,
            "scale_factor": scenario.city.scale_factor,
        },
        "adoption": _adoption(last),
        "transactions": _transactions(by_channel),
        "inclusion": _inclusion(daily),
        "hospital": _hospital(daily),
        "promotions": {"cost_fen": int(daily["promo_cost_fen"].sum())},
        "city_figures": _city_figures(scenario, last),
        "platform_calls": {
            "count": events.height,
            "rejected": int((events["status"] != "ok").sum()),
        },
        "latency_ms": overall_latency_ms(events),
        "ledger": audit.as_dict()
        if audit
        else {"audit_ok": None, "transfer_count": None, "note": "ledger is on the remote server"},
    }


def _write_settlement(model: CityModel, out_dir: Path) -> None:
    """Every closed window's positions, one row per window and account."""
    if not model.settlement_rows:
        return
    frame = pl.DataFrame(model.settlement_rows)
    frame.write_csv(out_dir / "settlement.csv")
    frame.write_parquet(out_dir / "settlement.parquet")


def transit_summary(
    model: CityModel, taps: pl.DataFrame, metrics: TransitMetrics | None
) -> dict[str, Any]:
    """Offline taps end to end: every tap a reader accepted has one clearing outcome."""
    cleared = taps.filter(pl.col("outcome") == "cleared")
    rejected = taps.filter(pl.col("outcome") == "rejected")["reason"].value_counts(sort=True)
    lag = taps["lag_s"]
    return {
        "taps": taps.height,
        "cleared": cleared.height,
        "rejected_by_reason": dict(zip(rejected["reason"], rejected["count"], strict=True)),
        "reader_rejected_by_reason": dict(sorted(model.reader_rejections.items())),
        "taps_still_on_readers": sum(b.reader.queued_taps for b in model.bus_list),
        "fares_fen": int(cleared["fare_fen"].sum()),
        "clearing_lag_s": {"p50": _quantile(lag, 0.5), "p99": _quantile(lag, 0.99)},
        "debt_fen": metrics.debt_fen if metrics else None,
        "deny_list_size": metrics.deny_list_size if metrics else None,
    }


def _quantile(values: pl.Series, q: float) -> float | None:
    return None if values.is_empty() else float(values.quantile(q, interpolation="linear"))


def _adoption(last: dict[str, Any]) -> dict[str, Any]:
    people = sum(last[f"population_{s}"] for s in SEGMENTS)
    adopters = sum(last[f"adopters_{s}"] for s in SEGMENTS)
    by_segment = {
        s: last[f"adopters_{s}"] / max(last[f"population_{s}"], 1) for s in (*SEGMENTS, "merchant")
    }
    return {"overall": adopters / max(people, 1), "by_segment": by_segment}


def _transactions(by_channel: dict[str, int]) -> dict[str, Any]:
    """Payments by how they were finally made; failed attempts are listed apart."""
    paid = {c: n for c, n in by_channel.items() if c in PAID_CHANNELS}
    total = sum(paid.values())
    cash = paid.get("cash", 0) + paid.get("bus_cash", 0)
    return {
        "count": total,
        "by_channel": by_channel,
        "cash_share": cash / total if total else None,
    }


def _inclusion(daily: pl.DataFrame) -> dict[str, Any]:
    """Who could not pay: residents without the app at merchants that refuse cash."""
    elderly_days = int(daily["population_elderly"].sum())
    return {
        "residents_cannot_pay": int(daily["cannot_pay_total"].sum()),
        "elderly_cannot_pay": int(daily["cannot_pay_elderly"].sum()),
        "elderly_cannot_pay_share": int(daily["cannot_pay_elderly"].sum()) / max(elderly_days, 1),
        "merchants_cash_only": int(daily.row(-1, named=True)["merchants_cash_only"]),
        "elderly_able_share": daily.row(-1, named=True)["able_elderly"]
        / max(daily.row(-1, named=True)["population_elderly"], 1),
    }


def _hospital(daily: pl.DataFrame) -> dict[str, Any]:
    """Minutes per visit with and without treat first, pay later (52.7 min published)."""

    def per_visit(mode: str) -> float | None:
        visits = int(daily[f"hospital_visits_{mode}"].sum())
        return int(daily[f"hospital_minutes_{mode}_sum"].sum()) / visits if visits else None

    later, now = per_visit("paylater"), per_visit("paynow")
    return {
        "visits": int(daily["hospital_visits"].sum()),
        "visits_paylater": int(daily["hospital_visits_paylater"].sum()),
        "minutes_per_visit_paylater": later,
        "minutes_per_visit_paynow": now,
        "minutes_saved_per_visit": now - later if later is not None and now is not None else None,
    }


def _city_figures(scenario: Scenario, last: dict[str, Any]) -> dict[str, Any]:
    """The last day's counts scaled up to the real city (x scale_factor)."""
    scale = scenario.city.scale_factor
    users = sum(last[f"adopters_{s}"] for s in SEGMENTS)
    return {
        "scale_factor": scale,
        "app_users": round(users * scale),
        "platform_users": round(sum(last[f"platform_users_{s}"] for s in SEGMENTS) * scale),
        "bus_card_holders": round(last["card_holders"] * scale),
        "qr_bus_rides_last_day": round(last["tx_offline_qr"] * scale),
        "merchants_accepting_app": round(last["adopters_merchant"] * scale),
    }
