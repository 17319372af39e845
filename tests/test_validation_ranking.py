"""Ranking every head: the exact sweep, the attribution estimate and the verified ranking.

Each is checked against an independent computation on the tiny model: the exact effects
against full forward passes with one head ablated (`ablate` + `evaluate`), the attribution
estimate against a finite difference of an infinitesimally scaled ablation.
"""

import jaxtyping
import numpy as np
import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.metrics import answer_logprobs, evaluate
from nasalens.models import Head, adapt, info
from nasalens.patching import ablate, head_means
from nasalens.prompts import encode
from nasalens.validation import rank_heads
from nasalens.validation.ranking import choose
from tests.builders import make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


@pytest.fixture(scope="module")
def batch(tiny_model):
    return encode(tiny_model, make_samples(6), padding_side="left")


def mean_ld(model, batch):
    logprobs = answer_logprobs(model, batch, progress=False)
    return float((logprobs[:, 0] - logprobs[:, 1]).double().mean())


@pytest.mark.drift
@pytest.mark.parametrize(("how", "chunk_size"), [("mean", 16), ("zero", 16), ("mean", 4)])
def test_the_exact_sweep_equals_ablating_each_head_by_hand(tiny_model, batch, how, chunk_size):
    """Heads of a layer run together, blocks below run once: equal to full passes."""
    ranking = rank_heads(
        tiny_model, batch, method="exact", how=how, chunk_size=chunk_size, progress=False
    )
    geo = info(tiny_model)
    frame = ranking.to_frame()
    assert len(frame) == geo.n_layers * geo.n_heads and len(set(frame["name"])) == len(frame)
    assert ranking.method == "exact" and ranking.by == "effect" and ranking.meta["how"] == how
    assert (np.diff(frame["effect"].to_numpy()) <= 0).all()
    base = evaluate(tiny_model, batch, progress=False).per_sample["logit_diff"].mean()
    assert ranking.meta["baseline_logit_diff"] == pytest.approx(base, abs=1e-5)
    for _, row in frame.iterrows():
        with ablate(tiny_model, [Head(row["layer"], row["head"])], how=how, reference=batch):
            ablated = evaluate(tiny_model, batch, progress=False).per_sample["logit_diff"].mean()
        assert row["effect"] == pytest.approx(ablated - base, abs=1e-5)


@pytest.mark.drift
@pytest.mark.parametrize("how", ["mean", "zero"])
def test_attribution_is_the_derivative_of_a_scaled_ablation(tiny_model, batch, how):
    """estimate(l, h) = d/de LD(z + e (z' - z)) at e = 0, by central finite differences."""
    ranking = rank_heads(tiny_model, batch, method="attribution", how=how, progress=False)
    estimate = dict(zip(ranking, ranking.score("estimate"), strict=True))
    geo = info(tiny_model)
    means = head_means(tiny_model, batch, progress=False)
    adapter = adapt(tiny_model)
    eps = 1e-2
    for head in geo.heads():
        target = means[head.layer, head.head] if how == "mean" else torch.zeros(geo.d_head)

        def moved(z, hook, e, head=head, target=target):
            z = z.clone()
            z[:, :, head.head] += e * (target.to(z.dtype) - z[:, :, head.head])
            return z

        lds = []
        for e in (eps, -eps):
            name = adapter.hook_name(head.layer, "z")
            with adapter.hooks([(name, lambda z, hook, e=e: moved(z, hook, e))]):
                lds.append(mean_ld(tiny_model, batch))
        slope = (lds[0] - lds[1]) / (2 * eps)
        assert estimate[head] == pytest.approx(slope, abs=2e-4, rel=1e-3)


def test_verified_reproduces_the_exact_effects_of_the_heads_it_verifies(tiny_model, batch):
    exact = rank_heads(tiny_model, batch, method="exact", progress=False)
    effect = dict(zip(exact, exact.score("effect"), strict=True))
    verified = rank_heads(tiny_model, batch, method="verified", verify=3, progress=False)
    frame = verified.to_frame()
    assert verified.meta["n_verified"] == 3 and frame["verified"].sum() == 3
    top = frame.iloc[:3]
    assert (top["verified"] == 1).all() and frame.iloc[3:]["effect"].isna().all()
    for _, row in top.iterrows():
        assert row["effect"] == pytest.approx(effect[Head(row["layer"], row["head"])], abs=1e-6)
    # The three verified are the three best estimates, ranked by their exact effect.
    by_estimate = frame.sort_values("estimate", ascending=False)["name"][:3]
    assert set(top["name"]) == set(by_estimate)
    assert list(top["effect"]) == sorted(top["effect"], reverse=True)
    # Verifying every head is the exact sweep.
    every = rank_heads(tiny_model, batch, method="verified", verify=8, progress=False)
    assert list(every) == list(exact)


def test_resample_ranking_uses_one_donor_draw_for_every_head(tiny_model, batch):
    exact = rank_heads(tiny_model, batch, method="exact", how="resample", progress=False)
    again = rank_heads(tiny_model, batch, method="exact", how="resample", progress=False)
    assert exact == again  # seeded
    verified = rank_heads(tiny_model, batch, how="resample", verify=8, progress=False)
    np.testing.assert_allclose(
        sorted(verified.score("effect")), sorted(exact.score("effect")), atol=1e-6
    )


def test_attribution_leaves_the_parameters_alone(tiny_model_copy, batch):
    model = tiny_model_copy
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rank_heads(model, batch, method="attribution", progress=False)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


def test_the_budget_buys_late_heads_cheaper_than_early_ones(monkeypatch):
    from nasalens.validation import ranking

    estimate = {Head(0, 0): 3.0, Head(3, 0): 2.0, Head(3, 1): 1.0, Head(0, 1): 0.5}
    # 4 layers: heads at layer 0 cost 4 blocks, at layer 3 one block; a sweep costs 10.
    assert choose(estimate, 4, verify=2, budget=1.0) == [Head(0, 0), Head(3, 0)]
    monkeypatch.setattr(ranking, "MIN_VERIFIED", 0)
    assert choose(estimate, 4, verify=None, budget=0.2) == [Head(3, 0), Head(3, 1)]
    assert choose(estimate, 4, verify=None, budget=1.0) == list(estimate)
    monkeypatch.setattr(ranking, "MIN_VERIFIED", 1)  # the best estimate, whatever it costs
    assert choose(estimate, 4, verify=None, budget=0.2) == [Head(0, 0)]  # and nothing else


def test_rank_heads_rejects_bad_input(tiny_model, batch):
    with pytest.raises((NasalensError, jaxtyping.TypeCheckError), match="median"):
        rank_heads(tiny_model, batch, how="median", progress=False)
    with pytest.raises((NasalensError, jaxtyping.TypeCheckError), match="gradient"):
        rank_heads(tiny_model, batch, method="gradient", progress=False)
    with pytest.raises(NasalensError, match="at least one sample"):
        rank_heads(tiny_model, [], progress=False)
    with pytest.raises(NasalensError, match="budget"):
        rank_heads(tiny_model, batch, budget=0.0, progress=False)
