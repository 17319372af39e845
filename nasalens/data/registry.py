"""One entry point for every data set: ``load(name, path, n=..., seed=...)``.

Owns the table of data-set names and the loader behind each; external sets without a path use
the data root in ``NASALENS_DATA_DIR``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nasalens.data.ar_lsat import load_ar_lsat
from nasalens.data.builtin_sets import builtin
from nasalens.data.gsm8k import load_gsm8k
from nasalens.data.jsonl import load_jsonl
from nasalens.data.sample import Sample
from nasalens.data.shortqa import load_hotpotqa, load_nq_open
from nasalens.data.strategyqa import load_strategyqa
from nasalens.errors import NasalensError

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
    key = name.strip().casefold().replace("-", "_")
    if key in EXTERNAL:
        return EXTERNAL[key](path, n=n, seed=seed)
    if key == "jsonl":
        if path is None:
            raise NasalensError("load('jsonl') needs the file: pass path='my_set.jsonl'")
        return load_jsonl(path, n=n, seed=seed)
    if key in ("builtin_probe", "builtin_eval"):
        if path is not None:
            raise NasalensError(
                f"{name!r} is shipped with nasalens and takes no path; leave path=None"
            )
        return builtin("probe" if key == "builtin_probe" else "eval", n=n, seed=seed)
    raise NasalensError(f"unknown data set {name!r}; use one of: {', '.join(NAMES)}")
