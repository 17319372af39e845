"""`NasaResult`: a tuned model and what happened to each head, saved to and loaded from a folder.

Also which rows a head trains (`trained_slices`), which the result saves and NASA tunes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from nasalens.artifacts import read_header, read_tensors, write_json, write_tensors
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet
from nasalens.models import Head, adapt
from nasalens.models.interface import ModelAdapter, ParamSlice
from nasalens.tuning.config import NasaConfig

#: Version of the files `NasaResult.save` writes.
RESULT_VERSION = 1


@dataclass(frozen=True, eq=False)
class NasaResult:
    """A tuned model and what happened to each head.

    Attributes:
        model: The tuned copy (the model passed in is left unchanged).
        heads: The heads that were in line to train, in order (random ones in mode "random").
        records: Every log record: one per epoch (``event="epoch"``) and one per head
            (``event="head"``, with decision "kept" or "cancelled" and ``halted``).
        tau: The early-halting threshold the run used (in the config's log base).
        config: The settings.
    """

    model: torch.nn.Module
    heads: HeadSet
    records: tuple[dict, ...]
    tau: float
    config: NasaConfig = field(default_factory=NasaConfig)

    def __repr__(self) -> str:
        kept = ", ".join(str(h) for h in self.kept) or "none"
        return f"NasaResult({len(self.head_records)} heads tuned, kept: {kept})"

    @property
    def head_records(self) -> list[dict]:
        """The per-head records, in order."""
        return [r for r in self.records if r["event"] == "head"]

    @property
    def kept(self) -> HeadSet:
        """Heads whose update was kept, in tuning order, with their NAS on V before and after."""
        rows = [r for r in self.head_records if r["decision"] == "kept"]
        scores = {
            "start_head_nas": tuple(r["start_head_nas"] for r in rows),
            "end_head_nas": tuple(r["end_head_nas"] for r in rows),
        }
        return HeadSet(tuple(Head.parse(r["head"]) for r in rows), scores, "tuned")

    @property
    def halted(self) -> bool:
        """Whether early halting ended the run before the last head."""
        return any(r["halted"] for r in self.head_records)

    def to_frame(self) -> pd.DataFrame:
        """One row per tuned head: layer, head, name, decision, epochs, NAS and share Yes."""
        rows = []
        for r in self.head_records:
            h = Head.parse(r["head"])
            rest = {k: v for k, v in r.items() if k not in ("event", "head")}
            rows.append({"layer": h.layer, "head": h.head, "name": str(h), **rest})
        return pd.DataFrame(rows)

    def epochs_frame(self) -> pd.DataFrame:
        """One row per epoch of every head."""
        return pd.DataFrame([r for r in self.records if r["event"] == "epoch"])

    def save(self, folder: str | Path) -> None:
        """Write the result to ``folder``: log, heads, tau, config and the tuned weights.

        JSON for the first four; the query/key weights of the heads in line as safetensors
        (whole tensors). `load` with the same base model gives back an equal result.
        """
        folder = Path(folder)
        params = adapt(self.model).hf_parameters()
        names = sorted(
            {s.name for h in self.heads for s in trained_slices(adapt(self.model), h, self.config)}
        )
        write_tensors(folder / "tuned.safetensors", {n: params[n] for n in names})
        write_json(
            folder / "result.json",
            {
                "format": "nasalens.NasaResult",
                "version": RESULT_VERSION,
                "tau": self.tau,
                "config": self.config.to_dict(),
                "heads": self.heads.to_dict(),
                "records": list(self.records),
            },
        )

    @classmethod
    def load(cls, folder: str | Path, model: object) -> NasaResult:
        """Read a result written by `save`, applying its weights to a copy of ``model``.

        Args:
            folder: The folder `save` wrote.
            model: The base model the run started from (it is not changed).

        Raises:
            NasalensError: When a file is missing or malformed, or a weight does not fit.
        """
        folder = Path(folder)
        meta = read_header(folder / "result.json", "NasaResult", RESULT_VERSION)
        try:
            config = NasaConfig.from_dict(meta["config"], where=str(folder / "result.json"))
            heads = HeadSet.from_dict(meta["heads"], where=str(folder / "result.json"))
            records = tuple(dict(r) for r in meta["records"])
            tau = float(meta["tau"])
        except (KeyError, TypeError, ValueError) as err:
            raise NasalensError(f"{folder}: result.json is incomplete ({err!r})") from err
        tuned = adapt(model).clone()
        params = adapt(tuned).hf_parameters()
        with torch.no_grad():
            for name, value in read_tensors(folder / "tuned.safetensors").items():
                if name not in params or params[name].shape != value.shape:
                    raise NasalensError(
                        f"{folder}: weight {name!r} does not fit this model; pass the base "
                        "model the run started from"
                    )
                params[name].copy_(value)
        return cls(tuned, heads, records, tau, config)


def trained_slices(adapter: ModelAdapter, head: Head, config: NasaConfig) -> list[ParamSlice]:
    """The rows a head trains: its query rows, and in mode "qk"/"random" its KV group's keys."""
    q, k = adapter.qk_slices(head)
    return [q] if config.mode == "q" else [q, k]
