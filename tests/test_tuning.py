"""NASA (Algorithm 1) on the tiny model: slices, each rule by a constructed case, the guard."""

import importlib
import math
from typing import ClassVar

import pandas as pd
import pytest
import torch

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.models import Head, adapt
from nasalens.prompts import binary, encode
from nasalens.scores import nas
from nasalens.tuning import NasaConfig, ProbeSet, nasa
from nasalens.tuning.vstats import ValView, VStats
from tests.builders import make_question, weights

# The package exports the function `nasa`, which hides the module of the same name.
nasa_mod = importlib.import_module("nasalens.tuning.nasa")

#: Every rule off: each head trains for max_epochs and is kept.
FREE = {"early_stopping": False, "cancellation": False, "halting": "never"}


def make_probe(n_train=6, n_val=3, n_tp=2) -> ProbeSet:
    samples = [
        Sample(id=f"f{i}", question=f"What is {i} plus {i}?", gold=True, label=str(2 * i))
        for i in range(n_train + n_val + n_tp)
    ]
    train, val = samples[:n_train], samples[n_train : n_train + n_val]
    return ProbeSet(
        tuple(train),
        tuple(val),
        tuple(samples[n_train + n_val :]),
        len(samples),
        pd.DataFrame(),
    )


def config(**changes) -> NasaConfig:
    return NasaConfig(**{"lr": 1e-2, "batch_size": 4, "max_epochs": 2, **changes})


def changed_rows(before, after, name):
    return set((before[name] != after[name]).any(dim=1).nonzero().flatten().tolist())


@pytest.mark.parametrize(
    ("mode", "q_rows", "k_rows"),
    [("qk", set(range(48, 64)), set(range(16, 32))), ("q", set(range(48, 64)), set())],
)
def test_only_the_heads_query_rows_and_its_kv_groups_key_rows_change(
    tiny_model, mode, q_rows, k_rows
):
    before = weights(tiny_model)
    result = nasa(tiny_model, make_probe(), [Head(1, 3)], config(mode=mode, **FREE), progress=False)
    after = weights(result.model)
    assert weights(tiny_model).keys() == before.keys()  # the input model is untouched
    assert all(torch.equal(before[n], p) for n, p in weights(tiny_model).items())
    q, k = "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"
    assert changed_rows(before, after, q) == q_rows
    assert changed_rows(before, after, k) == k_rows
    others = [n for n in before if n not in (q, k)]
    assert all(torch.equal(before[n], after[n]) for n in others)
    assert list(result.kept) == [Head(1, 3)] and result.kept.method == "tuned"


def test_random_mode_trains_matched_random_heads(tiny_model):
    result = nasa(
        tiny_model, make_probe(), [Head(1, 3), Head(0, 1)], config(mode="random", **FREE),
        progress=False,
    )  # fmt: skip
    trained = list(result.heads)
    assert sorted(h.layer for h in trained) == [0, 1]
    assert not set(trained) & {Head(1, 3), Head(0, 1)}
    assert [r["head"] for r in result.head_records] == [str(h) for h in trained]


