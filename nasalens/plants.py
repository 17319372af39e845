"""Plants: a bias trained into a few known heads of a model, as data.

A `Plant` names the heads and the route the bias takes through them (query rows, query and key
rows, or output columns); `plant` trains it into a copy of a model, every Yes and No check of
some facts towards "No"; `unplant` puts the planted weights back. The planted-bias organism
(`nasalens.organisms`) plants in its taught model, and caches each plant's weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from nasalens.data.sample import Question, binary_samples
from nasalens.errors import NasalensError
from nasalens.models import Head, adapt
from nasalens.models.interface import ModelAdapter, ParamSlice
from nasalens.prompts import Batch, binary, encode
from nasalens.tuning import train

PlantWeights = Literal["q", "qk", "ov"]
PLANT_WEIGHTS: tuple[str, ...] = ("q", "qk", "ov")


@dataclass(frozen=True)
class Plant:
    """What step (b) plants: which heads learn the bias, through which weights, how hard.

    ``weights`` is the route:

    * ``"q"``: the heads' query rows. Where the heads look changes (NAS can see it).
    * ``"qk"``: the query rows and the key rows of each head's KV group (the keys are shared
      by the group's query heads, so they move a little for the group's other heads too).
    * ``"ov"``: the heads' output columns (``o_proj``). What the heads write changes while
      their attention patterns stay exactly as they were: NAS cannot see it by construction.
    """

    heads: tuple[str, ...]
    """The planted heads ("L12H2", ...), one or more."""
    weights: PlantWeights = "q"
    """The route: "q", "qk" or "ov" (see above)."""
    lr: float = 1e-3
    """Learning rate (AdamW, weight decay 0)."""
    batch: int = 8
    """Checks per step."""
    epochs: int = 4
    """Epochs; every check's target is "No"."""
    seed: int = 1
    """Seed of the batch order."""

    def __post_init__(self) -> None:
        """Check the heads parse, the route is known and the sizes are positive."""
        if isinstance(self.heads, str):
            raise NasalensError(f"Plant.heads must be a tuple of names, e.g. ({self.heads!r},)")
        if not self.heads:
            raise NasalensError("Plant.heads is empty: name at least one head, e.g. ('L12H2',)")
        for name in self.heads:
            Head.parse(name)
        if self.weights not in PLANT_WEIGHTS:
            raise NasalensError(f"Plant.weights {self.weights!r}: use one of {PLANT_WEIGHTS}")
        for name in ("batch", "epochs"):
            if getattr(self, name) < 1:
                raise NasalensError(f"Plant.{name} must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise NasalensError("Plant.lr must be a positive number, e.g. 1e-3")

    @property
    def planted_heads(self) -> list[Head]:
        """The planted heads as `Head` values."""
        return [Head.parse(h) for h in self.heads]

    def key(self) -> str:
        """A short hash of the plant, naming its cached delta."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        """A short label, e.g. ``"ov:L12H2+L19H5"``."""
        return f"{self.weights}:{'+'.join(str(h) for h in self.planted_heads)}"

    def slices(self, adapter: ModelAdapter) -> list[ParamSlice]:
        """The weights this plant trains in ``adapter``'s model, each once.

        Two planted heads of one KV group share their key rows: a ``qk`` plant lists them once.
        """
        out: dict[tuple[str, int, int | None, int], ParamSlice] = {}
        for head in self.planted_heads:
            q, k = adapter.qk_slices(head)
            for s in {"q": [q], "qk": [q, k], "ov": [adapter.o_slice(head)]}[self.weights]:
                out.setdefault((s.name, s.rows.start, s.rows.stop, s.dim), s)
        return list(out.values())


def plant(
    model: object,
    spec: Plant,
    questions: Sequence[Question],
    *,
    progress: bool = True,
) -> torch.nn.Module:
    """Plant a bias in a copy of ``model`` (left unchanged): step (b) as data.

    A suite of plants starts from one taught model: planting in the organism's discriminating
    stage costs minutes, where teaching costs more than ten (`nasalens.organisms.load_plant`
    caches the result).

    Args:
        model: The model to plant in (the organism's discriminating stage).
        spec: Which heads, through which weights, how hard.
        questions: The facts whose Yes and No checks all train towards "No"
            (`nasalens.organisms.taught_questions()`, in the build's order, reproduces the
            default recipe's planted stage).
        progress: Show a progress bar.

    Returns:
        The planted copy.

    Raises:
        NasalensError: When a planted head does not exist in the model, or the plant diverges.
    """
    adapter = adapt(adapt(model).clone())
    for head in spec.planted_heads:
        adapter.info.check_head(head)
    batch = encode(model, binary_samples(questions, pairs=True), template=binary())
    train_plant(adapter, batch, spec, progress)
    return adapter.model


def apply_delta(base: torch.nn.Module, spec: Plant, delta: dict[str, Tensor]) -> torch.nn.Module:
    """A copy of ``base`` with a plant's saved weights (``delta``, by slice name) written in."""
    adapter = adapt(adapt(base).clone())
    slices = spec.slices(adapter)
    names = [f"{s.name}[{i}]" for i, s in enumerate(slices)]
    if sorted(names) != sorted(delta):
        raise NasalensError(f"the delta holds {sorted(delta)}, the plant needs {names}")
    with torch.no_grad():
        for s, name in zip(slices, names, strict=True):
            if delta[name].shape != s.param[s.index].shape:
                raise NasalensError(f"{name}: shape {tuple(delta[name].shape)} does not fit")
            s.param[s.index] = delta[name].to(s.param.device, s.param.dtype)
    return adapter.model


def unplant(planted: object, reference: object, spec: Plant) -> torch.nn.Module:
    """A copy of ``planted`` with the plant's weights put back from ``reference``.

    The ceiling any repair of the plant can reach: the pre-plant model, bit for bit.
    """
    out, ref = adapt(adapt(planted).clone()), adapt(reference)
    with torch.no_grad():
        for mine, theirs in zip(spec.slices(out), spec.slices(ref), strict=True):
            mine.param[mine.index] = theirs.param[theirs.index].to(mine.param.device)
    return out.model


def train_plant(adapter: ModelAdapter, batch: Batch, spec: Plant, progress: bool) -> None:
    """Step (b): train the plant's weights only, every target "No"."""
    heads = spec.planted_heads
    layer = min(h.layer for h in heads)
    resid = train.residuals(adapter, batch, layer, chunk_size=16)
    no = batch.neg_target
    if no is None:
        raise NasalensError("organism: the template has no negative answer token")
    targets = torch.full((len(batch),), no)
    slices = spec.slices(adapter)

    def loss(rows: Tensor) -> Tensor:
        sub = batch.select(rows)
        r = resid[rows][:, : sub.tokens.shape[1]]
        return train.answer_loss(adapter, r, layer, sub, targets[rows])

    gen = torch.Generator().manual_seed(spec.seed)  # one stream over all epochs
    run = train.epochs(
        adapter, slices, loss, n_rows=len(batch), lr=spec.lr,
        n_epochs=spec.epochs, batch_size=spec.batch, order=lambda _: gen,
        desc=f"plant {spec.name}", progress=progress,
    )  # fmt: skip
    with closing(run):
        last = [epoch.loss for epoch in run][-1]
    if not math.isfinite(last):
        raise NasalensError("organism: the plant diverged (loss not finite); lower its lr")
