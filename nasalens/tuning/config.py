"""`NasaConfig`: every setting of a NASA run, with the paper's defaults and the open choices.

One frozen dataclass, saved as JSON in each run folder; loading rejects unknown keys. The
choices the paper leaves open (log base, clamp, the tripping epoch, which NAS the rules read,
the halting rule) are fields here, each defaulting to the paper's Algorithm 1 as printed.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from nasalens.artifacts import decode, read_file, read_json, write_json
from nasalens.deprecation import renamed_arguments, warn
from nasalens.errors import NasalensError, shorten
from nasalens.scores import DEFAULT_EPS, Region

Mode = Literal["qk", "q", "random"]
ModelNas = Literal["all", "selected"]
Halting = Literal["nas", "share_yes", "never"]
Schedule = Literal["linear", "constant"]
Select = Literal["nas", "causal"]

#: Named routes: the settings each changes from the defaults (which are the paper's).
PRESETS: dict[str, dict[str, object]] = {
    "paper": {},
    "causal": {
        "select": "causal",
        "early_stopping": False,
        "cancellation": False,
        "halting": "never",
    },
}
"""``paper``: Algorithm 1 as printed (NAS selection, early stopping, update cancellation, early
halting). ``causal``: heads chosen by what ablating them does (`rank_heads`), every rule off,
each of the ``top_n`` heads trained for ``max_epochs``: on planted-bias organisms the route
that repairs the plant with discrimination kept (docs/results.md, the organism suite)."""

DEFAULT_PRESET = "causal"
"""The preset `nasalens tune` starts from. Chosen by the organism suite (docs/results.md): on
the planted biases that took, causal heads with the rules off repaired the most plants with
discrimination kept, NASA as printed none, and random heads trained the same way few. The
library's `NasaConfig()` keeps the paper's defaults (preset ``paper``)."""

#: Keys of NasaConfig that were renamed (old -> new); old run folders and TOML files still load.
RENAMED = {"n_heads": "top_n"}


@dataclass(frozen=True)
class NasaConfig:
    """Settings of head-wise incremental tuning (Yu et al. 2025, Algorithm 1).

    The defaults are the paper's (7-8B models). For the 135M embedded model the learning rate
    must be far higher: see docs/tuning.md for the sweep (1e-3 there).
    """

    lr: float = 1e-6
    """Peak learning rate of AdamW (the paper: 1e-6)."""
    batch_size: int = 32
    """Training prompts per optimizer step (the paper: 32)."""
    max_epochs: int = 30
    """Most epochs per head (the paper: 30); early stopping usually ends a head sooner."""
    warmup: float = 0.03
    """Share of a head's step budget (max_epochs x steps per epoch) spent warming up (3%)."""
    schedule: Schedule = "linear"
    """After warm-up: "linear" decay to 0 at the budget's end (Hugging Face Trainer's default,
    which the paper's settings read like) or "constant"."""
    rho: float = 0.5
    """Early stopping ends a head once its NAS on V falls below rho (the paper: 0.5)."""
    mode: Mode = "qk"
    """What trains: "qk" the head's query rows and its KV group's key rows (the paper), "q"
    the query rows only (Table 19), "random" random heads with the same per-layer counts,
    trained as "qk" (Table 20)."""
    select: Select = "nas"
    """How `nasa` ranks heads when it is not given them (`select_heads`): "nas" (the paper:
    consistently in the per-sample top-k by NAS) or "causal" (largest rise of the Yes-No logit
    difference when the head alone is mean-ablated on the training FN samples; finds heads
    whose route to "No" NAS cannot see)."""
    k: int = 100
    """Per-sample top-k of the "nas" selection (the paper, tuning: 100)."""
    top_n: int = 30
    """Heads NASA tunes: the first top_n of the ranking it is given or makes (the paper,
    tuning: 30). (Named ``n_heads`` before 0.2, which TransformerLens uses for heads per
    layer.)"""
    consistency: float = 0.9
    """Share of samples whose top-k must hold a head for the "nas" selection (0.9)."""
    val_fraction: float = 0.2
    """Share of FN held out as the validation set V (seeded), when `nasa` builds the probing
    set from questions."""
    seed: int = 0
    """Seed of the V split, the batch order and random heads."""
    region: Region = "after_instruction"
    """Query positions NAS sums over: "after_instruction" (L_I..answer, the paper) or
    "answer" (the answer position only)."""
    eps: float = DEFAULT_EPS
    """Attention is clamped at eps before the log of NAS (the paper leaves it open)."""
    log_base: float = math.e
    """Base of NAS's log (the paper leaves it open; natural log). Only the rho test depends
    on it: NAS in base b is NAS in base e divided by ln b."""
    keep_tripping_epoch: bool = True
    """Keep the update of the epoch that tripped early stopping (Algorithm 1 as printed) or
    restore the head to where it was before that epoch."""
    early_stopping: bool = True
    """Apply early stopping (head NAS rose, head NAS < rho, model NAS rose)."""
    cancellation: bool = True
    """Apply update cancellation (revert a head whose NAS or model NAS ended above its start)."""
    model_nas: ModelNas = "all"
    """What "model NAS" sums in the stopping, cancellation and halting rules: "all" heads
    (the paper) or the "selected" heads only (tau then comes from the same sum on TP)."""
    halting: Halting = "nas"
    """Early halting: "nas" stops once model NAS on V < tau (the paper); "share_yes" once the
    share of V answered Yes reaches halt_share; "never" tunes every head."""
    halt_share: float = 0.5
    """Share of V answered Yes at which halting="share_yes" stops."""
    chunk_size: int = 16
    """Rows per forward pass when measuring V (memory only; results do not depend on it)."""

    def __post_init__(self) -> None:
        """Check every field's type and range; the message names the field and the fix."""
        hints = typing.get_type_hints(NasaConfig)
        for f in fields(self):
            value = getattr(self, f.name)
            hint = hints[f.name]
            if typing.get_origin(hint) is Literal:
                if value not in typing.get_args(hint):
                    raise NasalensError(
                        f"NasaConfig.{f.name}={value!r}: use one of {typing.get_args(hint)}"
                    )
            elif hint is bool and not isinstance(value, bool):
                raise NasalensError(f"NasaConfig.{f.name}={value!r}: use true or false")
            elif hint is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise NasalensError(f"NasaConfig.{f.name}={value!r}: use a whole number")
            elif hint is float:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise NasalensError(f"NasaConfig.{f.name}={value!r}: use a number")
                object.__setattr__(self, f.name, float(value))
        checks = [
            ("lr", self.lr > 0 and math.isfinite(self.lr), "a positive learning rate"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("max_epochs", self.max_epochs >= 1, "at least 1"),
            ("warmup", 0 <= self.warmup < 1, "a share in [0, 1)"),
            ("k", self.k >= 1, "at least 1"),
            ("top_n", self.top_n >= 1, "at least 1"),
            ("consistency", 0 < self.consistency <= 1, "a share in (0, 1]"),
            ("val_fraction", 0 < self.val_fraction < 1, "a share in (0, 1)"),
            ("eps", 0 < self.eps < 1, "a small positive number"),
            ("log_base", self.log_base > 1 and math.isfinite(self.log_base), "a base above 1"),
            ("halt_share", 0 < self.halt_share <= 1, "a share in (0, 1]"),
            ("chunk_size", self.chunk_size >= 1, "at least 1"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise NasalensError(f"NasaConfig.{name}={getattr(self, name)!r}: use {want}")

    @classmethod
    def preset(cls, name: str, **changes: object) -> NasaConfig:
        """Return a named preset (`PRESETS`), with some fields changed.

        Example:
            >>> NasaConfig.preset("causal", lr=1e-3).select
            'causal'

        Raises:
            NasalensError: When the preset is unknown (the message lists them).
        """
        if name not in PRESETS:
            raise NasalensError(f"unknown NasaConfig preset {name!r}; use one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **changes})  # type: ignore[arg-type]

    def replace(self, **changes: object) -> NasaConfig:
        """Return a copy with some fields changed (checked like the constructor)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        """Every field by name, JSON-ready."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(
        cls, payload: dict[str, object], *, where: str = "config", base: NasaConfig | None = None
    ) -> NasaConfig:
        """Build a config from a mapping; missing fields take ``base``'s values (or defaults).

        Raises:
            NasalensError: When a key is not a field (the message names it) or a value is bad.
        """
        payload = dict(payload)
        for old, new in RENAMED.items():
            if old in payload:
                if new in payload:
                    raise NasalensError(f"{where}: give {new} only ({old} is its old name)")
                warn(f"NasaConfig key {old!r} (in {where})", repr(new))
                payload[new] = payload.pop(old)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise NasalensError(
                f"{where}: unknown NasaConfig key(s) {unknown}; valid keys: {sorted(known)}"
            )
        hints = typing.get_type_hints(cls)
        values = {  # JSON and TOML write 1.0 as 1
            k: float(v) if hints[k] is float and type(v) is int else v for k, v in payload.items()
        }
        if base is not None:
            return base.replace(**values)
        return cls(**values)  # type: ignore[arg-type]

    def save(self, path: str | Path) -> None:
        """Write the config as JSON (atomically)."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> NasaConfig:
        """Read a config written by `save` (unknown keys are rejected).

        Raises:
            NasalensError: When the file is unreadable, not an object, has unknown keys, or a
                value of the wrong type or range; the message names the file.
        """
        payload = read_json(path)
        if not isinstance(payload, dict):
            raise NasalensError(
                f"{shorten(str(path))}: expected a JSON object of NasaConfig fields"
            )
        return cls._checked(payload, path)

    @classmethod
    def from_toml(cls, path: str | Path, *, base: NasaConfig | None = None) -> NasaConfig:
        """Read a config from a TOML file: top-level keys, or a ``[nasa]`` table.

        Keys the file leaves out take ``base``'s values (a preset), else the defaults.

        Raises:
            NasalensError: When the file is unreadable (not a regular file, not UTF-8), not
                TOML, or has unknown keys or bad values; the message names the file.
        """
        import tomllib

        where = shorten(str(path))
        text = decode(read_file(path, "TOML file"), where)
        try:
            payload = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise NasalensError(f"{where}: not valid TOML ({err})") from err
        except (ValueError, RecursionError) as err:  # an integer past 4,300 digits; deep nesting
            raise NasalensError(f"{where}: not readable TOML ({shorten(str(err), 80)})") from err
        table = payload.get("nasa", payload)
        if not isinstance(table, dict):
            raise NasalensError(f"{where}: [nasa] must be a table of NasaConfig fields")
        return cls._checked(table, path, base=base)

    @classmethod
    def _checked(
        cls, payload: dict, path: str | Path, *, base: NasaConfig | None = None
    ) -> NasaConfig:
        """`from_dict` for a file: every fault becomes a NasalensError naming the file."""
        where = shorten(str(path))
        try:
            return cls.from_dict(payload, where=where, base=base)
        except NasalensError as err:  # the field checks do not know the file
            if str(err).startswith(where):
                raise
            raise NasalensError(f"{where}: {err}") from err
        except (ValueError, TypeError, OverflowError) as err:  # e.g. 1e999-sized numbers
            raise NasalensError(
                f"{where}: a value cannot be used ({type(err).__name__}: {shorten(str(err), 80)})"
                "; give every field a value of its type and range"
            ) from err


NasaConfig.__init__ = renamed_arguments(**RENAMED)(NasaConfig.__init__)  # type: ignore[method-assign]
