"""Validating a selected head set: ablate it, and compare with matched random head sets.

`validate_heads` measures, without and with each ablation, the mean Yes-No logit difference,
recall, precision, accuracy, AUROC and model NAS; the selected heads' effects get bootstrap
intervals over samples, and are ranked against `controls` random head sets of the same size
and layer histogram (`nasalens.heads.random_like`).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.heads import random_like
from nasalens.metrics import candidate_logprobs
from nasalens.models import Head, ModelInfo, adapt
from nasalens.models.interface import FwdHooks, ModelAdapter
from nasalens.patching import AblationKind, ablation_hooks, head_means
from nasalens.patching.ablation import ABLATIONS, check_how
from nasalens.patching.rows import check_heads
from nasalens.prompts import Batch, Template, encode
from nasalens.scores import nas_from_pattern, region_mask

logger = logging.getLogger(__name__)

#: The metrics compared, in table order.
VALIDATION_METRICS = ("logit_diff", "recall", "precision", "accuracy", "auroc", "model_nas")
#: +1 where a larger value means less negative bias (beating a random set), -1 where smaller.
DIRECTION = {m: (-1 if m == "model_nas" else 1) for m in VALIDATION_METRICS}


@dataclass(frozen=True)
class HeadValidation:
    """The effect of ablating the selected heads, next to random head sets.

    Attributes:
        heads: The selected heads.
        controls: The random head sets (same size and layer histogram).
        how: The ablation ("zero", "mean", "resample").
        summary: One row per metric: baseline, ablated, effect (ablated - baseline) with its
            bootstrap 95% interval, the random sets' effects (mean, 2.5 and 97.5 percentiles),
            vs_random (effect - mean random effect) with its interval, and share_beaten: the
            share of random sets whose effect the selected heads' effect beats (larger, or
            smaller for model NAS; ties count one half).
        random_effects: One row per random set: its heads, how many of them are selected
            heads (overlap), and its effect on each metric.
        per_head: One row per selected head ablated alone: layer, head, name, effect on each
            metric (empty when not computed).
        per_sample: One row per sample: id, gold, logit_diff and model_nas at baseline and
            with the selected heads ablated.
    """

    heads: tuple[Head, ...]
    controls: tuple[tuple[Head, ...], ...]
    how: str
    summary: pd.DataFrame
    random_effects: pd.DataFrame
    per_head: pd.DataFrame
    per_sample: pd.DataFrame

    def __repr__(self) -> str:
        ld = self.summary.set_index("metric").loc["logit_diff"]
        beats = f", beats {ld['share_beaten']:.0%} of random sets" if self.controls else ""
        return (
            f"HeadValidation({len(self.heads)} heads vs {len(self.controls)} random sets, "
            f"{len(self.per_sample)} samples, how={self.how!r}: logit_diff effect "
            f"{ld['effect']:+.3f} [{ld['effect_lo']:+.3f}, {ld['effect_hi']:+.3f}]{beats})"
        )

    def to_frame(self) -> pd.DataFrame:
        """The summary, one row per metric."""
        return self.summary.copy()

    def effect(self, metric: str) -> float:
        """The selected heads' effect on ``metric`` (ablated - baseline)."""
        return float(self._row(metric)["effect"])

    def share_beaten(self, metric: str) -> float:
        """The share of random sets whose effect on ``metric`` the selected heads beat."""
        return float(self._row(metric)["share_beaten"])

    def _row(self, metric: str) -> pd.Series:
        if metric not in VALIDATION_METRICS:
            raise NasalensError(f"unknown metric {metric!r}; use one of {VALIDATION_METRICS}")
        row = self.summary.set_index("metric").loc[metric]
        assert isinstance(row, pd.Series)
        return row


