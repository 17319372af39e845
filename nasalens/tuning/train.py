"""Training a few rows of a model: the one epoch loop, float32 master weights, the answer loss.

Shared by NASA (one head's query/key rows) and the model organisms (every weight, then a few
heads' query rows). `epochs` is the loop: shuffled batches, AdamW with weight decay 0 (any
decay also moves rows whose gradient is zero, TL4_NOTES.md §5), a warm-up/decay schedule, and
one yield per epoch for the caller's rules.

Weights that are not float32 (a bfloat16 model) train through float32 master copies of their
trained rows: AdamW and its state live on the copies, and after each step the rows are written
back rounded to the weight's dtype. An update of 1e-6 on a weight of 1e-2 is below bfloat16's
resolution and would round away on every step; on the copy it accumulates. Rows outside the
trained ones are never written, so they stay bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.errors import NasalensError
from nasalens.models.interface import ModelAdapter, ParamSlice
from nasalens.prompts import Batch


@dataclass(frozen=True)
class Epoch:
    """One finished epoch of `epochs`.

    Attributes:
        epoch: Its number, from 1.
        loss: The mean loss over its steps.
        lr: The learning rate after its last step.
    """

    epoch: int
    loss: float
    lr: float


def epochs(
    adapter: ModelAdapter,
    slices: Sequence[ParamSlice] | None,
    loss: Callable[[Tensor], Tensor],
    *,
    n_rows: int,
    lr: float,
    n_epochs: int,
    batch_size: int,
    order: Callable[[int], torch.Generator],
    warmup: float = 0.0,
    schedule_kind: str = "constant",
    desc: str = "epochs",
    progress: bool = True,
) -> Generator[Epoch, None, None]:
    """Train ``slices`` (every weight when None) for up to ``n_epochs``, yielding after each.

    Each epoch shuffles ``range(n_rows)`` with ``order(epoch)``, cuts it into batches of
    ``batch_size`` and takes one AdamW step per batch on ``loss(rows)``. The caller reads or
    restores weights between epochs and stops early by leaving the loop; use it inside
    ``contextlib.closing`` so that flags, gradient hooks and master copies are released at
    once. Writing the trained rows from outside (a restore) is safe only when no step follows.

    Args:
        adapter: The model to train, in place.
        slices: The rows that train (`ParamSlice`s); None trains every weight.
        loss: The loss of the rows (indices into the caller's data) of one batch.
        n_rows: How many rows the data has.
        lr: AdamW's peak learning rate.
        n_epochs: The most epochs.
        batch_size: Rows per step (the last batch of an epoch may be short).
        order: The generator that shuffles epoch ``e`` (the same object for one stream).
        warmup: Share of all steps spent warming up linearly.
        schedule_kind: "constant" or "linear" decay after the warm-up.
        desc: The progress bar's label.
        progress: Show a progress bar over epochs.

    Yields:
        Each finished epoch's number, mean loss and learning rate.

    Raises:
        NasalensError: When a weight to train is offloaded by a device map (see `trainable`).
    """
    n_steps = math.ceil(n_rows / batch_size)
    with master_weights(adapter, slices) as weights:
        opt = optimizer(weights.params, lr)
        sched = schedule(opt, n_steps * n_epochs, warmup, schedule_kind)
        for epoch in tqdm(range(1, n_epochs + 1), desc=desc, leave=False, disable=not progress):
            losses = []
            for rows in batches(n_rows, batch_size, order(epoch)):
                value = loss(rows)
                opt.zero_grad(set_to_none=True)
                value.backward()
                weights.step(opt)
                sched.step()
                losses.append(float(value.detach()))
            yield Epoch(epoch, sum(losses) / len(losses), float(sched.get_last_lr()[0]))


@contextmanager
def trainable(
    adapter: ModelAdapter, slices: Sequence[ParamSlice] | None
) -> Iterator[list[torch.nn.Parameter]]:
    """Make only ``slices`` trainable for the block; yield their distinct parameters.

    Every other parameter gets ``requires_grad=False``; a gradient hook zeroes the gradient
    outside the slices' rows. ``slices=None`` makes every parameter trainable, unmasked. Flags
    and hooks are restored on exit.

    Raises:
        NasalensError: When a parameter to train is a meta placeholder: a device map
            offloaded it to "cpu" or "disk", so it is not resident and cannot train.
    """
    params = list(adapter.model.parameters())
    flags = [p.requires_grad for p in params]
    masks: dict[int, Tensor] = {}
    owners: dict[int, torch.nn.Parameter] = {}
    for s in slices if slices is not None else []:
        if s.param.is_meta:
            raise NasalensError(
                f"{s.name} is offloaded by the model's device_map (not resident), so it cannot "
                "train; keep the tuned heads' layers on a GPU or the CPU (no 'disk' or CPU "
                "offload there), or load the model with device= instead"
            )
        mask = masks.setdefault(id(s.param), torch.zeros_like(s.param))
        mask[s.index] = 1
        owners[id(s.param)] = s.param
    if slices is None:
        if any(p.is_meta for p in params):
            raise NasalensError(
                "training every weight needs every weight resident; this model's device_map "
                "offloads some to 'cpu' or 'disk': load it with device= or a GPU-only map"
            )
        owners = {id(p): p for p in params}
    handles = []
    try:
        for p in params:
            p.requires_grad_(False)
        for key, param in owners.items():
            param.requires_grad_(True)
            if key in masks:
                handles.append(param.register_hook(lambda g, m=masks[key]: g * m))
        yield list(owners.values())
    finally:
        for h in handles:
            h.remove()
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
            p.grad = None


class MasterWeights:
    """What the optimizer updates: float32 weights, and how they reach the model after a step.

    A float32 parameter trains itself (its gradient masked to the trained rows). Any other
    parameter gets a float32 master copy of its trained rows (all rows when it trains whole):
    `step` hands the optimizer the rows' gradient in float32, then writes the updated rows
    back, rounded to the parameter's dtype. Other rows are never written.

    Args:
        params: The trainable parameters (from `trainable`).
        slices: The trained rows (None: every row of every parameter).
        master: Use master copies for every parameter (True), for none (False), or for those
            that are not float32 (None, the default).
    """

    def __init__(
        self,
        params: Sequence[torch.nn.Parameter],
        slices: Sequence[ParamSlice] | None,
        *,
        master: bool | None = None,
    ) -> None:
        rows: dict[int, set[int]] = {}
        for s in slices if slices is not None else []:
            whole = range(s.param.shape[0])  # a slice along another dim copies every row
            rows.setdefault(id(s.param), set()).update(whole[s.rows] if s.dim == 0 else whole)
        self.params: list[Tensor] = []
        self.copies: list[tuple[torch.nn.Parameter, Tensor | None, Tensor]] = []
        for p in params:
            use_copy = p.dtype != torch.float32 if master is None else master
            if not use_copy:
                self.params.append(p)
                continue
            index = None
            if id(p) in rows and len(rows[id(p)]) < p.shape[0]:
                index = torch.tensor(sorted(rows[id(p)]), device=p.device)
            weight = p.detach() if index is None else p.detach()[index]
            copy = weight.to(torch.float32, copy=True)
            self.params.append(copy)
            self.copies.append((p, index, copy))

    def step(self, opt: torch.optim.Optimizer) -> None:
        """Take the optimizer step and write the master copies' rows back into the model."""
        for param, index, copy in self.copies:
            grad = param.grad
            if grad is not None:
                grad = grad if index is None else grad[index]
                copy.grad = grad.to(torch.float32)
            param.grad = None
        opt.step()
        with torch.no_grad():
            for param, index, copy in self.copies:
                if index is None:
                    param.copy_(copy)
                else:
                    param.index_copy_(0, index, copy.to(param.dtype))


@contextmanager
def master_weights(
    adapter: ModelAdapter, slices: Sequence[ParamSlice] | None, *, master: bool | None = None
) -> Iterator[MasterWeights]:
    """`trainable` with `MasterWeights` over its parameters, for the block."""
    with trainable(adapter, slices) as params:
        yield MasterWeights(params, slices, master=master)


def optimizer(params: Sequence[Tensor], lr: float) -> torch.optim.AdamW:
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

    Runs blocks ``layer``..L-1 only, from ``resid`` (the residual entering ``layer``). The
    log-softmax is taken in float32 whatever the model's dtype.
    """
    width = int(batch.answer_pos.max()) + 1
    final = adapter.forward_from(
        resid[:, :width], layer, batch.attention_mask[:, :width], batch.answer_pos
    )
    return token_loss(adapter.unembed(final), targets)


def token_loss(logits: Float[Tensor, "batch vocab"], targets: Int[Tensor, " batch"]) -> Tensor:
    """Mean cross-entropy of ``targets`` under ``logits``, in float32."""
    logp = logits.float().log_softmax(dim=-1)
    rows = torch.arange(len(targets), device=logp.device)
    return -logp[rows, targets.to(logp.device)].mean()


def residuals(
    adapter: ModelAdapter, batch: Batch, layer: int, chunk_size: int
) -> Float[Tensor, "batch pos d_model"]:
    """The residual entering ``layer`` for every row (no gradient), in row order, on the CPU.

    Kept in the model's dtype (bfloat16 rows take half the memory of float32 ones).
    """
    parts = []
    with torch.no_grad():
        for start in range(0, len(batch), chunk_size):
            rows = slice(start, start + chunk_size)
            tokens, mask = batch.tokens[rows], batch.attention_mask[rows]
            parts.append(adapter.resid_pre(tokens, mask, layer).cpu())
    if not parts:
        return torch.zeros(0, batch.tokens.shape[1], adapter.info.d_model)
    return torch.cat(parts)
