"""Figures of attention heads: where each head looks (the candidates) and how negative it is.

Owns `heatmap` (one prompt: every layer x head's attention on the positive and the negative
candidate, and its NAS), `plot_head_scores` (single-head NAS over a set, selected heads marked)
and `attention_view` (the chosen heads' full patterns as a circuitsvis view, for notebooks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from plotly.subplots import make_subplots
from torch import Tensor

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.models import Head, HeadLike, adapt, as_heads
from nasalens.prompts import Template, encode
from nasalens.scores import NasScores, Region, nas, region_mask

if TYPE_CHECKING:
    import circuitsvis.utils.render

#: Colour scale of NAS, centred at 0: red where a head favours the negative candidate.
NAS_COLORSCALE = "RdBu_r"
#: Colour scale of attention (sequential, from 0).
ATTENTION_COLORSCALE = "Viridis"
#: The id given to a raw question string.
PROMPT_ID = "prompt"
#: The white outline of the dots that mark selected heads.
_RING = {"color": "white", "width": 1.5}


def as_sample(sample_or_prompt: Sample | str) -> Sample:
    """Return a sample; a string becomes the question of a gold-Yes sample without a label.

    A string is the *question*, not a full prompt: the template adds the instruction (with its
    candidate words) and the answer cue, exactly as for a sample. To show a candidate answer
    ("Is the answer Paris?"), pass a `Sample` with ``label``. NAS does not depend on ``gold``.

    Raises:
        NasalensError: When the string is empty.
    """
    if isinstance(sample_or_prompt, Sample):
        return sample_or_prompt
    return Sample(id=PROMPT_ID, question=sample_or_prompt, gold=True)


def heatmap(
    model: object,
    sample_or_prompt: Sample | str,
    *,
    template: Template | None = None,
    region: Region = "after_instruction",
) -> go.Figure:
    """Plot every layer x head's attention on the two candidates, and its NAS, for one prompt.

    Three heatmaps side by side, layer (rows, layer 0 on top) x head (columns): the attention
    from the answer region to the positive candidate, to the negative candidate (both summed
    over the region's query positions, on one colour scale), and the head's NAS (diverging,
    centred at 0). Hovering names the head (``L17H7``) and gives all three values.

    Args:
        model: A model from `nasalens.load_model`.
        sample_or_prompt: A sample, or a question string (see `as_sample`).
        template: The prompt template (default: the paper's Prompt I).
        region: The query positions summed over: "after_instruction" (L_I..answer, the paper)
            or "answer" (the answer position only).

    Returns:
        The figure; ``fig.data[0].z``, ``[1].z`` and ``[2].z`` are ``[n_layers, n_heads]``
        arrays equal to `nasalens.nas`'s ``attn_pos``, ``attn_neg`` and ``per_sample`` of the
        sample (NAS positive when the head attends more to the negative candidate).

    Raises:
        NasalensError: When the template has no candidates or the prompt is empty.

    Example:
        >>> fig = nasalens.heatmap(model, "Is Paris the capital of France?")  # doctest: +SKIP
        >>> fig.show()                                                        # doctest: +SKIP
    """
    sample = as_sample(sample_or_prompt)
    batch = encode(model, [sample], template=template)
    scores = nas(model, batch, region=region, progress=False)
    tok = adapt(model).tokenizer
    words = (
        tok.decode(batch.tokens[0][batch.pos_cand[0]].tolist()),
        tok.decode(batch.tokens[0][batch.neg_cand[0]].tolist()),
    )
    n_query = int(region_mask(batch, region)[0].sum())
    where = "the answer position" if region == "answer" else f"L_I..answer ({n_query} positions)"
    shown = f" (shown answer: {_shorten(sample.label, 40)})" if sample.label else ""
    title = (
        f"{sample.id}: attention from {where} to the candidates, and NAS"
        f"<br><sup>{_shorten(sample.question, 110)}{shown}</sup>"
    )
    return _candidate_figure(
        scores.attn_pos[0], scores.attn_neg[0], scores.per_sample[0], words, title
    )


def _candidate_figure(
    attn_pos: Float[Tensor, "layer head"],
    attn_neg: Float[Tensor, "layer head"],
    score: Float[Tensor, "layer head"],
    words: tuple[str, str],
    title: str,
) -> go.Figure:
    """The three side-by-side heatmaps of `heatmap`."""
    n_layers, n_heads = score.shape
    pos, neg, nas_ = (t.detach().cpu().double().numpy() for t in (attn_pos, attn_neg, score))
    hover = [
        [
            f"<b>L{layer}H{head}</b><br>attention on {words[0]!r}: {pos[layer, head]:.4f}"
            f"<br>attention on {words[1]!r}: {neg[layer, head]:.4f}"
            f"<br>NAS: {nas_[layer, head]:+.4f}"
            for head in range(n_heads)
        ]
        for layer in range(n_layers)
    ]
    titles = (
        f"attention on {words[0]!r} (positive)",
        f"attention on {words[1]!r} (negative)",
        "NAS (red: favours the negative)",
    )
    fig = make_subplots(
        rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.09, subplot_titles=titles
    )
    top = float(max(pos.max(), neg.max(), 1e-9))
    for col, (z, axis) in enumerate(((pos, "coloraxis"), (neg, "coloraxis"), (nas_, "coloraxis2"))):
        fig.add_trace(head_grid(z, hover, axis), row=1, col=col + 1)
    bound = float(max(np.abs(nas_).max(), 1e-9))
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        coloraxis={
            "colorscale": ATTENTION_COLORSCALE,
            "cmin": 0.0,
            "cmax": top,
            "colorbar": _colorbar("attention<br>(sum)", fig.layout.xaxis2.domain[1]),
        },
        coloraxis2={
            "colorscale": NAS_COLORSCALE,
            "cmid": 0.0,
            "cmin": -bound,
            "cmax": bound,
            "colorbar": _colorbar("NAS", fig.layout.xaxis3.domain[1]),
        },
        **_size(n_layers, n_heads, panels=3),
    )
    _axes(fig, n_layers, n_heads)
    return fig


def plot_head_scores(scores: NasScores, heads: Sequence[HeadLike] | None = None) -> go.Figure:
    """Plot single-head NAS as a layer x head map, with selected heads marked.

    Args:
        scores: NAS of a sample set (its ``.head``, the mean over samples, is plotted).
        heads: Heads to mark with dots, e.g. a `nasalens.heads.HeadSet` or names like
            ``"L17H7"``; their order is their rank (shown on hover).

    Returns:
        The figure: ``fig.data[0]`` is the heatmap (``z`` = ``scores.head`` as an
        ``[n_layers, n_heads]`` array, diverging colours centred at 0, red = favours the
        negative candidate); with heads, ``fig.data[1]`` is a scatter with ``x`` = head index
        and ``y`` = layer of each marked head, in the given order.

    Raises:
        NasalensError: When a head is outside the scores' layers and heads.

    Example:
        >>> heads = nasalens.negative_heads(scores, k=100, n=30)  # doctest: +SKIP
        >>> nasalens.plotting.heads.plot_head_scores(scores, heads).show()  # doctest: +SKIP
    """
    values = scores.head.detach().cpu().double().numpy()
    n_layers, n_heads = values.shape
    marked = as_heads(heads or ())
    for h in marked:
        if not (0 <= h.layer < n_layers and 0 <= h.head < n_heads):
            raise NasalensError(
                f"head {h} is outside the scores ({n_layers} layers x {n_heads} heads); "
                "mark heads of the model the scores were computed on"
            )
    rank = {h: i + 1 for i, h in enumerate(marked)}
    hover = [
        [
            f"<b>L{layer}H{head}</b><br>NAS: {values[layer, head]:+.4f}"
            + (f"<br>selected, rank {rank[Head(layer, head)]}" if Head(layer, head) in rank else "")
            for head in range(n_heads)
        ]
        for layer in range(n_layers)
    ]
    bound = float(max(np.abs(values).max(), 1e-9))
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=np.arange(n_heads),
            y=np.arange(n_layers),
            text=hover,
            hovertemplate="%{text}<extra></extra>",
            colorscale=NAS_COLORSCALE,
            zmid=0.0,
            zmin=-bound,
            zmax=bound,
            xgap=1,
            ygap=1,
            colorbar={"title": {"text": "NAS"}, "thickness": 14},
        )
    )
    if marked:
        fig.add_trace(
            go.Scatter(
                x=[h.head for h in marked],
                y=[h.layer for h in marked],
                mode="markers",
                # A black dot ringed in white shows on every colour of the scale.
                marker={"symbol": "circle", "size": 10, "color": "black", "line": _RING},
                text=[f"{h} (rank {i + 1})" for i, h in enumerate(marked)],
                hovertemplate="%{text}<extra></extra>",
                name=f"{len(marked)} selected heads",
                showlegend=True,
            )
        )
    note = f"<br><sup>{len(marked)} selected heads marked (dots)</sup>" if marked else ""
    fig.update_layout(
        title={
            "text": f"Single-head NAS, mean over {len(scores)} samples{note}",
            "x": 0.01,
            "xanchor": "left",
        },
        legend={"orientation": "h", "yanchor": "top", "y": -0.06, "x": 0.0},
        **_size(n_layers, n_heads, panels=1),
    )
    _axes(fig, n_layers, n_heads)
    return fig


def attention_view(
    model: object,
    sample_or_prompt: Sample | str,
    heads: Sequence[HeadLike],
    *,
    template: Template | None = None,
) -> circuitsvis.utils.render.RenderedHTML:
    """Show the full attention patterns of chosen heads on one prompt (circuitsvis).

    Args:
        model: A model from `nasalens.load_model`.
        sample_or_prompt: A sample, or a question string (see `as_sample`).
        heads: The heads, as `Head`s or names like ``"L17H7"`` (a `HeadSet` works).
        template: The prompt template (default: the paper's Prompt I).

    Returns:
        A circuitsvis ``attention_heads`` view (renders in a notebook cell), with one pattern
        per head named ``L17H7`` and the prompt's tokens as strings.

    Raises:
        NasalensError: When ``heads`` is empty or names a head the model does not have.

    Example:
        >>> nasalens.plotting.heads.attention_view(model, probe[0], heads.top(4))  # doctest: +SKIP
    """
    import circuitsvis.attention

    patterns, tokens = head_patterns(model, sample_or_prompt, heads, template=template)
    names = [str(h) for h in as_heads(heads)]
    return circuitsvis.attention.attention_heads(
        attention=patterns, tokens=tokens, attention_head_names=names
    )


def head_patterns(
    model: object,
    sample_or_prompt: Sample | str,
    heads: Sequence[HeadLike],
    *,
    template: Template | None = None,
) -> tuple[Float[Tensor, "head query key"], list[str]]:
    """Return the attention patterns of chosen heads on one prompt, and its tokens as text.

    Only the layers up to the deepest chosen head are run, without gradients.

    Args:
        model: A model from `nasalens.load_model`.
        sample_or_prompt: A sample, or a question string (see `as_sample`).
        heads: The heads, as `Head`s or names like ``"L17H7"``.
        template: The prompt template (default: the paper's Prompt I).

    Returns:
        One ``[query, key]`` pattern per head, in the order given (rows sum to 1 over the keys
        up to the query), and the decoded text of each token.

    Raises:
        NasalensError: When ``heads`` is empty or names a head the model does not have.
    """
    adapter = adapt(model)
    if not heads:
        raise NasalensError("no heads to show; pass heads such as ['L17H7'] or a HeadSet")
    chosen = adapter.info.check_heads(heads)
    batch = encode(model, [as_sample(sample_or_prompt)], template=template)
    store: dict[int, Tensor] = {}

    def keep(pattern: Tensor, hook: object) -> None:
        layer = int(hook.name.split(".")[1])  # type: ignore[attr-defined]
        store[layer] = pattern[0].detach().float().cpu()

    layers = sorted({h.layer for h in chosen})
    hooks = [(adapter.hook_name(layer, "pattern"), keep) for layer in layers]
    with torch.no_grad():
        adapter.run(batch.tokens, batch.attention_mask, hooks, stop_at_layer=layers[-1] + 1)
    patterns = torch.stack([store[h.layer][h.head] for h in chosen])
    tok = adapter.tokenizer
    tokens = [tok.decode([int(t)]) for t in batch.tokens[0]]
    return patterns, tokens


def _shorten(text: str, limit: int) -> str:
    """The text on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _colorbar(title: str, x: float) -> dict[str, object]:
    """A slim colour bar just right of a panel that ends at ``x`` (paper coordinates)."""
    return {"title": {"text": title}, "x": x + 0.005, "xanchor": "left", "thickness": 12}


def _size(n_layers: int, n_heads: int, *, panels: int) -> dict[str, object]:
    """Width and height that keep cells readable, about 22 px per layer."""
    height = int(min(max(n_layers * 22 + 170, 360), 1400))
    width = int(min(max(panels * (n_heads * 34 + 150), 640), 1800))
    return {"height": height, "width": width, "template": "plotly_white"}


def head_grid(z: np.ndarray, hover: list[list[str]], axis: str) -> go.Heatmap:
    """One ``[layer, head]`` map as a heatmap trace: a cell per head, hover text, shared axis."""
    n_layers, n_heads = z.shape
    return go.Heatmap(
        z=z,
        x=np.arange(n_heads),
        y=np.arange(n_layers),
        text=hover,
        hovertemplate="%{text}<extra></extra>",
        coloraxis=axis,
        xgap=1,
        ygap=1,
    )


def _axes(fig: go.Figure, n_layers: int, n_heads: int) -> None:
    """Integer head and layer ticks, exactly the cells shown, layer 0 on top."""
    fig.update_xaxes(
        title_text="head",
        tickmode="linear",
        dtick=1,
        range=[-0.5, n_heads - 0.5],
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(
        tickmode="linear",
        dtick=1 if n_layers <= 40 else 5,
        range=[n_layers - 0.5, -0.5],  # layer 0 on top
        showgrid=False,
        zeroline=False,
    )
    fig.layout.yaxis.title.text = "layer"
