"""nasalens.models.legacy: a HookedTransformer (TransformerLens 3.9) through the model interface.

These run in the TransformerLens 3.9 environment (`make test-legacy`) and skip under 4;
test_legacy_errors.py checks what TransformerLens 4 users get instead.
"""

from __future__ import annotations

import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.models import (
    Head,
    adapt,
    legacy_available,
    load_model,
    tiny_hf_model,
    tiny_legacy_model,
)
from nasalens.prompts import binary, encode
from nasalens.tuning import train
from tests.builders import make_samples

pytestmark = [
    pytest.mark.legacy,
    pytest.mark.skipif(
        not legacy_available(),
        reason="needs TransformerLens 3.9 (HookedTransformer); runs in make test-legacy",
    ),
]


@pytest.fixture
def model(tiny_model):
    """A private copy of the session's tiny HookedTransformer."""
    return adapt(tiny_model).clone()


def _ids(model, text="Is the sky blue? Yes", n=1):
    tok = adapt(model).tokenizer
    ids = [tok.bos_token_id, *tok.encode(text, add_special_tokens=False)]
    return torch.tensor([ids] * n)


def test_the_adapter_reads_geometry_and_names_the_hooked_weights(tiny_model):
    adapter = adapt(tiny_model)
    assert type(adapter).__name__ == "HookedAdapter"
    geo = adapter.info
    assert (geo.n_layers, geo.n_heads, geo.n_kv_heads, geo.d_head) == (2, 4, 2, 16)
    assert geo.architecture == "LlamaForCausalLM"
    q, k = adapter.qk_slices(Head(1, 3))
    attn = tiny_model.blocks[1].attn
    assert (q.name, q.rows) == ("blocks.1.attn.W_Q", slice(3, 4))
    assert (k.name, k.rows) == ("blocks.1.attn._W_K", slice(1, 2))
    assert q.param is attn.W_Q and k.param is attn._W_K
    params = adapter.hf_parameters()
    assert params[q.name] is q.param and params[k.name] is k.param
    assert adapter.tokens_hook_name() == "hook_tokens"


@pytest.mark.parametrize("which", ["q", "k"])
def test_a_slice_moves_exactly_the_heads_that_read_it(model, which):
    adapter = adapt(model)
    tokens = _ids(model)
    mask = torch.ones_like(tokens)
    pattern = adapter.hook_name(1, "pattern")

    def patterns():
        store = {}
        with torch.no_grad():
            adapter.run(tokens, mask, [(pattern, lambda x, hook: store.update(p=x.clone()))])
        return store["p"]

    before = patterns()
    q, k = adapter.qk_slices(Head(1, 2))
    piece = q if which == "q" else k
    with torch.no_grad():
        piece.param[piece.rows] += 0.5
    moved = (patterns() - before).abs().amax(dim=(0, 2, 3))
    expected = {2} if which == "q" else {2, 3}  # KV group 1 serves query heads 2 and 3
    assert {h for h in range(4) if moved[h] > 1e-4} == expected
    assert all(moved[h] == 0 for h in range(4) if h not in expected)


def test_without_gqa_the_key_slice_is_the_heads_own_w_k():
    model = tiny_legacy_model(n_kv_heads=4)
    _, k = adapt(model).qk_slices(Head(0, 2))
    assert (k.name, k.rows) == ("blocks.0.attn.W_K", slice(2, 3))
    assert k.param is model.blocks[0].attn.W_K


def test_forward_from_skips_lower_blocks_and_matches_the_full_pass(model):
    adapter = adapt(model)
    batch = encode(model, make_samples(3), template=binary(), padding_side="left")
    fired = []
    hooks = [
        (adapter.hook_name(layer, "pattern"), lambda x, hook: fired.append(hook.name))
        for layer in (0, 1)
    ]
    with torch.no_grad():
        full = adapter.final_resid(batch.tokens, batch.attention_mask, batch.answer_pos)
        resid = adapter.resid_pre(batch.tokens, batch.attention_mask, 1)
        part = adapter.forward_from(resid, 1, batch.attention_mask, batch.answer_pos, hooks)
    assert fired == ["blocks.1.attn.hook_pattern"]
    torch.testing.assert_close(part, full, atol=1e-5, rtol=0)


def test_training_gradients_reach_only_the_slices_and_agree_across_start_layers(model):
    adapter = adapt(model)
    batch = encode(model, make_samples(3), template=binary())
    targets = torch.full((3,), batch.pos_target)
    q, k = adapter.qk_slices(Head(1, 3))
    grads = []
    for layer in (0, 1):
        resid = train.residuals(adapter, batch, layer, chunk_size=2)
        with train.trainable(adapter, [q, k]) as params:
            train.answer_loss(adapter, resid, layer, batch, targets).backward()
            grads.append([p.grad.clone() for p in params])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    gq, gk = grads[1]
    assert gq[3].abs().sum() > 0 and gq[:3].abs().sum() == 0
    assert gk[1].abs().sum() > 0 and gk[0].abs().sum() == 0


def test_clone_is_independent(model):
    adapter = adapt(model)
    copy = adapter.clone()
    q, _ = adapt(copy).qk_slices(Head(0, 0))
    with torch.no_grad():
        q.param.add_(1.0)
    assert not torch.equal(adapter.qk_slices(Head(0, 0))[0].param, q.param)


def test_exporting_a_legacy_model_says_to_use_a_bridge(model, tmp_path):
    from nasalens.tuning.export import export

    with pytest.raises(NasalensError, match=r"no Hugging Face config.*TransformerBridge"):
        export(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_model_built_without_hook_tokens_gets_it_on_demand(model):
    model.cfg.use_hook_tokens = False
    del model.hook_tokens
    model.setup()
    adapter = adapt(model)
    name = adapter.tokens_hook_name()
    seen = []
    tokens = _ids(model)
    adapter.run(tokens, torch.ones_like(tokens), [(name, lambda x, hook: seen.append(x.clone()))])
    assert torch.equal(seen[0], tokens)


def test_a_folder_loads_without_processing_and_matches_hugging_face(tmp_path):
    hf, tok = tiny_hf_model(seed=3)
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model = load_model(tmp_path, legacy=True)
    assert type(model).__name__ == "HookedTransformer"
    attn = hf.model.layers[1].self_attn
    # No folding or centering: the per-head weights are the Hugging Face rows, transposed.
    assert torch.equal(model.blocks[1].attn.W_Q[2], attn.q_proj.weight[32:48].T)
    assert torch.equal(model.blocks[1].attn._W_K[1], attn.k_proj.weight[16:32].T)
    assert torch.equal(model.blocks[1].ln1.w, hf.model.layers[1].input_layernorm.weight)
    before = attn.q_proj.weight.detach().clone()
    copy = adapt(model).clone()
    with torch.no_grad():
        copy.blocks[1].attn.W_Q.add_(1.0)  # a copy of the weights: Hugging Face's stay
    assert torch.equal(attn.q_proj.weight, before)
    tokens = _ids(model, n=2)
    hf.set_attn_implementation("eager")
    with torch.no_grad():
        ours = model(tokens, attention_mask=torch.ones_like(tokens))
        theirs = hf(tokens).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
