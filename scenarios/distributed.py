"""Run a sweep's runs on a Dask cluster (``cashless sweep --engine dask``).

Needs the ``distributed`` extra (``pip install 'cashless-city[distributed]'``). Without
``--scheduler`` a ``LocalCluster`` of ``jobs`` single-threaded worker processes starts
on this machine and stops afterwards; with ``--scheduler tcp://HOST:8786`` the runs go
to that cluster. Workers write each run folder at its absolute path, so on a cluster of
several machines the sweep folder must be on a file system they all share (and every
worker needs this package installed). Resuming and the runs table work exactly as with
the local engine: ``scenarios.sweep`` decides what is finished and writes the table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from platform_stub.exceptions import ScenarioError

if TYPE_CHECKING:
    from scenarios.sweep import RunSpec, SweepPlan

CONNECT_TIMEOUT_S = 30


def _dask() -> Any:
    try:
        import dask.distributed as distributed
    except ImportError:
        raise ScenarioError(
            "(command line)",
            "--engine",
            "Dask installed for --engine dask: pip install 'cashless-city[distributed]'",
            "dask",
        ) from None
    return distributed


def run_missing_dask(
    plan: SweepPlan,
    todo: list[RunSpec],
    jobs: int,
    on_done: Callable[[RunSpec, bool], None] | None,
    scheduler: str | None = None,
) -> dict[RunSpec, str]:
    """Run ``todo`` on the cluster; returns the failures, each with its error."""
    from scenarios.sweep import run_one

    failures: dict[RunSpec, str] = {}
    if not todo:
        return failures
    distributed = _dask()
    cluster = None if scheduler else _local_cluster(distributed, jobs)
    try:
        with distributed.Client(scheduler or cluster, timeout=CONNECT_TIMEOUT_S) as client:
            futures = {
                client.submit(
                    run_one,
                    plan.scenario,
                    plan.sets | spec.point,
                    spec.seed,
                    str(spec.folder.resolve()),
                    key=f"run-{spec.folder.parent.name}-{spec.seed}",
                    pure=False,
                    retries=0,
                ): spec
                for spec in todo
            }
            for future in distributed.as_completed(futures):
                spec = futures[future]
                error = future.exception()
                if error is not None:
                    failures[spec] = f"{type(error).__name__}: {error}"
                if on_done is not None:
                    on_done(spec, error is None)
    except OSError as exc:  # the scheduler cannot be reached
        raise ScenarioError(
            "(command line)", "--scheduler", f"a reachable Dask scheduler: {exc}", scheduler
        ) from None
    finally:
        if cluster is not None:
            cluster.close()
    return failures


def _local_cluster(distributed: Any, jobs: int) -> Any:
    """``jobs`` worker processes of one thread each: the model is single-threaded Python."""
    return distributed.LocalCluster(
        n_workers=max(1, jobs),
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
