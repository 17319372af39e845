import dataclasses

import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.models import Head
from nasalens.prompts import binary, encode, short_answer
from nasalens.scores import NasScores, nas, region_mask
from tests.builders import make_samples
from tests.reference import reference_nas

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("chunk_size", [1, 3, 16])
def test_nas_matches_the_plain_reference(tiny_model, padding_side, chunk_size):
    batch = encode(tiny_model, make_samples(5), padding_side=padding_side)
    got = nas(tiny_model, batch, chunk_size=chunk_size, progress=False)
    expected = reference_nas(tiny_model, batch)
    torch.testing.assert_close(got.per_sample.double(), expected, atol=1e-5, rtol=0)


def test_nas_over_the_answer_position_only_matches_the_reference(tiny_model):
    batch = encode(tiny_model, make_samples(3), template=binary(candidates="correct_wrong"))
    got = nas(tiny_model, batch, region="answer", progress=False)
    expected = reference_nas(tiny_model, batch, region="answer")
    torch.testing.assert_close(got.per_sample.double(), expected, atol=1e-5, rtol=0)


def test_swapping_the_candidate_positions_flips_the_sign(tiny_model):
    # With the prompt (and so every pattern) fixed, NAS(neg, pos) = -NAS(pos, neg).
    batch = encode(tiny_model, make_samples(4))
    flipped = dataclasses.replace(batch, pos_cand=batch.neg_cand, neg_cand=batch.pos_cand)
    direct = nas(tiny_model, batch, progress=False)
    torch.testing.assert_close(
        nas(tiny_model, flipped, progress=False).per_sample, -direct.per_sample, atol=1e-6, rtol=0
    )
    torch.testing.assert_close(nas(tiny_model, flipped, progress=False).attn_pos, direct.attn_neg)


def test_aggregates(tiny_model):
    scores = nas(tiny_model, make_samples(4), progress=False)
    torch.testing.assert_close(scores.head, scores.per_sample.mean(0))
    torch.testing.assert_close(scores.model_per_sample, scores.per_sample.sum((1, 2)))
    assert scores.model == pytest.approx(float(scores.per_sample.sum((1, 2)).mean()), abs=1e-5)
    heads = [Head(0, 1), Head(1, 3)]
    torch.testing.assert_close(
        scores.of_heads(heads), scores.per_sample[:, 0, 1] + scores.per_sample[:, 1, 3]
    )
    frame = scores.to_frame()
    assert list(frame.columns[:3]) == ["layer", "head", "nas"] and len(frame) == 8
    sub = scores.select([2, 0])
    assert sub.sample_ids == (scores.sample_ids[2], scores.sample_ids[0])
    assert "4 samples x 2 layers x 4 heads" in repr(scores)


def test_attention_sums_are_bounded_by_the_region_length(tiny_model):
    batch = encode(tiny_model, make_samples(3))
    scores = nas(tiny_model, batch, progress=False)
    length = region_mask(batch).sum(1)[:, None, None]
    total = scores.attn_pos + scores.attn_neg
    assert (total >= 0).all() and (total <= length + 1e-5).all()


def test_nas_rejects_templates_without_candidates_and_bad_eps(tiny_model):
    with pytest.raises(NasalensError, match="binary template"):
        nas(tiny_model, make_samples(2), template=short_answer(), progress=False)
    with pytest.raises(NasalensError, match="eps"):
        nas(tiny_model, make_samples(2), eps=0.0, progress=False)


def test_scores_check_their_shapes():
    with pytest.raises(AssertionError):
        NasScores(torch.zeros(2, 1, 1), torch.zeros(2, 1, 1), torch.zeros(2, 1, 1), ("a",))


def test_hooks_are_removed_after_nas(tiny_model):
    nas(tiny_model, make_samples(2), progress=False)
    assert not any(h._forward_hooks for h in tiny_model.hook_dict.values())


def test_scores_save_and_load_back_bit_for_bit(tiny_model, tmp_path):
    scores = nas(tiny_model, make_samples(3), region="answer", eps=1e-5, progress=False)
    scores.save(tmp_path / "nas")
    back = NasScores.load(tmp_path / "nas")
    for field in ("per_sample", "attn_pos", "attn_neg"):
        assert torch.equal(getattr(back, field), getattr(scores, field))
    assert (back.sample_ids, back.eps, back.region) == (scores.sample_ids, 1e-5, "answer")
    (tmp_path / "nas" / "nas.json").write_text('{"format": "nasalens.NasScores", "version": 9}')
    with pytest.raises(NasalensError, match="version 9"):
        NasScores.load(tmp_path / "nas")
    with pytest.raises(NasalensError, match=r"not written by NasScores\.save"):
        (tmp_path / "nas" / "nas.json").write_text("[]")
        NasScores.load(tmp_path / "nas")


def test_the_template_is_a_keyword_and_the_old_positional_use_warns(tiny_model):
    samples = make_samples(2)
    want = nas(tiny_model, samples, template=binary("b"), progress=False)
    with pytest.warns(DeprecationWarning, match="template="):
        got = nas(tiny_model, samples, binary("b"), progress=False)
    assert torch.equal(got.per_sample, want.per_sample)
