"""The two record types every loader returns: short-answer questions and binary samples.

A `Question` is raw material (a question, its gold answers, a plausible wrong answer); a `Sample`
is one yes/no decision shown to the model. `binary_samples` turns questions into balanced samples.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from nasalens.errors import NasalensError

AnswerKind = Literal["number", "year", "person", "place", "yesno", "other"]
ANSWER_KINDS: tuple[str, ...] = ("number", "year", "person", "place", "yesno", "other")
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """One binary decision: a question, optionally a candidate answer, and the gold Yes/No.

    Attributes:
        id: Unique, stable identifier, e.g. ``"gsm8k-0017/no"``.
        question: The question text, without any instruction.
        gold: The correct decision: True when the right answer is the positive candidate ("Yes").
        label: The candidate answer shown with the question ("Is the answer {label}?"), or None
            for native yes/no questions (StrategyQA).
        source: The data set it came from.
        context: Optional supporting text (facts, paragraphs).
        answers: The gold short answer and its aliases, when known (probe sets use them).
    """

    id: str
    question: str
    gold: bool
    label: str | None = None
    source: str = "custom"
    context: str | None = None
    answers: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        """Reject empty ids and questions, and non-bool gold values."""
        if not isinstance(self.id, str) or not self.id.strip():
            raise NasalensError(f"sample id {self.id!r}: the id must be a non-empty string")
        if not isinstance(self.question, str) or not self.question.strip():
            raise NasalensError(f"sample {self.id!r}: the question must be a non-empty string")
        if not isinstance(self.gold, bool):
            raise NasalensError(
                f"sample {self.id!r}: gold must be a bool (True for Yes), got {self.gold!r}"
            )
        if self.label is not None and (not isinstance(self.label, str) or not self.label.strip()):
            raise NasalensError(
                f"sample {self.id!r}: label must be a non-empty string or None, got {self.label!r}"
            )
        if not isinstance(self.answers, tuple):
            object.__setattr__(self, "answers", tuple(self.answers))


@dataclass(frozen=True)
class Question:
    """A short-answer question: the raw material of probe sets and of yes/no checks.

    Attributes:
        id: Unique, stable identifier.
        question: The question text.
        answers: The gold answer first, then accepted aliases (at least one).
        wrong: A plausible wrong answer of the same kind, or None when none is known.
        kind: What sort of answer it is (number, year, person, place, yesno, other).
        source: The data set it came from.
        context: Optional supporting text.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    wrong: str | None = None
    kind: str = "other"
    source: str = "custom"
    context: str | None = None

    def __post_init__(self) -> None:
        """Reject empty fields, a wrong answer that is also gold, and unknown kinds."""
        if not isinstance(self.id, str) or not self.id.strip():
            raise NasalensError(f"question id {self.id!r}: the id must be a non-empty string")
        if not isinstance(self.question, str) or not self.question.strip():
            raise NasalensError(f"question {self.id!r}: the question must be a non-empty string")
        if isinstance(self.answers, str) or not isinstance(self.answers, Sequence):
            raise NasalensError(f"question {self.id!r}: answers must be a list of strings")
        answers = tuple(self.answers)
        if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise NasalensError(
                f"question {self.id!r}: answers must hold at least one non-empty string"
            )
        object.__setattr__(self, "answers", answers)
        if self.wrong is not None:
            if not isinstance(self.wrong, str) or not self.wrong.strip():
                raise NasalensError(f"question {self.id!r}: wrong must be a non-empty string")
            if self.wrong.strip().casefold() in {a.strip().casefold() for a in answers}:
                raise NasalensError(
                    f"question {self.id!r}: the wrong answer {self.wrong!r} is one of the gold "
                    "answers"
                )
        if self.kind not in ANSWER_KINDS:
            raise NasalensError(
                f"question {self.id!r}: kind {self.kind!r} is not one of {ANSWER_KINDS}"
            )

    def positive(self) -> Sample:
        """Return the sample that shows the gold answer (expected decision: Yes)."""
        return Sample(
            id=f"{self.id}/yes",
            question=self.question,
            gold=True,
            label=self.answers[0],
            source=self.source,
            context=self.context,
            answers=self.answers,
        )

    def negative(self) -> Sample:
        """Return the sample that shows the wrong answer (expected decision: No).

        Raises:
            NasalensError: When the question has no wrong answer.
        """
        if self.wrong is None:
            raise NasalensError(
                f"question {self.id!r} has no wrong answer; give it one (field 'wrong') or use "
                "only its positive sample"
            )
        return replace(self.positive(), id=f"{self.id}/no", gold=False, label=self.wrong)


