"""Inference-time baselines: head fixes and contextual calibration, on the tiny model."""

import jaxtyping
import pytest
import torch

from nasalens.baselines import CONTENT_FREE, ContextualCalibration, HeadFix, _content_free
from nasalens.errors import NasalensError
from nasalens.metrics import Decider, answer_logprobs, evaluate
from nasalens.models import Head
from nasalens.patching import ablate, move_attention
from nasalens.prompts import binary, encode
from tests.builders import make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)

HEADS = [Head(0, 2), Head(1, 1)]


class Shifted:
    """A model with a known constant bias: log P(positive) lowered by ``c``."""

    def __init__(self, model, c):
        self.model, self.c = model, c

    def answer_logprobs(self, batch, *, chunk_size=16, progress=True):
        out = answer_logprobs(self.model, batch, chunk_size=chunk_size, progress=progress)
        return out - torch.tensor([self.c, 0.0])


@pytest.fixture(scope="module")
def batch(tiny_model):
    return encode(tiny_model, make_samples(6))


def ld(logprobs):
    return logprobs[:, 0] - logprobs[:, 1]


def test_calibration_removes_a_known_constant_bias_exactly(tiny_model, batch):
    biased = Shifted(tiny_model, 3.0)
    assert isinstance(biased, Decider)
    raw = answer_logprobs(biased, batch, progress=False)
    torch.testing.assert_close(ld(raw), ld(answer_logprobs(tiny_model, batch, progress=False)) - 3)
    for options in [{"average": "logodds"}, {"content_free": ("N/A",)}]:
        plain = ContextualCalibration(tiny_model, **options).answer_logprobs(batch, progress=False)
        fixed = ContextualCalibration(biased, **options).answer_logprobs(batch, progress=False)
        torch.testing.assert_close(fixed, plain, atol=1e-5, rtol=0)
    assert evaluate(biased, batch, progress=False).summary["share_yes"] == 0


def test_calibration_by_hand(tiny_model, batch):
    cc = ContextualCalibration(tiny_model)
    cf = encode(tiny_model, [_content_free(i, t, True) for i, t in enumerate(CONTENT_FREE)])
    assert "Question:  Is the answer ? Answer:" in cf.prompts[1]
    q = answer_logprobs(tiny_model, cf, progress=False).softmax(dim=1).mean(dim=0)
    torch.testing.assert_close(cc.prior(binary()), q)
    got = cc.answer_logprobs(batch, progress=False)
    raw = answer_logprobs(tiny_model, batch, progress=False)
    torch.testing.assert_close(ld(got), ld(raw) - (q[0] / q[1]).log(), atol=1e-5, rtol=0)
    torch.testing.assert_close(got.exp().sum(dim=1), torch.ones(len(batch)))


def test_the_log_odds_average_is_a_geometric_mean(tiny_model):
    cf = encode(tiny_model, [_content_free(i, t, True) for i, t in enumerate(CONTENT_FREE)])
    logq = answer_logprobs(tiny_model, cf, progress=False).log_softmax(dim=1)
    geometric = logq.mean(dim=0).exp()
    prior = ContextualCalibration(tiny_model, average="logodds").prior(binary())
    torch.testing.assert_close(prior, geometric / geometric.sum())


def test_unlabelled_samples_use_an_unlabelled_prior(tiny_model):
    samples = [s.__class__(id=s.id, question=s.question, gold=s.gold) for s in make_samples(2)]
    cc = ContextualCalibration(tiny_model)
    cc.answer_logprobs(encode(tiny_model, samples), progress=False)
    assert set(cc._priors) == {(binary(), True), (binary(), False)}


def test_head_fix_equals_the_intervention_context(tiny_model, batch):
    with ablate(tiny_model, HEADS, how="mean", reference=batch):
        ablated = answer_logprobs(tiny_model, batch, progress=False)
    fix = HeadFix(tiny_model, HEADS, how="mean", reference=batch)
    torch.testing.assert_close(fix.answer_logprobs(batch, progress=False), ablated)
    with move_attention(tiny_model, HEADS, batch, how="equalize"):
        moved = answer_logprobs(tiny_model, batch, progress=False)
    fix = HeadFix(tiny_model, HEADS, how="equalize")
    torch.testing.assert_close(fix.answer_logprobs(batch, chunk_size=4, progress=False), moved)
    result = evaluate(fix, batch, progress=False)
    assert result.summary["n"] == 6 and "2 heads" in repr(fix)


def test_calibration_wraps_a_head_fix(tiny_model, batch):
    fix = HeadFix(tiny_model, HEADS, how="zero")
    both = ContextualCalibration(fix)
    assert both.model is tiny_model
    got = both.answer_logprobs(batch, progress=False)
    raw = fix.answer_logprobs(batch, progress=False)
    shift = (both.prior(binary())[0] / both.prior(binary())[1]).log()
    torch.testing.assert_close(ld(got), ld(raw) - shift, atol=1e-5, rtol=0)


def test_baseline_errors(tiny_model):
    with pytest.raises(NasalensError, match="needs reference="):
        HeadFix(tiny_model, HEADS, how="mean")
    with pytest.raises(NasalensError, match="does not exist"):
        HeadFix(tiny_model, [Head(0, 9)], how="zero")
    with pytest.raises(NasalensError, match="content_free is empty"):
        ContextualCalibration(tiny_model, content_free=())
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        with pytest.raises(NasalensError, match="unknown head fix"):
            HeadFix(tiny_model, HEADS, how="scale")
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
