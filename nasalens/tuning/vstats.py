"""What NASA watches on the validation set V while one head trains: NAS and the share of "Yes".

While head (l, h) trains, blocks below l do not change, so V's residual entering block l and
the NAS of every head below l are computed once per head (`ValView`); each measurement then
runs blocks l..L-1 only, reducing each attention pattern to NAS inside its hook and reading
the answer logits at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nasalens.metrics import candidate_logprobs
from nasalens.models import Head
from nasalens.models.interface import FwdHooks, ModelAdapter
from nasalens.prompts import Batch
from nasalens.scores import Region, nas_from_pattern, region_mask


@dataclass(frozen=True)
class VStats:
    """One measurement of V.

    Attributes:
        head_nas: NAS of the head being tuned (mean over V).
        model_nas: The model NAS the rules read (all heads or the selected ones; mean over V).
        all_nas: NAS summed over all heads (mean over V), logged whatever the rules read.
        share_yes: Share of V answered "Yes".
    """

    head_nas: float
    model_nas: float
    all_nas: float
    share_yes: float

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        """The four numbers by name, with an optional prefix."""
        return {
            f"{prefix}head_nas": self.head_nas,
            f"{prefix}model_nas": self.model_nas,
            f"{prefix}all_nas": self.all_nas,
            f"{prefix}share_yes": self.share_yes,
        }


def nas_hooks(
    adapter: ModelAdapter,
    batch: Batch,
    layers: Sequence[int],
    out: Tensor,
    *,
    eps: float,
    region: Region,
) -> FwdHooks:
    """Hooks that write NAS of ``layers`` for the rows of ``batch`` into ``out[:, layer]``."""
    device = adapter.device
    pos = batch.pos_cand.float().to(device)
    neg = batch.neg_cand.float().to(device)
    where = region_mask(batch, region).to(device)

    def reduce(pattern: Tensor, hook: object) -> None:
        layer = int(hook.name.split(".")[1])  # type: ignore[attr-defined]
        width, dev = pattern.shape[-1], pattern.device  # split models: the layer's device
        score, _, _ = nas_from_pattern(
            pattern.detach().float(),
            pos[:, :width].to(dev),
            neg[:, :width].to(dev),
            where[:, :width].to(dev),
            eps,
        )
        out[:, layer] = score.cpu()

    return [(adapter.hook_name(layer, "pattern"), reduce) for layer in layers]


class ValView:
    """V seen from block ``layer`` upwards, for one head's training.

    Args:
        adapter: The model being tuned.
        batch: V, encoded (right padding).
        layer: The layer of the head being tuned.
        chunk_size: Rows per forward pass.
        eps: NAS clamp.
        region: NAS region.
        scale: Factor applied to every NAS (1 / ln of the log base).
        selected: Heads whose NAS sum is "model NAS" (None: all heads).
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        batch: Batch,
        layer: int,
        *,
        chunk_size: int,
        eps: float,
        region: Region,
        scale: float,
        selected: Sequence[Head] | None,
    ) -> None:
        self.adapter, self.layer = adapter, layer
        self.eps, self.region, self.scale = eps, region, scale
        geo = adapter.info
        self.selected = selected
        self.chunks: list[tuple[Batch, Tensor, Tensor]] = []
        with torch.no_grad():
            for start in range(0, len(batch), chunk_size):
                sub = batch.select(slice(start, start + chunk_size))
                per = torch.zeros(len(sub), geo.n_layers, geo.n_heads)
                hooks = nas_hooks(adapter, sub, range(layer), per, eps=eps, region=region)
                resid = adapter.resid_pre(sub.tokens, sub.attention_mask, layer, hooks)
                self.chunks.append((sub, resid.detach(), per))

    def measure(self, head: Head) -> VStats:
        """Run blocks ``layer``..L-1 on V and return NAS of ``head``, model NAS and share Yes."""
        adapter = self.adapter
        geo = adapter.info
        per_all, diffs = [], []
        with torch.no_grad():
            for sub, resid, lower in self.chunks:
                per = lower.clone()
                hooks = nas_hooks(
                    adapter, sub, range(self.layer, geo.n_layers), per, eps=self.eps,
                    region=self.region,
                )  # fmt: skip
                final = adapter.forward_from(
                    resid, self.layer, sub.attention_mask, sub.answer_pos, hooks
                )
                logprobs = candidate_logprobs(adapter.unembed(final), sub)
                diff = logprobs[:, 0] - logprobs[:, 1]
                per_all.append(per)
                diffs.append(diff.cpu())
        per_sample = torch.cat(per_all) * self.scale
        all_nas = float(per_sample.sum(dim=(1, 2)).mean())
        if self.selected is None:
            model_nas = all_nas
        else:
            layers = torch.tensor([h.layer for h in self.selected])
            index = torch.tensor([h.head for h in self.selected])
            model_nas = float(per_sample[:, layers, index].sum(dim=1).mean())
        share = float((torch.cat(diffs) > 0).float().mean())
        head_nas = float(per_sample[:, head.layer, head.head].mean())
        return VStats(head_nas, model_nas, all_nas, share)


def nas_scale(log_base: float) -> float:
    """Factor that turns natural-log NAS into NAS of base ``log_base``."""
    return 1.0 / math.log(log_base)
