"""Tests of the external-format loaders on the reference files in ../shared/data."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from nasalens.data import (
    Question,
    Sample,
    gsm8k_questions,
    hotpotqa_questions,
    load,
    load_ar_lsat,
    load_gsm8k,
    load_hotpotqa,
    load_nq_open,
    load_strategyqa,
    nq_open_questions,
)
from nasalens.data.answers import conflicts
from nasalens.data.sample import ANSWER_KINDS

pytestmark = pytest.mark.data

# name -> (loader, samples with the default arguments)
LOADERS: dict[str, tuple[Callable[..., list[Sample]], int]] = {
    "strategyqa": (load_strategyqa, 214),  # 107 Yes of 229: the No class cut to 107
    "gsm8k": (load_gsm8k, 1319),
    "nq_open": (load_nq_open, 3610),
    "hotpotqa": (load_hotpotqa, 100),
    "ar_lsat": (load_ar_lsat, 462),  # 231 questions, correct option + one wrong option each
}
QUESTION_LOADERS = {
    "gsm8k": gsm8k_questions,
    "nq_open": nq_open_questions,
    "hotpotqa": hotpotqa_questions,
}

_cache: dict[tuple[str, int | None, int], list[Sample]] = {}


def samples_of(name: str, root: Path, n: int | None = None, seed: int = 0) -> list[Sample]:
    """Load once per (name, n, seed) in this module: NQ-open takes about half a second."""
    key = (name, n, seed)
    if key not in _cache:
        _cache[key] = LOADERS[name][0](root, n=n, seed=seed)
    return _cache[key]


def _check_samples(samples: list[Sample], source: str) -> None:
    n_yes = sum(s.gold for s in samples)
    assert abs(n_yes - (len(samples) - n_yes)) <= 1, "not balanced"
    assert len({s.id for s in samples}) == len(samples), "ids repeat"
    for s in samples:
        assert s.source == source
        assert s.question.strip() and s.question == s.question.strip()
        assert s.label is None or (s.label.strip() and s.label == s.label.strip())
        assert s.context is None or s.context.strip()
        assert all(a.strip() for a in s.answers)


@pytest.mark.parametrize("name", LOADERS)
def test_default_sizes_and_fields(shared_data: Path, name: str) -> None:
    samples = samples_of(name, shared_data)
    assert len(samples) == LOADERS[name][1]
    _check_samples(samples, name)


@pytest.mark.parametrize("name", LOADERS)
def test_deterministic_for_a_seed_and_different_across_seeds(shared_data: Path, name: str) -> None:
    again = LOADERS[name][0](shared_data, seed=0)
    assert again == samples_of(name, shared_data)
    assert samples_of(name, shared_data, seed=1) != samples_of(name, shared_data)


@pytest.mark.parametrize("name", LOADERS)
@pytest.mark.parametrize("n", [1, 11, 40])
def test_n(shared_data: Path, name: str, n: int) -> None:
    samples = samples_of(name, shared_data, n=n, seed=2)
    assert len(samples) == n
    _check_samples(samples, name)


def test_dispatch_and_path_forms(shared_data: Path) -> None:
    expected = samples_of("hotpotqa", shared_data, n=11, seed=2)
    folder = shared_data / "hotpotqa"
    assert load("hotpotqa", shared_data, n=11, seed=2) == expected
    assert load_hotpotqa(folder, n=11, seed=2) == expected
    assert load_hotpotqa(folder / "hotpot_dev_distractor_100.json", n=11, seed=2) == expected


@pytest.mark.parametrize("name", QUESTION_LOADERS)
def test_questions_have_a_distinct_wrong_answer(shared_data: Path, name: str) -> None:
    questions = QUESTION_LOADERS[name](shared_data)
    assert len(questions) == LOADERS[name][1]  # none dropped
    for q in questions:
        assert isinstance(q, Question) and q.kind in ANSWER_KINDS
        assert q.wrong is not None and not conflicts(q.wrong, q.answers), q
    assert QUESTION_LOADERS[name](shared_data, n=5, seed=1) == QUESTION_LOADERS[name](
        shared_data, n=5, seed=1
    )


def test_strategyqa(shared_data: Path) -> None:
    samples = samples_of("strategyqa", shared_data)
    assert all(s.label is None and s.context for s in samples)
    assert all(re.fullmatch(r"strategyqa-[0-9a-f]+", s.id) for s in samples)


def test_gsm8k_wrong_numbers(shared_data: Path) -> None:
    questions = gsm8k_questions(shared_data)
    assert all(q.kind == "number" for q in questions)
    for q in questions:
        assert q.wrong is not None
        gold, wrong = Decimal(q.answers[0]), Decimal(q.wrong)
        assert wrong != gold and (wrong > 0) == (gold > 0) and (wrong < 0) == (gold < 0)
        assert (wrong % 1 == 0) == (gold % 1 == 0)
        assert re.fullmatch(r"-?\d+(\.\d+)?", q.answers[0]) and "," not in q.wrong
    by_id = {q.id: q for q in questions}
    for s in samples_of("gsm8k", shared_data):
        q = by_id[s.id.split("/")[0]]
        assert s.label == (q.answers[0] if s.gold else q.wrong)
    assert by_id["gsm8k-0000"].answers[0] == "18"
    assert by_id["gsm8k-0002"].answers == ("70000", "70,000")


def test_nq_open_kinds(shared_data: Path) -> None:
    kinds = Counter(q.kind for q in nq_open_questions(shared_data))
    assert set(kinds) >= {"person", "place", "year", "number", "other"}
    assert kinds["person"] > 1000  # "who ..." is the most common question


def test_hotpotqa_context_and_comparisons(shared_data: Path) -> None:
    questions = hotpotqa_questions(shared_data)
    assert all(q.context for q in questions)
    first = questions[0]  # "Were Scott Derrickson and Ed Wood of the same nationality?" yes
    assert (first.kind, first.wrong) == ("yesno", "no")
    assert first.context is not None and first.context.startswith("Scott Derrickson (born")
    older = next(q for q in questions if q.question.startswith("Who is older, Annie Morton"))
    assert older.wrong == "Annie Morton"


def test_ar_lsat(shared_data: Path) -> None:
    samples = samples_of("ar_lsat", shared_data)
    by_question: dict[str, list[Sample]] = {}
    for s in samples:
        assert re.fullmatch(r"arlsat-.+-\d+-[A-E]", s.id)
        assert s.label is not None and not re.match(r"\(?[A-E][).]\s", s.label)
        by_question.setdefault(s.id.rsplit("-", 1)[0], []).append(s)
    assert len(by_question) == 231
    for pair in by_question.values():
        assert sorted(s.gold for s in pair) == [False, True]
        assert pair[0].question == pair[1].question and pair[0].label != pair[1].label
    first = by_question["arlsat-200006_1-G_1-1"]
    assert first[0].question.startswith("Four boys") and first[0].question.endswith("lockers?")
    assert next(s for s in first if s.gold).id.endswith("-E")
