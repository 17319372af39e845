"""One entry point for every data set: ``load(name, path, n=..., seed=...)``.

Owns the table of data-set names and the loader behind each; external sets without a path use
the data root in ``NASALENS_DATA_DIR``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nasalens.artifacts import as_path
from nasalens.data.ar_lsat import load_ar_lsat
from nasalens.data.builtin_sets import builtin, builtin_questions
from nasalens.data.gsm8k import gsm8k_questions, load_gsm8k
from nasalens.data.jsonl import load_jsonl
from nasalens.data.sample import Question, Sample, check_n, check_seed, subset
from nasalens.data.shortqa import hotpotqa_questions, load_hotpotqa, load_nq_open, nq_open_questions
from nasalens.data.strategyqa import load_strategyqa
from nasalens.errors import NasalensError, quote

EXTERNAL: dict[str, Callable[..., list[Sample]]] = {
    "strategyqa": load_strategyqa,
    "gsm8k": load_gsm8k,
    "nq_open": load_nq_open,
    "hotpotqa": load_hotpotqa,
    "ar_lsat": load_ar_lsat,
}
NAMES: tuple[str, ...] = (*EXTERNAL, "jsonl", "builtin-probe", "builtin-eval")


def load(
    name: str, path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Sample]:
    """Load any supported data set as balanced yes/no samples.

    Args:
        name: One of strategyqa, gsm8k, nq_open, hotpotqa, ar_lsat (external files), jsonl (a
            user's file, see `nasalens.data.jsonl`), builtin-probe, builtin-eval (shipped with
            nasalens). Case, "-" and "_" do not matter.
        path: For external sets: the file, its folder, or a data root holding the set's folder;
            None uses the root in ``NASALENS_DATA_DIR``. For jsonl: the file (required). For
            built-in sets: must be None.
        n: How many samples to return after balancing (None: all that balance allows).
        seed: Seed of every random choice (subset, wrong answers, Yes/No assignment).

    Returns:
        The samples, balanced between Yes and No to within one.

    Raises:
        NasalensError: On an unknown name (the message lists the valid ones), a missing path, or
            any error of the loader.

    Example:
        >>> samples = load("builtin-eval", n=50)
        >>> len(samples)
        50
    """
    key = _key(name)
    check_n(n)
    check_seed(seed)
    if key in EXTERNAL:
        return EXTERNAL[key](path, n=n, seed=seed)
    if key == "jsonl":
        if path is None:
            raise NasalensError("load('jsonl') needs the file: pass path='my_set.jsonl'")
        return load_jsonl(path, n=n, seed=seed)
    if key in ("builtin_probe", "builtin_eval"):
        if path is not None:
            raise NasalensError(
                f"{quote(name)} is shipped with nasalens and takes no path; leave path=None"
            )
        return builtin("probe" if key == "builtin_probe" else "eval", n=n, seed=seed)
    raise NasalensError(f"unknown data set {quote(name)}; use one of: {', '.join(NAMES)}")


def _key(name: object) -> str:
    """A set name in canonical form (case, "-" and "_" do not matter)."""
    if not isinstance(name, str):
        raise NasalensError(
            f"a data set name must be a string, got {type(name).__name__} {quote(name, 60)}; "
            f"use one of: {', '.join(NAMES)}"
        )
    return name.strip().casefold().replace("-", "_")


QUESTION_SETS: dict[str, Callable[[Path | None, int | None, int], list[Question]]] = {
    "builtin_probe": lambda _, n, seed: subset(builtin_questions("probe"), n, seed=seed),
    "builtin_eval": lambda _, n, seed: subset(builtin_questions("eval"), n, seed=seed),
    "nq_open": lambda root, n, seed: nq_open_questions(root, n=n, seed=seed),
    "hotpotqa": lambda root, n, seed: hotpotqa_questions(root, n=n, seed=seed),
    "gsm8k": lambda root, n, seed: gsm8k_questions(root, n=n, seed=seed),
}


def load_positives(
    name: str, path: str | Path | None = None, *, n: int | None = None, seed: int = 0
) -> list[Sample]:
    """Load the positive (gold "Yes") samples of a set: what NAS and probing are computed on.

    Short-answer sets (builtin-probe, builtin-eval, nq_open, hotpotqa, gsm8k) give one positive
    sample per question (``n`` questions, seeded); native yes/no sets and JSONL files (a path
    ending in ``.jsonl``) give their gold-Yes samples (a seeded ``n`` of them).

    Args:
        name: A set name as for `load`, or the path of a JSONL file.
        path: The file, folder or data root of an external set (as for `load`).
        n: How many samples (None: all).
        seed: Seed of the subset.

    Returns:
        Positive samples only.

    Raises:
        NasalensError: When the set has no gold-Yes sample, or as `load`.
    """
    key = _key(name)
    check_n(n)
    check_seed(seed)
    if key in QUESTION_SETS:
        root = None if path is None else as_path(path)
        return [q.positive() for q in QUESTION_SETS[key](root, n, seed)]
    if name.endswith(".jsonl"):
        samples = load_jsonl(name, balanced=False)
    else:
        samples = load(name, path, seed=seed)
    positives = [s for s in samples if s.gold]
    if not positives:
        raise NasalensError(
            f"data set {quote(name)} has no positive (gold Yes) samples; NAS is found on those"
        )
    return subset(positives, min(n, len(positives)) if n else None, seed=seed)
