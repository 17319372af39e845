"""Ablating heads: replace a head's output (``hook_z``, before ``W_O``) by zero, a mean, a donor's.

- "zero": every position of the head's z is 0.
- "mean": every position gets the head's mean z over the reference batch, averaged over every
  real (non-padding) token position of every reference row: one vector per head, the same at
  every position of the ablated run.
- "resample": each row of the ablated run takes the head's z from one other reference row
  (drawn with ``seed``, never the row with the same tokens), aligned by the offset from the
  answer position: position ``answer - o`` gets the donor's position ``answer' - o``. Positions
  further back than the donor is long get the mean of "mean".

Reference activations are computed once, when the hooks are built, on the model as it is then.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.models import HeadLike, adapt
from nasalens.models.interface import HookFn
from nasalens.patching.rows import (
    BatchIndex,
    Hooks,
    RowTracker,
    aligned_z,
    at_layer,
    by_layer,
)
from nasalens.prompts import Batch, Template, encode

AblationKind = Literal["zero", "mean", "resample"]
ABLATIONS: tuple[str, ...] = ("zero", "mean", "resample")


def check_how(how: str, allowed: Sequence[str], what: str) -> None:
    """Raise when ``how`` is not one of ``allowed``.

    Raises:
        NasalensError: Naming the choices.
    """
    if how not in allowed:
        raise NasalensError(f"unknown {what} how={how!r}; use one of {', '.join(allowed)}")


def ablation_hooks(
    model: object,
    heads: Sequence[HeadLike],
    *,
    how: AblationKind = "mean",
    reference: Batch | Sequence[Sample] | None = None,
    seed: int = 0,
    template: Template | None = None,
    means: Float[Tensor, "layer head d_head"] | None = None,
    chunk_size: int = 16,
) -> Hooks:
    """Return forward hooks that ablate ``heads`` (for ``run_with_hooks`` or ``fwd_hooks=``).

    Args:
        model: A model from `nasalens.load_model`.
        heads: The heads to ablate; an empty list gives no hooks.
        how: "zero", "mean" or "resample" (see the module docstring).
        reference: The batch (or samples) that "mean" averages over and "resample" draws from.
        seed: Seed of the donor rows of "resample".
        template: Template to encode ``reference`` samples with (default: Prompt I).
        means: `head_means` of the reference, computed already (saves a pass when building
            many hook sets on one reference).
        chunk_size: Rows per forward pass over the reference.

    Returns:
        ``(hook name, function)`` pairs; they compose with any other hooks.

    Raises:
        NasalensError: On an unknown ``how``, a head outside the model, "mean" or "resample"
            without a reference, or "resample" with fewer than two reference rows.

    Example:
        >>> hooks = nasalens.patching.ablation_hooks(model, heads, how="zero")  # doctest: +SKIP
        >>> model.run_with_hooks(tokens, fwd_hooks=hooks)                      # doctest: +SKIP
    """
    check_how(how, ABLATIONS, "ablation")
    adapter = adapt(model)
    checked = adapter.info.check_heads(heads)
    if not checked:
        return []
    layers = by_layer(checked)
    if how == "zero":
        zeros = torch.zeros(adapter.info.n_layers, adapter.info.n_heads, adapter.info.d_head)
        return [
            (adapter.hook_name(layer, "z"), _fill(idx, zeros[layer, idx]))
            for layer, idx in layers.items()
        ]
    if reference is None and (means is None or how == "resample"):
        raise NasalensError(
            f"how={how!r} ablation needs reference=: a batch or samples to take the heads' "
            "activations from (e.g. the samples you evaluate), or use how='zero'"
        )
    ref = None
    if reference is not None:
        ref = (
            reference
            if isinstance(reference, Batch)
            else encode(model, reference, template=template)
        )
    if means is None:
        assert ref is not None
        means = head_means(model, ref, chunk_size=chunk_size)
    if how == "mean":
        return [
            (adapter.hook_name(layer, "z"), _fill(idx, means[layer, idx]))
            for layer, idx in layers.items()
        ]
    assert ref is not None
    if len(ref) < 2:
        raise NasalensError("how='resample' needs at least two reference rows to draw from")
    donors = aligned_z(adapter, ref, layers, chunk_size=chunk_size)
    lengths = ref.attention_mask.sum(dim=1)
    tracker = RowTracker(min(layers), adapt(model).tokens_hook_name())
    draw = _Donors(ref, tracker, seed)
    hooks: Hooks = tracker.hooks()
    for layer, idx in layers.items():
        fn = _resample(idx, donors[layer], lengths, means[layer, idx], tracker, draw)
        hooks.append((adapter.hook_name(layer, "z"), fn))
    return hooks


@contextmanager
def ablate(
    model: object,
    heads: Sequence[HeadLike],
    *,
    how: AblationKind = "mean",
    reference: Batch | Sequence[Sample] | None = None,
    seed: int = 0,
    template: Template | None = None,
) -> Iterator[Hooks]:
    """Ablate ``heads`` for the duration of the block; the hooks are removed even on error.

    Args:
        model: A model from `nasalens.load_model`.
        heads: The heads to ablate.
        how: "zero", "mean" or "resample" (see `ablation_hooks`).
        reference: The batch or samples for "mean" and "resample".
        seed: Seed of "resample".
        template: Template to encode ``reference`` samples with.

    Yields:
        The hooks in use.

    Raises:
        NasalensError: As `ablation_hooks`.

    Example:
        >>> with nasalens.ablate(model, heads, how="mean", reference=batch):  # doctest: +SKIP
        ...     result = nasalens.evaluate(model, batch)
    """
    hooks = ablation_hooks(model, heads, how=how, reference=reference, seed=seed, template=template)
    with adapt(model).hooks(hooks):
        yield hooks


def head_means(
    model: object, reference: Batch, *, chunk_size: int = 16, progress: bool = False
) -> Float[Tensor, "layer head d_head"]:
    """Return every head's mean z over all real (non-padding) positions of ``reference``.

    This is what "mean" ablation writes: one pass over the reference, no unembedding.

    Args:
        model: A model from `nasalens.load_model`.
        reference: The batch to average over.
        chunk_size: Rows per forward pass.
        progress: Show a progress bar.

    Returns:
        The mean of each head's output before ``W_O``.
    """
    adapter = adapt(model)
    geo = adapter.info
    sums = torch.zeros(geo.n_layers, geo.n_heads, geo.d_head, dtype=torch.float64)
    mask: dict[str, Tensor] = {}

    def grab(z: Tensor, hook: object, layer: int) -> None:
        real = mask["real"].to(z.device)[:, :, None, None]
        sums[layer] += (z.float() * real).sum(dim=(0, 1)).double().cpu()

    hooks = [
        (adapter.hook_name(layer, "z"), at_layer(grab, layer)) for layer in range(geo.n_layers)
    ]
    total = math.ceil(len(reference) / chunk_size)
    with torch.no_grad():
        chunks = reference.chunks(chunk_size)
        for _, sub in tqdm(chunks, total=total, desc="head means", disable=not progress):
            mask["real"] = sub.attention_mask.float()
            adapter.run(sub.tokens, sub.attention_mask, hooks)
    return (sums / reference.attention_mask.sum().clamp_min(1)).float()


def _fill(idx: list[int], value: Tensor) -> HookFn:
    """A hook that writes ``value`` ([len(idx), d_head]) into heads ``idx`` at every position."""

    def hook(z: Tensor, hook: object) -> Tensor:
        z = z.clone()
        z[:, :, idx] = value.to(device=z.device, dtype=z.dtype)
        return z

    return hook


class _Donors:
    """Draws one donor reference row per row of each forward (never the row itself)."""

    def __init__(self, reference: Batch, tracker: RowTracker, seed: int) -> None:
        self.index = BatchIndex(reference, "resample")
        self.n = len(reference)
        self.tracker = tracker
        self.generator = torch.Generator().manual_seed(seed)
        self.forward = -1
        self.drawn = torch.zeros(0, dtype=torch.long)

    def current(self) -> Tensor:
        """The donors of the current forward, drawn on first use."""
        if self.forward != self.tracker.forward:
            self.forward = self.tracker.forward
            own = [self.index.rows.get(key) for key in self.tracker.keys()]
            u = torch.rand(len(own), generator=self.generator)
            drawn = []
            for row, x in zip(own, u.tolist(), strict=True):
                if row is None:
                    drawn.append(min(int(x * self.n), self.n - 1))
                else:
                    pick = min(int(x * (self.n - 1)), self.n - 2)
                    drawn.append(pick + (pick >= row))
            self.drawn = torch.tensor(drawn, dtype=torch.long)
        return self.drawn


def _resample(
    idx: list[int],
    donors: Tensor,
    lengths: Tensor,
    mean: Tensor,
    tracker: RowTracker,
    draw: _Donors,
) -> HookFn:
    """A hook that writes each row's donor z into heads ``idx``, aligned at the answer."""

    def hook(z: Tensor, hook: object) -> Tensor:
        answer = tracker.answer_pos().cpu()
        donor = draw.current()
        offset = answer[:, None] - torch.arange(z.shape[1])[None, :]
        valid = (offset >= 0) & (offset < lengths[donor][:, None])
        values = donors[donor[:, None], offset.clamp(0, donors.shape[1] - 1)]
        values = torch.where(valid[:, :, None, None], values, mean[None, None])
        z = z.clone()
        z[:, :, idx] = values.to(device=z.device, dtype=z.dtype)
        return z

    return hook
