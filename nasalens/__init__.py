"""nasalens: find, prove and repair the attention heads behind LLMs' negative bias.

The notebook surface is re-exported here; everything else is reached through its module,
e.g. ``nasalens.metrics.auroc`` or ``nasalens.heads.random_like``.
"""

from nasalens import analysis, data, plotting
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet, negative_heads
from nasalens.metrics import evaluate
from nasalens.models import Head, info, load_model
from nasalens.patching import ablate, patch_heads
from nasalens.plotting.heads import heatmap
from nasalens.prompts import binary, encode
from nasalens.scores import nas
from nasalens.tuning import NasaConfig, nasa, probe_set
from nasalens.validation import validate_heads

__all__ = [
    "Head",
    "HeadSet",
    "NasaConfig",
    "NasalensError",
    "ablate",
    "analysis",
    "binary",
    "data",
    "encode",
    "evaluate",
    "heatmap",
    "info",
    "load_model",
    "nas",
    "nasa",
    "negative_heads",
    "patch_heads",
    "plotting",
    "probe_set",
    "validate_heads",
]
__version__ = "0.1.0"
