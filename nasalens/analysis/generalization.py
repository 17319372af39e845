"""Generalization of a Yes/No decision across prompts (the paper's Tables 7, 10 and 11).

Owns the grid of candidate pairs x instruction variants x zero- or k-shot, and the choice of
balanced k-shot examples from a pool disjoint from the evaluated samples.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import pandas as pd
from tqdm.auto import tqdm

from nasalens.data.sample import Sample
from nasalens.deprecation import renamed_arguments
from nasalens.errors import NasalensError
from nasalens.metrics import evaluate
from nasalens.prompts import CANDIDATES, INSTRUCTIONS, binary
from nasalens.prompts.templates import CandidateName, InstructionName

logger = logging.getLogger(__name__)

#: Columns of the generalization table, in order.
COLUMNS = (
    "model",
    "candidates",
    "instruction",
    "shots",
    "n",
    "accuracy",
    "f1",
    "precision",
    "recall",
    "share_yes",
    "auroc",
)


def pick_shots(pool: Sequence[Sample], n_shots: int, *, seed: int = 0) -> tuple[Sample, ...]:
    """Draw ``n_shots`` solved examples from ``pool``, balanced between Yes and No.

    ``n_shots // 2`` positives and the rest negatives are drawn with ``seed`` and shuffled.

    Raises:
        NasalensError: When the pool has too few samples of either answer.
    """
    rng = random.Random(seed)
    pos = [s for s in pool if s.gold]
    neg = [s for s in pool if not s.gold]
    want_pos, want_neg = n_shots // 2, n_shots - n_shots // 2
    if len(pos) < want_pos or len(neg) < want_neg:
        raise NasalensError(
            f"{n_shots}-shot prompts need {want_pos} Yes and {want_neg} No examples, but the "
            f"pool has {len(pos)} and {len(neg)}; pass a larger pool or fewer shots"
        )
    shots = rng.sample(pos, want_pos) + rng.sample(neg, want_neg)
    rng.shuffle(shots)
    return tuple(shots)


def _split(
    samples: Sequence[Sample], pool: Sequence[Sample] | None, n_shots: int, seed: int
) -> tuple[list[Sample], tuple[Sample, ...]]:
    """The samples to evaluate and the k-shot examples (from ``pool``, or held out)."""
    if n_shots == 0:
        return list(samples), ()
    if pool is None:
        chosen = pick_shots(samples, n_shots, seed=seed)
        held = {s.id for s in chosen}
        return [s for s in samples if s.id not in held], chosen
    ids = {s.id for s in samples}
    questions = {s.question for s in samples}
    for s in pool:
        if s.id in ids or s.question in questions:
            raise NasalensError(
                f"pool sample {s.id!r} is also an evaluated sample (same id or question); the "
                "pool must be disjoint from the samples"
            )
    return list(samples), pick_shots(pool, n_shots, seed=seed)


@renamed_arguments(shots="n_shots")
def generalization(
    model: object,
    samples: Sequence[Sample],
    *,
    tuned: object | None = None,
    n_shots: int = 4,
    pool: Sequence[Sample] | None = None,
    seed: int = 0,
    instructions: Sequence[InstructionName] = ("nasa", "a", "b"),
    candidates: Sequence[CandidateName] = ("yes_no", "true_false", "correct_wrong"),
    chunk_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate Yes/No decisions for every candidate pair, instruction and shot count.

    The same ``n_shots`` examples serve every prompt of the grid, each answered with its own
    candidate words.

    Args:
        model: A model from `nasalens.load_model` (the base model).
        samples: Yes/No samples.
        tuned: A second model evaluated on the same grid (e.g. after NASA); any model object.
        n_shots: k of the k-shot prompts; 0 runs zero-shot only.
        pool: Where the k-shot examples come from; it must share no id or question with
            ``samples``. None holds ``n_shots`` examples out of ``samples`` (balanced, seeded) and
            evaluates the rest, so that every row has the same ``n``.
        seed: Seed of the choice of examples.
        instructions: Instruction variants (`nasalens.prompts.INSTRUCTIONS`).
        candidates: Candidate pairs (`nasalens.prompts.CANDIDATES`).
        chunk_size: Rows per forward pass.
        progress: Show a progress bar over the grid.

    Returns:
        A tidy frame with `COLUMNS`: ``model`` ("base" or "tuned"), ``candidates``,
        ``instruction``, ``shots`` (0 or ``n_shots``), ``n``, then accuracy, F1, precision,
        recall, the share of positive answers and AUROC of P(positive) (discrimination,
        unaffected by a shift).

    Raises:
        NasalensError: On an unknown instruction or candidate pair, ``n_shots`` below 0, a pool
            that overlaps ``samples`` or lacks examples of one answer.

    Example:
        >>> table = nasalens.analysis.generalization(model, samples, tuned=tuned)  # doctest: +SKIP
    """
    bad: list[str] = [i for i in instructions if i not in INSTRUCTIONS]
    bad += [c for c in candidates if c not in CANDIDATES]
    if bad:
        raise NasalensError(
            f"unknown instruction or candidate pair {bad}; use {sorted(INSTRUCTIONS)} and "
            f"{sorted(CANDIDATES)}"
        )
    if n_shots < 0:
        raise NasalensError(f"n_shots must be 0 or more, got {n_shots}")
    evaluated, examples = _split(samples, pool, n_shots, seed)
    if not evaluated:
        raise NasalensError("no samples left to evaluate; pass more samples or a pool")
    models = {"base": model} if tuned is None else {"base": model, "tuned": tuned}
    grid = [
        (name, cand, instr, k)
        for name in models
        for cand in candidates
        for instr in instructions
        for k in dict.fromkeys((0, n_shots))
    ]
    rows = []
    for name, cand, instr, k in tqdm(grid, desc="prompts", disable=not progress):
        template = binary(instr, cand, shots=examples if k else ())
        result = evaluate(
            models[name], evaluated, template=template, chunk_size=chunk_size, progress=False
        )
        s = result.summary
        row = {"model": name, "candidates": cand, "instruction": instr, "shots": k}
        rows.append({**row, **{c: s[c] for c in COLUMNS[4:]}})
        logger.info("%s %s %s %d-shot: accuracy %.3f", name, cand, instr, k, s["accuracy"])
    return pd.DataFrame(rows, columns=list(COLUMNS))
