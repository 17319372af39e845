"""Tensor files and folder manifests: safetensors with a content hash, folders with a manifest.

Both are checked on reading. Tensors go in safetensors only; nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nasalens.artifacts.files import atomic_write, regular_file
from nasalens.artifacts.records import read_json, write_json
from nasalens.errors import NasalensError, shorten

if TYPE_CHECKING:  # torch is imported where used: the data loaders do without it
    import torch


#: Metadata key of a safetensors file's content hash (`tensor_digest`).
DIGEST_KEY = "nasalens_sha256"
#: File name of a folder's manifest (`write_manifest`).
MANIFEST = "nasalens-manifest.json"


# ---- tensors ----


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Return the SHA-256 of tensors' names, dtypes, shapes and bytes (order-independent)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensors[name].shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_tensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Write tensors as safetensors, atomically, with their content hash in the metadata."""
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {**dict(metadata or {}), DIGEST_KEY: tensor_digest(flat)}
    atomic_write(Path(path), lambda tmp: save_file(flat, str(tmp), metadata=meta))


def read_metadata(path: str | Path) -> dict[str, str]:
    """Return a safetensors file's metadata (its header only).

    Raises:
        NasalensError: When the file is missing, not a regular file, or not safetensors.
    """
    from safetensors import SafetensorError, safe_open

    path = regular_file(path, "tensor file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (OSError, SafetensorError) as err:
        raise NasalensError(f"cannot read tensors from {shorten(str(path))}: {err}") from err


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file into CPU tensors, checking its content hash when it has one.

    Raises:
        NasalensError: When the file is missing, not a regular file, not safetensors
            (truncated, say), or its tensors do not match the hash written with them.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    expected = read_metadata(path).get(DIGEST_KEY)
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise NasalensError(f"cannot read tensors from {shorten(str(path))}: {err}") from err
    if expected is not None and tensor_digest(tensors) != expected:
        raise NasalensError(
            f"{shorten(str(path))}: the tensors do not match the hash written with them (the file "
            "was changed or damaged); delete it and write it again"
        )
    return tensors


# ---- folder manifests ----


def file_digest(path: Path) -> str:
    """Return the SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | Path) -> None:
    """Record the size, modification time and SHA-256 of every file in ``folder``.

    `check_manifest` compares the folder with it. Written last, atomically: a folder with a
    manifest was complete when it was written.
    """
    folder = Path(folder)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        info = path.stat()
        files[path.relative_to(folder).as_posix()] = {
            "size": info.st_size,
            "mtime_ns": info.st_mtime_ns,
            "sha256": file_digest(path),
        }
    write_json(folder / MANIFEST, {"format": 1, "files": files})


def check_manifest(folder: str | Path, *, full: bool = False) -> list[str]:
    """Compare a folder with its manifest; return what differs (empty: all as written).

    A file whose size and modification time match the manifest is taken as written unless
    ``full``; any other file is hashed. (So a changed or truncated file is always found; a bit
    flipped in place without touching the time is found only with ``full``.)

    Args:
        folder: A folder written with `write_manifest`.
        full: Hash every file.

    Returns:
        One line per problem: the manifest missing or unreadable, a file missing, of another
        size, or of other content.
    """
    folder = Path(folder)
    try:
        manifest = read_json(folder / MANIFEST)
    except NasalensError as err:
        return [f"{MANIFEST}: {err}"]
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        return [f"{MANIFEST}: no 'files' table"]
    problems = []
    for name, want in files.items():
        path = folder / name
        if not isinstance(want, dict) or not path.is_file():
            problems.append(f"{name}: missing")
            continue
        info = path.stat()
        if info.st_size != want.get("size"):
            problems.append(f"{name}: {info.st_size} bytes, {want.get('size')} when written")
        elif (full or info.st_mtime_ns != want.get("mtime_ns")) and file_digest(path) != want.get(
            "sha256"
        ):
            problems.append(f"{name}: its content changed since it was written")
    return problems
