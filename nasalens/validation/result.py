"""`HeadValidation`: what ablating the selected heads did, next to random head sets.

The result of `nasalens.validation.validate_heads`, with its save and load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nasalens.artifacts import frame_from_dict, frame_to_dict, read_header, write_json
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet

#: Version of the file `HeadValidation.save` writes.
FORMAT_VERSION = 1

#: The metrics compared, in table order.
VALIDATION_METRICS = ("logit_diff", "recall", "precision", "accuracy", "auroc", "model_nas")
#: +1 where a larger value means less negative bias (beating a random set), -1 where smaller.
DIRECTION = {m: (-1 if m == "model_nas" else 1) for m in VALIDATION_METRICS}
#: The columns `HeadValidation.to_frame` shows.
SUMMARY_COLUMNS = (
    "metric",
    "baseline",
    "ablated",
    "effect",
    "effect_lo",
    "effect_hi",
    "share_beaten",
)


@dataclass(frozen=True)
class HeadValidation:
    """The effect of ablating the selected heads, next to random head sets.

    Attributes:
        heads: The selected heads (the ranking passed in, with its scores, or a hand-made set).
        controls: The random head sets (same size and layer histogram), or the given ones.
        how: The ablation ("zero", "mean", "resample").
        summary: One row per metric: baseline, ablated, effect (ablated - baseline) with its
            bootstrap 95% interval, the random sets' effects (mean, 2.5 and 97.5 percentiles),
            vs_random (effect - mean random effect) with its interval, and share_beaten: the
            share of random sets whose effect the selected heads' effect beats (larger, or
            smaller for model NAS; ties count one half).
        random_effects: One row per random set: its heads, how many of them are selected
            heads (overlap), and its effect on each metric.
        per_head: One row per selected head ablated alone: layer, head, name, effect on each
            metric (empty when not computed).
        per_sample: One row per sample: id, gold, logit_diff and model_nas at baseline and
            with the selected heads ablated.
    """

    heads: HeadSet
    controls: tuple[HeadSet, ...]
    how: str
    summary: pd.DataFrame
    random_effects: pd.DataFrame
    per_head: pd.DataFrame
    per_sample: pd.DataFrame

    def __repr__(self) -> str:
        ld = self.summary.set_index("metric").loc["logit_diff"]
        beats = f", beats {ld['share_beaten']:.0%} of random sets" if self.controls else ""
        return (
            f"HeadValidation({len(self.heads)} heads vs {len(self.controls)} random sets, "
            f"{len(self.per_sample)} samples, how={self.how!r}: logit_diff effect "
            f"{ld['effect']:+.3f} [{ld['effect_lo']:+.3f}, {ld['effect_hi']:+.3f}]{beats})"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per metric: baseline, ablated, effect with its interval, share_beaten.

        ``summary`` holds every column (the random sets' effects and vs_random too).
        """
        return self.summary[list(SUMMARY_COLUMNS)].copy()

    def save(self, folder: str | Path) -> None:
        """Write the validation to ``folder`` as one JSON file; `load` reads it back equal."""
        frames = ("summary", "random_effects", "per_head", "per_sample")
        write_json(
            Path(folder) / "validation.json",
            {
                "format": "nasalens.HeadValidation",
                "version": FORMAT_VERSION,
                "heads": self.heads.to_dict(),
                "controls": [c.to_dict() for c in self.controls],
                "how": self.how,
                **{name: frame_to_dict(getattr(self, name)) for name in frames},
            },
        )

    @classmethod
    def load(cls, folder: str | Path) -> HeadValidation:
        """Read a validation written by `save` (e.g. by ``nasalens validate --out``).

        Raises:
            NasalensError: When the file is missing, malformed or of another format version.
        """
        path = Path(folder) / "validation.json"
        payload = read_header(path, "HeadValidation", FORMAT_VERSION)
        where = str(path)
        try:
            controls = tuple(HeadSet.from_dict(c, where=where) for c in payload["controls"])
            return cls(
                heads=HeadSet.from_dict(payload["heads"], where=where),
                controls=controls,
                how=str(payload["how"]),
                summary=frame_from_dict(payload["summary"], where=where),
                random_effects=frame_from_dict(payload["random_effects"], where=where),
                per_head=frame_from_dict(payload["per_head"], where=where),
                per_sample=frame_from_dict(payload["per_sample"], where=where),
            )
        except (KeyError, TypeError) as err:
            raise NasalensError(f"{path}: incomplete ({err!r})") from err

    def effect(self, metric: str) -> float:
        """The selected heads' effect on ``metric`` (ablated - baseline)."""
        return float(self._row(metric)["effect"])

    def share_beaten(self, metric: str) -> float:
        """The share of random sets whose effect on ``metric`` the selected heads beat."""
        return float(self._row(metric)["share_beaten"])

    def _row(self, metric: str) -> pd.Series:
        if metric not in VALIDATION_METRICS:
            raise NasalensError(f"unknown metric {metric!r}; use one of {VALIDATION_METRICS}")
        row = self.summary.set_index("metric").loc[metric]
        assert isinstance(row, pd.Series)
        return row
