"""Figures of the analysis suite, and the HTML section that shows one `Analysis`.

Owns the generalization bars, the confidence histograms by TP/FP/TN/FN (the paper's Figures 2
and 5), the scenario bars and `analysis_section`: an HTML fragment that `nasalens.report` places
in its one page builder (`nasalens analyze` and the main job's report both do).
"""

from __future__ import annotations

import html
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nasalens.analysis.knowledge import CATEGORIES
from nasalens.analysis.outcomes import OUTCOMES, outcomes
from nasalens.analysis.suite import Analysis
from nasalens.errors import NasalensError
from nasalens.metrics import EvalResult

GridMetric = Literal["accuracy", "f1", "precision", "recall", "share_yes", "auroc"]
ScenarioMetric = Literal["recall_minus_precision", "share_no", "share_idk", "accuracy"]
_COLORS = {"TP": "#2a9d8f", "FP": "#e9c46a", "TN": "#264653", "FN": "#e76f51"}


def plot_generalization(frame: pd.DataFrame, *, metric: GridMetric = "accuracy") -> go.Figure:
    """Plot one metric of the generalization grid as grouped bars.

    One panel per candidate pair; bars by instruction, one colour per model and shot count.

    Args:
        frame: The frame of `nasalens.analysis.generalization`.
        metric: The column to plot.

    Returns:
        The figure; trace ``"{model}, {shots}-shot"`` of panel c holds that row's values, x the
        instructions.
    """
    if metric not in frame.columns:
        raise NasalensError(f"metric {metric!r} is not a column of the generalization frame")
    pairs = list(dict.fromkeys(frame["candidates"]))
    fig = make_subplots(rows=1, cols=len(pairs), subplot_titles=pairs, shared_yaxes=True)
    groups = list(frame.groupby(["model", "shots"], sort=False))
    for i, pair in enumerate(pairs, start=1):
        for g, ((model, shots), rows) in enumerate(groups):
            part = rows[rows["candidates"] == pair]
            fig.add_trace(
                go.Bar(
                    x=list(part["instruction"]),
                    y=list(part[metric]),
                    name=f"{model}, {shots}-shot",
                    legendgroup=f"{model}-{shots}",
                    showlegend=i == 1,
                    marker_color=_palette(g),
                    customdata=list(part["n"]),
                    hovertemplate="%{x}: %{y:.3f} (n=%{customdata})<extra></extra>",
                ),
                row=1,
                col=i,
            )
    fig.update_layout(barmode="group", title=f"Generalization across prompts: {metric}")
    fig.update_yaxes(title_text=metric, col=1)
    return fig


def plot_confidence(
    before: EvalResult, after: EvalResult | None = None, *, bins: int = 10
) -> go.Figure:
    """Plot P(decision) by outcome (TP, FP, TN, FN), before and after tuning.

    Args:
        before: Decisions of the base model.
        after: Decisions of the tuned model, or None for one row of panels.
        bins: Bins between 0.5 and 1.

    Returns:
        The figure: one panel per outcome (columns) and model (rows); the trace named
        ``"{model} {outcome}"`` holds the confidences of those samples as ``x``.
    """
    if bins < 1:
        raise NasalensError(f"bins must be at least 1, got {bins}")
    results = {"before": before} if after is None else {"before": before, "after": after}
    titles = [f"{name}: {o}" for name in results for o in OUTCOMES]
    fig = make_subplots(rows=len(results), cols=len(OUTCOMES), subplot_titles=titles)
    for r, (name, result) in enumerate(results.items(), start=1):
        frame = outcomes(result)
        for c, outcome in enumerate(OUTCOMES, start=1):
            values = frame.loc[frame["outcome"] == outcome, "confidence"]
            fig.add_trace(
                go.Histogram(
                    x=list(values),
                    name=f"{name} {outcome}",
                    xbins={"start": 0.5, "end": 1.0, "size": 0.5 / bins},
                    marker_color=_COLORS[outcome],
                    showlegend=False,
                ),
                row=r,
                col=c,
            )
    fig.update_xaxes(range=[0.5, 1.0], title_text="P(decision)")
    fig.update_layout(title="Confidence of the decisions by outcome", bargap=0.05)
    return fig


def plot_scenarios(
    summary: pd.DataFrame, *, metric: ScenarioMetric = "recall_minus_precision"
) -> go.Figure:
    """Plot one column of `Scenarios.to_frame` as bars: scenarios by knowledge category.

    Args:
        summary: The frame of `nasalens.analysis.Scenarios.to_frame`.
        metric: The column to plot.

    Returns:
        The figure: one trace per category ("all" last), x the scenarios.
    """
    if metric not in summary.columns:
        raise NasalensError(f"metric {metric!r} is not a column of the scenario summary")
    fig = go.Figure()
    for g, category in enumerate((*CATEGORIES, "all")):
        rows = summary[summary["category"] == category]
        fig.add_trace(
            go.Bar(
                x=list(rows["scenario"]),
                y=list(rows[metric]),
                name=category,
                marker_color=_palette(g),
                customdata=list(rows["n"]),
                hovertemplate="%{x}: %{y:.3f} (n=%{customdata})<extra></extra>",
            )
        )
    fig.update_layout(barmode="group", title=f"Prompting scenarios: {metric}")
    fig.update_yaxes(title_text=metric)
    return fig


def analysis_section(analysis: Analysis, *, heading: bool = True) -> str:
    """Render one `Analysis` as an HTML fragment: tables with their counts, and figures.

    The figures need plotly.js on the page (`nasalens.report.render` inlines it once).

    Args:
        analysis: The analysis.
        heading: Open with the heading "Analysis: <name>" (leave it to a report section that
            has its own).
    """
    name = html.escape(analysis.name)
    parts = ["<section>"] + ([f"<h2>Analysis: {name}</h2>"] if heading else [])
    parts += _table("Prompt I decisions", analysis.to_frame())
    parts += _table("Generalization across prompts", analysis.generalization)
    parts.append(_figure(plot_generalization(analysis.generalization)))
    parts += _table("Knowledge categories (base model)", analysis.knowledge.to_frame())
    parts += _table("False negatives by knowledge category", analysis.fn_composition)
    if analysis.shifts is not None:
        parts += _table("Decision shifts after tuning", analysis.shifts)
    summary = analysis.scenarios.to_frame()
    parts += _table("Prompting scenarios (base model)", summary)
    parts.append(_figure(plot_scenarios(summary)))
    parts.append(_figure(plot_scenarios(summary, metric="share_no")))
    parts.append(_figure(plot_confidence(analysis.before, analysis.after)))
    parts.append("</section>")
    return "\n".join(parts)


def _table(caption: str, frame: pd.DataFrame) -> list[str]:
    body = frame.to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-")
    return [f"<h3>{html.escape(caption)}</h3>", body]


def _figure(fig: go.Figure) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False))


def _palette(i: int) -> str:
    colors = ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8d99ae")
    return colors[i % len(colors)]
