"""Head interventions on the tiny model, checked against computations by hand."""

import jaxtyping
import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.metrics import answer_logprobs
from nasalens.models import Head, adapt
from nasalens.patching import (
    ablate,
    ablation_hooks,
    attention_hooks,
    contrast,
    head_means,
    move_attention,
    patch,
    patch_hooks,
    redistribute,
)
from nasalens.prompts import encode
from tests.builders import make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)

LAYER, HEAD = 1, 2


@pytest.fixture(scope="module")
def batch(tiny_model):
    return encode(tiny_model, make_samples(4))


@pytest.fixture
def unchecked():
    """Turn jaxtyping/beartype run-time checks off, to reach nasalens's own checks."""
    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)


def capture(store, key):
    def hook(x, hook):
        store[key] = x.detach().clone()

    return hook


def run(model, batch, hooks):
    with torch.no_grad():
        return model.run_with_hooks(
            batch.tokens, attention_mask=batch.attention_mask, fwd_hooks=list(hooks)
        )


def no_hooks_left(model):
    return not any(h._forward_hooks for h in model.hook_dict.values())


@pytest.mark.parametrize("how", ["zero", "mean", "resample"])
def test_an_ablation_changes_the_target_head_and_nothing_else(tiny_model, batch, how):
    store = {}
    z_name = f"blocks.{LAYER}.attn.hook_z"
    hooks = ablation_hooks(tiny_model, [Head(LAYER, HEAD)], how=how, reference=batch)
    run(
        tiny_model,
        batch,
        [
            ("blocks.0.attn.hook_z", capture(store, "z0")),
            (z_name, capture(store, "before")),
            *hooks,
            (z_name, capture(store, "after")),
            (f"blocks.{LAYER}.hook_attn_out", capture(store, "attn_out")),
        ],
    )
    clean = {}
    run(tiny_model, batch, [("blocks.0.attn.hook_z", capture(clean, "z0"))])
    before, after = store["before"], store["after"]
    others = [h for h in range(4) if h != HEAD]
    assert torch.equal(after[:, :, others], before[:, :, others])
    assert torch.equal(store["z0"], clean["z0"])  # the layer below is untouched
    if how == "zero":
        assert (after[:, :, HEAD] == 0).all()
    if how == "mean":
        mean = head_means(tiny_model, batch)[LAYER, HEAD]
        torch.testing.assert_close(after[:, :, HEAD], mean.expand_as(after[:, :, HEAD]))
    # The layer's attention output, by hand from z and W_O (o_proj; Llama has no bias).
    w_o = tiny_model.blocks[LAYER].attn.W_O  # [head, d_head, d_model]
    by_hand = torch.einsum("bphd,hdm->bpm", after, w_o)
    torch.testing.assert_close(store["attn_out"], by_hand, atol=1e-5, rtol=1e-5)


def test_head_means_average_every_real_position(tiny_model, batch):
    means = head_means(tiny_model, batch, chunk_size=3)
    store = {}
    run(tiny_model, batch, [("blocks.1.attn.hook_z", capture(store, "z"))])
    real = batch.attention_mask.bool()
    expected = store["z"][real].mean(dim=0)  # [head, d_head] over all real positions
    torch.testing.assert_close(means[1], expected, atol=1e-6, rtol=1e-5)


def test_resample_takes_another_rows_activations_aligned_at_the_answer(tiny_model, batch):
    store, ref = {}, {}
    run(tiny_model, batch, [("blocks.0.attn.hook_z", capture(ref, "z"))])
    hooks = ablation_hooks(tiny_model, [Head(0, 1)], how="resample", reference=batch, seed=3)
    run(tiny_model, batch, [*hooks, ("blocks.0.attn.hook_z", capture(store, "z"))])
    lengths = batch.attention_mask.sum(1)
    mean = head_means(tiny_model, batch)[0, 1]
    for row in range(len(batch)):
        got = store["z"][row, :, 1]
        a = int(batch.answer_pos[row])
        matches = []
        for donor in range(len(batch)):
            d = int(batch.answer_pos[donor])
            k = min(int(lengths[row]), int(lengths[donor]))
            if torch.equal(got[a - k + 1 : a + 1], ref["z"][donor, d - k + 1 : d + 1, 1]):
                matches.append(donor)
                if lengths[row] > lengths[donor]:  # further back than the donor: the mean
                    torch.testing.assert_close(got[: a - k + 1], mean.expand(a - k + 1, -1))
        assert matches and row not in matches


def test_patching_a_head_with_its_own_activations_changes_nothing(tiny_model, batch):
    every = [Head(layer, head) for layer in range(2) for head in range(4)]
    base = answer_logprobs(tiny_model, batch, progress=False)
    with patch(tiny_model, every, batch, batch, region="all"):
        patched = answer_logprobs(tiny_model, batch, chunk_size=3, progress=False)
    torch.testing.assert_close(patched, base, atol=1e-6, rtol=0)


