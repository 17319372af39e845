"""The typer app and the options and helpers every command shares.

Commands live in one module per group (evaluation, heads, validation, tuning...).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer

if TYPE_CHECKING:
    import torch

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find, prove and repair the attention heads behind an LLM's negative bias.",
)

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Hub id, HF folder or .gguf; default: embedded SmolLM2."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Root of the reference data sets (strategyqa/, gsm8k/, ...); default: "
        "$NASALENS_DATA_DIR.",
    ),
]


def data_dir(option: Path | None) -> Path | None:
    """The data root: the option, else $NASALENS_DATA_DIR, else None."""
    if option is not None:
        return option
    env = os.environ.get("NASALENS_DATA_DIR")
    return Path(env) if env else None


def load_set(spec: str, root: Path | None, *, n: int | None = None, seed: int = 0) -> list:
    """The samples a --data value names: a JSONL file, a built-in set, or a set under root.

    "organism-checks" names the organism's checks (taught facts NASA never saw).
    Built-in sets ship with nasalens, so the data root (option or $NASALENS_DATA_DIR) is not
    passed to them: ``--data builtin-eval --data strategyqa --data-dir DIR`` works.
    """
    from nasalens import data

    if spec == "organism-checks":
        from nasalens import organisms

        checks = organisms.checks()  # Yes/No pairs in order: the first n stay balanced
        return checks if n is None else checks[:n]
    if spec.endswith(".jsonl"):
        return data.load_jsonl(spec, n=n, seed=seed)
    builtin = spec.strip().casefold().replace("-", "_").startswith("builtin_")
    return data.load(spec, None if builtin else root, n=n, seed=seed)


def table(frame: pd.DataFrame) -> str:
    """A DataFrame as plain text with three decimals."""
    return frame.to_string(index=False, float_format=lambda x: f"{x:.3f}")


def load(model: str | None) -> torch.nn.Module:
    """Load a model (default: the embedded one) and say how long it took."""
    import nasalens as nl

    start = time.perf_counter()
    loaded = nl.load_model(model)
    typer.echo(f"loaded {nl.info(loaded).name} in {time.perf_counter() - start:.1f} s")
    return loaded
