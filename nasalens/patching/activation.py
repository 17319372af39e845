"""Activation patching: a head's output (``hook_z``) copied from a source run into a target run.

Source and target batches are paired row by row (row ``i`` of the source patches row ``i`` of
the target) and may differ in length. Positions align by their offset from the answer
position: target position ``answer - o`` receives source position ``answer' - o``, for every
``o`` that lies inside the region in both rows (default L_I..answer: the question and the
answer cue, which a k-shot or candidate-swapped source shares with the target as text).
Positions outside it keep the target's own activations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from nasalens.errors import NasalensError
from nasalens.models import HeadLike, adapt
from nasalens.models.interface import HookFn
from nasalens.patching.rows import (
    BatchIndex,
    Hooks,
    PatchRegion,
    RowTracker,
    aligned_z,
    by_layer,
    region_offsets,
)
from nasalens.prompts import Batch


def patch_counts(source: Batch, target: Batch, region: PatchRegion) -> Tensor:
    """Return, per row pair, how many positions back from the answer are patched.

    Raises:
        NasalensError: When the batches have different numbers of rows.
    """
    if len(source) != len(target):
        raise NasalensError(
            f"source has {len(source)} rows and target {len(target)}; patching pairs row i of "
            "the source with row i of the target, so pass batches of the same samples"
        )
    return torch.minimum(region_offsets(source, region), region_offsets(target, region))


def patch_hooks(
    model: object,
    heads: Sequence[HeadLike],
    source: Batch,
    target: Batch,
    *,
    region: PatchRegion = "after_instruction",
    chunk_size: int = 16,
) -> Hooks:
    """Return hooks that patch the heads' output from ``source`` into runs of ``target``.

    The source run happens now, once. The hooks work on any chunking or padding of ``target``
    (each row is found by its tokens), e.g. inside `nasalens.evaluate`.

    Args:
        model: A model from `nasalens.load_model`.
        heads: The heads to patch.
        source: The run to copy from (e.g. the clean prompts).
        target: The run to patch (e.g. the corrupt prompts), paired row by row with ``source``.
        region: Positions patched, counted back from the answer (see the module docstring).
        chunk_size: Rows per forward pass over the source.

    Returns:
        ``(hook name, function)`` pairs for ``run_with_hooks`` or ``fwd_hooks=``.

    Raises:
        NasalensError: When the batches differ in rows, a head is outside the model, or the
            region is unknown; while running, on a row that is not in ``target``.

    Example:
        >>> hooks = nasalens.patching.patch_hooks(model, [Head(12, 3)], clean, corrupt)  # doctest: +SKIP
    """  # noqa: E501
    adapter = adapt(model)
    checked = adapter.info.check_heads(heads)
    counts = patch_counts(source, target, region)
    if not checked:
        return []
    layers = by_layer(checked)
    values = aligned_z(adapter, source, layers, chunk_size=chunk_size)
    tracker = RowTracker(min(layers), adapt(model).tokens_hook_name())
    index = BatchIndex(target, "patching")
    hooks = tracker.hooks()
    for layer, idx in layers.items():
        hooks.append(
            (adapter.hook_name(layer, "z"), _patch(idx, values[layer], counts, tracker, index))
        )
    return hooks


@contextmanager
def patch(
    model: object,
    heads: Sequence[HeadLike],
    source: Batch,
    target: Batch,
    *,
    region: PatchRegion = "after_instruction",
) -> Iterator[Hooks]:
    """Patch the heads' output from ``source`` into runs of ``target`` inside the block.

    Yields:
        The hooks in use; they are removed on exit, also when the block raises.

    Raises:
        NasalensError: As `patch_hooks`.

    Example:
        >>> with nasalens.patching.patch(model, heads, clean, corrupt):  # doctest: +SKIP
        ...     patched = nasalens.evaluate(model, corrupt)
    """
    hooks = patch_hooks(model, heads, source, target, region=region)
    with adapt(model).hooks(hooks):
        yield hooks


def _patch(
    idx: list[int], values: Tensor, counts: Tensor, tracker: RowTracker, index: BatchIndex
) -> HookFn:
    """A z hook writing the paired source rows into heads ``idx`` of each target row."""

    def hook(z: Tensor, hook: object) -> Tensor:
        rows = torch.tensor(index.lookup(tracker.keys()))
        answer = tracker.answer_pos().cpu()
        offset = answer[:, None] - torch.arange(z.shape[1])[None, :]
        inside = (offset >= 0) & (offset < counts[rows][:, None])
        patched = values[rows[:, None], offset.clamp(0, values.shape[1] - 1)]
        z = z.clone()
        keep = z[:, :, idx]
        mask = inside[:, :, None, None].to(z.device)
        z[:, :, idx] = torch.where(mask, patched.to(device=z.device, dtype=z.dtype), keep)
        return z

    return hook
