"""The Negative Attention Score (NAS) of every layer and head, in one lean batched pass.

For one sample and head (l, h) with attention pattern A (Yu et al. 2025, eq. 1):
``NAS = sum_{i >= L_I} (A[i, t_pos] + A[i, t_neg]) * log(A[i, t_neg] / A[i, t_pos])``,
with multi-token candidates summing their columns and both attentions clamped at ``eps``.
A hook on each ``blocks.{l}.attn.hook_pattern`` reduces the pattern to these sums at once, so
the full ``[batch, head, query, key]`` pattern of all layers is never held.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.models import Head, adapt
from nasalens.models.interface import FwdHooks, ModelAdapter
from nasalens.prompts import Batch, Template, encode

#: Attention below this is treated as this before the log (the paper leaves it open).
DEFAULT_EPS = 1e-6

#: Which query positions NAS sums over: all from L_I to the answer (the paper), or the answer
#: position only (what the next token is read from).
Region = Literal["after_instruction", "answer"]


@dataclass(frozen=True)
class NasScores:
    """NAS of every sample, layer and head, with the attention sums behind it.

    Attributes:
        per_sample: NAS per sample, layer and head; positive when the head attends more to the
            negative candidate ("No") than to the positive one.
        attn_pos: Attention on the positive candidate, summed over the region's query positions.
        attn_neg: Attention on the negative candidate, summed likewise.
        sample_ids: The samples' ids, in row order.
        eps: The clamp applied before the log.
        region: The query positions summed over.
    """

    per_sample: Float[Tensor, "sample layer head"]
    attn_pos: Float[Tensor, "sample layer head"]
    attn_neg: Float[Tensor, "sample layer head"]
    sample_ids: tuple[str, ...]
    eps: float = DEFAULT_EPS
    region: Region = "after_instruction"

    def __post_init__(self) -> None:
        """Check that the three tensors and the ids agree in shape."""
        shape = self.per_sample.shape
        if self.attn_pos.shape != shape or self.attn_neg.shape != shape:
            raise AssertionError(f"NAS and attention sums differ in shape: {shape}")
        if len(self.sample_ids) != shape[0]:
            raise AssertionError(f"{len(self.sample_ids)} ids for {shape[0]} samples")

    def __repr__(self) -> str:
        n, layers, heads = self.per_sample.shape
        return (
            f"NasScores({n} samples x {layers} layers x {heads} heads, "
            f"model NAS {self.model:.3f}, region={self.region!r})"
        )

    def __len__(self) -> int:
        return self.per_sample.shape[0]

    @property
    def head(self) -> Float[Tensor, "layer head"]:
        """Single-head NAS: the mean over samples."""
        return self.per_sample.mean(dim=0)

    @property
    def model_per_sample(self) -> Float[Tensor, " sample"]:
        """Model NAS of each sample: the sum over all heads."""
        return self.per_sample.sum(dim=(1, 2))

    @property
    def model(self) -> float:
        """Model NAS: the sum over heads, averaged over samples."""
        return float(self.model_per_sample.mean())

    def of_heads(self, heads: Sequence[Head]) -> Float[Tensor, " sample"]:
        """NAS summed over ``heads`` only, per sample."""
        if not heads:
            return torch.zeros(len(self))
        layers = torch.tensor([h[0] for h in heads])
        index = torch.tensor([h[1] for h in heads])
        return self.per_sample[:, layers, index].sum(dim=1)

    def select(self, rows: Sequence[int] | Tensor) -> NasScores:
        """Return the scores of some samples."""
        index = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        return NasScores(
            self.per_sample[index],
            self.attn_pos[index],
            self.attn_neg[index],
            tuple(self.sample_ids[int(i)] for i in index),
            self.eps,
            self.region,
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per head: layer, head, nas, attn_pos, attn_neg (means over samples)."""
        n_layers, n_heads = self.head.shape
        layer, head = torch.meshgrid(torch.arange(n_layers), torch.arange(n_heads), indexing="ij")
        return pd.DataFrame(
            {
                "layer": layer.flatten().numpy(),
                "head": head.flatten().numpy(),
                "nas": self.head.flatten().numpy(),
                "attn_pos": self.attn_pos.mean(dim=0).flatten().numpy(),
                "attn_neg": self.attn_neg.mean(dim=0).flatten().numpy(),
            }
        )


def nas_from_pattern(
    pattern: Float[Tensor, "batch head query key"],
    pos_cand: Float[Tensor, "batch key"],
    neg_cand: Float[Tensor, "batch key"],
    region: Float[Tensor, "batch query"],
    eps: float = DEFAULT_EPS,
) -> tuple[Float[Tensor, "batch head"], Float[Tensor, "batch head"], Float[Tensor, "batch head"]]:
    """Reduce one layer's attention pattern to NAS and the two attention sums.

    Args:
        pattern: Attention probabilities of one layer.
        pos_cand: 1 at the positive candidate's key positions (0 elsewhere).
        neg_cand: 1 at the negative candidate's key positions.
        region: 1 at the query positions summed over (L_I..answer, real tokens only).
        eps: Clamp before the log.

    Returns:
        NAS, attention on the positive and on the negative candidate, each summed over the
        region, per row and head.
    """
    a_pos = torch.einsum("bhqk,bk->bhq", pattern, pos_cand)
    a_neg = torch.einsum("bhqk,bk->bhq", pattern, neg_cand)
    log_ratio = a_neg.clamp_min(eps).log() - a_pos.clamp_min(eps).log()
    weight = region[:, None, :]
    score = ((a_pos + a_neg) * log_ratio * weight).sum(dim=-1)
    return score, (a_pos * weight).sum(dim=-1), (a_neg * weight).sum(dim=-1)


