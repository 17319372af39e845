"""The organism cache: both stages as Hugging Face folders, and plants as small deltas.

Built once (`organism`), loaded in seconds after, checked against a manifest on every load;
a plant on a taught model is cached as its planted weights only (`load_plant`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Literal

import torch

from nasalens.artifacts import (
    MANIFEST,
    check_manifest,
    read_json,
    read_tensors,
    write_json,
    write_manifest,
    write_tensors,
)
from nasalens.data.sample import Question, Sample, binary_samples
from nasalens.errors import NasalensError
from nasalens.models import Head, adapt, cache_dir, load_model
from nasalens.organisms.teaching import Organism, OrganismRecipe, build, questions_by_id
from nasalens.plants import Plant, apply_delta, plant
from nasalens.tuning.export import export

logger = logging.getLogger(__name__)

Stage = Literal["discriminating", "planted"]


def organism_dir(recipe: OrganismRecipe | None = None, stage: Stage = "planted") -> Path:
    """The cache folder of one stage of the embedded model's organism."""
    recipe = recipe or OrganismRecipe()
    return cache_dir() / "organisms" / f"{stage}-{recipe.key()}"


def is_built(recipe: OrganismRecipe | None = None) -> bool:
    """Whether both stages of the organism are in the cache (loading them takes seconds)."""
    return all(
        (organism_dir(recipe, stage) / "organism.json").is_file()
        for stage in ("discriminating", "planted")
    )


def organism(
    stage: Stage = "planted",
    recipe: OrganismRecipe | None = None,
    *,
    progress: bool = True,
) -> torch.nn.Module:
    """Load a stage of the embedded model's organism, building and caching both if missing.

    The first call takes about 18 CPU minutes on 2 cores (10 teaching, 3 planting, the rest
    measuring); later calls load the cached
    Hugging Face folder.

    Args:
        stage: "planted" (biased in the planted heads) or "discriminating" (before the plant).
        recipe: How; default `OrganismRecipe()`.
        progress: Show progress bars while building.

    Returns:
        The model, as `load_model` returns it.

    Raises:
        NasalensError: When the stage is unknown.

    Example:
        >>> biased = nasalens.organisms.organism()  # doctest: +SKIP
    """
    if stage not in ("discriminating", "planted"):
        raise NasalensError(f"organism stage {stage!r}: use 'planted' or 'discriminating'")
    recipe = recipe or OrganismRecipe()
    folder = organism_dir(recipe, stage)
    if not (folder / "organism.json").is_file():
        save(build(load_model(), recipe, progress=progress), recipe)
    return _load_cached(folder)


def load(recipe: OrganismRecipe | None = None, *, progress: bool = True) -> Organism:
    """Both stages of the built organism, its fact split and build report (built when missing).

    The package ships a smaller variant that loads in seconds: `nasalens.shipped_organism`.
    """
    planted = organism("planted", recipe, progress=progress)
    report = build_report(recipe)
    return Organism(
        organism("discriminating", recipe, progress=progress),
        planted,
        tuple(Head.parse(h) for h in report["heads"]),
        tuple(nasa_questions(recipe)),
        tuple(check_questions(recipe)),
        report["report"],
        (recipe or OrganismRecipe()).key(),
    )


def _load_cached(folder: Path) -> torch.nn.Module:
    """Load a stage from its cache folder, checked against the manifest written with it.

    Raises:
        NasalensError: When a file is missing, truncated, changed or does not load; the
            message names the folder to delete (the next call rebuilds it).
    """
    fix = f"delete {folder} and call organism() again to rebuild it (about 18 CPU minutes)"
    has_manifest = (folder / MANIFEST).is_file()
    problems = check_manifest(folder) if has_manifest else []
    if problems:
        logger.warning("the organism cache %s is damaged: %s", folder, "; ".join(problems))
        raise NasalensError(f"the organism cache is damaged ({'; '.join(problems)}); {fix}")
    try:
        model = load_model(str(folder))
    except NasalensError as err:
        logger.warning("the organism cache %s does not load: %s", folder, err)
        raise NasalensError(f"the organism cache does not load ({err}); {fix}") from err
    if not has_manifest:  # built before manifests existed: record it as it loads now
        write_manifest(folder)
    return model


