import pandas as pd
import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.generation import decoding_agrees, require_known, short_answers
from nasalens.models import adapt, legacy_available
from nasalens.models.interface import ModelAdapter
from nasalens.prompts import encode, short_answer
from nasalens.tuning import probe as probe_mod
from nasalens.tuning import probe_set
from tests.builders import make_question, make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)
bridge_only = pytest.mark.skipif(legacy_available(), reason="the cached path is the bridge's")


@pytest.mark.drift
def test_cached_bridge_decoding_equals_plain_greedy_decoding(tiny_model):
    adapter = adapt(tiny_model)
    batch = encode(tiny_model, make_samples(5), short_answer(), padding_side="left")
    with torch.no_grad():
        cached, first_cached = adapter.greedy(batch.tokens, batch.attention_mask, 6)
        plain, first_plain = ModelAdapter.greedy(adapter, batch.tokens, batch.attention_mask, 6)
    assert torch.equal(cached, plain)
    torch.testing.assert_close(first_cached, first_plain, atol=1e-5, rtol=0)


@bridge_only
@pytest.mark.drift
def test_decoding_sees_weight_edits_and_attached_hooks(tiny_model_copy):
    model = tiny_model_copy
    adapter = adapt(model)
    batch = encode(model, make_samples(4), short_answer(), padding_side="left")
    args = (batch.tokens, batch.attention_mask, 5)
    with torch.no_grad():
        _, before = adapter.greedy(*args)
        model.blocks[1].attn.o.weight.mul_(3.0)  # an edit after loading, as NASA makes
        cached, first = adapter.greedy(*args)
        plain, first_plain = ModelAdapter.greedy(adapter, *args)
        assert torch.equal(cached, plain)
        torch.testing.assert_close(first, first_plain, atol=1e-5, rtol=0)
        assert (first - before).abs().max() > 1e-2  # the twin holds the edited tensor

        def zero(z, hook):
            return torch.zeros_like(z)

        with model.hooks(fwd_hooks=[("blocks.1.attn.hook_z", zero)]):
            hooked, first_hooked = adapter.greedy(*args)
            plain_hooked, first_plain_hooked = ModelAdapter.greedy(adapter, *args)
        assert torch.equal(hooked, plain_hooked)
        torch.testing.assert_close(first_hooked, first_plain_hooked, atol=1e-5, rtol=0)
        assert (first_hooked - first).abs().max() > 1e-3  # the hook applied while decoding


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


def twenty_questions():
    return [
        make_question(id=f"q{i}", question=f"What is {i} + 1?", answers=(str(i + 1),), wrong="x")
        for i in range(20)
    ]


def test_knowing_none_of_many_questions_is_an_error_not_an_empty_set(tiny_model, monkeypatch):
    def nonsense(model, samples, **kwargs):
        return pd.DataFrame([{"id": s.id, "answer": "the the the"} for s in samples])

    monkeypatch.setattr(probe_mod, "short_answers", nonsense)
    with pytest.raises(NasalensError, match=r"match none of 20 questions.*self-consistent"):
        probe_set(tiny_model, twenty_questions(), progress=False)
    # Fewer questions: knowing none of them is a plausible result.
    probe = probe_set(tiny_model, twenty_questions()[:19], progress=False)
    assert probe.counts()["known"] == 0


@bridge_only
def test_the_error_names_broken_cached_decoding(tiny_model, monkeypatch):
    samples = [q.positive() for q in twenty_questions()]
    assert decoding_agrees(tiny_model, samples[:4])
    adapter_type = type(adapt(tiny_model))

    def broken(self, tokens, attention_mask, max_new_tokens):
        new, first = ModelAdapter.greedy(self, tokens, attention_mask, max_new_tokens)
        return (new + 1) % 300, first

    monkeypatch.setattr(adapter_type, "greedy", broken)
    assert not decoding_agrees(tiny_model, samples[:4])
    with pytest.raises(NasalensError, match=r"disagrees with plain decoding.*transformers"):
        require_known(tiny_model, samples, ["x"] * 20, 0, what="probe_set")
    require_known(tiny_model, samples, ["x"] * 20, 1, what="probe_set")  # one known: fine
