"""Head sets (`HeadSet`, every ranking's one type), NAS selection, overlaps, random controls.

NAS selection follows the paper's eq. 2-4: per sample take the top-k heads by NAS; keep heads
in at least ``consistency`` of those lists; rank the kept heads by single-head NAS; take the
top n.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import overload

import numpy as np
import pandas as pd
import torch

from nasalens.artifacts import read_json, write_json
from nasalens.deprecation import renamed_arguments
from nasalens.errors import NasalensError, quote, shorten
from nasalens.models import Head, HeadLike, ModelInfo, as_heads
from nasalens.scores import NasScores

FORMAT_VERSION = 2
"""Version of the JSON `HeadSet.save` writes (1: the flat ``nas``/``share`` layout)."""


@dataclass(frozen=True, eq=False)
class HeadSet(Sequence[Head]):
    """Heads in ranked order, with the scores that ranked them: every ranking's one type.

    `negative_heads` (by NAS), `nasalens.validation.rank_heads` (by causal effect),
    `PatchResult.top` (by restored logit difference) and hand-made sets (`HeadSet.of`) all
    return one; any of them can be passed on to `validate_heads`, `nasa`, `ablate` or
    `heatmap`. Slicing keeps the scores: ``ranking[:10]`` is the top ten with theirs.

    Attributes:
        heads: The heads, first ranked first.
        scores: Score columns by name (e.g. ``nas`` and ``share``; ``effect``), each with one
            value per head, NaN where not measured.
        method: How the set was made: ``"nas"``, ``"ablation"``, ``"attribution"``,
            ``"verified"``, ``"patching"``, ``"random"``, ``"tuned"`` or ``"hand"``.
        by: The score column the order follows (None for a hand-made order).
        meta: The settings behind the ranking, JSON-ready (e.g. ``k``, ``consistency``,
            ``n_samples``, ``how``).
    """

    heads: tuple[Head, ...]
    scores: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    method: str = "hand"
    by: str | None = None
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the heads and that every score column has one value per head."""
        object.__setattr__(self, "heads", tuple(as_heads(self.heads)))
        columns = {str(k): tuple(float(x) for x in v) for k, v in self.scores.items()}
        for name, values in columns.items():
            if len(values) != len(self.heads):
                raise NasalensError(
                    f"HeadSet score {name!r} has {len(values)} values for {len(self.heads)} heads"
                )
        if self.by is not None and self.by not in columns:
            raise NasalensError(f"HeadSet is ranked by {self.by!r}, which is not a score column")
        object.__setattr__(self, "scores", MappingProxyType(columns))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def __len__(self) -> int:
        return len(self.heads)

    def __eq__(self, other: object) -> bool:
        """Equal heads, method, order and settings, and equal scores with NaN equal to NaN."""
        if not isinstance(other, HeadSet):
            return NotImplemented
        return (
            (self.heads, self.method, self.by, dict(self.meta))
            == (other.heads, other.method, other.by, dict(other.meta))
            and self.scores.keys() == other.scores.keys()
            and all(
                np.array_equal(self.scores[k], other.scores[k], equal_nan=True) for k in self.scores
            )
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
        """A head, or for a slice the sub-set with its scores."""
        if isinstance(index, slice):
            scores = {k: v[index] for k, v in self.scores.items()}
            return HeadSet(self.heads[index], scores, self.method, self.by, self.meta)
        return self.heads[index]

    def __repr__(self) -> str:
        shown = ", ".join(str(h) for h in self.heads[:8])
        more = f", ... ({len(self)} heads)" if len(self) > 8 else ""
        by = f", by {self.by}" if self.by else ""
        return f"HeadSet([{shown}{more}], {self.method}{by})"

    @classmethod
    def of(cls, heads: Sequence[HeadLike] | HeadLike) -> HeadSet:
        """Make a hand-made head set from heads, names like ``"L17H7"`` or (layer, head) pairs.

        A `HeadSet` is returned as it is (with its scores).
        """
        if isinstance(heads, HeadSet):
            return heads
        return cls(tuple(as_heads(heads)))

    def top(self, n: int) -> HeadSet:
        """The first ``n`` heads, with their scores."""
        return self[:n]

    def score(self, name: str) -> tuple[float, ...]:
        """One score column (NaN for every head when the set has no such score)."""
        return self.scores.get(name, (float("nan"),) * len(self))

    @property
    def nas(self) -> tuple[float, ...]:
        """Single-head NAS of each head (NaN where not measured)."""
        return self.score("nas")

    @property
    def share(self) -> tuple[float, ...]:
        """Share of samples in whose top-k list each head appears (NAS selection)."""
        return self.score("share")

    @property
    def k(self) -> int | None:
        """Per-sample top-k of a NAS selection (None otherwise)."""
        return self.meta.get("k")  # type: ignore[return-value]

    @property
    def consistency(self) -> float | None:
        """The share a head needed to be kept by a NAS selection (None otherwise)."""
        return self.meta.get("consistency")  # type: ignore[return-value]

    @property
    def n_samples(self) -> int:
        """Samples behind the scores (0 when unknown)."""
        return int(self.meta.get("n_samples", 0))  # type: ignore[call-overload]

    def to_frame(self) -> pd.DataFrame:
        """One row per head: layer, head, name, rank, then every score column."""
        frame = pd.DataFrame(
            {
                "layer": [h.layer for h in self.heads],
                "head": [h.head for h in self.heads],
                "name": [str(h) for h in self.heads],
                "rank": range(1, len(self) + 1),
            }
        )
        for name, values in self.scores.items():
            frame[name] = values
        return frame

    def to_dict(self) -> dict[str, object]:
        """The set as JSON-ready values (NaN written as null); `from_dict` reads it back."""
        return {
            "format": "nasalens.HeadSet",
            "version": FORMAT_VERSION,
            "heads": [str(h) for h in self.heads],
            "method": self.method,
            "by": self.by,
            "scores": {
                k: [None if math.isnan(x) else x for x in v] for k, v in self.scores.items()
            },
            "meta": dict(self.meta),
        }

    def save(self, path: str | Path) -> None:
        """Write the set as JSON (atomically); `load` reads it back equal."""
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, payload: object, *, where: str = "head set") -> HeadSet:
        """Build a set from `to_dict`'s values, the version-1 layout, or a list of names.

        Raises:
            NasalensError: When the values are not a head set, naming ``where`` and the fault:
                a head not named like ``"L17H7"`` or repeated, a score column without one
                number (or null) per head, a share outside [0, 1], a bad ``k``,
                ``consistency`` or ``n_samples``, an unknown format version.
        """
        where = shorten(where)
        try:
            return cls._from_dict(payload, where)
        except NasalensError as err:  # Head.parse and the constructor do not name the source
            if str(err).startswith(where):
                raise
            raise NasalensError(f"{where}: {err}") from err

    @classmethod
    def _from_dict(cls, payload: object, where: str) -> HeadSet:
        if isinstance(payload, list):
            return cls.of(_names(payload, where))
        if not isinstance(payload, dict) or not isinstance(payload.get("heads"), list):
            raise NasalensError(f"{where}: expected {{'heads': ['L17H7', ...], ...}}")
        heads = tuple(_names(payload["heads"], where))
        if "version" not in payload:  # version 1: nas, share, k, consistency, n_samples
            scores = {
                key: _column(payload[key], len(heads), key, where)
                for key in ("nas", "share")
                if payload.get(key) is not None
            }
            meta = _checked_meta({k: payload.get(k) for k in ("k", "consistency", "n_samples")})
            by = "nas" if scores else None
            return cls(heads, scores, "nas" if scores else "hand", by, meta)
        if payload.get("version") != FORMAT_VERSION:
            raise NasalensError(
                f"{where}: head set format version {quote(payload.get('version'), 40)}; this "
                f"nasalens reads versions 1 and {FORMAT_VERSION}"
            )
        raw, meta = payload.get("scores") or {}, payload.get("meta") or {}
        if not isinstance(raw, dict) or not isinstance(meta, dict):
            raise NasalensError(f"{where}: 'scores' and 'meta' must be objects")
        method, by = payload.get("method") or "hand", payload.get("by")
        if not isinstance(method, str) or not (by is None or isinstance(by, str)):
            raise NasalensError(f"{where}: 'method' and 'by' must be names")
        columns = {str(k): _column(v, len(heads), str(k), where) for k, v in raw.items()}
        return cls(heads, columns, method, by, _checked_meta(meta))

    @classmethod
    def load(cls, path: str | Path) -> HeadSet:
        """Read a set written by `save` (either version) or a JSON list of names like "L17H7".

        Raises:
            NasalensError: When the file is missing or malformed: a head not named like
                ``"L17H7"`` or repeated, ``nas``/``share`` not as many numbers (or nulls) as
                heads, a share outside [0, 1], or a bad ``k``, ``consistency`` or ``n_samples``.
        """
        return cls.from_dict(read_json(path), where=str(path))


