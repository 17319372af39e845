"""Tests of nasalens.data.answers: normalization, number reading, matching, kinds, wrong numbers."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasalens.data.answers import (
    answer_kind,
    as_number,
    conflicts,
    matches,
    normalize,
    numbers,
    wrong_number,
)
from nasalens.errors import NasalensError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  an   Apple!! ", "apple"),
        ("a", ""),
        ("Twenty-one", "21"),
        ("twenty one pilots", "21 pilots"),
        ("one hundred", "100"),
        ("a hundred", "100"),
        ("one hundred and five", "105"),
        ("two thousand five hundred", "2500"),
        ("two and three", "2 and 3"),
        ("one two", "1 2"),
        ("zero", "0"),
        ("5 million", "5000000"),
        ("1,000", "1000"),
        ("1,234,567 people", "1234567 people"),
        ("1, 2, 3", "1 2 3"),
        ("3.5 kg", "3.5 kg"),
        ("3.50", "3.5"),
        ("-4 degrees", "-4 degrees"),
        ("5-3", "5 3"),
        ("Washington, D.C.", "washington dc"),
        ("J.K. Rowling", "jk rowling"),
        ("Brasília", "brasilia"),
        ("Don't stop", "dont stop"),
        ("It is 12.", "it is 12"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2+3 is 5", [2, 3, 5]),
        ("1,000 and -3.5 or twelve", [1000, -3.5, 12]),
        ("twenty-one and one hundred", [21, 100]),
        ("5-3", [5, 3]),
        ("x = -5", [-5]),
        ("no numbers here", []),
        ("$2 per egg, 10%", [2, 10]),
    ],
)
def test_numbers(text: str, expected: list[float]) -> None:
    assert numbers(text) == expected


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("2+3 is 5", ["5"], True),  # the last number counts
        ("5 plus 3", ["5"], False),  # an echoed number does not
        ("five", ["5"], True),
        ("The answer is 12.", ["12", "twelve"], True),
        ("twelve", ["12"], True),
        ("1,000", ["1000"], True),
        ("It is 3.5", ["3.5"], True),
        ("It is 35", ["3.5"], False),
        ("I don't know", ["5"], False),
        ("It is Paris.", ["Paris"], True),
        ("the paris", ["Paris"], True),
        ("Parisian food", ["Paris"], False),  # whole words only
        ("Shakespeare", ["William Shakespeare", "Shakespeare"], True),
        ("William", ["William Shakespeare"], False),
        ("New Delhi is the capital", ["New Delhi", "Delhi"], True),
        ("", ["Paris"], False),
        ("anything", ["the"], False),  # an alias that normalizes to nothing never matches
    ],
)
def test_matches(prediction: str, answers: list[str], expected: bool) -> None:
    assert matches(prediction, answers) is expected


def test_matches_numeric_flag() -> None:
    assert matches("1969 (July 20)", ["1969"], numeric=False)  # as text, a span
    assert not matches("1969 (July 20)", ["1969"])  # as a number, the last one is 20
    assert matches("Paris", "Paris")  # a single string is one alias


def test_matches_errors() -> None:
    with pytest.raises(NasalensError, match="answers is empty"):
        matches("x", [])
    with pytest.raises(NasalensError, match="numeric=False"):
        matches("x", ["Paris"], numeric=True)


def test_as_number() -> None:
    assert as_number("twelve") == 12
    assert as_number("1,000") == 1000
    assert as_number("12 apples") is None
    assert as_number("Paris") is None


@pytest.mark.parametrize(
    ("question", "answer", "kind"),
    [
        ("Who wrote Hamlet?", "William Shakespeare", "person"),
        ("who sings the song", "Bobby Scott", "person"),
        ("Which painter made Guernica?", "Pablo Picasso", "person"),
        ("What is the capital of France?", "Paris", "place"),
        ("where was the movie filmed", "Greenwich Village, New York City", "place"),
        ("Which city hosted the games?", "Rome", "place"),
        ("In which country is the Taj Mahal?", "India", "place"),
        ("when did the eagles win last super bowl", "2017", "year"),
        ("What year did it open?", "1999", "year"),
        ("How many people live there?", "1500", "number"),
        ("How many days are in a week?", "7", "number"),
        ("how many seasons are there", "one", "number"),
        ("What is the population?", "1,462", "number"),
        ("Were they of the same nationality?", "yes", "yesno"),
        ("Is it red?", "No", "yesno"),
        ("What gas do plants absorb?", "carbon dioxide", "other"),
        ("when was the last time anyone was on the moon", "14 December 1972 UTC", "other"),
        ("Who won in 2010?", "the 1999 team", "other"),  # digits: not a person
        ("What is the currency of Japan?", "the yen", "other"),
    ],
)
def test_answer_kind(question: str, answer: str, kind: str) -> None:
    assert answer_kind(question, answer) == kind


def test_conflicts() -> None:
    assert conflicts("Scott", ["Bobby Scott"])
    assert conflicts("the Paris", ["Paris"])
    assert conflicts("1", ["one", "one season"])
    assert conflicts("12.0", ["12"])
    assert not conflicts("Lyon", ["Paris"])
    assert not conflicts("13", ["12", "twelve"])


@pytest.mark.parametrize("gold", ["18", "1", "0", "-3", "-1", "70000", "2,125", "3.5", "0.25"])
def test_wrong_number_examples(gold: str) -> None:
    for seed in range(20):
        _check_wrong_number(gold, wrong_number(gold, random.Random(seed)))


def _check_wrong_number(gold: str, wrong: str) -> None:
    g, w = Decimal(gold.replace(",", "")), Decimal(wrong)
    assert w != g
    assert (w > 0) if g >= 0 else (w < 0)
    assert (w == w.to_integral_value()) == (g == g.to_integral_value())
    assert "," not in wrong


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.integers(-(10**9), 10**9).map(str),
        st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False).map(str),
    ),
    seed=st.integers(0, 10**6),
)
def test_wrong_number_property(value: str, seed: int) -> None:
    wrong = wrong_number(value, random.Random(seed))
    _check_wrong_number(value, wrong)
    assert wrong == wrong_number(value, random.Random(seed))  # deterministic for a seed
    assert not matches(wrong, [value])


def test_wrong_number_rejects_text() -> None:
    with pytest.raises(NasalensError, match="not a number"):
        wrong_number("Paris", random.Random(0))


_WORDS = st.sampled_from(
    ["the", "a", "one", "twenty", "hundred", "and", "five", "paris", "1,000", "3.5", "-2", "x"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_WORDS, max_size=8).map(" ".join) | st.text(max_size=30))
def test_normalize_is_idempotent_and_matching_is_reflexive(text: str) -> None:
    norm = normalize(text)
    assert normalize(norm) == norm
    if norm:
        assert matches(text, [text])
