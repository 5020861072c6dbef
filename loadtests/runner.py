"""Run a Locust scenario headless against the platform and judge the outcome.

A run either starts its own platform server (a fresh SQLite file in the output
folder unless ``db_url`` says otherwise) and audits that ledger once the server
has stopped, or loads a server already running on this machine. Traffic never
leaves loopback: any other host is refused before anything starts.

Files written into ``out_dir``:

    locust_stats.csv, locust_failures.csv, ...   Locust's periodic CSV (may be short)
    locust_final_stats.csv, locust_final_failures.csv   the totals when Locust quit
    locust.html, locust.log, server.log          report and logs
    platform.db                                  the ledger, when the runner served it
    loadtest.json                                this module's verdict (LoadtestResult)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import ipaddress
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from rich.console import Console

from platform_stub import Platform

LOCUSTFILES: dict[str, str] = {"payments": "locustfile_payments.py"}

HEALTH_WAIT_S = 20.0
HEALTH_POLL_S = 0.1
HEALTH_REQUEST_TIMEOUT_S = 1.0
PROCESS_STOP_WAIT_S = 10.0
LOCUST_STOP_TIMEOUT_S = 5  # users finish the task in hand, so every request sent is counted
LOCUST_EXIT_MARGIN_S = 30.0  # start-up, the stop timeout and writing the reports
PROGRESS_TICK_S = 0.5
LOG_TAIL_CHARS = 4_000
LOOPBACK_NAMES = frozenset({"localhost"})

CSV_PREFIX = "locust"
FINAL_CSV_PREFIX = "locust_final"
OUTPUT_FILES = (
    "loadtest.json",
    "locust.html",
    "locust.log",
    "server.log",
    *(f"{p}_{kind}.csv" for p in (CSV_PREFIX, FINAL_CSV_PREFIX) for kind in ("stats", "failures")),
    f"{CSV_PREFIX}_exceptions.csv",
    f"{CSV_PREFIX}_stats_history.csv",
)
DEFAULT_DB_FILES = ("platform.db", "platform.db-wal", "platform.db-shm")


class LoadtestError(RuntimeError):
    """A load test that could not run: the server or Locust failed to start or to finish."""


@dataclass(frozen=True)
class StatsRow:
    """One request name's figures; latencies are Locust's bucketed percentiles."""

    method: str
    name: str
    requests: int
    failures: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    requests_per_s: float


@dataclass(frozen=True)
class FailureRow:
    method: str
    name: str
    error: str
    occurrences: int


@dataclass
class LoadtestResult:
    """What a load test did and whether it passed.

    ``audit`` is the ledger audit (``AuditReport.as_dict()``) when the runner served
    the platform itself, and empty when it loaded someone else's server. ``passed``
    needs at least one request, no failure, Locust's exit code 0 and, when there is
    an audit, an audit that holds.
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

    def row(self, name: str, method: str | None = None) -> StatsRow:
        """The stats of one request name, e.g. ``row("/v1/payments")``."""
        for row in self.stats:
            if row.name == name and method in (None, row.method):
                return row
        raise KeyError(f"no request named {name!r}; have {sorted(r.name for r in self.stats)}")


@dataclass(frozen=True)
class _LocustArgs:
    locustfile: Path
    out_dir: Path
    users: int
    spawn_rate: float
    run_time_s: int
    host: str

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "locust", "-f", str(self.locustfile),
            "--headless", "-u", str(self.users), "-r", str(self.spawn_rate),
            "-t", f"{self.run_time_s}s", "--stop-timeout", str(LOCUST_STOP_TIMEOUT_S),
            "--host", self.host, "--only-summary",
            "--csv", str(self.out_dir / CSV_PREFIX),
            "--html", str(self.out_dir / "locust.html"),
            "--final-csv", str(self.out_dir / FINAL_CSV_PREFIX),
        ]  # fmt: skip


def run_loadtest(
    name: str,
    out_dir: Path,
    users: int = 10,
    duration_s: float = 20,
    spawn_rate: float | None = None,
    host: str | None = None,
    db_url: str | None = None,
) -> LoadtestResult:
    """Run load test ``name`` for ``duration_s`` with ``users`` and write ``loadtest.json``.

    ``spawn_rate`` defaults to all users within the first second. Without ``host``
    the runner serves the platform on ``db_url`` (default ``out_dir/platform.db``,
    recreated) and audits it afterwards. Bad arguments raise ValueError before
    anything starts; a server or Locust that fails raises LoadtestError.
    """
    locustfile, run_time_s, rate = _checked(name, users, duration_s, spawn_rate, host, db_url)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove(out_dir, OUTPUT_FILES)
    args = _LocustArgs(locustfile, out_dir, users, rate, run_time_s, host or "")
    if host is None:
        args, exit_code, audit = _serve_and_run(args, db_url)
    else:
        exit_code, audit = _run_locust(args), {}
    result = _result(name, args, exit_code, audit)
    (out_dir / "loadtest.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def _checked(
    name: str,
    users: int,
    duration_s: float,
    spawn_rate: float | None,
    host: str | None,
    db_url: str | None,
) -> tuple[Path, int, float]:
    """Every argument checked before anything starts: locustfile, run time, spawn rate."""
    locustfile = _locustfile(name)
    run_time_s = _whole_seconds(duration_s)
    rate = _spawn_rate(users, spawn_rate)
    if host is not None:
        _check_loopback(host)
        if db_url is not None:
            raise ValueError("db_url applies only when the runner starts the server (host=None)")
    return locustfile, run_time_s, rate


def _locustfile(name: str) -> Path:
    if name not in LOCUSTFILES:
        known = ", ".join(sorted(LOCUSTFILES))
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


def _serve_and_run(args: _LocustArgs, db_url: str | None) -> tuple[_LocustArgs, int, dict]:
    """Serve the platform, run Locust against it, then audit the ledger it leaves."""
    if db_url is None:
        _remove(args.out_dir, DEFAULT_DB_FILES)
        db_url = f"sqlite:///{args.out_dir / DEFAULT_DB_FILES[0]}"
    with _platform_server(db_url, args.out_dir / "server.log") as url:
        args = dataclasses.replace(args, host=url)
        exit_code = _run_locust(args)
    return args, exit_code, _audit(db_url)


@contextlib.contextmanager
def _platform_server(db_url: str, log_path: Path) -> Iterator[str]:
    """`python -m platform_stub.server` on a free loopback port, stopped on the way out."""
    port = _free_port()
    command = [sys.executable, "-m", "platform_stub.server", "--db", db_url, "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url, log_path)
        yield url
    finally:
        _stop(proc)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + HEALTH_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LoadtestError(
                f"platform server exited with code {proc.returncode} before it was healthy;"
                f" its output:\n{_tail(log_path)}"
            )
        if _healthy(url):
            return
        time.sleep(HEALTH_POLL_S)
    raise LoadtestError(
        f"platform server at {url} not healthy within {HEALTH_WAIT_S:g} s;"
        f" its output:\n{_tail(log_path)}"
    )


def _healthy(url: str) -> bool:
    try:
        # trust_env=False: a proxy from the environment must not see loopback traffic.
        reply = httpx.get(f"{url}/health", timeout=HEALTH_REQUEST_TIMEOUT_S, trust_env=False)
    except httpx.TransportError:
        return False
    return reply.status_code == 200


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no output)"
    return text[-LOG_TAIL_CHARS:]


