"""The activation-patching sweep: how much of the clean-corrupt logit difference each head restores.

The pairing (`contrast`): *corrupt* is the biased prompt (the paper's Prompt I) and *clean* the
same question in a prompt the model answers "Yes" more readily: with a k-shot prefix of solved
examples whose answer is "Yes" ("yes_shots", the default), or with the instruction's candidates
in swapped order, "No or Yes" ("swap"). For every head, its output (``hook_z``) is copied from
the clean run into the corrupt run at the aligned positions of `nasalens.patching.patch` and
the logit difference LD = log P(positive) - log P(negative) at the answer is read.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.data.builtin_sets import builtin_questions
from nasalens.data.sample import Sample
from nasalens.deprecation import renamed_arguments
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet
from nasalens.metrics import answer_logprobs, candidate_logprobs
from nasalens.models import Head, adapt
from nasalens.models.interface import HookFn, ModelAdapter
from nasalens.patching.activation import patch_counts
from nasalens.patching.rows import PatchRegion, aligned_z
from nasalens.prompts import Batch, Template, binary, encode

logger = logging.getLogger(__name__)

ContrastKind = Literal["yes_shots", "swap"]
#: Resumed runs must reproduce the corrupt run's logit difference to this (else: full runs).
RESUME_ATOL = 1e-3


@dataclass(frozen=True)
class PatchResult:
    """Logit differences of the corrupt run with each head patched from the clean run.

    Attributes:
        patched: LD of each pair with one head's output patched.
        clean: LD of each clean prompt.
        corrupt: LD of each corrupt prompt.
        sample_ids: The pairs' sample ids.
        region: The positions patched (see `nasalens.patching.patch`).
        resumed: Whether every layer was run from the cached residual (checked against the
            corrupt run), rather than as a full forward pass.
    """

    patched: Float[Tensor, "sample layer head"]
    clean: Float[Tensor, " sample"]
    corrupt: Float[Tensor, " sample"]
    sample_ids: tuple[str, ...]
    region: str
    resumed: bool

    def __post_init__(self) -> None:
        """Check that every tensor has one entry per pair."""
        n = self.patched.shape[0]
        if self.clean.shape != (n,) or self.corrupt.shape != (n,) or len(self.sample_ids) != n:
            raise AssertionError("patching result fields disagree on the number of pairs")

    def __repr__(self) -> str:
        n, layers, heads = self.patched.shape
        best = ", ".join(str(h) for h in self.top(3))
        return (
            f"PatchResult({n} pairs x {layers} layers x {heads} heads, gap {self.gap:.3f}, "
            f"top {best})"
        )

    @property
    def gap(self) -> float:
        """Mean clean LD minus mean corrupt LD: what full restoration would add."""
        return float(self.clean.mean() - self.corrupt.mean())

    @property
    def restored(self) -> Float[Tensor, "layer head"]:
        """Share of the gap each head restores: (mean patched - mean corrupt) / gap.

        1 means the head alone brings the corrupt run to the clean LD; negative values move
        it further towards "No". Ratios of means over pairs, not means of per-pair ratios.
        """
        return (self.patched.mean(dim=0) - self.corrupt.mean()) / self.gap

    def ranking(self) -> HeadSet:
        """Every head ranked by the share of the gap it restores, best first."""
        flat = self.restored.flatten()
        n_heads = self.patched.shape[2]
        order = torch.argsort(flat, descending=True, stable=True)
        return HeadSet(
            tuple(Head(int(i) // n_heads, int(i) % n_heads) for i in order),
            {"restored": tuple(float(flat[i]) for i in order)},
            "patching",
            "restored",
            {"region": self.region, "n_samples": len(self.sample_ids)},
        )

    def top(self, n: int = 10) -> HeadSet:
        """The ``n`` heads that restore most, best first, with their ``restored`` share."""
        return self.ranking().top(n)

    def to_frame(self) -> pd.DataFrame:
        """One row per head: layer, head, name, restored, patched_logit_diff (mean)."""
        n_layers, n_heads = self.restored.shape
        heads = [Head(layer, head) for layer in range(n_layers) for head in range(n_heads)]
        return pd.DataFrame(
            {
                "layer": [h.layer for h in heads],
                "head": [h.head for h in heads],
                "name": [str(h) for h in heads],
                "restored": self.restored.flatten().numpy(),
                "patched_logit_diff": self.patched.mean(dim=0).flatten().numpy(),
            }
        )


@renamed_arguments(k="n_shots")
def contrast(
    model: object,
    samples: Sequence[Sample],
    *,
    clean: ContrastKind = "yes_shots",
    template: Template | None = None,
    shots: Sequence[Sample] | None = None,
    n_shots: int = 4,
) -> tuple[Batch, Batch]:
    """Encode the clean and the corrupt prompt of each sample (see the module docstring).

    Args:
        model: A model from `nasalens.load_model`.
        samples: The questions, usually gold-Yes samples the model answers "No".
        clean: "yes_shots" (solved examples answered "Yes" before the question) or "swap"
            (the instruction lists the negative candidate first).
        template: The corrupt template (default: the paper's Prompt I).
        shots: The solved examples for "yes_shots" (default: the first ``n_shots`` positives of
            the built-in probe set whose question is not among ``samples``).
        n_shots: How many default shots.

    Returns:
        ``(clean, corrupt)`` batches, row ``i`` of each from ``samples[i]``.

    Raises:
        NasalensError: On an unknown ``clean``, or a template whose instruction has no
            ``{pos} or {neg}`` to swap.
    """
    base = template or binary()
    if clean == "yes_shots":
        if shots is None:
            asked = {s.question for s in samples}
            pool = [q.positive() for q in builtin_questions("probe") if q.question not in asked]
            shots = pool[:n_shots]
        cleaned = dataclasses.replace(
            base, shots=tuple(shots), name=f"{base.name}-{len(shots)}yes_shots"
        )
    elif clean == "swap":
        if "{pos} or {neg}" not in base.instruction:
            raise NasalensError(
                f"template {base.name!r}: its instruction has no '{{pos}} or {{neg}}' to swap; "
                "use clean='yes_shots'"
            )
        swapped = base.instruction.replace("{pos} or {neg}", "{neg} or {pos}")
        cleaned = dataclasses.replace(base, instruction=swapped, name=f"{base.name}-swapped")
    else:
        raise NasalensError(f"unknown clean={clean!r}; use 'yes_shots' or 'swap'")
    return encode(model, samples, template=cleaned), encode(model, samples, template=base)


def patch_heads(
    model: object,
    clean: Batch,
    corrupt: Batch,
    *,
    region: PatchRegion = "after_instruction",
    chunk_size: int = 8,
    resume: bool = True,
    progress: bool = True,
) -> PatchResult:
    """Patch every head's output from the clean into the corrupt run, one head at a time.

    Each layer's heads run together, as one batch of ``n_heads + 1`` copies of the corrupt
    rows (the last copy unpatched). With ``resume`` the copies start from the corrupt run's
    residual entering the layer, so the blocks below are not run again; the unpatched copy
    must then reproduce the corrupt run's LD (within ``RESUME_ATOL``), else that layer is
    run again in full.

    Args:
        model: A model from `nasalens.load_model`.
        clean: Prompts the model answers "Yes" more readily (see `contrast`).
        corrupt: The biased prompts, paired row by row with ``clean``.
        region: Positions patched, counted back from the answer.
        chunk_size: Pairs per pass (a pass holds ``(n_heads + 1) * chunk_size`` rows).
        resume: Start each layer's runs from the cached residual.
        progress: Show a progress bar.

    Returns:
        Per-pair LDs; ``.restored`` is the ``[layer, head]`` share of the gap restored.

    Raises:
        NasalensError: When the batches differ in rows, or the clean and corrupt runs have the
            same mean LD (nothing to restore).

    Example:
        >>> clean, corrupt = nasalens.patching.contrast(model, positives)  # doctest: +SKIP
        >>> nasalens.patch_heads(model, clean, corrupt).top(5)             # doctest: +SKIP
    """
    adapter = adapt(model)
    patch_counts(clean, corrupt, region)  # checks the pairing and the region
    ld_clean = _ld(answer_logprobs(model, clean, chunk_size=chunk_size, progress=False))
    geo = adapter.info
    patched = torch.zeros(len(corrupt), geo.n_layers, geo.n_heads)
    ld_corrupt = torch.zeros(len(corrupt))
    resumed = resume
    total = math.ceil(len(corrupt) / chunk_size)
    chunks = tqdm(corrupt.chunks(chunk_size), total=total, desc="patching", disable=not progress)
    with torch.no_grad():
        for index, target in chunks:
            source = clean.select(index)
            out, base, ok = _sweep_chunk(adapter, source, target, region, resume)
            patched[index], ld_corrupt[index] = out, base
            resumed = resumed and ok
    result = PatchResult(
        patched, ld_clean, ld_corrupt, tuple(s.id for s in corrupt.samples), region, resumed
    )
    if abs(result.gap) < 1e-6:
        raise NasalensError(
            "the clean and corrupt prompts give the same mean logit difference, so there is "
            "nothing to restore; pick a clean prompt the model answers differently"
        )
    if result.gap < 0:
        logger.warning(
            "the clean prompts lean further to 'No' than the corrupt ones: %.3f", result.gap
        )
    return result


def _ld(logprobs: Tensor) -> Tensor:
    return logprobs[:, 0] - logprobs[:, 1]


def _ld_from_logits(logits: Tensor, batch: Batch) -> Tensor:
    return _ld(candidate_logprobs(logits, batch)).cpu()


def _sweep_chunk(
    adapter: ModelAdapter, source: Batch, target: Batch, region: PatchRegion, resume: bool
) -> tuple[Tensor, Tensor, bool]:
    """Patched LDs ``[m, layer, head]``, corrupt LDs ``[m]`` and whether resuming held."""
    geo = adapter.info
    m, n_heads = len(target), geo.n_heads
    all_heads = {layer: list(range(n_heads)) for layer in range(geo.n_layers)}
    values = aligned_z(adapter, source, all_heads, chunk_size=m)
    counts = patch_counts(source, target, region)
    offset = target.answer_pos[:, None] - torch.arange(target.tokens.shape[1])[None, :]
    inside = ((offset >= 0) & (offset < counts[:, None]))[:, :, None]
    rows = torch.arange(m)[:, None]

    resid: dict[int, Tensor] = {}

    def keep(x: Tensor, hook: object) -> None:
        resid[int(hook.name.split(".")[1])] = x.detach().clone()  # type: ignore[attr-defined]

    grab = [(f"blocks.{layer}.hook_resid_pre", keep) for layer in range(geo.n_layers)]
    base = _ld_from_logits(
        adapter.logits_at(target.tokens, target.attention_mask, target.answer_pos, grab), target
    )
    copies = n_heads + 1
    tokens = target.tokens.repeat(copies, 1)
    mask = target.attention_mask.repeat(copies, 1)
    answer = target.answer_pos.repeat(copies)
    out = torch.zeros(m, geo.n_layers, n_heads)
    ok = resume
    for layer in range(geo.n_layers):
        source_z = values[layer][rows, offset.clamp(0, values[layer].shape[1] - 1)]
        hooks = [(adapter.hook_name(layer, "z"), _patch_each(source_z, inside, copies))]
        ld = None
        if ok:
            ld = _resumed(adapter, resid[layer], layer, target, copies, hooks)
            if ld is None or not torch.allclose(ld[-1], base, atol=RESUME_ATOL, rtol=0):
                drift = math.inf if ld is None else float((ld[-1] - base).abs().max())
                logger.warning("resuming at layer %d moved the corrupt LD by %.2e", layer, drift)
                ok, ld = False, None
        if ld is None:
            logits = adapter.logits_at(tokens, mask, answer, hooks)
            ld = _ld_from_logits(logits, target).view(copies, m)
        out[:, layer] = ld[:n_heads].T
    return out, base, ok


def _resumed(
    adapter: ModelAdapter,
    resid: Tensor,
    layer: int,
    target: Batch,
    copies: int,
    hooks: list[tuple[str, HookFn]],
) -> Tensor | None:
    """LDs ``[copies, m]`` from blocks ``layer``.. only; None when the model cannot resume."""
    mask = target.attention_mask.repeat(copies, 1)
    answer = target.answer_pos.repeat(copies)
    try:
        final = adapter.forward_from(resid.repeat(copies, 1, 1), layer, mask, answer, hooks)
    except NotImplementedError:
        return None
    return _ld_from_logits(adapter.unembed(final), target).view(copies, -1)


def _patch_each(source_z: Tensor, inside: Tensor, copies: int) -> HookFn:
    """A z hook patching head h in copy h of the rows (the last copy stays unpatched)."""

    def hook(z: Tensor, hook: object) -> Tensor:
        z = z.clone(memory_format=torch.contiguous_format)
        view = z.view(copies, -1, *z.shape[1:])
        for head in range(copies - 1):
            new = source_z[:, :, head].to(device=z.device, dtype=z.dtype)
            view[head, :, :, head] = torch.where(inside.to(z.device), new, view[head, :, :, head])
        return z

    return hook
