"""Figures (plotly): one module per subject — heads, validation, tuning, analysis.

Functions return plotly figures; tests check their data, not their pixels. `save_html` and
`save_png` write them (PNG needs kaleido and a Chromium browser).
"""

from nasalens.plotting.analysis import (
    confidence_histograms,
    generalization_figure,
    scenario_figure,
)
from nasalens.plotting.export import save_html, save_png
from nasalens.plotting.heads import attention_view, heatmap, plot_head_scores
from nasalens.plotting.tuning import plot_comparison, plot_nasa
from nasalens.plotting.validation import plot_head_effects, plot_patching, plot_validation

__all__ = [
    "attention_view",
    "confidence_histograms",
    "generalization_figure",
    "heatmap",
    "plot_comparison",
    "plot_head_effects",
    "plot_head_scores",
    "plot_nasa",
    "plot_patching",
    "plot_validation",
    "save_html",
    "save_png",
    "scenario_figure",
]
