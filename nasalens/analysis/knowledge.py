"""Knowledge categories: what a model knows of each question, read from its own short answer.

Owns the paper's appendix-G classification (deterministic-correct, deterministic-wrong,
non-deterministic; high or low confidence by first-token entropy against the median), the
composition of false negatives by category (Table 16) and the FN->TP / TN->FP shifts that a
tuned model makes in each category (Tables 17-18).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nasalens.data.answers import matches, normalize
from nasalens.data.sample import Question, Sample
from nasalens.errors import NasalensError
from nasalens.generation import short_answers
from nasalens.metrics import EvalResult

logger = logging.getLogger(__name__)

#: The knowledge categories, in table order: the short answer matches the gold answer, is an
#: answer that does not match it, or is no answer at all.
CATEGORIES = ("correct", "wrong", "non_deterministic")
#: Confidence levels: first-token entropy at or below the median is "high".
CONFIDENCES = ("high", "low")
#: Phrases that make a short answer non-deterministic: the model declines, says it does not know,
#: or calls the question unanswerable. Compared after `nasalens.data.answers.normalize` (so
#: case, punctuation and apostrophes do not matter), as whole-word spans anywhere in the answer.
NON_ANSWERS = (
    "i don't know",
    "i do not know",
    "don't know",
    "do not know",
    "not sure",
    "unsure",
    "no idea",
    "unknown",
    "unanswerable",
    "cannot be answered",
    "can't be answered",
    "cannot answer",
    "can't answer",
    "cannot be determined",
    "cannot determine",
    "can't determine",
    "impossible to determine",
    "impossible to say",
    "not enough information",
    "insufficient information",
    "no information",
    "no answer",
    "i cannot",
    "i can't",
    "i'm unable",
    "i am unable",
    "not able to",
)
_NON_ANSWERS = tuple(dict.fromkeys(normalize(p) for p in NON_ANSWERS))
_YES_NO = ("yes", "no")
ALL = "all"


def classify_answer(answer: str, answers: Sequence[str]) -> str:
    """Put one short answer into a knowledge category.

    Rules, in order:

    1. Empty (after normalization), "n/a", or containing a phrase of `NON_ANSWERS`:
       ``"non_deterministic"``.
    2. A yes/no question (the first gold answer is "yes" or "no"): the first "yes" or "no" word
       of the answer is the model's answer; ``"correct"`` when it is the gold one, ``"wrong"``
       when it is the other, ``"non_deterministic"`` when the answer has neither word.
    3. Otherwise ``"correct"`` when `nasalens.data.answers.matches` accepts it, else ``"wrong"``.

    Args:
        answer: The model's short answer.
        answers: The gold answer and its aliases.

    Returns:
        One of `CATEGORIES`.

    Raises:
        NasalensError: When ``answers`` is empty.

    Example:
        >>> classify_answer("I don't know.", ["Paris"])
        'non_deterministic'
    """
    if not answers:
        raise NasalensError("classify_answer(): answers is empty; pass the gold answer first")
    text = normalize(answer)
    padded = f" {text} "
    if not text or answer.strip().casefold() == "n/a":
        return "non_deterministic"
    if any(f" {phrase} " in padded for phrase in _NON_ANSWERS):
        return "non_deterministic"
    gold = normalize(answers[0])
    if gold in _YES_NO:
        said = next((w for w in text.split() if w in _YES_NO), None)
        if said is None:
            return "non_deterministic"
        return "correct" if said == gold else "wrong"
    return "correct" if matches(answer, answers) else "wrong"


def gold_answers(item: Question | Sample) -> tuple[str, ...]:
    """Return the gold short answers of a question or sample.

    A sample's ``answers`` when it has them; a native yes/no sample (no label) answers
    "Yes" or "No" by its gold; a positive sample shows its gold answer as its label.

    Raises:
        NasalensError: For a negative sample with a label but no ``answers`` (its gold answer is
            unknown).
    """
    if item.answers:
        return tuple(item.answers)
    assert isinstance(item, Sample)  # a Question always has answers
    if item.label is None:
        return ("Yes",) if item.gold else ("No",)
    if item.gold:
        return (item.label,)
    raise NasalensError(
        f"sample {item.id!r}: its gold short answer is unknown (gold is No and 'answers' is "
        "empty); give the sample its gold answers (Sample(answers=...)) or pass Questions"
    )


@dataclass(frozen=True)
class Knowledge:
    """The knowledge category and confidence of each question, for one model.

    Attributes:
        per_item: One row per input item: ``id``, ``question``, ``answer`` (the model's greedy
            Prompt II answer), ``gold`` (the gold answers joined by " | "), ``first_entropy``
            (nats), ``first_prob``, ``category`` (one of `CATEGORIES`) and ``confidence``
            ("high" when ``first_entropy`` <= ``threshold``, else "low").
        threshold: The median first-token entropy over the distinct questions.
    """

    per_item: pd.DataFrame
    threshold: float

    def __post_init__(self) -> None:
        """Check the columns and the category values."""
        missing = {"id", "category", "confidence"} - set(self.per_item.columns)
        assert not missing, f"Knowledge.per_item lacks {missing}"
        assert set(self.per_item["category"]) <= set(CATEGORIES)

    def __repr__(self) -> str:
        counts = self.per_item["category"].value_counts()
        parts = ", ".join(f"{c}={int(counts.get(c, 0))}" for c in CATEGORIES)
        return f"Knowledge(n={len(self.per_item)}, {parts}, median entropy={self.threshold:.3f})"

    def to_frame(self) -> pd.DataFrame:
        """Return the counts of items per category and confidence (with "all" margins)."""

        def stats(rows: pd.DataFrame) -> dict:
            return {"n": len(rows), "mean_entropy": _mean(rows["first_entropy"])}

        frame = cells(self.per_item, stats)
        frame["share"] = frame["n"] / max(len(self.per_item), 1)
        return frame

    def labels(self, ids: Sequence[str]) -> pd.DataFrame:
        """Return the ``category`` and ``confidence`` of each id, in order.

        Raises:
            NasalensError: When an id has no category (it was not classified).
        """
        table = self.per_item.set_index("id")[["category", "confidence"]]
        missing = [i for i in ids if i not in table.index]
        if missing:
            raise NasalensError(
                f"sample {missing[0]!r} (and {len(missing) - 1} more) has no knowledge category; "
                "classify the same samples that were evaluated"
            )
        return table.loc[list(ids)].reset_index()


def classify_knowledge(
    model: object,
    items: Sequence[Question | Sample],
    *,
    max_new_tokens: int = 16,
    chunk_size: int = 16,
    progress: bool = True,
) -> Knowledge:
    """Sort questions by what ``model`` knows of them, from its own greedy short answer.

    Each distinct question text is answered once with the paper's Prompt II
    (`nasalens.generation.short_answers`); every item asking it gets its category. The
    confidence split uses the median first-token entropy over the distinct questions.

    Args:
        model: A model from `nasalens.load_model` (base or tuned).
        items: Questions, or samples (with ``answers``, native yes/no, or positive; see
            `gold_answers`); ids must be unique.
        max_new_tokens: Longest short answer in tokens.
        chunk_size: Questions per forward pass.
        progress: Show a progress bar.

    Returns:
        The category and confidence of every item.

    Raises:
        NasalensError: When ``items`` is empty, ids repeat, or an item's gold answer is unknown.

    Example:
        >>> known = classify_knowledge(model, nasalens.data.hotpotqa_questions(root))  # doctest: +SKIP
        >>> known.to_frame()                                                          # doctest: +SKIP
    """  # noqa: E501
    if not items:
        raise NasalensError("no questions to classify; pass at least one Question or Sample")
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise NasalensError(f"item id {dup!r} appears twice; ids must be unique")
    golds = [gold_answers(item) for item in items]
    distinct: dict[str, Sample] = {}
    for item in items:
        if item.question not in distinct:
            distinct[item.question] = Sample(f"q{len(distinct)}", item.question, True)
    answered = short_answers(
        model,
        list(distinct.values()),
        max_new_tokens=max_new_tokens,
        chunk_size=chunk_size,
        progress=progress,
    ).set_index("id")
    threshold = float(np.median(answered["first_entropy"]))
    rows = []
    for item, gold in zip(items, golds, strict=True):
        got = answered.loc[distinct[item.question].id].to_dict()
        rows.append(
            {
                "id": item.id,
                "question": item.question,
                "answer": str(got["answer"]),
                "gold": " | ".join(gold),
                "first_entropy": float(got["first_entropy"]),
                "first_prob": float(got["first_prob"]),
                "category": classify_answer(str(got["answer"]), gold),
                "confidence": "high" if float(got["first_entropy"]) <= threshold else "low",
            }
        )
    known = Knowledge(pd.DataFrame(rows), threshold)
    logger.info("%r", known)
    return known


def fn_composition(before: EvalResult, knowledge: Knowledge) -> pd.DataFrame:
    """Break the false negatives down by knowledge category and confidence (Table 16).

    Args:
        before: Yes/No decisions of a model (`nasalens.evaluate`).
        knowledge: The categories of the same samples.

    Returns:
        One row per category x confidence, with "all" margins: ``n_pos`` gold-Yes samples,
        ``n_fn`` of them answered No, ``fn_rate`` = n_fn / n_pos, and ``share_of_fn`` = the
        cell's share of all false negatives.

    Raises:
        NasalensError: When a sample of ``before`` has no category.
    """
    frame = _with_labels(before.per_sample, knowledge)
    total_fn = int((frame["gold"] & ~frame["decision"]).sum())

    def stats(rows: pd.DataFrame) -> dict:
        n_pos = int(rows["gold"].sum())
        n_fn = int((rows["gold"] & ~rows["decision"]).sum())
        return {
            "n_pos": n_pos,
            "n_fn": n_fn,
            "fn_rate": n_fn / n_pos if n_pos else math.nan,
            "share_of_fn": n_fn / total_fn if total_fn else math.nan,
        }

    return cells(frame, stats)


def shift_ratios(before: EvalResult, after: EvalResult, knowledge: Knowledge) -> pd.DataFrame:
    """Count how decisions moved between two models, by knowledge category (Tables 17-18).

    Args:
        before: Decisions of the base model.
        after: Decisions of the tuned model on the same samples.
        knowledge: The categories of those samples (from the base model, by convention).

    Returns:
        One row per category x confidence, with "all" margins: ``n_fn`` false negatives before,
        ``n_fn_to_tp`` of them answered Yes after, ``fn_to_tp`` = their ratio; ``n_tn`` true
        negatives before, ``n_tn_to_fp`` of them answered Yes after, ``tn_to_fp`` = their ratio
        (NaN when a cell has none to move).

    Raises:
        NasalensError: When the two evaluations are not on the same samples, or a sample has no
            category.
    """
    a, b = before.per_sample, after.per_sample
    if list(a["id"]) != list(b["id"]) or list(a["gold"]) != list(b["gold"]):
        diff = set(a["id"]) ^ set(b["id"])
        where = f"sample {sorted(diff)[0]!r} is in only one" if diff else "their order differs"
        raise NasalensError(
            f"before and after must evaluate the same samples in the same order ({where}); "
            "evaluate both models on one sample list"
        )
    frame = _with_labels(a, knowledge)
    frame["after"] = b["decision"].to_numpy()

    def stats(rows: pd.DataFrame) -> dict:
        fn = rows["gold"] & ~rows["decision"]
        tn = ~rows["gold"] & ~rows["decision"]
        n_fn, n_tn = int(fn.sum()), int(tn.sum())
        moved_fn, moved_tn = int((fn & rows["after"]).sum()), int((tn & rows["after"]).sum())
        return {
            "n_fn": n_fn,
            "n_fn_to_tp": moved_fn,
            "fn_to_tp": moved_fn / n_fn if n_fn else math.nan,
            "n_tn": n_tn,
            "n_tn_to_fp": moved_tn,
            "tn_to_fp": moved_tn / n_tn if n_tn else math.nan,
        }

    return cells(frame, stats)


def cells(
    frame: pd.DataFrame,
    stats: Callable[[pd.DataFrame], dict],
    *,
    confidence: bool = True,
) -> pd.DataFrame:
    """Apply ``stats`` to every category x confidence cell of ``frame``, with "all" margins.

    Args:
        frame: Rows with ``category`` and ``confidence`` columns.
        stats: Returns the cell's columns from its rows (possibly none).
        confidence: Split by confidence too; False gives one row per category.

    Returns:
        A tidy frame: ``category``, ``confidence`` (when split), then the columns of ``stats``.
    """
    rows = []
    levels = (*CONFIDENCES, ALL) if confidence else (ALL,)
    for category in (*CATEGORIES, ALL):
        in_cat = frame if category == ALL else frame[frame["category"] == category]
        for level in levels:
            part = in_cat if level == ALL else in_cat[in_cat["confidence"] == level]
            key = (
                {"category": category, "confidence": level}
                if confidence
                else {"category": category}
            )
            rows.append({**key, **stats(part)})
    return pd.DataFrame(rows)


def _with_labels(per_sample: pd.DataFrame, knowledge: Knowledge) -> pd.DataFrame:
    """The per-sample decisions with each sample's category and confidence."""
    labels = knowledge.labels(list(per_sample["id"]))
    frame = per_sample[["id", "gold", "decision"]].reset_index(drop=True).copy()
    frame["gold"] = frame["gold"].astype(bool)
    frame["decision"] = frame["decision"].astype(bool)
    frame["category"] = labels["category"].to_numpy()
    frame["confidence"] = labels["confidence"].to_numpy()
    return frame


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan
