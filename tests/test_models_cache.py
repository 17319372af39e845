"""The GGUF-derived model cache checks itself: a damaged cache is rebuilt, with a warning.

The GGUF parse is replaced by the tiny random Llama (counted), so every case takes a second; the
cache files themselves are real (safetensors, config, tokenizer, manifest).
"""

import logging

import pytest
import torch

from nasalens.artifacts import MANIFEST, check_manifest
from nasalens.errors import NasalensError
from nasalens.models import adapt, load_model, loading, tiny_hf_model
from tests.builders import weights

TOKENS = torch.tensor([[1, 40, 41, 42, 43, 44]])


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A .gguf path whose parse gives the tiny model; returns (path, cache root, parse count)."""
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path / "cache"))
    parses = []

    def parse(gguf, dtype):
        parses.append(gguf)
        return tiny_hf_model(seed=0)

    monkeypatch.setattr(loading, "_parse_gguf", parse)
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF stand-in")
    return path, tmp_path / "cache", parses


def logits(model):
    with torch.no_grad():
        return adapt(model).logits_at(TOKENS, torch.ones_like(TOKENS), torch.tensor([5]))


def assert_same_model(model, expected):
    """The cache's promise: every weight bit for bit. The logits agree to float precision only:
    on AVX-512 machines a tensor read from the file (its own memory alignment) can take a matmul
    path whose sums round differently in the last bit (6e-8 measured)."""
    want_weights, want_logits = expected
    got = weights(model)
    assert got.keys() == want_weights.keys()
    assert all(torch.equal(got[n], want_weights[n]) for n in got)
    torch.testing.assert_close(logits(model), want_logits, rtol=1e-6, atol=1e-6)


def only_folder(root):
    (folder,) = root.iterdir()
    return folder


def halve(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "model.safetensors halved": lambda f: halve(f / "model.safetensors"),
    "model.safetensors empty": lambda f: (f / "model.safetensors").write_bytes(b""),
    "model.safetensors missing": lambda f: (f / "model.safetensors").unlink(),
    "config.json halved": lambda f: halve(f / "config.json"),
    "tokenizer.json halved": lambda f: halve(f / "tokenizer.json"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_cache_is_rebuilt_with_a_warning(fake_gguf, caplog, damage):
    path, root, parses = fake_gguf
    first = load_model(path)
    expected = weights(first), logits(first)
    folder = only_folder(root)
    assert check_manifest(folder, full=True) == [] and len(parses) == 1
    assert_same_model(load_model(path), expected)
    assert len(parses) == 1  # read from the cache
    DAMAGE[damage](folder)
    with caplog.at_level(logging.WARNING, logger="nasalens.models.loading"):
        assert_same_model(load_model(path), expected)
    assert len(parses) == 2
    assert f"the model cache {folder} is damaged" in caplog.text
    assert "rebuilding it from the GGUF file" in caplog.text
    assert check_manifest(folder, full=True) == []  # whole again
    load_model(path)
    assert len(parses) == 2


def test_a_cache_without_a_manifest_is_adopted_or_rebuilt(fake_gguf, caplog):
    path, root, parses = fake_gguf
    first = load_model(path)
    expected = weights(first), logits(first)
    folder = only_folder(root)
    (folder / MANIFEST).unlink()  # as written before manifests existed
    assert_same_model(load_model(path), expected)
    assert len(parses) == 1 and check_manifest(folder) == []
    (folder / MANIFEST).unlink()
    halve(folder / "model.safetensors")  # old and damaged: found when it fails to load
    with caplog.at_level(logging.WARNING, logger="nasalens.models.loading"):
        load_model(path)
    assert len(parses) == 2 and "it does not load" in caplog.text


def test_a_file_that_only_claims_to_be_gguf_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "random.gguf"
    path.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(NasalensError, match=r"random.gguf: not a GGUF model that transformers"):
        load_model(path)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_damaged_model_folder_names_itself(tiny_model, tmp_path):
    from nasalens.tuning.export import export

    folder = export(tiny_model, tmp_path / "hf")
    halve(folder / "model.safetensors")
    with pytest.raises(NasalensError, match=r"could not load .*hf' \(a damaged folder"):
        load_model(folder)
