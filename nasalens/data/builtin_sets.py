"""The built-in short-answer sets written for nasalens: ``probe`` (170) and ``eval`` (200).

Owns loading ``nasalens/data/builtin/{probe,eval}.jsonl`` (package data, read through
`importlib.resources`): simple facts a 135M instruction model can know (capitals, arithmetic,
science, authors, counts, colours, animals, languages, currencies). The two share no question.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Literal

from nasalens.data.jsonl import parse_questions
from nasalens.data.sample import Question, Sample, binary_samples
from nasalens.errors import NasalensError, quote

BuiltinName = Literal["probe", "eval"]
BUILTIN_NAMES: tuple[str, ...] = ("probe", "eval")


@functools.cache
def _load(name: str) -> tuple[Question, ...]:
    """Parse one built-in file once per process."""
    file = resources.files("nasalens.data").joinpath("builtin").joinpath(f"{name}.jsonl")
    raw = file.read_bytes()
    return tuple(
        parse_questions(raw, f"nasalens/data/builtin/{name}.jsonl", source=f"builtin-{name}")
    )


def builtin_questions(name: BuiltinName) -> list[Question]:
    """Return a built-in set of short-answer questions.

    Args:
        name: "probe" (170 questions, for probing sets and head finding) or "eval" (200 other
            questions, for evaluation).

    Returns:
        Questions with ids ``<name>-<topic>-<key>``, each with gold answer and aliases, a
        plausible wrong answer of the same kind, and its kind; ``source`` is ``builtin-<name>``.

    Raises:
        NasalensError: When ``name`` is not "probe" or "eval".

    Example:
        >>> len(builtin_questions("probe"))
        170
    """
    if name not in BUILTIN_NAMES:
        raise NasalensError(f"built-in set {quote(name)} does not exist; use 'probe' or 'eval'")
    return list(_load(name))


def builtin(
    name: BuiltinName, *, n: int | None = None, seed: int = 0, pairs: bool = False
) -> list[Sample]:
    """Return a built-in set as balanced yes/no samples ("Is the answer {label}?").

    Args:
        name: "probe" or "eval".
        n: How many samples (None: one per question, or two with ``pairs``).
        seed: Seed of the subset and of the Yes/No assignment.
        pairs: Whether each question gives both its positive and its negative sample.

    Returns:
        Samples ``<question id>/yes`` (label = gold answer) or ``/no`` (label = wrong answer),
        balanced to within one.

    Raises:
        NasalensError: When ``name`` is unknown or ``n`` is out of range.

    Example:
        >>> samples = builtin("eval", n=100)
        >>> sum(s.gold for s in samples)
        50
    """
    return binary_samples(builtin_questions(name), n=n, seed=seed, pairs=pairs)
