"""Our own measurements inside Locust: HDR latencies, reader tap tallies, the verdict.

Every process records each request from Locust's ``request`` event into its
:class:`~loadtests.hdr.Recorder` (the response time Locust passes there is exact;
only its stats are bucketed). Workers attach what they recorded since their last
report, and their cumulative tap tallies, to the report each sends the master every
few seconds and once more when they quit (``report_to_master``, the documented way
to ship custom figures), so the master sees what Locust's own stats see.

When Locust quits, the master (or the single local process) writes
``histograms.json`` and ``reader_taps.json`` into ``--results-dir`` and, given
``--slo FILE``, judges the run: breached levels are logged and set
``environment.process_exit_code`` to ``SLO_BREACHED_EXIT_CODE`` (Locust's documented
pattern for custom pass/fail criteria); a run within its levels exits 0 even with a
few failures, because ``failure_ratio_max`` is the contract.
"""

import locust  # noqa: F401 - first: locust patches the stdlib for gevent

# isort: split
import json
import logging
import time
from pathlib import Path
from typing import Any

from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests._hooks import hook_once
from loadtests.hdr import HISTOGRAMS_FILE, Histograms, Recorder
from loadtests.slo import load_service_levels
from loadtests.taps import READER_TAPS_FILE, TapLedger
from platform_stub.exceptions import ScenarioError

RESULTS_OPTION = "--results-dir"
SLO_OPTION = "--slo"
SLO_BREACHED_EXIT_CODE = 3
SLO_UNUSABLE_EXIT_CODE = 2
REPORT_KEY = "cashless"

logger = logging.getLogger("loadtests")

recorder = Recorder()
tap_ledger = TapLedger()
# What the master gathered from its workers' reports.
_from_workers = Histograms()
_worker_taps: dict[str, dict[str, dict[str, int]]] = {}


def install_recording() -> None:
    """Hook our recording into Locust once per process, whichever locustfile asks first."""
    hook_once(
        __name__,
        init_command_line_parser=_add_options,
        request=_on_request,
        report_to_master=_on_report_to_master,
        worker_report=_on_worker_report,
        quitting=_on_quitting,
    )


def _add_options(parser: LocustArgumentParser, **_kwargs: Any) -> None:
    parser.add_argument(RESULTS_OPTION, default="", include_in_web_ui=False,
                        help="Write histograms.json and reader_taps.json into this folder.")
    parser.add_argument(SLO_OPTION, default="", include_in_web_ui=False,
                        help="Service-level file (TOML); a breach sets the exit code to 3.")


def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_kwargs: Any,
) -> None:
    # A custom event may leave out its start; then it ended just now.
    start_s = start_time if start_time else time.time() - response_time / 1000
    recorder.record(
        f"{request_type} {name}",
        round(response_time * 1000),
        exception is not None,
        start_s + response_time / 1000,
    )


def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    data[REPORT_KEY] = {"histograms": recorder.take(), "taps": tap_ledger.snapshot()}


def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    report = data.get(REPORT_KEY)
    if report is None:
        return
    _from_workers.add(report["histograms"])
    _worker_taps[client_id] = report["taps"]


def _on_quitting(environment: Environment, **_kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    histograms, taps = _gathered()
    options = environment.parsed_options
    results_dir = getattr(options, "results_dir", "") if options else ""
    if results_dir:
        _write(Path(results_dir), histograms, taps)
    slo_path = getattr(options, "slo", "") if options else ""
    if slo_path:
        environment.process_exit_code = _verdict(slo_path, histograms)


def _gathered() -> tuple[Histograms, dict[str, dict[str, int]]]:
    """The workers' reports plus whatever this process recorded itself (a local run)."""
    _from_workers.add(recorder.take())
    taps = tap_ledger.snapshot()
    for worker_taps in _worker_taps.values():
        taps.update(worker_taps)  # reader ids are unique across workers
    return _from_workers, taps


def _write(folder: Path, histograms: Histograms, taps: dict[str, dict[str, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HISTOGRAMS_FILE).write_text(json.dumps(histograms.snapshot()) + "\n")
    (folder / READER_TAPS_FILE).write_text(json.dumps(taps, indent=1, sort_keys=True) + "\n")


def _verdict(slo_path: str, histograms: Histograms) -> int:
    try:
        levels = load_service_levels(slo_path)
    except ScenarioError as exc:
        logger.error("service levels unusable: %s", exc.detail)
        return SLO_UNUSABLE_EXIT_CODE
    breaches = levels.check(histograms.figures(), histograms.all_requests())
    for breach in breaches:
        logger.error("service level breached: %s", breach)
    if breaches:
        return SLO_BREACHED_EXIT_CODE
    logger.info("every service level in %s held", slo_path)
    return 0
