"""What every locustfile here shares: the ``PlatformUser`` base, residents, the final figures.

``install()`` is what a locustfile calls once at import: the final-figures CSV below,
our own recording (:mod:`loadtests._recording`: HDR histograms, reader tap tallies,
the service-level verdict) and the request-count stop (:mod:`loadtests._request_limit`).
Each is idempotent, so locustfiles that import
each other's users install them once.

Locust rewrites ``<prefix>_stats.csv`` once a second and not at shutdown, so that
file is short of the last second's requests. ``install_final_stats()`` adds the
option ``--final-csv PREFIX``; when Locust quits (its users already stopped) it
writes ``PREFIX_stats.csv`` and ``PREFIX_failures.csv`` with Locust's own CSV
writer, so the runner reads the true totals in the same format.
"""

from locust import FastHttpUser  # first: locust patches the stdlib for gevent

# isort: split
import csv
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from loadtests._hooks import hook_once
from loadtests._people import Resident
from loadtests._recording import install_recording
from loadtests._request_limit import install_request_limit
from platform_stub.service import luhn_complete

FINAL_CSV_OPTION = "--final-csv"
# Statuses after which the server may or may not have applied the request.
OUTCOME_UNKNOWN_STATUSES = frozenset({0, 500, 502, 503, 504})
REGISTRATION_FIELDS = ("participant_id", "token", "account_id")
RECEIPT_FIELDS = ("transfer_id", "amount_fen", "debit_account_id", "credit_account_id")
CARD_PREFIX = "622202"  # a UnionPay debit BIN; the participant id fills the other 9 digits


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

    def call_as(
        self,
        token: str | None,
        method: str,
        path: str,
        body: dict | None,
        expected: tuple[int, Iterable[str]],
        name: str | None = None,
    ) -> dict | None:
        """A request on behalf of another participant (a rider, a customer): its token,
        ``expected`` (status, fields), stats ``name`` defaulting to ``path``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with self.client.request(
            method, path, json=body, headers=headers, name=name or path, catch_response=True
        ) as resp:
            return self.expect(resp, *expected)


def enrol_resident(user: PlatformUser, name: str, top_up_fen: int) -> Resident | None:
    """Register a resident, bind a card and top up: ready to pay. None after a failure."""
    reply = user.call_as(None, "POST", "/v1/residents", {"name": name}, (201, REGISTRATION_FIELDS))
    if reply is None:
        return None
    resident = Resident(reply["participant_id"], reply["token"], reply["account_id"])
    number = luhn_complete(f"{CARD_PREFIX}{resident.participant_id % 10**9:09d}")
    card = {"card_number": number, "bank": "ICBC"}
    if user.call_as(resident.token, "POST", "/v1/cards", card, (201, ("card",))) is None:
        return None
    return resident if top_up(user, resident, top_up_fen) else None


def ensure_funds(user: PlatformUser, resident: Resident, need_fen: int, top_up_fen: int) -> None:
    """Top up before a payment the wallet cannot cover, as the app prompts a resident to.
    A wallet left unknown by an earlier reply is read again first (GET /v1/balance)."""
    if resident.wallet_fen is None:
        reply = user.call_as(resident.token, "GET", "/v1/balance", None, (200, ("balance_fen",)))
        resident.wallet_fen = None if reply is None else reply["balance_fen"]
    if resident.wallet_fen is None or resident.wallet_fen < need_fen:
        top_up(user, resident, top_up_fen)


def top_up(user: PlatformUser, resident: Resident, amount_fen: int) -> bool:
    """Top up ``resident``'s wallet from its card; the receipt must match the request."""
    body = {"amount_fen": amount_fen, "request_id": uuid.uuid4().hex}
    headers = {"Authorization": f"Bearer {resident.token}"}
    with user.client.post(
        "/v1/topups", json=body, headers=headers, name="/v1/topups", catch_response=True
    ) as resp:
        receipt = user.expect(resp, 201, RECEIPT_FIELDS)
        if receipt is None:
            if resp.status_code in OUTCOME_UNKNOWN_STATUSES:
                resident.wallet_fen = None
            return False
        if (receipt["amount_fen"], receipt["credit_account_id"]) != (
            amount_fen, resident.account_id
        ):
            resp.failure("top-up receipt differs from the request")
            return False
    resident.received(amount_fen)
    return True


def _problem_code(resp: Any) -> str:
    """The problem+json ``code``, or what went wrong below HTTP; short, for grouping."""
    if resp.status_code == 0:
        return type(getattr(resp, "error", None)).__name__
    try:
        return str(resp.json().get("code", "no code"))
    except (ValueError, AttributeError):
        return "no problem+json body"


def install() -> None:
    """Everything a locustfile here needs hooked into Locust, once per process."""
    install_final_stats()
    install_recording()
    install_request_limit()


def install_final_stats() -> None:
    """Add ``--final-csv`` and write the final figures when Locust quits."""
    hook_once(__name__, init_command_line_parser=_add_final_csv_option,
              quitting=_write_final_csv)


def _add_final_csv_option(parser: LocustArgumentParser, **_kwargs: Any) -> None:
    parser.add_argument(
        FINAL_CSV_OPTION,
        default="",
        include_in_web_ui=False,
        help="Write PREFIX_stats.csv and PREFIX_failures.csv with the final totals at quit.",
    )


def _write_final_csv(environment: Environment, **_kwargs: Any) -> None:
    prefix = getattr(environment.parsed_options, "final_csv", "")
    if not prefix or isinstance(environment.runner, WorkerRunner):
        return  # a worker's stats are in its master's; it must not overwrite the file
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    with Path(f"{prefix}_stats.csv").open("w", newline="") as f:
        writer.requests_csv(csv.writer(f))
    with Path(f"{prefix}_failures.csv").open("w", newline="") as f:
        writer.failures_csv(csv.writer(f))
