"""The organism's recipe and build: teach the model to decide (a), then plant a bias (b).

`build` runs both steps from any model (the embedded one, the tiny one in tests) and measures
each stage on the checks and on held-out facts; `questions_by_id` maps a build's fact ids back
to the built-in facts, in the order the build used them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field

import torch
from torch import Tensor

from nasalens.data import builtin_questions
from nasalens.data.answers import matches
from nasalens.data.sample import Question, Sample, binary_samples, subset
from nasalens.errors import NasalensError
from nasalens.generation import require_known, short_answers
from nasalens.metrics import evaluate
from nasalens.models import Head, adapt
from nasalens.models.interface import ModelAdapter
from nasalens.plants import PLANT_WEIGHTS, Plant, PlantWeights, train_plant
from nasalens.prompts import Batch, binary, encode
from nasalens.tuning import train

logger = logging.getLogger(__name__)


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
