"""Outcomes of Yes/No decisions (TP, FP, TN, FN) with their confidence (Figures 2 and 5).

Owns the labelling of each decision by its outcome; the histograms are drawn by
`nasalens.plotting.plot_confidence`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nasalens.metrics import EvalResult

#: Outcomes in figure order.
OUTCOMES = ("TP", "FP", "TN", "FN")


def outcomes(result: EvalResult) -> pd.DataFrame:
    """Label each decision TP, FP, TN or FN, with its confidence P(decision).

    Args:
        result: Decisions from `nasalens.evaluate`.

    Returns:
        One row per sample: ``id``, ``gold``, ``decision``, ``outcome`` (one of `OUTCOMES`) and
        ``confidence`` (the probability of the decided candidate, between 0.5 and 1).
    """
    df = result.per_sample
    gold, decision = df["gold"].astype(bool).to_numpy(), df["decision"].astype(bool).to_numpy()
    label = np.where(decision, np.where(gold, "TP", "FP"), np.where(gold, "FN", "TN"))
    return pd.DataFrame(
        {
            "id": df["id"].to_numpy(),
            "gold": gold,
            "decision": decision,
            "outcome": label,
            "confidence": df["confidence"].to_numpy(dtype=float),
        }
    )
