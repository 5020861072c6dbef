"""Compare scenarios across seeds (``cashless compare``): grouping, metrics, statistics.

Runs come from run folders and sweep folders (every run listed in ``runs.parquet``).
Runs whose ``scenario.resolved.toml`` agree on everything but the seed are one group:
a scenario, or one grid point of a sweep. The first group named is the reference.

Metrics are read tolerantly: the model gains columns over time, so a metric a run
cannot show is skipped for that run with a note (``Comparison.notes``), never an error.

Band across seeds: the mean ± 2 standard errors of the mean (``sd / sqrt(n)``, the
sample sd), about a 95 % interval for the mean; with one seed there is no band.

Differences versus the reference: Welch's t-test (unequal variances) on the per-seed
end-of-run values of each metric, p-values adjusted by Holm's step-down method over
the metrics of each scenario (a family per scenario against the reference), listed when
the adjusted p < 0.05 (a family-wise error rate of 5 % per scenario). Both groups need
two seeds or more; when neither group varies across seeds the values are exact and any
difference is listed.
"""

from __future__ import annotations

import json
import math
import tomllib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from platform_stub.exceptions import ScenarioError
from scenarios.compare_metrics import scalar_metrics, series_metrics

ALPHA = 0.05
BAND_SE = 2.0
BAND_RULE = "mean ± 2 standard errors of the mean across seeds (about a 95 % interval)"
TEST_RULE = (
    "Welch's t-test on per-seed end-of-run values, Holm-adjusted over each scenario's "
    "metrics, "
    f"adjusted p < {ALPHA}"
)
LABEL_KEYS_MAX = 3
RUNS_MAX = 2_000


@dataclass(frozen=True)
class RunRecord:
    """One run folder, read."""

    folder: Path
    seed: int
    name: str
    config: dict[str, Any] | None  # the resolved scenario without its seed
    params: dict[str, str]  # a sweep's grid point, when the runs table has one
    daily: pl.DataFrame
    summary: dict[str, Any]
    taps: pl.DataFrame | None


@dataclass(frozen=True)
class Group:
    label: str
    runs: tuple[RunRecord, ...]


@dataclass
class Comparison:
    groups: list[Group]
    series: pl.DataFrame  # group, seed, metric, date, value
    scalars: pl.DataFrame  # group, seed, metric, value
    notes: list[str] = field(default_factory=list)

    @property
    def reference(self) -> Group:
        return self.groups[0]


def compare(paths: Sequence[Path]) -> Comparison:
    """Read every run under ``paths``, group them, and reduce each to its metrics."""
    groups = group_runs(find_runs(paths))
    series: list[pl.DataFrame] = [_series_frame([])]
    scalar_rows: list[dict[str, Any]] = []
    missing: dict[str, list[str]] = {}
    for group in groups:
        for run in group.runs:
            base = {"group": group.label, "seed": run.seed}
            for metric, frame in _collect(series_metrics(run), missing, run).items():
                tags = [pl.lit(v).alias(k) for k, v in (base | {"metric": metric}).items()]
                series.append(frame.select(*tags, "date", "value").cast(SERIES_SCHEMA))
            for metric, value in _collect(scalar_metrics(run), missing, run).items():
                scalar_rows.append(base | {"metric": metric, "value": float(value)})
    total = sum(len(g.runs) for g in groups)
    notes = [f"{why} ({len(runs)} of {total} runs): skipped" for why, runs in missing.items()]
    return Comparison(groups, pl.concat(series), _scalar_frame(scalar_rows), notes)


def _collect(found: dict[str, Any], missing: dict[str, list[str]], run: RunRecord) -> dict:
    """Metric values of one run; a string value is the reason the metric is absent."""
    for why in (v for v in found.values() if isinstance(v, str)):
        folders = missing.setdefault(why, [])
        if str(run.folder) not in folders:
            folders.append(str(run.folder))
    return {k: v for k, v in found.items() if not isinstance(v, str)}


