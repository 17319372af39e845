"""Commands that measure Yes/No decisions: `demo` (the bias table) and `evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from nasalens.cli.app import DataDirOpt, ModelOpt, app, data_dir, load, table

#: The real sets the demo evaluates when a data root is given.
DEMO_SETS = ("strategyqa", "gsm8k")


@app.command()
def demo(
    data_root: DataDirOpt = None,
    n: Annotated[int, typer.Option(help="Samples per real data set.")] = 200,
    model: ModelOpt = None,
) -> None:
    """Measure the negative bias of the embedded model on the built-in and real sets."""
    import nasalens as nl
    from nasalens import data

    loaded = load(model)
    sets = {"builtin-eval": data.builtin("eval")}
    root = data_dir(data_root)
    if root is None:
        typer.echo("no --data-dir or $NASALENS_DATA_DIR: evaluating the built-in set only")
    else:
        for name in DEMO_SETS:
            sets[name] = data.load(name, root, n=n)
    results = [nl.evaluate(loaded, s, name=name) for name, s in sets.items()]
    typer.echo("\nThe Yes/No decisions (Prompt I, chat template):")
    typer.echo(table(pd.concat([r.to_frame() for r in results], ignore_index=True)))
    typer.echo("\nExample prompts:")
    first = results[0].per_sample
    batch = nl.encode(loaded, sets["builtin-eval"][:3])
    for i in range(3):
        row = first.iloc[i]
        typer.echo(f"\n{batch.prompts[i]}")
        typer.echo(
            f"-> gold {'Yes' if row.gold else 'No'}; P(Yes) = {row.p_yes:.3f}, "
            f"P(No) = {1 - row.p_yes:.3f} (of the two candidates)"
        )


@app.command()
def evaluate(
    data: Annotated[list[str], typer.Option("--data", "-d", help="A set name or a JSONL file.")],
    model: ModelOpt = None,
    data_root: DataDirOpt = None,
    n: Annotated[int | None, typer.Option(help="Samples per set (default: all).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the per-sample CSV here.")] = None,
) -> None:
    """Evaluate Yes/No decisions on data sets or your own JSONL files.

    --model may also be a NASA run folder (then its base and tuned model are compared) or an
    exported folder.
    """
    import nasalens as nl
    from nasalens import data as nl_data
    from nasalens.cli.tuning import compare_run, load_any

    baseline, loaded = load_any(model)
    root = data_dir(data_root)
    frames = []
    for spec in data:
        if spec.endswith(".jsonl"):
            samples = nl_data.load_jsonl(spec, n=n)
        else:
            samples = nl_data.load(spec, root, n=n)
        if baseline is not None:
            frames.append(compare_run(baseline, loaded, Path(spec).stem, samples, out))
            continue
        result = nl.evaluate(loaded, samples, name=Path(spec).stem)
        frames.append(result.to_frame(intervals=True))
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            result.per_sample.to_csv(out / f"{Path(spec).stem}.csv", index=False)
    typer.echo(table(pd.concat(frames, ignore_index=True)))
