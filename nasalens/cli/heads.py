"""The `heads` command: NAS on the positive samples of data sets, negative heads, figures.

For each set it writes ``<out>/<set>/heads.json`` (`HeadSet.save`), ``nas.safetensors``
(per-sample NAS and attention sums), ``head_scores.html`` and ``heatmap.html``, and prints the
head table; with several sets it also prints and writes their pairwise overlaps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nasalens.cli.app import DataDirOpt, ModelOpt, app, at_least, data_dir, load, out_dir, table
from nasalens.data import load_positives


def set_name(spec: str) -> str:
    """The folder name of a set: a JSONL file's stem, else the normalized set name."""
    if spec.endswith(".jsonl"):
        return Path(spec).stem
    return spec.strip().casefold().replace("_", "-")


@app.command("heads")
def heads_command(
    data: Annotated[
        list[str],
        typer.Option(
            "--data",
            "-d",
            help="A set name (builtin-probe, nq_open, hotpotqa, strategyqa, ...) or a JSONL "
            "file; repeat for several.",
        ),
    ],
    model: ModelOpt = None,
    data_root: DataDirOpt = None,
    k: Annotated[int, typer.Option(help="Heads in each sample's top-k list.")] = 100,
    n: Annotated[int, typer.Option(help="Heads to keep at most.")] = 30,
    consistency: Annotated[
        float, typer.Option(help="Share of samples whose top-k must hold a head.")
    ] = 0.9,
    samples: Annotated[
        int | None, typer.Option(help="Questions (or positive samples) per set; default all.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subsets and wrong answers.")] = 0,
    chunk_size: Annotated[int, typer.Option(help="Rows per forward pass.")] = 16,
    out: Annotated[Path, typer.Option(help="Output folder; each set gets a sub-folder.")] = Path(
        "nasalens-heads"
    ),
) -> None:
    """Find the negative heads on the positive samples of data sets (NAS, eq. 2-4)."""
    from nasalens import heads as nl_heads
    from nasalens.artifacts import write_json, write_tensors
    from nasalens.models import info
    from nasalens.plotting.export import save_html
    from nasalens.plotting.heads import heatmap, plot_head_scores
    from nasalens.scores import nas

    nl_heads.check_selection(k, k=k, n=n, consistency=consistency)  # the model's size: below
    at_least(chunk_size, 1, "--chunk-size")
    out_dir(out)
    root = data_dir(data_root)
    sets = {set_name(spec): load_positives(spec, root, n=samples, seed=seed) for spec in data}
    loaded = load(model)
    geo = info(loaded)
    nl_heads.check_selection(geo.n_layers * geo.n_heads, k=k, n=n, consistency=consistency)
    found: dict[str, nl_heads.HeadSet] = {}
    for name, positives in sets.items():
        scores = nas(loaded, positives, chunk_size=chunk_size)
        chosen = nl_heads.negative_heads(scores, k=k, n=n, consistency=consistency)
        found[name] = chosen
        folder = out / name
        chosen.save(folder / "heads.json")
        meta = {
            "model": geo.name,
            "sample_ids": json.dumps(scores.sample_ids),
            "eps": repr(scores.eps),
            "region": scores.region,
        }
        tensors = {"per_sample": scores.per_sample, "attn_pos": scores.attn_pos}
        write_tensors(folder / "nas.safetensors", {**tensors, "attn_neg": scores.attn_neg}, meta)
        save_html(plot_head_scores(scores, chosen), folder / "head_scores.html")
        save_html(heatmap(loaded, positives[0]), folder / "heatmap.html")
        typer.echo(
            f"\n{name}: {len(positives)} positive samples, model NAS {scores.model:.3f}, "
            f"{len(chosen)} heads (k={k}, consistency={consistency}) -> {folder}"
        )
        if len(chosen) < n:
            typer.echo(
                f"only {len(chosen)} heads are in at least {consistency:.0%} of the samples' "
                f"top-{k} lists; raise --k or lower --consistency for more"
            )
        if len(chosen):
            typer.echo(table(chosen.to_frame()))
    if len(found) > 1:
        overlaps = nl_heads.overlap_table(found)
        write_json(out / "overlaps.json", overlaps.to_dict(orient="index"))
        typer.echo("\nShared heads between the sets:")
        typer.echo(overlaps.to_string())
