"""Exporting a model as a plain Hugging Face checkpoint: config, tokenizer, safetensors.

The folder loads with ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer`` (chat
template included), without nasalens or TransformerLens. It is written to a temp folder and
renamed into place, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nasalens.errors import NasalensError
from nasalens.models import adapt

logger = logging.getLogger(__name__)


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

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NasalensError(f"export: {out} exists and is not an empty folder; choose a new --out")
    adapter = adapt(model)
    config: Any = adapter.hf_config
    tensors = adapter.hf_tensors()  # CPU copies; offloaded weights read back too
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        config.save_pretrained(str(tmp))
        tokenizer: Any = adapter.tokenizer
        tokenizer.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if out.exists():
            out.rmdir()
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("exported %d tensors to %s", len(tensors), out)
    return out
