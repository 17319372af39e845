"""The `validate` command: ablate selected heads vs random head sets, print a table, write figures.

For each data set it writes, under ``--out``, ``<set>-summary.csv`` (one row per metric),
``<set>-random.csv``, ``<set>-per-head.csv``, ``<set>-validation.html`` and
``<set>-per-head.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import pandas as pd
import typer

from nasalens.artifacts import write_csv
from nasalens.cli.app import (
    DataDirOpt,
    ModelOpt,
    app,
    at_least,
    data_dir,
    load,
    load_sets,
    out_dir,
    table,
)


@app.command()
def validate(
    heads: Annotated[
        Path, typer.Option("--heads", help='Heads JSON (from `nasalens heads`, or ["L17H7", ...]).')
    ],
    data: Annotated[list[str], typer.Option("--data", "-d", help="A set name or a JSONL file.")],
    model: ModelOpt = None,
    data_root: DataDirOpt = None,
    n: Annotated[int | None, typer.Option(help="Samples per set (default: all).")] = None,
    n_sets: Annotated[
        int, typer.Option("--n-sets", "--controls", help="Random head sets to compare with.")
    ] = 20,
    how: Annotated[str, typer.Option(help="Ablation: zero, mean or resample.")] = "mean",
    seed: Annotated[int, typer.Option(help="Seed of the random sets and the bootstrap.")] = 0,
    per_head: Annotated[bool, typer.Option(help="Also ablate each head alone.")] = True,
    out: Annotated[Path, typer.Option(help="Folder for the tables and HTML figures.")] = Path(
        "validation"
    ),
) -> None:
    """Ablate the heads of --heads and compare with random head sets of the same layers."""
    from nasalens.heads import HeadSet
    from nasalens.patching import ABLATIONS, AblationKind
    from nasalens.patching.ablation import check_how
    from nasalens.plotting.export import save_html
    from nasalens.plotting.validation import plot_head_effects, plot_validation
    from nasalens.validation import validate_heads

    check_how(how, ABLATIONS, "ablation")
    at_least(n_sets, 0, "--n-sets")
    chosen = HeadSet.load(heads)
    out_dir(out)
    sets = load_sets(data, data_dir(data_root), n=n)
    loaded = load(model)
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for name, samples in sets.items():
        result = validate_heads(
            loaded,
            samples,
            chosen,
            n_sets=n_sets,
            how=cast(AblationKind, how),
            seed=seed,
            per_head=per_head,
        )
        write_csv(out / f"{name}-summary.csv", result.summary)
        write_csv(out / f"{name}-random.csv", result.random_effects)
        write_csv(out / f"{name}-per-head.csv", result.per_head)
        save_html(plot_validation(result), out / f"{name}-validation.html")
        if per_head:
            save_html(plot_head_effects(result), out / f"{name}-per-head.html")
        columns = ["metric", "baseline", "ablated", "effect", "effect_lo", "effect_hi"]
        columns += ["random_mean", "share_beaten"]
        frames.append(result.summary[columns].assign(data=name, n=len(samples)))
    typer.echo(
        f"\nEffect of {how}-ablating {len(chosen)} heads vs {n_sets} random head sets "
        "(effect = ablated - baseline, 95% bootstrap interval):"
    )
    typer.echo(table(pd.concat(frames, ignore_index=True)))
    typer.echo(f"\nwrote tables and figures to {out}")
