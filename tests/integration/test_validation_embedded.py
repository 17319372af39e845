"""Causal validation, patching and baselines on the embedded SmolLM2-135M-Instruct."""

import pandas as pd
import pytest
import torch
from transformer_lens import patching as tl_patching

import nasalens as nl
from nasalens.baselines import ContextualCalibration, HeadFix
from nasalens.metrics import answer_logprobs
from nasalens.models import Head
from nasalens.patching import contrast, patch
from nasalens.validation import validate_heads

pytestmark = pytest.mark.embedded

#: Two of the embedded model's most negative heads (NAS on the built-in probe positives).
HEADS = [Head(17, 7), Head(21, 7)]


def test_validation_runs_and_the_ablation_moves_the_decision(embedded_model):
    samples = nl.data.builtin("eval", n=8)
    result = validate_heads(
        embedded_model, samples, HEADS, n_sets=2, per_head=False, n_boot=100, progress=False
    )
    table = result.summary.set_index("metric")
    assert table.loc["logit_diff", "effect"] != 0
    assert len(result.random_effects) == 2
    assert table["share_beaten"].dropna().between(0, 1).all()


@pytest.mark.drift
def test_one_head_patch_matches_transformer_lens(embedded_model):
    clean, corrupt = contrast(embedded_model, nl.data.builtin("eval", n=1), clean="swap")
    assert clean.tokens.shape == corrupt.tokens.shape
    head = HEADS[0]
    with patch(embedded_model, [head], clean, corrupt, region="all"):
        ours = answer_logprobs(embedded_model, corrupt, progress=False)
    pos, neg = list(corrupt.pos_ids), list(corrupt.neg_ids)

    def metric(logits):
        logp = logits[:, -1].log_softmax(-1)
        return (logp[:, pos].logsumexp(-1) - logp[:, neg].logsumexp(-1)).mean()

    _, cache = embedded_model.run_with_cache(clean.tokens, names_filter=lambda n: "hook_z" in n)
    theirs = tl_patching.generic_activation_patch(
        embedded_model,
        corrupt.tokens,
        cache,
        metric,
        patch_setter=tl_patching.layer_head_vector_patch_setter,
        activation_name="z",
        index_df=pd.DataFrame({"layer": [head.layer], "head": [head.head]}),
    )
    torch.testing.assert_close(ours[0, 0] - ours[0, 1], theirs[0], atol=1e-4, rtol=0)


def test_baselines_move_the_embedded_model_towards_yes(embedded_model):
    batch = nl.encode(embedded_model, nl.data.builtin("eval", n=8))
    raw = nl.evaluate(embedded_model, batch, progress=False).per_sample["p_yes"].mean()
    calibrated = nl.evaluate(ContextualCalibration(embedded_model), batch, progress=False)
    assert calibrated.per_sample["p_yes"].mean() > raw
    fixed = nl.evaluate(HeadFix(embedded_model, HEADS, how="equalize"), batch, progress=False)
    assert fixed.summary["n"] == 8
