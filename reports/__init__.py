"""Reports on a run folder: polars analysis, matplotlib figures, one HTML page.

analysis.py   load a run folder; latency percentiles, adoption shares, channel totals
figures.py    the adoption, latency and channel pictures (Figure builders + PNG writers)
html.py       ``build_run_report``: figures/*.png and a self-contained report.html
loadtest.py   ``build_loadtest_report``: throughput, percentiles, verdict, replay lateness
"""

from reports.analysis import (
    RunData,
    adoption_shares,
    channel_totals,
    latency_percentiles,
    load_run,
    overall_latency_ms,
)
from reports.figures import (
    adoption_figure,
    channels_figure,
    latency_figure,
    plot_adoption,
    plot_channels,
    plot_latency,
    save,
)
from reports.html import build_run_report

__all__ = [
    "RunData",
    "adoption_figure",
    "adoption_shares",
    "build_run_report",
    "channel_totals",
    "channels_figure",
    "latency_figure",
    "latency_percentiles",
    "load_run",
    "overall_latency_ms",
    "plot_adoption",
    "plot_channels",
    "plot_latency",
    "save",
]
