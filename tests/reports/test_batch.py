"""Many run folders' reports at once: worker processes draw what one process draws."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reports.batch import build_run_reports
from scenarios.cli import app
from tests.reports.rundata import RunFactory


def _figures(run_dir: Path) -> dict[str, bytes]:
    return {png.name: png.read_bytes() for png in sorted((run_dir / "figures").glob("*.png"))}


def test_worker_processes_draw_the_same_pictures_as_one_process(make_run: RunFactory) -> None:
    alone, first, second = make_run("alone"), make_run("first"), make_run("second")

    [page] = build_run_reports([alone])
    pages = build_run_reports([first, second], jobs=2)

    assert pages == [first / "report.html", second / "report.html"]  # in the order given
    assert page == alone / "report.html" and page.is_file()
    assert len(_figures(alone)) >= 3
    assert _figures(first) == _figures(alone) == _figures(second)  # byte for byte


def test_each_finished_folder_is_announced_once(make_run: RunFactory) -> None:
    folders = [make_run(f"run-{n}") for n in range(3)]
    done: list[Path] = []

    build_run_reports(folders, jobs=2, on_done=done.append)

    assert done == [folder / "report.html" for folder in folders]


@pytest.mark.parametrize("jobs", [0, 33])
def test_a_job_count_out_of_range_is_refused_before_any_drawing(
    jobs: int, make_run: RunFactory
) -> None:
    folder = make_run()
    with pytest.raises(ValueError, match="jobs must be 1..32"):
        build_run_reports([folder], jobs=jobs)
    assert not (folder / "report.html").exists()


def test_cli_report_takes_several_folders_and_refuses_a_bad_one(
    make_run: RunFactory, tmp_path: Path
) -> None:
    folders = [make_run("a"), make_run("b")]

    result = CliRunner().invoke(app, ["report", *map(str, folders), "--jobs", "2"])

    assert result.exit_code == 0, result.output
    assert all((f / "report.html").is_file() for f in folders)
    assert result.output.count("Report: ") == 2
    bad = CliRunner().invoke(app, ["report", str(folders[0]), str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "not a run folder" in bad.output
    zero = CliRunner().invoke(app, ["report", str(folders[0]), "--jobs", "0"])
    assert zero.exit_code == 2 and "--jobs must be 1..32" in zero.output