def validate_heads(
    model: object,
    samples: Batch | Sequence[Sample],
    heads: Sequence[Head],
    *,
    controls: int | Sequence[Sequence[Head]] = 20,
    how: AblationKind = "mean",
    seed: int = 0,
    reference: Batch | Sequence[Sample] | None = None,
    template: Template | None = None,
    per_head: bool | int = True,
    exclude_selected: bool = True,
    n_boot: int = 1000,
    chunk_size: int = 16,
    progress: bool = True,
) -> HeadValidation:
    """Ablate ``heads`` and ``controls`` random head sets, and compare their effects.

    Model NAS is read from the patterns of the ablated model. Ablating ``hook_z`` leaves the
    ablated heads' own patterns (so their own NAS) unchanged: its change comes from later
    layers.

    Args:
        model: A model from `nasalens.load_model`.
        samples: The samples to measure on (both gold answers, for precision and AUROC).
        heads: The selected heads, e.g. from `nasalens.negative_heads`.
        controls: How many random head sets (same size and per-layer counts), or the control
            head sets themselves (any sizes).
        how: The ablation: "zero", "mean" or "resample" (`nasalens.patching.ablate`).
        seed: Seed of the random sets, the resampling and the bootstrap.
        reference: What "mean" averages over and "resample" draws from (default: ``samples``).
        template: Template to encode samples with (default: Prompt I).
        per_head: Also ablate each selected head alone: True every one, a number n the first
            n (e.g. the top 5 of a ranked head set), False or 0 none.
        exclude_selected: Draw random sets from the other heads only. When a layer holds too
            few other heads for its count (e.g. 7 of its 9 heads selected), the sets are drawn
            from all heads instead, with a warning; ``random_effects["overlap"]`` counts the
            selected heads in each set.
        n_boot: Bootstrap resamples of the samples.
        chunk_size: Rows per forward pass.
        progress: Show a progress bar.

    Returns:
        The effects, intervals and comparisons; ``to_frame()`` gives one row per metric.

    Raises:
        NasalensError: On no heads, a head outside the model (selected or control), an
            unknown ``how``, or a negative number of controls.

    Example:
        >>> result = nasalens.validate_heads(model, nasalens.data.builtin("eval"), heads)  # doctest: +SKIP
        >>> result.to_frame()                                                           # doctest: +SKIP
    """  # noqa: E501
    check_how(how, ABLATIONS, "ablation")
    if (isinstance(controls, int) and controls < 0) or n_boot < 1 or per_head < 0:
        raise NasalensError(
            f"controls, per_head must be >= 0 and n_boot >= 1, got {controls}, {per_head}, {n_boot}"
        )
    adapter = adapt(model)
    selected = check_heads(adapter.info, heads)
    if not selected:
        raise NasalensError("no heads to validate; pass at least one head")
    batch, ref = batch_and_reference(model, samples, reference, template)
    if isinstance(controls, int):
        random_sets = _controls(selected, adapter.info, controls, seed, exclude_selected)
    else:
        random_sets = [tuple(check_heads(adapter.info, s)) for s in controls]
    means = head_means(model, ref, chunk_size=chunk_size) if how == "mean" else None

    def run(chosen: Sequence[Head]) -> tuple[np.ndarray, np.ndarray]:
        hooks = ablation_hooks(model, chosen, how=how, reference=ref, seed=seed, means=means)
        return _measure(adapter, batch, hooks, chunk_size)

    sets = [(), tuple(selected), *random_sets]
    runs = [run(s) for s in tqdm(sets, desc="ablations", disable=not progress)]
    ld = np.stack([r[0] for r in runs])
    nas = np.stack([r[1] for r in runs])
    gold = batch.gold.numpy()
    rng = np.random.default_rng(seed)
    boot = rng.integers(0, len(batch), size=(n_boot, len(batch)))
    summary, random_frame = _compare(ld, nas, gold, boot, selected, random_sets)
    head_rows = []
    alone = selected if per_head is True else selected[: int(per_head)]
    if alone:
        point = np.arange(len(batch))[None]
        base = _metrics(ld[:1], nas[:1], gold, point)
        for head in tqdm(alone, desc="single heads", disable=not progress):
            one_ld, one_nas = run([head])
            one = _metrics(one_ld[None], one_nas[None], gold, point)
            effects = {m: float(one[m][0, 0] - base[m][0, 0]) for m in VALIDATION_METRICS}
            head_rows.append({"layer": head.layer, "head": head.head, "name": str(head), **effects})
    columns = ["layer", "head", "name", *VALIDATION_METRICS]
    per_sample = pd.DataFrame(
        {
            "id": [s.id for s in batch.samples],
            "gold": gold,
            "logit_diff_base": ld[0],
            "logit_diff_ablated": ld[1],
            "model_nas_base": nas[0],
            "model_nas_ablated": nas[1],
        }
    )
    return HeadValidation(
        heads=tuple(selected),
        controls=tuple(random_sets),
        how=how,
        summary=summary,
        random_effects=random_frame,
        per_head=pd.DataFrame(head_rows, columns=columns),
        per_sample=per_sample,
    )


def batch_and_reference(
    model: object,
    samples: Sequence[Sample] | Batch,
    reference: Sequence[Sample] | Batch | None,
    template: Template | None,
) -> tuple[Batch, Batch]:
    """The samples' batch and the ablation reference's (the samples themselves by default).

    Shared by `validate_heads` and `nasalens.validation.ranking.rank_heads`.
    """
    batch = samples if isinstance(samples, Batch) else encode(model, samples, template)
    if reference is None:
        return batch, batch
    ref = reference if isinstance(reference, Batch) else encode(model, reference, template)
    return batch, ref


def _controls(
    selected: list[Head], info: ModelInfo, controls: int, seed: int, exclude_selected: bool
) -> list[tuple[Head, ...]]:
    """Random head sets matched to ``selected`` (see `validate_heads`)."""
    try:
        drawn = random_like(
            selected, info, n_sets=controls, seed=seed, exclude_selected=exclude_selected
        )
    except NasalensError as err:
        if not exclude_selected:
            raise
        logger.warning("%s: drawing random sets from all heads, selected ones included", err)
        drawn = random_like(selected, info, n_sets=controls, seed=seed, exclude_selected=False)
    return [tuple(s) for s in drawn]


