"""Attribution patching: every head's ablation effect estimated from one forward and one backward.

For head (l, h) with output ``z`` (``hook_z``, before ``W_O``) and its ablated value ``z'``
(zero, mean or a resampled donor, as `nasalens.patching.ablation_hooks` writes it), the rise of
the mean Yes-No log-probability difference LD when the head alone is ablated is estimated to
first order (Nanda 2023; Syed et al. 2023; Kramar et al. 2024, "AtP"):

    effect(l, h) ~ mean over rows of  sum over positions  (z' - z)[pos, h] . dLD/dz[pos, h]

The gradient is the *total* derivative, taken at the real prompt (the "noising" direction): a
zero tensor that requires grad is added to every layer's z, so the gradient reaches each z
through every later head, MLP and norm. (Replacing z by a detached leaf instead would cut the
paths through later heads, the route by which one head often acts through another.) The
parameters' gradients are never computed nor stored.

The same forward records every head's ablated value, so `AblatedZ` can replay the ablation of
any single head exactly (`nasalens.validation.ranking`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.metrics import candidate_logprobs
from nasalens.models import adapt
from nasalens.models.interface import FwdHooks, HookFn, ModelAdapter
from nasalens.patching import AblationKind, ablation_hooks
from nasalens.prompts import Batch


@dataclass
class AblatedZ:
    """Every head's ablated output ``z'`` for every chunk of a batch, as the ablation writes it.

    "zero" and "mean" ablations write the same vector at every position of every row, so only
    that vector is kept; "resample" writes each row's donor, recorded per chunk and layer.

    Attributes:
        how: The ablation.
        means: The heads' mean z over the reference ("mean" and "resample").
        recorded: For "resample": ``recorded[chunk][layer]``, ``[batch, pos, head, d_head]``.
    """

    how: AblationKind
    means: Tensor | None
    recorded: list[dict[int, Tensor]] = field(default_factory=list)

    def value(
        self, chunk: int, layer: int, like: Float[Tensor, "batch pos head d_head"]
    ) -> Float[Tensor, "batch pos head d_head"]:
        """The ablated z of every head of ``layer`` for the rows of chunk ``chunk``."""
        if self.how == "zero":
            return torch.zeros_like(like)
        if self.how == "mean":
            assert self.means is not None
            mean = self.means[layer].to(device=like.device, dtype=like.dtype)
            return mean[None, None].expand_as(like)
        return self.recorded[chunk][layer].to(device=like.device, dtype=like.dtype)


def prepare_ablation(
    model: object,
    how: AblationKind,
    means: Tensor | None,
    reference: Batch,
    chunk_size: int,
) -> tuple[AblatedZ, FwdHooks, list[HookFn]]:
    """The ablated values, and for "resample" the hooks that draw them during a forward.

    Returns:
        The `AblatedZ` (filled by `attribute` for "resample"), the row-tracking hooks to add to
        the recording forward, and for "resample" each layer's ablation hook, which computes
        that layer's z' from its z (empty for "zero" and "mean", whose z' needs no forward).
    """
    ablated = AblatedZ(how, means)
    if how != "resample":
        return ablated, [], []
    adapter = adapt(model)
    every = list(adapter.info.heads())
    hooks = ablation_hooks(
        model, every, how="resample", reference=reference, means=means, chunk_size=chunk_size
    )
    by_name = dict(hooks)
    fills = [by_name[adapter.hook_name(layer, "z")] for layer in range(adapter.info.n_layers)]
    tracking = [(name, fn) for name, fn in hooks if not name.endswith(".attn.hook_z")]
    return ablated, tracking, fills


def attribute(
    adapter: ModelAdapter,
    chunks: Sequence[Batch],
    ablated: AblatedZ,
    tracking: FwdHooks = (),
    fills: Sequence[HookFn] = (),
    *,
    progress: bool = True,
) -> tuple[Float[Tensor, "layer head"], float]:
    """Estimate every head's ablation effect on the mean LD, and measure the baseline LD.

    One forward (with autograd) and one backward per chunk. For "resample", the same forward
    records each head's donor z into ``ablated``.

    Returns:
        The estimated effect of ablating each head alone (positive: LD rises, towards the
        positive candidate), and the baseline mean LD over all rows.
    """
    geo = adapter.info
    total = torch.zeros(geo.n_layers, geo.n_heads, dtype=torch.float64)
    base_sum = 0.0
    params = list(adapter.model.parameters())
    flags = [p.requires_grad for p in params]
    try:  # frozen weights: autograd keeps no tensors for their gradients (~25% less memory)
        for p in params:
            p.requires_grad_(False)
        for index, sub in enumerate(tqdm(chunks, desc="attribution", disable=not progress)):
            if ablated.how == "resample":
                ablated.recorded.append({})
            estimate, ld_sum = _chunk(adapter, sub, index, ablated, tracking, fills)
            total += estimate
            base_sum += ld_sum
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    if not math.isfinite(base_sum):
        raise AssertionError("the baseline logit difference is not finite")
    n_rows = sum(len(c) for c in chunks)
    return (total / n_rows).float(), base_sum / n_rows


def _chunk(
    adapter: ModelAdapter,
    sub: Batch,
    index: int,
    ablated: AblatedZ,
    tracking: FwdHooks,
    fills: Sequence[HookFn],
) -> tuple[Tensor, float]:
    """Summed estimates ``[layer, head]`` (float64) and summed LD of one chunk."""
    geo = adapter.info
    deltas: dict[int, Tensor] = {}
    moved: dict[int, Tensor] = {}

    def hook(z: Tensor, hook: object) -> Tensor:
        layer = int(hook.name.split(".")[1])  # type: ignore[attr-defined]
        clean = z.detach()
        if ablated.how == "resample":
            value = fills[layer](clean.clone(), hook)
            assert isinstance(value, Tensor)
            ablated.recorded[index][layer] = value.detach().cpu()
        else:
            value = ablated.value(index, layer, clean)
        moved[layer] = value.float() - clean.float()
        deltas[layer] = torch.zeros_like(z, requires_grad=True)
        return z + deltas[layer]

    hooks = [*tracking, *[(adapter.hook_name(layer, "z"), hook) for layer in range(geo.n_layers)]]
    with torch.enable_grad():
        logits = adapter.logits_at(sub.tokens, sub.attention_mask, sub.answer_pos, hooks)
        logprobs = candidate_logprobs(logits, sub)
        ld = logprobs[:, 0] - logprobs[:, 1]
        layers = sorted(deltas)
        grads = torch.autograd.grad(ld.sum(), [deltas[layer] for layer in layers])
    out = torch.zeros(geo.n_layers, geo.n_heads, dtype=torch.float64)
    for layer, grad in zip(layers, grads, strict=True):
        out[layer] = (moved[layer] * grad.float()).sum(dim=(0, 1, 3)).double().cpu()
    return out, float(ld.detach().sum())
