"""Models: loading (embedded, hub, folder, GGUF), head geometry, and the model interface.

`adapt(model)` is the only place that asks what type a model is; everything else in nasalens
goes through the `ModelAdapter` it returns.
"""

from nasalens.models.dispatch import adapt, clone, info
from nasalens.models.geometry import Head, HeadLike, ModelInfo, as_heads
from nasalens.models.interface import ModelAdapter, ParamSlice
from nasalens.models.legacy import legacy_available
from nasalens.models.loading import (
    EMBEDDED_NAME,
    cache_dir,
    check_live_hooks,
    embedded_gguf,
    load_model,
)
from nasalens.models.tiny import tiny_hf_model, tiny_legacy_model, tiny_model, tiny_tokenizer

__all__ = [
    "EMBEDDED_NAME",
    "Head",
    "HeadLike",
    "ModelAdapter",
    "ModelInfo",
    "ParamSlice",
    "adapt",
    "as_heads",
    "cache_dir",
    "check_live_hooks",
    "clone",
    "embedded_gguf",
    "info",
    "legacy_available",
    "load_model",
    "tiny_hf_model",
    "tiny_legacy_model",
    "tiny_model",
    "tiny_tokenizer",
]
