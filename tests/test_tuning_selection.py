"""Choosing NASA's heads: by NAS (the paper's rule, with the config's settings) or by ablation."""

import pytest
from jaxtyping import TypeCheckError

from nasalens.errors import NasalensError
from nasalens.heads import negative_heads
from nasalens.metrics import evaluate
from nasalens.models import Head, info
from nasalens.patching import ablate
from nasalens.scores import nas
from nasalens.tuning import NasaConfig, select_heads
from tests.test_tuning import make_probe


def test_nas_selection_uses_the_configs_k_consistency_and_region(tiny_model):
    probe = make_probe()
    config = NasaConfig(k=3, top_n=4, consistency=0.5, region="answer")
    ranking = select_heads(tiny_model, probe, config, progress=False)
    scores = nas(tiny_model, [*probe.train, *probe.tp], region="answer", progress=False)
    assert ranking == negative_heads(scores, k=3, top_n=None, consistency=0.5)
    # The consistency setting is honoured: a stricter rule keeps no more heads.
    strict = select_heads(tiny_model, probe, config.replace(consistency=1.0), progress=False)
    assert set(strict.heads) <= set(ranking.heads)


def test_causal_selection_takes_the_heads_whose_ablation_raises_the_logit_difference_most(
    tiny_model,
):
    probe = make_probe()
    ranking = select_heads(tiny_model, probe, NasaConfig(select="causal"), progress=False)
    geo = info(tiny_model)
    assert len(ranking) == geo.n_layers * geo.n_heads and ranking.by == "effect"
    heads = ranking.top(3)
    # Recomputed by hand: mean-ablate each head on the training FN samples, full passes.
    train = list(probe.train)
    base = evaluate(tiny_model, train, progress=False).per_sample["logit_diff"].mean()
    effects = {}
    for layer in range(geo.n_layers):
        for h in range(geo.n_heads):
            with ablate(tiny_model, [Head(layer, h)], how="mean", reference=train):
                ld = evaluate(tiny_model, train, progress=False).per_sample["logit_diff"].mean()
            effects[str(Head(layer, h))] = ld - base
    by_hand = sorted(effects, key=effects.get, reverse=True)[:3]
    assert [str(h) for h in heads] == by_hand


@pytest.mark.parametrize("select", ["nas", "causal"])
def test_selection_needs_training_samples(tiny_model, select):
    with pytest.raises(NasalensError, match="no training samples"):
        select_heads(tiny_model, make_probe(n_train=0), NasaConfig(select=select), progress=False)


def test_selection_rejects_an_unknown_rule():
    # Under the test suite's type checker the annotation catches it first; without it, our check.
    with pytest.raises((NasalensError, TypeCheckError), match="gradient"):
        NasaConfig.from_dict({"select": "gradient"})