def test_patching_copies_the_source_at_positions_aligned_by_the_answer(tiny_model):
    clean, corrupt = contrast(tiny_model, make_samples(3), n_shots=1)
    assert (clean.attention_mask.sum(1) > corrupt.attention_mask.sum(1)).all()
    src, tgt, got = {}, {}, {}
    name = "blocks.1.attn.hook_z"
    run(tiny_model, clean, [(name, capture(src, "z"))])
    hooks = patch_hooks(tiny_model, [Head(1, 3)], clean, corrupt)
    run(tiny_model, corrupt, [(name, capture(tgt, "z")), *hooks, (name, capture(got, "z"))])
    for row in range(len(corrupt)):
        a, a_src = int(corrupt.answer_pos[row]), int(clean.answer_pos[row])
        start = int(corrupt.instr_end[row])  # region L_I..answer, shorter in the corrupt row
        for p in range(a + 1):
            expected = src["z"][row, a_src - (a - p), 3] if p >= start else tgt["z"][row, p, 3]
            assert torch.equal(got["z"][row, p, 3], expected)
        assert torch.equal(got["z"][row, :, :3], tgt["z"][row, :, :3])


def test_zeroing_every_head_of_a_layer_removes_its_attention_output(tiny_model, batch):
    every = [Head(0, head) for head in range(4)]
    zeroed = run(tiny_model, batch, ablation_hooks(tiny_model, every, how="zero"))
    removed = run(tiny_model, batch, [("blocks.0.hook_attn_out", lambda x, hook: x * 0)])
    torch.testing.assert_close(zeroed, removed, atol=1e-6, rtol=0)
    assert not torch.allclose(zeroed, run(tiny_model, batch, []))


@pytest.mark.parametrize("how", ["move", "equalize"])
def test_moving_attention_keeps_rows_and_moves_the_stated_mass(tiny_model, batch, how):
    store = {}
    name = "blocks.0.attn.hook_pattern"
    hooks = attention_hooks(tiny_model, [Head(0, 1), Head(0, 3)], batch, how=how, fraction=0.25)
    run(
        tiny_model,
        batch,
        [(name, capture(store, "before")), *hooks, (name, capture(store, "after"))],
    )
    before, after = store["before"], store["after"]
    real = batch.attention_mask.bool()
    for row in range(len(batch)):
        pos, neg = batch.pos_cand[row], batch.neg_cand[row]
        region = torch.zeros_like(real[row])
        region[int(batch.instr_end[row]) : int(batch.answer_pos[row]) + 1] = True
        b, a = before[row], after[row]
        torch.testing.assert_close(a[:, real[row]].sum(-1), torch.ones(4, int(real[row].sum())))
        assert torch.equal(a[[0, 2]], b[[0, 2]])  # other heads untouched
        assert torch.equal(a[:, ~region], b[:, ~region])  # queries before L_I untouched
        assert torch.equal(a[:, :, ~(pos | neg)], b[:, :, ~(pos | neg)])  # other keys untouched
        a_pos, a_neg = (
            a[[1, 3]][:, region][..., pos].sum(-1),
            a[[1, 3]][:, region][..., neg].sum(-1),
        )
        b_pos, b_neg = (
            b[[1, 3]][:, region][..., pos].sum(-1),
            b[[1, 3]][:, region][..., neg].sum(-1),
        )
        if how == "move":
            torch.testing.assert_close(a_neg, 0.75 * b_neg)
            torch.testing.assert_close(a_pos, b_pos + 0.25 * b_neg)
        else:
            torch.testing.assert_close(a_pos, (b_pos + b_neg) / 2)
            torch.testing.assert_close(a_neg, (b_pos + b_neg) / 2)


def test_redistribute_spreads_onto_a_candidate_with_no_attention():
    rows = torch.tensor([[[0.5, 0.0, 0.0, 0.2, 0.3]]])
    pos = torch.tensor([False, True, True, False, False])
    neg = torch.tensor([False, False, False, True, True])
    moved = redistribute(rows, pos, neg, how="move", fraction=1.0)
    torch.testing.assert_close(moved, torch.tensor([[[0.5, 0.25, 0.25, 0.0, 0.0]]]))
    equal = redistribute(rows, pos, neg, how="equalize")
    torch.testing.assert_close(equal, torch.tensor([[[0.5, 0.125, 0.125, 0.1, 0.15]]]))


