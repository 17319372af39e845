"""What greedy short-answer decoding costs with a key-value cache, against decoding without one.

Issue 14's benchmark. On the embedded model, the 170 built-in probe questions in the paper's
Prompt II (what `probe_set` answers), left-padded, in chunks of ``--chunk-size``, at most 16
new tokens each, decoded two ways in the same process:

* ``plain``   `ModelAdapter.greedy`: the whole sequence through the bridge at every step;
* ``cached``  the model type's own ``greedy`` (on a TransformerBridge: a key-value cache).

Both must give the same tokens (checked here, and on the tiny model in the tests). Time: one
warm-up chunk, then the median of ``--repeats`` full passes. Writes the seconds, the ratio
plain/cached and the versions of torch, transformers and TransformerLens as JSON.

Run on a quiet machine, one torch job at a time::

    python bench/decode_cost.py                     # writes bench/results/decode_cost.json
    python bench/decode_cost.py --quick             # tiny model, a check that it runs
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 8 questions")
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="timed passes (plain takes ~7 min)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    return parser.parse_args(argv)


def decode_all(greedy, batch, chunk_size: int, max_new_tokens: int) -> list[list[int]]:
    """Every row's new tokens, chunk by chunk, in row order."""
    rows: list[list[int]] = [[] for _ in range(len(batch))]
    with torch.no_grad():
        for index, sub in batch.chunks(chunk_size):
            new, _ = greedy(sub.tokens, sub.attention_mask, max_new_tokens)
            for j, row in enumerate(index.tolist()):
                rows[row] = new[j].tolist()
    return rows


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    from nasalens.artifacts import write_json
    from nasalens.data import builtin_questions
    from nasalens.models import adapt, load_model, tiny_model
    from nasalens.models.interface import ModelAdapter
    from nasalens.prompts import encode, short_answer

    model = tiny_model(seed=0) if args.quick else load_model()
    questions = builtin_questions("probe")[: 8 if args.quick else None]
    batch = encode(model, [q.positive() for q in questions], short_answer(), padding_side="left")
    adapter = adapt(model)
    ways = {
        "plain": lambda *a: ModelAdapter.greedy(adapter, *a),
        "cached": adapter.greedy,
    }
    first = next(iter(batch.chunks(args.chunk_size)))[1]
    results: dict[str, dict[str, object]] = {}
    tokens: dict[str, list[list[int]]] = {}
    for name, greedy in ways.items():
        greedy(first.tokens, first.attention_mask, args.max_new_tokens)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            tokens[name] = decode_all(greedy, batch, args.chunk_size, args.max_new_tokens)
            times.append(time.perf_counter() - start)
        results[name] = {"median_s": statistics.median(times), "times_s": times}
        print(f"{name:>7}: {statistics.median(times):7.2f} s (median of {args.repeats})")
    same = tokens["plain"] == tokens["cached"]
    ratio = results["plain"]["median_s"] / results["cached"]["median_s"]  # type: ignore[operator]
    versions = {
        pkg: importlib.metadata.version(pkg)
        for pkg in ("torch", "transformers", "transformer-lens")
    }
    print(f"plain/cached {ratio:.2f}; identical tokens: {same}; {versions}")
    report = {
        "model": "tiny" if args.quick else "embedded",
        "questions": len(batch),
        "chunk_size": args.chunk_size,
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        "results": results,
        "plain/cached": ratio,
        "identical_tokens": same,
        "versions": versions,
    }
    default = "decode_cost_quick.json" if args.quick else "decode_cost.json"
    write_json(args.out or REPO / "bench" / "results" / default, report)
    return report


if __name__ == "__main__":
    main()
