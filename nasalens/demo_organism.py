"""The main job's ground-truth step: the planted-bias organism, where the answer is known.

Beside the embedded model, whose decision barely discriminates (any fix only shifts it), the
organism has a bias planted in known heads. This step loads the organism shipped in the package
(`nasalens.shipped`, seconds), shows where NAS and the causal ranking put the planted heads, and
runs the recommended repair (NASA, preset ``causal``) with before/after on the checks, facts
NASA never sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from nasalens import organisms, shipped
from nasalens.data import binary_samples
from nasalens.heads import HeadSet
from nasalens.metrics import EvalResult, evaluate
from nasalens.models import Head, info
from nasalens.plotting.ranking import plot_head_maps
from nasalens.plotting.tuning import plot_tradeoff
from nasalens.report import Section
from nasalens.scores import NasScores, nas
from nasalens.tuning import NasaConfig, nasa, probe_set
from nasalens.validation import rank_heads

#: The recommended repair on the organism (docs/results.md, "Causal ranking in seconds").
REPAIR = NasaConfig.preset("causal", lr=1e-3, top_n=10, max_epochs=5)


@dataclass(frozen=True, eq=False)
class OrganismCheck:
    """What the ground-truth step found.

    Attributes:
        planted: The planted heads.
        ranks: One row per planted head: its rank of all heads under NAS and under the
            verified causal ranking (1 = first), and its causal effect.
        ranking: The verified causal ranking (every head).
        scores: NAS of the probing set's prompts (the NAS ranks' source).
        results: Decisions on the checks: "planted", "pre-plant" and, when the repair ran,
            "repaired".
        seconds: Seconds per part.
    """

    planted: tuple[Head, ...]
    ranks: pd.DataFrame
    ranking: HeadSet
    scores: NasScores
    results: dict[str, EvalResult]
    seconds: dict[str, float]


def check_organism(
    org: organisms.Organism | None = None,
    *,
    repair: bool = True,
    progress: bool = True,
) -> OrganismCheck:
    """Rank the heads of the planted-bias organism and repair it.

    Args:
        org: The organism (default: the one shipped in the package, `nasalens.shipped_organism`;
            `nasalens.organisms.load` gives a built one).
        repair: Run the recommended repair (about 3 CPU minutes) and evaluate it.
        progress: Show progress bars.

    Raises:
        NasalensError: When the shipped organism is missing or damaged (with how to rebuild it).
    """
    import time

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    org = org if org is not None else shipped.shipped_organism()
    model, before, planted = org.planted, org.discriminating, org.heads
    probe = probe_set(model, list(org.nasa_questions), progress=progress)
    seconds["load"] = time.perf_counter() - start

    start = time.perf_counter()
    every = list(info(model).heads())
    scores = nas(model, [*probe.train, *probe.tp], progress=progress)
    by_nas = [every[int(i)] for i in torch.argsort(-scores.head.flatten(), stable=True)]
    ranking = rank_heads(model, list(probe.train), progress=progress)
    effect = dict(zip(ranking, ranking.score("effect"), strict=True))
    ranks = pd.DataFrame(
        [
            {
                "head": str(h),
                "nas_rank": by_nas.index(h) + 1,
                "causal_rank": list(ranking).index(h) + 1,
                "effect": effect[h],
            }
            for h in planted
        ]
    )
    seconds["ranking"] = time.perf_counter() - start

    checks = binary_samples(list(org.check_questions), pairs=True)
    results = {
        "planted": evaluate(model, checks, name="planted", progress=False),
        "pre-plant": evaluate(before, checks, name="pre-plant", progress=False),
    }
    if repair:
        start = time.perf_counter()
        tuned = nasa(model, probe, ranking, REPAIR, progress=progress)
        results["repaired"] = evaluate(tuned.model, checks, name="repaired", progress=False)
        seconds["repair"] = time.perf_counter() - start
    return OrganismCheck(planted, ranks, ranking, scores, results, seconds)


def organism_table(check: OrganismCheck) -> pd.DataFrame:
    """One row per model: accuracy, recall and AUROC on the checks, with 95% intervals."""
    frame = pd.concat([r.to_frame(intervals=True) for r in check.results.values()])
    cols = ["name", "n", "accuracy", "recall", "recall_lo", "recall_hi", "auroc"]
    return frame[[*cols, "auroc_lo", "auroc_hi", "share_yes"]].reset_index(drop=True)


def organism_section(check: OrganismCheck | None, *, problem: str = "") -> Section:
    """The report's ground-truth section (``problem``: why the organism did not load)."""
    title = "Ground truth: the planted-bias organism"
    if check is None:
        return Section(title, text=f"Skipped: {problem or 'the organism did not load'}")
    findings = [
        f"{row.head}: NAS rank {row.nas_rank}, causal rank {row.causal_rank} of "
        f"{len(check.ranking)} (effect {row.effect:+.2f})"
        for row in check.ranks.itertuples()
    ]
    if "repaired" in check.results:
        after, pre = check.results["repaired"].summary, check.results["pre-plant"].summary
        findings.append(
            f"Repaired (NASA, preset causal): recall {after['recall']:.2f} (pre-plant "
            f"{pre['recall']:.2f}), AUROC {after['auroc']:.3f} (pre-plant {pre['auroc']:.3f})."
        )
    return Section(
        title,
        text="The embedded model taught to decide, then biased towards 'No' in known heads, "
        "shipped in the package as a rank-8 delta (docs/results.md). Unlike the embedded "
        "model, here the right answer is known: the planted heads, and the pre-plant model's "
        "decisions on the checks (taught facts NASA never sees).",
        findings=tuple(findings),
        tables=(
            ("Where each method ranks the planted heads", check.ranks),
            ("Decisions on the checks (95% bootstrap intervals)", organism_table(check)),
        ),
        figures=(
            plot_head_maps(
                check.scores, check.ranking, marked=check.planted, marked_name="planted"
            ),
            plot_tradeoff(check.results, title="The organism's checks: recall and AUROC"),
        ),
    )
