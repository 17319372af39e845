"""A NASA run on disk: resolved config, log, a checkpoint after every head, the final weights.

A run folder holds ``run.json`` (the base model, the heads, tau), ``config.json``,
``probe.json``, ``log.jsonl`` (one record per epoch and per head), ``checkpoints/head-NNN``
(every tensor that differs from the base model after head NNN, safetensors) and, once done,
``final.safetensors``. Every file is written atomically, so a run killed at any point resumes
from its last finished head and ends bit-identical to a run never interrupted.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from nasalens.artifacts import append_jsonl, read_json, read_tensors, write_json, write_tensors
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet
from nasalens.models import adapt, info, load_model
from nasalens.tuning.config import NasaConfig
from nasalens.tuning.nasa import NasaResult, heads_to_train, threshold, tune
from nasalens.tuning.probe import ProbeSet

logger = logging.getLogger(__name__)

_CKPT = re.compile(r"^head-(\d{3,})\.safetensors$")


class Run:
    """A run folder: create it, resume it, read its tuned model.

    Use `Run.create` for a new run and `Run.open` for an existing one; `execute` runs (or
    resumes) to the end.

    Attributes:
        folder: The run folder.
        config: The resolved settings.
        probe: The probing set.
        heads: The heads in line (random ones in mode "random").
        tau: The early-halting threshold, computed once on the base model.
        model_spec: How to load the base model (`load_model` argument; None: embedded).
    """

    def __init__(
        self,
        folder: Path,
        config: NasaConfig,
        probe: ProbeSet,
        heads: HeadSet,
        tau: float,
        model_spec: str | None,
    ) -> None:
        self.folder, self.config, self.probe = folder, config, probe
        self.heads, self.tau, self.model_spec = heads, tau, model_spec

    def __repr__(self) -> str:
        s = self.status()
        return f"Run({str(self.folder)!r}, {s['heads_done']}/{len(self.heads)} heads, {s['state']})"

    @classmethod
    def create(
        cls,
        folder: str | Path,
        model: object,
        probe: ProbeSet,
        heads: HeadSet | list,
        config: NasaConfig,
        *,
        model_spec: str | None = None,
    ) -> Run:
        """Start a new run folder (tau and the head line-up are fixed here, on the base model).

        Raises:
            NasalensError: When the folder already holds a run.
        """
        folder = Path(folder)
        if (folder / "run.json").exists():
            raise NasalensError(
                f"{folder} already holds a run; resume it with Run.open({str(folder)!r}) "
                "(nasalens tune --out with the same settings), or choose a new folder"
            )
        adapter = adapt(model)
        line_up = heads_to_train(adapter, heads, config)
        tau = threshold(adapter, probe, line_up, config)
        config.save(folder / "config.json")
        probe.save(folder / "probe.json")
        line_up.save(folder / "heads.json")
        write_json(
            folder / "run.json",
            {"model": model_spec, "model_name": info(model).name, "tau": tau, "format": 1},
        )
        return cls(folder, config, probe, line_up, tau, model_spec)

    @classmethod
    def open(cls, folder: str | Path) -> Run:
        """Open an existing run folder.

        Raises:
            NasalensError: When the folder holds no run or a file is malformed.
        """
        folder = Path(folder)
        if not (folder / "run.json").is_file():
            raise NasalensError(
                f"{folder} is not a NASA run folder (no run.json); start one with nasalens tune"
            )
        meta = read_json(folder / "run.json")
        if not isinstance(meta, dict) or "tau" not in meta:
            raise NasalensError(f"{folder / 'run.json'}: malformed; start a new run")
        return cls(
            folder,
            NasaConfig.load(folder / "config.json"),
            ProbeSet.load(folder / "probe.json"),
            HeadSet.load(folder / "heads.json"),
            float(meta["tau"]),
            meta.get("model"),
        )

    # ---- state ----

    def checkpoints(self) -> list[tuple[int, Path]]:
        """The finished heads' checkpoints as (head number, file), in order."""
        found = []
        for path in (self.folder / "checkpoints").glob("head-*.safetensors"):
            match = _CKPT.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def status(self) -> dict:
        """Heads done, whether the run halted, and its state: "new", "partial" or "done"."""
        done = self.checkpoints()
        heads_done = done[-1][0] + 1 if done else 0
        halted = bool(done) and _meta(done[-1][1]).get("halted") == "true"
        complete = (self.folder / "final.safetensors").is_file()
        state = "done" if complete else ("partial" if done else "new")
        return {"heads_done": heads_done, "halted": halted, "state": state}

    def records(self) -> list[dict]:
        """The log records written so far."""
        path = self.folder / "log.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # ---- running ----

    def execute(self, model: object, *, progress: bool = True) -> NasaResult:
        """Run the remaining heads on a copy of ``model`` (the base model) and finish the run.

        Resumes after the last checkpoint; log records of an unfinished head are dropped and
        that head runs again from its start.

        Raises:
            NasalensError: When ``model`` does not match the run's base model.
        """
        base = adapt(model)
        tuned = adapt(base.clone())
        status = self.status()
        done = self.checkpoints()
        if done:
            apply_tensors(tuned.model, read_tensors(done[-1][1]))
        start = status["heads_done"]
        self._trim_log(start)
        finished = status["halted"] or start >= len(self.heads) or status["state"] == "done"
        if not finished:
            tune(
                tuned,
                base,
                self.probe,
                self.heads,
                self.config,
                self.tau,
                start=start,
                on_record=lambda r: append_jsonl(self.folder / "log.jsonl", r),
                on_head=self._checkpoint,
                progress=progress,
            )
        changed = _changed(tuned.model, base.model)
        write_tensors(self.folder / "final.safetensors", changed, {"format": "nasalens-delta"})
        return NasaResult(tuned.model, self.heads, tuple(self.records()), self.tau, self.config)

    def tuned_model(self, base: object | None = None) -> torch.nn.Module:
        """Return the finished run's tuned model: the base model plus the final weights.

        Args:
            base: The base model; None loads it from ``model_spec``.

        Raises:
            NasalensError: When the run is not finished.
        """
        final = self.folder / "final.safetensors"
        if not final.is_file():
            raise NasalensError(
                f"run {self.folder} is not finished (no final.safetensors); resume it with "
                f"nasalens tune --out {self.folder}"
            )
        model = load_model(self.model_spec) if base is None else adapt(base).clone()
        apply_tensors(model, read_tensors(final))
        return model

    def _checkpoint(self, index: int, tensors: dict[str, Tensor], halted: bool) -> None:
        path = self.folder / "checkpoints" / f"head-{index:03d}.safetensors"
        write_tensors(path, tensors, {"head_index": str(index), "halted": str(halted).lower()})

    def _trim_log(self, heads_done: int) -> None:
        """Keep only the records of finished heads (atomically)."""
        path = self.folder / "log.jsonl"
        if not path.is_file():
            return
        kept = [r for r in self.records() if r["head_index"] < heads_done]
        text = "".join(json.dumps(r, allow_nan=True) + "\n" for r in kept)
        tmp = path.with_name(".log.jsonl.tmp")
        tmp.write_text(text)
        tmp.replace(path)


