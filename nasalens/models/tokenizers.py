"""Keeping nasalens's own tokenizer while TransformerLens builds a model around it.

Used by `nasalens.models.loading.boot` (bridges), `nasalens.models.legacy.hooked_from_hf` and the
tiny test models.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def tokenizer_kept(tokenizer: Any, label: str) -> Iterator[None]:
    """Keep TransformerLens from replacing ``tokenizer`` while a model is built around it.

    TransformerLens (3.9 and 4.x) reloads, by name and possibly from the hub, any tokenizer that
    does not add BOS itself. nasalens places BOS itself, so the tokenizer claims the flag for the
    duration of the block only (a saved tokenizer never carries it).
    """
    init_kwargs = tokenizer.init_kwargs
    init_kwargs.setdefault("name_or_path", label)
    had_flag, flag = "add_bos_token" in init_kwargs, init_kwargs.get("add_bos_token")
    init_kwargs["add_bos_token"] = True
    try:
        yield
    finally:
        if had_flag:
            init_kwargs["add_bos_token"] = flag
        else:
            init_kwargs.pop("add_bos_token", None)
