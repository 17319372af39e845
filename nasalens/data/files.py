"""Finding and reading data files, with errors that name the file and line.

Owns where a data set's file is looked up (a file, its folder, a data root, or the
``NASALENS_DATA_DIR`` environment variable), how JSON and JSON Lines are parsed into records,
and the typed field checks that every loader shares.
"""

from __future__ import annotations

import os
from pathlib import Path

from nasalens.artifacts import as_path, decode, parse_json, read_file
from nasalens.artifacts import parse_jsonl as parse_lines
from nasalens.data.sample import check_n, check_seed, check_text
from nasalens.errors import NasalensError, quote

DATA_DIR_ENV = "NASALENS_DATA_DIR"

Record = tuple[str, object]
"""One parsed record and where it came from: ("path/file.jsonl:17", value)."""


def locate(path: str | Path | None, folder: str, filename: str) -> Path:
    """Find a data set's file from a file, its folder, or a data root holding its folder.

    Args:
        path: The file itself, the folder holding it, or a data root that contains ``folder``.
            None means the data root in the environment variable ``NASALENS_DATA_DIR``.
        folder: The data set's folder name inside a data root, e.g. "strategyqa".
        filename: The default file name inside that folder, e.g. "dev.json".

    Returns:
        The path of an existing file.

    Raises:
        NasalensError: When ``path`` is None and the variable is unset, or nothing is found.
    """
    if path is None:
        root = os.environ.get(DATA_DIR_ENV)
        if not root:
            raise NasalensError(
                f"no path given for the {quote(folder)} data set and {DATA_DIR_ENV} is not set; "
                f"pass path=... (the file, its folder, or a data root with a {folder}/ folder) "
                f"or set {DATA_DIR_ENV} to a data root"
            )
        path = root
    path = as_path(path, "path")
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / filename, path / folder / filename):
            if candidate.is_file():
                return candidate
        suffix = Path(filename).suffix
        for directory in (path, path / folder):
            found = sorted(directory.glob(f"*{suffix}")) if directory.is_dir() else []
            if len(found) == 1:
                return found[0]
    raise NasalensError(
        f"{path}: no {folder} data found (looked for the file itself, {filename} in it, and "
        f"{folder}/{filename} under it); pass path= the {filename} file or its folder"
    )


_ROW_HINT = 'write one JSON object per line, e.g. {"question": "Is water wet?", "gold": "yes"}'


def parse_jsonl(raw: bytes, name: str) -> list[Record]:
    """Parse JSON Lines bytes into records, skipping blank lines (see `artifacts.parse_jsonl`).

    Args:
        raw: The file's bytes.
        name: How the file is named in messages (its path).

    Returns:
        One ``("name:line", value)`` per non-blank line; line numbers start at 1.

    Raises:
        NasalensError: On a line that is not UTF-8 or not strict JSON (a repeated key, an
            integer too long to read).
    """
    return parse_lines(raw, name, hint=_ROW_HINT)


def read_records(path: Path) -> list[Record]:
    """Read a JSON Lines file, or a JSON file holding a list, into records.

    Args:
        path: A ``.jsonl`` file (one value per line) or a ``.json`` file (a list of values).

    Returns:
        ``("file:line", value)`` for JSON Lines, ``("file item i", value)`` for a JSON list
        (items counted from 0).

    Raises:
        NasalensError: When the file is not a regular file or cannot be read or parsed, or a
            JSON file is not a list.
    """
    raw = read_file(path, "data file")
    if path.suffix == ".jsonl":
        return parse_jsonl(raw, str(path))
    value = parse_json(decode(raw, str(path)), str(path))
    if not isinstance(value, list):
        raise NasalensError(
            f"{path}: expected a JSON list of items, got {type(value).__name__}; "
            "pass the data set's original file"
        )
    return [(f"{path} item {i}", item) for i, item in enumerate(value)]


def object_rows(
    path: str | Path | None, folder: str, filename: str, *, n: object, seed: object
) -> tuple[Path, list[tuple[str, dict[str, object]]]]:
    """Check a loader's ``n`` and ``seed``, find its file (`locate`) and read its objects.

    Returns:
        The file, and ``(where, object)`` for every record in file order.

    Raises:
        NasalensError: On a bad ``n`` or ``seed``, a missing or unreadable file, or a record
            that is not a JSON object.
    """
    check_n(n)
    check_seed(seed)
    file = locate(path, folder, filename)
    return file, [(where, as_object(value, where)) for where, value in read_records(file)]


def as_object(value: object, where: str) -> dict[str, object]:
    """Return a record that must be a JSON object.

    Raises:
        NasalensError: When it is not an object.
    """
    if not isinstance(value, dict):
        raise NasalensError(
            f"{where}: expected a JSON object, got {type(value).__name__}; "
            'write {"question": ..., ...}'
        )
    return value


def _checked(value: object, label: str, where: str) -> str:
    """Return ``value`` stripped if it is visible text (`sample.check_text`); else raise."""
    return check_text(value, f"{where}: {label}").strip()


def text_field(row: dict[str, object], key: str, where: str) -> str:
    """Return a required string field that holds visible text.

    Args:
        row: The JSON object.
        key: The field name.
        where: "file:line" for messages.

    Returns:
        The string, stripped of surrounding whitespace.

    Raises:
        NasalensError: When the field is missing or null, not a string, blank, or holds
            characters that cannot be written as UTF-8.
    """
    value = row.get(key)
    if value is None:
        raise NasalensError(f"{where}: field {quote(key)} is missing; add it as a non-empty string")
    return _checked(value, f"field {quote(key)}", where)


def optional_text(row: dict[str, object], key: str, where: str) -> str | None:
    """Return an optional string field: None when absent or null, else as `text_field`.

    Raises:
        NasalensError: When the field is present but not visible UTF-8 text.
    """
    return None if row.get(key) is None else text_field(row, key, where)


def text_list(row: dict[str, object], key: str, where: str) -> tuple[str, ...] | None:
    """Return a field that holds one string or a non-empty list of strings, or None if absent.

    Args:
        row: The JSON object.
        key: The field name.
        where: "file:line" for messages.

    Returns:
        The strings, stripped, in order; None when the field is absent or null.

    Raises:
        NasalensError: When the field is not a string or a non-empty list of non-empty strings.
    """
    value = row.get(key)
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise NasalensError(
            f"{where}: field {quote(key)} must be a string or a non-empty list of strings, "
            f'got {quote(value, 60)}; write e.g. "{key}": ["12", "twelve"]'
        )
    return tuple(
        _checked(item, f"field {quote(key)} item {i}", where) for i, item in enumerate(items)
    )
