"""Training a few rows of a model: row masks, the answer-token loss, AdamW and its schedule.

Shared by NASA (one head's query/key rows) and the model organisms. Only rows inside the given
`ParamSlice`s receive gradient; AdamW runs with weight decay 0, because any decay also moves
rows whose gradient is zero (TL4_NOTES.md §5).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from jaxtyping import Float, Int
from torch import Tensor

from nasalens.models.interface import ModelAdapter, ParamSlice
from nasalens.prompts import Batch


@contextmanager
def trainable(
    adapter: ModelAdapter, slices: Sequence[ParamSlice]
) -> Iterator[list[torch.nn.Parameter]]:
    """Make only ``slices`` trainable for the block; yield their distinct parameters.

    Every other parameter gets ``requires_grad=False``; a gradient hook zeroes the gradient
    outside the slices' rows. Flags and hooks are restored on exit.
    """
    params = list(adapter.model.parameters())
    flags = [p.requires_grad for p in params]
    masks: dict[int, Tensor] = {}
    owners: dict[int, torch.nn.Parameter] = {}
    for s in slices:
        mask = masks.setdefault(id(s.param), torch.zeros_like(s.param))
        mask[s.rows] = 1
        owners[id(s.param)] = s.param
    handles = []
    try:
        for p in params:
            p.requires_grad_(False)
        for key, param in owners.items():
            param.requires_grad_(True)
            mask = masks[key]
            handles.append(param.register_hook(lambda g, m=mask: g * m))
        yield list(owners.values())
    finally:
        for h in handles:
            h.remove()
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
            p.grad = None


def optimizer(params: Sequence[torch.nn.Parameter], lr: float) -> torch.optim.AdamW:
    """AdamW with weight decay 0 (decay would move the frozen rows too)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def schedule(
    opt: torch.optim.Optimizer, total_steps: int, warmup: float, kind: str
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``ceil(warmup * total_steps)`` steps, then linear decay or constant."""
    warm = math.ceil(warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if kind == "constant":
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """Shuffle ``range(n)`` with ``generator`` and cut it into batches (the last may be short)."""
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def answer_loss(
    adapter: ModelAdapter,
    resid: Float[Tensor, "batch pos d_model"],
    layer: int,
    batch: Batch,
    targets: Int[Tensor, " batch"],
) -> Tensor:
    """Cross-entropy of the target answer token at each row's answer position (mean over rows).

    Runs blocks ``layer``..L-1 only, from ``resid`` (the residual entering ``layer``).
    """
    width = int(batch.answer_pos.max()) + 1
    final = adapter.forward_from(
        resid[:, :width], layer, batch.attention_mask[:, :width], batch.answer_pos
    )
    logp = adapter.unembed(final).float().log_softmax(dim=-1)
    rows = torch.arange(len(targets), device=logp.device)
    return -logp[rows, targets.to(logp.device)].mean()


def residuals(
    adapter: ModelAdapter, batch: Batch, layer: int, chunk_size: int
) -> Float[Tensor, "batch pos d_model"]:
    """The residual entering ``layer`` for every row (no gradient), in row order."""
    out = torch.zeros(len(batch), batch.tokens.shape[1], adapter.info.d_model)
    with torch.no_grad():
        for start in range(0, len(batch), chunk_size):
            rows = slice(start, start + chunk_size)
            tokens, mask = batch.tokens[rows], batch.attention_mask[rows]
            out[rows] = adapter.resid_pre(tokens, mask, layer).cpu()
    return out
