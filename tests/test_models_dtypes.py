"""bfloat16 models against float32: every public path, within bfloat16's resolution.

The bridge keeps activations, patterns and logits in the model's dtype; nasalens reads them in
float32 (NAS's log-ratio, the candidates' log-probabilities, losses), so every result is float32
and differs from the float32 model's by the rounding of the bfloat16 forward pass only. Stated
tolerances (tiny random model, weights ~0.02): NAS and log-probabilities within 0.05 (measured
~3e-3 and ~1e-3), causal effects within 0.05. The embedded model's figures are in
tests/integration/test_devices_embedded.py.
"""

from __future__ import annotations

import pytest
import torch

import nasalens as nl
from nasalens.metrics import answer_logprobs
from nasalens.models import Head, tiny_model
from nasalens.patching import contrast
from nasalens.prompts import binary, encode
from nasalens.validation import rank_heads
from tests.builders import make_samples
from tests.devices import device_under_test

pytestmark = pytest.mark.devices

DEVICE = device_under_test()
TOL = 0.05


@pytest.fixture(scope="module")
def models():
    return {
        dtype: tiny_model(dtype=dtype, device=DEVICE) for dtype in (torch.float32, torch.bfloat16)
    }


def both(fn, models):
    out = [fn(models[dtype]) for dtype in (torch.bfloat16, torch.float32)]
    assert out[0].dtype == torch.float32  # read in float32 from the bfloat16 model
    torch.testing.assert_close(out[0], out[1], atol=TOL, rtol=0)
    return out


def test_weights_are_bfloat16_and_results_float32(models):
    assert next(models[torch.bfloat16].parameters()).dtype == torch.bfloat16
    samples = make_samples(6)
    a, b = both(lambda m: nl.nas(m, samples, progress=False).per_sample, models)
    assert (a - b).abs().max() > 0  # really two different forward passes
    both(
        lambda m: answer_logprobs(m, encode(m, samples, template=binary()), progress=False), models
    )


@pytest.mark.parametrize("how", ["zero", "mean", "resample"])
def test_ablations(models, how):
    samples = make_samples(6)

    def ablated(model):
        batch = encode(model, samples, template=binary())
        with nl.ablate(model, [Head(0, 1), Head(1, 2)], how=how, reference=batch):
            return answer_logprobs(model, batch, progress=False)

    both(ablated, models)


def test_patching_ranking_and_validation(models):
    samples = make_samples(6)
    both(
        lambda m: nl.patch_heads(m, *contrast(m, samples, n_shots=2), progress=False).patched,
        models,
    )

    def ranked(model, method, score):
        ranking = rank_heads(model, samples, method=method, progress=False)
        by_head = dict(zip(ranking, ranking.score(score), strict=True))
        return torch.tensor([by_head[h] for h in sorted(by_head)], dtype=torch.float32)

    def validated(model):
        result = nl.validate_heads(
            model, samples, [Head(1, 2)], n_sets=2, n_boot=10, progress=False
        )
        values = result.per_sample[["logit_diff_ablated", "model_nas_ablated"]].to_numpy()
        return torch.tensor(values, dtype=torch.float32)

    both(lambda m: ranked(m, "exact", "effect"), models)
    both(lambda m: ranked(m, "attribution", "estimate"), models)

    both(validated, models)


def test_log_probabilities_and_losses_are_taken_in_float32(models):
    from nasalens.metrics import candidate_logprobs
    from nasalens.tuning.train import token_loss

    model = models[torch.bfloat16]
    batch = encode(model, make_samples(4), template=binary())
    logits = (torch.randn(4, 400, generator=torch.Generator().manual_seed(0)) * 8).bfloat16()
    exact = candidate_logprobs(logits.float(), batch)
    assert torch.equal(candidate_logprobs(logits, batch), exact)
    in_bf16 = logits.log_softmax(dim=-1)[:, list(batch.pos_ids)].logsumexp(dim=-1).float()
    assert (in_bf16 - exact[:, 0]).abs().max() > 1e-3  # what a bfloat16 softmax would lose
    targets = torch.tensor([1, 2, 3, 4])
    assert torch.equal(token_loss(logits, targets), token_loss(logits.float(), targets))