def region_mask(batch: Batch, region: Region = "after_instruction") -> Float[Tensor, "batch pos"]:
    """Return 1 at the query positions NAS sums over: L_I..answer (or the answer only)."""
    pos = torch.arange(batch.tokens.shape[1])[None, :]
    if region == "answer":
        mask = pos == batch.answer_pos[:, None]
    elif region == "after_instruction":
        mask = (pos >= batch.instr_end[:, None]) & (pos <= batch.answer_pos[:, None])
    else:
        raise NasalensError(f"region must be 'after_instruction' or 'answer', got {region!r}")
    return (mask & batch.attention_mask.bool()).float()


def nas(
    model: object,
    samples: Batch | Sequence[Sample],
    template: Template | None = None,
    *,
    chunk_size: int = 16,
    eps: float = DEFAULT_EPS,
    region: Region = "after_instruction",
    progress: bool = True,
    fwd_hooks: FwdHooks = (),
) -> NasScores:
    """Compute NAS for every sample, layer and head.

    One forward pass per chunk, without gradients, stopping before the unembedding; each
    layer's pattern is reduced to the candidate columns inside its hook and then dropped.

    Args:
        model: A model from `nasalens.load_model`.
        samples: An encoded batch, or samples to encode with ``template``.
        template: The template for samples (default: the paper's Prompt I).
        chunk_size: Rows per forward pass.
        eps: Attention is clamped at this value before the log.
        region: "after_instruction" (the paper: positions L_I..answer) or "answer" (the answer
            position only).
        progress: Show a progress bar.
        fwd_hooks: Extra hooks active during the passes (e.g. an ablation).

    Returns:
        The scores; ``.head`` is single-head NAS and ``.model`` the model NAS.

    Raises:
        NasalensError: When the template has no candidates or eps is not positive.

    Example:
        >>> scores = nasalens.nas(model, nasalens.data.builtin("probe"))  # doctest: +SKIP
        >>> scores.head.shape                                              # doctest: +SKIP
        torch.Size([30, 9])
    """
    if not eps > 0 or math.isinf(eps):
        raise NasalensError(f"eps must be a small positive number, got {eps}")
    adapter = adapt(model)
    batch = samples if isinstance(samples, Batch) else encode(model, samples, template)
    if not batch.pos_cand.any(dim=1).all() or not batch.neg_cand.any(dim=1).all():
        raise NasalensError(
            f"template {batch.template.name!r} marks no candidate tokens; NAS needs a binary "
            "template"
        )
    geo = adapter.info
    shape = (len(batch), geo.n_layers, geo.n_heads)
    scores, attn_pos, attn_neg = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)
    chunked = batch.chunks(chunk_size)  # checks chunk_size before the division below
    total = math.ceil(len(batch) / chunk_size)
    with torch.no_grad():
        chunks = tqdm(chunked, total=total, desc="NAS", disable=not progress)
        for index, sub in chunks:
            result = _chunk(adapter, sub, eps, region, fwd_hooks)
            scores[index], attn_pos[index], attn_neg[index] = result
    ids = tuple(s.id for s in batch.samples)
    return NasScores(scores, attn_pos, attn_neg, ids, eps, region)


def _chunk(
    adapter: ModelAdapter, batch: Batch, eps: float, region: Region, fwd_hooks: FwdHooks
) -> tuple[Tensor, Tensor, Tensor]:
    """NAS and attention sums of one chunk, ``[batch, layer, head]`` each."""
    geo = adapter.info
    device = adapter.device
    pos = batch.pos_cand.float().to(device)
    neg = batch.neg_cand.float().to(device)
    where = region_mask(batch, region).to(device)
    # Only query rows from the earliest L_I onwards can be in the region.
    first = int(where.any(dim=0).nonzero()[0])
    out = torch.zeros(3, len(batch), geo.n_layers, geo.n_heads)

    def reduce(pattern: Tensor, hook: object) -> None:
        layer = int(hook.name.split(".")[1])  # type: ignore[attr-defined]
        rows = pattern[:, :, first:, :].float()
        result = nas_from_pattern(rows, pos, neg, where[:, first:], eps)
        for i, value in enumerate(result):
            out[i, :, layer] = value.cpu()

    hooks = [(adapter.hook_name(layer, "pattern"), reduce) for layer in range(geo.n_layers)]
    adapter.run(batch.tokens, batch.attention_mask, [*fwd_hooks, *hooks])
    return out[0], out[1], out[2]
