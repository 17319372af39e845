"""Figures of a NASA run: what each head's tuning did, and baseline versus tuned decisions.

Owns `plot_nasa` (per head: NAS on V before and after, coloured by the decision, with the
share of V answered "Yes" after each head), `plot_comparison` (a metric with its bootstrap
interval per model and set) and `plot_tradeoff` (recall against AUROC per model, with both
intervals: did a repair bring recall back with discrimination kept?).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nasalens.errors import NasalensError
from nasalens.metrics import EvalResult
from nasalens.tuning import NasaResult
from nasalens.tuning.evaluation import Comparison

#: Bar colour per decision.
DECISION_COLORS = {"kept": "#2c7fb8", "cancelled": "#bdbdbd"}


def plot_nasa(result: NasaResult | pd.DataFrame) -> go.Figure:
    """Show each tuned head's NAS on V before and after, and the share of V answered Yes.

    Args:
        result: A `NasaResult`, or its ``to_frame()``.

    Returns:
        Two rows: bars of head NAS at start and end (end coloured by decision), and a line of
        the share of V answered "Yes" after each head, in tuning order.

    Raises:
        NasalensError: When no head was tuned.
    """
    frame = result.to_frame() if isinstance(result, NasaResult) else result
    if frame.empty:
        raise NasalensError("plot_nasa: no head was tuned; nothing to show")
    names = list(frame["name"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.add_bar(x=names, y=frame["start_head_nas"], name="NAS before", marker_color="#fdae6b")
    colors = [DECISION_COLORS.get(d, "#636363") for d in frame["decision"]]
    fig.add_bar(x=names, y=frame["end_head_nas"], name="NAS after", marker_color=colors)
    fig.add_scatter(
        x=names, y=frame["end_share_yes"], mode="lines+markers", name="share of V 'Yes'",
        row=2, col=1,
    )  # fmt: skip
    fig.update_yaxes(title_text="head NAS on V", row=1, col=1)
    fig.update_yaxes(title_text="share Yes", range=[0, 1], row=2, col=1)
    fig.update_layout(barmode="group", title="NASA: heads in tuning order (grey: cancelled)")
    return fig


def plot_comparison(comparison: Comparison, metric: str = "recall") -> go.Figure:
    """Show one metric with its bootstrap 95% interval for every model on every set.

    Raises:
        NasalensError: When the metric has no interval in the table.
    """
    table = comparison.table
    if f"{metric}_lo" not in table:
        raise NasalensError(
            f"plot_comparison: {metric!r} has no interval; use accuracy, precision, recall, "
            "f1 or auroc"
        )
    fig = go.Figure()
    for model, rows in table.groupby("model", sort=False):
        fig.add_bar(
            x=rows["set"],
            y=rows[metric],
            name=str(model),
            error_y={
                "type": "data",
                "symmetric": False,
                "array": rows[f"{metric}_hi"] - rows[metric],
                "arrayminus": rows[metric] - rows[f"{metric}_lo"],
            },
        )
    fig.update_layout(barmode="group", yaxis_title=metric, title=f"{metric} by model and set")
    return fig


def plot_tradeoff(results: Mapping[str, EvalResult], *, title: str = "") -> go.Figure:
    """Recall against AUROC, one point per model with both bootstrap 95% intervals.

    A repair counts when its point moves right (recall up) without moving down (AUROC kept):
    compare it with the pre-bias model and with a random-head control on the same samples.

    Args:
        results: Evaluations on one sample set, by the name to show.
        title: The figure's title.

    Returns:
        One scatter per model (``x`` recall, ``y`` AUROC, with error bars).

    Raises:
        NasalensError: When ``results`` is empty.
    """
    if not results:
        raise NasalensError("plot_tradeoff: no results to show")
    fig = go.Figure()
    for name, result in results.items():
        row = result.to_frame(intervals=True).iloc[0]
        fig.add_scatter(
            x=[row["recall"]], y=[row["auroc"]], mode="markers+text", name=name,
            text=[name], textposition="top center", marker={"size": 11},
            error_x={"type": "data", "symmetric": False,
                     "array": [row["recall_hi"] - row["recall"]],
                     "arrayminus": [row["recall"] - row["recall_lo"]]},
            error_y={"type": "data", "symmetric": False,
                     "array": [row["auroc_hi"] - row["auroc"]],
                     "arrayminus": [row["auroc"] - row["auroc_lo"]]},
            hovertemplate=f"<b>{name}</b><br>recall %{{x:.3f}}<br>AUROC %{{y:.3f}}<extra></extra>",
        )  # fmt: skip
    fig.update_xaxes(title_text="recall (share of true 'Yes' answered Yes)", range=[-0.05, 1.05])
    fig.update_yaxes(title_text="AUROC of P(Yes)")
    fig.update_layout(title=title or "Recall and discrimination (95% bootstrap intervals)")
    return fig
