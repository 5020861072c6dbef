"""The sensitivity picture: which parameters move the metric (Morris mu_star and sigma).

Left: a bar per parameter, longest first, its length ``mu_star`` (the mean absolute
effect of a step across the parameter's range) with the bootstrap 95 % interval.
Right: ``sigma`` against ``mu_star``: a parameter far above the diagonal acts through
interactions or non-linearly; one near the origin does not matter.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.figures import DPI, FIGSIZE_IN, _style, colour

SENSITIVITY_FILE = "sensitivity.png"


def sensitivity_figure(indices: pl.DataFrame, metric: str) -> Figure:
    """Bars of mu_star (with its interval) and a sigma-versus-mu_star scatter."""
    fig = Figure(figsize=(FIGSIZE_IN[0] + 2, FIGSIZE_IN[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    bars, scatter = fig.subplots(1, 2, width_ratios=(3, 2))
    frame = indices.sort("mu_star")
    y = np.arange(frame.height)
    bars.barh(
        y,
        frame["mu_star"].to_numpy(),
        xerr=np.nan_to_num(frame["mu_star_conf"].to_numpy()),
        color=colour(0),
        ecolor="#000000",
        label="mu_star",
    )
    bars.set_yticks(y, frame["param"].to_list())
    _style(
        bars,
        f"What moves {metric}: Morris screening",
        f"mu_star ({metric} per range)",
        "Parameter (key)",
    )
    bars.grid(axis="x", color="#dddddd", linewidth=0.8)
    scatter.plot(
        frame["mu_star"].to_numpy(),
        frame["sigma"].to_numpy(),
        "o",
        color=colour(1),
        label="parameter",
    )
    for row in frame.iter_rows(named=True):
        scatter.annotate(row["param"].split(".")[-1], (row["mu_star"], row["sigma"]), fontsize=10)
    top = float(max(frame["mu_star"].max() or 0, frame["sigma"].max() or 0, 1e-12))
    scatter.plot(
        [0, top], [0, top], linestyle="--", color=colour(6), linewidth=1, label="sigma = mu_star"
    )
    _style(
        scatter,
        "Interaction or non-linearity",
        f"mu_star ({metric} per range)",
        f"sigma ({metric})",
    )
    return fig
