"""The research commands of ``cashless``: compare, calibrate, sensitivity.

Registered on ``scenarios.cli.app``; each imports its heavy modules when it runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from platform_stub.exceptions import ScenarioError

SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="key=value applied to every run (TOML values).")
]


def _console() -> tuple[Any, Any, Callable[..., typer.Exit]]:
    from scenarios.cli import err, fail, out

    return out, err, fail


@contextmanager
def _progress(description: str, total: int):  # noqa: ANN202 - a context manager of a callback
    _, err, _ = _console()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(description, total=total)
        yield lambda text=None: progress.update(task, advance=1, description=text or description)


def _sets(set_: list[str] | None) -> dict[str, Any]:
    from scenarios.sweep import parse_assignment

    return dict(parse_assignment(s, "--set") for s in set_ or [])


def compare(
    paths: Annotated[list[Path], typer.Argument(help="Run folders and/or sweep folders.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for compare.html.")] = Path(
        "runs/compare"
    ),
) -> None:
    """Compare scenarios side by side: mean and band over seeds, differences above the noise.

    Runs equal in all but the seed form one scenario; the first one named is the reference.
    """
    from reports.compare import build_compare_report, difference_lines
    from scenarios.compare import BAND_RULE, TEST_RULE, compare, differences

    out, err, fail = _console()
    try:
        comparison = compare(paths)
    except ScenarioError as exc:
        raise fail(exc.detail, 2) from None
    page = build_compare_report(comparison, out_dir)
    table = Table(title="Scenarios compared (first: reference)")
    for column in ("scenario", "seeds"):
        table.add_column(column)
    for group in comparison.groups:
        table.add_row(Text(group.label), str(len(group.runs)))
    out.print(table)
    for note in comparison.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    lines = difference_lines(differences(comparison))
    out.print(f"Differences larger than the noise ({TEST_RULE}):", markup=False)
    for line in lines or ["none"]:
        out.print(f"  {line}", markup=False, highlight=False)
    out.print(f"Bands: {BAND_RULE}.  Report: {page}", markup=False, highlight=False)


def calibrate(
    scenario: Annotated[str, typer.Argument(help="Scenario file, or a library name.")],
    targets: Annotated[
        Path,
        typer.Option(help="Targets file (TOML; see scenarios/targets.py), or a library name."),
    ],
    params: Annotated[
        list[str] | None,
        typer.Option(help="KEY (bounds from the targets file) or KEY=lo,hi; default all."),
    ] = None,
    budget: Annotated[int, typer.Option(help="Simulated runs at most, per seed.")] = 60,
    seeds: Annotated[int, typer.Option(min=1, max=20, help="Seeds averaged per run.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the optimiser.")] = 0,
    set_: SetOption = None,
    jobs: Annotated[int, typer.Option(min=1, help="Parallel processes.")] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    run: Annotated[bool, typer.Option(help="Run the fitted scenario into OUT/run.")] = True,
) -> None:
    """Fit scenario parameters to published figures (scipy differential evolution).

    Writes calibration.json, calibration.csv and the fitted scenario (a TOML file
    `cashless run` loads); with --run also OUT/run, a run of it whose report shows
    each published figure beside the simulated one.
    """
    from scenarios.calibrate import Problem, calibrate, fit_record, plan_budget, resolve_params
    from scenarios.evaluate import run_dates
    from scenarios.loader import load_scenario
    from scenarios.targets import check_dates, load_targets, resolve_targets_path

    out, _, fail = _console()
    targets = resolve_targets_path(targets)
    try:
        sets = _sets(set_)
        loaded = load_scenario(scenario, sets)
        spec = load_targets(targets)
        check_dates(spec, *run_dates(loaded), str(targets))
        chosen = resolve_params(spec, params or [], loaded, str(targets))
        plan_budget(budget, len(chosen))
        problem = Problem(
            scenario,
            sets,
            chosen,
            tuple(spec.targets),
            tuple(loaded.seed + i for i in range(seeds)),
            str(targets),
        )
        best = [math.inf]

        def on_eval(evaluation: Any) -> None:
            best[0] = min(best[0], evaluation.loss)
            advance(f"calibrating, best loss {best[0]:.4g}")

        with _progress("calibrating", budget) as advance:
            fit = calibrate(problem, budget, seed, jobs, on_eval)
    except ScenarioError as exc:
        raise fail(exc.detail, 2) from None
    folder = out_dir or Path("runs") / f"calibrate-{Path(scenario).stem}"
    record = fit_record(fit, seed, budget)
    _write_calibration(fit, record, folder, run)
    out.print(_calibration_table(record))
    out.print(
        f"Loss {record['loss']['start']:.4g} at the start, {record['loss']['fitted']:.4g} fitted; "
        f"results in {folder}",
        highlight=False,
    )


def _write_calibration(fit: Any, record: dict[str, Any], folder: Path, run: bool) -> None:
    from reports import build_run_report
    from scenarios.calibrate import fitted_scenario, measure_run
    from scenarios.loader import dump_toml
    from scenarios.runner import run_scenario

    folder.mkdir(parents=True, exist_ok=True)
    fitted = fitted_scenario(fit)
    scenario_path = folder / f"{fitted.name}.toml"
    scenario_path.write_text(dump_toml(fitted), encoding="utf-8")
    record["fitted_scenario"] = str(scenario_path)
    (folder / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")
    pl.DataFrame(record["targets"]).write_csv(folder / "calibration.csv")
    if not run:
        return
    _, err, _ = _console()
    result = run_scenario(fitted, folder / "run", fit.problem.seeds[0], console=err)
    daily = pl.read_parquet(result.out_dir / "daily.parquet")
    rows = measure_run(fit.problem.targets, daily, result.summary)
    run_record = {"kind": "run", "optimiser": record["optimiser"], "targets": rows}
    (result.out_dir / "calibration.json").write_text(json.dumps(run_record, indent=2) + "\n")
    build_run_report(result.out_dir)


def _calibration_table(record: dict[str, Any]) -> Table:
    table = Table(title="Calibration: published figures and the simulation")
    for column in ("target", "published", "start", "fitted", "error start", "error fitted"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for row in record["targets"]:
        table.add_row(
            Text(row["target"]),
            _fmt(row["published"]),
            _fmt(row.get("simulated_start")),
            _fmt(row["simulated"]),
            _pct(row.get("relative_error_start")),
            _pct(row["relative_error"]),
        )
    for param in record["params"]:
        table.add_row(
            Text(f"param {param['key']}", style="dim"),
            "",
            _fmt(param["start"]),
            _fmt(param["fitted"]),
            "",
            "",
        )
    return table


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.4g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def sensitivity(
    scenario: Annotated[str, typer.Argument(help="Scenario file, or a library name.")],
    params: Annotated[list[str], typer.Option(help="key=lo,hi: a parameter and its range.")],
    metric: Annotated[
        str, typer.Option(help="A summary.json key, or daily.COLUMN[:last|mean|sum|max|min].")
    ],
    trajectories: Annotated[int, typer.Option(help="Morris trajectories (runs: N x (k+1)).")] = 10,
    seeds: Annotated[int, typer.Option(min=1, max=20, help="Seeds averaged per run.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the sampling and bootstrap.")] = 0,
    set_: SetOption = None,
    jobs: Annotated[int, typer.Option(min=1, help="Parallel processes.")] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
) -> None:
    """Screen which parameters move a metric: SALib Morris mu_star and sigma.

    Writes sensitivity.csv (per parameter), sensitivity_runs.csv (every run) and
    sensitivity.png.
    """
    from reports.figures import save
    from reports.sensitivity import SENSITIVITY_FILE, sensitivity_figure
    from scenarios.loader import load_scenario
    from scenarios.sensitivity import make_study, morris

    out, _, fail = _console()
    try:
        sets = _sets(set_)
        base_seed = load_scenario(scenario, sets).seed
        study = make_study(scenario, sets, params, metric, [base_seed + i for i in range(seeds)])
        total = trajectories * (len(study.factors) + 1)
        with _progress("sensitivity", total) as advance:
            indices, samples = morris(study, trajectories, seed, jobs, advance)
    except ScenarioError as exc:
        raise fail(exc.detail, 2) from None
    folder = out_dir or Path("runs") / f"sensitivity-{Path(scenario).stem}"
    folder.mkdir(parents=True, exist_ok=True)
    indices.write_csv(folder / "sensitivity.csv")
    samples.write_csv(folder / "sensitivity_runs.csv")
    save(sensitivity_figure(indices, metric), folder / SENSITIVITY_FILE)
    table = Table(title=f"Morris screening of {metric} ({samples.height} runs)")
    for column in ("parameter", "mu_star", "conf 95%", "sigma", "mu"):
        table.add_column(column, justify="left" if column == "parameter" else "right")
    for row in indices.iter_rows(named=True):
        table.add_row(
            row["param"], *(_fmt(row[c]) for c in ("mu_star", "mu_star_conf", "sigma", "mu"))
        )
    out.print(table)
    out.print(f"Results in {folder}", highlight=False)
