"""Shared fixtures: thread pinning, the tiny random model, the embedded model, shared data.

The same tests run on TransformerBridges (TransformerLens 4, `make test`) and, where marked
`legacy`, on HookedTransformers (TransformerLens 3.9, `make test-legacy`).
"""

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


def legacy() -> bool:
    """Whether this is the TransformerLens 3.9 environment (`make test-legacy`).

    There the model fixtures give HookedTransformers and only tests marked `legacy` run.
    (Asked lazily: importing nasalens here, before jaxtyping's import hook, would leave it
    unchecked.)
    """
    from nasalens.models import legacy_available

    return legacy_available()


def pytest_collection_modifyitems(config, items):
    """Under TransformerLens 3.9, skip every test not marked `legacy` (they need TL 4)."""
    if not legacy():
        return
    skip = pytest.mark.skip(reason="needs TransformerLens 4 (TransformerBridge); runs in make test")
    for item in items:
        if "legacy" not in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model():
    """A tiny random GQA model: 2 layers, 4 query heads, 2 KV heads, d_model 64.

    A TransformerBridge, or a HookedTransformer in the TransformerLens 3.9 environment.
    """
    from nasalens.models import info, tiny_legacy_model, tiny_model

    model = tiny_legacy_model(seed=0) if legacy() else tiny_model(seed=0)
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

    return load_model(legacy=legacy())
