"""The shipped organism: the planted-bias organism in seconds, from a few MB inside the package.

Building the organism takes about 18 CPU minutes (`nasalens.organisms`). The package ships it
instead as a small delta over the embedded model, in one safetensors file:

- the taught model's change to every attention and MLP matrix, truncated to rank ``RANK`` (SVD;
  stored as two float16 factors), its change to the norms in full, and the embedding unchanged;
- the weights its plant trained, planted again on that compressed model so that the two fit.

`make_shipped` writes the file from the cached organism with nasalens's own code (`make
organism-file`); `shipped` loads it: both stages, the fact split and what was measured.
The compressed taught model is a different, slightly weaker organism than the cached one:
its figures are in the file (`Organism.report`) and in docs/results.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from nasalens.artifacts import (
    check_header,
    parse_json,
    read_metadata,
    read_tensors,
    write_tensors,
)
from nasalens.data import binary_samples
from nasalens.data.sample import Question
from nasalens.errors import NasalensError, shorten
from nasalens.models import EMBEDDED_NAME, Head, adapt, load_model
from nasalens.organisms import (
    Organism,
    OrganismRecipe,
    build_report,
    measure,
    organism,
    questions_by_id,
    taught_questions,
    teach_questions,
)
from nasalens.plants import Plant, apply_delta, plant

SHIPPED = Path(__file__).parent / "assets" / "organism.safetensors"
"""The organism shipped with the package."""
RANK = 8
"""Rank of the taught model's change kept per matrix (2.4 M numbers: 4.9 MB in float16)."""
FORMAT = "nasalens.shipped_organism"
VERSION = 1
REQUIRED = ("plant", "heads", "nasa_questions", "check_questions")
REBUILD = (
    "reinstall nasalens, or rebuild the file from a built organism: `make organism-file` "
    "(builds the organism first if needed, about 20 CPU minutes)"
)


def low_rank(taught: object, base: object, rank: int = RANK) -> dict[str, Tensor]:
    """The change from ``base`` to ``taught``, each matrix truncated to ``rank`` (SVD).

    Args:
        taught: The fine-tuned model.
        base: The model it was fine-tuned from (same architecture).
        rank: Singular values kept per matrix.

    Returns:
        Float32 tensors by Hugging Face weight name: ``NAME:a`` ``[rows, rank]`` and ``NAME:b``
        ``[rank, cols]`` with ``a @ b`` the truncated change of a matrix (the singular values
        split evenly between the two), ``NAME:full`` for a vector or a matrix of rank at most
        ``rank``. The embedding (and a tied unembedding) is left out.

    Raises:
        NasalensError: When the two models' weights differ in names or shapes, or rank < 1.
    """
    if rank < 1:
        raise NasalensError(f"low_rank: rank must be at least 1, not {rank}")
    mine, ref = adapt(taught).hf_parameters(), adapt(base).hf_parameters()
    if sorted(mine) != sorted(ref):
        raise NasalensError(
            "low_rank: the two models have different weights (not one architecture)"
        )
    out: dict[str, Tensor] = {}
    for name, param in mine.items():
        if "embed_tokens" in name or name == "lm_head.weight":
            continue
        if param.shape != ref[name].shape:
            raise NasalensError(f"low_rank: {name} is {tuple(param.shape)} in one model only")
        delta = param.detach().float().cpu() - ref[name].detach().float().cpu()
        if delta.ndim != 2 or rank >= min(delta.shape):
            out[f"{name}:full"] = delta
            continue
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        root = s[:rank].sqrt()
        out[f"{name}:a"] = (u[:, :rank] * root).contiguous()
        out[f"{name}:b"] = (root[:, None] * vh[:rank]).contiguous()
    return out


