"""The analysis suite on the embedded SmolLM2-135M-Instruct, on few samples."""

import pytest
import torch

import nasalens as nl
from nasalens.analysis import analyze, classify_answer, classify_knowledge, generalization
from nasalens.analysis.scenarios import (
    decisions,
    idk_ids,
    idk_template,
    run_scenarios,
    three_way_logprobs,
)

pytestmark = pytest.mark.embedded


@pytest.mark.drift
def test_the_embedded_model_knows_some_builtin_facts(embedded_model):
    questions = nl.data.builtin_questions("probe")[:12]
    known = classify_knowledge(embedded_model, questions, progress=False)
    frame = known.per_item
    assert (frame["category"] == "correct").sum() >= 3
    for row, q in zip(frame.itertuples(), questions, strict=True):
        assert row.category == classify_answer(row.answer, q.answers)
    assert (frame["confidence"] == "high").sum() >= len(frame) // 2


def test_the_idk_read_out_on_real_prompts(embedded_model):
    samples = nl.data.builtin("eval", n=4)
    batch = nl.encode(embedded_model, samples, template=idk_template())
    extra = idk_ids(embedded_model, batch)
    tok = embedded_model.tokenizer
    assert [tok.decode([i]) for i in extra] == ["I", " I"]
    got = three_way_logprobs(embedded_model, batch, extra, progress=False)
    with torch.no_grad():
        full = embedded_model(batch.tokens, attention_mask=batch.attention_mask)
    logp = full[torch.arange(4), batch.answer_pos].double().log_softmax(-1)
    for col, ids in enumerate((batch.pos_ids, batch.neg_ids, extra)):
        torch.testing.assert_close(
            got[:, col].double(), logp[:, list(ids)].logsumexp(-1), atol=1e-3, rtol=0
        )
    assert set(decisions(got)) <= {"yes", "no", "idk"}


def test_generalization_rows_on_the_builtin_set(embedded_model):
    samples = nl.data.builtin("eval", n=8, seed=1)
    pool = [s for s in nl.data.builtin("eval", n=40, seed=2) if s.id not in {x.id for x in samples}]
    pool = [s for s in pool if s.question not in {x.question for x in samples}]
    table = generalization(
        embedded_model, samples, pool=pool, instructions=("nasa",), progress=False
    )
    assert len(table) == 3 * 2 and (table["n"] == 8).all()
    plain = nl.evaluate(embedded_model, samples, progress=False).summary
    row = table.query("candidates == 'yes_no' and shots == 0").iloc[0]
    assert row["accuracy"] == pytest.approx(plain["accuracy"])
    assert row["share_yes"] == pytest.approx(plain["share_yes"])


def test_chain_of_thought_answers_are_parsed_or_counted(embedded_model):
    samples = nl.data.builtin("eval", n=2)
    result = run_scenarios(embedded_model, samples, which=("cot",), cot_tokens=24, progress=False)
    frame = result.per_sample
    assert frame["text"].str.len().gt(0).all()
    summary = result.to_frame()
    total = summary[summary["category"] == "all"].iloc[0]
    assert total["n"] == 2 and total["n_yes"] + total["n_no"] + total["n_unparsed"] == 2


@pytest.mark.slow
@pytest.mark.data
def test_analyze_strategyqa_end_to_end(embedded_model, shared_data):
    samples = nl.data.load("strategyqa", shared_data, n=12)
    result = analyze(
        embedded_model,
        samples,
        n_shots=2,
        which=("plain", "context", "idk"),
        progress=False,
    )
    assert (result.generalization["n"] == 10).all()
    assert result.fn_composition.query("category == 'all' and confidence == 'all'")[
        "n_pos"
    ].item() == sum(s.gold for s in samples)
    context = result.scenarios.to_frame().query("scenario == 'context' and category == 'all'")
    assert context["n_context"].item() == sum(bool(s.context) for s in samples)
