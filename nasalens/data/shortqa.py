"""Open-domain short-answer QA: NQ-open and HotpotQA, as questions and as yes/no samples.

Owns reading ``nq_open/NQ-open.dev.jsonl`` and ``hotpotqa/hotpot_dev_distractor_100.json``, the
answer kind of each question, and `add_wrong_answers`: a wrong answer borrowed from another
question of the same kind.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from nasalens.data.answers import answer_kind, as_number, conflicts, normalize, wrong_number
from nasalens.data.files import object_rows, text_field, text_list
from nasalens.data.sample import (
    Question,
    Sample,
    binary_samples,
    check_n,
    subset,
)
from nasalens.errors import NasalensError

logger = logging.getLogger(__name__)

NQ_FOLDER, NQ_FILENAME = "nq_open", "NQ-open.dev.jsonl"
HOTPOT_FOLDER, HOTPOT_FILENAME = "hotpotqa", "hotpot_dev_distractor_100.json"
_DRAWS = 20


def _wh_word(question: str) -> str:
    """The first wh-word of a question ("when", "what", ...), or "" when there is none."""
    for word in question.casefold().split():
        if word in ("who", "whom", "whose", "when", "where", "what", "which", "how", "why"):
            return word
    return ""


def _borrow(q: Question, pool: Sequence[Question], rng: random.Random) -> str | None:
    """Return the gold answer of another question in ``pool`` that no alias of ``q`` matches."""
    if not any(p.id != q.id for p in pool[:2]):  # ids are unique: two entries suffice
        return None
    for _ in range(_DRAWS):
        other = pool[rng.randrange(len(pool))]
        if other.id != q.id and not conflicts(other.answers[0], q.answers):
            return other.answers[0]
    others = [p for p in pool if p.id != q.id]
    rng.shuffle(others)
    return next((p.answers[0] for p in others if not conflicts(p.answers[0], q.answers)), None)


def add_wrong_answers(questions: Sequence[Question], *, seed: int = 0) -> list[Question]:
    """Give each question without a wrong answer one, borrowed from another question.

    The wrong answer is the gold answer of another question of the same kind (for kind
    "other", preferably one with the same wh-word, so dates meet dates), drawn with a seed per
    question, and never one that reads as an alias of this question's answers (see
    `answers.conflicts`). Fallbacks when the kind has no usable member:

    - yesno: the opposite answer ("yes" <-> "no");
    - number and year: a perturbed gold number (`answers.wrong_number`);
    - person, place, other: the gold answer of any other non-yes/no question.

    Questions still without a wrong answer (a set of one) are dropped, with a log warning.

    Args:
        questions: Questions with unique ids; existing wrong answers are kept.
        seed: Seed of the draws.

    Returns:
        The questions that have a wrong answer, in their original order.
    """
    by_key: dict[tuple[str, str], list[Question]] = defaultdict(list)
    by_kind: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        by_key[(q.kind, _wh_word(q.question) if q.kind == "other" else "")].append(q)
        by_kind[q.kind].append(q)
    any_kind = [q for q in questions if q.kind != "yesno"]
    out: list[Question] = []
    dropped = []
    for q in questions:
        if q.wrong is not None:
            out.append(q)
            continue
        rng = random.Random(f"{seed}:{q.id}")
        gold = normalize(q.answers[0])
        wrong: str | None = None
        if q.kind == "yesno" and gold in ("yes", "no"):
            opposite = "no" if gold == "yes" else "yes"
            wrong = opposite.capitalize() if q.answers[0][:1].isupper() else opposite
        else:
            key = (q.kind, _wh_word(q.question) if q.kind == "other" else "")
            wrong = _borrow(q, by_key[key], rng) or _borrow(q, by_kind[q.kind], rng)
        if wrong is None and q.kind in ("number", "year"):
            digits = [a for a in q.answers if as_number(a) is not None]
            wrong = wrong_number(normalize(digits[0]), rng) if digits else None
        if wrong is None and q.kind != "yesno":
            wrong = _borrow(q, any_kind, rng)
        if wrong is None:
            dropped.append(q.id)
            continue
        out.append(replace(q, wrong=wrong))
    if dropped:
        logger.warning("no wrong answer for %d question(s), dropped: %s", len(dropped), dropped)
    return out


def _finish(questions: list[Question], n: int | None, seed: int, file: Path) -> list[Question]:
    """Add wrong answers (from the whole file), then take the seeded subset of ``n``."""
    return subset(add_wrong_answers(questions, seed=seed), n, seed=seed, where=str(file))


def nq_open_questions(
    path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Question]:
    """Load NQ-open as short-answer questions with a borrowed wrong answer each.

    Args:
        path: ``NQ-open.dev.jsonl`` (or another split in the same format), its folder, or a data
            root holding ``nq_open/``; None: the root in ``NASALENS_DATA_DIR``.
        n: How many questions to return: a seeded subset in file order (None: all).
        seed: Seed of the wrong answers and of the subset.

    Returns:
        Questions with ids ``nq_open-<index>`` (from 0, four digits), ``answers`` = the file's
        aliases, ``kind`` = `answer_kind` of the first alias, ``wrong`` from `add_wrong_answers`.

    Raises:
        NasalensError: When the file is missing, a row is malformed (naming ``file:line``), or
            ``n`` is out of range.
    """
    file, rows = object_rows(path, NQ_FOLDER, NQ_FILENAME, n=n, seed=seed)
    questions = []
    for index, (where, row) in enumerate(rows):
        question = text_field(row, "question", where)
        answers = text_list(row, "answer", where)
        if answers is None:
            raise NasalensError(f"{where}: field 'answer' is missing; pass the original file")
        questions.append(
            Question(
                id=f"nq_open-{index:04d}",
                question=question,
                answers=answers,
                kind=answer_kind(question, answers[0]),
                source="nq_open",
            )
        )
    return _finish(questions, n, seed, file)


def _hotpot_context(row: dict[str, object], where: str) -> str | None:
    """Join the supporting-fact sentences, reading both the original and the HF layouts."""
    context, facts = row.get("context"), row.get("supporting_facts")
    if isinstance(context, dict):  # HF datasets: {"title": [...], "sentences": [[...], ...]}
        context = list(
            zip(context.get("title") or [], context.get("sentences") or [], strict=False)
        )
    if isinstance(facts, dict):  # HF datasets: {"title": [...], "sent_id": [...]}
        facts = list(zip(facts.get("title") or [], facts.get("sent_id") or [], strict=False))
    if not isinstance(context, list) or not isinstance(facts, list):
        raise NasalensError(
            f"{where}: fields 'context' and 'supporting_facts' must be lists (or the HF "
            "datasets dicts); pass the original HotpotQA file"
        )
    sentences: dict[str, list[str]] = {}
    for entry in context:
        if isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[1], list):
            sentences[str(entry[0])] = [s for s in entry[1] if isinstance(s, str)]
    picked = []
    for fact in facts:
        if not (isinstance(fact, list | tuple) and len(fact) == 2 and isinstance(fact[1], int)):
            raise NasalensError(f"{where}: a supporting fact is not [title, sentence index]")
        title, index = str(fact[0]), fact[1]
        if 0 <= index < len(sentences.get(title, [])):  # a few originals point past the end
            picked.append(sentences[title][index].strip())
    return " ".join(s for s in picked if s) or None


_EITHER_OR = re.compile(r"[,:]\s*([^,:?]+?)\s+or\s+([^,:?]+?)\s*(?:[,?]|$)")


def _other_option(question: str, answers: tuple[str, ...]) -> str | None:
    """For "Which is older, A or B?" return the option that is not the answer, if clear."""
    found = _EITHER_OR.search(question)
    if found is None:
        return None
    options = [o.strip() for o in found.groups()]
    hits = [conflicts(o, answers) for o in options]
    if hits.count(True) != 1:
        return None
    return options[hits.index(False)]


def hotpotqa_questions(
    path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Question]:
    """Load HotpotQA as short-answer questions with a borrowed wrong answer each.

    Args:
        path: ``hotpot_dev_distractor_100.json`` (or another file in the original or the HF
            datasets layout), its folder, or a data root holding ``hotpotqa/``; None: the root
            in ``NASALENS_DATA_DIR``.
        n: How many questions to return: a seeded subset in file order (None: all).
        seed: Seed of the wrong answers and of the subset.

    Returns:
        Questions with ids ``hotpotqa-<_id>`` (or ``hotpotqa-<index>`` when the file has no
        ids), ``context`` = the supporting-fact sentences joined by spaces, ``kind`` from
        `answer_kind`. Comparison questions of the form "..., A or B?" take the option that is
        not the answer as their wrong answer; the others get one from `add_wrong_answers`
        (yes/no answers: the opposite).

    Raises:
        NasalensError: When the file is missing, an item is malformed, or ``n`` is out of range.
    """
    file, rows = object_rows(path, HOTPOT_FOLDER, HOTPOT_FILENAME, n=n, seed=seed)
    questions = []
    for index, (where, row) in enumerate(rows):
        question = text_field(row, "question", where)
        answer = text_field(row, "answer", where)
        raw_id = row.get("_id", row.get("id"))
        qid = str(raw_id).strip() if isinstance(raw_id, str | int) and str(raw_id).strip() else ""
        questions.append(
            Question(
                id=f"hotpotqa-{qid or f'{index:04d}'}",
                question=question,
                answers=(answer,),
                wrong=_other_option(question, (answer,)),
                kind=answer_kind(question, answer),
                source="hotpotqa",
                context=_hotpot_context(row, where),
            )
        )
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise NasalensError(f"{file}: question ids repeat; pass the original file")
    return _finish(questions, n, seed, file)


def load_nq_open(
    path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Sample]:
    """Load NQ-open as balanced yes/no samples ``nq_open-<index>/yes`` or ``/no``.

    The arguments and errors are those of `nq_open_questions`; ``n`` counts samples, one per
    question (None: one per question in the file).

    Example:
        >>> samples = load_nq_open("../shared/data", n=200)  # doctest: +SKIP
    """
    return _samples(nq_open_questions, path, n, seed)


def load_hotpotqa(
    path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Sample]:
    """Load HotpotQA as balanced yes/no samples, the supporting facts as their context.

    As `load_nq_open`, with the file, ids and wrong answers of `hotpotqa_questions`.
    """
    return _samples(hotpotqa_questions, path, n, seed)


def _samples(
    questions: Callable[..., list[Question]], path: str | Path | None, n: int | None, seed: int
) -> list[Sample]:
    """One seeded sample per question of a short-answer set, balanced between Yes and No.

    Every question of the file gets its wrong answer first, so that a subset's wrong answers do
    not depend on ``n``; the seed drives the wrong answers, the subset and the Yes/No split.
    """
    check_n(n)
    return binary_samples(questions(path, seed=seed), n=n, seed=seed)
