"""Baseline vs tuned: the verdict in words, one-pass model NAS, retention, and the figures."""

import math

import numpy as np
import pandas as pd
import pytest

from nasalens.baselines import ContextualCalibration, HeadFix
from nasalens.errors import NasalensError
from nasalens.metrics import EvalResult, evaluate, summarize
from nasalens.models import Head
from nasalens.plotting.tuning import plot_comparison, plot_nasa, plot_tradeoff
from nasalens.prompts import binary, encode
from nasalens.scores import nas
from nasalens.tuning import NasaConfig, nasa
from nasalens.tuning import evaluation as ev
from tests.builders import make_question, make_samples
from tests.test_tuning import make_probe


def result(p_yes, gold):
    frame = pd.DataFrame({"id": [f"s{i}" for i in range(len(gold))], "gold": gold, "p_yes": p_yes})
    return EvalResult("r", summarize(gold, p_yes), frame)


def scores(n=80, seed=0, signal=1.0):
    rng = np.random.default_rng(seed)
    gold = np.arange(n) % 2 == 0
    return gold, rng.normal(size=n) + signal * gold


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_a_pure_shift_is_called_shifted_not_debiased():
    gold, s = scores()
    base = result(sigmoid(s - 3), gold)  # says No to nearly everything
    shifted = result(sigmoid(s), gold)  # same order, threshold moved
    assert base.summary["recall"] < 0.2 < shifted.summary["recall"]
    assert math.isclose(base.summary["auroc"], shifted.summary["auroc"])
    assert ev.verdict(base, shifted) == ev.SHIFTED == "shifted, not debiased"


def test_recall_and_auroc_rising_together_is_not_a_shift():
    gold, s = scores(n=200, signal=0.2)
    base = result(sigmoid(s - 3), gold)
    better = result(sigmoid(s + 3.0 * gold - 1.5), gold)  # more signal and a moved threshold
    assert ev.verdict(base, better) == ev.DEBIASED
    assert ev.verdict(better, better) == ev.NO_GAIN
    with pytest.raises(NasalensError, match="different samples"):
        ev.verdict(base, result(sigmoid(s[:10]), gold[:10]))


def test_compare_reads_model_nas_in_the_same_pass(tiny_model):
    samples = make_samples(6)
    cmp = ev.compare(
        {"a": tiny_model, "b": tiny_model}, {"set": samples}, n_boot=50, progress=False
    )
    table = cmp.table
    assert list(table["model"]) == ["a", "b"] and list(table["verdict"]) == ["baseline", ev.NO_GAIN]
    expected = nas(tiny_model, encode(tiny_model, samples, template=binary()), progress=False).model
    assert math.isclose(table["model_nas"][0], expected, rel_tol=1e-5, abs_tol=1e-6)
    assert {"recall_lo", "recall_hi", "auroc_lo", "share_yes", "ece"} <= set(table.columns)
    assert cmp.retention.empty
    with pytest.raises(NasalensError, match="baseline 'c'"):
        ev.compare({"a": tiny_model}, {"set": samples}, baseline="c")


def test_compare_reads_a_head_fix_and_calibration_without_nas_passes_of_their_own(
    tiny_model, monkeypatch
):
    samples = make_samples(6)
    fix = HeadFix(tiny_model, [Head(1, 2), Head(0, 1)], how="mean", reference=samples)
    calibrated = ContextualCalibration(tiny_model)
    batch = encode(tiny_model, samples, template=binary())
    fixed_nas = nas(tiny_model, batch, fwd_hooks=fix.hooks(batch), progress=False).model
    plain_nas = nas(tiny_model, batch, progress=False).model
    alone = {
        "fix": evaluate(fix, batch, progress=False),
        "cal": evaluate(calibrated, batch, progress=False),
    }
    calls = []
    monkeypatch.setattr(ev, "nas", lambda *a, **k: calls.append(a) or nas(*a, **k))
    models = {"base": tiny_model, "fix": fix, "cal": calibrated}
    cmp = ev.compare(models, {"set": samples}, n_boot=20, progress=False)
    assert not calls  # every model NAS came from a decision's own pass
    table = cmp.table.set_index("model")["model_nas"]
    assert table["fix"] == pytest.approx(fixed_nas, rel=1e-5, abs=1e-6)
    assert table["cal"] == table["base"] == pytest.approx(plain_nas, rel=1e-5, abs=1e-6)
    assert fixed_nas != pytest.approx(plain_nas)  # the fix moves NAS: the check can tell
    for name, expected in alone.items():
        got = cmp.results[("set", name)].per_sample
        np.testing.assert_allclose(got["p_yes"], expected.per_sample["p_yes"], atol=1e-6)
    alone_model = ContextualCalibration(tiny_model)  # no plain model before it: its own pass
    ev.compare({"cal": alone_model}, {"set": samples}, n_boot=20, progress=False)
    assert len(calls) == 1


def test_qa_retention_counts_exact_matches(tiny_model, monkeypatch):
    def answers(model, samples, **kwargs):
        return pd.DataFrame({"answer": ["12", "It is 13"]})

    monkeypatch.setattr(ev, "short_answers", answers)
    qs = [make_question(id="a"), make_question(id="b")]
    assert ev.qa_retention(tiny_model, qs) == {"qa_exact_match": 0.5, "qa_n": 2}
    assert ev.qa_retention(tiny_model, [])["qa_n"] == 0


def test_the_figures_carry_the_numbers(tiny_model):
    run = nasa(
        tiny_model,
        make_probe(),
        [Head(1, 2), Head(0, 1)],
        NasaConfig(lr=1e-2, batch_size=4, max_epochs=1),
        progress=False,
    )
    fig = plot_nasa(run)
    frame = run.to_frame()
    assert list(fig.data[0].x) == list(frame["name"])
    assert np.allclose(fig.data[1].y, frame["end_head_nas"])
    cmp = ev.compare({"a": tiny_model}, {"s": make_samples(4)}, n_boot=20, progress=False)
    bars = plot_comparison(cmp, "auroc")
    assert bars.data[0].y[0] == cmp.table["auroc"][0]
    with pytest.raises(NasalensError, match="no interval"):
        plot_comparison(cmp, "ece")


def test_plot_tradeoff_puts_each_model_at_its_recall_and_auroc_with_intervals():
    gold, s = scores()
    before, after = result(sigmoid(s - 3), gold), result(sigmoid(s), gold)
    fig = plot_tradeoff({"planted": before, "repaired": after})
    assert [t.name for t in fig.data] == ["planted", "repaired"]
    for trace, r in zip(fig.data, (before, after), strict=True):
        assert trace.x[0] == r.summary["recall"] and trace.y[0] == r.summary["auroc"]
        lo, hi = r.interval("recall")
        assert trace.error_x.arrayminus[0] == pytest.approx(r.summary["recall"] - lo)
        assert trace.error_x.array[0] == pytest.approx(hi - r.summary["recall"])
        lo, hi = r.interval("auroc")
        assert lo <= trace.y[0] <= hi
    with pytest.raises(NasalensError, match="no results"):
        plot_tradeoff({})
