"""AR-LSAT (Zhong et al. 2021): analytical-reasoning multiple choice as yes/no option checks.

Owns reading ``ar_lsat/AR_DevelopmentData.json`` (passages, each with ``questions`` holding
``options`` and an ``answer`` letter) and turning each question into two samples: its correct
option and one seeded wrong option.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

from nasalens.data.files import as_object, object_rows, text_field
from nasalens.data.sample import Sample, subset
from nasalens.errors import NasalensError, quote

logger = logging.getLogger(__name__)

FOLDER = "ar_lsat"
FILENAME = "AR_DevelopmentData.json"
LETTERS = "ABCDEFGH"


def strip_letter(option: str, letter: str) -> str:
    """Remove a leading "A)", "(A)" or "A." that repeats the option's own letter.

    Args:
        option: The option text, e.g. "B) Juan is assigned to locker 5."
        letter: The option's letter ("B").

    Returns:
        The text without the prefix (unchanged when there is none).
    """
    pattern = rf"\(?{letter}\)\s*|{letter}\.\s+"
    stripped = re.sub(rf"^\s*(?:{pattern})", "", option, count=1)
    return stripped.strip() or option.strip()


def _questions(rows: list[tuple[str, dict[str, object]]]) -> list[tuple[str, str, list[str], int]]:
    """Read (id prefix, passage + question, options, index of the answer) per question."""
    out = []
    for where, passage_row in rows:
        passage = text_field(passage_row, "passage", where)
        passage_id = passage_row.get("id")
        items = passage_row.get("questions")
        if not isinstance(passage_id, str) or not passage_id.strip():
            raise NasalensError(f"{where}: field 'id' must be a non-empty string")
        if not isinstance(items, list) or not items:
            raise NasalensError(f"{where}: field 'questions' must be a non-empty list")
        for k, item in enumerate(items):
            q_where = f"{where} question {k}"
            row = as_object(item, q_where)
            question = text_field(row, "question", q_where)
            options = row.get("options")
            if not isinstance(options, list) or not 2 <= len(options) <= len(LETTERS):
                raise NasalensError(
                    f"{q_where}: field 'options' must be a list of 2 to {len(LETTERS)} strings"
                )
            texts = [
                strip_letter(text_field({"option": o}, "option", q_where), LETTERS[i])
                for i, o in enumerate(options)
            ]
            answer = row.get("answer")
            letters = LETTERS[: len(texts)]
            if not isinstance(answer, str) or not answer.strip() or answer.strip() not in letters:
                raise NasalensError(
                    f"{q_where}: field 'answer' must be one of the letters {', '.join(letters)}, "
                    f"got {quote(answer, 60)}"
                )
            q_number = str(row.get("questionId") or k + 1).strip()
            prefix = f"arlsat-{passage_id.strip()}-{q_number}"
            out.append((prefix, f"{passage} {question}", texts, letters.index(answer.strip())))
    return out


def load_ar_lsat(
    path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Sample]:
    """Load AR-LSAT as yes/no option checks, two per question (balanced).

    Each question gives the sample of its correct option (gold Yes) and of one seeded wrong
    option (gold No). The question text is the passage, a space, and the question; the label is
    the option text without any letter prefix.

    Args:
        path: ``AR_DevelopmentData.json`` (or another split in the same format), its folder, or
            a data root holding ``ar_lsat/``; None: the root in ``NASALENS_DATA_DIR``.
        n: How many samples to return: ``ceil(n/2)`` seeded questions, both samples each (with
            an odd ``n`` the last question gives only its correct option). None: all questions.
        seed: Seed of the wrong options and of the subset.

    Returns:
        Samples with ids ``arlsat-<passage id>-<question number>-<letter>``, in file order,
        options in letter order within a question.

    Raises:
        NasalensError: When the file is missing, an item is malformed (the message names the
            passage and question), ids repeat, or ``n`` is out of range.

    Example:
        >>> samples = load_ar_lsat("../shared/data", n=100)  # doctest: +SKIP
    """
    file, rows = object_rows(path, FOLDER, FILENAME, n=n, seed=seed)
    questions = _questions(rows)
    prefixes = [q[0] for q in questions]
    if len(set(prefixes)) != len(prefixes):
        dup = next(p for p in prefixes if prefixes.count(p) > 1)
        raise NasalensError(f"{file}: question id {quote(dup)} appears twice; ids must be unique")
    if n is not None:
        if not 1 <= n <= 2 * len(questions):
            raise NasalensError(
                f"{file}: n={quote(n)} but {len(questions)} questions give at most "
                f"{2 * len(questions)} samples; pass n<={2 * len(questions)} or n=None"
            )
        questions = subset(questions, (n + 1) // 2, seed=seed)
    samples = []
    for prefix, question, options, correct in questions:
        others = [i for i, o in enumerate(options) if o.casefold() != options[correct].casefold()]
        if not others:
            raise NasalensError(f"{file}: question {quote(prefix)} has no option unlike its answer")
        wrong = random.Random(f"{seed}:{prefix}").choice(others)
        for i in sorted((correct, wrong)):
            samples.append(
                Sample(
                    id=f"{prefix}-{LETTERS[i]}",
                    question=question,
                    gold=i == correct,
                    label=options[i],
                    source="ar_lsat",
                    answers=(options[correct],),
                )
            )
    if n is not None and n % 2:  # the last question keeps only its correct option
        last_negative = max(i for i, s in enumerate(samples) if not s.gold)
        del samples[last_negative]
    logger.info("%s: %d AR-LSAT samples from %d questions", file, len(samples), len(questions))
    return samples
