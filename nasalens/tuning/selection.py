"""Choosing the heads a NASA run tunes: by NAS (the paper) or by ablation (causal).

NAS ranks heads by where they look; a head can route the decision to "No" without looking at
the instruction at all. On the planted-bias organism NAS ranks the three planted heads 5th,
99th and 270th of 270, mean-ablating each head alone 3rd, 1st and 4th (docs/results.md), and
only NASA on the causally chosen heads (with the stopping rules off) removes the bias.
"""

from __future__ import annotations

from nasalens.errors import NasalensError
from nasalens.heads import HeadSet, negative_heads
from nasalens.scores import nas
from nasalens.tuning.config import NasaConfig
from nasalens.tuning.probe import ProbeSet
from nasalens.validation import rank_heads


def select_heads(
    model: object, probe: ProbeSet, config: NasaConfig | None = None, *, progress: bool = True
) -> HeadSet:
    """Rank the candidate heads for NASA as ``config.select`` says; NASA tunes the first top_n.

    "nas": single-head NAS (region ``config.region``) on the training FN and TP samples; the
    heads in at least ``config.consistency`` of the per-sample top-``config.k`` lists, most
    negative first (`negative_heads`). "causal": every head mean-ablated alone on the training
    FN samples (`nasalens.validation.rank_heads`), largest rise of the Yes-No logit difference
    first.

    Args:
        model: The model to tune.
        probe: Its probing set.
        config: The run's settings (select, k, consistency, region, eps); default: the paper's.
        progress: Show progress bars.

    Returns:
        The ranking with its scores: for "nas" the heads that pass the consistency rule (their
        ``nas`` and ``share``), for "causal" every head (its ``effect``).

    Raises:
        NasalensError: When the probing set has no training samples.

    Example:
        >>> ranking = select_heads(model, probe, NasaConfig(select="causal"))  # doctest: +SKIP
        >>> ranking.top(10).to_frame()                                         # doctest: +SKIP
    """
    config = config or NasaConfig()
    if not probe.train:
        raise NasalensError(
            "select_heads: the probing set has no training samples (FN); heads are chosen on "
            "them, so use more questions the model knows and answers 'No' to"
        )
    if config.select == "causal":
        return rank_heads(model, list(probe.train), progress=progress)
    scores = nas(
        model,
        [*probe.train, *probe.tp],
        region=config.region,
        eps=config.eps,
        progress=progress,
    )
    return negative_heads(scores, k=config.k, top_n=None, consistency=config.consistency)