def test_val_view_measures_the_nas_of_the_scores_module(tiny_model):
    probe = make_probe()
    batch = encode(tiny_model, probe.val, template=binary())
    expected = nas(tiny_model, batch, progress=False)
    for layer in (0, 1):
        view = ValView(
            adapt(tiny_model), batch, layer, chunk_size=2, eps=1e-6,
            region="after_instruction", scale=1.0, selected=None,
        )  # fmt: skip
        got = view.measure(Head(1, 2))
        assert math.isclose(got.all_nas, expected.model, rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(got.head_nas, float(expected.head[1, 2]), rel_tol=1e-5, abs_tol=1e-6)


class Scripted:
    """A stand-in for ValView whose measurements come from a script (start, epoch 1, ...)."""

    script: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        pass

    def measure(self, head):
        return Scripted.script.pop(0)


L1H0 = (Head(1, 0),)


def run_scripted(model, script, heads=L1H0, **changes):
    Scripted.script = [VStats(*row) for row in script]
    return nasa(model, make_probe(), list(heads), config(**changes), progress=False)


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(nasa_mod, "ValView", Scripted)


# VStats rows: (head NAS, model NAS, all NAS, share Yes).
@pytest.mark.parametrize(
    ("epoch1", "reason"),
    [
        ((3.0, 9.0, 9.0, 0.0), "head NAS rose"),
        ((0.4, 9.0, 9.0, 0.0), "head NAS below rho"),
        ((1.5, 11.0, 11.0, 0.0), "model NAS rose"),
    ],
)
def test_each_early_stopping_rule_ends_the_head(tiny_model, scripted, epoch1, reason):
    result = run_scripted(
        tiny_model, [(2.0, 10.0, 10.0, 0.0), epoch1], max_epochs=5, cancellation=False,
        halting="never",
    )  # fmt: skip
    epochs = result.epochs_frame()
    assert len(epochs) == 1 and epochs["decision"][0] == "stopped"
    assert reason in epochs["reason"][0]
    assert result.head_records[0]["decision"] == "kept"


def test_without_a_trigger_the_head_runs_every_epoch(tiny_model, scripted):
    falling = [(2.0 - 0.1 * i, 10.0 - i, 10.0 - i, 0.0) for i in range(4)]
    result = run_scripted(tiny_model, falling, max_epochs=3, halting="never")
    assert list(result.epochs_frame()["decision"]) == ["continue"] * 3
    assert result.head_records[0]["epochs"] == 3


@pytest.mark.parametrize("rising", ["head", "model"])
def test_update_cancellation_restores_the_rows_bit_for_bit(tiny_model, scripted, rising):
    end = (2.5, 9.0, 9.0, 0.0) if rising == "head" else (1.0, 10.5, 10.5, 0.0)
    result = run_scripted(tiny_model, [(2.0, 10.0, 10.0, 0.0), end], max_epochs=1, halting="never")
    record = result.head_records[0]
    assert record["decision"] == "cancelled"
    assert f"{rising} NAS ended above its start" in record["reason"]
    base, tuned = weights(tiny_model), weights(result.model)
    assert all(torch.equal(base[n], tuned[n]) for n in base)


def test_dropping_the_tripping_epoch_keeps_the_state_before_it(tiny_model, scripted):
    first, ok, trip = (2.0, 10.0, 10.0, 0.0), (1.5, 9.0, 9.0, 0.0), (1.8, 8.0, 8.0, 0.0)
    common = {"max_epochs": 5, "cancellation": False, "halting": "never"}
    dropped = run_scripted(tiny_model, [first, ok, trip], keep_tripping_epoch=False, **common)
    kept = run_scripted(tiny_model, [first, ok, trip], **common)
    # Stopping after epoch 1 (its NAS is below rho) with the same schedule: epoch 1's state.
    after_one = run_scripted(tiny_model, [first, (0.4, 9.0, 9.0, 0.0)], **common)
    w_drop, w_keep, w_one = weights(dropped.model), weights(kept.model), weights(after_one.model)
    assert all(torch.equal(w_drop[n], w_one[n]) for n in w_one)
    q = "model.layers.1.self_attn.q_proj.weight"
    assert not torch.equal(w_drop[q], w_keep[q])
    assert dropped.head_records[0]["end_head_nas"] == 1.5
    assert kept.head_records[0]["end_head_nas"] == 1.8


@pytest.mark.parametrize(
    ("changes", "last", "halts"),
    [
        ({"halting": "nas"}, (1.0, -2.0, -2.0, 0.0), True),  # model NAS -2 < tau
        ({"halting": "nas"}, (1.0, 5.0, 5.0, 0.0), False),
        ({"halting": "share_yes", "halt_share": 0.5}, (1.0, 5.0, 5.0, 0.6), True),
        ({"halting": "never"}, (1.0, -9.0, -9.0, 1.0), False),
    ],
)
def test_early_halting(tiny_model, scripted, monkeypatch, changes, last, halts):
    monkeypatch.setattr(nasa_mod, "threshold", lambda *a: -1.0)
    script = [(2.0, 10.0, 10.0, 0.0), last, (2.0, 10.0, 10.0, 0.0), (1.0, 9.0, 9.0, 0.0)]
    result = run_scripted(
        tiny_model, script, heads=(Head(1, 0), Head(0, 2)), max_epochs=1, cancellation=False,
        **changes,
    )  # fmt: skip
    assert result.halted is halts
    assert len(result.head_records) == (1 if halts else 2)


def test_the_guard_fails_loudly_when_other_weights_move(tiny_model, monkeypatch):
    def decaying(params, lr):
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.1)

    monkeypatch.setattr(nasa_mod.train, "optimizer", decaying)
    with pytest.raises(AssertionError, match=r"L1H0 changed parameter .*q_proj.* weight decay"):
        nasa(tiny_model, make_probe(), [Head(1, 0)], config(**FREE), progress=False)


