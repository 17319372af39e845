"""Reading and writing files safely: user paths, the one validating reader, atomic writes.

Every write goes to a temp file (or folder) beside the target and is renamed into place, so a
crash never leaves a half-written artifact; this module is the only place that does so. Every
read goes through `read_file`: it says what a path is when it is not a regular file.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nasalens.errors import NasalensError, quote, shorten

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