def save(built: Organism, recipe: OrganismRecipe) -> None:
    """Write both stages to their cache folders (each a Hugging Face folder + organism.json)."""
    for stage, model in (("discriminating", built.discriminating), ("planted", built.planted)):
        folder = organism_dir(recipe, stage)  # type: ignore[arg-type]
        if (folder / "organism.json").is_file():
            continue
        if folder.exists():  # an earlier build died between export and marker
            shutil.rmtree(folder)
        export(model, folder)
        write_json(
            folder / "organism.json",
            {
                "stage": stage,
                "heads": [str(h) for h in built.heads],
                "nasa_questions": [q.id for q in built.nasa_questions],
                "check_questions": [q.id for q in built.check_questions],
                "report": built.report,
            },
        )
        write_manifest(folder)  # sizes and hashes, checked on every load


def build_report(recipe: OrganismRecipe | None = None) -> dict:
    """The build record of the cached organism: heads, fact split and measurements.

    Raises:
        NasalensError: When the organism has not been built yet.
    """
    path = organism_dir(recipe, "planted") / "organism.json"
    if not path.is_file():
        raise NasalensError("the organism is not built yet; call nasalens.organisms.organism()")
    payload = read_json(path)
    if not isinstance(payload, dict):
        raise NasalensError(f"{path}: malformed; delete its folder to rebuild the organism")
    return payload


def nasa_questions(recipe: OrganismRecipe | None = None) -> list[Question]:
    """The taught facts reserved for NASA's probing set (from the cached build)."""
    return questions_by_id(build_report(recipe)["nasa_questions"])


def taught_questions(recipe: OrganismRecipe | None = None) -> list[Question]:
    """Every fact taught in step (a), in the build's order (NASA's share and the checks)."""
    report = build_report(recipe)
    return questions_by_id([*report["nasa_questions"], *report["check_questions"]])


def check_questions(recipe: OrganismRecipe | None = None) -> list[Question]:
    """The taught facts NASA never sees (from the cached build)."""
    return questions_by_id(build_report(recipe)["check_questions"])


def checks(recipe: OrganismRecipe | None = None) -> list[Sample]:
    """The Yes and No checks of the taught facts NASA never sees (from the cached build)."""
    return binary_samples(check_questions(recipe), pairs=True)


def plant_file(spec: Plant, recipe: OrganismRecipe | None = None, *, key: str = "") -> Path:
    """The cached delta of a plant on a taught model: only the planted weights.

    The taught model is named by ``key`` (an `Organism.key`), else by ``recipe``'s key.
    """
    key = key or (recipe or OrganismRecipe()).key()
    return cache_dir() / "organisms" / "plants" / f"{key}-{spec.key()}.safetensors"


def load_plant(
    spec: Plant,
    recipe: OrganismRecipe | None = None,
    *,
    source: Organism | None = None,
    progress: bool = True,
) -> torch.nn.Module:
    """A taught model with ``spec`` planted, from a cached delta when there is one.

    The delta holds only the planted weights (a head's query rows or output columns: a few
    hundred kB), so a suite of plants shares one taught model on disk. A missing delta is
    planted (minutes) and cached; a damaged one is reported, planted again and replaced.

    Args:
        spec: The plant.
        recipe: The organism whose discriminating stage is planted in (default recipe; built
            when missing).
        source: Plant in this organism's discriminating stage instead, on its taught facts
            (e.g. `nasalens.shipped_organism()`); ``recipe`` is then not used.
        progress: Show progress bars while building.

    Returns:
        The planted model.

    Raises:
        NasalensError: When ``source`` has no `Organism.key` to name its plants by.
    """
    recipe = recipe or OrganismRecipe()
    if source is not None:
        if not source.key:
            raise NasalensError("load_plant: the source organism has no key to cache plants by")
        base, path = source.discriminating, plant_file(spec, key=source.key)
        ids = [q.id for q in (*source.nasa_questions, *source.check_questions)]
        questions = questions_by_id(ids)
    else:
        base, path = organism("discriminating", recipe, progress=progress), plant_file(spec, recipe)
        questions = None  # read from the build only when planting
    if path.is_file():
        try:
            return apply_delta(base, spec, read_tensors(path))
        except NasalensError as err:
            logger.warning("the plant %s is damaged (%s); planting it again", path, err)
    if source is None and spec == recipe.plant:  # its planted stage holds the recipe's plant
        model = organism("planted", recipe, progress=progress)
    else:
        taught = taught_questions(recipe) if questions is None else questions
        model = plant(base, spec, taught, progress=progress)
    adapter = adapt(model)
    delta = {
        f"{s.name}[{i}]": s.param.detach()[s.index] for i, s in enumerate(spec.slices(adapter))
    }
    write_tensors(path, delta, {"plant": json.dumps(dataclasses.asdict(spec))})
    return model
