"""Users' own data sets in JSON Lines: one yes/no sample, or one short-answer question, per line.

Owns the two documented schemas, the check of every row (each error names ``file:line`` and the
field, and says what to write instead), and the loaders `load_jsonl` and `load_questions_jsonl`.

**Binary rows** (one yes/no decision each; `load_jsonl`)::

    {"question": "Is Paris the capital of France?", "gold": "yes"}
    {"id": "q2", "question": "What is 2+2?", "label": "5", "gold": false, "context": "..."}

**Question rows** (a short-answer question each; `load_questions_jsonl`, and `load_jsonl` when
the first row has ``answers`` and no ``gold``)::

    {"question": "What is 7 plus 5?", "answers": ["12", "twelve"], "wrong": "13"}

====================  ======================================  ==================================
field                 binary rows                             question rows
====================  ======================================  ==================================
``question``          string, required                        string, required
``gold``              "yes"/"no" (any case) or true/false,    not allowed
                      required
``answers``           string or list of strings, optional     string or list, required (gold
                      (the gold short answer and aliases)     first, then aliases)
``wrong``             not allowed                             string, optional (a wrong answer
                                                              of the same kind; needed for
                                                              yes/no samples)
``kind``              not allowed                             number, year, person, place,
                                                              yesno or other; optional (default:
                                                              `answer_kind`)
``label``             string, optional (the candidate shown:  not allowed
                      "Is the answer {label}?")
``id``                string or integer, optional, unique;    same
                      default ``<file stem>-<line>``
``context``           string, optional                        same
``meta``              any JSON, optional, ignored             same
====================  ======================================  ==================================

Blank lines are skipped; any other key is an error (it is usually a typo).
"""

from __future__ import annotations

import logging
from pathlib import Path

from nasalens.artifacts import as_path, read_file
from nasalens.data.answers import answer_kind, conflicts
from nasalens.data.files import as_object, optional_text, parse_jsonl, text_field, text_list
from nasalens.data.sample import (
    ANSWER_KINDS,
    Question,
    Sample,
    balance,
    binary_samples,
    check_n,
    check_seed,
    subset,
)
from nasalens.errors import NasalensError, quote

logger = logging.getLogger(__name__)

_COMMON = ("id", "question", "context", "meta")
BINARY_KEYS: tuple[str, ...] = (*_COMMON, "gold", "label", "answers")
QUESTION_KEYS: tuple[str, ...] = (*_COMMON, "answers", "wrong", "kind")
_GOLD = {"yes": True, "no": False, "true": True, "false": False}


def _check_keys(row: dict[str, object], allowed: tuple[str, ...], where: str, hint: str) -> None:
    """Reject keys outside ``allowed``, naming them and the allowed ones."""
    unknown = sorted(k for k in row if k not in allowed)
    if unknown:
        raise NasalensError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown)):.200}; {hint} rows allow "
            f"{', '.join(allowed)} (put extra data under 'meta')"
        )


