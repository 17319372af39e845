"""The patching sweep and the clean/corrupt pairing, on the tiny model."""

import dataclasses

import jaxtyping
import pandas as pd
import pytest
import torch
from transformer_lens import patching as tl_patching

from nasalens.errors import NasalensError
from nasalens.metrics import answer_logprobs
from nasalens.models import Head
from nasalens.models.bridge import BridgeAdapter
from nasalens.patching import PatchResult, contrast, patch, patch_heads
from nasalens.prompts import binary, encode
from tests.builders import make_samples


@pytest.fixture(scope="module")
def pair(tiny_model):
    return contrast(tiny_model, make_samples(3), n_shots=2)


@pytest.fixture(scope="module")
def swept(tiny_model, pair):
    return patch_heads(tiny_model, *pair, chunk_size=2, progress=False)


def ld(logprobs):
    return logprobs[:, 0] - logprobs[:, 1]


def test_resumed_layers_equal_full_passes(tiny_model, pair, swept):
    full = patch_heads(tiny_model, *pair, chunk_size=3, resume=False, progress=False)
    assert swept.resumed and not full.resumed
    torch.testing.assert_close(swept.patched, full.patched, atol=1e-5, rtol=0)
    torch.testing.assert_close(swept.corrupt, full.corrupt, atol=1e-6, rtol=0)


def test_models_that_cannot_resume_run_full_passes(tiny_model, pair, swept, monkeypatch):
    def cannot(*args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(BridgeAdapter, "forward_from", cannot)
    full = patch_heads(tiny_model, *pair, progress=False)
    assert not full.resumed
    torch.testing.assert_close(full.patched, swept.patched, atol=1e-5, rtol=0)


def test_each_entry_is_the_patch_of_that_head_alone(tiny_model, pair, swept):
    clean, corrupt = pair
    for head in [Head(0, 3), Head(1, 1)]:
        with patch(tiny_model, [head], clean, corrupt):
            got = ld(answer_logprobs(tiny_model, corrupt, progress=False))
        torch.testing.assert_close(swept.patched[:, head.layer, head.head], got, atol=1e-5, rtol=0)
    torch.testing.assert_close(swept.clean, ld(answer_logprobs(tiny_model, clean, progress=False)))


def test_restored_share_top_heads_and_frame(swept):
    gap = swept.clean.mean() - swept.corrupt.mean()
    expected = (swept.patched.mean(0) - swept.corrupt.mean()) / gap
    torch.testing.assert_close(swept.restored, expected)
    assert swept.gap == pytest.approx(float(gap))
    best = swept.top(2)
    assert swept.restored[best[0]] == swept.restored.max() and best.by == "restored"
    assert best.score("restored")[0] == pytest.approx(float(swept.restored.max()))
    assert swept.ranking().top(2) == best and len(swept.ranking()) == 8
    frame = swept.to_frame()
    assert list(frame.columns[:2]) == ["layer", "head"] and len(frame) == 8
    assert "3 pairs x 2 layers x 4 heads" in repr(swept)


def test_the_sweep_agrees_with_transformer_lens_patching(tiny_model):
    # TransformerLens patches every position of equal-length, unpadded prompts.
    sample = make_samples(1)
    clean, corrupt = contrast(tiny_model, sample, clean="swap")
    assert clean.tokens.shape == corrupt.tokens.shape and not torch.equal(
        clean.tokens, corrupt.tokens
    )
    ours = patch_heads(tiny_model, clean, corrupt, region="all", progress=False)
    _, cache = tiny_model.run_with_cache(clean.tokens, names_filter=lambda n: n.endswith("hook_z"))
    pos, neg = list(corrupt.pos_ids), list(corrupt.neg_ids)

    def metric(logits):
        logp = logits[:, -1].log_softmax(-1)
        return (logp[:, pos].logsumexp(-1) - logp[:, neg].logsumexp(-1)).mean()

    theirs = tl_patching.get_act_patch_attn_head_out_all_pos(
        tiny_model, corrupt.tokens, cache, metric
    )
    torch.testing.assert_close(ours.patched[0], theirs, atol=1e-5, rtol=0)


def test_contrast_builds_shots_and_swapped_candidates(tiny_model):
    samples = make_samples(2)
    clean, corrupt = contrast(tiny_model, samples, n_shots=3)
    assert corrupt.template == binary() and len(clean.template.shots) == 3
    assert all(s.gold for s in clean.template.shots)
    assert not {s.question for s in clean.template.shots} & {s.question for s in samples}
    assert "Answer: Yes" in clean.prompts[0] and clean.prompts[0].endswith(corrupt.prompts[0][-40:])
    swapped, _ = contrast(tiny_model, samples, clean="swap")
    assert "answer No or Yes" in swapped.prompts[0]


def test_sweep_and_pairing_errors(tiny_model, pair):
    clean, corrupt = pair
    with pytest.raises(NasalensError, match="nothing to restore"):
        patch_heads(tiny_model, corrupt, corrupt, progress=False)
    with pytest.raises(NasalensError, match="same samples"):
        patch_heads(tiny_model, clean, corrupt.select([0]), progress=False)
    custom = dataclasses.replace(binary(), instruction="Say Yes, or else No.")
    with pytest.raises(NasalensError, match="swap"):
        contrast(tiny_model, make_samples(1), clean="swap", template=custom)
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        with pytest.raises(NasalensError, match="unknown clean"):
            contrast(tiny_model, make_samples(1), clean="no_shots")
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


def test_result_checks_its_fields():
    with pytest.raises(AssertionError):
        PatchResult(torch.zeros(2, 1, 1), torch.zeros(2), torch.zeros(2), ("a",), "all", True)
    one = PatchResult(torch.zeros(1, 1, 1), torch.ones(1), torch.zeros(1), ("a",), "all", True)
    assert isinstance(one.to_frame(), pd.DataFrame)


def test_corrupt_and_clean_encode_the_same_questions(tiny_model, pair):
    clean, corrupt = pair
    assert [s.id for s in clean.samples] == [s.id for s in corrupt.samples]
    assert encode(tiny_model, list(corrupt.samples)).prompts == corrupt.prompts
