"""Negative heads: selection (the paper's eq. 2-4), overlaps, random controls, correlation.

The correlation is of model NAS with negative confidence (the paper's Table 1). Selection:
per sample take the top-k heads by NAS; keep heads in at least ``consistency`` of those
lists; rank the kept heads by single-head NAS and take the top n.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import pandas as pd
import torch
from scipy import stats

from nasalens.artifacts import read_json, write_json
from nasalens.errors import NasalensError, quote, shorten
from nasalens.metrics import EvalResult
from nasalens.models import Head, ModelInfo
from nasalens.scores import NasScores


@dataclass(frozen=True, eq=False)
class HeadSet(Sequence[Head]):
    """An ordered list of heads with the numbers that chose them.

    Attributes:
        heads: The heads, most negative first.
        nas: Single-head NAS of each head (mean over samples).
        share: Share of samples in whose top-k list each head appears.
        k: Per-sample top-k used for selection (None for hand-made sets).
        consistency: The share a head needed to be kept.
        n_samples: Samples behind the scores.
    """

    heads: tuple[Head, ...]
    nas: tuple[float, ...]
    share: tuple[float, ...]
    k: int | None = None
    consistency: float | None = None
    n_samples: int = 0

    def __post_init__(self) -> None:
        """Check lengths and that no head repeats."""
        object.__setattr__(self, "heads", tuple(Head(int(a), int(b)) for a, b in self.heads))
        if not len(self.heads) == len(self.nas) == len(self.share):
            raise AssertionError("heads, nas and share differ in length")
        if len(set(self.heads)) != len(self.heads):
            dup = next(h for h, c in Counter(self.heads).items() if c > 1)
            raise NasalensError(f"head {dup} appears twice in the head set")

    def __len__(self) -> int:
        return len(self.heads)

    def __eq__(self, other: object) -> bool:
        """Equal heads and settings, and equal scores with NaN equal to NaN."""
        if not isinstance(other, HeadSet):
            return NotImplemented
        return (
            (self.heads, self.k, self.consistency, self.n_samples)
            == (other.heads, other.k, other.consistency, other.n_samples)
            and np.array_equal(self.nas, other.nas, equal_nan=True)
            and np.array_equal(self.share, other.share, equal_nan=True)
        )

    def __hash__(self) -> int:
        return hash(self.heads)

    def __iter__(self) -> Iterator[Head]:
        return iter(self.heads)

    @overload
    def __getitem__(self, index: int) -> Head: ...

    @overload
    def __getitem__(self, index: slice) -> HeadSet: ...

    def __getitem__(self, index: int | slice) -> Head | HeadSet:
        """A head, or for a slice the sub-set with its numbers."""
        if isinstance(index, slice):
            return HeadSet(
                self.heads[index],
                self.nas[index],
                self.share[index],
                self.k,
                self.consistency,
                self.n_samples,
            )
        return self.heads[index]

    def __repr__(self) -> str:
        shown = ", ".join(str(h) for h in self.heads[:8])
        more = f", ... ({len(self)} heads)" if len(self) > 8 else ""
        return f"HeadSet([{shown}{more}])"

    @classmethod
    def of(cls, heads: Sequence[Head | str | tuple[int, int]]) -> HeadSet:
        """Make a hand-made head set from heads or names like ``"L17H7"``."""
        parsed = [Head.parse(h) if isinstance(h, str) else Head(*h) for h in heads]
        nan = (float("nan"),) * len(parsed)
        return cls(tuple(parsed), nan, nan)

    def top(self, n: int) -> HeadSet:
        """The first ``n`` heads."""
        return self[:n]

    def to_frame(self) -> pd.DataFrame:
        """One row per head: layer, head, name, rank, nas, share."""
        return pd.DataFrame(
            {
                "layer": [h.layer for h in self.heads],
                "head": [h.head for h in self.heads],
                "name": [str(h) for h in self.heads],
                "rank": range(1, len(self) + 1),
                "nas": self.nas,
                "share": self.share,
            }
        )

    def save(self, path: str | Path) -> None:
        """Write the set as JSON (atomically)."""
        payload = {
            "heads": [str(h) for h in self.heads],
            "nas": [None if np.isnan(x) else x for x in self.nas],
            "share": [None if np.isnan(x) else x for x in self.share],
            "k": self.k,
            "consistency": self.consistency,
            "n_samples": self.n_samples,
        }
        write_json(path, payload)

    @classmethod
    def load(cls, path: str | Path) -> HeadSet:
        """Read a set written by `save` (or a JSON list of names like ``"L17H7"``).

        Raises:
            NasalensError: When the file is missing or malformed: a head not named like
                ``"L17H7"`` or repeated, ``nas``/``share`` not as many numbers (or nulls) as
                heads, a share outside [0, 1], or a bad ``k``, ``consistency`` or ``n_samples``.
        """
        import math

        payload, where = read_json(path), shorten(str(path))

        def number(v: object, low: float = -math.inf, high: float = math.inf) -> bool:
            if isinstance(v, bool) or not isinstance(v, int | float) or abs(v) > 1e300:
                return False
            return math.isnan(v) or low <= v <= high  # NaN: an undefined score

        def whole(v: object, low: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and low <= v < 2**63

        def names(items: list) -> list[Head]:
            bad = [h for h in items if not isinstance(h, str) or len(h) > 24]
            if bad:
                raise NasalensError(f"{where}: head {quote(bad[0], 60)} is not a name like 'L17H7'")
            return [Head.parse(h) for h in items]

        def scores(key: str, values: object, n: int, low: float, high: float) -> tuple[float, ...]:
            values = values or [None] * n
            if not (isinstance(values, list) and len(values) == n) or not all(
                v is None or number(v, low, high) for v in values
            ):
                raise NasalensError(
                    f"{where}: {key!r} must hold one number in [{low}, {high}] (or null) per "
                    f"head, {n} in all, got {quote(values, 60)}; save the set again or drop it"
                )
            return tuple(math.nan if v is None else float(v) for v in values)

        def build() -> HeadSet:
            if isinstance(payload, list):
                return cls.of(names(payload))
            if not isinstance(payload, dict) or not isinstance(payload.get("heads"), list):
                raise NasalensError(f"{where}: expected {{'heads': ['L17H7', ...], ...}}")
            heads = names(payload["heads"])
            k, consistency = payload.get("k"), payload.get("consistency")
            n_samples = payload.get("n_samples") or 0
            if not (k is None or whole(k, 1)) or not whole(n_samples, 0):
                raise NasalensError(f"{where}: 'k' (or null) and 'n_samples' must be whole numbers")
            if consistency is not None and not (number(consistency, 0.0, 1.0) and consistency > 0):
                raise NasalensError(f"{where}: 'consistency' must be a share in (0, 1] or null")
            nas = scores("nas", payload.get("nas"), len(heads), -math.inf, math.inf)
            share = scores("share", payload.get("share"), len(heads), 0.0, 1.0)
            return cls(tuple(heads), nas, share, k, consistency and float(consistency), n_samples)

        try:
            return build()
        except NasalensError as err:  # Head.parse and the constructor do not name the file
            if str(err).startswith(where):
                raise
            raise NasalensError(f"{where}: {err}") from err


def negative_heads(
    scores: NasScores, *, k: int = 100, n: int = 30, consistency: float = 0.9
) -> HeadSet:
    """Select negative heads by the paper's rule (Yu et al. 2025, eq. 2-4).

    Args:
        scores: NAS of every sample, layer and head.
        k: Heads in each sample's top list (the paper: 200 for analysis, 100 for tuning).
        n: Heads returned at most (the paper: 100 for analysis, 30 for tuning).
        consistency: Share of samples whose top-k list must contain a head.

    Returns:
        Up to ``n`` heads, highest single-head NAS first; fewer when fewer pass the
        consistency rule.

    Raises:
        NasalensError: When k, n or consistency is out of range.

    Example:
        >>> heads = nasalens.negative_heads(scores, k=100, n=30)  # doctest: +SKIP
        >>> heads.to_frame().head()                              # doctest: +SKIP
    """
    n_samples, n_layers, n_heads = scores.per_sample.shape
    total = n_layers * n_heads
    check_selection(total, k=k, n=n, consistency=consistency)
    if n_samples == 0:
        raise NasalensError("no samples in the scores; compute NAS on at least one sample")
    flat = scores.per_sample.reshape(n_samples, total)
    top = torch.topk(flat, k, dim=1).indices
    counts = torch.zeros(total, dtype=torch.float64)
    counts.index_add_(0, top.flatten(), torch.ones(top.numel(), dtype=torch.float64))
    share = counts / n_samples
    head_nas = scores.head.flatten()
    kept = (share >= consistency - 1e-9).nonzero().flatten()
    kept = kept[torch.argsort(head_nas[kept], descending=True, stable=True)][:n]
    return HeadSet(
        tuple(Head(int(i) // n_heads, int(i) % n_heads) for i in kept),
        tuple(float(head_nas[i]) for i in kept),
        tuple(float(share[i]) for i in kept),
        k,
        consistency,
        n_samples,
    )


def check_selection(total: int, *, k: int, n: int, consistency: float) -> None:
    """Check selection arguments for a model with ``total`` heads (before any NAS is run).

    Raises:
        NasalensError: When k, n or consistency is out of range.
    """
    if not 1 <= k <= total:
        raise NasalensError(f"k must be between 1 and the number of heads ({total}), got {k}")
    if n < 1:
        raise NasalensError(f"n must be at least 1, got {n}")
    if not 0 < consistency <= 1:
        raise NasalensError(f"consistency must be in (0, 1], got {consistency}")


def overlap(a: Sequence[Head], b: Sequence[Head]) -> int:
    """Return how many heads two head lists share (the paper's Table 2)."""
    return len(set(a) & set(b))


def overlap_table(sets: Mapping[str, Sequence[Head]]) -> pd.DataFrame:
    """Return the pairwise overlap counts of named head lists as a square DataFrame."""
    names = list(sets)
    data = [[overlap(sets[r], sets[c]) for c in names] for r in names]
    return pd.DataFrame(data, index=names, columns=names)


def random_like(
    heads: Sequence[Head],
    info: ModelInfo,
    *,
    n_sets: int = 1,
    seed: int = 0,
    exclude_selected: bool = True,
) -> list[HeadSet]:
    """Draw random head sets with the same size and per-layer counts as ``heads``.

    Args:
        heads: The selected heads.
        info: The model's geometry.
        n_sets: How many random sets.
        seed: Seed; the same seed gives the same sets.
        exclude_selected: Draw only from heads not in ``heads``.

    Returns:
        ``n_sets`` head sets, each with the same layer histogram as ``heads``.

    Raises:
        NasalensError: When a layer has too few other heads to match its count.
    """
    per_layer = Counter(info.check_head(h).layer for h in heads)
    chosen = set(heads)
    pools = {}
    for layer, count in per_layer.items():
        pool = [Head(layer, i) for i in range(info.n_heads)]
        if exclude_selected:
            pool = [h for h in pool if h not in chosen]
        if len(pool) < count:
            raise NasalensError(
                f"layer {layer} has {len(pool)} heads outside the selection but {count} are "
                "needed for a matched random set; pass exclude_selected=False"
            )
        pools[layer] = pool
    rng = random.Random(seed)
    out = []
    for _ in range(n_sets):
        drawn = [h for layer in sorted(pools) for h in rng.sample(pools[layer], per_layer[layer])]
        out.append(HeadSet.of(drawn))
    return out


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
