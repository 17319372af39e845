import json
import math
import os
import re

import pytest
import torch

from nasalens.artifacts import (
    DIGEST_KEY,
    MANIFEST,
    append_jsonl,
    atomic_folder,
    check_header,
    check_manifest,
    read_file,
    read_header,
    read_json,
    read_jsonl,
    read_metadata,
    read_tensors,
    tensor_digest,
    write_json,
    write_manifest,
    write_tensors,
)
from nasalens.errors import MESSAGE_LIMIT, NasalensError, quote


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
    with pytest.raises(NasalensError, match=r"bad.json: not valid JSON \(Expecting property"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(NasalensError, match=r"missing\.safetensors: no such file"):
        read_tensors(tmp_path / "missing.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(NasalensError, match=r"cannot read tensors from .*cut\.safetensors"):
        read_tensors(tmp_path / "cut.safetensors")


def test_json_is_read_strictly_and_names_the_file(tmp_path):
    cases = {
        "dup.json": ('{"gold": "yes", "gold": "no"}', "key 'gold' appears twice"),
        "big.json": ('{"n": ' + "9" * 5000 + "}", "an integer has more digits than Python reads"),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "not valid JSON (nested too deeply)"),
        "latin1.json": (b'{"a": "\xe9"}', "not valid UTF-8 (byte 7)"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(NasalensError, match=re.escape(f"{path}: {message}")):
            read_json(path)
    (tmp_path / "nan.json").write_text('{"tau": NaN}')  # nasalens writes NaN for undefined scores
    assert math.isnan(read_json(tmp_path / "nan.json")["tau"])


def test_special_files_are_reported_as_what_they_are(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # reading it would block forever
    for path, kind in (
        (fifo, "a named pipe"),
        ("/dev/null", "a character device"),
        (tmp_path, "a folder"),
    ):
        with pytest.raises(NasalensError, match=f"{path} is {kind}"):
            read_json(path)
    with pytest.raises(NasalensError, match="is too long for a path"):
        read_json(tmp_path / ("x" * 5000))
    with pytest.raises(NasalensError, match="is not a usable path"):
        read_file("a\x00b")
    with pytest.raises(NasalensError, match="cannot expand '~'"):
        read_file("~no-such-user-on-this-machine/x.json")  # was a raw RuntimeError (fuzz)


def test_headers_are_checked_for_format_and_version_with_the_fix_added(tmp_path):
    good = {"format": "nasalens.X", "version": 2, "n": 1}
    assert check_header(good, "nasalens.X", 2, "f.json", what="an X file") is good
    with pytest.raises(NasalensError, match=r"^f.json: not an X file$"):
        check_header([good], "nasalens.X", 2, "f.json", what="an X file")
    with pytest.raises(NasalensError, match=r"^f.json: not an X file; rebuild it$"):
        check_header({**good, "format": "Y"}, "nasalens.X", 2, "f.json", what="an X file",
                     fix="rebuild it")  # fmt: skip
    with pytest.raises(NasalensError, match=r"version 3; this nasalens reads version 2; redo$"):
        check_header({**good, "version": 3}, "nasalens.X", 2, "f.json", what="-", fix="redo")
    path = tmp_path / "h.json"
    path.write_text(json.dumps({**good, "version": None}))
    with pytest.raises(NasalensError, match=r"nasalens.X format version None; .* reads version 2"):
        read_header(path, "X", 2)


def test_a_torn_last_line_is_dropped_only_when_asked_and_only_at_the_end(tmp_path, caplog):
    log = tmp_path / "log.jsonl"
    append_jsonl(log, {"a": 1})
    append_jsonl(log, {"a": 2})
    with log.open("a") as handle:
        handle.write('{"a": 3, "b": [1, 2')  # a kill in the middle of a write
    with pytest.raises(NasalensError, match=re.escape(f"{log}:3: not valid JSON")):
        read_jsonl(log)
    assert [v for _, v in read_jsonl(log, torn_tail=True)] == [{"a": 1}, {"a": 2}]
    assert "dropped a torn last line" in caplog.text
    log.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')  # a bad line inside is never dropped
    with pytest.raises(NasalensError, match=re.escape(f"{log}:2: not valid JSON")):
        read_jsonl(log, torn_tail=True)


def test_tensor_files_carry_a_hash_that_finds_changed_bytes(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "t.safetensors"
    tensors = {"w": torch.arange(12.0).reshape(3, 4), "b": torch.tensor([True, False])}
    write_tensors(path, tensors, {"head_index": "2"})
    assert read_metadata(path)["head_index"] == "2"
    assert read_metadata(path)[DIGEST_KEY] == tensor_digest(tensors)
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0x01  # one bit of the last tensor's data, header untouched
    path.write_bytes(bytes(raw))
    with pytest.raises(NasalensError, match="do not match the hash"):
        read_tensors(path)
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(NasalensError, match="cannot read tensors"):
        read_tensors(path)
    save_file({"w": torch.ones(2)}, str(tmp_path / "plain.safetensors"))  # no hash: read as is
    assert torch.equal(read_tensors(tmp_path / "plain.safetensors")["w"], torch.ones(2))


def test_a_manifest_finds_missing_truncated_and_changed_files(tmp_path):
    folder = tmp_path / "cache"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"abcdef")
    (folder / "sub" / "b.json").write_text("{}")
    write_manifest(folder)
    assert check_manifest(folder) == [] == check_manifest(folder, full=True)
    (folder / "a.bin").write_bytes(b"abc")
    assert check_manifest(folder) == ["a.bin: 3 bytes, 6 when written"]
    (folder / "a.bin").write_bytes(b"abcdeX")  # same size, new time
    assert check_manifest(folder) == ["a.bin: its content changed since it was written"]
    stamp = json.loads((folder / MANIFEST).read_text())["files"]["a.bin"]["mtime_ns"]
    os.utime(folder / "a.bin", ns=(stamp, stamp))  # a flip in place that kept the time
    assert check_manifest(folder) == []
    assert check_manifest(folder, full=True) == ["a.bin: its content changed since it was written"]
    (folder / "sub" / "b.json").unlink()
    assert "sub/b.json: missing" in check_manifest(folder)
    (folder / MANIFEST).write_text("{")
    assert check_manifest(folder)[0].startswith(f"{MANIFEST}: ")


def test_an_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    with atomic_folder(tmp_path / "out") as tmp:
        (tmp / "x.txt").write_text("x")
        assert not (tmp_path / "out").exists()
    assert (tmp_path / "out" / "x.txt").read_text() == "x"
    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "failed") as tmp:
        (tmp / "x.txt").write_text("x")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(NasalensError, match="not an empty folder"), atomic_folder(tmp_path / "out"):
        pass


def test_messages_quote_at_most_about_200_characters_of_a_value():
    assert quote("x" * 10**6).endswith("... (1000000 characters)")
    assert len(quote("x" * 10**6)) < 230
    assert quote(10**5000) == "<an integer of about 5001 digits>"
    assert quote([10**5000]) == "<a list too large to show>"
    assert len(str(NasalensError("y" * 10**6))) <= MESSAGE_LIMIT + 40
    assert str(NasalensError("short")) == "short"
