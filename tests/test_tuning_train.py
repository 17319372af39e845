"""The training loop's float32 master copies: bfloat16 rows move like float32 ones, others never.

bfloat16 keeps 8 significant bits: an AdamW step of 1e-5 on a weight near 0.02 (whose spacing
is 1.2e-4) rounds away. With float32 master copies of the trained rows the steps accumulate.
"""

from __future__ import annotations

import pytest
import torch

import nasalens as nl
from nasalens.models import Head, adapt, tiny_model
from nasalens.prompts import binary, encode
from nasalens.tuning import NasaConfig, train
from tests.builders import make_samples, weights
from tests.devices import device_under_test
from tests.test_tuning import make_probe

pytestmark = pytest.mark.devices

DEVICE = device_under_test()
HEAD = Head(1, 2)


def steps(model, lr: float, n: int, *, master: bool | None = None) -> list[torch.Tensor]:
    """``n`` AdamW steps on HEAD's query/key rows towards "Yes"; return the master copies."""
    adapter = adapt(model)
    batch = encode(model, make_samples(6), template=binary())
    resid = train.residuals(adapter, batch, HEAD.layer, chunk_size=6)
    targets = torch.full((6,), batch.pos_target)
    with train.master_weights(adapter, adapter.qk_slices(HEAD), master=master) as weights:
        opt = train.optimizer(weights.params, lr)
        for _ in range(n):
            loss = train.answer_loss(adapter, resid, HEAD.layer, batch, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            weights.step(opt)
        return [copy.detach().clone() for _, _, copy in weights.copies]


def rounded_float32():
    """The tiny model in float32 with bfloat16-representable weights (the bf16 run's start)."""
    model = tiny_model(device=DEVICE)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return model


def test_float32_master_copies_take_the_weights_own_steps():
    direct, copied = tiny_model(device=DEVICE), tiny_model(device=DEVICE)
    steps(direct, 1e-2, 4, master=False)
    masters = steps(copied, 1e-2, 4, master=True)
    a, b = weights(direct), weights(copied)
    assert all(torch.equal(a[n], b[n]) for n in a)
    q = adapt(direct).qk_slices(HEAD)[0]
    assert torch.equal(masters[0], q.param.detach()[q.rows])


def test_bfloat16_rows_train_like_float32_ones_only_with_master_copies():
    reference = rounded_float32()
    start = weights(reference)
    steps(reference, 1e-5, 10)
    q_name, q_rows = adapt(reference).qk_slices(HEAD)[0].name, slice(32, 48)
    moved_ref = (weights(reference)[q_name] - start[q_name])[q_rows]
    for master, min_cos, changed in ((None, 0.9, (0.5, 1.0)), (False, -1.0, (0.0, 0.3))):
        model = tiny_model(dtype=torch.bfloat16, device=DEVICE)
        before = weights(model)
        assert torch.equal(before[q_name].float(), start[q_name])
        masters = steps(model, 1e-5, 10, master=master)
        after = weights(model)
        moved = (after[q_name].float() - before[q_name].float())[q_rows]
        share = float((moved != 0).float().mean())
        cos = torch.nn.functional.cosine_similarity(moved.flatten(), moved_ref.flatten(), dim=0)
        assert changed[0] <= share <= changed[1], (master, share)
        assert cos >= min_cos, (master, float(cos))
        # Rows and weights outside the head's query/key slices: bit for bit the same.
        for name, value in after.items():
            keep = torch.ones(value.shape[0], dtype=torch.bool)
            if name == q_name:
                keep[q_rows] = False
            elif name == adapt(model).qk_slices(HEAD)[1].name:
                keep[16:32] = False
            assert torch.equal(value[keep], before[name][keep]), name
        if master is None:  # the float32 copy follows the float32 run closely
            q_copy = masters[0] - start[q_name][q_rows]
            cos_copy = torch.nn.functional.cosine_similarity(
                q_copy.flatten(), moved_ref.flatten(), dim=0
            )
            assert cos_copy > 0.99
            assert masters[0].dtype == torch.float32
        else:
            assert masters == []
    # Without master copies most of the update rounds away (the trap the copies avoid).


def test_nasa_in_bfloat16_changes_the_trained_rows_and_only_them():
    model = tiny_model(dtype=torch.bfloat16, device=DEVICE)
    config = NasaConfig(
        lr=1e-4, batch_size=4, max_epochs=2, early_stopping=False, cancellation=False,
        halting="never",
    )  # fmt: skip
    result = nl.nasa(model, make_probe(), [HEAD], config, progress=False)
    before, after = weights(model), weights(result.model)
    q, k = adapt(model).qk_slices(HEAD)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved == {q.name, k.name}
    rows = (before[q.name] != after[q.name]).any(dim=1).nonzero().flatten().tolist()
    assert rows == list(range(32, 48))
    assert after[q.name].dtype == torch.bfloat16
    assert all(r["loss"] == r["loss"] for r in result.records if r["event"] == "epoch")
