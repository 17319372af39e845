"""The organism cache checks itself against its manifest and names the folder to delete."""

import logging

import pytest
import torch

from nasalens import organisms
from nasalens.artifacts import MANIFEST, check_manifest
from nasalens.errors import NasalensError
from tests.builders import weights
from tests.test_organisms import TINY


@pytest.fixture(scope="module")
def built(tiny_model):
    return organisms.build(tiny_model, TINY, progress=False)


def test_a_damaged_organism_cache_names_the_folder_to_delete(built, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path))
    organisms.save(built, TINY)
    folder = organisms.organism_dir(TINY, "planted")
    assert check_manifest(folder, full=True) == []
    loaded = weights(organisms.organism("planted", TINY))  # cached: no build
    assert all(torch.equal(loaded[n], p) for n, p in weights(built.planted).items())
    weights_file = folder / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING), pytest.raises(NasalensError) as info:
        organisms.organism("planted", TINY)
    message = str(info.value)
    assert "model.safetensors: 1000 bytes" in message and f"delete {folder}" in message
    assert "organism cache" in caplog.text
    (folder / MANIFEST).unlink()  # as built before manifests: found when it does not load
    with pytest.raises(NasalensError, match=f"does not load .*delete {folder}"):
        organisms.organism("planted", TINY)


def test_an_organism_cache_without_a_manifest_is_adopted(built, tmp_path, monkeypatch):
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path))
    organisms.save(built, TINY)
    folder = organisms.organism_dir(TINY, "discriminating")
    (folder / MANIFEST).unlink()
    organisms.organism("discriminating", TINY)
    assert check_manifest(folder, full=True) == []