SERIES_SCHEMA = {
    "group": pl.Utf8,
    "seed": pl.Int64,
    "metric": pl.Utf8,
    "date": pl.Date,
    "value": pl.Float64,
}


def _series_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SERIES_SCHEMA)


def _scalar_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {"group": pl.Utf8, "seed": pl.Int64, "metric": pl.Utf8, "value": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


# -- finding and grouping runs ---------------------------------------------------------


def find_runs(paths: Iterable[Path]) -> list[RunRecord]:
    """Runs of each path in order: a run folder, or every finished run of a sweep folder."""
    runs: dict[Path, RunRecord] = {}
    for path in paths:
        for folder, params in _run_folders(Path(path)):
            key = folder.resolve()
            if key not in runs:
                runs[key] = read_run(folder, params)
    if len(runs) > RUNS_MAX:
        raise ScenarioError("(command line)", "RUN_OR_SWEEP", f"at most {RUNS_MAX} runs", len(runs))
    return list(runs.values())


def _run_folders(path: Path) -> list[tuple[Path, dict[str, str]]]:
    if (path / "summary.json").is_file():
        return [(path, {})]
    table_path = path / "runs.parquet"
    if not table_path.is_file():
        raise ScenarioError(
            str(path), "(folder)", "a run folder (summary.json) or a sweep folder (runs.parquet)"
        )
    table = pl.read_parquet(table_path)
    if "status" in table.columns:
        table = table.filter(pl.col("status") == "ok")
    found = []
    for row in table.iter_rows(named=True):
        folder = _locate(path, Path(row["folder"]))
        params = {
            k.removeprefix("param."): str(v) for k, v in row.items() if k.startswith("param.")
        }
        if folder is not None:
            found.append((folder, params))
    if not found:
        raise ScenarioError(str(path), "runs.parquet", "at least one finished run folder")
    return found


def _locate(sweep: Path, listed: Path) -> Path | None:
    """A run folder as listed, or where it sits in this sweep folder if the sweep moved."""
    for candidate in (listed, sweep / listed.parent.name / listed.name):
        if (candidate / "summary.json").is_file():
            return candidate
    return None


def read_run(folder: Path, params: dict[str, str] | None = None) -> RunRecord:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    daily_path = folder / "daily.parquet"
    if not daily_path.is_file():
        raise ScenarioError(str(folder), "daily.parquet", "a run folder written by `cashless run`")
    taps_path = folder / "taps.parquet"
    return RunRecord(
        folder=folder,
        seed=int(summary.get("seed", 0)),
        name=str(summary.get("scenario", folder.name)),
        config=_config(folder),
        params=params or {},
        daily=pl.read_parquet(daily_path),
        summary=summary,
        taps=pl.read_parquet(taps_path) if taps_path.is_file() else None,
    )


def _config(folder: Path) -> dict[str, Any] | None:
    path = folder / "scenario.resolved.toml"
    if not path.is_file():
        return None
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data.pop("seed", None)
    return data


def group_runs(runs: Sequence[RunRecord]) -> list[Group]:
    """Runs equal in all but the seed form a group, in the order first seen; a seed
    given twice (a run folder and the sweep holding it) counts once."""
    keyed: dict[str, list[RunRecord]] = {}
    for run in runs:
        group = keyed.setdefault(_group_key(run), [])
        if all(r.seed != run.seed for r in group):  # the same run named twice counts once
            group.append(run)
    members = list(keyed.values())
    labels = _labels(members)
    return [
        Group(label, tuple(sorted(rs, key=lambda r: r.seed)))
        for label, rs in zip(labels, members, strict=True)
    ]


def _group_key(run: RunRecord) -> str:
    if run.config is not None:
        return json.dumps(run.config, sort_keys=True, default=str)
    return json.dumps([run.name, sorted(run.params.items())])


def _labels(members: list[list[RunRecord]]) -> list[str]:
    """The scenario name, plus the keys that tell groups of the same name apart."""
    flats = [_flatten(rs[0].config or {}) | rs[0].params for rs in members]
    labels = []
    for runs, flat in zip(members, flats, strict=True):
        name = runs[0].name
        peers = [f for rs, f in zip(members, flats, strict=True) if rs[0].name == name]
        differing = sorted(k for k in flat if any(p.get(k) != flat[k] for p in peers))
        differing = [k for k in differing if k not in ("name", "description")]
        shown = ", ".join(f"{k}={flat[k]}" for k in differing[:LABEL_KEYS_MAX])
        more = ", …" if len(differing) > LABEL_KEYS_MAX else ""
        labels.append(f"{name} [{shown}{more}]" if shown else name)
    return _unique(labels)


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return result


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, f"{dotted}.")
        else:
            flat[dotted] = json.dumps(value, default=str)
    return flat


