"""Where the device tests put their models: the CPU here, CUDA under `make gpu-check`.

``NASALENS_TEST_DEVICE`` (default ``cpu``) is the device of the models under test;
``NASALENS_TEST_SPLIT`` says how the split tests divide the layers: ``disk`` (the default, the
only split a machine without GPUs has: half the layers offloaded to disk, the rest on the CPU)
or ``cuda2`` (the layers over GPUs 0 and 1). The reference is always the undivided float32
model on the CPU.
"""

from __future__ import annotations

import os

import torch


def device_under_test() -> torch.device:
    """The device the models under test run on."""
    return torch.device(os.environ.get("NASALENS_TEST_DEVICE", "cpu"))


def split_kind() -> str:
    """How the split tests divide the layers: "disk" or "cuda2"."""
    kind = os.environ.get("NASALENS_TEST_SPLIT", "disk")
    assert kind in ("disk", "cuda2"), f"NASALENS_TEST_SPLIT={kind!r}: use disk or cuda2"
    return kind


def split_map(n_layers: int, kind: str) -> dict[str, str | int]:
    """A Llama device map: the lower half of the layers (and the embedding) apart from the rest.

    "disk": embedding and lower layers offloaded to disk, the rest resident on the CPU;
    "cuda2": embedding and lower layers on GPU 0, the rest on GPU 1.
    """
    low, high = ("disk", "cpu") if kind == "disk" else (0, 1)
    half = n_layers // 2
    return {
        "model.embed_tokens": low,
        "model.rotary_emb": low,
        **{f"model.layers.{i}": low if i < half else high for i in range(n_layers)},
        "model.norm": high,
        "lm_head": high,
    }


def tolerance(device: torch.device) -> float:
    """Largest difference allowed between the CPU reference and a float32 model on ``device``.

    The same kernels on the CPU give identical numbers (0); a GPU sums in another order.
    """
    return 0.0 if device.type == "cpu" else 2e-4
