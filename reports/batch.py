"""Build many run folders' reports at once, a spawned process per core.

A run report is CPU-bound matplotlib drawing (about 2 s a folder on this machine,
nearly all of it in the figures), and the GIL keeps threads from sharing that work, so
a sweep's folders are built in worker processes. Each folder is written by exactly one
process; the pages come back in the order the folders were given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from reports.html import build_run_report
from scenarios.evaluate import process_pool

JOBS_MAX = 32  # worker processes at most, whatever the machine claims


def default_jobs() -> int:
    """One process per core this process may use."""
    return max(1, min(JOBS_MAX, len(os.sched_getaffinity(0))))


def build_run_reports(
    run_dirs: Sequence[Path],
    jobs: int = 1,
    on_done: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write every folder's ``report.html`` and figures; return the pages in order.

    ``jobs`` worker processes (spawned, as sweeps' are: ``scenarios.evaluate.process_pool``)
    share the folders; with one job, or one folder, it all runs here.
    ``on_done`` is told of each page as it is written (a progress bar). The first
    folder that fails raises its error here after the others have been given back.
    """
    if not 1 <= jobs <= JOBS_MAX:
        raise ValueError(f"jobs must be 1..{JOBS_MAX}, not {jobs}")
    folders = [Path(d) for d in run_dirs]
    notify = on_done or (lambda _page: None)
    if jobs == 1 or len(folders) <= 1:
        return [_built(build_run_report(d), notify) for d in folders]
    with process_pool(min(jobs, len(folders))) as pool:
        futures = [pool.submit(build_run_report, d) for d in folders]
        return [_built(f.result(), notify) for f in futures]


def _built(page: Path, notify: Callable[[Path], None]) -> Path:
    notify(page)
    return page
