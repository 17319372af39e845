"""Both views of the heads, side by side: where they look (NAS) and what they do (causal effect).

`plot_head_maps` draws single-head NAS and a causal ranking's effects as two layer x head maps
with the same conventions (diverging colours centred at 0; red: the head pushes the decision
towards the negative candidate), each ranking's top heads and any heads you name marked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nasalens.errors import NasalensError
from nasalens.heads import HeadSet
from nasalens.models import Head, HeadLike, as_heads
from nasalens.plotting.heads import _RING, NAS_COLORSCALE, _axes, _colorbar, _size, head_grid
from nasalens.scores import NasScores


def effect_map(ranking: HeadSet, n_layers: int, n_heads: int) -> tuple[np.ndarray, np.ndarray]:
    """A ranking's causal effect of every head as a ``[layer, head]`` array, and which are exact.

    The exact ``effect`` where the ranking measured it, the attribution ``estimate`` elsewhere
    (a "verified" ranking measures only its best candidates); NaN where neither exists.
    """
    values = np.full((n_layers, n_heads), np.nan)
    exact = np.zeros((n_layers, n_heads), dtype=bool)
    effect, estimate = ranking.score("effect"), ranking.score("estimate")
    for head, e, est in zip(ranking, effect, estimate, strict=True):
        if not (0 <= head.layer < n_layers and 0 <= head.head < n_heads):
            raise NasalensError(f"head {head} is outside the maps ({n_layers} x {n_heads})")
        values[head.layer, head.head] = e if np.isfinite(e) else est
        exact[head.layer, head.head] = bool(np.isfinite(e))
    return values, exact


def plot_head_maps(
    scores: NasScores,
    ranking: HeadSet,
    *,
    top_n: int = 10,
    marked: Sequence[HeadLike] = (),
    marked_name: str = "marked",
) -> go.Figure:
    """Plot single-head NAS beside a causal ranking's effects, both layer x head.

    Args:
        scores: NAS of a sample set (``scores.head`` is drawn).
        ranking: A causal ranking (`nasalens.rank_heads`): its exact ``effect``, or its
            ``estimate`` where no exact effect was measured (hover says which).
        top_n: How many of each view's best heads to mark with dots (NAS: the highest
            single-head NAS; causal: the first of the ranking).
        marked: Heads to ring on both maps, e.g. an organism's planted heads.
        marked_name: Their legend label.

    Returns:
        The figure: ``fig.data[0].z`` is NAS and ``fig.data[1].z`` the effects, each
        ``[n_layers, n_heads]``; then one scatter per panel with its top heads, and one per
        panel with ``marked``.

    Raises:
        NasalensError: When a head is outside the model the scores were computed on.
    """
    nas_ = scores.head.detach().cpu().double().numpy()
    n_layers, n_heads = nas_.shape
    effects, exact = effect_map(ranking, n_layers, n_heads)
    ringed = as_heads(marked)
    for head in ringed:
        if not (0 <= head.layer < n_layers and 0 <= head.head < n_heads):
            raise NasalensError(f"marked head {head} is outside the maps ({n_layers} x {n_heads})")
    flat = np.argsort(-nas_.flatten(), kind="stable")[:top_n]
    top_nas = [Head(int(i) // n_heads, int(i) % n_heads) for i in flat]
    top_effect = list(ranking.top(top_n))
    titles = (
        f"where they look: single-head NAS ({len(scores)} samples)",
        f"what they do: {ranking.method} effect of ablating each head ({ranking.meta.get('how')})",
    )
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.1, subplot_titles=titles
    )
    for col, (z, axis, label) in enumerate(
        ((nas_, "coloraxis", "NAS"), (effects, "coloraxis2", "effect"))
    ):
        hover = [
            [
                f"<b>L{layer}H{head}</b><br>{label}: {z[layer, head]:+.4f}"
                + ("" if col == 0 or exact[layer, head] else " (estimate)")
                for head in range(n_heads)
            ]
            for layer in range(n_layers)
        ]
        fig.add_trace(head_grid(z, hover, axis), row=1, col=col + 1)
    for col, (heads, name) in enumerate(((top_nas, "NAS"), (top_effect, "causal"))):
        fig.add_trace(_dots(heads, f"top {len(heads)} by {name}", "black"), row=1, col=col + 1)
    if ringed:
        for col in (1, 2):
            trace = _dots(ringed, marked_name, "rgba(0,0,0,0)", size=16, show=col == 1)
            trace.marker.line = {"color": "black", "width": 2.5}
            fig.add_trace(trace, row=1, col=col)
    fig.update_layout(
        coloraxis={**_diverging(nas_), "colorbar": _colorbar("NAS", fig.layout.xaxis.domain[1])},
        coloraxis2={
            **_diverging(effects),
            "colorbar": _colorbar("effect", fig.layout.xaxis2.domain[1]),
        },
        title={"text": "Both views of the same heads (red: pushes towards No)", "x": 0.01},
        legend={"orientation": "h", "yanchor": "top", "y": -0.06, "x": 0.0},
        **_size(n_layers, n_heads, panels=2),
    )
    _axes(fig, n_layers, n_heads)
    return fig


def _diverging(values: np.ndarray) -> dict[str, object]:
    """A colour axis centred at 0, symmetric around it, red for positive."""
    finite = values[np.isfinite(values)]
    bound = float(max(np.abs(finite).max() if finite.size else 0.0, 1e-9))
    return {"colorscale": NAS_COLORSCALE, "cmid": 0.0, "cmin": -bound, "cmax": bound}


def _dots(
    heads: Sequence[Head], name: str, color: str, *, size: int = 9, show: bool = True
) -> go.Scatter:
    """Markers on heads (x = head, y = layer), hover naming each and its place."""
    return go.Scatter(
        x=[h.head for h in heads],
        y=[h.layer for h in heads],
        mode="markers",
        marker={"symbol": "circle", "size": size, "color": color, "line": _RING},
        text=[f"{h} ({i + 1})" for i, h in enumerate(heads)],
        hovertemplate="%{text}<extra></extra>",
        name=name,
        showlegend=show,
    )
