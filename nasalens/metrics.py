"""Decisions and their quality: P(Yes), accuracy/precision/recall/F1, AUROC, ECE, intervals.

`evaluate()` ties them together. The decision is the argmax of the two candidates' scores at
the answer position; a candidate's score sums the probabilities of its answer-token variants
("Yes", " yes", ...).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.data.sample import Sample
from nasalens.deprecation import keyword_only, renamed_arguments
from nasalens.errors import NasalensError
from nasalens.models import adapt
from nasalens.models.interface import FwdHooks
from nasalens.prompts import Batch, Template, encode

logger = logging.getLogger(__name__)

#: Summary metrics, in table order.
METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "pr_gap",
    "auroc",
    "best_threshold_accuracy",
    "ece",
    "share_yes",
    "mean_p_yes",
)


@runtime_checkable
class Decider(Protocol):
    """A wrapped model that `evaluate()` accepts (an intervention, a calibration...)."""

    model: torch.nn.Module

    def answer_logprobs(
        self, batch: Batch, *, chunk_size: int = 16, progress: bool = True
    ) -> Float[Tensor, "batch 2"]:
        """Return log P(positive), log P(negative) at each row's answer position."""
        ...


def answer_logprobs(
    model: object,
    batch: Batch,
    *,
    chunk_size: int = 16,
    progress: bool = True,
    fwd_hooks: FwdHooks = (),
) -> Float[Tensor, "batch 2"]:
    """Return log P(positive candidate) and log P(negative candidate) for each row.

    Only the answer position is unembedded. A candidate's probability is the sum over its
    answer-token variants, in the full-vocabulary softmax.

    Args:
        model: A model from `nasalens.load_model`, or a `Decider`.
        batch: The encoded samples (with candidates).
        chunk_size: Rows per forward pass.
        progress: Show a progress bar.
        fwd_hooks: Extra hooks for every forward pass (interventions).

    Returns:
        ``[batch, 2]``: column 0 the positive, column 1 the negative candidate's log-probability.
    """
    if isinstance(model, Decider):
        return model.answer_logprobs(batch, chunk_size=chunk_size, progress=progress)
    if not batch.pos_ids or not batch.neg_ids:
        raise NasalensError(
            f"template {batch.template.name!r} has no answer candidates to score; use a binary "
            "template"
        )
    adapter = adapt(model)
    out = torch.empty(len(batch), 2)
    chunks = batch.chunks(chunk_size)
    total = math.ceil(len(batch) / chunk_size)
    with torch.no_grad():
        for index, sub in tqdm(chunks, total=total, desc="answers", disable=not progress):
            logits = adapter.logits_at(sub.tokens, sub.attention_mask, sub.answer_pos, fwd_hooks)
            out[index] = candidate_logprobs(logits, sub).cpu()
    return out


def candidate_logprobs(
    logits: Float[Tensor, "batch vocab"], batch: Batch
) -> Float[Tensor, "batch 2"]:
    """Return log P(positive candidate) and log P(negative candidate) from answer-position logits.

    A candidate's probability is the sum over its answer-token variants (``batch.pos_ids``,
    ``batch.neg_ids``), in the full-vocabulary softmax.
    """
    logp = logits.float().log_softmax(dim=-1)
    pos = logp[:, list(batch.pos_ids)].logsumexp(dim=-1)
    neg = logp[:, list(batch.neg_ids)].logsumexp(dim=-1)
    return torch.stack([pos, neg], dim=1)


def p_yes(logprobs: Float[Tensor, "batch 2"]) -> Float[Tensor, " batch"]:
    """Return P(positive | positive or negative), the decision's probability of "Yes"."""
    return torch.sigmoid(logprobs[:, 0] - logprobs[:, 1])


