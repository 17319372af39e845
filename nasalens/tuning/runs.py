"""A NASA run on disk: resolved config, log, a checkpoint after every head, the final weights.

A run folder holds ``run.json`` (the base model, the heads, tau), ``config.json``,
``probe.json``, ``heads.json``, ``log.jsonl`` (one record per epoch and per head),
``checkpoints/head-NNN`` (every tensor that differs from the base model after head NNN,
safetensors) and, once done, ``final.safetensors``. Every file is written atomically but the log,
which is appended to; a kill mid-append leaves a torn last line, dropped on resume. Tensor files
carry a hash of their content, checked before use: a damaged checkpoint is set aside and its head
runs again. So a run killed at any point resumes from its last intact head and ends bit-identical
to a run never interrupted (`run_files` reads every file). `load_any` loads a run's models.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from nasalens.artifacts import (
    append_jsonl,
    read_metadata,
    read_tensors,
    write_bytes,
    write_json,
    write_tensors,
)
from nasalens.errors import NasalensError, quote, shorten
from nasalens.heads import HeadSet
from nasalens.models import adapt, info, load_model
from nasalens.tuning.config import NasaConfig
from nasalens.tuning.nasa import NasaResult, heads_to_train, threshold, tune
from nasalens.tuning.probe import ProbeSet
from nasalens.tuning.run_files import (
    RUN_FILES,
    as_folder,
    heads_file,
    read_log,
    read_run_file,
    run_meta,
)

logger = logging.getLogger(__name__)

_CKPT = re.compile(r"^head-(\d{3,9})\.safetensors$")


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
        folder = as_folder(folder)
        if (folder / "run.json").exists():
            raise NasalensError(
                f"{shorten(str(folder))} already holds a run; resume it with Run.open(folder) "
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
        """Open an existing run folder, reading each of its files through `read_run_file`.

        Raises:
            NasalensError: When the folder holds no run, a file is missing (the message names
                every missing one) or malformed (it names the file and the fault).
        """
        folder = as_folder(folder)
        missing = [name for name in RUN_FILES if not (folder / name).exists()]
        if "run.json" in missing:
            raise NasalensError(
                f"{shorten(str(folder))} is not a NASA run folder (no run.json); start one "
                "with nasalens tune, or pass the folder nasalens tune --out wrote"
            )
        if missing:
            raise NasalensError(
                f"run folder {shorten(str(folder))} is incomplete: "
                + ", ".join(f"{name} ({RUN_FILES[name]})" for name in missing)
                + " missing; start a new run"
            )
        tau, spec = read_run_file(folder / "run.json", run_meta)
        return cls(
            folder,
            read_run_file(folder / "config.json", NasaConfig.load),
            read_run_file(folder / "probe.json", ProbeSet.load),
            read_run_file(folder / "heads.json", heads_file),
            tau,
            spec,
        )

    # ---- state ----

    def checkpoints(self) -> list[tuple[int, Path]]:
        """The finished heads' checkpoint files as (head number, file), in order (unverified)."""
        found = []
        folder = self.folder / "checkpoints"
        for path in folder.glob("head-*.safetensors") if folder.is_dir() else ():
            match = _CKPT.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def last_checkpoint(self) -> tuple[int, Path, dict[str, Tensor]] | None:
        """The last checkpoint whose content matches its hash: (head number, file, tensors).

        A later checkpoint that fails the check (truncated, changed) is skipped with a warning;
        `execute` sets it aside and runs that head again.
        """
        for index, path in reversed(self.checkpoints()):
            try:
                tensors = read_tensors(path)
                if read_metadata(path).get("head_index") not in (None, str(index)):
                    raise NasalensError(f"{path}: its metadata names another head")
            except NasalensError as err:
                logger.warning("checkpoint %s is damaged, skipped: %s", path.name, err)
                continue
            return index, path, tensors
        return None

    def status(self) -> dict:
        """Heads done, whether the run halted, and its state: "new", "partial" or "done"."""
        last = self.last_checkpoint()
        heads_done = last[0] + 1 if last else 0
        halted = last is not None and read_metadata(last[1]).get("halted") == "true"
        state = "done" if self._final_ok() else ("partial" if last else "new")
        return {"heads_done": heads_done, "halted": halted, "state": state}

    def check_finished(self) -> None:
        """Raise unless the run is finished (an intact ``final.safetensors``).

        Raises:
            NasalensError: Naming what is missing and how to finish the run.
        """
        if self._final_ok():
            return
        done = f"{self.status()['heads_done']} of {len(self.heads)} heads done"
        damaged = (self.folder / "final.safetensors").exists()
        missing = f"an intact final.safetensors (it is damaged; {done})" if damaged else None
        raise NasalensError(
            f"run {shorten(str(self.folder))} is not finished: "
            f"{missing or f'final.safetensors ({done})'} is missing; resume it with "
            f"nasalens tune --out {shorten(str(self.folder))}"
        )

    def check_settings(self, config: NasaConfig) -> None:
        """Raise unless ``config`` equals the run's own settings (a resume needs the same).

        Raises:
            NasalensError: Naming each differing field, stored vs given.
        """
        given, stored = config.to_dict(), self.config.to_dict()
        diff = {k: (v, given[k]) for k, v in stored.items() if given[k] != v}
        if diff:
            raise NasalensError(
                f"{shorten(str(self.folder))} holds a run with other settings (stored vs given: "
                f"{quote(diff, 400)}); resume it with the same settings or choose a new folder"
            )

    def records(self) -> list[dict]:
        """The log records written so far (a torn last line, from a kill, is dropped).

        Raises:
            NasalensError: When a line other than the last is not a log record.
        """
        return read_log(self.folder / "log.jsonl")

    # ---- running ----

    def execute(self, model: object, *, progress: bool = True) -> NasaResult:
        """Run the remaining heads on a copy of ``model`` (the base model) and finish the run.

        Resumes after the last checkpoint; log records of an unfinished head are dropped and
        that head runs again from its start.

        Raises:
            NasalensError: When ``model`` does not match the run's base model.
        """
        base = adapt(model)
        for head in self.heads:
            base.info.check_head(head)
        tuned = adapt(base.clone())
        last = self.last_checkpoint()
        self._set_aside(last[0] if last else -1)
        if last is not None:
            apply_tensors(tuned.model, last[2])
        status = self.status()
        start = status["heads_done"]
        self._trim_log(start)
        finished = status["halted"] or start >= len(self.heads)
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
        self.check_finished()
        model = load_model(self.model_spec) if base is None else adapt(base).clone()
        apply_tensors(model, read_tensors(self.folder / "final.safetensors"))
        return model

    def _checkpoint(self, index: int, tensors: dict[str, Tensor], halted: bool) -> None:
        path = self.folder / "checkpoints" / f"head-{index:03d}.safetensors"
        write_tensors(path, tensors, {"head_index": str(index), "halted": str(halted).lower()})

    def _trim_log(self, heads_done: int) -> None:
        """Keep only the records of finished heads, dropping a torn last line (atomically)."""
        path = self.folder / "log.jsonl"
        if not path.exists():
            return
        kept = [r for r in self.records() if r["head_index"] < heads_done]
        write_bytes(path, "".join(json.dumps(r, allow_nan=True) + "\n" for r in kept).encode())

    def _set_aside(self, last_good: int) -> None:
        """Rename checkpoints after the last intact one to ``*.damaged``; drop temp files.

        A kill during a checkpoint write leaves only a temp file (``.head-NNN...``): the write
        is atomic. A checkpoint that fails its hash check is kept for inspection, out of the way.
        """
        for index, path in self.checkpoints():
            if index > last_good:
                logger.warning("setting aside %s (damaged); head %d runs again", path, index)
                path.replace(path.with_name(path.name + ".damaged"))
        for tmp in (self.folder / "checkpoints").glob(".head-*"):
            tmp.unlink(missing_ok=True)

    def _final_ok(self) -> bool:
        """Whether ``final.safetensors`` exists and matches its hash."""
        final = self.folder / "final.safetensors"
        if not final.exists():
            return False
        try:
            read_tensors(final)
        except NasalensError as err:
            logger.warning("%s", err)
            return False
        return True


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
    folder = as_folder(folder)
    if (folder / "run.json").exists():
        run = Run.open(folder)
        run.check_settings(config)
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
                    f"tensor {quote(name)} {tuple(value.shape)} does not fit this model; load "
                    "the run's own base model"
                )
            params[name].copy_(value)


