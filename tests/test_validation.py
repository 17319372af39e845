"""Causal validation on the tiny model, its statistics on hand-made numbers, and its figures."""

import math

import jaxtyping
import numpy as np
import pandas as pd
import pytest
import torch

from nasalens.errors import NasalensError
from nasalens.metrics import evaluate, summarize
from nasalens.models import Head
from nasalens.patching import ablate, contrast, patch_heads
from nasalens.plotting.validation import plot_head_effects, plot_patching, plot_validation
from nasalens.prompts import encode
from nasalens.scores import nas
from nasalens.validation import VALIDATION_METRICS, HeadValidation, validate_heads
from nasalens.validation.head_sets import _compare, _metrics
from tests.builders import make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)

HEADS = [Head(0, 1), Head(1, 3)]


@pytest.fixture(scope="module")
def batch(tiny_model):
    return encode(tiny_model, make_samples(6))


@pytest.fixture(scope="module")
def result(tiny_model, batch):
    return validate_heads(tiny_model, batch, HEADS, n_sets=3, n_boot=200, progress=False)


def test_baseline_and_ablated_numbers_match_evaluate_and_nas(tiny_model, batch, result):
    table = result.summary.set_index("metric")
    base = evaluate(tiny_model, batch, progress=False)
    with ablate(tiny_model, HEADS, how="mean", reference=batch):
        ablated = evaluate(tiny_model, batch, progress=False)
        ablated_nas = nas(tiny_model, batch, progress=False).model
    for column, ev in [("baseline", base), ("ablated", ablated)]:
        for m in ("recall", "accuracy", "auroc"):
            assert table.loc[m, column] == pytest.approx(ev.summary[m], nan_ok=True)
        assert table.loc["logit_diff", column] == pytest.approx(
            ev.per_sample["logit_diff"].mean(), abs=1e-5
        )
    assert table.loc["model_nas", "baseline"] == pytest.approx(
        nas(tiny_model, batch, progress=False).model, abs=1e-4
    )
    assert table.loc["model_nas", "ablated"] == pytest.approx(ablated_nas, abs=1e-4)
    assert table.loc["logit_diff", "effect"] == pytest.approx(
        table.loc["logit_diff", "ablated"] - table.loc["logit_diff", "baseline"]
    )


def test_result_shapes_controls_and_per_head(result):
    assert list(result.summary["metric"]) == list(VALIDATION_METRICS)
    assert len(result.controls) == 3 and len(result.random_effects) == 3
    for control in result.controls:  # matched: same size and layer histogram, other heads
        assert sorted(h.layer for h in control) == [0, 1] and not set(control) & set(HEADS)
    assert list(result.per_head.columns[:3]) == ["layer", "head", "name"]
    assert list(result.per_head["name"]) == ["L0H1", "L1H3"]
    assert len(result.per_sample) == 6
    assert "2 heads vs 3 random sets, 6 samples" in repr(result)
    assert result.effect("logit_diff") == result.to_frame().iloc[0]["effect"]
    with pytest.raises(NasalensError, match="unknown metric"):
        result.share_beaten("f1")


def test_per_head_takes_the_first_n_heads(tiny_model, batch, result):
    first = validate_heads(
        tiny_model, batch, HEADS, n_sets=0, per_head=1, n_boot=10, progress=False
    )
    pd.testing.assert_frame_equal(first.per_head, result.per_head.iloc[:1])
    none = validate_heads(tiny_model, batch, HEADS, n_sets=0, per_head=0, progress=False)
    assert none.per_head.empty and list(none.per_head.columns) == list(result.per_head.columns)
    with pytest.raises(NasalensError, match="per_head must be >= 0"):
        validate_heads(tiny_model, batch, HEADS, n_sets=0, per_head=-1, progress=False)


def test_the_vectorized_metrics_match_summarize():
    rng = np.random.default_rng(1)
    gold = rng.random(40) > 0.5
    ld = rng.normal(size=(2, 40))
    got = _metrics(ld, np.zeros_like(ld), gold, np.arange(40)[None])
    for run in range(2):
        expected = summarize(gold, 1 / (1 + np.exp(-ld[run])))
        for m in ("recall", "precision", "accuracy", "auroc"):
            assert got[m][run, 0] == pytest.approx(expected[m])
        assert got["logit_diff"][run, 0] == pytest.approx(ld[run].mean())