def classification(gold: npt.ArrayLike, pred: npt.ArrayLike) -> dict:
    """Return accuracy, precision, recall, F1 and the precision-recall gap.

    Precision is NaN when nothing is predicted positive and recall NaN when nothing is gold
    positive; F1 = 2TP / (2TP + FP + FN) is 0 when there is no true positive. ``pr_gap`` is
    precision minus recall: large and positive for a negatively biased model.
    """
    g, p = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
    if g.shape != p.shape or g.ndim != 1:
        raise NasalensError(f"gold and pred must be 1-D of one length, got {g.shape}, {p.shape}")
    tp, fp = int(np.sum(g & p)), int(np.sum(~g & p))
    fn, tn = int(np.sum(g & ~p)), int(np.sum(~g & ~p))
    n = len(g)
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else math.nan
    return {
        "n": n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "accuracy": (tp + tn) / n if n else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "pr_gap": precision - recall,
    }


def auroc(gold: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Return the area under the ROC curve of ``score`` for ``gold`` (ties count one half).

    NaN when only one class is present.
    """
    g, s = np.asarray(gold, dtype=bool), np.asarray(score, dtype=float)
    n_pos, n_neg = int(g.sum()), int((~g).sum())
    if not n_pos or not n_neg:
        return math.nan
    ranks = pd.Series(s).rank(method="average").to_numpy()
    return float((ranks[g].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_threshold_accuracy(gold: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Return the best accuracy of ``score > t`` over all thresholds t (the signal, unshifted)."""
    g, s = np.asarray(gold, dtype=bool), np.asarray(score, dtype=float)
    if not len(g):
        return math.nan
    order = np.argsort(-s, kind="stable")
    g_sorted, s_sorted = g[order], s[order]
    # Predict positive for the first k rows; only cut between distinct scores.
    tp = np.concatenate([[0], np.cumsum(g_sorted)])
    fp = np.concatenate([[0], np.cumsum(~g_sorted)])
    correct = tp + (int((~g).sum()) - fp)
    cuts = np.concatenate([[True], s_sorted[1:] != s_sorted[:-1], [True]])
    return float(correct[cuts].max() / len(g))


def ece(gold: npt.ArrayLike, p_pos: npt.ArrayLike, *, bins: int = 10) -> float:
    """Return the expected calibration error of the decision, with equal-width bins.

    Confidence is the probability of the decided answer, max(p, 1 - p); each bin contributes
    its share of samples times |accuracy - mean confidence|.
    """
    g, p = np.asarray(gold, dtype=bool), np.asarray(p_pos, dtype=float)
    if not len(g):
        return math.nan
    pred = p > 0.5
    conf = np.where(pred, p, 1 - p)
    correct = pred == g
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(total)


#: The metrics of `summarize` beyond `classification`'s, each from gold and P(positive).
_SCORED: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": auroc,
    "best_threshold_accuracy": best_threshold_accuracy,
    "ece": ece,
    "share_yes": lambda g, p: float(np.mean(p > 0.5)) if len(p) else math.nan,
    "mean_p_yes": lambda g, p: float(np.mean(p)) if len(p) else math.nan,
}


def summarize(gold: npt.ArrayLike, p_pos: npt.ArrayLike) -> dict:
    """Return every summary metric of decisions ``p_pos > 0.5`` against ``gold``."""
    g, p = np.asarray(gold, dtype=bool), np.asarray(p_pos, dtype=float)
    out = classification(g, p > 0.5)
    out.update({name: fn(g, p) for name, fn in _SCORED.items()})
    return out


