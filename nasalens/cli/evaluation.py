"""The `evaluate` command: Yes/No decisions on data sets or JSONL files, with intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from nasalens.cli.app import DataDirOpt, ModelOpt, app, data_dir, table


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
