"""Baseline versus tuned: decision metrics with intervals, model NAS, QA retention, a verdict.

`compare` evaluates several models on several sets in one pass per model and set (the answer
logits and every head's NAS come from the same forward pass), measures general QA retention
(Prompt II exact match), and says in words when a model's recall rose but its AUROC did not:
"shifted, not debiased". Rises are judged by a paired bootstrap over the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from nasalens.baselines import HeadFix
from nasalens.data.answers import matches
from nasalens.data.sample import Question, Sample
from nasalens.deprecation import renamed_arguments
from nasalens.errors import NasalensError
from nasalens.generation import short_answers
from nasalens.metrics import Decider, EvalResult, auroc, candidate_logprobs, evaluate
from nasalens.models import adapt
from nasalens.models.interface import FwdHooks
from nasalens.prompts import Batch, binary, encode
from nasalens.scores import DEFAULT_EPS, Region, nas, nas_hooks

SHIFTED = "shifted, not debiased"
DEBIASED = "recall and AUROC rose"
NO_GAIN = "recall did not rise"
#: Metrics shown with bootstrap 95% intervals.
INTERVAL_METRICS = ("accuracy", "precision", "recall", "f1", "auroc")


class NasWatch:
    """A model that records every sample's model NAS while answering (a metrics `Decider`).

    Args:
        model: A model from `nasalens.load_model`.
        eps: NAS clamp.
        region: NAS region.
        fwd_hooks: Hooks active in every pass before NAS reads the patterns (a `HeadFix`'s:
            its decisions and the NAS it leaves, in one pass).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        eps: float = DEFAULT_EPS,
        region: Region = "after_instruction",
        fwd_hooks: FwdHooks = (),
    ) -> None:
        self.model, self.eps, self.region = model, eps, region
        self.fwd_hooks = list(fwd_hooks)
        self.model_nas: Tensor = torch.zeros(0)

    def answer_logprobs(
        self, batch: Batch, *, chunk_size: int = 16, progress: bool = True
    ) -> Float[Tensor, "batch 2"]:
        """Return log P(positive), log P(negative) per row; keep model NAS in ``.model_nas``."""
        adapter = adapt(self.model)
        geo = adapter.info
        out = torch.empty(len(batch), 2)
        per_row = torch.zeros(len(batch))
        total = math.ceil(len(batch) / chunk_size)
        chunks = tqdm(batch.chunks(chunk_size), total=total, desc="answers", disable=not progress)
        with torch.no_grad():
            for index, sub in chunks:
                per = torch.zeros(3, len(sub), geo.n_layers, geo.n_heads)
                hooks = [
                    *self.fwd_hooks,
                    *nas_hooks(adapter, sub, per, eps=self.eps, region=self.region),
                ]
                logits = adapter.logits_at(sub.tokens, sub.attention_mask, sub.answer_pos, hooks)
                out[index] = candidate_logprobs(logits, sub).cpu()
                per_row[index] = per[0].sum(dim=(1, 2))
        self.model_nas = per_row
        return out


