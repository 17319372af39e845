"""The two record types every loader returns: short-answer questions and binary samples.

A `Question` is raw material (a question, its gold answers, a plausible wrong answer); a `Sample`
is one yes/no decision shown to the model. `binary_samples` turns questions into balanced samples.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from nasalens.errors import NasalensError, quote

AnswerKind = Literal["number", "year", "person", "place", "yesno", "other"]
ANSWER_KINDS: tuple[str, ...] = ("number", "year", "person", "place", "yesno", "other")
T = TypeVar("T")
#: Control characters no text can mean: all but tab, newline and carriage return.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: The same and tab, newline and carriage return: nothing an id can mean.
LINE_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_BLANK = "must be a non-empty string"


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
        """Reject empty or non-text fields, control characters, and non-bool gold values."""
        check_text(self.id, "sample id", single_line=True)
        check_text(self.question, f"sample {quote(self.id)}: the question", blank=_BLANK)
        if not isinstance(self.gold, bool):
            raise NasalensError(
                f"sample {quote(self.id)}: gold must be a bool (True for Yes), "
                f"got {quote(self.gold, 60)}"
            )
        for name in ("label", "context", "source"):
            if getattr(self, name) is not None:
                check_text(getattr(self, name), f"sample {quote(self.id)}: {name}")
        answers = _answers(self.answers, f"sample {quote(self.id)}", allow_empty=True)
        object.__setattr__(self, "answers", answers)


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
        """Reject empty fields, control characters, a wrong answer that is gold, unknown kinds."""
        check_text(self.id, "question id", single_line=True)
        owner = f"question {quote(self.id)}"
        check_text(self.question, f"{owner}: the question", blank=_BLANK)
        answers = _answers(self.answers, owner, allow_empty=False)
        object.__setattr__(self, "answers", answers)
        if self.context is not None:
            check_text(self.context, f"{owner}: context")
        check_text(self.source, f"{owner}: source")
        if self.wrong is not None:
            check_text(self.wrong, f"{owner}: wrong")
            if self.wrong.strip().casefold() in {a.strip().casefold() for a in answers}:
                raise NasalensError(
                    f"{owner}: the wrong answer {quote(self.wrong)} is one of the gold answers"
                )
        if self.kind not in ANSWER_KINDS:
            raise NasalensError(f"{owner}: kind {quote(self.kind)} is not one of {ANSWER_KINDS}")

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
                f"question {quote(self.id)} has no wrong answer; give it one (field 'wrong') or "
                "use only its positive sample"
            )
        return replace(self.positive(), id=f"{self.id}/no", gold=False, label=self.wrong)


def check_text(
    value: object, what: str, *, single_line: bool = False, blank: str = "is empty"
) -> str:
    """Return ``value`` if it is visible text that can be written as UTF-8; else raise.

    Args:
        value: The value to check.
        what: How the message names it, e.g. "sample 'q1': the question".
        single_line: Also reject tab, newline and carriage return (for ids).
        blank: What the message says of blank text.

    Raises:
        NasalensError: When ``value`` is not a string, is blank, holds a lone surrogate, or
            holds a control character no text can mean (tab and newline are allowed unless
            ``single_line``).
    """
    if not isinstance(value, str):
        raise NasalensError(
            f"{what} must be a string, got {type(value).__name__} {quote(value, 60)}"
        )
    if not value.strip():
        raise NasalensError(f"{what} {blank}; give it visible text or remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise NasalensError(
            f"{what} holds an invalid character (a lone surrogate); fix the text's encoding"
        ) from err
    bad = (LINE_CONTROL if single_line else CONTROL).search(value)
    if bad is not None:
        raise NasalensError(
            f"{what} holds the control character {bad.group()!r} at position {bad.start()}; "
            "remove it (only tab and newline may appear in text, and none in ids)"
        )
    return value


def _answers(value: object, owner: str, *, allow_empty: bool) -> tuple[str, ...]:
    """Return answers as a tuple of checked strings."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise NasalensError(
            f"{owner}: answers must be a list of strings, got {type(value).__name__}"
        )
    answers = tuple(value)
    if not answers and not allow_empty:
        raise NasalensError(f"{owner}: answers must hold at least one non-empty string")
    for i, answer in enumerate(answers):
        check_text(answer, f"{owner}: answers item {i}")
    return answers


def check_n(n: object, what: str = "n") -> int | None:
    """Return a requested size ``n`` if it is None or a whole number of at least 1.

    Raises:
        NasalensError: When it is not an int (a bool, a string, a float) or is below 1.
    """
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int):
        raise NasalensError(
            f"{what} must be a whole number or None, got {type(n).__name__} {quote(n, 60)}"
        )
    if n < 1:
        raise NasalensError(
            f"{what}={quote(n, 60)}: ask for at least one sample, or pass {what}=None for all"
        )
    return n


def check_seed(seed: object) -> int:
    """Return ``seed`` if it is a whole number.

    Raises:
        NasalensError: When it is not an int.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise NasalensError(
            f"seed must be a whole number, got {type(seed).__name__} {quote(seed, 60)}"
        )
    return seed


def _check_n(n: int | None, available: int, what: str) -> None:
    """Reject a requested size below 1 or above what is available."""
    if check_n(n) is None:
        return
    assert n is not None
    if n > available:
        raise NasalensError(
            f"n={quote(n)} but only {available} can be taken from {what}; pass n<={available} or "
            "n=None"
        )


def subset(
    items: Sequence[T], n: int | None, *, seed: int = 0, where: str | None = None
) -> list[T]:
    """Return a seeded subset of ``n`` items in their original order.

    Args:
        items: Anything to choose from.
        n: How many to keep (None: all).
        seed: Seed of the choice.
        where: What the items came from (a file), named at the start of an error.

    Returns:
        The kept items, in the order of ``items``.

    Raises:
        NasalensError: When ``n`` is below 1 or above ``len(items)``.
    """
    if n is None:
        return list(items)
    check_seed(seed)
    try:
        _check_n(n, len(items), f"{len(items)} items")
    except NasalensError as err:
        if where is None:
            raise
        raise NasalensError(f"{where}: {err}") from err
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
        raise NasalensError(f"question id {quote(dup)} appears more than once; ids must be unique")
    check_seed(seed)
    if not isinstance(pairs, bool):
        raise NasalensError(f"pairs must be True or False, got {quote(pairs, 60)}")
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
    check_seed(seed)
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
