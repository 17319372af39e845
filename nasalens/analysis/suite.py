"""The whole analysis of one sample set in one call: what `nasalens analyze` and reports show.

Owns `analyze()`, which runs the generalization grid, the knowledge categories, the false-negative
composition, the prompting scenarios and (given a tuned model) the decision shifts, and the
`Analysis` that holds them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from nasalens.analysis.generalization import generalization
from nasalens.analysis.knowledge import Knowledge, classify_knowledge, fn_composition, shift_ratios
from nasalens.analysis.scenarios import SCENARIOS, Scenario, Scenarios, run_scenarios
from nasalens.data.sample import Sample
from nasalens.deprecation import renamed_arguments
from nasalens.errors import NasalensError
from nasalens.metrics import EvalResult, evaluate
from nasalens.prompts.templates import CandidateName, InstructionName

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Analysis:
    """Every analysis of one model (and optionally its tuned version) on one sample set.

    Attributes:
        name: The sample set, for titles.
        generalization: The prompt grid (`generalization`).
        knowledge: The knowledge category of each sample, from the base model.
        before: Prompt I decisions of the base model.
        after: Prompt I decisions of the tuned model, or None.
        fn_composition: The base model's false negatives by category (`fn_composition`).
        shifts: FN->TP and TN->FP shifts by category (`shift_ratios`), or None without a tuned
            model.
        scenarios: The base model under the prompting scenarios (`run_scenarios`).
    """

    name: str
    generalization: pd.DataFrame
    knowledge: Knowledge
    before: EvalResult
    after: EvalResult | None
    fn_composition: pd.DataFrame
    shifts: pd.DataFrame | None
    scenarios: Scenarios

    def __repr__(self) -> str:
        tuned = "with" if self.after is not None else "without"
        return (
            f"Analysis({self.name!r}, n={len(self.before.per_sample)}, {tuned} a tuned model, "
            f"{len(self.generalization)} prompt rows)"
        )

    def to_frame(self) -> pd.DataFrame:
        """Return the summary of the Prompt I decisions, before (and after) tuning."""
        rows = [self.before.to_frame().assign(model="base")]
        if self.after is not None:
            rows.append(self.after.to_frame().assign(model="tuned"))
        frame = pd.concat(rows, ignore_index=True)
        return frame[["model", *[c for c in frame.columns if c != "model"]]]


@renamed_arguments(shots="n_shots")
def analyze(
    model: object,
    samples: Sequence[Sample],
    *,
    tuned: object | None = None,
    name: str | None = None,
    n_shots: int = 4,
    pool: Sequence[Sample] | None = None,
    seed: int = 0,
    instructions: Sequence[InstructionName] = ("nasa", "a", "b"),
    candidates: Sequence[CandidateName] = ("yes_no", "true_false", "correct_wrong"),
    which: Sequence[Scenario] = SCENARIOS,
    cot_tokens: int = 128,
    chunk_size: int = 16,
    progress: bool = True,
) -> Analysis:
    """Run every analysis of the paper's appendices and of its sequel on one sample set.

    Args:
        model: The base model (`nasalens.load_model`).
        samples: Yes/No samples with known gold short answers (see
            `nasalens.analysis.knowledge.gold_answers`).
        tuned: A tuned version of the model (any model object), or None.
        name: A title; defaults to the samples' sources.
        n_shots: k of the k-shot prompts of the generalization grid.
        pool: Where k-shot examples come from (see `generalization`).
        seed: Seed of the k-shot examples.
        instructions: Instruction variants of the generalization grid.
        candidates: Candidate pairs of the generalization grid.
        which: The prompting scenarios to run.
        cot_tokens: Longest chain of thought in tokens.
        chunk_size: Rows per forward pass.
        progress: Show progress bars.

    Returns:
        The analysis; `nasalens.plotting.analysis_section` renders it.

    Raises:
        NasalensError: When ``samples`` is empty, or as the analyses it runs.

    Example:
        >>> result = nasalens.analysis.analyze(model, samples, tuned=tuned)  # doctest: +SKIP
        >>> result.shifts                                                    # doctest: +SKIP
    """
    if not samples:
        raise NasalensError("no samples to analyze; pass at least one Sample")
    label = name or "+".join(sorted({s.source for s in samples}))
    known = classify_knowledge(model, samples, chunk_size=chunk_size, progress=progress)
    before = evaluate(model, samples, chunk_size=chunk_size, progress=progress, name=label)
    after = None
    if tuned is not None:
        after = evaluate(tuned, samples, chunk_size=chunk_size, progress=progress, name=label)
    grid = generalization(
        model,
        samples,
        tuned=tuned,
        n_shots=n_shots,
        pool=pool,
        seed=seed,
        instructions=instructions,
        candidates=candidates,
        chunk_size=chunk_size,
        progress=progress,
    )
    scenario = run_scenarios(
        model,
        samples,
        knowledge=known,
        which=which,
        cot_tokens=cot_tokens,
        chunk_size=chunk_size,
        progress=progress,
    )
    return Analysis(
        name=label,
        generalization=grid,
        knowledge=known,
        before=before,
        after=after,
        fn_composition=fn_composition(before, known),
        shifts=None if after is None else shift_ratios(before, after, known),
        scenarios=scenario,
    )
