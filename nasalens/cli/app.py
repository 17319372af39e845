"""The typer app, its error contract, and the options and helpers every command shares.

Commands live in one module per group (evaluation, heads, validation, tuning...). Bad input
to any command ends it with one line, ``error: <what and the fix>``, on stderr and exit status 2;
``nasalens --debug COMMAND`` (or ``NASALENS_DEBUG=1``) shows the traceback instead. Every
command checks its cheap arguments (data, output folders, config files) before it loads a model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from typer.core import TyperGroup

from nasalens.errors import NasalensError, shorten

if TYPE_CHECKING:
    import torch

#: The exit status of a command that stopped on bad input.
BAD_INPUT = 2


class _Group(TyperGroup):
    """Runs a command; bad input ends it with one line on stderr and exit status 2."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer bundles its own click)
        try:
            return super().invoke(ctx)
        except (NasalensError, OSError, typer.TyperException) as err:
            debug = ctx.params.get("debug") or os.environ.get("NASALENS_DEBUG")
            usage = hasattr(err, "format_message") and type(err).__name__ != "NoArgsIsHelpError"
            if debug or not (usage or isinstance(err, NasalensError | OSError)):
                raise
            typer.echo(f"error: {one_line(err)}", err=True)
            ctx.exit(BAD_INPUT)


def one_line(err: BaseException) -> str:
    """The message of an error on one line (an OSError with the path it concerns)."""
    if isinstance(err, OSError):
        where = f"{shorten(str(err.filename))}: " if err.filename else ""
        text = f"{where}{err.strerror or err}"
    elif isinstance(err, typer.TyperException):  # a click usage error: an unknown option...
        usage: Any = err
        context = getattr(usage, "ctx", None)
        command = context.command_path if context is not None else "nasalens"
        text = f"{usage.format_message()} (see {command} --help)"
    else:
        text = str(err)
    return " ".join(text.split())


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Find, prove and repair the attention heads behind an LLM's negative bias.",
)


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="On bad input, show the traceback, not one line.")
    ] = False,
) -> None:
    """Find, prove and repair the attention heads behind an LLM's negative bias."""
    # _Group.invoke reads --debug from the group's parsed options.


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
    """The data root: the option, else $NASALENS_DATA_DIR, else None.

    Raises:
        NasalensError: When the option names something that is not a folder.
    """
    if option is not None:
        if not option.is_dir():
            raise NasalensError(
                f"--data-dir {shorten(str(option))} is not a folder; pass the folder that holds "
                "strategyqa/, gsm8k/, ..."
            )
        return option
    env = os.environ.get("NASALENS_DATA_DIR")
    return Path(env) if env else None


def out_dir(path: Path, option: str = "--out") -> Path:
    """Return an output folder option if one can be made there (checked before any model loads).

    Raises:
        NasalensError: When it names an existing file, or a path under a file.
    """
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise NasalensError(
                    f"{option} {shorten(str(path))}: {shorten(str(part))} is a file, not a "
                    "folder; choose another folder"
                )
            break
    return path


def at_least(value: int | None, low: int, option: str) -> None:
    """Reject an integer option below ``low`` (None passes).

    Raises:
        NasalensError: Naming the option.
    """
    if value is not None and value < low:
        raise NasalensError(f"{option} must be at least {low}, got {value}")


def load_sets(
    specs: list[str], root: Path | None, *, n: int | None = None, seed: int = 0
) -> dict[str, list]:
    """Load every --data value (see `load_set`) before a model is loaded, keyed by its name."""
    return {set_label(spec): load_set(spec, root, n=n, seed=seed) for spec in specs}


def set_label(spec: str) -> str:
    """The name of a set in tables and file names: a JSONL file's stem, else the name given."""
    return Path(spec).stem if spec.endswith(".jsonl") else spec


def load_set(spec: str, root: Path | None, *, n: int | None = None, seed: int = 0) -> list:
    """The samples a --data value names: a JSONL file, a built-in set, or a set under root.

    "organism-checks" names the organism's checks (taught facts NASA never saw).
    Built-in sets ship with nasalens, so the data root (option or $NASALENS_DATA_DIR) is not
    passed to them: ``--data builtin-eval --data strategyqa --data-dir DIR`` works.
    """
    from nasalens import data

    if spec == "organism-checks":
        from nasalens import organisms

        at_least(n, 1, "--n")
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
