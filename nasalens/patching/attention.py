"""Re-weighting a head's attention between the two candidates (``hook_pattern``).

For each chosen head and each query position of the region (default: L_I..answer, where NAS is
measured), with ``a_pos``/``a_neg`` the attention on the positive/negative candidate's tokens:

- "move": a share ``fraction`` of ``a_neg`` moves to the positive candidate. The negative
  tokens keep ``(1 - fraction)`` of their attention; the moved mass spreads over the positive
  tokens in proportion to their attention (evenly when they have none).
- "equalize": both candidates get ``(a_pos + a_neg) / 2``, each candidate's tokens keeping
  their proportions; ``(a_neg - a_pos) / 2`` moves from the negative to the positive.

Every other entry is unchanged, so each row still sums to 1. The hooks are bound to one batch:
they find each row's candidates by the row's tokens, in any chunking or padding of that batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from nasalens.errors import NasalensError
from nasalens.models import HeadLike, adapt
from nasalens.models.interface import HookFn
from nasalens.patching.ablation import check_how
from nasalens.patching.rows import (
    BatchIndex,
    Hooks,
    PatchRegion,
    RowTracker,
    by_layer,
    region_offsets,
)
from nasalens.prompts import Batch

AttentionKind = Literal["move", "equalize"]
ATTENTION_KINDS: tuple[str, ...] = ("move", "equalize")


def redistribute(
    rows: Float[Tensor, "head query key"],
    pos: Bool[Tensor, " key"],
    neg: Bool[Tensor, " key"],
    *,
    how: AttentionKind = "move",
    fraction: float = 1.0,
) -> Float[Tensor, "head query key"]:
    """Move attention from the negative to the positive candidate's keys in every row.

    Args:
        rows: Attention rows (each sums to 1 over keys).
        pos: The positive candidate's key positions.
        neg: The negative candidate's key positions.
        how: "move" (a share ``fraction`` of the negative mass) or "equalize".
        fraction: Share of the negative candidate's attention that "move" moves.

    Returns:
        The new rows; entries outside the candidates are unchanged and rows keep their sums.
    """
    pos_f, neg_f = pos.to(rows.dtype), neg.to(rows.dtype)
    a_pos = (rows * pos_f).sum(-1, keepdim=True)
    a_neg = (rows * neg_f).sum(-1, keepdim=True)
    if how == "move":
        moved = fraction * a_neg
        new_neg = rows * (1 - fraction)
        new_pos = rows + moved * _shares(rows, pos_f, a_pos)
    else:
        target = (a_pos + a_neg) / 2
        new_neg = target * _shares(rows, neg_f, a_neg)
        new_pos = target * _shares(rows, pos_f, a_pos)
    return torch.where(neg, new_neg, torch.where(pos, new_pos, rows))


def _shares(rows: Tensor, mask: Tensor, mass: Tensor) -> Tensor:
    """Each candidate token's share of its candidate's attention (even when it has none)."""
    even = mask / mask.sum().clamp_min(1)
    return torch.where(mass > 0, rows * mask / mass.clamp_min(1e-30), even)


def attention_hooks(
    model: object,
    heads: Sequence[HeadLike],
    batch: Batch,
    *,
    how: AttentionKind = "move",
    fraction: float = 1.0,
    region: PatchRegion = "after_instruction",
) -> Hooks:
    """Return hooks that move the heads' attention from the negative to the positive candidate.

    Args:
        model: A model from `nasalens.load_model`.
        heads: The heads to change.
        batch: The batch the hooks will run on (candidates and L_I are read from it).
        how: "move" or "equalize" (see the module docstring).
        fraction: Share of the negative candidate's attention that "move" moves, in [0, 1].
        region: Query positions changed: "after_instruction" (L_I..answer), "answer", "all".

    Returns:
        ``(hook name, function)`` pairs for ``run_with_hooks`` or ``fwd_hooks=``.

    Raises:
        NasalensError: On an unknown ``how`` or region, a fraction outside [0, 1], a head
            outside the model, or a batch without candidates; while running, on a row that is
            not in ``batch``.
    """
    check_how(how, ATTENTION_KINDS, "attention intervention")
    if not 0.0 <= fraction <= 1.0:
        raise NasalensError(f"fraction must be in [0, 1], got {fraction}")
    adapter = adapt(model)
    checked = adapter.info.check_heads(heads)
    count = region_offsets(batch, region)
    if not (batch.pos_cand.any(dim=1).all() and batch.neg_cand.any(dim=1).all()):
        raise NasalensError(
            f"template {batch.template.name!r} marks no candidate tokens; attention "
            "interventions need a binary template"
        )
    if not checked:
        return []
    layers = by_layer(checked)
    tracker = RowTracker(min(layers), adapt(model).tokens_hook_name())
    index = BatchIndex(batch, "attention")
    hooks = tracker.hooks()
    for layer, idx in layers.items():
        fn = _reweight(idx, batch, count, tracker, index, how, fraction)
        hooks.append((adapter.hook_name(layer, "pattern"), fn))
    return hooks


@contextmanager
def move_attention(
    model: object,
    heads: Sequence[HeadLike],
    batch: Batch,
    *,
    how: AttentionKind = "move",
    fraction: float = 1.0,
    region: PatchRegion = "after_instruction",
) -> Iterator[Hooks]:
    """Move the heads' attention between candidates inside the block (see `attention_hooks`).

    Yields:
        The hooks in use; they are removed on exit, also when the block raises.

    Raises:
        NasalensError: As `attention_hooks`.

    Example:
        >>> with nasalens.patching.move_attention(model, heads, batch, how="equalize"):  # doctest: +SKIP
        ...     result = nasalens.evaluate(model, batch)
    """  # noqa: E501
    hooks = attention_hooks(model, heads, batch, how=how, fraction=fraction, region=region)
    with adapt(model).hooks(hooks):
        yield hooks


def _reweight(
    idx: list[int],
    batch: Batch,
    count: Tensor,
    tracker: RowTracker,
    index: BatchIndex,
    how: AttentionKind,
    fraction: float,
) -> HookFn:
    """A pattern hook re-weighting heads ``idx`` of each row found in ``batch``."""
    heads = torch.tensor(idx)
    pos_off = [batch.answer_pos[r] - batch.pos_cand[r].nonzero()[:, 0] for r in range(len(batch))]
    neg_off = [batch.answer_pos[r] - batch.neg_cand[r].nonzero()[:, 0] for r in range(len(batch))]

    def hook(pattern: Tensor, hook: object) -> Tensor:
        rows = index.lookup(tracker.keys())
        answer = tracker.answer_pos().tolist()
        out = pattern.clone()
        width = pattern.shape[-1]
        for b, (r, a) in enumerate(zip(rows, answer, strict=True)):
            pos = torch.zeros(width, dtype=torch.bool, device=pattern.device)
            neg = torch.zeros_like(pos)
            # candidate offsets are CPU tensors: index on the layer's device
            pos[(a - pos_off[r]).to(pos.device)] = True
            neg[(a - neg_off[r]).to(neg.device)] = True
            queries = torch.arange(a - int(count[r]) + 1, a + 1, device=pattern.device)
            sub = out[b, heads.to(pattern.device)][:, queries]
            # float32 arithmetic, rounded back to the model's dtype on the write
            new = redistribute(sub.float(), pos, neg, how=how, fraction=fraction)
            out[b, heads[:, None].to(pattern.device), queries[None, :]] = new.to(out.dtype)
        return out

    return hook
