"""Commands of the tuning group: `tune` (a resumable NASA run), `export`, `organism`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from nasalens.artifacts import write_csv
from nasalens.cli.app import ModelOpt, app, load, out_dir, table
from nasalens.errors import NasalensError, quote

#: Model names the tuning commands understand beside `load_model`'s.
ORGANISMS = {"organism": "planted", "organism-discriminating": "discriminating"}


def resolve(spec: str | None) -> tuple[object, str | None]:
    """Load a model by spec; "organism" and "organism-discriminating" name the organism stages.

    Returns:
        The model and the spec a run folder should store (a folder path for organisms).
    """
    if spec in ORGANISMS:
        from nasalens import organisms

        stage = ORGANISMS[spec]
        model = organisms.organism(stage)  # type: ignore[arg-type]
        return model, str(organisms.organism_dir(stage=stage))  # type: ignore[arg-type]
    if spec is not None and Path(spec).is_dir():
        spec = str(Path(spec).resolve())
    return load(spec), spec


def load_any(spec: str | None) -> tuple[object | None, object]:
    """`nasalens.tuning.runs.load_any`, with the organism names and the load time printed.

    Returns:
        (baseline, model): baseline is the run's base model for a run folder, else None.
    """
    from nasalens.tuning.runs import is_run
    from nasalens.tuning.runs import load_any as load_run_or_model

    if not is_run(spec):
        return None, resolve(spec)[0]
    start = time.perf_counter()
    base, tuned = load_run_or_model(spec)
    typer.echo(f"loaded run {spec} (base and tuned) in {time.perf_counter() - start:.1f} s")
    return base, tuned


def compare_run(
    baseline: object, tuned: object, name: str, samples: list, out: Path | None
) -> pd.DataFrame:
    """Baseline vs tuned on one set: metrics, intervals, model NAS and the verdict in words."""
    from nasalens.tuning.evaluation import compare

    cmp = compare({"baseline": baseline, "tuned": tuned}, {name: samples})  # type: ignore[dict-item]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for (set_name, model), result in cmp.results.items():
            write_csv(out / f"{set_name}-{model}.csv", result.per_sample)
    frame = cmp.table
    for _, row in frame.iterrows():
        if row["verdict"] == "shifted, not debiased":
            typer.echo(
                f"{name}: recall rose ({row['recall']:.3f}) but AUROC did not "
                f"({row['auroc']:.3f}): the model was shifted, not debiased"
            )
    return frame.rename(columns={"set": "name"})


def _organism_questions() -> list:
    """The organism's probing questions: NASA's share of the taught facts.

    The checks' facts stay out, so that evaluating on organism-checks measures facts NASA never
    saw. What is known is decided by the organism's own answers, as the paper does.
    """
    from nasalens import organisms

    questions = organisms.nasa_questions()
    typer.echo(f"organism: probing set from NASA's share of the taught facts ({len(questions)})")
    return questions


def _config(
    config_file: Path | None, overrides: dict[str, object], stored: object, preset: str | None
) -> object:
    """The run's settings: the preset, then TOML, then flags; a resumed run keeps its own."""
    from nasalens.tuning import NasaConfig
    from nasalens.tuning.config import DEFAULT_PRESET

    changes = {k: v for k, v in overrides.items() if v is not None}
    if config_file is None and not changes and preset is None and stored is not None:
        return stored
    config = NasaConfig.preset(preset or DEFAULT_PRESET)
    if config_file:
        config = NasaConfig.from_toml(config_file, base=config)
    return config.replace(**changes) if changes else config


