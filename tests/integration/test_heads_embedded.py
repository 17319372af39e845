"""Head figures on the embedded SmolLM2-135M-Instruct, against independent computations."""

import numpy as np
import pytest
import torch

from nasalens.models import Head
from nasalens.plotting.heads import head_patterns, heatmap, plot_head_scores
from nasalens.prompts import encode
from nasalens.scores import nas
from tests.builders import make_sample, make_samples
from tests.reference import reference_nas

pytestmark = pytest.mark.embedded


@pytest.mark.drift
def test_heatmap_nas_panel_matches_the_plain_reference(embedded_model):
    sample = make_sample(id="france")
    fig = heatmap(embedded_model, sample)
    expected = reference_nas(embedded_model, encode(embedded_model, [sample]))[0]
    assert fig.data[2].z.shape == (30, 9)
    np.testing.assert_allclose(fig.data[2].z, expected.numpy(), atol=1e-5, rtol=0)
    # The hover names the real candidate tokens of the chat prompt.
    assert "' Yes'" in fig.data[0].text[17][7] and "' No'" in fig.data[0].text[17][7]
    assert fig.data[0].text[17][7].startswith("<b>L17H7</b>")


def test_attention_sums_are_the_pattern_columns_summed_over_the_region(embedded_model):
    sample = make_sample()
    batch = encode(embedded_model, [sample])
    fig = heatmap(embedded_model, sample)
    with torch.no_grad():
        _, cache = embedded_model.run_with_cache(batch.tokens)
    start, answer = int(batch.instr_end[0]), int(batch.answer_pos[0])
    pattern = cache["blocks.12.attn.hook_pattern"][0, 4, start : answer + 1]
    yes = pattern[:, batch.pos_cand[0]].sum()
    no = pattern[:, batch.neg_cand[0]].sum()
    assert fig.data[0].z[12, 4] == pytest.approx(float(yes), abs=1e-5)
    assert fig.data[1].z[12, 4] == pytest.approx(float(no), abs=1e-5)


def test_head_patterns_equal_the_cached_patterns(embedded_model):
    sample = make_sample()
    patterns, tokens = head_patterns(embedded_model, sample, [Head(17, 7), "L3H0"])
    batch = encode(embedded_model, [sample])
    with torch.no_grad():
        _, cache = embedded_model.run_with_cache(batch.tokens)
    torch.testing.assert_close(patterns[0], cache["blocks.17.attn.hook_pattern"][0, 7])
    torch.testing.assert_close(patterns[1], cache["blocks.3.attn.hook_pattern"][0, 0])
    assert tokens[0] == "<|im_start|>" and " Yes" in tokens


def test_head_score_map_of_a_small_set(embedded_model):
    scores = nas(embedded_model, make_samples(4), progress=False)
    heads = [Head(29, 8), Head(0, 0)]
    fig = plot_head_scores(scores, heads)
    np.testing.assert_allclose(fig.data[0].z, scores.head.double().numpy(), atol=1e-7)
    assert list(fig.data[1].x) == [8, 0] and list(fig.data[1].y) == [29, 0]
