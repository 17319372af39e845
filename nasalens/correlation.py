"""Model NAS against negative confidence (the paper's Table 1).

Over the samples a model answers with the negative candidate: does a higher model NAS go with
a surer "No"?
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from nasalens.errors import NasalensError
from nasalens.metrics import EvalResult
from nasalens.scores import NasScores


@dataclass(frozen=True)
class Correlation:
    """Correlation of model NAS with negative confidence (the paper's Table 1).

    Attributes:
        n: Samples the model answered with the negative candidate.
        pearson: Pearson r.
        pearson_p: Its two-sided p-value.
        spearman: Spearman rho.
        spearman_p: Its two-sided p-value.
    """

    n: int
    pearson: float
    pearson_p: float
    spearman: float
    spearman_p: float

    def to_frame(self) -> pd.DataFrame:
        """The correlation as a one-row DataFrame."""
        return pd.DataFrame([self.__dict__])


def nas_confidence_correlation(scores: NasScores, result: EvalResult) -> Correlation:
    """Correlate model NAS with P(No) over the samples the model answers "No".

    Args:
        scores: NAS of the samples.
        result: The decisions on the same samples (matched by id).

    Returns:
        Pearson and Spearman coefficients with p-values; NaN when fewer than 3 samples.

    Raises:
        NasalensError: When the two cover different samples.
    """
    frame = result.per_sample.set_index("id")
    missing = [i for i in scores.sample_ids if i not in frame.index]
    if missing:
        raise NasalensError(
            f"sample {missing[0]!r} has NAS but no decision; evaluate the same samples"
        )
    frame = frame.loc[list(scores.sample_ids)]
    said_no = ~frame["decision"].to_numpy(dtype=bool)
    x = scores.model_per_sample.numpy()[said_no]
    y = 1 - frame["p_yes"].to_numpy()[said_no]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        nan = float("nan")
        return Correlation(len(x), nan, nan, nan, nan)
    pr, pp = stats.pearsonr(x, y)
    sr, sp = stats.spearmanr(x, y)
    return Correlation(len(x), float(pr), float(pp), float(sr), float(sp))
