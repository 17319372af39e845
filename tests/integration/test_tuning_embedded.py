"""One short real NASA run on the embedded model: probing set, two heads, the guard, the log."""

import math

import pytest
import torch

from nasalens.data import builtin_questions
from nasalens.data.sample import subset
from nasalens.models import Head, adapt
from nasalens.tuning import NasaConfig, nasa, probe_set

pytestmark = pytest.mark.embedded


@pytest.mark.drift
@pytest.mark.parametrize("layer", [0, 12, 29])
def test_layer_skipping_equals_the_full_pass_on_the_embedded_model(embedded_model, layer):
    adapter = adapt(embedded_model)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, 40000, (2, 24), generator=gen)
    mask = torch.ones_like(tokens)
    mask[1, :4] = 0  # left padding
    positions = torch.tensor([23, 23])
    with torch.no_grad():
        full = adapter.final_resid(tokens, mask, positions)
        resid = adapter.resid_pre(tokens, mask, layer)
        split = adapter.forward_from(resid, layer, mask, positions)
    assert torch.equal(split, full)


@pytest.mark.slow
def test_a_short_nasa_run_on_the_embedded_model(embedded_model):
    questions = subset(builtin_questions("probe"), 40, seed=0)
    probe = probe_set(embedded_model, questions, progress=False)
    counts = probe.counts()
    assert counts["known"] == counts["tp"] + counts["fn"] >= 10
    # The embedded model says "No" to (nearly) every fact it knows: TP is (nearly) empty.
    assert counts["fn"] > counts["tp"]
    heads = [Head(24, 1), Head(27, 4)]
    config = NasaConfig(lr=1e-3, batch_size=16, max_epochs=2, halting="never")
    result = nasa(embedded_model, probe, heads, config, progress=False)
    records = result.head_records
    assert [r["head"] for r in records] == ["L24H1", "L27H4"]
    assert all(r["decision"] in ("kept", "cancelled") for r in records)
    epochs = result.epochs_frame()
    assert len(epochs) >= 2 and epochs["loss"].map(math.isfinite).all()
    base, tuned = adapt(embedded_model).hf_parameters(), adapt(result.model).hf_parameters()
    moved = {n for n in base if not torch.equal(base[n], tuned[n])}
    allowed = {
        f"model.layers.{layer}.self_attn.{w}_proj.weight" for layer in (24, 27) for w in "qk"
    }
    assert moved <= allowed
    assert (moved == set()) == (len(result.kept) == 0)