def _names(items: list, where: str) -> list[Head]:
    """Heads written as names like "L17H7" (anything else named in the error)."""
    bad = [h for h in items if not isinstance(h, str) or len(h) > 24]
    if bad:
        raise NasalensError(f"{where}: head {quote(bad[0], 60)} is not a name like 'L17H7'")
    return [Head.parse(h) for h in items]


def _column(values: object, n: int, key: str, where: str) -> tuple[float, ...]:
    """One score per head: numbers (shares in [0, 1]) or null for NaN."""
    low, high = (0.0, 1.0) if key == "share" else (-math.inf, math.inf)

    def number(v: object) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float) or abs(v) > 1e300:
            return False
        return math.isnan(v) or low <= v <= high  # NaN: not measured

    if not (isinstance(values, list) and len(values) == n) or not all(
        v is None or number(v) for v in values
    ):
        raise NasalensError(
            f"{where}: {quote(key, 40)} must hold one number in [{low}, {high}] (or null) per "
            f"head, {n} in all, got {quote(values, 60)}; save the set again or drop it"
        )
    return tuple(math.nan if v is None else float(v) for v in values)


def _checked_meta(meta: dict) -> dict[str, object]:
    """A ranking's settings with the known ones checked; nulls dropped."""
    k, consistency, n_samples = (meta.get(x) for x in ("k", "consistency", "n_samples"))

    def whole(v: object, low: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and low <= v < 2**63

    if not (k is None or whole(k, 1)) or not (n_samples is None or whole(n_samples, 0)):
        raise NasalensError("'k' (or null) and 'n_samples' must be whole numbers")
    if consistency is not None and not (
        isinstance(consistency, int | float)
        and not isinstance(consistency, bool)
        and 0 < consistency <= 1
    ):
        raise NasalensError("'consistency' must be a share in (0, 1] or null")
    return {key: value for key, value in meta.items() if value is not None}


@renamed_arguments(n="top_n")
def negative_heads(
    scores: NasScores, *, k: int = 100, top_n: int | None = 30, consistency: float = 0.9
) -> HeadSet:
    """Select negative heads by the paper's rule (Yu et al. 2025, eq. 2-4).

    Args:
        scores: NAS of every sample, layer and head.
        k: Heads in each sample's top list (the paper: 200 for analysis, 100 for tuning).
        top_n: Heads returned at most (the paper: 100 for analysis, 30 for tuning); None for
            every head that passes the consistency rule.
        consistency: Share of samples whose top-k list must contain a head.

    Returns:
        Up to ``top_n`` heads, highest single-head NAS first, with their ``nas`` and ``share``;
        fewer when fewer pass the consistency rule.

    Raises:
        NasalensError: When k, top_n or consistency is out of range.

    Example:
        >>> heads = nasalens.negative_heads(scores, k=100, top_n=30)  # doctest: +SKIP
        >>> heads.to_frame().head()                              # doctest: +SKIP
    """
    n_samples, n_layers, n_heads = scores.per_sample.shape
    total = n_layers * n_heads
    check_selection(total, k=k, top_n=top_n, consistency=consistency)
    if n_samples == 0:
        raise NasalensError("no samples in the scores; compute NAS on at least one sample")
    flat = scores.per_sample.reshape(n_samples, total)
    top = torch.topk(flat, k, dim=1).indices
    counts = torch.zeros(total, dtype=torch.float64)
    counts.index_add_(0, top.flatten(), torch.ones(top.numel(), dtype=torch.float64))
    share = counts / n_samples
    head_nas = scores.head.flatten()
    kept = (share >= consistency - 1e-9).nonzero().flatten()
    kept = kept[torch.argsort(head_nas[kept], descending=True, stable=True)][:top_n]
    return HeadSet(
        tuple(Head(int(i) // n_heads, int(i) % n_heads) for i in kept),
        {
            "nas": tuple(float(head_nas[i]) for i in kept),
            "share": tuple(float(share[i]) for i in kept),
        },
        "nas",
        "nas",
        {"k": k, "consistency": consistency, "n_samples": n_samples, "region": scores.region},
    )


def check_selection(total: int, *, k: int, top_n: int | None, consistency: float) -> None:
    """Check selection arguments for a model with ``total`` heads (before any NAS is run).

    Raises:
        NasalensError: When k, top_n or consistency is out of range.
    """
    if not 1 <= k <= total:
        raise NasalensError(f"k must be between 1 and the number of heads ({total}), got {k}")
    if top_n is not None and top_n < 1:
        raise NasalensError(f"top_n must be at least 1 (or None for all), got {top_n}")
    if not 0 < consistency <= 1:
        raise NasalensError(f"consistency must be in (0, 1], got {consistency}")


def overlap(a: Sequence[HeadLike], b: Sequence[HeadLike]) -> int:
    """Return how many heads two head lists share (the paper's Table 2)."""
    return len(set(as_heads(a)) & set(as_heads(b)))


def overlap_table(sets: Mapping[str, Sequence[HeadLike]]) -> pd.DataFrame:
    """Return the pairwise overlap counts of named head lists as a square DataFrame."""
    names = list(sets)
    data = [[overlap(sets[r], sets[c]) for c in names] for r in names]
    return pd.DataFrame(data, index=names, columns=names)


def random_like(
    heads: Sequence[HeadLike],
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
    checked = info.check_heads(heads)
    per_layer = Counter(h.layer for h in checked)
    chosen = set(checked)
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
        out.append(HeadSet(tuple(drawn), method="random", meta={"seed": seed}))
    return out
