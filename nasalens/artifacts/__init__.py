"""Files nasalens writes and reads back: JSON, JSONL, safetensors and whole folders.

Every write goes to a temp file (or folder) beside the target and is renamed into place, so a
crash never leaves a half-written artifact (`files`, the only place that does so). Every read
goes through one validating reader (`read_file`): it says what a path is when it is not a
regular file, rejects duplicate JSON keys and oversized numbers, and names ``file:line``
(`records`). Tensor files carry a hash of their content, folders a manifest of sizes and hashes,
and both are checked on reading (`tensors`). Tensors go in safetensors only; nothing is ever
pickled. torch and pandas are imported only inside the functions that need them.
"""

from nasalens.artifacts.files import (
    as_path,
    atomic_folder,
    atomic_write,
    decode,
    read_file,
    regular_file,
    write_bytes,
    write_csv,
)
from nasalens.artifacts.records import (
    append_jsonl,
    check_header,
    frame_from_dict,
    frame_to_dict,
    parse_json,
    parse_jsonl,
    read_header,
    read_json,
    read_jsonl,
    write_json,
)
from nasalens.artifacts.tensors import (
    DIGEST_KEY,
    MANIFEST,
    check_manifest,
    file_digest,
    read_metadata,
    read_tensors,
    tensor_digest,
    write_manifest,
    write_tensors,
)

__all__ = [
    "DIGEST_KEY",
    "MANIFEST",
    "append_jsonl",
    "as_path",
    "atomic_folder",
    "atomic_write",
    "check_header",
    "check_manifest",
    "decode",
    "file_digest",
    "frame_from_dict",
    "frame_to_dict",
    "parse_json",
    "parse_jsonl",
    "read_file",
    "read_header",
    "read_json",
    "read_jsonl",
    "read_metadata",
    "read_tensors",
    "regular_file",
    "tensor_digest",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_manifest",
    "write_tensors",
]
