import os

import pytest
import torch

from nasalens.artifacts import append_jsonl, read_json, read_tensors, write_json, write_tensors
from nasalens.errors import NasalensError


def test_json_and_tensors_round_trip_with_a_normal_file_mode(tmp_path):
    write_json(tmp_path / "a" / "x.json", {"k": [1, 2.5, None]})
    assert read_json(tmp_path / "a" / "x.json") == {"k": [1, 2.5, None]}
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a" / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask
    tensors = {"w": torch.arange(6.0).reshape(2, 3)[:, 1:]}  # non-contiguous view
    write_tensors(tmp_path / "t.safetensors", tensors, {"note": "hi"})
    assert torch.equal(read_tensors(tmp_path / "t.safetensors")["w"], tensors["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "t.safetensors"]  # no temp files


def test_jsonl_appends_lines(tmp_path):
    append_jsonl(tmp_path / "log.jsonl", {"a": 1})
    append_jsonl(tmp_path / "log.jsonl", {"a": 2})
    assert (tmp_path / "log.jsonl").read_text().splitlines() == ['{"a": 1}', '{"a": 2}']


def test_unreadable_files_raise_our_error(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(NasalensError, match="cannot read JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(NasalensError, match="cannot read tensors"):
        read_tensors(tmp_path / "missing.safetensors")