def _one(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """``summarize(g, p)[name]``, computing that metric alone (a bootstrap asks 1000 times)."""
    if name in _SCORED:
        return _SCORED[name]
    return lambda g, p: classification(g, p > 0.5)[name]


@renamed_arguments(n="n_boot")
def bootstrap(
    gold: npt.ArrayLike,
    p_pos: npt.ArrayLike,
    metric: str | Callable[[np.ndarray, np.ndarray], float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Return a percentile bootstrap interval of ``metric`` (a name from `summarize`).

    Resamples with a NaN value (e.g. no positive left) are left out of the percentiles.
    """
    g, p = np.asarray(gold, dtype=bool), np.asarray(p_pos, dtype=float)
    if isinstance(metric, str):
        if metric not in METRICS:
            raise NasalensError(f"unknown metric {metric!r}; use one of {METRICS}")
        fn = _one(metric)
    else:
        fn = metric
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(g), size=(n_boot, len(g)))
    values = np.array([fn(g[i], p[i]) for i in idx])
    values = values[~np.isnan(values)]
    if not len(values):
        return (math.nan, math.nan)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class EvalResult:
    """The decisions of one model on one sample set.

    Attributes:
        name: What was evaluated (model and set), for tables.
        summary: Every metric of `summarize`, plus the confusion counts.
        per_sample: One row per sample: id, source, gold, label, p_yes, logp_pos, logp_neg,
            logit_diff (log-odds of the positive candidate), decision, correct, confidence,
            cand_mass (probability on the two candidates in the full vocabulary).
    """

    name: str
    summary: dict
    per_sample: pd.DataFrame

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"EvalResult({self.name!r}, n={s['n']}, accuracy={s['accuracy']:.3f}, "
            f"precision={s['precision']:.3f}, recall={s['recall']:.3f}, auroc={s['auroc']:.3f})"
        )

    @renamed_arguments(n="n_boot")
    def interval(self, metric: str, *, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
        """Return the bootstrap 95% interval of ``metric``."""
        df = self.per_sample
        return bootstrap(df["gold"], df["p_yes"], metric, n_boot=n_boot, seed=seed)

    def to_frame(self, *, intervals: bool = False) -> pd.DataFrame:
        """Return the summary as a one-row DataFrame (with ``<metric>_lo/_hi`` if asked)."""
        row = {"name": self.name, **{k: self.summary[k] for k in ("n", *METRICS)}}
        if intervals:
            for metric in ("accuracy", "precision", "recall", "f1", "auroc"):
                row[f"{metric}_lo"], row[f"{metric}_hi"] = self.interval(metric)
        return pd.DataFrame([row])


@keyword_only("template", 2)
def evaluate(
    model: object,
    samples: Sequence[Sample] | Batch,
    *,
    template: Template | None = None,
    chunk_size: int = 16,
    progress: bool = True,
    name: str | None = None,
) -> EvalResult:
    """Evaluate the Yes/No decisions of ``model`` on ``samples``.

    Args:
        model: A model from `nasalens.load_model`, or a `Decider` wrapping one.
        samples: Samples, or a batch already encoded for this model.
        template: The prompt template (default: the paper's Prompt I); ignored for a batch.
        chunk_size: Rows per forward pass.
        progress: Show a progress bar.
        name: A label for tables; defaults to the sample sources.

    Returns:
        The summary metrics and the per-sample decisions.

    Example:
        >>> result = nasalens.evaluate(model, nasalens.data.builtin("eval"))  # doctest: +SKIP
        >>> result.summary["recall"]                                          # doctest: +SKIP
    """
    base = model.model if isinstance(model, Decider) else model
    batch = samples if isinstance(samples, Batch) else encode(base, samples, template=template)
    logprobs = answer_logprobs(model, batch, chunk_size=chunk_size, progress=progress)
    p = p_yes(logprobs)
    gold = batch.gold
    frame = pd.DataFrame(
        {
            "id": [s.id for s in batch.samples],
            "source": [s.source for s in batch.samples],
            "gold": gold.numpy(),
            "label": [s.label for s in batch.samples],
            "p_yes": p.numpy(),
            "logp_pos": logprobs[:, 0].numpy(),
            "logp_neg": logprobs[:, 1].numpy(),
            "logit_diff": (logprobs[:, 0] - logprobs[:, 1]).numpy(),
            "decision": (p > 0.5).numpy(),
        }
    )
    frame["correct"] = frame["decision"] == frame["gold"]
    frame["confidence"] = np.where(frame["decision"], frame["p_yes"], 1 - frame["p_yes"])
    frame["cand_mass"] = np.exp(frame["logp_pos"]) + np.exp(frame["logp_neg"])
    sources = sorted({s.source for s in batch.samples})
    label = name or "+".join(sources)
    return EvalResult(label, summarize(frame["gold"], frame["p_yes"]), frame)
