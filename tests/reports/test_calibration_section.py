"""The run report's calibration section: published figures beside the run's own."""

from __future__ import annotations

import json
from pathlib import Path

from reports import build_run_report
from reports.sections_calibration import calibration_section

ROWS = [
    {"target": "bus riders", "published": 150_000.0, "source": "Wuhan, Oct 2017",
     "measure": "daily.parquet tx_offline_qr", "simulated": 120_000.0, "error": -30_000.0,
     "relative_error": -0.2},
    {"target": "<script>x</script>", "published": 52.7, "source": "s", "measure": "m",
     "simulated": None, "error": None, "relative_error": None},
]  # fmt: skip


def test_a_run_with_calibration_json_gets_the_table_escaped(run_dir: Path) -> None:
    (run_dir / "calibration.json").write_text(json.dumps({"targets": ROWS}))
    page = build_run_report(run_dir).read_text(encoding="utf-8")
    assert "<h2>Calibration</h2>" in page
    expected = '<th>bus riders</th><td class="num">150,000</td><td class="num">120,000</td>'
    assert expected in page and '<td class="num bad">-20.0%</td>' in page
    assert "&lt;script&gt;" in page and "<script>x" not in page


def test_a_run_without_calibration_json_has_no_section(run_dir: Path) -> None:
    assert calibration_section(run_dir) == []


def test_an_unreadable_calibration_json_is_noted_not_fatal(run_dir: Path) -> None:
    (run_dir / "calibration.json").write_text('{"targets": [{"published": 1}]}')
    assert "unreadable" in "".join(calibration_section(run_dir))
