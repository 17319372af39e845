"""Files nasalens writes: JSON, JSONL and safetensors, each written atomically.

Every write goes to a temp file beside the target and is renamed into place, so a crash never
leaves a half-written artifact. Tensors go in safetensors only; nothing is ever pickled.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch

from nasalens.errors import NasalensError


def _atomic(path: Path, write: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    Path(tmp).chmod(0o666 & ~umask)  # mkstemp makes 0600; give it a normal file's mode
    try:
        write(Path(tmp))  # type: ignore[operator]
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, payload: object) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    text = json.dumps(payload, indent=2, allow_nan=True) + "\n"
    _atomic(Path(path), lambda tmp: tmp.write_text(text))


def read_json(path: str | Path) -> object:
    """Read a JSON file.

    Raises:
        NasalensError: When the file is missing or not valid JSON.
    """
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise NasalensError(f"cannot read JSON file {str(path)!r}: {err}") from err


def append_jsonl(path: str | Path, record: Mapping[str, object]) -> None:
    """Append one JSON record as a line, flushed to disk before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(record, allow_nan=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_tensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Write tensors as safetensors, atomically (contiguous CPU copies)."""
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic(Path(path), lambda tmp: save_file(flat, str(tmp), metadata=dict(metadata or {})))


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file into CPU tensors.

    Raises:
        NasalensError: When the file is missing or not safetensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise NasalensError(f"cannot read tensors from {str(path)!r}: {err}") from err


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write raw bytes (an HTML page, a PNG), atomically."""
    _atomic(Path(path), lambda tmp: tmp.write_bytes(data))


def frame_to_dict(frame: pd.DataFrame) -> dict[str, object]:
    """A DataFrame as JSON-ready values: columns, dtypes and full-precision values.

    pandas' own JSON keeps 15 digits and turns infinities into NaN; this keeps both (floats
    are written as Python writes them). The index must be the default one (0..n-1).
    """
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
    try:
        assert isinstance(payload, dict)
        columns, dtypes, data = payload["columns"], payload["dtypes"], payload["data"]
        assert len(columns) == len(dtypes) == len(data)
        frame = pd.DataFrame(dict(zip(columns, data, strict=True)), columns=columns)
        return frame.astype(dict(zip(columns, dtypes, strict=True)))
    except (AssertionError, KeyError, TypeError, ValueError) as err:
        raise NasalensError(f"{where}: not a table written by nasalens ({err!r})") from err
