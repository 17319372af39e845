"""Tests of the built-in probe and eval sets (nasalens/data/builtin/*.jsonl)."""

from __future__ import annotations

from collections import Counter
from importlib import resources

import pytest

from nasalens.data import Question, builtin, builtin_questions
from nasalens.data.answers import answer_kind, conflicts, matches, normalize
from nasalens.data.sample import ANSWER_KINDS

SIZES = {"probe": 170, "eval": 200}


@pytest.fixture(scope="module")
def sets() -> dict[str, list[Question]]:
    return {name: builtin_questions(name) for name in SIZES}  # type: ignore[arg-type]


def test_sizes_ids_and_sources(sets: dict[str, list[Question]]) -> None:
    for name, questions in sets.items():
        assert len(questions) == SIZES[name]
        assert all(q.id.startswith(f"{name}-") and q.source == f"builtin-{name}" for q in questions)
    all_ids = [q.id for qs in sets.values() for q in qs]
    assert len(set(all_ids)) == len(all_ids)


def test_probe_and_eval_share_no_question(sets: dict[str, list[Question]]) -> None:
    probe = {normalize(q.question) for q in sets["probe"]}
    evals = {normalize(q.question) for q in sets["eval"]}
    assert len(probe) == SIZES["probe"] and len(evals) == SIZES["eval"]  # no repeats inside
    assert not probe & evals


def test_every_wrong_answer_differs_from_all_aliases(sets: dict[str, list[Question]]) -> None:
    for q in (q for qs in sets.values() for q in qs):
        assert q.wrong is not None and q.answers
        assert normalize(q.wrong) not in {normalize(a) for a in q.answers}, q.id
        assert not conflicts(q.wrong, q.answers), q.id
        assert not matches(q.wrong, q.answers), q.id
        assert all(matches(a, q.answers) for a in q.answers), q.id  # aliases match themselves


def test_kinds_are_mixed_and_consistent(sets: dict[str, list[Question]]) -> None:
    for questions in sets.values():
        kinds = Counter(q.kind for q in questions)
        assert set(kinds) <= set(ANSWER_KINDS)
        assert {"number", "year", "person", "place", "other"} <= set(kinds)
        assert max(kinds.values()) < 0.5 * len(questions)
        for q in questions:  # a wrong answer of the same kind: numbers stay numbers
            assert (q.kind in ("number", "year")) == (answer_kind("", q.wrong or "") in
                                                      ("number", "year")), q.id  # fmt: skip
        agree = sum(answer_kind(q.question, q.answers[0]) == q.kind for q in questions)
        assert agree >= 0.95 * len(questions)


def test_questions_are_short(sets: dict[str, list[Question]]) -> None:
    for q in (q for qs in sets.values() for q in qs):
        assert len(q.question.split()) <= 12 and q.question.endswith("?"), q.id
        assert all(len(a.split()) <= 5 for a in (*q.answers, q.wrong or "")), q.id


def test_builtin_samples() -> None:
    samples = builtin("probe")
    assert len(samples) == 170 and sum(s.gold for s in samples) == 85
    assert builtin("probe", seed=1) != samples and builtin("probe") == samples
    pairs = builtin("eval", pairs=True)
    assert len(pairs) == 400 and sum(s.gold for s in pairs) == 200
    some = builtin("eval", n=31, seed=4)
    assert len(some) == 31 and sum(s.gold for s in some) == 16
    for s in samples:
        assert s.label == (s.answers[0] if s.gold else next(
            q.wrong for q in builtin_questions("probe") if f"{q.id}/no" == s.id))  # fmt: skip


def test_files_are_package_data() -> None:
    folder = resources.files("nasalens.data").joinpath("builtin")
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".jsonl")) == [
        "eval.jsonl",
        "probe.jsonl",
    ]


def test_returns_fresh_lists() -> None:
    first = builtin_questions("probe")
    first.clear()
    assert len(builtin_questions("probe")) == 170
