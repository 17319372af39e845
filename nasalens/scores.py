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
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.artifacts import read_header, read_tensors, write_json, write_tensors
from nasalens.data.sample import Sample
from nasalens.deprecation import keyword_only
from nasalens.errors import NasalensError
from nasalens.models import HeadLike, adapt, as_heads
from nasalens.models.interface import FwdHooks, ModelAdapter
from nasalens.prompts import Batch, Template, encode

#: Version of the files `NasScores.save` writes.
FORMAT_VERSION = 1

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

    def of_heads(self, heads: Sequence[HeadLike]) -> Float[Tensor, " sample"]:
        """NAS summed over ``heads`` only, per sample (`heads_sum`)."""
        return heads_sum(self.per_sample, heads)

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

    def save(self, folder: str | Path) -> None:
        """Write the scores to ``folder``: tensors as safetensors, the rest as JSON.

        `load` reads them back equal (bit for bit).
        """
        folder = Path(folder)
        tensors = {
            "per_sample": self.per_sample,
            "attn_pos": self.attn_pos,
            "attn_neg": self.attn_neg,
        }
        write_tensors(folder / "nas.safetensors", tensors)
        write_json(
            folder / "nas.json",
            {
                "format": "nasalens.NasScores",
                "version": FORMAT_VERSION,
                "sample_ids": list(self.sample_ids),
                "eps": self.eps,
                "region": self.region,
            },
        )

    @classmethod
    def load(cls, folder: str | Path) -> NasScores:
        """Read scores written by `save` (e.g. by ``nasalens heads --out``).

        Raises:
            NasalensError: When a file is missing, malformed or of another format version.
        """
        folder = Path(folder)
        meta = read_header(folder / "nas.json", "NasScores", FORMAT_VERSION)
        tensors = read_tensors(folder / "nas.safetensors")
        try:
            return cls(
                tensors["per_sample"],
                tensors["attn_pos"],
                tensors["attn_neg"],
                tuple(str(i) for i in meta["sample_ids"]),
                float(meta["eps"]),
                meta["region"],
            )
        except (KeyError, TypeError, ValueError, AssertionError) as err:
            raise NasalensError(f"{folder}: NAS files do not fit together ({err})") from err

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


def heads_sum(
    per_sample: Float[Tensor, "sample layer head"], heads: Sequence[HeadLike]
) -> Float[Tensor, " sample"]:
    """NAS summed over ``heads`` only, per sample: "model NAS" of a head selection."""
    chosen = as_heads(heads)
    if not chosen:
        return torch.zeros(per_sample.shape[0])
    layers = torch.tensor([h.layer for h in chosen])
    index = torch.tensor([h.head for h in chosen])
    return per_sample[:, layers, index].sum(dim=1)


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
        region, per row and head; float32 whatever the pattern's dtype.
    """
    pattern = pattern.float()  # a bfloat16 pattern: the log-ratio in float32
    pos_cand, neg_cand, region = pos_cand.float(), neg_cand.float(), region.float()
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


@keyword_only("template", 2)
def nas(
    model: object,
    samples: Batch | Sequence[Sample],
    *,
    template: Template | None = None,
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
    batch = samples if isinstance(samples, Batch) else encode(model, samples, template=template)
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


def nas_hooks(
    adapter: ModelAdapter,
    batch: Batch,
    out: Float[Tensor, "3 batch layer head"],
    *,
    layers: Sequence[int] | None = None,
    eps: float = DEFAULT_EPS,
    region: Region = "after_instruction",
) -> FwdHooks:
    """Hooks that reduce each layer's pattern to NAS as a forward pass runs: NAS's one hook.

    The hook on ``blocks.{l}.attn.hook_pattern`` writes NAS, the attention on the positive and
    on the negative candidate of every row and head into ``out[0 | 1 | 2, :, l]`` (on the CPU)
    and drops the pattern; only query rows from the earliest region start are read. The
    candidate and region masks follow the pattern's width, so a pass over a narrower view of
    the batch (trailing padding cut) reads the same values.

    Args:
        adapter: The model.
        batch: The rows of the pass (candidates, L_I and answer positions).
        out: Where the three reductions go, ``[3, batch, layer, head]``.
        layers: Layers to hook (default: all).
        eps: Clamp before the log.
        region: Query positions summed over.
    """
    device = adapter.device
    pos = batch.pos_cand.float().to(device)
    neg = batch.neg_cand.float().to(device)
    where = region_mask(batch, region).to(device)
    seen = where.any(dim=0).nonzero()
    first = int(seen[0]) if len(seen) else 0  # only rows from the earliest L_I can count

    def reduce(pattern: Tensor, hook: object) -> None:
        layer = int(hook.name.split(".")[1])  # type: ignore[attr-defined]
        width = pattern.shape[-1]
        rows = pattern[:, :, first:width, :].detach().float()
        result = nas_from_pattern(rows, pos[:, :width], neg[:, :width], where[:, first:width], eps)
        for i, value in enumerate(result):
            out[i, :, layer] = value.cpu()

    chosen = range(adapter.info.n_layers) if layers is None else layers
    return [(adapter.hook_name(layer, "pattern"), reduce) for layer in chosen]


def _chunk(
    adapter: ModelAdapter, batch: Batch, eps: float, region: Region, fwd_hooks: FwdHooks
) -> tuple[Tensor, Tensor, Tensor]:
    """NAS and attention sums of one chunk, ``[batch, layer, head]`` each."""
    geo = adapter.info
    out = torch.zeros(3, len(batch), geo.n_layers, geo.n_heads)
    hooks = nas_hooks(adapter, batch, out, eps=eps, region=region)
    adapter.run(batch.tokens, batch.attention_mask, [*fwd_hooks, *hooks])
    return out[0], out[1], out[2]
