"""Run a load test headless against the platform and judge the outcome.

A run either starts its own platform server (a fresh SQLite file in the output
folder unless ``db_url`` says otherwise, and a fresh operator credential in
``CASHLESS_ADMIN_TOKEN`` for the server and the settlement operator) and, once the
server has stopped, audits that ledger and looks for lost taps; or it loads a server
already running on this machine. Traffic never leaves loopback: any other host is
refused before anything starts.

Locust scenarios run ``locust --headless`` (with ``workers`` > 0: a master and that
many worker processes); the ``replay`` scenario runs :mod:`loadtests.replay`. Either
way the load writes our HDR histograms, which the service levels judge.

A Locust run ends at ``duration_s`` or, given ``requests_max``, once Locust has counted
that many requests, whichever comes first: bounded by a count, a run does the same
work on a busy machine as on an idle one (``stopped_by`` says which bound ended it).

A run passes when it made requests, the load process exited 0, no service level broke,
and (when the runner served the platform) the ledger audit holds and no tap was lost.

Files written into ``out_dir``:

    loadtest.json                                this module's verdict (LoadtestResult)
    latency.parquet                              per kind, endpoint and second: HDR percentiles
    histograms.json, reader_taps.json            our histograms; each reader's tap counts
    locust_stats.csv, locust_failures.csv, ...   Locust's periodic CSV (may be short)
    locust_final_stats.csv, locust_final_failures.csv   the totals when Locust quit
    locust.html, locust.log, locust-worker-N.log, server.log   report and logs
    replay.json, replay.log                      the replay's summary and log
    platform.db                                  the ledger, when the runner served it
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import secrets
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from loadtests._processes import LoadtestError, free_port, platform_server, run_bounded
from loadtests.results import LATENCY_FILE, Measured, read_measured, write_latency_parquet
from loadtests.slo import DEFAULT_SLO, ServiceLevels, load_service_levels
from loadtests.stats import (
    CSV_PREFIX,
    FINAL_CSV_PREFIX,
    FailureRow,
    StatsRow,
    read_stats,
    replay_stats,
)
from loadtests.taps import check_taps
from loadtests.trace import trace_file
from platform_stub import Platform
from platform_stub.client import ADMIN_TOKEN_ENV

LOCUSTFILES: dict[str, str] = {
    "payments": "locustfile_payments.py",
    "transit": "locustfile_transit.py",
    "paycodes": "locustfile_paycodes.py",
    "hospital": "locustfile_hospital.py",
    "bills": "locustfile_bills.py",
    "city": "locustfile_city.py",
    "ramp": "locustfile_ramp.py",
    "spike": "locustfile_spike.py",
    "soak": "locustfile_soak.py",
    "cityday": "locustfile_cityday.py",
}
REPLAY = "replay"
SCENARIOS: dict[str, str] = {
    "payments": "shoppers pay breakfast stalls' collection codes",
    "transit": "bus readers: riders' signed offline taps, batch uploads, deny lists",
    "paycodes": "merchants charge their customers' payment codes",
    "hospital": "patients' visits: charges on a hold or paid as they fall due, finalized",
    "bills": "residents pay the bills their utility presents",
    "city": "every role at once, and the operator closing settlement windows",
    "ramp": "the city, users climbing in steps to --users",
    "spike": "the city, a Friday free-ride morning: bus readers rush in, then ebb",
    "soak": "the city at --users for a long --duration",
    "cityday": "the city following a simulated day (--trace RUN_DIR), compressed",
    REPLAY: "open-model replay of a simulated day (--trace RUN_DIR); --users caps concurrency",
}
NEEDS_TRACE = ("cityday", REPLAY)
WORKERS_MAX = 32
LOCUST_STOP_TIMEOUT_S = 5  # users finish the task in hand, so every request sent is counted
LOCUST_EXIT_MARGIN_S = 30.0  # start-up, the stop timeout and writing the reports
WORKERS_CONNECT_WAIT_S = 30
REPLAY_MARGIN_S = 120.0  # the replay's set-up calls before its clock starts, and its drain
LOOPBACK_NAMES = frozenset({"localhost"})

OUTPUT_FILES = (
    "loadtest.json",
    LATENCY_FILE,
    "histograms.json",
    "reader_taps.json",
    "replay.json",
    "replay.log",
    "locust.html",
    "locust.log",
    "server.log",
    *(f"{p}_{kind}.csv" for p in (CSV_PREFIX, FINAL_CSV_PREFIX) for kind in ("stats", "failures")),
    f"{CSV_PREFIX}_exceptions.csv",
    f"{CSV_PREFIX}_stats_history.csv",
)
DEFAULT_DB_FILES = ("platform.db", "platform.db-wal", "platform.db-shm")


@dataclass
class LoadtestResult:
    """What a load test did and whether it passed (``reasons`` says why not).

    ``audit`` (``AuditReport.as_dict()``) and ``taps`` (``TapCheck.as_dict()``) are
    filled when the runner served the platform itself and empty when it loaded someone
    else's server. ``latency_ms`` holds our HDR figures by kind ("latency"; the replay
    adds "service" and "lateness") and endpoint ("POST /v1/payments").
    """

    name: str
    users: int
    duration_s: float
    spawn_rate: float
    host: str
    exit_code: int
    total_requests: int
    total_failures: int
    stats: list[StatsRow] = field(default_factory=list)
    failures: list[FailureRow] = field(default_factory=list)
    audit: dict = field(default_factory=dict)
    stats_source: str = ""
    passed: bool = False
    workers: int = 0
    slo: str = ""
    breaches: list[str] = field(default_factory=list)
    latency_ms: dict = field(default_factory=dict)
    taps: dict = field(default_factory=dict)
    replay: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    requests_max: int = 0
    stopped_by: str = "time"

    def row(self, name: str, method: str | None = None) -> StatsRow:
        """The stats of one request name, e.g. ``row("/v1/payments")``."""
        for row in self.stats:
            if row.name == name and method in (None, row.method):
                return row
        raise KeyError(f"no request named {name!r}; have {sorted(r.name for r in self.stats)}")


@dataclass(frozen=True)
class _Run:
    """One load test's settings, every one checked."""

    name: str
    out_dir: Path
    users: int
    spawn_rate: float
    run_time_s: int
    host: str
    workers: int
    slo: Path
    trace: Path | None
    trace_day: int | None
    requests_max: int

    def locust_command(self, master_port: int | None) -> list[str]:
        out = self.out_dir
        command = [
            sys.executable, "-m", "locust", "-f", str(_locustfile(self.name)),
            "--headless", "-u", str(self.users), "-r", str(self.spawn_rate),
            "-t", f"{self.run_time_s}s", "--stop-timeout", str(LOCUST_STOP_TIMEOUT_S),
            "--host", self.host, "--only-summary",
            "--csv", str(out / CSV_PREFIX), "--html", str(out / "locust.html"),
            "--final-csv", str(out / FINAL_CSV_PREFIX),
            "--results-dir", str(out), "--slo", str(self.slo),
        ]  # fmt: skip
        if self.requests_max:
            command += ["--stop-after-requests", str(self.requests_max)]
        if self.trace is not None:
            command += ["--trace", str(self.trace), "--trace-day", str(_day_arg(self.trace_day))]
        if master_port is not None:
            command += [
                "--master", "--expect-workers", str(self.workers),
                "--expect-workers-max-wait", str(WORKERS_CONNECT_WAIT_S),
                "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            ]  # fmt: skip
        return command

    def worker_command(self, master_port: int) -> list[str]:
        return [
            sys.executable, "-m", "locust", "-f", str(_locustfile(self.name)), "--worker",
            "--master-host", "127.0.0.1", "--master-port", str(master_port),
            "--stop-timeout", str(LOCUST_STOP_TIMEOUT_S), "--only-summary",
        ]  # fmt: skip

    def replay_command(self) -> list[str]:
        return [
            sys.executable, "-m", "loadtests.replay", "--host", self.host,
            "--trace", str(self.trace), "--trace-day", str(_day_arg(self.trace_day)),
            "--duration", str(self.run_time_s), "--concurrency", str(self.users),
            "--results-dir", str(self.out_dir), "--slo", str(self.slo),
        ]  # fmt: skip


def run_loadtest(
    name: str,
    out_dir: Path,
    users: int = 10,
    duration_s: float = 20,
    spawn_rate: float | None = None,
    host: str | None = None,
    db_url: str | None = None,
    workers: int = 0,
    slo: Path | str | None = None,
    trace: Path | str | None = None,
    trace_day: int | None = None,
    requests_max: int | None = None,
) -> LoadtestResult:
    """Run load test ``name`` for ``duration_s`` with ``users`` and write ``loadtest.json``.

    ``requests_max`` ends a Locust scenario sooner, once that many requests are counted;
    ``spawn_rate`` defaults to all users within the first second; ``workers`` > 0 runs
    Locust's master and that many workers; ``slo`` defaults to ``slo_default.toml``;
    ``trace`` (a run folder or its trace.parquet) feeds cityday and replay. Without
    ``host`` the runner serves the platform on ``db_url`` (default
    ``out_dir/platform.db``, recreated) and audits it afterwards. Bad arguments raise
    ValueError (a bad service-level file ScenarioError) before anything starts; a
    server or load process that fails raises LoadtestError.
    """
    run = _checked(name, Path(out_dir), users, duration_s, spawn_rate, host, db_url, workers,
                   slo, trace, trace_day, requests_max)
    levels = load_service_levels(run.slo)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    _remove(run.out_dir, (*OUTPUT_FILES, *_worker_logs(run.out_dir)))
    env = _environment(serving=host is None)
    if host is None:
        run, exit_code, audit, taps = _serve_and_run(run, db_url, env)
    else:
        exit_code, audit, taps = _load(run, env), {}, {}
    result = _result(run, exit_code, levels, audit, taps)
    (run.out_dir / "loadtest.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def _checked(
    name: str,
    out_dir: Path,
    users: int,
    duration_s: float,
    spawn_rate: float | None,
    host: str | None,
    db_url: str | None,
    workers: int,
    slo: Path | str | None,
    trace: Path | str | None,
    trace_day: int | None,
    requests_max: int | None,
) -> _Run:
    """Every argument checked before anything starts."""
    if name != REPLAY:
        _locustfile(name)
    run_time_s = _whole_seconds(duration_s)
    rate = _spawn_rate(users, spawn_rate)
    if host is not None:
        _check_loopback(host)
        if db_url is not None:
            raise ValueError("db_url applies only when the runner starts the server (host=None)")
    _check_workers(name, workers)
    requests = _checked_requests_max(name, requests_max)
    return _Run(
        name, out_dir.resolve(), users, rate, run_time_s, host or "", workers,
        Path(slo or DEFAULT_SLO).resolve(), _checked_trace(name, trace), trace_day,
        requests,
    )


def _locustfile(name: str) -> Path:
    if name not in LOCUSTFILES:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"unknown load test {name!r}; known load tests: {known}")
    return Path(__file__).parent / LOCUSTFILES[name]


