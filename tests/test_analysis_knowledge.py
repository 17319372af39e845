"""Knowledge categories, the false-negative composition and the shifts after tuning."""

import math

import numpy as np
import pandas as pd
import pytest

from nasalens.analysis.knowledge import (
    Knowledge,
    classify_answer,
    classify_knowledge,
    fn_composition,
    gold_answers,
    shift_ratios,
)
from nasalens.errors import NasalensError
from nasalens.generation import short_answers
from nasalens.metrics import EvalResult
from tests.builders import make_question, make_sample

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


@pytest.mark.parametrize(
    ("answer", "gold", "category"),
    [
        ("Paris", ["Paris"], "correct"),
        ("It is Paris.", ["Paris", "City of Light"], "correct"),
        ("twelve", ["12"], "correct"),
        ("Berlin", ["Paris"], "wrong"),
        ("13", ["12", "twelve"], "wrong"),
        ("", ["Paris"], "non_deterministic"),
        ("  ...  ", ["Paris"], "non_deterministic"),
        ("N/A", ["Paris"], "non_deterministic"),
        ("I don't know.", ["Paris"], "non_deterministic"),
        ("I DONT KNOW", ["Paris"], "non_deterministic"),
        ("Sorry, the question is unanswerable", ["Paris"], "non_deterministic"),
        ("I'm not sure, maybe Paris", ["Paris"], "non_deterministic"),
        ("Not enough information.", ["12"], "non_deterministic"),
        # Yes/no questions: the first yes/no word is the answer.
        ("No, it is not.", ["No"], "correct"),
        ("Yes. Though some say no.", ["no"], "wrong"),
        ("The answer is yes", ["Yes"], "correct"),
        ("Llamas live in the Andes.", ["Yes"], "non_deterministic"),
    ],
)
def test_classify_answer_on_constructed_answers(answer, gold, category):
    assert classify_answer(answer, gold) == category


def test_classify_answer_needs_gold():
    with pytest.raises(NasalensError, match="answers is empty"):
        classify_answer("Paris", [])


def test_gold_answers_of_each_kind_of_item():
    assert gold_answers(make_question()) == ("12", "twelve")
    assert gold_answers(make_sample(gold=False, answers=("Paris",))) == ("Paris",)
    assert gold_answers(make_sample(gold=True, label="Paris")) == ("Paris",)
    assert gold_answers(make_sample(gold=True, label=None)) == ("Yes",)
    assert gold_answers(make_sample(gold=False, label=None)) == ("No",)
    with pytest.raises(NasalensError, match="sample 's0': its gold short answer is unknown"):
        gold_answers(make_sample(gold=False, label="Berlin"))


def test_classify_knowledge_matches_short_answers_and_the_median(tiny_model):
    items = [
        make_question(id="q0"),
        make_question(id="q1", question="Who wrote Hamlet?", answers=("Shakespeare",)),
        make_sample(id="s-yes", gold=True, question="Who wrote Hamlet?", label="Shakespeare"),
        make_sample(id="s2", gold=False, question="Is the sky green?", label=None),
    ]
    known = classify_knowledge(tiny_model, items, max_new_tokens=4, progress=False)
    frame = known.per_item
    assert list(frame["id"]) == ["q0", "q1", "s-yes", "s2"]
    # Independent: answer the three distinct questions, classify by hand.
    distinct = [make_sample(id=f"d{i}", question=items[i].question) for i in (0, 1, 3)]
    ref = short_answers(tiny_model, distinct, max_new_tokens=4, progress=False)
    median = float(np.median(ref["first_entropy"]))
    assert known.threshold == pytest.approx(median)
    expected_answers = [ref["answer"][0], ref["answer"][1], ref["answer"][1], ref["answer"][2]]
    assert list(frame["answer"]) == expected_answers
    golds = [("12", "twelve"), ("Shakespeare",), ("Shakespeare",), ("No",)]
    assert list(frame["category"]) == [
        classify_answer(a, g) for a, g in zip(expected_answers, golds, strict=True)
    ]
    high = [e <= median for e in frame["first_entropy"]]
    assert list(frame["confidence"] == "high") == high
    assert frame["confidence"][1] == frame["confidence"][2]  # the same question, one answer
    assert known.to_frame().query("category == 'all' and confidence == 'all'")["n"].item() == 4
    assert "Knowledge(n=4" in repr(known)


