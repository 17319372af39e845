"""JSON, JSON Lines and tables in the files nasalens writes: strict parsing, versioned headers.

Parsing rejects duplicate keys and oversized numbers and names ``file:line``; every nasalens
file opens with a header (format and version) that `check_header` checks in one way.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nasalens.artifacts.files import as_path, decode, read_file, write_bytes
from nasalens.errors import NasalensError, quote, shorten

if TYPE_CHECKING:  # pandas is imported where used: the data loaders do without it
    import pandas as pd

logger = logging.getLogger(__name__)


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
