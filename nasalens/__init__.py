"""nasalens: find, prove and repair the attention heads behind LLMs' negative bias.

The notebook surface is re-exported here; everything else is reached through its module,
e.g. ``nasalens.metrics.auroc``.
"""

from nasalens import data
from nasalens.errors import NasalensError
from nasalens.metrics import evaluate
from nasalens.models import Head, info, load_model
from nasalens.prompts import binary, encode

__all__ = [
    "Head",
    "NasalensError",
    "binary",
    "data",
    "encode",
    "evaluate",
    "info",
    "load_model",
]
__version__ = "0.1.0"
