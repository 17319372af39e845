"""Figures (plotly): one module per subject — heads, validation, tuning, analysis.

Every figure function is ``plot_<subject>`` (and `heatmap`, the attention on the candidates of
one prompt). Functions return plotly figures; tests check their data, not their pixels.
`save_html` and `save_png` write them (PNG needs kaleido and a Chromium browser).
"""

from nasalens.deprecation import renamed
from nasalens.plotting.analysis import plot_confidence, plot_generalization, plot_scenarios
from nasalens.plotting.export import save_html, save_png
from nasalens.plotting.heads import attention_view, heatmap, plot_head_scores
from nasalens.plotting.ranking import plot_head_maps
from nasalens.plotting.tuning import plot_comparison, plot_nasa, plot_tradeoff
from nasalens.plotting.validation import plot_head_effects, plot_patching, plot_validation

__all__ = [
    "attention_view",
    "heatmap",
    "plot_comparison",
    "plot_confidence",
    "plot_generalization",
    "plot_head_effects",
    "plot_head_maps",
    "plot_head_scores",
    "plot_nasa",
    "plot_patching",
    "plot_scenarios",
    "plot_tradeoff",
    "plot_validation",
    "save_html",
    "save_png",
]

# Names before 0.2, kept for one release (each call warns).
generalization_figure = renamed(plot_generalization, "generalization_figure")
confidence_histograms = renamed(plot_confidence, "confidence_histograms")
scenario_figure = renamed(plot_scenarios, "scenario_figure")
