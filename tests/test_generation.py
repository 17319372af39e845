import pytest
import torch

from nasalens.generation import short_answers
from nasalens.models import adapt
from nasalens.models.interface import ModelAdapter
from nasalens.prompts import encode, short_answer
from tests.builders import make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


def test_cached_bridge_decoding_equals_plain_greedy_decoding(tiny_model):
    adapter = adapt(tiny_model)
    batch = encode(tiny_model, make_samples(5), short_answer(), padding_side="left")
    with torch.no_grad():
        cached, first_cached = adapter.greedy(batch.tokens, batch.attention_mask, 6)
        plain, first_plain = ModelAdapter.greedy(adapter, batch.tokens, batch.attention_mask, 6)
    assert torch.equal(cached, plain)
    torch.testing.assert_close(first_cached, first_plain, atol=1e-5, rtol=0)


def test_short_answers_are_greedy_and_report_first_token_entropy(tiny_model):
    samples = make_samples(3)
    frame = short_answers(tiny_model, samples, max_new_tokens=4, progress=False)
    assert list(frame["id"]) == [s.id for s in samples]
    # Independent recomputation of one row: argmax tokens, one at a time, from a single prompt.
    batch = encode(tiny_model, samples[1:2], short_answer())
    tokens = batch.tokens
    with torch.no_grad():
        logits = tiny_model(tokens)[0, -1]
    logp = logits.log_softmax(-1)
    entropy = float(-(logp.exp() * logp).sum())
    assert abs(frame["first_entropy"][1] - entropy) < 1e-4
    assert abs(frame["first_prob"][1] - float(logp.max().exp())) < 1e-5
    assert (frame["n_tokens"] <= 4).all()
