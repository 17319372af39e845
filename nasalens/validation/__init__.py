"""Causal validation: do the selected heads matter, and which heads matter most?

`validate_heads` ablates a selected head set and compares its effects with matched random head
sets (`head_sets`; its result, `HeadValidation`, in `result`); `rank_heads` ablates every head
alone and ranks them by the rise of the Yes-No logit difference (`ranking`).
"""

from nasalens.validation.head_sets import validate_heads
from nasalens.validation.ranking import rank_heads
from nasalens.validation.result import DIRECTION, VALIDATION_METRICS, HeadValidation

__all__ = ["DIRECTION", "VALIDATION_METRICS", "HeadValidation", "rank_heads", "validate_heads"]
