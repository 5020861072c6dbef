"""Run-report section: published figures beside the simulated ones (calibration.json).

``cashless calibrate`` writes calibration.json into the fitted run's folder, and
``cashless report RUN_DIR --targets FILE`` writes it for any run; a folder without it
has no calibration section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.htmlparts import MISSING, Marked, Row, note, pct, table, tables

CALIBRATION_FILE = "calibration.json"
CLOSE_RELATIVE = 0.10  # within 10 % of the published figure counts as close


def calibration_section(run_dir: Path) -> list[str]:
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return []
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        rows = [_row(target) for target in record["targets"]]
    except (ValueError, KeyError, TypeError) as exc:
        return ["<h2>Calibration</h2>", note(f"{CALIBRATION_FILE} is unreadable: {exc}")]
    head = ("target", "published figure", "simulated", "error", "relative error", "source")
    parts = ["<h2>Calibration</h2>", tables(table("Published figures and this run", rows, head))]
    parts.append(note(_explanation(record)))
    return parts


def _row(target: dict[str, Any]) -> Row:
    simulated, relative = target.get("simulated"), target.get("relative_error")
    css = "" if relative is None else "ok" if abs(relative) <= CLOSE_RELATIVE else "bad"
    return (
        str(target["target"]),
        _value(target["published"]),
        _value(simulated),
        _value(target.get("error")),
        Marked(MISSING if relative is None else pct(relative), css),
        f"{target.get('source', '')}; {target.get('measure', '')}",
    )


def _value(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f}" if abs(value) >= 1_000 else f"{value:,.4g}"


def _explanation(record: dict[str, Any]) -> str:
    text = (
        "Relative error is (simulated - published) / published; within "
        f"{CLOSE_RELATIVE:.0%} is marked green. A missing simulated value means the run "
        "does not write what the target reads."
    )
    optimiser = record.get("optimiser")
    if optimiser:
        text += (
            f" Fitted by {optimiser.get('method', '')} over "
            f"{optimiser.get('evaluations', MISSING)} runs per seed."
        )
    return text