def test_attention_hooks_follow_rows_through_chunks_and_padding(tiny_model):
    batch = encode(tiny_model, make_samples(5), padding_side="left")
    every = [Head(layer, head) for layer in range(2) for head in range(4)]
    hooks = attention_hooks(tiny_model, every, batch, how="move")
    whole = answer_logprobs(tiny_model, batch, chunk_size=5, progress=False, fwd_hooks=hooks)
    chunked = answer_logprobs(tiny_model, batch, chunk_size=2, progress=False, fwd_hooks=hooks)
    torch.testing.assert_close(whole, chunked, atol=1e-5, rtol=0)
    base = answer_logprobs(tiny_model, batch, progress=False)
    assert (whole - base).abs().max() > 1e-3
    other = encode(tiny_model, make_samples(6)[5:])
    with pytest.raises(NasalensError, match="not in the batch"):
        answer_logprobs(tiny_model, other, progress=False, fwd_hooks=hooks)


def test_interventions_compose(tiny_model, batch):
    a = ablation_hooks(tiny_model, [Head(0, 2)], how="zero")
    b = attention_hooks(tiny_model, [Head(1, 0)], batch, how="move")
    together = run(tiny_model, batch, [*a, *b])
    with ablate(tiny_model, [Head(0, 2)], how="zero"):
        with move_attention(tiny_model, [Head(1, 0)], batch):
            nested = run(tiny_model, batch, [])
    torch.testing.assert_close(nested, together, atol=0, rtol=0)
    assert no_hooks_left(tiny_model)


def test_context_managers_remove_their_hooks_when_the_body_raises(tiny_model, batch):
    heads = [Head(0, 1)]
    managers = [
        lambda: ablate(tiny_model, heads, how="mean", reference=batch),
        lambda: move_attention(tiny_model, heads, batch, how="equalize"),
        lambda: patch(tiny_model, heads, batch, batch),
    ]
    for manager in managers:
        with pytest.raises(RuntimeError, match="boom"), manager():
            assert not no_hooks_left(tiny_model)
            raise RuntimeError("boom")
        assert no_hooks_left(tiny_model)


def test_bad_inputs_raise_nasalens_errors(tiny_model, batch, unchecked):
    cases = [
        (lambda: ablation_hooks(tiny_model, [Head(2, 0)], how="zero"), "does not exist"),
        (lambda: ablation_hooks(tiny_model, [Head(0, 4)], how="zero"), "does not exist"),
        (lambda: ablation_hooks(tiny_model, [Head(0, 1)] * 2, how="zero"), "appears twice"),
        (lambda: ablation_hooks(tiny_model, [Head(0, 1)], how="half"), "unknown ablation"),
        (lambda: ablation_hooks(tiny_model, [Head(0, 1)], how="mean"), "needs reference="),
        (lambda: ablation_hooks(tiny_model, [Head(0, 1)], how="resample"), "needs reference="),
        (
            lambda: ablation_hooks(
                tiny_model, [Head(0, 1)], how="resample", reference=batch.select([0])
            ),
            "at least two",
        ),
        (lambda: attention_hooks(tiny_model, [Head(0, 1)], batch, how="swap"), "unknown"),
        (lambda: attention_hooks(tiny_model, [Head(0, 1)], batch, fraction=1.5), "fraction"),
        (lambda: attention_hooks(tiny_model, [Head(0, 1)], batch, region="question"), "region"),
        (
            lambda: patch_hooks(tiny_model, [Head(0, 1)], batch, batch.select([0, 1])),
            "same samples",
        ),
    ]
    for call, message in cases:
        with pytest.raises(NasalensError, match=message):
            call()


def test_no_heads_means_no_hooks(tiny_model, batch):
    assert ablation_hooks(tiny_model, [], how="mean") == []
    assert attention_hooks(tiny_model, [], batch) == []
    assert patch_hooks(tiny_model, [], batch, batch) == []


def test_hooks_run_on_the_adapter_paths(tiny_model, batch):
    adapter = adapt(tiny_model)
    hooks = ablation_hooks(tiny_model, [Head(1, 1)], how="resample", reference=batch)
    lean = adapter.logits_at(batch.tokens, batch.attention_mask, batch.answer_pos, hooks)
    assert lean.shape == (len(batch), adapter.info.d_vocab)


def test_heads_may_be_given_by_name_or_pair_everywhere(tiny_model, batch):
    def ld():
        return answer_logprobs(tiny_model, batch, progress=False)

    with ablate(tiny_model, [Head(1, 2), Head(0, 3)], how="zero"):
        want = ld()
    with ablate(tiny_model, ["L1H2", (0, 3)], how="zero"):
        assert torch.equal(ld(), want)
    with pytest.raises(NasalensError, match="not of the form"):
        ablate(tiny_model, ["layer1head2"], how="zero").__enter__()
