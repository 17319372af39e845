"""The embedded model in bfloat16 and split across devices, against the undivided float32 model.

Stated tolerances for bfloat16 (32 of the built-in eval checks; bench/dtype_agreement.py
measures all 200, docs/large_models.md): single NAS values within 1.5 (their range is about
±15; measured max 0.84 over 200 checks), their mean difference within 0.05; single-head NAS
(mean over the checks) within 15% of (|NAS| + 1) (measured up to 12%, in layer 28, where the
rounding of 28 layers has added up); at least 26 of the top 30 heads by NAS shared; at least
90% of the Yes/No decisions equal. The split (half the layers offloaded to disk) must give the
undivided model's numbers exactly.
"""

import pytest
import torch

import nasalens as nl
from nasalens.data import builtin
from nasalens.models import adapt
from tests.devices import device_under_test, split_map

pytestmark = [pytest.mark.embedded, pytest.mark.slow, pytest.mark.devices]

DEVICE = device_under_test()


def top(scores, n=30):
    order = torch.argsort(scores.head.flatten(), descending=True, stable=True)[:n]
    return set(order.tolist())


def test_bfloat16_within_the_stated_tolerances(embedded_model):
    samples = builtin("eval", n=32, seed=1)
    reference = embedded_model
    if DEVICE.type != "cpu":
        reference = nl.load_model(device=DEVICE)
    half = nl.load_model(dtype=torch.bfloat16, device=DEVICE)
    assert next(half.parameters()).dtype == torch.bfloat16
    a, b = (nl.nas(m, samples, progress=False) for m in (reference, half))
    diff = (a.per_sample - b.per_sample).abs()
    assert diff.max() <= 1.5 and diff.mean() <= 0.05
    assert ((a.head - b.head).abs() / (a.head.abs() + 1)).max() <= 0.15
    assert len(top(a) & top(b)) >= 26
    ea, eb = (nl.evaluate(m, samples, progress=False).per_sample for m in (reference, half))
    assert (ea["decision"] == eb["decision"]).mean() >= 0.9


def test_half_the_layers_on_disk_give_the_undivided_numbers(embedded_model, tmp_path):
    if DEVICE.type != "cpu":
        pytest.skip("a disk split is a CPU-only machine's split (TransformerLens rejects GPU+disk)")
    n_layers = nl.info(embedded_model).n_layers
    placement = split_map(n_layers, "disk")
    # The embedding and the unembedding are one tied tensor: keep both on the CPU.
    placement["model.embed_tokens"] = placement["model.rotary_emb"] = "cpu"
    split = nl.load_model(device_map=placement, offload_folder=tmp_path)
    assert adapt(split).split
    assert "model.layers.0.self_attn.q_proj.weight" not in adapt(split).hf_parameters()
    samples = builtin("eval", n=8, seed=2)
    a, b = (nl.nas(m, samples, progress=False).per_sample for m in (embedded_model, split))
    assert torch.equal(a, b)
    ea, eb = (nl.evaluate(m, samples, progress=False).per_sample for m in (embedded_model, split))
    assert ea["logit_diff"].tolist() == eb["logit_diff"].tolist()