def _whole_seconds(duration_s: float) -> int:
    """Locust's --run-time takes whole seconds; refuse rather than silently round."""
    if not (duration_s >= 1 and float(duration_s).is_integer()):
        raise ValueError(f"duration_s must be a whole number of seconds >= 1, got {duration_s}")
    return int(duration_s)


def _spawn_rate(users: int, spawn_rate: float | None) -> float:
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    rate = float(users) if spawn_rate is None else spawn_rate
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"spawn_rate must be a positive number of users per second, got {rate}")
    return rate


def _check_workers(name: str, workers: int) -> None:
    if not 0 <= workers <= WORKERS_MAX:
        raise ValueError(f"workers must be 0 (one process) to {WORKERS_MAX}, got {workers}")
    if workers and name == REPLAY:
        raise ValueError("the replay runs in one process; workers apply to Locust scenarios")


def _checked_requests_max(name: str, requests_max: int | None) -> int:
    """0 for no limit; the replay's length is its day's calls, so it takes none."""
    if requests_max is None:
        return 0
    if name == REPLAY:
        raise ValueError("the replay sends its day's calls; requests_max is for Locust scenarios")
    if isinstance(requests_max, bool) or not isinstance(requests_max, int) or requests_max < 1:
        raise ValueError(f"requests_max must be a whole number >= 1, got {requests_max!r}")
    return requests_max


