"""NASA: the probing set, head-wise incremental tuning, resumable runs, exports, evaluation.

`probe_set` finds what a model knows and splits it into TP, FN and V; `select_heads` chooses
the heads (by NAS or by ablation); `nasa` tunes them by Algorithm 1 of Yu et al. (2025);
`runs` keeps a run folder that survives a kill; `export` writes a plain Hugging Face
checkpoint; `evaluation` compares baseline and tuned.
"""

from nasalens.tuning.config import NasaConfig
from nasalens.tuning.nasa import NasaResult, nasa
from nasalens.tuning.probe import ProbeSet, probe_set
from nasalens.tuning.selection import select_heads

__all__ = ["NasaConfig", "NasaResult", "ProbeSet", "nasa", "probe_set", "select_heads"]
