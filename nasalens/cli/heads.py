"""The `heads` command: NAS on the positive samples of data sets, negative heads, figures.

For each set it writes ``<out>/<set>/heads.json`` (`HeadSet.save`), ``nas.safetensors`` and
``nas.json`` (`NasScores.save`: per-sample NAS and attention sums), ``head_scores.html`` and
``heatmap.html``, and prints the head table; with several sets it also prints and writes their
pairwise overlaps.
"""

from __future__ import annotations

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
    top_n: Annotated[int, typer.Option("--top-n", "--n", help="Heads to keep at most.")] = 30,
    consistency: Annotated[
        float, typer.Option(help="Share of samples whose top-k must hold a head.")
    ] = 0.9,
    samples: Annotated[
        int | None, typer.Option(help="Questions (or positive samples) per set; default all.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subsets and wrong answers.")] = 0,
    chunk_size: Annotated[int, typer.Option(help="Rows per forward pass.")] = 16,
    method: Annotated[
        str,
        typer.Option(
            help="nas (the paper's rule) or causal (also rank every head by what ablating it "
            "does: verified attribution, heads-causal.json/.csv and head_maps.html)."
        ),
    ] = "nas",
    out: Annotated[Path, typer.Option(help="Output folder; each set gets a sub-folder.")] = Path(
        "nasalens-heads"
    ),
) -> None:
    """Find the negative heads on the positive samples of data sets (NAS, eq. 2-4).

    With --method causal, every head is also ranked by the rise of the Yes-No logit difference
    when it alone is mean-ablated (`rank_heads`, "verified"), and a figure puts that map beside
    the NAS map.
    """
    if method not in ("nas", "causal"):
        raise typer.BadParameter(f"{method!r}: use nas or causal", param_hint="--method")
    from nasalens import heads as nl_heads
    from nasalens.artifacts import write_json
    from nasalens.models import info
    from nasalens.plotting.export import save_html
    from nasalens.plotting.heads import heatmap, plot_head_scores
    from nasalens.plotting.ranking import plot_head_maps
    from nasalens.scores import nas
    from nasalens.validation import rank_heads

    nl_heads.check_selection(k, k=k, top_n=top_n, consistency=consistency)  # size: below
    at_least(chunk_size, 1, "--chunk-size")
    out_dir(out)
    root = data_dir(data_root)
    sets = {set_name(spec): load_positives(spec, root, n=samples, seed=seed) for spec in data}
    loaded = load(model)
    geo = info(loaded)
    nl_heads.check_selection(geo.n_layers * geo.n_heads, k=k, top_n=top_n, consistency=consistency)
    found: dict[str, nl_heads.HeadSet] = {}
    for name, positives in sets.items():
        scores = nas(loaded, positives, chunk_size=chunk_size)
        chosen = nl_heads.negative_heads(scores, k=k, top_n=top_n, consistency=consistency)
        found[name] = chosen
        folder = out / name
        chosen.save(folder / "heads.json")
        scores.save(folder)
        if method == "causal":
            ranking = rank_heads(loaded, positives, chunk_size=chunk_size)
            ranking.save(folder / "heads-causal.json")
            ranking.to_frame().to_csv(folder / "heads-causal.csv", index=False)
            save_html(plot_head_maps(scores, ranking), folder / "head_maps.html")
            typer.echo(
                f"\n{name}: the causal ranking's top 10 ({ranking.meta['n_verified']} "
                "heads verified exactly)"
            )
            typer.echo(table(ranking.top(10).to_frame()))
        save_html(plot_head_scores(scores, chosen), folder / "head_scores.html")
        save_html(heatmap(loaded, positives[0]), folder / "heatmap.html")
        typer.echo(
            f"\n{name}: {len(positives)} positive samples, model NAS {scores.model:.3f}, "
            f"{len(chosen)} heads (k={k}, consistency={consistency}) -> {folder}"
        )
        if len(chosen) < top_n:
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
