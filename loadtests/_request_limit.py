"""``--stop-after-requests N``: end a run once Locust has counted N requests.

A run bounded only by ``--run-time`` does less on a busy machine: its users spend the
time in set-up, and a check that some endpoint was called can fail for want of CPU.
Bounded by a request count, a run does the same amount of work however fast the
machine is, and ``--run-time`` stays as the cap on how long it may take.

The count is Locust's own total (successes and failures, every user). In one process
it is live; a master sees its workers' counts when they report (every few seconds),
so a distributed run overshoots N by up to a report's worth. Workers do not watch.
"""

import locust  # noqa: F401 - first: locust patches the stdlib for gevent

# isort: split
import logging
from typing import Any

import gevent
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import Runner, WorkerRunner

from loadtests._hooks import hook_once

OPTION = "--stop-after-requests"
POLL_S = 0.1
logger = logging.getLogger(__name__)


def install_request_limit() -> None:
    """Add ``--stop-after-requests`` (0: no limit), once per process."""
    hook_once(__name__, init_command_line_parser=_add_option, test_start=_watch)


def _add_option(parser: LocustArgumentParser, **_kwargs: Any) -> None:
    parser.add_argument(
        OPTION,
        type=int,
        default=0,
        include_in_web_ui=False,
        help="Quit once Locust has counted this many requests (0: only --run-time stops).",
    )


def _watch(environment: Environment, **_kwargs: Any) -> None:
    limit = getattr(environment.parsed_options, "stop_after_requests", 0)
    runner = environment.runner
    if limit > 0 and runner is not None and not isinstance(runner, WorkerRunner):
        gevent.spawn(_quit_at, runner, limit)


def _quit_at(runner: Runner, limit: int) -> None:
    """Poll the total; quit as ``--run-time`` does, so users stop as they would then."""
    while runner.stats.total.num_requests < limit:
        gevent.sleep(POLL_S)
    logger.info("%d requests counted (limit %d), shutting down",
                runner.stats.total.num_requests, limit)
    runner.quit()