def test_classify_knowledge_rejects_repeated_ids(tiny_model):
    with pytest.raises(NasalensError, match="'q0' appears twice"):
        classify_knowledge(tiny_model, [make_question(), make_question()], progress=False)


# ---- the tables, on hand-made decisions ----

#: id, gold, decision before, decision after, category, confidence
ROWS = [
    ("a", True, False, True, "correct", "high"),  # FN -> TP
    ("b", True, False, False, "correct", "low"),  # FN stays
    ("c", True, True, True, "wrong", "high"),  # TP
    ("d", True, False, True, "non_deterministic", "low"),  # FN -> TP
    ("e", True, False, False, "non_deterministic", "low"),  # FN stays
    ("f", False, False, True, "correct", "high"),  # TN -> FP
    ("g", False, False, False, "wrong", "low"),  # TN stays
    ("h", False, True, True, "wrong", "low"),  # FP
    ("i", False, False, False, "non_deterministic", "high"),  # TN stays
]


def _result(column: int) -> EvalResult:
    frame = pd.DataFrame(
        {
            "id": [r[0] for r in ROWS],
            "gold": [r[1] for r in ROWS],
            "decision": [r[column] for r in ROWS],
        }
    )
    return EvalResult("hand", {}, frame)


def _knowledge() -> Knowledge:
    frame = pd.DataFrame(
        {
            "id": [r[0] for r in ROWS],
            "category": [r[4] for r in ROWS],
            "confidence": [r[5] for r in ROWS],
            "first_entropy": np.arange(len(ROWS), dtype=float),
        }
    )
    return Knowledge(frame, 4.0)


def _cell(frame: pd.DataFrame, category: str, confidence: str = "all") -> pd.Series:
    hit = frame[(frame["category"] == category) & (frame["confidence"] == confidence)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_fn_composition_counts_by_hand():
    table = fn_composition(_result(2), _knowledge())
    assert len(table) == 4 * 3
    total = _cell(table, "all")
    assert (total["n_pos"], total["n_fn"]) == (5, 4)
    correct = _cell(table, "correct")
    assert (correct["n_pos"], correct["n_fn"], correct["share_of_fn"]) == (2, 2, 0.5)
    wrong = _cell(table, "wrong")
    assert (wrong["n_pos"], wrong["n_fn"], wrong["fn_rate"]) == (1, 0, 0.0)
    nondet_low = _cell(table, "non_deterministic", "low")
    assert (nondet_low["n_fn"], nondet_low["fn_rate"]) == (2, 1.0)
    assert math.isnan(_cell(table, "non_deterministic", "high")["fn_rate"])  # no positives
    assert _cell(table, "all", "high")["n_fn"] == 1


def test_shift_ratios_count_by_hand():
    table = shift_ratios(_result(2), _result(3), _knowledge())
    total = _cell(table, "all")
    assert (total["n_fn"], total["n_fn_to_tp"], total["fn_to_tp"]) == (4, 2, 0.5)
    assert (total["n_tn"], total["n_tn_to_fp"]) == (3, 1)
    assert total["tn_to_fp"] == pytest.approx(1 / 3)
    correct = _cell(table, "correct")
    assert (correct["n_fn"], correct["n_fn_to_tp"], correct["n_tn"], correct["n_tn_to_fp"]) == (
        2,
        1,
        1,
        1,
    )
    nondet = _cell(table, "non_deterministic")
    assert (nondet["fn_to_tp"], nondet["tn_to_fp"]) == (0.5, 0.0)
    assert math.isnan(_cell(table, "wrong")["fn_to_tp"])  # no false negative to move


def test_shift_ratios_need_the_same_samples():
    after = _result(3)
    shorter = EvalResult("x", {}, after.per_sample.iloc[1:].reset_index(drop=True))
    with pytest.raises(NasalensError, match="sample 'a' is in only one"):
        shift_ratios(_result(2), shorter, _knowledge())


def test_tables_need_a_category_for_every_sample():
    partial = Knowledge(_knowledge().per_item.iloc[:-1], 4.0)
    with pytest.raises(NasalensError, match="sample 'i'"):
        fn_composition(_result(2), partial)