# -- statistics ------------------------------------------------------------------------


def _band_exprs() -> list[pl.Expr]:
    n = pl.len().cast(pl.Int64)
    se = pl.col("value").std(ddof=1) / n.cast(pl.Float64).sqrt()
    half = pl.when(n >= 2).then(BAND_SE * se).otherwise(None)
    mean = pl.col("value").mean()
    return [n.alias("n"), mean.alias("mean"), (mean - half).alias("lo"), (mean + half).alias("hi")]


def series_bands(comparison: Comparison) -> pl.DataFrame:
    """group, metric, date, n, mean, lo, hi (lo/hi null with one seed)."""
    keys = ["group", "metric", "date"]
    return comparison.series.group_by(keys, maintain_order=True).agg(_band_exprs()).sort(keys)


def scalar_bands(comparison: Comparison) -> pl.DataFrame:
    """group, metric, n, mean, lo, hi, in the comparison's group order."""
    return comparison.scalars.group_by(["group", "metric"], maintain_order=True).agg(_band_exprs())


def differences(comparison: Comparison) -> pl.DataFrame:
    """Every (group, metric) against the reference: means, Welch p, Holm-adjusted p."""
    ref = comparison.reference.label
    values = comparison.scalars.group_by(["group", "metric"], maintain_order=True).agg("value")
    by_key = {(r["group"], r["metric"]): r["value"] for r in values.iter_rows(named=True)}
    rows = []
    for group in comparison.groups[1:]:
        for (g, metric), sample in by_key.items():
            if g == group.label and (ref, metric) in by_key:
                rows.append(_test(group.label, metric, by_key[(ref, metric)], sample))
    table = pl.DataFrame(rows, schema=_DIFF_SCHEMA, orient="row")
    adjusted: list[float | None] = []
    for group in comparison.groups[1:]:  # one family per scenario against the reference
        adjusted += holm(table.filter(pl.col("group") == group.label)["p"].to_list())
    return table.with_columns(pl.Series("p_holm", adjusted, dtype=pl.Float64))


_DIFF_SCHEMA = {
    "group": pl.Utf8,
    "metric": pl.Utf8,
    "reference_mean": pl.Float64,
    "mean": pl.Float64,
    "difference": pl.Float64,
    "p": pl.Float64,
    "tested": pl.Utf8,
}


def _test(group: str, metric: str, ref: list[float], other: list[float]) -> tuple:
    a, b = np.asarray(ref, dtype=float), np.asarray(other, dtype=float)
    diff = float(b.mean() - a.mean())
    base = (group, metric, float(a.mean()), float(b.mean()), diff)
    if a.size < 2 or b.size < 2:
        return (*base, None, "not tested: fewer than two seeds")
    if a.std() == 0 and b.std() == 0:
        return (*base, 0.0 if diff else 1.0, "exact: no variation across seeds")
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # near-constant samples: the p-value is still usable
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(b, a, equal_var=False).pvalue)
    return (*base, 1.0 if math.isnan(p) else p, "Welch t-test")


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment; ``None`` (untested) stays ``None`` and is not counted."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def significant(diffs: pl.DataFrame) -> pl.DataFrame:
    """The differences larger than the noise by ``TEST_RULE``."""
    return diffs.filter(pl.col("p_holm").is_not_null() & (pl.col("p_holm") < ALPHA))
