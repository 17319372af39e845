"""StrategyQA (Geva et al. 2021): native yes/no multi-hop questions.

Owns reading the authors' JSON (``strategyqa/dev.json``: ``qid``, ``question``, boolean ``answer``,
``facts``) into balanced yes/no samples whose context is the supporting facts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nasalens.data.files import object_rows, text_field, text_list
from nasalens.data.sample import Sample, balance
from nasalens.errors import NasalensError, quote

logger = logging.getLogger(__name__)

FOLDER = "strategyqa"
FILENAME = "dev.json"


def load_strategyqa(
    path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Sample]:
    """Load StrategyQA as balanced yes/no samples.

    Each item becomes one sample with no label (the question is itself a yes/no question),
    ``gold`` = the item's answer, and ``context`` = its facts joined by spaces. The larger class
    is subsampled (seeded) to the size of the smaller one.

    Args:
        path: ``dev.json`` (or another split in the same format, JSON or JSON Lines), its folder,
            or a data root holding ``strategyqa/``; None: the root in ``NASALENS_DATA_DIR``.
        n: How many samples to return after balancing (None: all that balance allows).
        seed: Seed of the subsampling.

    Returns:
        Samples with ids ``strategyqa-<qid>``, in file order.

    Raises:
        NasalensError: When the file is missing or an item is malformed (the message names the
            item), or ``n`` is larger than balance allows.

    Example:
        >>> samples = load_strategyqa("../shared/data", n=100)  # doctest: +SKIP
    """
    file, rows = object_rows(path, FOLDER, FILENAME, n=n, seed=seed)
    samples = []
    seen: set[str] = set()
    for where, row in rows:
        qid = row.get("qid")
        if not isinstance(qid, str | int) or isinstance(qid, bool) or not str(qid).strip():
            raise NasalensError(
                f"{where}: field 'qid' must be a non-empty string, got {quote(qid, 60)}"
            )
        answer = row.get("answer")
        if not isinstance(answer, bool):
            raise NasalensError(
                f"{where}: field 'answer' must be true or false, got {quote(answer, 60)}"
            )
        sample_id = f"strategyqa-{qid}"
        if sample_id in seen:
            raise NasalensError(f"{where}: qid {quote(qid)} appears twice; qids must be unique")
        seen.add(sample_id)
        question = text_field(row, "question", where)
        facts = text_list(row, "facts", where)
        samples.append(
            Sample(
                id=sample_id,
                question=question,
                gold=answer,
                source="strategyqa",
                context=" ".join(facts) if facts else None,
            )
        )
    try:
        kept = balance(samples, n=n, seed=seed)
    except NasalensError as err:
        raise NasalensError(f"{file}: {err}") from err
    logger.info("%s: %d of %d StrategyQA questions kept (balanced)", file, len(kept), len(samples))
    return kept
