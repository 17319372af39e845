"""Exporting a model as a plain Hugging Face checkpoint: config, tokenizer, safetensors.

The folder loads with ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer`` (chat
template included), without nasalens or TransformerLens. It is written to a temp folder and
renamed into place (`nasalens.artifacts.atomic_folder`), so a crash never leaves half a
checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nasalens.artifacts import as_path, atomic_folder
from nasalens.errors import NasalensError, shorten
from nasalens.models import adapt

logger = logging.getLogger(__name__)


def check_out(out: object) -> Path:
    """Return ``out`` if a checkpoint can be written there: a new or empty folder.

    Raises:
        NasalensError: When ``out`` is not a path, or exists and is not an empty folder.
    """
    path = as_path(out, "--out")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise NasalensError(
            f"export: {shorten(str(path))} exists and is not an empty folder; choose a new --out"
        )
    return path


def export(model: object, out: str | Path) -> Path:
    """Write ``model`` as a Hugging Face checkpoint folder.

    Args:
        model: A model from `nasalens.load_model` (tuned or not).
        out: The folder to create; it must not exist or be empty.

    Returns:
        The folder.

    Raises:
        NasalensError: When ``out`` exists and is not an empty folder.

    Example:
        >>> export(result.model, "smollm2-nasa")  # doctest: +SKIP
    """
    from safetensors.torch import save_file

    out = check_out(out)
    adapter = adapt(model)
    config: Any = adapter.hf_config
    tensors = adapter.hf_tensors()  # CPU copies; offloaded weights read back too
    with atomic_folder(out) as tmp:
        config.save_pretrained(str(tmp))
        tokenizer: Any = adapter.tokenizer
        tokenizer.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    logger.info("exported %d tensors to %s", len(tensors), out)
    return out
