"""NASA: the probing set, head-wise incremental tuning, resumable runs, exports, evaluation.

`probe_set` finds what a model knows and splits it into TP, FN and V; `select_heads` chooses
the heads (by NAS or by ablation); `nasa` tunes them by Algorithm 1 of Yu et al. (2025);
`runs` keeps a run folder that survives a kill; `export` writes a plain Hugging Face
checkpoint; `evaluation` compares baseline and tuned.
"""

from nasalens.tuning.config import NasaConfig
from nasalens.tuning.evaluation import Comparison, compare
from nasalens.tuning.export import export
from nasalens.tuning.nasa import nasa
from nasalens.tuning.probe import ProbeSet, probe_set
from nasalens.tuning.result import NasaResult
from nasalens.tuning.selection import select_heads

__all__ = [
    "Comparison",
    "NasaConfig",
    "NasaResult",
    "ProbeSet",
    "compare",
    "export",
    "nasa",
    "probe_set",
    "select_heads",
]
