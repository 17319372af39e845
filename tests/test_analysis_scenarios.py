"""Prompting scenarios: the IDK read-out, chain-of-thought parsing, the summary table."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from nasalens.analysis.knowledge import classify_knowledge
from nasalens.analysis.scenarios import (
    IDK_PHRASE,
    Scenarios,
    chain_of_thought,
    cot_template,
    decisions,
    idk_ids,
    idk_template,
    parse_final_answer,
    run_scenarios,
    three_way_logprobs,
)
from nasalens.errors import NasalensError
from nasalens.prompts import encode
from tests.builders import make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris is in France. So the answer is Yes.", True),
        ("So the answer is no", False),
        ("Answer: **No**", False),
        ('The final answer is "yes".', True),
        ("No, wait. Thinking again, the answer is Yes", True),
        ("Yes, it is. There is no doubt.", False),  # no marker: the last bare word wins
        ("It is not known", None),
        ("", None),
        ("Nobody knows; yesterday it rained.", None),  # words inside words do not count
    ],
)
def test_parse_final_answer_on_constructed_texts(text, expected):
    assert parse_final_answer(text) is expected


def test_parse_final_answer_with_other_candidates():
    assert parse_final_answer("Hence the answer is False.", ("True", "False")) is False
    assert parse_final_answer("true", ("True", "False")) is True


def test_the_idk_template_keeps_the_candidates_and_adds_the_option(tiny_model):
    samples = make_samples(2)
    batch = encode(tiny_model, samples, template=idk_template())
    assert IDK_PHRASE in batch.prompts[0]
    assert batch.pos_cand[0].any() and batch.neg_cand[0].any()
    ids = idk_ids(tiny_model, batch)
    assert ids and not set(ids) & {*batch.pos_ids, *batch.neg_ids}
    tok = tiny_model.tokenizer
    assert ids[0] == tok.encode(IDK_PHRASE, add_special_tokens=False)[0]


def test_three_way_decision_matches_an_independent_forward(tiny_model):
    samples = make_samples(5)
    batch = encode(tiny_model, samples, template=idk_template())
    extra = idk_ids(tiny_model, batch)
    got = three_way_logprobs(tiny_model, batch, extra, chunk_size=2, progress=False)
    for i in range(len(samples)):
        one = encode(tiny_model, samples[i : i + 1], template=idk_template())
        with torch.no_grad():
            logp = tiny_model(one.tokens)[0, -1].double().log_softmax(-1)
        expected = [logp[list(ids)].logsumexp(-1) for ids in (batch.pos_ids, batch.neg_ids, extra)]
        torch.testing.assert_close(got[i].double(), torch.stack(expected), atol=1e-4, rtol=0)
    assert list(decisions(got)) == [["yes", "no", "idk"][int(j)] for j in got.argmax(-1)]


def test_decisions_on_constructed_logprobs():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-3.0, -0.5, -2.0], [-4.0, -3.0, -0.1]])
    assert list(decisions(logp)) == ["yes", "no", "idk"]


def _answered(samples):
    return [replace(s, answers=("4",)) for s in samples]


def test_scenarios_on_the_tiny_model(tiny_model):
    samples = _answered(make_samples(4))
    samples[0] = replace(samples[0], context="Two and two make four.")
    known = classify_knowledge(tiny_model, samples, max_new_tokens=3, progress=False)
    result = run_scenarios(tiny_model, samples, knowledge=known, cot_tokens=5, progress=False)
    frame = result.per_sample
    assert list(dict.fromkeys(frame["scenario"])) == ["plain", "context", "idk", "cot"]
    assert len(frame) == 4 * len(samples)
    assert frame.loc[frame["scenario"] == "context", "has_context"].tolist() == [
        True,
        False,
        False,
        False,
    ]
    # The CoT answers are the parses of the generated texts, which are greedy decodes.
    cot = frame[frame["scenario"] == "cot"]
    texts = chain_of_thought(tiny_model, samples, max_new_tokens=5, progress=False)
    assert list(cot["text"]) == texts
    parsed = [parse_final_answer(t) for t in texts]
    assert list(cot["answer"]) == [
        "unparsed" if p is None else "yes" if p else "no" for p in parsed
    ]
    # The IDK answers are the argmax of the independent three-way read-out.
    batch = encode(tiny_model, samples, template=idk_template())
    logp = three_way_logprobs(tiny_model, batch, idk_ids(tiny_model, batch), progress=False)
    assert list(frame.loc[frame["scenario"] == "idk", "answer"]) == list(decisions(logp))
    summary = result.to_frame()
    totals = summary[summary["category"] == "all"]
    assert totals["n"].tolist() == [4, 4, 4, 4]
    counts = totals[["n_yes", "n_no", "n_idk", "n_unparsed"]].sum(axis=1)
    assert counts.tolist() == [4, 4, 4, 4]
    assert totals.loc[totals["scenario"] == "context", "n_context"].item() == 1
    assert "Scenarios(4 samples" in repr(result)


def test_the_cot_template_ends_with_the_cue(tiny_model):
    batch = encode(tiny_model, make_samples(1), template=cot_template())
    assert "Let's think step by step." in batch.prompts[0]
    assert "then give your final answer, Yes or No." in batch.prompts[0]


def test_scenario_summary_by_hand():
    rows = [
        # id, gold, answer, category
        ("a", True, "yes", "correct"),
        ("b", True, "no", "correct"),
        ("c", False, "no", "correct"),
        ("d", True, "idk", "wrong"),
        ("e", False, "yes", "wrong"),
        ("f", True, "unparsed", "wrong"),
    ]
    per_sample = pd.DataFrame(
        {
            "scenario": "idk",
            "id": [r[0] for r in rows],
            "gold": [r[1] for r in rows],
            "answer": [r[2] for r in rows],
            "has_context": False,
            "text": "",
            "category": [r[3] for r in rows],
            "confidence": "high",
        }
    )
    summary = Scenarios(per_sample).to_frame()
    total = summary[summary["category"] == "all"].iloc[0]
    assert (total["n"], total["n_answered"], total["n_idk"], total["n_unparsed"]) == (6, 4, 1, 1)
    assert (total["share_no"], total["share_idk"]) == (2 / 6, 1 / 6)
    # Answered: a TP, b FN, c TN, e FP.
    assert (total["precision"], total["recall"], total["accuracy"]) == (0.5, 0.5, 0.5)
    assert total["recall_minus_precision"] == 0.0
    correct = summary[summary["category"] == "correct"].iloc[0]
    assert (correct["precision"], correct["recall"]) == (1.0, 0.5)
    assert correct["recall_minus_precision"] == -0.5
    wrong = summary[summary["category"] == "wrong"].iloc[0]
    assert wrong["n_answered"] == 1 and math.isnan(wrong["recall"])
    nondet = summary[summary["category"] == "non_deterministic"].iloc[0]
    assert nondet["n"] == 0 and np.isnan(nondet["share_no"])


def test_scenarios_reject_bad_options(tiny_model):
    samples = _answered(make_samples(2))
    with pytest.raises(NasalensError, match="no scenario given"):
        run_scenarios(tiny_model, samples, which=(), progress=False)
    with pytest.raises(NasalensError, match="cot_tokens"):
        run_scenarios(tiny_model, samples, cot_tokens=0, progress=False)
