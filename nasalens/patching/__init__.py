"""Interventions on attention heads, as TransformerLens hooks and as context managers.

Ablation of a head's output (`ablate`, `ablation_hooks`), re-weighting its attention between
the two candidates (`move_attention`, `attention_hooks`), patching its output from another run
(`patch`, `patch_hooks`), and the per-head patching sweep (`patch_heads`). Every intervention
takes a list of heads and composes with the others; the context managers remove their hooks
even when the body raises. Position alignment between batches of different lengths is always
by the offset from each row's answer position.
"""

from nasalens.patching.ablation import (
    ABLATIONS,
    AblationKind,
    ablate,
    ablation_hooks,
    head_means,
)
from nasalens.patching.activation import patch, patch_hooks
from nasalens.patching.attention import (
    ATTENTION_KINDS,
    AttentionKind,
    attention_hooks,
    move_attention,
    redistribute,
)
from nasalens.patching.rows import PatchRegion
from nasalens.patching.sweep import ContrastKind, PatchResult, contrast, patch_heads

__all__ = [
    "ABLATIONS",
    "ATTENTION_KINDS",
    "AblationKind",
    "AttentionKind",
    "ContrastKind",
    "PatchRegion",
    "PatchResult",
    "ablate",
    "ablation_hooks",
    "attention_hooks",
    "contrast",
    "head_means",
    "move_attention",
    "patch",
    "patch_heads",
    "patch_hooks",
    "redistribute",
]