def _check_n(n: int | None, available: int, what: str) -> None:
    """Reject a requested size below 1 or above what is available."""
    if n is None:
        return
    if n < 1:
        raise NasalensError(f"n={n}: ask for at least one sample, or pass n=None for all")
    if n > available:
        raise NasalensError(
            f"n={n} but only {available} can be taken from {what}; pass n<={available} or n=None"
        )


def subset(items: Sequence[T], n: int | None, *, seed: int = 0) -> list[T]:
    """Return a seeded subset of ``n`` items in their original order.

    Args:
        items: Anything to choose from.
        n: How many to keep (None: all).
        seed: Seed of the choice.

    Returns:
        The kept items, in the order of ``items``.

    Raises:
        NasalensError: When ``n`` is below 1 or above ``len(items)``.
    """
    if n is None:
        return list(items)
    _check_n(n, len(items), f"{len(items)} items")
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def binary_samples(
    questions: Sequence[Question], *, n: int | None = None, pairs: bool = False, seed: int = 0
) -> list[Sample]:
    """Turn short-answer questions into balanced yes/no samples.

    Args:
        questions: Questions with a wrong answer each.
        n: How many samples to return; a seeded subset of the questions is used (None: all).
        pairs: If True, every question gives both its positive and its negative sample (with an
            odd ``n``, the last question gives only its positive one). If False, each question
            gives one sample, and a seeded half of them are positive.
        seed: Seed of the subset and of the positive/negative assignment.

    Returns:
        Samples in the order of ``questions``; balanced to within one sample (positives first
        to get the extra one).

    Raises:
        NasalensError: When a question has no wrong answer, ids repeat, or ``n`` is below 1 or
            above what the questions give.
    """
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        counts = Counter(ids)
        dup = next(i for i in ids if counts[i] > 1)
        raise NasalensError(f"question id {dup!r} appears more than once; ids must be unique")
    _check_n(n, len(questions) * (2 if pairs else 1), f"{len(questions)} questions")
    if n is not None:
        questions = subset(questions, (n + 1) // 2 if pairs else n, seed=seed)
    if pairs:
        samples = [s for q in questions for s in (q.positive(), q.negative())]
        return samples[:n] if n is not None else samples
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    positive = set(order[: (len(order) + 1) // 2])
    return [q.positive() if i in positive else q.negative() for i, q in enumerate(questions)]


def balance(samples: Sequence[Sample], *, n: int | None = None, seed: int = 0) -> list[Sample]:
    """Subsample native yes/no samples so that positives and negatives are balanced.

    The larger class is cut down to the size of the smaller one by seeded sampling. With ``n``,
    each class gives ``n // 2`` samples and an odd one out comes from the class with more left.

    Args:
        samples: Samples with both gold values present.
        n: How many samples to return (None: as many as balance allows).
        seed: Seed of the subsampling.

    Returns:
        The kept samples, in their original order.

    Raises:
        NasalensError: When a class is empty or ``n`` is below 1 or above what balance allows.
    """
    pos = [i for i, s in enumerate(samples) if s.gold]
    neg = [i for i, s in enumerate(samples) if not s.gold]
    if not pos or not neg:
        missing = "positive (gold Yes)" if not pos else "negative (gold No)"
        raise NasalensError(f"no {missing} samples among {len(samples)}; a balanced set needs both")
    small = min(len(pos), len(neg))
    _check_n(n, 2 * small + (len(pos) != len(neg)), f"{len(pos)} Yes and {len(neg)} No samples")
    n_pos = n_neg = small if n is None else n // 2
    if n is not None and n % 2:
        if len(pos) - n_pos >= len(neg) - n_neg:
            n_pos += 1
        else:
            n_neg += 1
    rng = random.Random(seed)
    keep = set(rng.sample(pos, n_pos)) | set(rng.sample(neg, n_neg))
    return [s for i, s in enumerate(samples) if i in keep]