def _stop(proc: subprocess.Popen) -> None:
    """Terminate (Locust and uvicorn then write and flush what they hold), else kill."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=PROCESS_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_locust(args: _LocustArgs) -> int:
    """Run Locust headless; its exit code. Bounded by the run time plus a margin."""
    log_path = args.out_dir / "locust.log"
    # LOCUST_* variables and a locust.conf in the caller's folder would change the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args.command(), stdout=log, stderr=subprocess.STDOUT, cwd=args.out_dir, env=env
        )
    try:
        return _wait_locust(proc, args, log_path)
    finally:
        _stop(proc)


def _wait_locust(proc: subprocess.Popen, args: _LocustArgs, log_path: Path) -> int:
    limit_s = args.run_time_s + LOCUST_STOP_TIMEOUT_S + LOCUST_EXIT_MARGIN_S
    started = time.monotonic()
    label = f"Locust: {args.users} users for {args.run_time_s} s on {args.host}"
    with _status(label) as show:
        while (elapsed_s := time.monotonic() - started) < limit_s:
            try:
                return proc.wait(timeout=PROGRESS_TICK_S)
            except subprocess.TimeoutExpired:
                show(f"{label} ({elapsed_s:.0f} s)")
    raise LoadtestError(
        f"Locust still running after {limit_s:g} s (run time {args.run_time_s} s);"
        f" its output:\n{_tail(log_path)}"
    )


@contextlib.contextmanager
def _status(text: str) -> Iterator[Callable[[str], None]]:
    """A rich status line on a terminal; silence when the output is a file or a pipe."""
    console = Console()
    if not console.is_terminal:
        yield lambda _text: None
        return
    with console.status(text) as status:
        yield lambda new_text: status.update(new_text)


def _audit(db_url: str) -> dict:
    """The ledger audit, run after the server stopped so no write is in flight."""
    platform = Platform.open(db_url)
    try:
        return platform.audit().as_dict()
    finally:
        platform.close()


def _result(name: str, args: _LocustArgs, exit_code: int, audit: dict) -> LoadtestResult:
    stats, failures, source = _read_stats(args.out_dir)
    total = next((r for r in stats if r.name == "Aggregated"), None)
    rows = [r for r in stats if r.name != "Aggregated"]
    result = LoadtestResult(
        name=name,
        users=args.users,
        duration_s=float(args.run_time_s),
        spawn_rate=args.spawn_rate,
        host=args.host,
        exit_code=exit_code,
        total_requests=total.requests if total else 0,
        total_failures=total.failures if total else 0,
        stats=rows,
        failures=failures,
        audit=audit,
        stats_source=source,
    )
    result.passed = (
        result.total_requests > 0
        and result.total_failures == 0
        and exit_code == 0
        and audit.get("audit_ok", True)
    )
    return result


def _read_stats(out_dir: Path) -> tuple[list[StatsRow], list[FailureRow], str]:
    """The final figures when Locust wrote them at quit, else its last periodic CSV."""
    for prefix, source in ((FINAL_CSV_PREFIX, "final"), (CSV_PREFIX, "periodic")):
        path = out_dir / f"{prefix}_stats.csv"
        if path.exists():
            stats = [_stats_row(r) for r in _csv_records(path)]
            failures = [_failure_row(r) for r in _csv_records(out_dir / f"{prefix}_failures.csv")]
            return stats, failures, f"{path.name} ({source})"
    return [], [], "none: Locust wrote no stats"


def _csv_records(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _stats_row(record: dict[str, str]) -> StatsRow:
    return StatsRow(
        method=record["Type"],
        name=record["Name"],
        requests=int(record["Request Count"]),
        failures=int(record["Failure Count"]),
        latency_ms_p50=_ms(record["50%"]),
        latency_ms_p95=_ms(record["95%"]),
        latency_ms_p99=_ms(record["99%"]),
        requests_per_s=float(record["Requests/s"]),
    )


def _ms(text: str) -> float | None:
    """Locust writes N/A for a percentile of no requests."""
    return None if text == "N/A" else float(text)


def _failure_row(record: dict[str, str]) -> FailureRow:
    return FailureRow(
        method=record["Method"],
        name=record["Name"],
        error=record["Error"],
        occurrences=int(record["Occurrences"]),
    )
