"""Figures of causal validation: selected heads vs random sets, single heads, the patching map.

Owns `plot_validation` (per metric, the random sets' effects with the selected heads' effect
and its interval), `plot_head_effects` (each selected head ablated alone) and `plot_patching`
(the share of the clean-corrupt gap each layer x head restores).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nasalens.errors import NasalensError
from nasalens.patching import PatchResult
from nasalens.validation import VALIDATION_METRICS, HeadValidation

#: Readable names of the metrics.
LABELS = {
    "logit_diff": "Yes-No logit difference",
    "recall": "recall",
    "precision": "precision",
    "accuracy": "accuracy",
    "auroc": "AUROC",
    "model_nas": "model NAS",
}


def plot_validation(
    result: HeadValidation, metrics: Sequence[str] = VALIDATION_METRICS
) -> go.Figure:
    """Plot, per metric, the random sets' effects and the selected heads' effect.

    Args:
        result: From `nasalens.validate_heads`.
        metrics: Which metrics, one panel each.

    Returns:
        One panel per metric: grey points for the random sets, a red diamond with its
        bootstrap 95% interval for the selected heads; the title gives the share beaten.

    Raises:
        NasalensError: On an unknown metric.
    """
    unknown = [m for m in metrics if m not in VALIDATION_METRICS]
    if unknown:
        raise NasalensError(f"unknown metric {unknown[0]!r}; use one of {VALIDATION_METRICS}")
    summary = result.summary.set_index("metric")
    share = dict(zip(result.summary["metric"], result.summary["share_beaten"], strict=True))
    titles = [f"{LABELS[m]}<br>beats {share[m]:.0%} of random sets" for m in metrics]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=titles)
    for col, m in enumerate(metrics, start=1):
        row = summary.loc[m]
        random = [float(x) for x in result.random_effects[m]] if len(result.controls) else []
        fig.add_trace(
            go.Box(
                y=random,
                name="random",
                boxpoints="all",
                marker_color="grey",
                showlegend=col == 1,
                legendgroup="random",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=["selected"],
                y=[row["effect"]],
                mode="markers",
                marker={"symbol": "diamond", "size": 12, "color": "crimson"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [row["effect_hi"] - row["effect"]],
                    "arrayminus": [row["effect"] - row["effect_lo"]],
                },
                name=f"selected ({len(result.heads)} heads)",
                showlegend=col == 1,
                legendgroup="selected",
            ),
            row=1,
            col=col,
        )
        fig.add_hline(y=0, line_dash="dot", line_color="black", row=1, col=col)
    fig.update_layout(
        title=f"Effect of {result.how}-ablating the heads (ablated - baseline)",
        height=420,
        width=max(500, 260 * len(metrics)),
    )
    return fig


def plot_head_effects(result: HeadValidation, metric: str = "logit_diff") -> go.Figure:
    """Plot the effect on ``metric`` of ablating each selected head alone.

    Returns:
        A bar per head, largest effect first.

    Raises:
        NasalensError: On an unknown metric, or when per-head effects were not computed.
    """
    if metric not in VALIDATION_METRICS:
        raise NasalensError(f"unknown metric {metric!r}; use one of {VALIDATION_METRICS}")
    frame = result.per_head
    if frame.empty:
        raise NasalensError("no per-head effects; run validate_heads(..., per_head=True)")
    frame = frame.sort_values(metric, ascending=metric == "model_nas")
    fig = go.Figure(go.Bar(x=frame["name"], y=frame[metric], marker_color="steelblue"))
    fig.update_layout(
        title=f"Effect of {result.how}-ablating one head on the {LABELS[metric]}",
        xaxis_title="head",
        yaxis_title=f"{LABELS[metric]}: ablated - baseline",
    )
    return fig


def plot_patching(result: PatchResult) -> go.Figure:
    """Plot the share of the clean-corrupt gap each head restores, as a layer x head map.

    Returns:
        A heatmap whose ``z`` is ``result.restored`` ``[layer, head]`` (red: restores "Yes").
    """
    restored = result.restored.numpy()
    n_layers, n_heads = restored.shape
    names = [[f"L{layer}H{head}" for head in range(n_heads)] for layer in range(n_layers)]
    fig = go.Figure(
        go.Heatmap(
            z=restored,
            x=list(range(n_heads)),
            y=list(range(n_layers)),
            text=names,
            colorscale="RdBu_r",
            zmid=0,
            colorbar={"title": "restored"},
            hovertemplate="%{text}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=(
            f"Activation patching, clean -> corrupt ({len(result.sample_ids)} pairs, gap "
            f"{result.gap:.2f})"
        ),
        xaxis_title="head",
        yaxis_title="layer",
        yaxis_autorange="reversed",
    )
    return fig
