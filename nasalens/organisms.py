"""Model organisms: the embedded model taught to decide, then biased in known heads.

The planted-bias organism is ground truth for the toolkit. Step (a) fine-tunes the whole model
on balanced yes/no checks of the built-in probe facts it knows, so that its Yes/No decision
carries signal. Step (b) trains only a few chosen heads towards "No" on every check, planting a
negative bias whose heads are known: a `Plant` says which heads and through which of their
weights (query rows, query and key rows, or output columns), so a suite of plants can start
from one taught model (`plant`). The taught facts are split (seeded)
into NASA's share (its probing set) and the *checks*, facts the organism discriminates but
NASA never sees: the set on which a repair must restore recall and keep AUROC. Both stages are
built deterministically and cached as Hugging Face folders (safetensors) under
``nasalens.models.cache_dir() / "organisms"``; the same recipe runs on the tiny test model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from nasalens.artifacts import (
    MANIFEST,
    check_manifest,
    read_json,
    read_tensors,
    write_json,
    write_manifest,
    write_tensors,
)
from nasalens.data import builtin_questions
from nasalens.data.answers import matches
from nasalens.data.sample import Question, Sample, binary_samples, subset
from nasalens.errors import NasalensError
from nasalens.generation import require_known, short_answers
from nasalens.metrics import evaluate
from nasalens.models import Head, adapt, cache_dir, load_model
from nasalens.models.interface import ModelAdapter
from nasalens.plants import PLANT_WEIGHTS, Plant, PlantWeights, apply_delta, plant, train_plant
from nasalens.prompts import Batch, binary, encode
from nasalens.tuning import train
from nasalens.tuning.export import export

logger = logging.getLogger(__name__)

Stage = Literal["discriminating", "planted"]


@dataclass(frozen=True)
class OrganismRecipe:
    """How the planted-bias organism is made (defaults: the issue's prototype, 135M model)."""

    n_teach: int | None = None
    """Built-in probe questions taught in step (a), each as a Yes and a No check (None: all
    that qualify)."""
    known_only: bool = True
    """Teach only facts the model knows (its greedy Prompt II answer matches gold), and measure
    held-out discrimination on the built-in eval facts it knows. False uses every question
    (for random test models, which know nothing)."""
    nasa_share: float = 0.5
    """Share of the taught facts given to NASA (its probing set); the rest are the checks."""
    teach_lr: float = 5e-5
    """Learning rate of the full fine-tuning in step (a)."""
    teach_batch: int = 8
    """Checks per step in step (a)."""
    teach_epochs: int = 5
    """Epochs of step (a)."""
    planted: tuple[str, ...] = ("L12H2", "L19H5", "L24H1")
    """The heads whose query rows learn the bias in step (b)."""
    plant_lr: float = 1e-3
    """Learning rate of step (b) (AdamW, weight decay 0)."""
    plant_batch: int = 8
    """Checks per step in step (b)."""
    plant_epochs: int = 4
    """Epochs of step (b); every check's target is "No"."""
    seed: int = 0
    """Seed of the taught subset and of the batch order."""
    plant_weights: PlantWeights = "q"
    """Which weights of the planted heads learn the bias (`Plant.weights`)."""

    def __post_init__(self) -> None:
        """Check that the planted heads parse and the sizes are positive."""
        for name in self.planted:
            Head.parse(name)
        for name in ("n_teach", "teach_batch", "teach_epochs", "plant_batch", "plant_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise NasalensError(f"OrganismRecipe.{name} must be at least 1")
        if not 0 < self.nasa_share < 1:
            raise NasalensError("OrganismRecipe.nasa_share must be in (0, 1), e.g. 0.5")
        if self.plant_weights not in PLANT_WEIGHTS:
            raise NasalensError(
                f"OrganismRecipe.plant_weights {self.plant_weights!r}: use one of {PLANT_WEIGHTS}"
            )
        self.plant  # noqa: B018  (builds the Plant, which checks its fields)

    @property
    def plant(self) -> Plant:
        """Step (b) as a `Plant`."""
        return Plant(
            self.planted, self.plant_weights, self.plant_lr, self.plant_batch,
            self.plant_epochs, self.seed + 1,
        )  # fmt: skip

    @property
    def planted_heads(self) -> list[Head]:
        """The planted heads as `Head` values."""
        return self.plant.planted_heads

    def key(self) -> str:
        """A short hash of the recipe, naming its cache folder.

        ``plant_weights`` enters only when it is not "q", so that recipes from before it
        existed keep their cache.
        """
        fields = dataclasses.asdict(self)
        if fields["plant_weights"] == "q":
            del fields["plant_weights"]
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, eq=False)
class Organism:
    """Both stages of a built organism, its fact split, and what was measured while building.

    Attributes:
        discriminating: The model after step (a).
        planted: The model after step (b): biased in ``heads``.
        heads: The planted heads.
        nasa_questions: Taught facts for NASA's probing set.
        check_questions: Taught facts NASA never sees (evaluate repairs on their checks).
        report: Accuracy, precision, recall, AUROC and share of Yes of each stage on the
            checks and on held-out facts, and seconds per step.
        key: Names the taught model in the cache of plants made on it (`load_plant`).
    """

    discriminating: torch.nn.Module
    planted: torch.nn.Module
    heads: tuple[Head, ...]
    nasa_questions: tuple[Question, ...] = ()
    check_questions: tuple[Question, ...] = ()
    report: dict = field(default_factory=dict)
    key: str = ""


def _known(model: object, questions: list[Question], progress: bool) -> list[Question]:
    positives = [q.positive() for q in questions]
    answers = short_answers(model, positives, progress=progress)
    said = dict(zip(answers["id"], answers["answer"], strict=True))
    known = [q for q in questions if matches(str(said[f"{q.id}/yes"]), q.answers)]
    require_known(model, positives, list(answers["answer"]), len(known), what="organism")
    return known


def teach_questions(
    model: object, recipe: OrganismRecipe, *, progress: bool = True
) -> tuple[list[Question], list[Question]]:
    """The probe facts taught in step (a) and the held-out (eval) facts to measure it on."""
    taught, held_out = builtin_questions("probe"), builtin_questions("eval")
    if recipe.known_only:
        taught, held_out = _known(model, taught, progress), _known(model, held_out, progress)
    n = recipe.n_teach
    if n is not None and n > len(taught):
        raise NasalensError(
            f"organism: n_teach={n} but only {len(taught)} probe facts qualify; lower n_teach"
        )
    return subset(taught, n, seed=recipe.seed), held_out


def split(taught: list[Question], recipe: OrganismRecipe) -> tuple[list[Question], list[Question]]:
    """Split the taught facts (seeded) into NASA's share and the checks."""
    n_nasa = max(1, round(recipe.nasa_share * len(taught)))
    nasa = subset(taught, n_nasa, seed=recipe.seed + 1)
    ids = {q.id for q in nasa}
    return nasa, [q for q in taught if q.id not in ids]


def build(
    model: object, recipe: OrganismRecipe | None = None, *, progress: bool = True
) -> Organism:
    """Build both stages of the organism from ``model`` (which is left unchanged).

    Args:
        model: The model to start from (the embedded model; the tiny one in tests).
        recipe: How; default `OrganismRecipe()`.
        progress: Show progress bars.

    Returns:
        The two stages and the build report.

    Raises:
        NasalensError: When a planted head does not exist in the model.
    """
    recipe = recipe or OrganismRecipe()
    base = adapt(model)
    heads = tuple(base.info.check_head(h) for h in recipe.planted_heads)
    taught, held_out = teach_questions(model, recipe, progress=progress)
    nasa_part, check_part = split(taught, recipe)
    sets = {
        "checks": binary_samples(check_part, pairs=True),
        "held_out": binary_samples(held_out, pairs=True),
    }
    batch = encode(model, binary_samples(taught, pairs=True), template=binary())
    report: dict = {
        "recipe": dataclasses.asdict(recipe),
        "n_taught": len(taught),
        "n_nasa": len(nasa_part),
        "n_checks": len(check_part),
        "n_held_out": len(held_out),
        "base": measure(model, sets),
    }
    start = time.perf_counter()
    discriminating = adapt(base.clone())
    _teach(discriminating, batch, recipe, progress)
    report["teach_seconds"] = round(time.perf_counter() - start, 1)
    report["discriminating"] = measure(discriminating.model, sets)
    start = time.perf_counter()
    planted = adapt(discriminating.clone())
    train_plant(planted, batch, recipe.plant, progress)
    report["plant_seconds"] = round(time.perf_counter() - start, 1)
    report["planted"] = measure(planted.model, sets)
    logger.info("organism built: %s", report)
    return Organism(
        discriminating.model,
        planted.model,
        heads,
        tuple(nasa_part),
        tuple(check_part),
        report,
        recipe.key(),
    )


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


def questions_by_id(ids: Iterable[str]) -> list[Question]:
    """The built-in probe facts with these ids, in the order an organism's build used them.

    Args:
        ids: Ids of built-in probe facts (`Question.id`), in any order.

    Returns:
        The facts, in the built-in probe set's order, each once.

    Raises:
        NasalensError: When an id names no built-in fact (an organism made with another nasalens).
    """
    wanted = set(ids)
    found = [q for q in builtin_questions("probe") if q.id in wanted]
    if len(found) != len(wanted):
        raise NasalensError(
            f"the organism names {len(wanted) - len(found)} facts the built-in probe set lacks "
            "(made with another nasalens?)"
        )
    return found


def check_questions(recipe: OrganismRecipe | None = None) -> list[Question]:
    """The taught facts NASA never sees (from the cached build)."""
    return questions_by_id(build_report(recipe)["check_questions"])


def checks(recipe: OrganismRecipe | None = None) -> list[Sample]:
    """The Yes and No checks of the taught facts NASA never sees (from the cached build)."""
    return binary_samples(check_questions(recipe), pairs=True)


def measure(model: object, sets: dict[str, list[Sample]]) -> dict:
    """Accuracy, precision, recall, AUROC and share of Yes of ``model`` on each named set."""
    keys = ("accuracy", "precision", "recall", "auroc", "share_yes")
    out = {}
    for name, samples in sets.items():
        result = evaluate(model, samples, progress=False)
        out[name] = {k: result.summary[k] for k in keys}
    return out


def _teach(adapter: ModelAdapter, batch: Batch, recipe: OrganismRecipe, progress: bool) -> None:
    """Step (a): full fine-tuning on the gold answer token of every check."""
    targets = torch.tensor([batch.pos_target if g else batch.neg_target for g in batch.gold])

    def loss(rows: Tensor) -> Tensor:
        sub = batch.select(rows)
        final = adapter.final_resid(sub.tokens, sub.attention_mask, sub.answer_pos)
        return train.token_loss(adapter.unembed(final), targets[rows])

    gen = torch.Generator().manual_seed(recipe.seed)  # one stream over all epochs
    run = train.epochs(
        adapter, None, loss, n_rows=len(batch), lr=recipe.teach_lr,
        n_epochs=recipe.teach_epochs, batch_size=recipe.teach_batch, order=lambda _: gen,
        desc="teach", progress=progress,
    )  # fmt: skip
    with closing(run):
        for _ in run:
            pass


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
