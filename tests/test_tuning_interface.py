"""The layer-skipping model interface (resid_pre + forward_from) and the row-training helpers."""

import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.models import Head, adapt
from nasalens.prompts import binary, encode
from nasalens.tuning import train
from tests.builders import make_samples


def _padded(seed=0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 300, (3, 12), generator=gen)
    mask = torch.ones_like(tokens)
    mask[1, :3] = 0  # left padding
    mask[2, 9:] = 0  # right padding
    return tokens, mask, torch.tensor([11, 11, 8])


@pytest.mark.parametrize("layer", [0, 1])
def test_resid_pre_then_forward_from_equals_the_full_pass_bit_for_bit(tiny_model, layer):
    adapter = adapt(tiny_model)
    tokens, mask, positions = _padded()
    with torch.no_grad():
        full = adapter.final_resid(tokens, mask, positions)
        resid = adapter.resid_pre(tokens, mask, layer)
        split = adapter.forward_from(resid, layer, mask, positions)
        logits = tiny_model(tokens, attention_mask=mask)[torch.arange(3), positions]
    assert resid.shape == (3, 12, 64)
    assert torch.equal(split, full)
    torch.testing.assert_close(adapter.unembed(split), logits, atol=1e-5, rtol=0)


def test_forward_from_fires_hooks_of_its_blocks_only(tiny_model):
    adapter = adapt(tiny_model)
    tokens, mask, positions = _padded()
    fired = []

    def note(x, hook):
        fired.append(hook.name)

    hooks = [(adapter.hook_name(layer, "pattern"), note) for layer in (0, 1)]
    with torch.no_grad():
        resid = adapter.resid_pre(tokens, mask, 1)
        adapter.forward_from(resid, 1, mask, positions, hooks)
    assert fired == ["blocks.1.attn.hook_pattern"]


def test_forward_from_gives_the_gradient_of_the_full_pass(tiny_model_copy):
    adapter = adapt(tiny_model_copy)
    batch = encode(tiny_model_copy, make_samples(3), template=binary())
    targets = torch.full((3,), batch.pos_target)
    q, k = adapter.qk_slices(Head(1, 3))
    grads = []
    for layer in (0, 1):
        resid = train.residuals(adapter, batch, layer, chunk_size=2)
        with train.trainable(adapter, [q, k]) as params:
            loss = train.answer_loss(adapter, resid, layer, batch, targets)
            loss.backward()
            grads.append([p.grad.clone() for p in params])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # The mask: only the head's query rows and its KV group's key rows get gradient.
    gq, gk = grads[1]
    assert gq[48:64].abs().sum() > 0 and gq[:48].abs().sum() == 0
    assert gk[16:32].abs().sum() > 0 and gk[:16].abs().sum() == 0


def test_trainable_restores_flags_and_hooks(tiny_model_copy):
    adapter = adapt(tiny_model_copy)
    before = [p.requires_grad for p in tiny_model_copy.parameters()]
    with train.trainable(adapter, list(adapter.qk_slices(Head(0, 0)))) as params:
        assert len(params) == 2
        assert sum(p.requires_grad for p in tiny_model_copy.parameters()) == 2
    assert [p.requires_grad for p in tiny_model_copy.parameters()] == before


def test_bad_layers_name_the_range(tiny_model):
    adapter = adapt(tiny_model)
    tokens, mask, positions = _padded()
    with pytest.raises(NasalensError, match=r"layer 2 is outside 0\.\.1"):
        adapter.resid_pre(tokens, mask, 2)
    with pytest.raises(NasalensError, match="outside"):
        adapter.forward_from(torch.zeros(3, 12, 64), -1, mask, positions)


def test_hf_parameters_are_the_real_weights_by_hf_name(tiny_model):
    adapter = adapt(tiny_model)
    params = adapter.hf_parameters()
    q, k = adapter.qk_slices(Head(1, 2))
    assert params[q.name] is q.param and params[k.name] is k.param
    assert "lm_head.weight" in params and len(params) == 21


def test_schedule_warms_up_then_decays():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = train.optimizer([p], 1.0)
    sched = train.schedule(opt, total_steps=10, warmup=0.2, kind="linear")
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[1] < lrs[2] == 1.0
    assert lrs[-1] < lrs[3] and lrs[-1] > 0
    const = train.schedule(train.optimizer([p], 1.0), 10, 0.0, "constant")
    assert const.get_last_lr() == [1.0]