def _checked_trace(name: str, trace: Path | str | None) -> Path | None:
    if name not in NEEDS_TRACE:
        if trace is not None:
            raise ValueError(f"a trace applies only to {' and '.join(NEEDS_TRACE)}")
        return None
    if trace is None:
        raise ValueError(f"{name} needs a trace: a run folder of `cashless run`")
    return trace_file(trace).resolve()


def _day_arg(trace_day: int | None) -> int:
    return -1 if trace_day is None else trace_day


def _check_loopback(host: str) -> None:
    """Load is only ever sent to this machine: 127.0.0.0/8, ::1 or localhost."""
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"host must be a URL such as http://127.0.0.1:8080, got {host!r}")
    if parts.hostname.lower() in LOOPBACK_NAMES:
        return
    try:
        loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to load {host!r}: only loopback hosts (127.0.0.1, ::1)")


def _remove(folder: Path, names: tuple[str, ...]) -> None:
    """Delete a previous run's outputs so no stale file is read as this run's."""
    for name in names:
        (folder / name).unlink(missing_ok=True)


def _worker_logs(folder: Path) -> tuple[str, ...]:
    return tuple(p.name for p in folder.glob("locust-worker-*.log"))


def _environment(serving: bool) -> dict[str, str]:
    """LOCUST_* variables would change the run; a served platform gets a fresh operator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    if serving:
        env[ADMIN_TOKEN_ENV] = secrets.token_urlsafe(24)
    return env


def _serve_and_run(
    run: _Run, db_url: str | None, env: dict[str, str]
) -> tuple[_Run, int, dict, dict]:
    """Serve the platform, load it, then audit the ledger and count the taps it holds."""
    if db_url is None:
        _remove(run.out_dir, DEFAULT_DB_FILES)
        db_url = f"sqlite:///{run.out_dir / DEFAULT_DB_FILES[0]}"
    with platform_server(db_url, run.out_dir / "server.log", env) as url:
        run = dataclasses.replace(run, host=url)
        exit_code = _load(run, env)
    taps = check_taps(db_url, read_measured(run.out_dir).reader_taps).as_dict()
    return run, exit_code, _audit(db_url), taps


def _load(run: _Run, env: dict[str, str]) -> int:
    """Run the load process(es); the exit code of the one that judges (master or replay)."""
    if run.name == REPLAY:
        limit_s = run.run_time_s + REPLAY_MARGIN_S
        label = f"Replay: a simulated day in {run.run_time_s} s on {run.host}"
        return run_bounded(run.replay_command(), run.out_dir / "replay.log", run.out_dir,
                           env, limit_s, label)
    port = free_port() if run.workers else None
    helpers = [run.worker_command(port) for _ in range(run.workers)] if port else []
    limit_s = run.run_time_s + LOCUST_STOP_TIMEOUT_S + LOCUST_EXIT_MARGIN_S
    limit_s += WORKERS_CONNECT_WAIT_S if helpers else 0
    label = f"Locust {run.name}: {run.users} users for {run.run_time_s} s on {run.host}"
    return run_bounded(run.locust_command(port), run.out_dir / "locust.log", run.out_dir, env,
                       limit_s, label, helpers)


def _audit(db_url: str) -> dict:
    """The ledger audit, run after the server stopped so no write is in flight."""
    platform = Platform.open(db_url)
    try:
        return platform.audit().as_dict()
    finally:
        platform.close()


def _result(
    run: _Run, exit_code: int, levels: ServiceLevels, audit: dict, taps: dict
) -> LoadtestResult:
    measured = read_measured(run.out_dir)
    if run.name == REPLAY:
        replay = _read_json(run.out_dir / "replay.json")
        stats, failures, source = replay_stats(measured, replay)
    else:
        replay = {}
        stats, failures, source = read_stats(run.out_dir)
    write_latency_parquet(measured, run.out_dir / LATENCY_FILE)
    total = next((r for r in stats if r.name == "Aggregated"), None)
    total_requests = total.requests if total else 0
    counted_out = bool(run.requests_max) and total_requests >= run.requests_max
    result = LoadtestResult(
        name=run.name, users=run.users, duration_s=float(run.run_time_s),
        spawn_rate=run.spawn_rate, host=run.host, exit_code=exit_code,
        total_requests=total_requests,
        total_failures=total.failures if total else 0,
        stats=[r for r in stats if r.name != "Aggregated"], failures=failures, audit=audit,
        stats_source=source, workers=run.workers, slo=str(run.slo),
        breaches=[str(b) for b in measured.breaches(levels)] if measured.found else [],
        latency_ms=measured.latency_by_endpoint(), taps=taps, replay=replay,
        requests_max=run.requests_max, stopped_by="requests" if counted_out else "time",
    )  # fmt: skip
    result.reasons = _reasons(result, measured)
    result.passed = not result.reasons
    return result


def _reasons(result: LoadtestResult, measured: Measured) -> list[str]:
    """Why a run did not pass; none means it did."""
    reasons = []
    if result.total_requests == 0:
        reasons.append("no requests were made")
    if result.exit_code != 0:
        reasons.append(f"the load process exited with code {result.exit_code}")
    if not measured.found:
        reasons.append("no histograms were written: latency could not be judged")
    if result.breaches:
        reasons.append(f"{len(result.breaches)} service level(s) breached")
    if result.audit and not result.audit.get("audit_ok", True):
        checks = result.audit.get("checks", {})
        broken = [name for name, check in checks.items() if not check.get("ok", True)]
        reasons.append(f"ledger audit failed: {', '.join(broken) or 'see audit'}")
    if result.taps and not result.taps.get("ok", True):
        reasons.append(f"{result.taps['lost']} tap(s) lost: uploaded without an outcome row")
    return reasons


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


__all__ = [
    "LOCUSTFILES",
    "SCENARIOS",
    "FailureRow",
    "LoadtestError",
    "LoadtestResult",
    "StatsRow",
    "run_loadtest",
]