def _changed(tuned: torch.nn.Module, base: torch.nn.Module) -> dict[str, Tensor]:
    a, b = adapt(tuned).hf_parameters(), adapt(base).hf_parameters()
    return {n: p.detach().clone() for n, p in a.items() if not torch.equal(p, b[n])}


def is_run(spec: object) -> bool:
    """Whether ``spec`` names a NASA run folder (a folder holding ``run.json``)."""
    if not isinstance(spec, str | Path):
        return False
    try:
        return (Path(spec) / "run.json").exists()
    except (OSError, ValueError):  # a name too long, a NUL character: not a run
        return False


def load_any(spec: str | Path | None) -> tuple[torch.nn.Module | None, torch.nn.Module]:
    """Load a finished run folder's base and tuned model, or any model `load_model` takes.

    Args:
        spec: A NASA run folder, or what `nasalens.load_model` takes (None: the embedded model,
            a hub id, a Hugging Face folder such as an export, or a ``.gguf`` file).

    Returns:
        ``(base, model)``: for a run folder its base model and the tuned model; else
        ``(None, model)``.

    Raises:
        NasalensError: When a run folder is not finished (naming what is missing), or as
            `Run.open` and `load_model`.

    Example:
        >>> base, tuned = load_any("runs/a")  # doctest: +SKIP
    """
    if is_run(spec):
        assert spec is not None
        run = Run.open(spec)
        run.check_finished()
        base = load_model(run.model_spec)
        return base, run.tuned_model(base)
    return None, load_model(spec)
