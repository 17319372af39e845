"""The `demo` command: the main job on the embedded model (what `make demo` runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from nasalens.cli.app import DataDirOpt, ModelOpt, app, data_dir, load, out_dir, table


@app.command()
def demo(
    data_root: DataDirOpt = None,
    quick: Annotated[bool, typer.Option(help="A three-minute version (fewer samples).")] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/<time>).")] = None,
    model: ModelOpt = None,
) -> None:
    """Measure the bias, find and validate the negative heads, tune them, write a report."""
    from nasalens.pipeline import DemoConfig, run_demo

    start = time.perf_counter()
    if out is not None:
        out_dir(out)
    root = data_dir(data_root)
    root_text = None if root is None else str(root)
    config = DemoConfig.quick(root_text) if quick else DemoConfig(data_dir=root_text)
    if root is None:
        typer.echo("no --data-dir or $NASALENS_DATA_DIR: the built-in sets only")
    loaded = load(model)
    run = run_demo(config, model=loaded, out=out)

    typer.echo("\nThe Yes/No decisions of the untouched model (Prompt I, chat template):")
    typer.echo(table(pd.concat([r.to_frame() for r in run.bias.values()], ignore_index=True)))
    typer.echo("\nExample prompts:")
    for _, row in run.examples.iterrows():
        typer.echo(f"\n{row['prompt']}")
        typer.echo(
            f"-> gold {row['gold']}; P(Yes) = {row['P(Yes)']:.3f}, P(No) = {row['P(No)']:.3f} "
            "(of the two candidates)"
        )
    typer.echo(f"\nProbing set: {run.probe.counts()}")
    typer.echo("\nNegative heads (top 10):")
    typer.echo(table(run.heads.top(10).to_frame()))
    typer.echo("\nCausal validation (selected heads vs random head sets):")
    summary = run.validation.summary
    typer.echo(table(summary[[c for c in summary.columns if not c.startswith("random_")]]))
    if run.tuning is not None:
        typer.echo(f"\nNASA kept: {', '.join(map(str, run.tuning.kept)) or 'none'}")
    cols = ["set", "model", "accuracy", "precision", "recall", "f1", "auroc", "share_yes"]
    typer.echo("\nBaseline vs tuned:")
    typer.echo(table(run.comparison.table[cols]))
    for _, row in run.comparison.table.iterrows():
        if row["model"] != run.comparison.baseline:
            typer.echo(f"  {row['set']}, {row['model']}: {row['verdict']}")
    typer.echo(f"\nReport: {run.report.resolve()}")
    typer.echo(f"Wall time: {time.perf_counter() - start:.0f} s")
