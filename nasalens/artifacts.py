"""Files nasalens writes and reads back: JSON, JSONL, safetensors and whole folders.

Every write goes to a temp file (or folder) beside the target and is renamed into place, so a
crash never leaves a half-written artifact; this module is the only place that does so. Every
read goes through one validating reader (`read_file`): it says what a path is when it is not a
regular file, rejects duplicate JSON keys and oversized numbers, and names ``file:line``.
Tensor files carry a hash of their content, folders a manifest of sizes and hashes, and both are
checked on reading. Tensors go in safetensors only; nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from nasalens.errors import NasalensError, quote, shorten

if TYPE_CHECKING:  # torch and pandas are imported where used: the data loaders need neither
    import pandas as pd
    import torch

logger = logging.getLogger(__name__)

#: Metadata key of a safetensors file's content hash (`tensor_digest`).
DIGEST_KEY = "nasalens_sha256"
#: File name of a folder's manifest (`write_manifest`).
MANIFEST = "nasalens-manifest.json"
_SPECIAL = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


# ---- paths ----


def as_path(value: object, what: str = "path") -> Path:
    """Return a user's path argument as a `Path` (``~`` expanded).

    Raises:
        NasalensError: When ``value`` is not a str or os.PathLike, or holds a NUL character.
    """
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise NasalensError(
            f"{what} must be a path (str or pathlib.Path), got {type(value).__name__} "
            f"{quote(value, 60)}"
        )
    text = os.fspath(value)
    if not isinstance(text, str) or "\x00" in text or not text:
        raise NasalensError(f"{what} {quote(text, 60)} is not a usable path; pass a file name")
    try:
        path = Path(text).expanduser()
    except RuntimeError as err:  # "~someone" for a user this system does not know
        raise NasalensError(
            f"{what} {quote(text, 60)}: cannot expand '~' ({err}); write the folder out"
        ) from err
    if len(text.encode(errors="replace")) > 4095 or any(
        len(part.encode(errors="replace")) > 255 for part in path.parts
    ):
        raise NasalensError(
            f"{what} {quote(text, 60)} is too long for a path (255 bytes a name, 4,095 in all)"
        )
    return path


def regular_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` if it is a regular file (after links); else say what it is.

    Raises:
        NasalensError: When it is missing, a folder, a FIFO, a device or a socket, or cannot be
            looked at (a name too long, no permission); the message names the path.
    """
    path = as_path(path, what)
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if err.errno == 2:  # ENOENT
            raise NasalensError(f"{shorten(str(path))}: no such file; check the path") from err
        raise NasalensError(
            f"{shorten(str(path))}: cannot be read ({err.strerror}); check the path"
        ) from err
    kind = _SPECIAL.get(stat.S_IFMT(mode))
    if kind is not None:
        raise NasalensError(
            f"{shorten(str(path))} is {kind}, not a regular file; pass the path of a {what}"
        )
    return path


def read_file(path: str | Path, what: str = "file") -> bytes:
    """Read a regular file's bytes: the one reader every nasalens input goes through.

    Raises:
        NasalensError: As `regular_file`, or when reading fails.
    """
    path = regular_file(path, what)
    try:
        return path.read_bytes()
    except OSError as err:
        raise NasalensError(f"{shorten(str(path))}: cannot be read ({err.strerror})") from err


def decode(raw: bytes, where: str) -> str:
    """Decode UTF-8 bytes (a leading byte-order mark is dropped).

    Raises:
        NasalensError: When the bytes are not UTF-8; the message names ``where`` and the byte.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise NasalensError(
            f"{where}: not valid UTF-8 (byte {err.start}); save the file as UTF-8"
        ) from err


# ---- JSON ----


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def parse_json(text: str, where: str, *, hint: str = "") -> object:
    """Parse one JSON value strictly: no repeated key in an object, no integer too long to read.

    ``NaN`` and ``Infinity`` are read (nasalens writes them for undefined scores).

    Args:
        text: The JSON text.
        where: How messages name it ("file" or "file:line").
        hint: What to write instead, added to the message on invalid JSON.

    Raises:
        NasalensError: On invalid JSON, a repeated key, an integer of more than 4,300 digits or
            nesting deeper than Python can follow; the message names ``where``.
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as err:
        raise NasalensError(
            f"{where}: key {quote(err.args[0], 60)} appears twice in one object; keep one "
            "(JSON readers disagree on which wins)"
        ) from err
    except json.JSONDecodeError as err:
        at = f"column {err.colno}" if "\n" not in text else f"line {err.lineno} column {err.colno}"
        raise NasalensError(
            f"{where}: not valid JSON ({err.msg} at {at}){hint and '; '}{hint}"
        ) from err
    except RecursionError as err:
        raise NasalensError(
            f"{where}: not valid JSON (nested too deeply){hint and '; '}{hint}"
        ) from err
    except ValueError as err:  # int('9' * 5000): Python's integer-string conversion limit
        raise NasalensError(
            f"{where}: an integer has more digits than Python reads (4,300); write it as a "
            "string or a float"
        ) from err


def read_json(path: str | Path) -> object:
    """Read a JSON file through `read_file` and `parse_json`.

    Raises:
        NasalensError: When the file is missing or not a regular file, not UTF-8, or not
            strict JSON.
    """
    raw = read_file(path, "JSON file")
    where = shorten(str(as_path(path)))
    return parse_json(decode(raw, where), where)


