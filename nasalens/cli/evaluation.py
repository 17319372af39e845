"""The `evaluate` command: Yes/No decisions on data sets or JSONL files, with intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from nasalens.artifacts import write_csv
from nasalens.cli.app import (
    DataDirOpt,
    ModelOpt,
    app,
    at_least,
    data_dir,
    load_sets,
    out_dir,
    table,
)


@app.command()
def evaluate(
    data: Annotated[list[str], typer.Option("--data", "-d", help="A set name or a JSONL file.")],
    model: ModelOpt = None,
    data_root: DataDirOpt = None,
    n: Annotated[int | None, typer.Option(help="Samples per set (default: all).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the per-sample CSV here.")] = None,
    qa_retention: Annotated[
        int,
        typer.Option(
            help="NQ-open questions for general QA retention (Prompt II exact match; 0: skip)."
        ),
    ] = 300,
) -> None:
    """Evaluate Yes/No decisions on data sets or your own JSONL files.

    --model may also be a NASA run folder (then its base and tuned model are compared) or an
    exported folder; --data organism-checks names the organism's checks (facts NASA never saw).
    General QA retention needs NQ-open in the data folder; without it the command says so.
    """
    import nasalens as nl
    from nasalens.cli.tuning import compare_run, load_any

    at_least(qa_retention, 0, "--qa-retention")
    if out is not None:
        out_dir(out)
    root = data_dir(data_root)
    sets = load_sets(data, root, n=n)
    baseline, loaded = load_any(model)
    frames = []
    for name, samples in sets.items():
        if baseline is not None:
            frames.append(compare_run(baseline, loaded, name, samples, out))
            continue
        result = nl.evaluate(loaded, samples, name=name)
        frames.append(result.to_frame(intervals=True))
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_csv(out / f"{name}.csv", result.per_sample)
    typer.echo(table(pd.concat(frames, ignore_index=True)))
    if qa_retention:
        models = {"model": loaded} if baseline is None else {"baseline": baseline, "tuned": loaded}
        _retention(models, root, qa_retention)


def _retention(models: dict[str, Any], root: Path | None, n: int) -> None:
    """Print general QA retention (Prompt II exact match on n NQ-open questions, seed 1)."""
    from nasalens import data as nl_data
    from nasalens.errors import NasalensError
    from nasalens.tuning.evaluation import qa_retention

    try:
        questions = nl_data.nq_open_questions(root, n=n, seed=1)
    except NasalensError as err:
        typer.echo(f"QA retention skipped: {err} (--qa-retention 0 skips it silently)")
        return
    rows = [{"model": name, **qa_retention(m, questions)} for name, m in models.items()]
    typer.echo("general QA retention (NQ-open, Prompt II exact match):")
    typer.echo(table(pd.DataFrame(rows)))