def _row_id(row: dict[str, object], where: str, default: str, seen: dict[str, str]) -> str:
    """Return the row's id (given as a string or integer, else ``default``), checking it is new."""
    raw = row.get("id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        row_id = str(raw)
    elif raw is None or isinstance(raw, str):
        row_id = optional_text(row, "id", where) or default
    else:
        raise NasalensError(
            f"{where}: field 'id' must be a string or an integer, got {type(raw).__name__}; "
            "or leave it out to get <file stem>-<line>"
        )
    if row_id in seen:
        raise NasalensError(
            f"{where}: id {quote(row_id)} is already used at {seen[row_id]}; ids must be unique "
            "(change it, or leave 'id' out to get <file stem>-<line>)"
        )
    seen[row_id] = where
    return row_id


def _gold(row: dict[str, object], where: str) -> bool:
    """Return a binary row's gold decision."""
    value = row.get("gold")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().casefold() in _GOLD:
        return _GOLD[value.strip().casefold()]
    if value is None:
        raise NasalensError(
            f'{where}: field \'gold\' is missing; add "gold": "yes" or "gold": "no" '
            "(or, for short-answer questions, give every row 'answers' and no 'gold')"
        )
    raise NasalensError(
        f'{where}: field \'gold\' must be "yes", "no", true or false, got {quote(value, 60)}'
    )


def _binary_row(row: dict[str, object], where: str, row_id: str, source: str) -> Sample:
    """Check one binary row and make its Sample."""
    _check_keys(row, BINARY_KEYS, where, "binary")
    question = text_field(row, "question", where)
    return Sample(
        id=row_id,
        question=question,
        gold=_gold(row, where),
        label=optional_text(row, "label", where),
        source=source,
        context=optional_text(row, "context", where),
        answers=text_list(row, "answers", where) or (),
    )


def _question_row(row: dict[str, object], where: str, row_id: str, source: str) -> Question:
    """Check one question row and make its Question."""
    if "gold" in row:
        raise NasalensError(
            f"{where}: field 'gold' belongs to binary rows, and this file is read as question "
            "rows (answers, wrong); remove 'gold' here, or make every row a binary row "
            "(question, gold, label) and load it with load_jsonl"
        )
    _check_keys(row, QUESTION_KEYS, where, "question")
    question = text_field(row, "question", where)
    answers = text_list(row, "answers", where)
    if answers is None:
        raise NasalensError(
            f'{where}: field \'answers\' is missing; add e.g. "answers": ["12", "twelve"] '
            "(gold first, then aliases)"
        )
    wrong = optional_text(row, "wrong", where)
    if wrong is not None and conflicts(wrong, answers):
        raise NasalensError(
            f"{where}: the wrong answer {quote(wrong)} reads as one of the answers "
            f"{quote(list(answers))}; give a wrong answer that no alias matches"
        )
    kind = optional_text(row, "kind", where)
    if kind is None:
        kind = answer_kind(question, answers[0])
    elif kind not in ANSWER_KINDS:
        raise NasalensError(
            f"{where}: field 'kind' is {quote(kind)}; use one of {', '.join(ANSWER_KINDS)} "
            "or leave it out"
        )
    return Question(
        id=row_id,
        question=question,
        answers=answers,
        wrong=wrong,
        kind=kind,
        source=source,
        context=optional_text(row, "context", where),
    )


def _rows(
    raw: bytes, name: str, stem: str, *, questions: bool | None
) -> list[tuple[str, Sample | Question]]:
    """Parse a file's rows as binary rows or question rows (None: decide by the first row).

    Returns:
        ``("file:line", item)`` per row, in file order.
    """
    records = parse_jsonl(raw, name)
    if not records:
        raise NasalensError(f"{name}: the file has no rows; write one JSON object per line")
    seen: dict[str, str] = {}
    out: list[tuple[str, Sample | Question]] = []
    for where, value in records:
        row = as_object(value, where)
        if questions is None:
            questions = "gold" not in row and "answers" in row
        row_id = _row_id(row, where, f"{stem}-{where.rsplit(':', 1)[1]}", seen)
        try:
            item = (_question_row if questions else _binary_row)(row, where, row_id, stem)
        except NasalensError as err:
            if str(err).startswith(where):
                raise
            raise NasalensError(f"{where}: {err}") from err
        out.append((where, item))
    return out


def _read(path: str | Path) -> tuple[bytes, Path]:
    """Read a user's file through the validating reader (`artifacts.read_file`)."""
    file = as_path(path, "path")
    return read_file(file, "JSON Lines file"), file


def parse_questions(raw: bytes, name: str, *, source: str) -> list[Question]:
    """Parse question rows from JSON Lines bytes (used for the built-in sets).

    Args:
        raw: The file's bytes.
        name: How the file is named in messages.
        source: The ``source`` of the questions, also the prefix of default ids.

    Returns:
        The questions in file order.

    Raises:
        NasalensError: On any bad row, naming ``name:line``.
    """
    rows = _rows(raw, name, source, questions=True)
    return [q for _, q in rows if isinstance(q, Question)]


def load_questions_jsonl(path: str | Path) -> list[Question]:
    """Load a JSON Lines file of short-answer questions (schema: see the module docstring).

    Args:
        path: The ``.jsonl`` file.

    Returns:
        The questions in file order; ``source`` is the file's stem.

    Raises:
        NasalensError: On a missing file or any bad row (bad JSON, a missing or mistyped field,
            an unknown field, a 'gold' field, a wrong answer equal to an alias, a repeated id);
            the message names ``file:line``.

    Example:
        >>> questions = load_questions_jsonl("my_facts.jsonl")  # doctest: +SKIP
    """
    raw, file = _read(path)
    return parse_questions(raw, str(file), source=file.stem)


def load_jsonl(
    path: str | Path, *, n: int | None = None, seed: int = 0, balanced: bool = True
) -> list[Sample]:
    """Load a JSON Lines file of yes/no samples (schema: see the module docstring).

    A file whose first row has ``answers`` and no ``gold`` is read as question rows and turned
    into samples with `binary_samples` (every row then needs ``wrong``).

    Args:
        path: The ``.jsonl`` file.
        n: How many samples to return after balancing (None: all that balance allows).
        seed: Seed of the subsampling (and, for question rows, of the Yes/No assignment).
        balanced: Whether to subsample binary rows so that Yes and No are balanced (to within
            one). With False every row is kept, and ``n`` takes a seeded subset.

    Returns:
        Samples in file order; ``source`` is the file's stem.

    Raises:
        NasalensError: On a missing file or any bad row, naming ``file:line``; or when
            balancing is impossible (all rows Yes, or all No) or ``n`` is too large.

    Example:
        >>> samples = load_jsonl("my_checks.jsonl", n=100)  # doctest: +SKIP
    """
    check_n(n)
    check_seed(seed)
    if not isinstance(balanced, bool):
        raise NasalensError(f"balanced must be True or False, got {quote(balanced, 60)}")
    raw, file = _read(path)
    rows = _rows(raw, str(file), file.stem, questions=None)
    questions = [(where, q) for where, q in rows if isinstance(q, Question)]
    for where, q in questions:
        if q.wrong is None:
            raise NasalensError(
                f"{where}: field 'wrong' is missing; a yes/no sample needs a wrong answer "
                "(or load the file with load_questions_jsonl)"
            )
    samples = [s for _, s in rows if isinstance(s, Sample)]
    try:
        if questions:
            return binary_samples([q for _, q in questions], n=n, seed=seed)
        if not balanced:
            return subset(samples, n, seed=seed)
        kept = balance(samples, n=n, seed=seed)
    except NasalensError as err:
        hint = "; pass balanced=False to keep every row" if balanced and not questions else ""
        raise NasalensError(f"{file}: {err}{hint}") from err
    logger.info("%s: kept %d of %d rows to balance Yes/No", file, len(kept), len(samples))
    return kept
