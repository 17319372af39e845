"""`adapt(model)`: the only place that asks what type a model is.

It returns the `ModelAdapter` of a TransformerBridge (`nasalens.models.bridge`) or of a
TransformerLens 3.9 HookedTransformer (`nasalens.models.legacy`); `info` and `clone` go through it.
"""

from __future__ import annotations

import torch

from nasalens.errors import NasalensError
from nasalens.models.geometry import ModelInfo
from nasalens.models.interface import ModelAdapter


def adapt(model: object) -> ModelAdapter:
    """Return the adapter for ``model``: the only place that looks at a model's type.

    Raises:
        NasalensError: When ``model`` is neither a TransformerBridge nor a HookedTransformer.
    """
    if isinstance(model, ModelAdapter):
        return model
    from transformer_lens.model_bridge import TransformerBridge

    if isinstance(model, TransformerBridge):
        from nasalens.models.bridge import BridgeAdapter

        return BridgeAdapter(model)
    # HookedTransformer exists in TransformerLens 3.x only.
    from nasalens.models.legacy import HookedAdapter, hooked_transformer_class

    hooked = hooked_transformer_class()
    if hooked is not None and isinstance(model, hooked):
        return HookedAdapter(model)
    raise NasalensError(
        f"expected a TransformerLens TransformerBridge (nasalens.load_model()) or a "
        f"HookedTransformer (TransformerLens 3.9), got {type(model).__name__}"
    )


def info(model: object) -> ModelInfo:
    """Return the head geometry of ``model`` (layers, heads, KV heads, d_head...)."""
    return adapt(model).info


def clone(model: object) -> torch.nn.Module:
    """Return an independent deep copy of ``model`` (safe for TransformerBridge, see below).

    Use this rather than ``copy.deepcopy``: on TransformerLens 4.3 bridges, a deep copy shares
    a capture hook with the original (`BridgeAdapter.clone`).
    """
    return adapt(model).clone()
