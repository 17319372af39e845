"""nasalens: find, prove and repair the attention heads behind LLMs' negative bias.

The notebook surface is re-exported here: everything the four notebooks use, and nothing
more. The rest is reached through its module, e.g. ``nasalens.metrics.auroc`` or
``nasalens.heads.random_like``.
"""

from nasalens import analysis, data, plotting
from nasalens.correlation import nas_confidence_correlation
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet, negative_heads
from nasalens.metrics import evaluate
from nasalens.models import Head, info, load_model
from nasalens.patching import ablate, contrast, patch_heads
from nasalens.plotting.heads import heatmap
from nasalens.prompts import binary, encode
from nasalens.scores import NasScores, nas
from nasalens.shipped import shipped_organism
from nasalens.tuning import NasaConfig, compare, export, nasa, probe_set
from nasalens.validation import rank_heads, validate_heads

__all__ = [
    "Head",
    "HeadSet",
    "NasScores",
    "NasaConfig",
    "NasalensError",
    "ablate",
    "analysis",
    "binary",
    "compare",
    "contrast",
    "data",
    "encode",
    "evaluate",
    "export",
    "heatmap",
    "info",
    "load_model",
    "nas",
    "nas_confidence_correlation",
    "nasa",
    "negative_heads",
    "patch_heads",
    "plotting",
    "probe_set",
    "rank_heads",
    "shipped_organism",
    "validate_heads",
]
__version__ = "0.2.0"
