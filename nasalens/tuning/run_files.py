"""The files of a NASA run folder and the one validating reader each of them goes through.

Owns `RUN_FILES` (what `Run.open` needs), `read_run_file` (any fault becomes a `NasalensError`
that names the file), the fields of ``run.json``, ``heads.json`` and the records of ``log.jsonl``
(a torn last line, from a kill mid-append, is dropped). `nasalens.tuning.runs` builds on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nasalens.artifacts import as_path, read_json, read_jsonl, regular_file
from nasalens.errors import NasalensError, quote, shorten
from nasalens.heads import HeadSet

#: The files `Run.open` needs, and what each holds.
RUN_FILES = {
    "run.json": "the base model and tau",
    "config.json": "the NasaConfig",
    "probe.json": "the probing set",
    "heads.json": "the heads in line",
}
T = TypeVar("T")


def read_log(path: Path) -> list[dict]:
    """The records of a run's ``log.jsonl`` (none when it does not exist).

    A torn last line, what a kill during an append leaves, is dropped with a warning.

    Raises:
        NasalensError: When a line other than the last is not a log record.
    """
    if not path.exists():
        return []
    out: list[dict] = []
    for where, record in read_jsonl(path, torn_tail=True):
        head = record.get("head_index") if isinstance(record, dict) else None
        if not isinstance(record, dict) or "event" not in record or type(head) is not int:
            raise NasalensError(
                f"{where}: not a log record of nasalens tune (needs 'event' and an integer "
                "'head_index'); delete log.jsonl from that line on to resume"
            )
        out.append(record)
    return out


def as_folder(folder: object) -> Path:
    """Return a run folder argument as a Path; it must not be a file.

    Raises:
        NasalensError: When it is not a path, or names something that is not a folder.
    """
    path = as_path(folder, "run folder")
    if path.exists() and not path.is_dir():
        raise NasalensError(f"{shorten(str(path))} is not a folder; pass a run folder")
    return path


def read_run_file(path: Path, reader: Callable[[Path], T]) -> T:
    """Read one run file: the only way a run reads its JSON files.

    Any fault that the file's own reader does not word (a wrong type, an out-of-range number)
    becomes a `NasalensError` that names the file.
    """
    regular_file(path, RUN_FILES.get(path.name, "run file"))
    try:
        return reader(path)
    except NasalensError as err:
        if str(path) in str(err):
            raise
        raise NasalensError(f"{shorten(str(path))}: {err}") from err
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as err:
        raise NasalensError(
            f"{shorten(str(path))}: malformed ({type(err).__name__}: {shorten(str(err), 120)}); "
            "it was not written by nasalens tune, or was edited; start a new run"
        ) from err


def run_meta(path: Path) -> tuple[float, str | None]:
    """Tau and the base model's spec from ``run.json``."""
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != 1:
        raise NasalensError(f"{shorten(str(path))}: not a run.json of format 1; start a new run")
    tau, spec = meta.get("tau"), meta.get("model")
    if isinstance(tau, str) and tau in ("inf", "-inf", "nan"):
        tau = float(tau)
    if isinstance(tau, bool) or not isinstance(tau, int | float) or math.isnan(tau):
        raise NasalensError(
            f"{shorten(str(path))}: 'tau' must be a number, got {quote(tau, 60)}; start a new run"
        )
    if spec is not None and (not isinstance(spec, str) or not spec.strip()):
        raise NasalensError(
            f"{shorten(str(path))}: 'model' must be a model spec or null, got {quote(spec, 60)}"
        )
    return float(tau), spec


def heads_file(path: Path) -> HeadSet:
    """The heads in line, from ``heads.json``; a run needs at least one."""
    heads = HeadSet.load(path)
    if not heads:
        raise NasalensError(f"{shorten(str(path))}: no heads; start a new run with some heads")
    return heads