def deltas(factors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The change of each weight that `low_rank` factors describe, by weight name."""
    out: dict[str, Tensor] = {}
    for key, tensor in factors.items():
        name, _, part = key.rpartition(":")
        if part == "full":
            out[name] = tensor.float()
        elif part == "a":
            if f"{name}:b" not in factors:
                raise NasalensError(f"the delta holds {key} without {name}:b")
            out[name] = tensor.float() @ factors[f"{name}:b"].float()
        elif part != "b" or f"{name}:a" not in factors:
            raise NasalensError(f"the delta holds {key!r}, not NAME:a, NAME:b or NAME:full")
    return out


def add_low_rank(base: object, factors: Mapping[str, Tensor]) -> torch.nn.Module:
    """A copy of ``base`` with the changes of `low_rank` factors added to its weights.

    Raises:
        NasalensError: When a change names a weight ``base`` lacks or does not fit its shape.
    """
    adapter = adapt(adapt(base).clone())
    params = adapter.hf_parameters()
    with torch.no_grad():
        for name, delta in deltas(factors).items():
            if name not in params:
                raise NasalensError(f"the delta changes {name}, which this model does not have")
            param = params[name]
            if delta.shape != param.shape:
                raise NasalensError(
                    f"the delta changes {name} as {tuple(delta.shape)}, the model has "
                    f"{tuple(param.shape)} (another model?)"
                )
            param.add_(delta.to(param.device, param.dtype))
    return adapter.model


def compress(
    base: object,
    taught: object,
    spec: Plant,
    questions: list[Question],
    *,
    rank: int = RANK,
    progress: bool = True,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The shippable form of an organism: the taught change at ``rank`` and a plant on it.

    Args:
        base: The model the organism was taught from (the embedded model).
        taught: The organism's discriminating stage.
        spec: The plant to plant again on the compressed taught model.
        questions: The facts the plant trains on (`nasalens.organisms.taught_questions`).
        rank: Rank kept per matrix.
        progress: Show a progress bar while planting.

    Returns:
        The factors (float16, as shipped) and the planted weights by slice name (float32).
    """
    factors = {k: v.half() for k, v in low_rank(taught, base, rank).items()}
    planted = adapt(plant(add_low_rank(base, factors), spec, questions, progress=progress))
    rows = {f"{s.name}[{i}]": s.param.detach()[s.index] for i, s in enumerate(spec.slices(planted))}
    return factors, rows


def make_shipped(
    path: str | Path | None = None,
    recipe: OrganismRecipe | None = None,
    *,
    rank: int = RANK,
    progress: bool = True,
) -> Path:
    """Write the shipped organism file from the cached organism (built first when missing).

    Takes about 8 CPU minutes on 2 cores once the organism is cached (20 on one thread shared
    with another job): the SVDs, planting again on the compressed model, finding the held-out
    facts the embedded model knows, and measuring three models on the checks and those facts.

    Args:
        path: Where to write (default: the file inside the package, `SHIPPED`).
        recipe: Which organism (default recipe).
        rank: Rank kept per matrix.
        progress: Show progress bars.

    Returns:
        The path written.
    """
    path = SHIPPED if path is None else path
    recipe = recipe or OrganismRecipe()
    start = time.perf_counter()
    taught = organism("discriminating", recipe, progress=progress)
    base = load_model()
    factors, rows = compress(
        base, taught, recipe.plant, taught_questions(recipe), rank=rank, progress=progress
    )
    built = build_report(recipe)
    _, held_out = teach_questions(base, recipe, progress=progress)
    sets = {
        "checks": binary_samples(questions_by_id(built["check_questions"]), pairs=True),
        "held_out": binary_samples(held_out, pairs=True),
    }
    discriminating = add_low_rank(base, factors)
    report = {
        "base": measure(base, sets),
        "discriminating": measure(discriminating, sets),
        "planted": measure(apply_delta(discriminating, recipe.plant, rows), sets),
        "cached_organism": {k: built["report"][k] for k in ("discriminating", "planted")},
        "seconds": round(time.perf_counter() - start, 1),
    }
    description = {
        "base_model": EMBEDDED_NAME,
        "rank": rank,
        "recipe": dataclasses.asdict(recipe),
        "recipe_key": recipe.key(),
        "plant": dataclasses.asdict(recipe.plant),
        "heads": built["heads"],
        "nasa_questions": built["nasa_questions"],
        "check_questions": built["check_questions"],
        "held_out_questions": [q.id for q in held_out],
        "report": report,
    }
    return write_shipped(path, factors, rows, description)


def write_shipped(
    path: str | Path,
    factors: Mapping[str, Tensor],
    rows: Mapping[str, Tensor],
    description: Mapping[str, object],
) -> Path:
    """Write an organism file: `compress`'s two parts and a JSON description.

    ``description`` needs ``plant`` (the `Plant` as a dict), ``heads``, ``nasa_questions`` and
    ``check_questions`` (fact ids); anything else (measurements) is kept as given.
    """
    missing = [k for k in REQUIRED if k not in description]
    if missing:
        raise NasalensError(f"write_shipped: the description lacks {missing}")
    header = _finite({"format": FORMAT, "version": VERSION, **description})
    tensors = {f"taught/{k}": v for k, v in factors.items()}
    tensors |= {f"plant/{k}": v.float() for k, v in rows.items()}
    write_tensors(path, tensors, {"nasalens": json.dumps(header, allow_nan=False)})
    return Path(path)


def _finite(value: object) -> object:
    """``value`` with every NaN or infinite float as None (strict JSON: no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def shipped_header(path: str | Path | None = None) -> dict:
    """The shipped organism's description: recipe, plant, fact split and measurements.

    Raises:
        NasalensError: When the file is missing or damaged, or another format or version.
    """
    path = SHIPPED if path is None else path
    where = shorten(str(path))
    if not Path(path).is_file():
        raise NasalensError(f"the shipped organism {where} is missing; {REBUILD}")
    try:
        header = parse_json(read_metadata(path).get("nasalens", ""), where)
    except NasalensError as err:
        raise NasalensError(f"the shipped organism is damaged ({err}); {REBUILD}") from err
    return check_header(header, FORMAT, VERSION, where, what="a shipped organism file", fix=REBUILD)


def shipped_organism(path: str | Path | None = None, *, base: object | None = None) -> Organism:
    """Load the shipped organism: both stages in seconds, with its fact split and report.

    Args:
        path: The file (default: the one inside the package, `SHIPPED`).
        base: The embedded model, when already loaded (it is copied, not changed).

    Returns:
        The organism: ``discriminating`` (the compressed taught model), ``planted``,
        ``heads``, ``nasa_questions``, ``check_questions``, ``report`` (the file's
        measurements and description) and ``key`` (from the file's hash: other plants on
        this taught model are cached under it, `nasalens.organisms.load_plant`).

    Raises:
        NasalensError: When the file is missing or damaged (with how to rebuild it), or does
            not fit ``base``.

    Example:
        >>> org = nasalens.shipped_organism()  # doctest: +SKIP
        >>> org.heads
        (L12H2, L19H5, L24H1)
    """
    path = SHIPPED if path is None else path
    header = shipped_header(path)
    try:
        tensors = read_tensors(path)
    except NasalensError as err:
        raise NasalensError(f"the shipped organism is damaged ({err}); {REBUILD}") from err
    factors = {k.removeprefix("taught/"): v for k, v in tensors.items() if k.startswith("taught/")}
    rows = {k.removeprefix("plant/"): v for k, v in tensors.items() if k.startswith("plant/")}
    try:
        spec = Plant(**{**header["plant"], "heads": tuple(header["plant"]["heads"])})
        heads = tuple(Head.parse(h) for h in header["heads"])
        nasa_part, check_part = (questions_by_id(header[k]) for k in REQUIRED[2:])
    except (KeyError, TypeError, NasalensError) as err:
        message = f"the shipped organism's description is damaged ({err}); {REBUILD}"
        raise NasalensError(message) from err
    base = base if base is not None else load_model()
    discriminating = add_low_rank(base, factors)
    planted = apply_delta(discriminating, spec, rows)
    key = "shipped-" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return Organism(
        discriminating, planted, heads, tuple(nasa_part), tuple(check_part), header, key
    )