def _measure(
    adapter: ModelAdapter, batch: Batch, hooks: FwdHooks, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample LD (log P(pos) - log P(neg)) and model NAS, in one pass per chunk."""
    ld, nas = np.zeros(len(batch)), np.zeros(len(batch))
    device = adapter.device
    chunk: dict[str, Tensor] = {}

    def reduce(pattern: Tensor, hook: object) -> None:
        first = int(chunk["first"])
        rows, dev = pattern[:, :, first:].float(), pattern.device  # split: the layer's device
        pos, neg, where = (chunk[k].to(dev) for k in ("pos", "neg", "where"))
        score = nas_from_pattern(rows, pos, neg, where[:, first:])
        chunk["total"] += score[0].sum(dim=1).to(chunk["total"].device)

    n_layers = adapter.info.n_layers
    reads = [(adapter.hook_name(layer, "pattern"), reduce) for layer in range(n_layers)]
    with torch.no_grad():
        for index, sub in batch.chunks(chunk_size):
            where = region_mask(sub).to(device)
            chunk.update(
                where=where,
                first=where.any(dim=0).nonzero()[0, 0],
                pos=sub.pos_cand.float().to(device),
                neg=sub.neg_cand.float().to(device),
                total=torch.zeros(len(sub), device=device),
            )
            tokens, mask = sub.tokens, sub.attention_mask
            logits = adapter.logits_at(tokens, mask, sub.answer_pos, [*hooks, *reads])
            logprobs = candidate_logprobs(logits, sub)
            diff = logprobs[:, 0] - logprobs[:, 1]
            ld[index.numpy()] = diff.cpu().numpy()
            nas[index.numpy()] = chunk["total"].cpu().numpy()
    return ld, nas


def _metrics(
    ld: np.ndarray, nas: np.ndarray, gold: np.ndarray, idx: np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric of every run ``[runs, n]`` on every resample ``idx [B, n]`` -> ``[runs, B]``."""
    x, g = ld[:, idx], gold[idx][None]
    pred = x > 0
    tp = (pred & g).sum(-1)
    fp, fn = (pred & ~g).sum(-1), (~pred & g).sum(-1)
    n_pos, n_neg = g.sum(-1), (~g).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ranks = stats.rankdata(x, axis=-1)
        auc = ((ranks * g).sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        return {
            "logit_diff": x.mean(-1),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "accuracy": (pred == g).mean(-1),
            "auroc": np.where((n_pos > 0) & (n_neg > 0), auc, np.nan),
            "model_nas": nas[:, idx].mean(-1),
        }


def _compare(
    ld: np.ndarray,
    nas: np.ndarray,
    gold: np.ndarray,
    boot: np.ndarray,
    selected: Sequence[Head],
    random_sets: list[tuple[Head, ...]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary table and the random sets' effects (runs: baseline, selected, random...)."""
    point = _metrics(ld, nas, gold, np.arange(len(gold))[None])
    boots = _metrics(ld, nas, gold, boot)
    rows, random_cols = [], {}
    for m in VALIDATION_METRICS:
        values, b = point[m][:, 0], boots[m]
        effect = values[1] - values[0]
        random_eff = values[2:] - values[0]
        random_cols[m] = random_eff
        vs = b[1] - (b[2:].mean(axis=0) if len(random_sets) else np.nan)
        diff = DIRECTION[m] * (effect - random_eff)
        beaten = np.mean((diff > 0) + 0.5 * (diff == 0)) if len(random_sets) else math.nan
        rows.append(
            {
                "metric": m,
                "baseline": values[0],
                "ablated": values[1],
                "effect": effect,
                **_interval("effect", b[1] - b[0]),
                "random_mean": _nan(np.mean, random_eff),
                "random_lo": _nan(np.percentile, random_eff, 2.5),
                "random_hi": _nan(np.percentile, random_eff, 97.5),
                "vs_random": effect - _nan(np.mean, random_eff),
                **_interval("vs_random", vs),
                "share_beaten": math.nan if math.isnan(effect) else float(beaten),
            }
        )
    frame = pd.DataFrame({"set": range(len(random_sets))})
    frame["heads"] = [" ".join(str(h) for h in s) for s in random_sets]
    frame["overlap"] = [len(set(s) & set(selected)) for s in random_sets]
    for m, col in random_cols.items():
        frame[m] = col
    return pd.DataFrame(rows), frame


def _interval(name: str, values: np.ndarray) -> dict[str, float]:
    """The 2.5 and 97.5 percentiles of the finite ``values`` (NaN when there are none)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return {f"{name}_lo": math.nan, f"{name}_hi": math.nan}
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return {f"{name}_lo": float(lo), f"{name}_hi": float(hi)}


def _nan(fn: object, values: np.ndarray, *args: float) -> float:
    """``fn(values, *args)`` over finite values, NaN when none (no warnings)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(fn(finite, *args))  # type: ignore[operator]
