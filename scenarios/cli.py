"""The `cashless` command: run scenarios, serve the platform, audit ledgers, load-test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from platform_stub.exceptions import CashlessError, ScenarioError
from scenarios.cli_research import calibrate, compare, sensitivity

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate and load-test a city's move to mobile payment.",
)
out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]Error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario file, or a library name.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder.")] = None,
    seed: Annotated[int | None, typer.Option(help="Overrides the scenario's seed.")] = None,
    platform: Annotated[
        str | None,
        typer.Option(help="URL of a running `cashless serve`; default: in-process on SQLite."),
    ] = None,
) -> None:
    """Simulate a scenario and write its run folder (events, daily, summary, report)."""
    from scenarios.loader import load_scenario
    from scenarios.runner import default_out_dir, run_scenario

    try:
        loaded = load_scenario(scenario)
        chosen_seed = loaded.seed if seed is None else seed
        folder = out_dir or default_out_dir(loaded, chosen_seed)
        result = run_scenario(loaded, folder, chosen_seed, platform_url=platform, console=err)
    except ScenarioError as exc:
        raise fail(exc.detail, 2) from None
    except CashlessError as exc:
        raise fail(f"{exc.code}: {exc.detail}") from None
    print_summary(result.summary, result.out_dir)


def print_summary(summary: dict[str, Any], folder: Path) -> None:
    table = Table(
        title=f"{summary['scenario']} (seed {summary['seed']}, "
        f"{summary['days']} days, {summary['population']['residents']:,} residents)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    adoption = summary["adoption"]
    table.add_row("adopted, all residents", f"{adoption['overall']:.1%}")
    for segment, share in adoption["by_segment"].items():
        table.add_row(f"adopted, {segment}", f"{share:.1%}")
    for channel, count in summary["transactions"]["by_channel"].items():
        table.add_row(f"transactions, {channel}", f"{count:,}")
    lat = summary["latency_ms"]
    table.add_row(
        "platform latency p50/p95/p99", f"{lat['p50']:.2f} / {lat['p95']:.2f} / {lat['p99']:.2f} ms"
    )
    transit = summary.get("transit")
    if transit:
        rejected = sum(transit["rejected_by_reason"].values())
        table.add_row("offline taps cleared / rejected", f"{transit['cleared']:,} / {rejected:,}")
        lag = transit["clearing_lag_s"]
        if lag["p50"] is not None:
            table.add_row(
                "clearing lag p50/p99", f"{lag['p50'] / 3600:.1f} / {lag['p99'] / 3600:.1f} h"
            )
    ledger = summary["ledger"]
    table.add_row(
        "ledger audit", {True: "passed", False: "FAILED", None: "remote"}[ledger["audit_ok"]]
    )
    table.add_row("ledger transfers", f"{ledger['transfer_count'] or 0:,}")
    out.print(table)
    out.print(f"Run folder: {folder}  (report: {folder / 'report.html'})")


@app.command()
def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Run folders of `cashless run` or `cashless loadtest` (one or more)."),
    ],
    targets: Annotated[
        Path | None,
        typer.Option(
            help="Targets file, or a library name: add published figures beside the run's."
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="Worker processes for several folders; default one per core."),
    ] = None,
) -> None:
    """Rebuild run folders' report.html and figures from their data files.

    A load-test folder (with loadtest.json) gets the latency report instead. With
    --targets each run's calibration.json is (re)written and its page gains a
    calibration table. Several folders (a sweep's, say) are drawn in parallel.
    """
    from reports.batch import JOBS_MAX, default_jobs
    from reports.loadtest import build_loadtest_report, is_loadtest_folder

    if jobs is not None and not 1 <= jobs <= JOBS_MAX:
        raise fail(f"--jobs must be 1..{JOBS_MAX}, not {jobs}", 2)
    loadtests = [d for d in run_dirs if is_loadtest_folder(d)]
    runs = [d for d in run_dirs if d not in loadtests]
    for run_dir in runs:
        if not (run_dir / "summary.json").is_file():
            raise fail(f"{run_dir} is not a run folder (no summary.json or loadtest.json)", 2)
    for run_dir in loadtests:
        out.print(f"Report: {build_loadtest_report(run_dir)}")
    try:
        for run_dir in runs if targets is not None else ():
            write_run_calibration(run_dir, targets)
        pages = _build_reports(runs, jobs or default_jobs())
    except ScenarioError as exc:
        raise fail(exc.detail, 2) from None
    except FileNotFoundError as exc:
        raise fail(str(exc), 2) from None
    for page in pages:
        out.print(f"Report: {page}")


def _build_reports(runs: list[Path], jobs: int) -> list[Path]:
    """Every run folder's report, with a progress bar when there are several."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from reports.batch import build_run_reports

    if len(runs) <= 1:
        return build_run_reports(runs)
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("reports", total=len(runs))
        return build_run_reports(runs, jobs, lambda _page: progress.advance(task))


def write_run_calibration(run_dir: Path, targets: Path) -> None:
    """calibration.json of a finished run: each target's published and simulated value."""
    import json

    import polars as pl

    from scenarios.calibrate import measure_run
    from scenarios.targets import load_targets, resolve_targets_path

    targets = resolve_targets_path(targets)
    spec = load_targets(targets)
    daily = pl.read_parquet(run_dir / "daily.parquet")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    rows = measure_run(spec.targets, daily, summary)
    record = {"kind": "run", "targets_file": str(targets), "targets": rows}
    (run_dir / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")


@app.command()
def scenarios() -> None:
    """List the scenario library with a line on each."""
    from scenarios.loader import LIBRARY_DIR, library_paths, load_scenario

    table = Table(title=f"Scenario library ({LIBRARY_DIR})")
    table.add_column("name")
    table.add_column("description")
    for path in library_paths():
        try:
            table.add_row(path.stem, load_scenario(path).description)
        except ScenarioError as exc:
            table.add_row(path.stem, f"[red]invalid: {exc.detail}[/]")
    out.print(table)


@app.command()
def sweep(
    scenario: Annotated[str, typer.Argument(help="Scenario file, or a library name.")],
    seeds: Annotated[int, typer.Option(help="Seeds per grid point.")] = 5,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="key=value applied to every run (TOML values)."),
    ] = None,
    grid: Annotated[
        list[str] | None, typer.Option(help="key=v1,v2,... one axis of the grid.")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Sweep folder.")] = None,
    jobs: Annotated[
        int, typer.Option(min=1, help="Parallel processes (dask: local workers).")
    ] = os.cpu_count() or 1,
    engine: Annotated[
        str, typer.Option(help="local (a process pool) or dask (needs the distributed extra).")
    ] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (tcp://host:8786); default a LocalCluster."),
    ] = None,
) -> None:
    """Run a scenario over seeds and a parameter grid in parallel; resumes where it stopped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from scenarios.loader import load_scenario
    from scenarios.sweep import SweepPlan, finished, parse_assignment, parse_grid, run_sweep

    try:
        plan = SweepPlan(
            scenario,
            seeds,
            dict(parse_assignment(s, "--set") for s in set_ or []),
            dict(parse_grid(g) for g in grid or []),
        )
        folder = out_dir or Path("runs") / f"sweep-{Path(scenario).stem}"
        specs = plan.runs(folder, load_scenario(scenario, plan.sets).seed)
        already = sum(finished(spec) for spec in specs)
        with Progress(
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("runs", total=len(specs), completed=already)
            table = run_sweep(
                plan,
                folder,
                jobs,
                lambda spec, ok: progress.advance(task),
                engine=engine,
                scheduler=scheduler,
            )
    except ScenarioError as exc:
        raise fail(exc.detail, 2) from None
    failed = table.filter(table["status"] != "ok").height
    out.print(
        f"{table.height - failed} of {table.height} runs finished; table: {folder / 'runs.csv'}"
    )
    if failed:
        raise fail(f"{failed} run(s) failed; see the error column of {folder / 'runs.csv'}")


@app.command()
def serve(
    db: Annotated[str, typer.Option(help="sqlite:///PATH or postgresql://...")] = (
        "sqlite:///runs/platform.db"
    ),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, max=32, help="Worker processes.")] = 1,
) -> None:
    """Serve the platform's HTTP API (OpenAPI at /openapi.json)."""
    from platform_stub.server import serve as run_server

    err.print(
        f"Serving the platform on http://{host}:{port} with {workers} worker(s)"
        f" (database {db}); Ctrl-C stops."
    )
    run_server(db, host, port, workers=workers)


@app.command()
def audit(
    target: Annotated[str, typer.Argument(help="Run folder, SQLite file or postgresql:// URL.")],
) -> None:
    """Check the ledger invariants; exits 1 naming each broken one."""
    from platform_stub import audit as run_audit
    from platform_stub import open_database

    url = _ledger_url(target)
    db = open_database(url)
    try:
        report = run_audit(db)
    finally:
        db.close()
    table = Table(title=f"Ledger audit: {target}")
    for column in ("invariant", "result", "detail"):
        table.add_column(column)
    for check in report.checks:
        table.add_row(check.name, "ok" if check.ok else "[red]BROKEN[/]", check.detail)
    out.print(table)
    out.print(f"{report.transfer_count:,} transfers over {report.account_count:,} accounts")
    if not report.ok:
        raise fail("broken invariant: " + ", ".join(c.name for c in report.broken))


def _ledger_url(target: str) -> str:
    if "://" in target:
        return target
    path = Path(target)
    if path.is_dir():
        path = path / "ledger.db"
    if not path.is_file():
        raise fail(f"no ledger at {path}: give a run folder, a SQLite file or a database URL", 2)
    return f"sqlite:///{path}"


@app.command()
def loadtest(
    name: Annotated[
        str,
        typer.Argument(
            help="payments, transit, paycodes, hospital, bills, city, ramp, spike, soak, cityday"
            " or replay (loadtests/README.md)."
        ),
    ],
    users: Annotated[
        int,
        typer.Option(
            min=1, help="Concurrent simulated users (replay: requests in flight at most)."
        ),
    ] = 10,
    duration: Annotated[str, typer.Option(help="Run time, e.g. 20s, 2m.")] = "20s",
    requests: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Stop once Locust has counted this many requests, or at --duration if sooner.",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0, max=32, help="Locust worker processes beside the master; 0: one process."
        ),
    ] = 0,
    slo: Annotated[
        Path | None,
        typer.Option(help="Service-level file (TOML); default loadtests/slo_default.toml."),
    ] = None,
    trace: Annotated[
        Path | None, typer.Option(help="Run folder of `cashless run` (cityday and replay).")
    ] = None,
    trace_day: Annotated[
        int | None, typer.Option(help="The simulated day to use; default the busiest.")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    host: Annotated[
        str | None, typer.Option(help="A running platform (loopback only); default: start one.")
    ] = None,
) -> None:
    """Run a headless load test; write Locust's CSV/HTML, HDR histograms, latency.parquet
    and the verdict (loadtest.json) into a folder. Exits 1 naming each breached level."""
    from loadtests import LoadtestError, run_loadtest, summary_table

    folder = out_dir or Path("runs") / f"loadtest-{name}"
    try:
        result = run_loadtest(
            name,
            folder,
            users=users,
            duration_s=parse_duration_s(duration),
            host=host,
            workers=workers,
            slo=slo,
            trace=trace,
            trace_day=trace_day,
            requests_max=requests,
        )
    except ScenarioError as exc:
        raise fail(exc.detail, 2) from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    except LoadtestError as exc:
        raise fail(str(exc)) from None
    out.print(summary_table(result))
    for breach in result.breaches:
        err.print(f"[red]service level breached:[/] {breach}", highlight=False)
    out.print(
        f"{result.total_requests:,} requests, {result.total_failures:,} failures;"
        f" results in {folder}"
    )
    if not result.passed:
        raise fail("load test did not pass: " + "; ".join(result.reasons))


def parse_duration_s(text: str) -> float:
    """'20s', '2m', '1h' or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise fail(f"--duration {text!r}: expected a number with s, m or h", 2) from None


app.command()(compare)
app.command()(calibrate)
app.command()(sensitivity)


def main() -> None:
    """The ``cashless`` console script. pip writes it with its call under
    ``if __name__ == "__main__":``, so clearing may verify taps on spawned workers."""
    from platform_stub.transit.verify import declare_main_import_safe

    declare_main_import_safe()
    app()


if __name__ == "__main__":
    main()
