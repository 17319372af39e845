"""The `analyze` command: the analysis suite on data sets, printed and written as one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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

PAGE = "analysis.html"


@app.command()
def analyze(
    data: Annotated[list[str], typer.Option("--data", "-d", help="A set name or a JSONL file.")],
    model: ModelOpt = None,
    tuned: Annotated[
        str | None,
        typer.Option(help="A tuned model (hub id, HF folder or .gguf) to compare with --model."),
    ] = None,
    data_root: DataDirOpt = None,
    n: Annotated[int, typer.Option(help="Samples per set.")] = 100,
    shots: Annotated[int, typer.Option(help="k of the k-shot prompts.")] = 4,
    cot_tokens: Annotated[int, typer.Option(help="Longest chain of thought in tokens.")] = 128,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help="A prompting scenario to run (repeat; default: all of them)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subsets and k-shot examples.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder of the HTML page.")] = Path("nasalens-analysis"),
) -> None:
    """Analyze the negative bias: prompts, knowledge categories, scenarios, tuning shifts."""
    from nasalens.analysis import SCENARIOS
    from nasalens.analysis import analyze as run_analysis
    from nasalens.plotting.analysis import analysis_section
    from nasalens.report import Section, write_report

    unknown = [w for w in scenario or () if w not in SCENARIOS]
    if unknown:
        raise typer.BadParameter(f"unknown scenario {unknown[0]!r}; use {', '.join(SCENARIOS)}")
    which = tuple(w for w in SCENARIOS if w in (scenario or SCENARIOS))
    at_least(shots, 0, "--shots")
    at_least(cot_tokens, 1, "--cot-tokens")
    out_dir(out)
    sets = load_sets(data, data_dir(data_root), n=n, seed=seed)
    loaded = load(model)
    other = load(tuned) if tuned is not None else None
    sections = []
    for name, samples in sets.items():
        result = run_analysis(
            loaded,
            samples,
            tuned=other,
            name=name,
            n_shots=shots,
            seed=seed,
            which=which,
            cot_tokens=cot_tokens,
        )
        typer.echo(f"\n== {result.name}: {len(samples)} samples ==")
        typer.echo("\nPrompt I decisions:\n" + table(result.to_frame()))
        typer.echo("\nGeneralization across prompts:\n" + table(result.generalization))
        typer.echo("\nKnowledge categories:\n" + table(result.knowledge.to_frame()))
        typer.echo("\nFalse negatives by category:\n" + table(result.fn_composition))
        if result.shifts is not None:
            typer.echo("\nDecision shifts after tuning:\n" + table(result.shifts))
        typer.echo("\nPrompting scenarios:\n" + table(result.scenarios.to_frame()))
        html = analysis_section(result, heading=False)
        sections.append(Section(f"Analysis: {result.name}", html=html))
    page = write_report(out / PAGE, "nasalens analysis", sections)
    typer.echo(f"\nwrote {page}")