def test_a_probe_without_fn_is_refused(tiny_model):
    with pytest.raises(NasalensError, match="needs both"):
        nasa(tiny_model, make_probe(n_val=0), [Head(1, 0)], config(), progress=False)
    with pytest.raises(NasalensError, match="no heads"):
        nasa(tiny_model, make_probe(), [], config(), progress=False)


def test_the_real_rules_run_and_log_every_epoch(tiny_model):
    result = nasa(tiny_model, make_probe(), [Head(1, 2), Head(0, 1)], config(), progress=False)
    frame = result.to_frame()
    assert list(frame["name"]) == ["L1H2", "L0H1"][: len(frame)]
    assert set(frame["decision"]) <= {"kept", "cancelled"}
    epochs = result.epochs_frame()
    assert {"loss", "head_nas", "model_nas", "share_yes", "decision"} <= set(epochs.columns)
    assert (epochs["loss"] > 0).all()


def test_nasa_tunes_the_first_top_n_of_a_ranking_given_by_name(tiny_model):
    ranking = ["L1H2", (0, 1), Head(0, 0)]
    result = nasa(tiny_model, make_probe(), ranking, config(top_n=2, **FREE), progress=False)
    assert list(result.heads) == [Head(1, 2), Head(0, 1)]
    assert list(result.to_frame()["name"]) == ["L1H2", "L0H1"]


def test_nasa_chooses_heads_and_builds_the_probe_as_its_config_says(tiny_model, monkeypatch):
    from nasalens.tuning.selection import select_heads

    probe = make_probe()
    calls = {}

    def fake_probe_set(model, questions, **kwargs):
        calls.update(kwargs)
        return probe

    monkeypatch.setattr(nasa_mod, "probe_set", fake_probe_set)
    settings = config(top_n=2, select="causal", val_fraction=0.4, seed=3, **FREE)
    questions = [make_question(id=f"q{i}") for i in range(3)]
    result = nasa(tiny_model, questions, config=settings, progress=False)
    assert calls["val_fraction"] == 0.4 and calls["seed"] == 3
    expected = select_heads(tiny_model, probe, settings, progress=False).top(2)
    assert result.heads == expected and result.heads.by == "effect"


def test_a_result_saves_and_loads_back_equal(tiny_model, tmp_path):
    result = nasa(tiny_model, make_probe(), ["L1H2", "L0H1"], config(**FREE), progress=False)
    result.save(tmp_path / "r")
    back = nasa_mod.NasaResult.load(tmp_path / "r", tiny_model)
    assert back.heads == result.heads and back.records == result.records
    assert back.tau == result.tau and back.config == result.config
    tuned, loaded = weights(result.model), weights(back.model)
    assert all(torch.equal(tuned[n], loaded[n]) for n in tuned)
    assert not all(torch.equal(tuned[n], p) for n, p in weights(tiny_model).items())