@app.command()
def tune(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (resumed if it exists).")],
    model: ModelOpt = None,
    probe: Annotated[
        str, typer.Option(help="Short-answer questions: 'builtin-probe' or a questions JSONL.")
    ] = "builtin-probe",
    heads: Annotated[
        Path | None,
        typer.Option(help="Heads JSON (HeadSet or ['L17H7', ...]); default: chosen by --select."),
    ] = None,
    select: Annotated[
        str | None,
        typer.Option(help="How heads are chosen: nas (the paper) or causal (ablate each head)."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Named settings (NasaConfig.preset): causal (the default: heads ranked by "
            "ablation, the paper's rules off; docs/results.md, the organism suite) or paper "
            "(Algorithm 1 as printed)."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file of NasaConfig fields ([nasa]).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per step.")] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Most epochs per head.")] = None,
    mode: Annotated[str | None, typer.Option(help="qk, q or random.")] = None,
    top_n: Annotated[
        int | None,
        typer.Option("--top-n", "--n-heads", help="Heads tuned: the first N of the ranking."),
    ] = None,
    k: Annotated[int | None, typer.Option(help="Per-sample top-k of head selection.")] = None,
    region: Annotated[str | None, typer.Option(help="after_instruction or answer.")] = None,
    model_nas: Annotated[str | None, typer.Option(help="all or selected.")] = None,
    halting: Annotated[str | None, typer.Option(help="nas, share_yes or never.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Run NASA (Algorithm 1) in a run folder; re-run the same command to resume after a kill."""
    from nasalens import data
    from nasalens.heads import HeadSet
    from nasalens.tuning import NasaConfig, probe_set
    from nasalens.tuning.runs import Run, is_run, tune_run
    from nasalens.tuning.selection import select_heads

    out_dir(out)
    run = Run.open(out) if is_run(out) else None
    settings = _config(
        config,
        {
            "lr": lr,
            "batch_size": batch_size,
            "max_epochs": max_epochs,
            "mode": mode,
            "select": select,
            "top_n": top_n,
            "k": k,
            "region": region,
            "model_nas": model_nas,
            "halting": halting,
            "seed": seed,
        },
        run.config if run is not None else None,
        preset,
    )
    assert isinstance(settings, NasaConfig)
    if run is not None:
        run.check_settings(settings)  # before the model loads
        typer.echo(f"resuming {run}")
        loaded, _ = resolve(run.model_spec)
        result = tune_run(out, loaded, run.probe, run.heads, settings, progress=progress)
    else:
        questions = data.load_questions_jsonl(probe) if probe != "builtin-probe" else None
        line_up = HeadSet.load(heads) if heads is not None else None
        loaded, spec = resolve(model)
        if questions is None:
            questions = (
                _organism_questions() if model in ORGANISMS else data.builtin_questions("probe")
            )
        found = probe_set(
            loaded, questions, val_fraction=settings.val_fraction, seed=settings.seed,
            progress=progress,
        )  # fmt: skip
        typer.echo(f"probing set: {found.counts()}")
        if line_up is None:
            start = time.perf_counter()
            line_up = select_heads(loaded, found, settings, progress=progress)
            how = line_up.method + (
                f", {line_up.meta['n_verified']} verified exactly"
                if "n_verified" in line_up.meta
                else ""
            )
            typer.echo(f"heads ranked ({how}) in {time.perf_counter() - start:.1f} s")
            out.mkdir(parents=True, exist_ok=True)
            write_csv(out / f"heads-{settings.select}.csv", line_up.to_frame())
        typer.echo(f"heads: {line_up.top(settings.top_n)}")
        result = tune_run(out, loaded, found, line_up, settings, model_spec=spec, progress=progress)
    frame = result.to_frame()
    if not frame.empty:
        cols = ["name", "decision", "epochs", "start_head_nas", "end_head_nas", "end_share_yes"]
        typer.echo(table(frame[cols]))
    typer.echo(f"tau: {result.tau:.3f}; kept: {[str(h) for h in result.kept]}; run folder: {out}")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="A finished NASA run folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (new or empty).")],
) -> None:
    """Write a run's tuned model as a plain Hugging Face checkpoint."""
    from nasalens.tuning.export import check_out
    from nasalens.tuning.export import export as export_model
    from nasalens.tuning.runs import Run

    check_out(out)
    finished = Run.open(run)  # refuses a folder that is not a run, naming what is missing
    finished.check_finished()
    base, _ = resolve(finished.model_spec)
    export_model(finished.tuned_model(base), out)
    typer.echo(f"wrote {out} (AutoModelForCausalLM.from_pretrained({str(out)!r}) loads it)")


@app.command()
def organism(
    stage: Annotated[str, typer.Option(help="planted or discriminating.")] = "planted",
) -> None:
    """Build (once, several CPU minutes) and describe the planted-bias model organism."""
    from nasalens import organisms

    if stage not in ORGANISMS.values():
        raise NasalensError(f"--stage {quote(stage)}: use 'planted' or 'discriminating'")

    organisms.organism(stage)  # type: ignore[arg-type]
    report = organisms.build_report()
    measured = report["report"]
    frame = pd.DataFrame(
        [
            {"stage": stage, "set": name, **figures}
            for stage in ("base", "discriminating", "planted")
            for name, figures in measured[stage].items()
        ]
    )
    typer.echo(f"planted heads: {report['heads']}")
    typer.echo(table(frame))
    typer.echo(f"cached in {organisms.organism_dir(stage=stage)}")  # type: ignore[arg-type]
