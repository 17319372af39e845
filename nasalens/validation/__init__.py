"""Causal validation: do the selected heads matter, and which heads matter most?

`validate_heads` ablates a selected head set and compares its effects with matched random head
sets (`head_sets`); `rank_heads` ablates every head alone and ranks them by the rise of the
Yes-No logit difference (`ranking`).
"""

from nasalens.validation.head_sets import (
    DIRECTION,
    VALIDATION_METRICS,
    HeadValidation,
    validate_heads,
)
from nasalens.validation.ranking import rank_heads

__all__ = ["DIRECTION", "VALIDATION_METRICS", "HeadValidation", "rank_heads", "validate_heads"]
