"""What every locustfile here shares: the ``PlatformUser`` base and the final figures.

Locust rewrites ``<prefix>_stats.csv`` once a second and not at shutdown, so that
file is short of the last second's requests. ``install_final_stats()`` adds the
option ``--final-csv PREFIX``; when Locust quits (its users already stopped) it
writes ``PREFIX_stats.csv`` and ``PREFIX_failures.csv`` with Locust's own CSV
writer, so the runner reads the true totals in the same format.
"""

from locust import FastHttpUser, events  # first: locust patches the stdlib for gevent

# isort: split
import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

FINAL_CSV_OPTION = "--final-csv"
# Statuses after which the server may or may not have applied the request.
OUTCOME_UNKNOWN_STATUSES = frozenset({0, 500, 502, 503, 504})


class PlatformUser(FastHttpUser):
    """A participant of the platform: its bearer credential and strict response checks.

    Every wrong answer becomes an explicit ``resp.failure`` whose message names the
    condition but not the values, so Locust groups failures into a few rows.
    """

    abstract = True
    token: str | None = None

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def expect(self, resp: Any, status: int, fields: Iterable[str]) -> dict | None:
        """The JSON body if ``resp`` has ``status`` and every field; else a failure and None."""
        if resp.status_code != status:
            resp.failure(f"HTTP {resp.status_code} {_problem_code(resp)}, expected {status}")
            return None
        try:
            body = resp.json()
        except ValueError:
            resp.failure("response body is not JSON")
            return None
        missing = [f for f in fields if not isinstance(body, dict) or f not in body]
        if missing:
            resp.failure(f"response lacks {', '.join(missing)}")
            return None
        return body

    def post_expecting(self, path: str, body: dict, fields: Iterable[str]) -> dict | None:
        """POST ``body`` to ``path`` (also its stats name) and expect 201 with ``fields``."""
        with self.client.post(
            path, json=body, headers=self.auth_headers(), name=path, catch_response=True
        ) as resp:
            return self.expect(resp, 201, fields)


def _problem_code(resp: Any) -> str:
    """The problem+json ``code``, or what went wrong below HTTP; short, for grouping."""
    if resp.status_code == 0:
        return type(getattr(resp, "error", None)).__name__
    try:
        return str(resp.json().get("code", "no code"))
    except (ValueError, AttributeError):
        return "no problem+json body"


def install_final_stats() -> None:
    """Add ``--final-csv`` and write the final figures when Locust quits."""
    events.init_command_line_parser.add_listener(_add_final_csv_option)
    events.quitting.add_listener(_write_final_csv)


def _add_final_csv_option(parser: LocustArgumentParser, **_kwargs: Any) -> None:
    parser.add_argument(
        FINAL_CSV_OPTION,
        default="",
        include_in_web_ui=False,
        help="Write PREFIX_stats.csv and PREFIX_failures.csv with the final totals at quit.",
    )


def _write_final_csv(environment: Environment, **_kwargs: Any) -> None:
    prefix = getattr(environment.parsed_options, "final_csv", "")
    if not prefix:
        return
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    with Path(f"{prefix}_stats.csv").open("w", newline="") as f:
        writer.requests_csv(csv.writer(f))
    with Path(f"{prefix}_failures.csv").open("w", newline="") as f:
        writer.failures_csv(csv.writer(f))