#: The columns `Comparison.to_frame` shows, in order.
COMPARISON_COLUMNS = (
    "set", "model", "n", "accuracy", "precision", "recall", "recall_lo", "recall_hi", "auroc",
    "auroc_lo", "auroc_hi", "share_yes", "verdict",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Comparison:
    """Models compared on sets.

    Attributes:
        table: One row per set and model: n, every metric of `summarize`, intervals
            (``<metric>_lo/_hi``), model NAS, and ``verdict`` against the baseline.
        retention: One row per model: general QA exact match (Prompt II) and its n; empty
            when no questions were given.
        results: The full `EvalResult` of each (set, model).
        baseline: The name of the baseline model.
    """

    table: pd.DataFrame
    retention: pd.DataFrame
    results: dict[tuple[str, str], EvalResult]
    baseline: str

    def __repr__(self) -> str:
        models = list(dict.fromkeys(self.table["model"]))
        sets = list(dict.fromkeys(self.table["set"]))
        return f"Comparison({len(models)} models x {len(sets)} sets, baseline={self.baseline!r})"

    def to_frame(self) -> pd.DataFrame:
        """One row per set and model: decision metrics, intervals, share of Yes, verdict.

        Recall and AUROC carry their bootstrap intervals; ``table`` holds every column.
        """
        wanted = [c for c in COMPARISON_COLUMNS if c in self.table.columns]
        return self.table[wanted].copy()


def compare(
    models: Mapping[str, torch.nn.Module | Decider],
    sets: Mapping[str, Sequence[Sample]],
    *,
    baseline: str | None = None,
    retention: Sequence[Question] = (),
    chunk_size: int = 16,
    n_boot: int = 1000,
    progress: bool = True,
) -> Comparison:
    """Evaluate models on sets and compare each with the baseline.

    Args:
        models: Named models or `Decider`s (inference-time fixes, calibration); the first is
            the baseline unless ``baseline`` names another.
        sets: Named sample sets (balanced yes/no).
        baseline: The name of the baseline model.
        retention: Short-answer questions for general QA retention (e.g. 300 of NQ-open).
        chunk_size: Rows per forward pass.
        n_boot: Bootstrap resamples for intervals and verdicts.
        progress: Show progress bars.

    Returns:
        The comparison table, retention and per-sample results.

    Raises:
        NasalensError: When no models or sets are given, or ``baseline`` is not a model.

    Example:
        >>> models = {"baseline": model, "nasa": result.model}
        >>> cmp = compare(models, {"eval": samples})             # doctest: +SKIP
        >>> cmp.table[["set", "model", "recall", "verdict"]]     # doctest: +SKIP
    """
    if not models or not sets:
        raise NasalensError("compare: pass at least one model and one sample set")
    base_name = baseline or next(iter(models))
    if base_name not in models:
        raise NasalensError(f"compare: baseline {base_name!r} is not one of {list(models)}")
    rows, results = [], {}
    for set_name, samples in sets.items():
        seen: dict[int, float] = {}  # model NAS of the plain models evaluated on this set
        for name, model in models.items():
            result, model_nas = _evaluate(model, samples, chunk_size, progress, name, seen)
            results[(set_name, name)] = result
            row = {"set": set_name, "model": name, **result.summary}
            for metric in INTERVAL_METRICS:
                row[f"{metric}_lo"], row[f"{metric}_hi"] = result.interval(metric, n_boot=n_boot)
            row["model_nas"] = model_nas
            rows.append(row)
    table = pd.DataFrame(rows)
    table["verdict"] = [
        "baseline"
        if r["model"] == base_name
        else verdict(results[(r["set"], base_name)], results[(r["set"], r["model"])], n_boot=n_boot)
        for _, r in table.iterrows()
    ]
    kept = pd.DataFrame(
        [{"model": name, **_retention(m, retention, progress)} for name, m in models.items()]
        if retention
        else []
    )
    return Comparison(table, kept, results, base_name)


def _evaluate(
    model: torch.nn.Module | Decider,
    samples: Sequence[Sample],
    chunk_size: int,
    progress: bool,
    name: str,
    seen: dict[int, float],
) -> tuple[EvalResult, float]:
    """Decisions and mean model NAS (a `Decider`'s: its model's, under its own hooks).

    A model and a `HeadFix` (the model under the fix's hooks) answer and give their NAS in one
    pass. Any other `Decider` (calibration: the same forward, answers moved afterwards) needs a
    NAS pass of its own, unless it has no hooks and its model's NAS on these samples is in
    ``seen`` (by the model's id; filled here by the plain models evaluated before it).
    """
    plain = model.model if isinstance(model, Decider) else model
    batch = encode(plain, samples, template=binary())
    if isinstance(model, HeadFix) or not isinstance(model, Decider):
        hooks = model.hooks(batch) if isinstance(model, HeadFix) else ()
        watch = NasWatch(plain, fwd_hooks=hooks)
        result = evaluate(watch, batch, chunk_size=chunk_size, progress=progress, name=name)
        value = float(watch.model_nas.mean())
        if not isinstance(model, HeadFix):
            seen[id(plain)] = value
        return result, value
    result = evaluate(model, batch, chunk_size=chunk_size, progress=progress, name=name)
    hooks = model.hooks(batch) if callable(getattr(model, "hooks", None)) else ()  # type: ignore[attr-defined]
    if not hooks and id(plain) in seen:
        return result, seen[id(plain)]
    scores = nas(plain, batch, chunk_size=chunk_size, progress=False, fwd_hooks=hooks)
    return result, scores.model


@renamed_arguments(n="n_boot")
def verdict(base: EvalResult, tuned: EvalResult, *, n_boot: int = 1000, seed: int = 0) -> str:
    """Say whether ``tuned`` was debiased or only shifted, relative to ``base``.

    Recall (and AUROC) "rose" when the lower end of the paired bootstrap 95% interval of its
    difference (same resampled samples for both) is above 0.

    Returns:
        `SHIFTED` when recall rose but AUROC did not, `DEBIASED` when both rose, `NO_GAIN`
        when recall did not rise.

    Raises:
        NasalensError: When the two results cover different samples.
    """
    a, b = base.per_sample, tuned.per_sample
    if list(a["id"]) != list(b["id"]):
        raise NasalensError(
            "verdict: the two results cover different samples; evaluate the same set"
        )
    gold = a["gold"].to_numpy(dtype=bool)
    pa, pb = a["p_yes"].to_numpy(dtype=float), b["p_yes"].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    d_recall, d_auroc = [], []
    for idx in rng.integers(0, len(gold), size=(n_boot, len(gold))):
        g = gold[idx]
        if g.all() or not g.any():
            continue
        d_recall.append(np.mean(pb[idx][g] > 0.5) - np.mean(pa[idx][g] > 0.5))
        d_auroc.append(auroc(g, pb[idx]) - auroc(g, pa[idx]))
    recall_rose = bool(d_recall) and float(np.percentile(d_recall, 2.5)) > 0
    auroc_rose = bool(d_auroc) and float(np.percentile(d_auroc, 2.5)) > 0
    if not recall_rose:
        return NO_GAIN
    return DEBIASED if auroc_rose else SHIFTED


def _retention(
    model: torch.nn.Module | Decider, questions: Sequence[Question], progress: bool
) -> dict[str, float]:
    """QA exact match of a model; a `Decider` only changes the yes/no decision: NaN."""
    if isinstance(model, Decider):
        return {"qa_exact_match": math.nan, "qa_n": 0}
    return qa_retention(model, questions, progress=progress)


def _module(model: torch.nn.Module | Decider) -> torch.nn.Module:
    return model.model if isinstance(model, Decider) else model


def qa_retention(
    model: torch.nn.Module, questions: Sequence[Question], *, progress: bool = True
) -> dict[str, float]:
    """Return general QA exact match: the share of greedy Prompt II answers matching gold.

    Args:
        model: A model from `nasalens.load_model`.
        questions: Short-answer questions (the issue: 300 of NQ-open).
        progress: Show a progress bar.

    Returns:
        ``{"qa_exact_match": share, "qa_n": count}``.
    """
    if not questions:
        return {"qa_exact_match": math.nan, "qa_n": 0}
    frame = short_answers(model, [q.positive() for q in questions], progress=progress)
    hits = [matches(str(a), q.answers) for a, q in zip(frame["answer"], questions, strict=True)]
    return {"qa_exact_match": float(np.mean(hits)), "qa_n": len(hits)}
