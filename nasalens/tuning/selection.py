"""Choosing the heads a NASA run tunes: by NAS (the paper) or by ablation (causal).

NAS ranks heads by where they look; a head can route the decision to "No" without looking at
the instruction at all. On the planted-bias organism NAS ranks the three planted heads 5th,
99th and 270th of 270, mean-ablating each head alone 3rd, 1st and 4th (docs/results.md), and
only NASA on the causally chosen heads (with the stopping rules off) removes the bias.
"""

from __future__ import annotations

import pandas as pd

from nasalens.errors import NasalensError
from nasalens.heads import HeadSet, negative_heads
from nasalens.scores import nas
from nasalens.tuning.config import NasaConfig
from nasalens.tuning.probe import ProbeSet
from nasalens.validation import rank_heads


def select_heads(
    model: object, probe: ProbeSet, config: NasaConfig, *, progress: bool = True
) -> tuple[HeadSet, pd.DataFrame]:
    """Choose the ``config.n_heads`` heads a run tunes, as ``config.select`` says.

    "nas": single-head NAS (region ``config.region``) on the training FN and TP samples; the
    heads in at least ``config.consistency`` of the per-sample top-``config.k`` lists, most
    negative first (`negative_heads`). "causal": every head mean-ablated alone on the training
    FN samples (`nasalens.validation.rank_heads`), largest rise of the Yes-No logit
    difference first; this costs one forward pass of the samples per head.

    Args:
        model: The model to tune.
        probe: Its probing set.
        config: The run's settings (select, n_heads, k, consistency, region, eps).
        progress: Show progress bars.

    Returns:
        The heads in tuning order, and the ranking behind them: for "nas" the selected heads'
        NAS and consistency share, for "causal" every head's ablation effect and rank.

    Raises:
        NasalensError: When the probing set has no training samples.

    Example:
        >>> config = NasaConfig(select="causal", n_heads=10)
        >>> heads, ranking = select_heads(model, probe, config)  # doctest: +SKIP
    """
    if not probe.train:
        raise NasalensError(
            "select_heads: the probing set has no training samples (FN); heads are chosen on "
            "them, so use more questions the model knows and answers 'No' to"
        )
    if config.select == "causal":
        ranking = rank_heads(model, list(probe.train), progress=progress)
        heads = HeadSet.of(list(ranking["name"][: config.n_heads]))
        return heads, ranking
    scores = nas(
        model,
        [*probe.train, *probe.tp],
        region=config.region,
        eps=config.eps,
        progress=progress,
    )
    heads = negative_heads(scores, k=config.k, n=config.n_heads, consistency=config.consistency)
    return heads, heads.to_frame()
