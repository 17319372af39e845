"""The embedded SmolLM2-135M-Instruct, offline: loading, prompts, the bias, NAS."""

import math

import pytest
import torch

import nasalens as nl
from nasalens.models import adapt, info
from nasalens.scores import nas
from tests.builders import make_samples
from tests.reference import reference_nas

pytestmark = pytest.mark.embedded


def test_loads_offline_with_its_geometry(embedded_model):
    geo = info(embedded_model)
    assert (geo.n_layers, geo.n_heads, geo.n_kv_heads, geo.d_head) == (30, 9, 3, 64)
    assert geo.kv_group(7) == 2
    tok = embedded_model.tokenizer
    assert tok.chat_template and tok.bos_token_id == 1


def test_chat_prompt_tokens_and_answer_variants(embedded_model):
    batch = nl.encode(embedded_model, make_samples(2))
    tok = embedded_model.tokenizer
    assert batch.tokens[0, 0] == 1 and batch.tokens[0, 1] != 1  # one BOS, no doubling
    assert tok.decode(batch.tokens[0][batch.pos_cand[0]]) == " Yes"
    assert tok.decode([batch.pos_target]) == "Yes" and tok.decode([batch.neg_target]) == "No"
    assert batch.pos_target == 10539 and batch.neg_target == 5230


@pytest.mark.slow
def test_the_safetensors_cache_gives_the_same_model(embedded_model):
    fresh = nl.load_model(cache=False)
    tokens = nl.encode(fresh, make_samples(3)).tokens
    with torch.no_grad():
        assert torch.equal(fresh(tokens), embedded_model(tokens))
    assert (
        fresh.tokenizer("Ünïcödé ✓ 1,234").input_ids
        == embedded_model.tokenizer("Ünïcödé ✓ 1,234").input_ids
    )


@pytest.mark.drift
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_nas_matches_the_reference_on_real_prompts(embedded_model, padding_side):
    batch = nl.encode(embedded_model, make_samples(2), padding_side=padding_side)
    got = nas(embedded_model, batch, chunk_size=2, progress=False)
    expected = reference_nas(embedded_model, batch)
    torch.testing.assert_close(got.per_sample.double(), expected, atol=1e-5, rtol=0)


@pytest.mark.drift
def test_lean_answer_logits_match_the_full_forward(embedded_model):
    batch = nl.encode(embedded_model, make_samples(3), padding_side="left")
    with torch.no_grad():
        full = embedded_model(batch.tokens, attention_mask=batch.attention_mask)
        lean = adapt(embedded_model).logits_at(batch.tokens, batch.attention_mask, batch.answer_pos)
    torch.testing.assert_close(lean, full[torch.arange(3), batch.answer_pos], atol=1e-4, rtol=0)


def test_the_embedded_model_is_negatively_biased_on_the_builtin_set(embedded_model):
    result = nl.evaluate(embedded_model, nl.data.builtin("eval", n=120), progress=False)
    s = result.summary
    # It answers "No" to nearly everything: recall far below precision (or no "Yes" at all).
    assert s["share_yes"] < 0.2
    assert s["recall"] < 0.2
    assert math.isnan(s["precision"]) or s["precision"] - s["recall"] > 0.3


@pytest.mark.drift
def test_cached_decoding_equals_plain_decoding_on_probe_questions(embedded_model):
    from nasalens.data.answers import matches
    from nasalens.generation import decoding_agrees, short_answers

    questions = nl.data.builtin_questions("probe")[:8]
    samples = [q.positive() for q in questions]
    assert decoding_agrees(embedded_model, samples, max_new_tokens=12)
    answers = short_answers(embedded_model, samples, progress=False)["answer"]
    hits = [matches(str(a), q.answers) for a, q in zip(answers, questions, strict=True)]
    assert sum(hits) >= 3  # it knows simple facts; broken decoding knows none
