"""What an intervention's hooks know about the rows of the forward pass they run in.

A hook sees activations, not the batch: no attention mask, no sample ids, rows possibly
re-ordered and re-padded by `Batch.chunks`. `RowTracker` recovers, inside each forward, every
row's token ids (from ``embed.hook_in``) and real positions (masked keys show as
``finfo.min`` in ``hook_attn_scores``), so that interventions can align positions by their
offset from the answer position and find which row of a bound batch a row is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from nasalens.errors import NasalensError
from nasalens.models import Head
from nasalens.models.interface import HookFn, ModelAdapter
from nasalens.prompts import Batch

Hooks = list[tuple[str, HookFn]]

#: Which positions an intervention touches, counted back from each row's answer position:
#: L_I..answer ("after_instruction", where NAS is measured), the answer only, or every real one.
PatchRegion = Literal["after_instruction", "answer", "all"]


def by_layer(heads: Sequence[Head]) -> dict[int, list[int]]:
    """Group heads by layer: ``{layer: [head indices]}`` in ascending layer order."""
    out: dict[int, list[int]] = {}
    for layer, head in sorted(heads):
        out.setdefault(layer, []).append(head)
    return out


def row_key(tokens: Int[Tensor, " pos"], real: Bool[Tensor, " pos"]) -> tuple[int, ...]:
    """The identity of a row: its real (non-padding) token ids, in order."""
    return tuple(int(t) for t in tokens[real.to(tokens.device)].tolist())


def region_offsets(batch: Batch, region: PatchRegion) -> Int[Tensor, " batch"]:
    """Return how many positions, counted back from each row's answer, lie in ``region``.

    "answer": the answer position only (1); "after_instruction": L_I..answer; "all": every
    real position.
    """
    if region == "answer":
        return torch.ones(len(batch), dtype=torch.long)
    if region == "after_instruction":
        return batch.answer_pos - batch.instr_end + 1
    if region == "all":
        first = batch.attention_mask.argmax(dim=1)
        return batch.answer_pos - first + 1
    raise NasalensError(f"region must be 'after_instruction', 'answer' or 'all', got {region!r}")


class RowTracker:
    """Records, in each forward pass, the token ids and real positions of its rows.

    Add `hooks()` before the intervention's own hooks; ``layer`` must be the lowest layer the
    intervention touches (its ``hook_attn_scores`` fires before that layer's pattern and z).
    """

    def __init__(self, layer: int, tokens_hook: str = "embed.hook_in") -> None:
        self.layer = layer
        self.tokens_hook = tokens_hook
        self.ids: Tensor | None = None
        self.real: Tensor | None = None
        self.forward = 0

    def hooks(self) -> Hooks:
        """The two hooks that record ids and real positions."""
        return [
            (self.tokens_hook, self._grab_ids),
            (f"blocks.{self.layer}.attn.hook_attn_scores", self._grab_mask),
        ]

    def _grab_ids(self, ids: Tensor, hook: object) -> None:
        self.ids, self.real = ids.detach(), None
        self.forward += 1

    def _grab_mask(self, scores: Tensor, hook: object) -> None:
        # The last query row may attend to every real key; padding keys hold finfo.min.
        last = scores[:, 0, -1, :].detach()
        self.real = last > torch.finfo(last.dtype).min / 2

    def _need(self) -> tuple[Tensor, Tensor]:
        if self.ids is None or self.real is None:
            raise AssertionError("row tracker hooks did not fire before the intervention")
        if self.ids.shape != self.real.shape:
            raise AssertionError(f"ids {tuple(self.ids.shape)} vs mask {tuple(self.real.shape)}")
        return self.ids, self.real

    def answer_pos(self) -> Tensor:
        """The last real position of each row of the current forward."""
        _, real = self._need()
        width = real.shape[1]
        index = torch.arange(width, device=real.device).expand_as(real)
        return torch.where(real, index, -1).max(dim=1).values

    def keys(self) -> list[tuple[int, ...]]:
        """The identity (`row_key`) of each row of the current forward."""
        ids, real = self._need()
        return [row_key(ids[i], real[i]) for i in range(ids.shape[0])]


class BatchIndex:
    """Finds which row of a bound batch each row of a forward pass is (by its tokens)."""

    def __init__(self, batch: Batch, what: str) -> None:
        self.what = what
        self.rows: dict[tuple[int, ...], int] = {}
        for i in range(len(batch)):
            self.rows.setdefault(row_key(batch.tokens[i], batch.attention_mask[i].bool()), i)
        self.n = len(batch)

    def lookup(self, keys: list[tuple[int, ...]]) -> list[int]:
        """Row indices in the bound batch.

        Raises:
            NasalensError: When a row of the forward is not in the bound batch.
        """
        out = []
        for key in keys:
            row = self.rows.get(key)
            if row is None:
                raise NasalensError(
                    f"a row of this forward pass ({len(key)} tokens) is not in the batch the "
                    f"{self.what} hooks were built for ({self.n} rows); run that batch (any "
                    "order or chunking), or build the hooks for the batch you run"
                )
            out.append(row)
        return out


def aligned_z(
    adapter: ModelAdapter,
    source: Batch,
    layers: dict[int, list[int]],
    *,
    chunk_size: int = 16,
) -> dict[int, Tensor]:
    """Return each row's z of the heads of every layer, the answer position first.

    Returns:
        ``{layer: [n, longest, k, d_head]}``: index ``o`` holds the position ``o`` tokens before
        the row's answer (zeros past the row's first real token).
    """
    lengths = source.attention_mask.sum(dim=1)
    longest = int(lengths.max())
    d_head = adapter.info.d_head
    out = {
        layer: torch.zeros(len(source), longest, len(idx), d_head) for layer, idx in layers.items()
    }
    chunk: dict[str, Tensor] = {}

    def grab(z: Tensor, hook: object, layer: int) -> None:
        heads = z[:, :, layers[layer]].float().cpu()
        for row, where in enumerate(chunk["index"].tolist()):
            real = heads[row][chunk["mask"][row]]
            out[layer][where, : real.shape[0]] = real.flip(0)

    hooks = [(adapter.hook_name(layer, "z"), at_layer(grab, layer)) for layer in layers]
    with torch.no_grad():
        for index, sub in source.chunks(chunk_size):
            chunk.update(index=index, mask=sub.attention_mask.bool())
            adapter.run(sub.tokens, sub.attention_mask, hooks, stop_at_layer=max(layers) + 1)
    return out


def at_layer(fn: Callable[[Tensor, object, int], None], layer: int) -> HookFn:
    """A hook calling ``fn(x, hook, layer)``."""

    def hook(x: Tensor, hook: object) -> None:
        fn(x, hook, layer)

    return hook
