"""Ranking every head by what ablating it alone does to the Yes-No logit difference.

NAS ranks heads by where they look; this ranks them by what they do, and finds heads whose
route to "No" NAS cannot see. Three methods, one result type (a ranked `HeadSet`):

- "exact": ablate each head alone and run the model. Blocks below the head's layer run once
  per layer, and the heads of a layer run together, one copy of the batch per head.
- "attribution": every head's effect estimated to first order from one forward and one
  backward pass (`nasalens.validation.attribution`); cheap, but blind where the model is far
  from linear (saturated attention, a head's direct and indirect effects cancelling).
- "verified" (the default): the attribution estimate for every head, then the exact effect of
  the most promising ones, ranked by the exact effect (docs/ranking.md for how many and why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet
from nasalens.metrics import candidate_logprobs
from nasalens.models import Head, adapt
from nasalens.models.interface import FwdHooks, HookFn, ModelAdapter
from nasalens.patching import AblationKind, head_means
from nasalens.patching.ablation import ABLATIONS, check_how
from nasalens.prompts import Batch, Template
from nasalens.validation.attribution import AblatedZ, attribute, prepare_ablation
from nasalens.validation.head_sets import batch_and_reference

RankMethod = Literal["attribution", "exact", "verified"]
RANK_METHODS: tuple[str, ...] = ("attribution", "exact", "verified")

#: The share of an exact sweep's cost (in blocks run) that "verified" plans to spend on exact
#: effects by default. Measured on the organism, a planned 0.08 cost 0.10 of the sweep's time
#: (a few heads of a layer per pass run less efficiently than all of them) plus 0.015 for the
#: attribution pass: 0.115 in all, so 0.05 keeps the whole ranking under 0.1x the sweep.
DEFAULT_BUDGET = 0.05
#: "verified" measures at least this many heads exactly, whatever the budget.
MIN_VERIFIED = 10
#: At most this many rows (batch copies) in one pass of the exact sweep.
MAX_ROWS = 256


def rank_heads(
    model: object,
    samples: Sequence[Sample] | Batch,
    *,
    method: RankMethod = "verified",
    how: AblationKind = "mean",
    reference: Sequence[Sample] | Batch | None = None,
    template: Template | None = None,
    verify: int | None = None,
    budget: float = DEFAULT_BUDGET,
    chunk_size: int = 16,
    progress: bool = True,
) -> HeadSet:
    """Rank every head by how much ablating it alone raises the Yes-No logit difference.

    NAS ranks heads by where they look; this ranks them by what they do. On the planted-bias
    organism the two disagree: NAS ranks the planted heads 5th, 99th and 270th of 270, the
    exact sweep 3rd, 1st and 4th (docs/results.md). Pass the first rows to NASA as its heads.

    Args:
        model: A model from `nasalens.load_model`.
        samples: The samples (or their batch) the logit difference is averaged over, e.g. a
            probing set's FN training samples.
        method: "verified" (estimate all, verify the most promising exactly), "exact" (every
            head ablated alone) or "attribution" (the first-order estimate only).
        how: "zero", "mean" or "resample" ablation (`nasalens.patching.ablation_hooks`; for
            "resample" every head draws the same donor row).
        reference: What "mean" averages over and "resample" draws from (default: samples).
        template: Template to encode samples with (default: Prompt I).
        verify: For "verified": how many heads to verify exactly, best estimates first; None
            spends ``budget`` instead.
        budget: For "verified" without ``verify``: the share of an exact sweep's cost to spend
            on exact effects (heads in late layers cost less: only the blocks from theirs run).
        chunk_size: Rows per forward pass.
        progress: Show progress bars.

    Returns:
        Every head, ranked: by ``effect`` (ablated minus baseline mean Yes-No log-probability
        difference) for "exact"; by ``estimate`` for "attribution"; for "verified" the verified
        heads by ``effect``, then the others by ``estimate`` (their ``effect`` is NaN).
        ``meta`` holds the baseline, the method's settings and, for "verified", how many heads
        were verified.

    Raises:
        NasalensError: On no samples, an unknown ``method`` or ``how``, a template without
            answer candidates, or a ``budget`` outside (0, 1].

    Example:
        >>> ranking = nasalens.rank_heads(model, probe.train)  # doctest: +SKIP
        >>> nasalens.validate_heads(model, samples, ranking[:10])  # doctest: +SKIP
    """
    check_how(how, ABLATIONS, "rank_heads")
    check_how(method, RANK_METHODS, "rank_heads method")
    if len(samples) == 0:
        raise NasalensError("rank_heads needs at least one sample")
    if not 0 < budget <= 1:
        raise NasalensError(f"rank_heads budget={budget}: use a share of an exact sweep in (0, 1]")
    if verify is not None and verify < 0:
        raise NasalensError(f"rank_heads verify={verify}: use a number of heads >= 0")
    batch, ref = batch_and_reference(model, samples, reference, template)
    if not batch.pos_ids or not batch.neg_ids:
        raise NasalensError("rank_heads needs a binary template (answer candidates to score)")
    adapter = adapt(model)
    geo = adapter.info
    means = head_means(model, ref, chunk_size=chunk_size) if how != "zero" else None
    chunks = [sub for _, sub in batch.chunks(chunk_size)]
    ablated, tracking, fills = prepare_ablation(model, how, means, ref, chunk_size)
    meta: dict[str, object] = {"how": how, "n_samples": len(batch)}
    every = list(geo.heads())
    estimate = None
    if method != "exact" or how == "resample":  # resample: the forward records the donors
        grads, _ = attribute(adapter, chunks, ablated, tracking, fills, progress=progress)
        estimate = {h: float(grads[h.layer, h.head]) for h in every}
    if method == "attribution":
        assert estimate is not None
        return _ranked(every, {"estimate": estimate}, "attribution", "estimate", meta)
    if method == "exact":
        effects, base = exact_effects(adapter, chunks, every, ablated, progress=progress)
        meta["baseline_logit_diff"] = base
        return _ranked(every, {"effect": effects}, "exact", "effect", meta)
    assert estimate is not None
    chosen = choose(estimate, geo.n_layers, verify=verify, budget=budget)
    effects, base = exact_effects(adapter, chunks, chosen, ablated, progress=progress)
    meta.update(baseline_logit_diff=base, n_verified=len(chosen), budget=budget, verify=verify)
    verified = sorted(chosen, key=lambda h: -effects[h])
    rest = sorted((h for h in every if h not in effects), key=lambda h: -estimate[h])
    order = verified + rest
    scores = {
        "effect": {h: effects.get(h, math.nan) for h in every},
        "estimate": estimate,
        "verified": {h: float(h in effects) for h in every},
    }
    return HeadSet(
        tuple(order),
        {name: tuple(col[h] for h in order) for name, col in scores.items()},
        "verified",
        "effect",
        meta,
    )


def choose(
    estimate: dict[Head, float], n_layers: int, *, verify: int | None, budget: float
) -> list[Head]:
    """Return the heads "verified" measures exactly: the best estimates first.

    ``verify`` of them, or as many as ``budget`` of an exact sweep's cost pays for (at least
    `MIN_VERIFIED`). A head at layer l costs (n_layers - l) blocks; an exact sweep costs that
    summed over heads.
    """
    ranked = sorted(estimate, key=lambda h: -estimate[h])
    if verify is not None:
        return ranked[:verify]
    allowance = budget * sum(n_layers - h.layer for h in ranked)
    chosen: list[Head] = []
    spent = 0.0
    for head in ranked:
        cost = n_layers - head.layer
        if spent + cost > allowance and len(chosen) >= MIN_VERIFIED:
            continue  # a cheaper head further down may still fit
        chosen.append(head)
        spent += cost
    return chosen


def exact_effects(
    adapter: ModelAdapter,
    chunks: Sequence[Batch],
    heads: Sequence[Head],
    ablated: AblatedZ,
    *,
    progress: bool = True,
) -> tuple[dict[Head, float], float]:
    """Ablate each of ``heads`` alone and return the change of the mean LD, and the baseline.

    For each chunk, the residual entering every layer that has heads to ablate comes from one
    pass (`ModelAdapter.resid_pres`); a layer's heads then run together, one copy of the chunk
    per head (at most `MAX_ROWS` rows per pass), each copy with its head's z replaced by its
    ablated value, through the blocks from that layer only.
    """
    n_rows = sum(len(c) for c in chunks)
    by_layer: dict[int, list[Head]] = {}
    for head in heads:
        by_layer.setdefault(head.layer, []).append(head)
    layers = sorted(by_layer)
    if not layers:
        raise NasalensError("exact_effects: no heads to ablate")
    sums = dict.fromkeys(heads, 0.0)
    base = 0.0
    bar = tqdm(total=len(heads) * len(chunks), desc="exact effects", disable=not progress)
    for index, chunk in enumerate(chunks):
        per_pass = max(1, MAX_ROWS // len(chunk))
        with torch.no_grad():
            base += float(_ld(adapter, chunk, 0, _embed(adapter, chunk), ()).sum())
            resids = adapter.resid_pres(chunk.tokens, chunk.attention_mask, layers)
        for layer in layers:
            group = by_layer[layer]
            for start in range(0, len(group), per_pass):
                part = group[start : start + per_pass]
                copies = len(part)
                hook = _one_head_per_copy(adapter, ablated, index, layer, part, len(chunk))
                with torch.no_grad():
                    ld = _ld(
                        adapter,
                        _repeat(chunk, copies),
                        layer,
                        resids[layer].repeat(copies, 1, 1),
                        [(adapter.hook_name(layer, "z"), hook)],
                    )
                totals = ld.reshape(copies, len(chunk)).sum(dim=1).double().tolist()
                for head, total in zip(part, totals, strict=True):
                    sums[head] += total
                bar.update(copies)
    bar.close()
    base /= n_rows
    return {h: sums[h] / n_rows - base for h in heads}, base


def _one_head_per_copy(
    adapter: ModelAdapter,
    ablated: AblatedZ,
    chunk: int,
    layer: int,
    heads: Sequence[Head],
    rows: int,
) -> HookFn:
    """A z hook for ``len(heads)`` stacked copies of a chunk: copy c ablates ``heads[c]``."""

    def hook(z: Tensor, hook: object) -> Tensor:
        value = ablated.value(chunk, layer, z[:rows])
        z = z.clone()
        for copy, head in enumerate(heads):
            rows_of = slice(copy * rows, (copy + 1) * rows)
            z[rows_of, :, head.head] = value[:, :, head.head]
        return z

    return hook


def _repeat(batch: Batch, copies: int) -> Batch:
    """``copies`` stacked copies of a batch's rows (row order: copy by copy)."""
    return batch.select(torch.arange(len(batch)).repeat(copies))


def _embed(adapter: ModelAdapter, batch: Batch) -> Tensor:
    return adapter.resid_pre(batch.tokens, batch.attention_mask, 0)


def _ld(adapter: ModelAdapter, batch: Batch, layer: int, resid: Tensor, hooks: FwdHooks) -> Tensor:
    """Yes-No log-probability difference of each row, running blocks ``layer``.. only."""
    final = adapter.forward_from(resid, layer, batch.attention_mask, batch.answer_pos, hooks)
    logprobs = candidate_logprobs(adapter.unembed(final), batch)
    return (logprobs[:, 0] - logprobs[:, 1]).float().cpu()


def _ranked(
    heads: list[Head],
    scores: dict[str, dict[Head, float]],
    method: str,
    by: str,
    meta: dict[str, object],
) -> HeadSet:
    """Every head, the largest ``by`` first (ties keep layer order)."""
    order = sorted(heads, key=lambda h: -scores[by][h])
    columns = {name: tuple(col[h] for h in order) for name, col in scores.items()}
    return HeadSet(tuple(order), columns, method, by, meta)
