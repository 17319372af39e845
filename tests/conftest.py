"""Shared fixtures: thread pinning, the tiny random model, the embedded model, shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two xdist workers on two cores: one torch thread each, set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NASALENS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only reference data sets of ../shared/data; skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (set NASALENS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny random GQA TransformerBridge: 2 layers, 4 query heads, 2 KV heads, d_model 64."""
    from nasalens.models import info, tiny_model

    model = tiny_model(seed=0)
    geo = info(model)
    assert (geo.n_layers, geo.n_heads, geo.n_kv_heads, geo.d_model, geo.d_head) == (2, 4, 2, 64, 16)
    return model


@pytest.fixture
def tiny_model_copy(tiny_model):
    """A private deep copy of the tiny model, for tests that change weights."""
    from nasalens.models import clone

    return clone(tiny_model)


@pytest.fixture(scope="session")
def embedded_model():
    """The embedded SmolLM2-135M-Instruct, loaded once per worker (offline)."""
    from nasalens.models import load_model

    return load_model()