def read_header(path: str | Path, kind: str, version: int) -> dict:
    """Read the JSON file a ``kind``'s ``save`` wrote, checking its format name and version.

    Raises:
        NasalensError: When the file is missing or malformed, was written by something else,
            or has another format version.
    """
    return check_header(
        read_json(path), f"nasalens.{kind}", version, str(path), what=f"written by {kind}.save"
    )


def check_header(
    header: object, name: str, version: int, where: str, *, what: str, fix: str = ""
) -> dict:
    """Check the format name and version of a nasalens file's header (one check for all).

    Args:
        header: The parsed header.
        name: The format it must name ("nasalens.NasScores").
        version: The version this nasalens reads.
        where: How messages name the file.
        what: How messages describe a right file ("written by NasScores.save").
        fix: What to do, added to the messages.

    Raises:
        NasalensError: When the header is not a dict naming ``name``, or has another version.
    """
    tail = f"; {fix}" if fix else ""
    if not isinstance(header, dict) or header.get("format") != name:
        raise NasalensError(f"{where}: not {what}{tail}")
    if header.get("version") != version:
        raise NasalensError(
            f"{where}: {name} format version {header.get('version')!r}; this nasalens reads "
            f"version {version}{tail}"
        )
    return header


def parse_jsonl(
    raw: bytes, name: str, *, torn_tail: bool = False, hint: str = ""
) -> list[tuple[str, object]]:
    """Parse JSON Lines bytes into ``("name:line", value)`` pairs, skipping blank lines.

    Args:
        raw: The bytes.
        name: How messages name the file.
        torn_tail: Drop, with a warning, a last line that has no newline and does not parse:
            what a process killed while appending leaves (`append_jsonl`).
        hint: What to write instead, added to the message on invalid JSON.

    Raises:
        NasalensError: On a line that is not UTF-8 or not strict JSON, naming ``name:line``.
    """
    lines = raw.split(b"\n")
    records: list[tuple[str, object]] = []
    for number, line in enumerate(lines, start=1):
        where = f"{name}:{number}"
        try:
            text = decode(line, where)
            if text.strip():
                records.append((where, parse_json(text, where, hint=hint)))
        except NasalensError as err:
            if torn_tail and number == len(lines) and line.strip():
                logger.warning("%s: dropped a torn last line (%s)", where, err)
                continue
            raise
    return records


def read_jsonl(path: str | Path, *, torn_tail: bool = False) -> list[tuple[str, object]]:
    """Read a JSON Lines file through `read_file` and `parse_jsonl`.

    Raises:
        NasalensError: As `read_file` and `parse_jsonl`.
    """
    raw = read_file(path, "JSON Lines file")
    return parse_jsonl(raw, shorten(str(as_path(path))), torn_tail=torn_tail)


def write_json(path: str | Path, payload: object) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    text = json.dumps(payload, indent=2, allow_nan=True) + "\n"
    write_bytes(path, text.encode("utf-8"))


def append_jsonl(path: str | Path, record: Mapping[str, object]) -> None:
    """Append one JSON record as a line, flushed to disk before returning.

    A kill during the write can leave a torn last line; `read_jsonl` with ``torn_tail`` drops it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(record, allow_nan=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


# ---- atomic writes ----


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it into place.

    Raises:
        NasalensError: When the folder cannot be made or the file cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as err:
        raise NasalensError(f"cannot write {shorten(str(path))}: {err.strerror}") from err
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes 0600; give it a normal file's mode
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write raw bytes (an HTML page, a PNG, a JSON text), atomically."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_csv(path: str | Path, frame: object) -> None:
    """Write a pandas DataFrame as CSV without its index, atomically."""
    write_bytes(path, frame.to_csv(index=False).encode("utf-8"))  # type: ignore[attr-defined]


@contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """Fill a temp folder beside ``folder`` in the block, then rename it into place.

    ``folder`` must not exist or be empty. On an exception the temp folder is removed and
    ``folder`` is left as it was.

    Raises:
        NasalensError: When ``folder`` exists and is not an empty folder.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise NasalensError(f"{shorten(str(folder))} exists and is not an empty folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            folder.rmdir()
        tmp.replace(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


# ---- tables ----


def frame_to_dict(frame: pd.DataFrame) -> dict[str, object]:
    """A DataFrame as JSON-ready values: columns, dtypes and full-precision values.

    pandas' own JSON keeps 15 digits and turns infinities into NaN; this keeps both (floats
    are written as Python writes them). The index must be the default one (0..n-1).
    """
    import pandas as pd

    if not frame.index.equals(pd.RangeIndex(len(frame))):
        raise AssertionError("frame_to_dict: reset the index first")
    return {
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "data": [frame[c].tolist() for c in frame.columns],
    }


def frame_from_dict(payload: object, *, where: str = "table") -> pd.DataFrame:
    """Rebuild a DataFrame written by `frame_to_dict`.

    Raises:
        NasalensError: When the values are not such a table.
    """
    import pandas as pd

    try:
        assert isinstance(payload, dict)
        columns, dtypes, data = payload["columns"], payload["dtypes"], payload["data"]
        assert len(columns) == len(dtypes) == len(data)
        frame = pd.DataFrame(dict(zip(columns, data, strict=True)), columns=columns)
        return frame.astype(dict(zip(columns, dtypes, strict=True)))
    except (AssertionError, KeyError, TypeError, ValueError) as err:
        raise NasalensError(f"{where}: not a table written by nasalens ({err!r})") from err
