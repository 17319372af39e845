"""GSM8K (Cobbe et al. 2021) as answer verification: "Is the answer {N}?".

Owns reading ``gsm8k/test.jsonl`` (``question``, ``answer`` ending in ``#### N``), the gold
number, and a seeded plausible wrong number per problem (see `answers.wrong_number`).
"""

from __future__ import annotations

import logging
import random
import re
from decimal import Decimal
from pathlib import Path

from nasalens.data.answers import normalize, wrong_number
from nasalens.data.files import object_rows, text_field
from nasalens.data.sample import Question, Sample, binary_samples, subset
from nasalens.errors import NasalensError

logger = logging.getLogger(__name__)

FOLDER = "gsm8k"
FILENAME = "test.jsonl"
_FINAL = re.compile(r"####\s*([-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*$")


def _gold(solution: str, where: str) -> tuple[str, ...]:
    """Return the final number as (plain digits, then a comma-grouped alias when different)."""
    found = _FINAL.search(solution)
    if found is None:
        raise NasalensError(
            f"{where}: field 'answer' does not end with '#### <number>'; "
            "pass the original GSM8K file"
        )
    plain = normalize(found.group(1))  # "2,125" -> "2125", "18.50" -> "18.5", like wrong numbers
    grouped = f"{Decimal(plain):,f}"
    return (plain,) if grouped == plain else (plain, grouped)


def gsm8k_questions(
    path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Question]:
    """Load GSM8K problems as short-answer questions with a wrong number each.

    Args:
        path: ``test.jsonl`` (or another split in the same format), its folder, or a data root
            holding ``gsm8k/``; None: the root in ``NASALENS_DATA_DIR``.
        n: How many questions to return: a seeded subset in file order (None: all).
        seed: Seed of the wrong numbers and of the subset.

    Returns:
        Questions with ids ``gsm8k-<index>`` (index from 0, four digits), kind "number",
        ``answers`` = (gold in plain digits, comma-grouped alias when 1000 or more), and
        ``wrong`` = gold plus or minus a small offset, or times or divided by 2 (never the gold,
        same sign and integer-ness).

    Raises:
        NasalensError: When the file is missing, a row is malformed (naming ``file:line``), or
            ``n`` is out of range.
    """
    file, rows = object_rows(path, FOLDER, FILENAME, n=n, seed=seed)
    questions = []
    for index, (where, row) in enumerate(rows):
        question = text_field(row, "question", where)
        solution = text_field(row, "answer", where)
        answers = _gold(solution, where)
        qid = f"gsm8k-{index:04d}"
        questions.append(
            Question(
                id=qid,
                question=question,
                answers=answers,
                wrong=wrong_number(answers[0], random.Random(f"{seed}:{qid}")),
                kind="number",
                source="gsm8k",
            )
        )
    return subset(questions, n, seed=seed, where=str(file))


def load_gsm8k(
    path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Sample]:
    """Load GSM8K as balanced yes/no samples: the problem, and the gold or a wrong number.

    Args:
        path: ``test.jsonl``, its folder, or a data root holding ``gsm8k/``; None: the root in
            ``NASALENS_DATA_DIR``.
        n: How many samples to return, one per problem (None: one per problem in the file).
        seed: Seed of the wrong numbers, the subset and the Yes/No assignment.

    Returns:
        Samples with ids ``gsm8k-<index>/yes`` (label = the gold number) or ``/no`` (label = the
        wrong number), in file order, balanced to within one.

    Raises:
        NasalensError: When the file is missing, a row is malformed, or ``n`` is out of range.

    Example:
        >>> samples = load_gsm8k("../shared/data", n=200)  # doctest: +SKIP
    """
    questions = gsm8k_questions(path, seed=seed)
    try:
        return binary_samples(questions, n=n, seed=seed)
    except NasalensError as err:
        raise NasalensError(f"gsm8k: {err}") from err
