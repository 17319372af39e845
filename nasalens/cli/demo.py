"""The `demo` command: the main job on the embedded model (what `make demo` runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import pandas as pd
import typer

from nasalens.cli.app import DataDirOpt, ModelOpt, app, data_dir, load, out_dir, table

if TYPE_CHECKING:
    from nasalens.metrics import EvalResult


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
    run = run_demo(config, model=loaded, out=out, on_step=print_step)
    typer.echo(f"\nReport: {run.report.resolve()}")
    typer.echo(f"Wall time: {time.perf_counter() - start:.0f} s")


def print_step(step: str, result: object) -> None:
    """Print one finished step of the main job (`nasalens.pipeline.OnStep`)."""
    if step == "bias":
        bias, examples = cast("tuple[dict[str, EvalResult], pd.DataFrame]", result)
        typer.echo("\nThe Yes/No decisions of the untouched model (Prompt I, chat template):")
        typer.echo(table(pd.concat([r.to_frame() for r in bias.values()], ignore_index=True)))
        typer.echo("\nExample prompts:")
        for _, row in examples.iterrows():
            typer.echo(f"\n{row['prompt']}")
            typer.echo(
                f"-> gold {row['gold']}; P(Yes) = {row['P(Yes)']:.3f}, "
                f"P(No) = {row['P(No)']:.3f} (of the two candidates)"
            )
    elif step == "probing set":
        typer.echo(f"\nProbing set: {result.counts()}")  # type: ignore[attr-defined]
    elif step == "NAS":
        typer.echo("\nNegative heads (top 10):")
        typer.echo(table(result.top(10).to_frame()))  # type: ignore[attr-defined]
    elif step == "causal validation":
        typer.echo("\nCausal validation (selected heads vs random head sets):")
        summary = result.summary  # type: ignore[attr-defined]
        typer.echo(table(summary[[c for c in summary.columns if not c.startswith("random_")]]))
    elif step == "NASA":
        if result is None:
            typer.echo("\nNASA: skipped (the probing set has no FN to train on or no V)")
        else:
            kept = ", ".join(map(str, result.kept)) or "none"  # type: ignore[attr-defined]
            typer.echo(f"\nNASA kept: {kept}")
    elif step == "comparison":
        cols = ["set", "model", "accuracy", "precision", "recall", "f1", "auroc", "share_yes"]
        frame = result.table  # type: ignore[attr-defined]
        typer.echo("\nBaseline vs tuned:")
        typer.echo(table(frame[cols]))
        for _, row in frame.iterrows():
            if row["model"] != result.baseline:  # type: ignore[attr-defined]
                typer.echo(f"  {row['set']}, {row['model']}: {row['verdict']}")
    elif step == "organism":
        if result is None:
            typer.echo(
                "\nGround truth: the shipped organism did not load (the report says why and how "
                "to rebuild it); section skipped"
            )
        else:
            from nasalens.demo_organism import organism_table

            typer.echo("\nGround truth: where NAS and the causal ranking put the planted heads:")
            typer.echo(table(result.ranks))  # type: ignore[attr-defined]
            typer.echo("Decisions on the organism's checks (95% intervals):")
            typer.echo(table(organism_table(result)))  # type: ignore[arg-type]
    elif step == "analysis":
        typer.echo("\nAnalysis: written to the report")
