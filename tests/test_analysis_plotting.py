"""Analysis figures by their data, the outcome labels, the HTML section and page."""

from dataclasses import replace

import pandas as pd
import pytest

import nasalens.plotting
from nasalens.analysis import analyze, outcomes
from nasalens.metrics import EvalResult
from nasalens.plotting.analysis import (
    analysis_section,
    plot_confidence,
    plot_generalization,
    plot_scenarios,
)
from nasalens.report import Section, render
from tests.builders import make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


def _result(gold, decision, confidence) -> EvalResult:
    frame = pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(len(gold))],
            "gold": gold,
            "decision": decision,
            "confidence": confidence,
        }
    )
    return EvalResult("hand", {}, frame)


BEFORE = _result(
    [True, True, False, False, True], [True, False, True, False, False], [0.9, 0.6, 0.7, 0.8, 0.55]
)
AFTER = _result(
    [True, True, False, False, True], [True, True, True, False, True], [0.95, 0.6, 0.8, 0.5, 0.7]
)


def test_outcomes_label_each_decision():
    frame = outcomes(BEFORE)
    assert frame["outcome"].tolist() == ["TP", "FN", "FP", "TN", "FN"]
    assert frame["confidence"].tolist() == [0.9, 0.6, 0.7, 0.8, 0.55]


def test_plot_confidence_hold_each_outcomes_confidences():
    fig = plot_confidence(BEFORE, AFTER, bins=5)
    by_name = {t.name: list(t.x) for t in fig.data}
    assert len(fig.data) == 8
    assert by_name["before FN"] == [0.6, 0.55]
    assert by_name["before TP"] == [0.9]
    assert by_name["after TP"] == [0.95, 0.6, 0.7]
    assert by_name["after FN"] == []
    assert fig.data[0].xbins.size == pytest.approx(0.1)
    assert len(plot_confidence(BEFORE).data) == 4


def test_plot_generalization_groups_by_model_and_shots():
    table = pd.DataFrame(
        {
            "model": ["base"] * 4,
            "candidates": ["yes_no", "yes_no", "true_false", "true_false"],
            "instruction": ["nasa", "a", "nasa", "a"],
            "shots": [0, 0, 0, 0],
            "n": [10] * 4,
            "accuracy": [0.5, 0.6, 0.7, 0.8],
        }
    )
    fig = plot_generalization(table)
    assert [t.name for t in fig.data] == ["base, 0-shot", "base, 0-shot"]
    assert list(fig.data[1].y) == [0.7, 0.8] and list(fig.data[1].x) == ["nasa", "a"]
    with pytest.warns(DeprecationWarning, match="plot_generalization"):
        old = nasalens.plotting.generalization_figure(table)  # the name before 0.2
    assert old == fig


def test_analysis_section_and_page_on_the_tiny_model(tiny_model, tiny_model_copy):
    samples = [replace(s, answers=("4",)) for s in make_samples(8)]
    result = analyze(
        tiny_model,
        samples,
        tuned=tiny_model_copy,
        n_shots=2,
        which=("plain", "idk"),
        progress=False,
    )
    assert result.shifts is not None and result.after is not None
    # The copy decides as the base model: nothing moves.
    assert result.shifts["n_fn_to_tp"].sum() == 0 and result.shifts["n_tn_to_fp"].sum() == 0
    summary = result.scenarios.to_frame()
    fig = plot_scenarios(summary)
    assert [t.name for t in fig.data] == ["correct", "wrong", "non_deterministic", "all"]
    assert list(fig.data[3].x) == ["plain", "idk"]
    section = analysis_section(result)
    assert section.startswith("<section>") and "Decision shifts after tuning" in section
    assert section.count("<table") == 6  # decisions, grid, knowledge, FN, shifts, scenarios
    assert "<h2>" not in analysis_section(result, heading=False)
    page = render("test", [Section("Analysis", html=analysis_section(result, heading=False))])
    assert page.startswith("<!DOCTYPE html>") and "Plotly" in page
    assert page.count("<h2") == 1 and page.count("<script type='text/javascript'>") == 1
    assert "Analysis('custom', n=8, with a tuned model" in repr(result)
    assert result.to_frame()["model"].tolist() == ["base", "tuned"]