def tune_run(
    folder: str | Path,
    model: object,
    probe: ProbeSet,
    heads: HeadSet | list,
    config: NasaConfig,
    *,
    model_spec: str | None = None,
    progress: bool = True,
) -> NasaResult:
    """Run NASA in a run folder, resuming it when it exists with the same settings.

    Raises:
        NasalensError: When the folder holds a run with other settings.

    Example:
        >>> result = tune_run("runs/a", model, probe, heads, NasaConfig(lr=1e-3))  # doctest: +SKIP
    """
    folder = Path(folder)
    if (folder / "run.json").exists():
        run = Run.open(folder)
        if run.config != config:
            diff = {
                k: (v, config.to_dict()[k])
                for k, v in run.config.to_dict().items()
                if config.to_dict()[k] != v
            }
            raise NasalensError(
                f"{folder} holds a run with other settings (stored vs given: {diff}); resume "
                "it with the same settings or choose a new folder"
            )
    else:
        run = Run.create(folder, model, probe, heads, config, model_spec=model_spec)
    return run.execute(model, progress=progress)


def apply_tensors(model: object, tensors: Mapping[str, Tensor]) -> None:
    """Copy tensors keyed by Hugging Face names into ``model``'s weights.

    Raises:
        NasalensError: When a name is not a weight of the model or a shape differs.
    """
    params = adapt(model).hf_parameters()
    with torch.no_grad():
        for name, value in tensors.items():
            if name not in params or params[name].shape != value.shape:
                raise NasalensError(
                    f"tensor {name!r} {tuple(value.shape)} does not fit this model; load the "
                    "run's own base model"
                )
            params[name].copy_(value)


def _changed(tuned: torch.nn.Module, base: torch.nn.Module) -> dict[str, Tensor]:
    a, b = adapt(tuned).hf_parameters(), adapt(base).hf_parameters()
    return {n: p.detach().clone() for n, p in a.items() if not torch.equal(p, b[n])}


def _meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})