def test_share_beaten_and_intervals_by_hand():
    gold = np.array([True, False] * 10)
    base = np.full(20, -1.0)
    selected = base + 1.0  # LD +1 everywhere
    randoms = [base + d for d in (0.0, 0.5, 1.0, 2.0)]  # beats 2, ties 1, loses 1
    ld = np.stack([base, selected, *randoms])
    model_nas = -ld  # lower NAS is the good direction
    boot = np.random.default_rng(0).integers(0, 20, size=(50, 20))
    sets = [(Head(0, i),) for i in range(4)]
    summary, random = _compare(ld, model_nas, gold, boot, [Head(1, 0)], sets)
    row = summary.set_index("metric").loc["logit_diff"]
    assert row["effect"] == pytest.approx(1.0)
    assert row["effect_lo"] == pytest.approx(1.0) and row["effect_hi"] == pytest.approx(1.0)
    assert row["share_beaten"] == pytest.approx((2 + 0.5) / 4)
    assert row["random_mean"] == pytest.approx(0.875)
    assert row["vs_random"] == pytest.approx(0.125)
    nas_row = summary.set_index("metric").loc["model_nas"]
    assert nas_row["share_beaten"] == pytest.approx((2 + 0.5) / 4)
    assert list(random["logit_diff"]) == pytest.approx([0.0, 0.5, 1.0, 2.0])
    assert math.isnan(summary.set_index("metric").loc["precision", "baseline"])


def test_validate_rejects_bad_inputs(tiny_model, batch):
    with pytest.raises(NasalensError, match="no heads"):
        validate_heads(tiny_model, batch, [], progress=False)
    with pytest.raises(NasalensError, match="does not exist"):
        validate_heads(tiny_model, batch, [Head(5, 0)], progress=False)
    with pytest.raises(NasalensError, match="n_sets"):
        validate_heads(tiny_model, batch, HEADS, n_sets=-1, progress=False)
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        with pytest.raises(NasalensError, match="unknown ablation"):
            validate_heads(tiny_model, batch, HEADS, how="half", progress=False)
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


def test_crowded_layers_draw_controls_from_all_heads(tiny_model, batch, caplog):
    crowded = [Head(0, 0), Head(0, 1), Head(0, 2)]  # only one other head in layer 0
    result = validate_heads(
        tiny_model, batch, crowded, n_sets=4, per_head=False, n_boot=10, progress=False
    )
    assert "selected ones included" in caplog.text
    assert (result.random_effects["overlap"] >= 2).all()
    assert all(sorted(h.layer for h in s) == [0, 0, 0] for s in result.controls)


def test_controls_can_be_given_as_head_sets(tiny_model, batch):
    sets = [[Head(0, 0)], [Head(1, 0), Head(1, 2)]]
    result = validate_heads(
        tiny_model, batch, HEADS, controls=sets, per_head=False, n_boot=10, progress=False
    )
    assert [c.heads for c in result.controls] == [(Head(0, 0),), (Head(1, 0), Head(1, 2))]
    with ablate(tiny_model, sets[1], how="mean", reference=batch):
        ld = evaluate(tiny_model, batch, progress=False).per_sample["logit_diff"].mean()
    base = result.summary.set_index("metric").loc["logit_diff", "baseline"]
    assert result.random_effects["logit_diff"][1] == pytest.approx(ld - base, abs=1e-5)


def test_validation_figures_carry_the_numbers(result):
    fig = plot_validation(result)
    selected = [t for t in fig.data if t.type == "scatter"]
    random = [t for t in fig.data if t.type == "box"]
    assert len(selected) == len(random) == len(VALIDATION_METRICS)
    assert selected[0].y[0] == pytest.approx(result.effect("logit_diff"))
    assert list(random[0].y) == pytest.approx(list(result.random_effects["logit_diff"]))
    bars = plot_head_effects(result, "recall")
    assert sorted(bars.data[0].x) == ["L0H1", "L1H3"]
    with pytest.raises(NasalensError, match="unknown metric"):
        plot_validation(result, ["f1"])


def test_patching_map_is_layer_by_head(tiny_model):
    swept = patch_heads(
        tiny_model, *contrast(tiny_model, make_samples(2), n_shots=1), progress=False
    )
    fig = plot_patching(swept)
    assert np.asarray(fig.data[0].z).shape == (2, 4)
    torch.testing.assert_close(torch.tensor(np.asarray(fig.data[0].z)), swept.restored)


def test_a_validation_saves_and_loads_back_equal(result, tmp_path):
    result.save(tmp_path / "v")
    back = HeadValidation.load(tmp_path / "v")
    assert back.heads == result.heads and back.controls == result.controls
    assert back.how == result.how
    for name in ("summary", "random_effects", "per_head", "per_sample"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(result, name))
    assert list(result.to_frame().columns) == [
        "metric", "baseline", "ablated", "effect", "effect_lo", "effect_hi", "share_beaten"
    ]  # fmt: skip


def test_a_ranking_goes_straight_into_validation_and_names_are_heads(tiny_model, batch):
    from nasalens.validation import rank_heads

    ranking = rank_heads(tiny_model, batch, progress=False)
    got = validate_heads(tiny_model, batch, ranking[:2], n_sets=0, per_head=False, progress=False)
    assert got.heads == ranking[:2] and got.heads.by == "effect"  # the scores travel along
    by_name = validate_heads(
        tiny_model, batch, [str(h) for h in ranking[:2]], n_sets=0, per_head=False, progress=False
    )
    pd.testing.assert_frame_equal(by_name.summary, got.summary)
    with pytest.warns(DeprecationWarning, match="n_sets="):
        old = validate_heads(tiny_model, batch, HEADS, controls=0, per_head=False, progress=False)
    assert len(old.controls) == 0
