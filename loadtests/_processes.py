"""The processes a load test starts: the platform server, Locust (master and workers), the replay.

Every process started here is stopped on the way out (terminate, then kill), and
every wait is bounded; a process that outlives its bound raises ``LoadtestError``
with the tail of its log.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
from rich.console import Console

HEALTH_WAIT_S = 20.0
HEALTH_POLL_S = 0.1
HEALTH_REQUEST_TIMEOUT_S = 1.0
PROCESS_STOP_WAIT_S = 10.0
PROGRESS_TICK_S = 0.5
LOG_TAIL_CHARS = 4_000


class LoadtestError(RuntimeError):
    """A load test that could not run: the server or Locust failed to start or to finish."""


@contextlib.contextmanager
def platform_server(db_url: str, log_path: Path, env: Mapping[str, str]) -> Iterator[str]:
    """`python -m platform_stub.server` on a free loopback port, stopped on the way out.
    ``env`` carries the operator's credential, which the server reads at start."""
    port = free_port()
    command = [sys.executable, "-m", "platform_stub.server", "--db", db_url, "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(proc, url, log_path)
        yield url
    finally:
        stop(proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + HEALTH_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LoadtestError(
                f"platform server exited with code {proc.returncode} before it was healthy;"
                f" its output:\n{tail(log_path)}"
            )
        if _healthy(url):
            return
        time.sleep(HEALTH_POLL_S)
    raise LoadtestError(
        f"platform server at {url} not healthy within {HEALTH_WAIT_S:g} s;"
        f" its output:\n{tail(log_path)}"
    )


def _healthy(url: str) -> bool:
    try:
        # trust_env=False: a proxy from the environment must not see loopback traffic.
        reply = httpx.get(f"{url}/health", timeout=HEALTH_REQUEST_TIMEOUT_S, trust_env=False)
    except httpx.TransportError:
        return False
    return reply.status_code == 200


def tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no output)"
    return text[-LOG_TAIL_CHARS:]


def stop(proc: subprocess.Popen) -> None:
    """Terminate (Locust and uvicorn then write and flush what they hold), else kill."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=PROCESS_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start(
    command: list[str], log_path: Path, cwd: Path, env: Mapping[str, str]
) -> subprocess.Popen:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=dict(env)
        )


def run_bounded(
    command: list[str],
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str],
    limit_s: float,
    label: str,
    helpers: Sequence[list[str]] = (),
) -> int:
    """Run ``command`` (with ``helpers`` beside it, e.g. Locust workers, each logging to
    ``<log stem>-<n>.log``) and return its exit code; everything is stopped on the way out."""
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start(command, log_path, cwd, env))
        for number, helper in enumerate(helpers, 1):
            helper_log = log_path.with_name(f"{log_path.stem}-worker-{number}.log")
            procs.append(start(helper, helper_log, cwd, env))
        code = _wait(procs[0], limit_s, label, log_path)
        for helper_proc in procs[1:]:
            _wait_quietly(helper_proc)
        return code
    finally:
        for proc in procs:
            stop(proc)


def _wait(proc: subprocess.Popen, limit_s: float, label: str, log_path: Path) -> int:
    started = time.monotonic()
    with _status(label) as show:
        while (elapsed_s := time.monotonic() - started) < limit_s:
            try:
                return proc.wait(timeout=PROGRESS_TICK_S)
            except subprocess.TimeoutExpired:
                show(f"{label} ({elapsed_s:.0f} s)")
    raise LoadtestError(f"{label}: still running after {limit_s:g} s; its output:\n"
                        f"{tail(log_path)}")


def _wait_quietly(proc: subprocess.Popen) -> None:
    """A worker quits when its master does; give it a moment to flush its log."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=PROCESS_STOP_WAIT_S)


@contextlib.contextmanager
def _status(text: str) -> Iterator[Callable[[str], None]]:
    """A rich status line on a terminal; silence when the output is a file or a pipe."""
    console = Console()
    if not console.is_terminal:
        yield lambda _text: None
        return
    with console.status(text) as status:
        yield lambda new_text: status.update(new_text)
