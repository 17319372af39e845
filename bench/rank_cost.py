"""What ranking every head by its causal effect costs, and how well the cheap ranking agrees.

Issue 16's benchmark. Two batches: the planted-bias organism's NASA training prompts (the FN of
its probing set, about 16) and the embedded model's (about 81). For each, in one process:

* ``forward``      one bare forward pass of the batch, as a user writes it
                   (``model(tokens, attention_mask=...)``, full-vocabulary logits), the unit;
* ``attribution``  `rank_heads(method="attribution")`: one forward and one backward;
* ``verified``     `rank_heads(method="verified")` (the default): attribution, then the exact
                   effect of the best estimates within the default budget;
* ``exact``        `rank_heads(method="exact")`: every head ablated alone, the heads of a
                   layer together, blocks below the layer once;
* ``per_head``     the loop the exact sweep replaces: for each head, ``ablate`` it and run the
                   batch through the whole model (`answer_logprobs`). Timed on ``--loop-heads``
                   heads spread over the layers (every head costs the same here) and scaled to
                   all heads.

Time: median of ``--repeats`` calls (the sweeps once). Memory: the torch peak of one call
(profiler allocation records, as bench/nas_cost.py), for the forward and attribution, and for
one layer's pass of the exact sweep at layer 0 (its largest: every block runs), which bounds
the sweeps' peaks. Agreement: Spearman and Pearson of attribution vs exact over all heads, the
overlap of their top 10, the share of the exact top 10 that "verified" puts in its top 10, and
on the organism the planted heads' ranks under NAS, attribution, verified and exact.

    python bench/rank_cost.py                 # writes bench/results/rank_cost.json (~1.5 h)
    python bench/rank_cost.py --quick         # tiny model, a check that it runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from bench.nas_cost import torch_peak  # noqa: E402

MIB = 2**20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the tiny model, a few prompts")
    parser.add_argument("--only", choices=["organism", "embedded"], default=None)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of the cheap ones")
    parser.add_argument(
        "--loop-heads", type=int, default=10, help="heads the per-head loop times (0: skip it)"
    )
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--device", default=None, help="e.g. cuda (default: the CPU)")
    parser.add_argument("--dtype", default=None, help="float32 (default) or bfloat16")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    return parser.parse_args(argv)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def targets(args: argparse.Namespace) -> dict[str, tuple[object, list, list]]:
    """Model, training FN samples and planted heads of each batch."""
    import nasalens as nl
    from nasalens import organisms

    place = {k: v for k, v in (("device", args.device), ("dtype", args.dtype)) if v}
    quick, only = args.quick, args.only
    if quick:
        import torch

        from nasalens.models import tiny_model
        from tests.builders import make_samples

        model = tiny_model(
            seed=0, device=args.device or "cpu", dtype=getattr(torch, args.dtype or "float32")
        )
        return {"tiny": (model, [s for s in make_samples(12) if s.gold], ["L1H0"])}
    out = {}
    if only in (None, "organism"):
        organisms.organism("planted")  # built and cached if missing
        model = nl.load_model(str(organisms.organism_dir(stage="planted")), **place)
        probe = nl.probe_set(model, organisms.nasa_questions(), progress=False)
        planted = organisms.build_report()["heads"]
        out["organism"] = (model, list(probe.train), planted)
    if only in (None, "embedded"):
        model = nl.load_model(**place)
        probe = nl.probe_set(model, nl.data.builtin_questions("probe"), progress=False)
        out["embedded"] = (model, list(probe.train), [])
    return out


def measure(model, samples, planted, args) -> dict[str, object]:
    import numpy as np
    import torch
    from scipy import stats

    import nasalens as nl
    from nasalens.metrics import answer_logprobs
    from nasalens.models import adapt
    from nasalens.patching import head_means
    from nasalens.validation.attribution import prepare_ablation
    from nasalens.validation.ranking import exact_effects

    chunk = args.chunk_size
    batch = nl.encode(model, samples)
    adapter = adapt(model)
    geo = adapter.info
    chunks = [sub for _, sub in batch.chunks(chunk)]

    def forward() -> None:
        with torch.no_grad():
            for sub in chunks:
                model(sub.tokens, attention_mask=sub.attention_mask)

    def rank(method: str) -> Callable[[], object]:
        return lambda: nl.rank_heads(model, batch, method=method, chunk_size=chunk, progress=False)

    forward()  # warm-up
    results: dict[str, dict[str, float]] = {}
    unit, _ = timed(forward, args.repeats)
    results["forward"] = {"seconds": unit}
    seconds, attribution = timed(rank("attribution"), args.repeats)
    results["attribution"] = {"seconds": seconds}
    seconds, verified = timed(rank("verified"), 1)
    results["verified"] = {"seconds": seconds, "n_verified": verified.meta["n_verified"]}
    print(
        f"  forward {unit:.2f} s; attribution {results['attribution']['seconds']:.2f} s; "
        f"verified {seconds:.1f} s ({verified.meta['n_verified']} heads verified)",
        flush=True,
    )
    seconds, exact = timed(rank("exact"), 1)
    results["exact"] = {"seconds": seconds}
    print(f"  exact {seconds:.1f} s", flush=True)

    every = list(geo.heads())
    step = max(1, len(every) // max(1, args.loop_heads))
    sampled = every[::step][: args.loop_heads]

    def loop() -> None:
        for head in sampled:
            with nl.ablate(model, [head], how="mean", reference=batch):
                answer_logprobs(model, batch, chunk_size=chunk, progress=False)

    if sampled:
        seconds, _ = timed(loop, 1)
        results["per_head"] = {
            "seconds": seconds * len(every) / len(sampled),
            "timed_heads": len(sampled),
        }
        print(f"  per-head loop {results['per_head']['seconds']:.1f} s (from {len(sampled)} heads)")

    results["forward"]["peak_mib"] = torch_peak(forward)[0] / MIB
    results["attribution"]["peak_mib"] = torch_peak(rank("attribution"))[0] / MIB
    means = head_means(model, batch, chunk_size=chunk, progress=False)
    ablated, _, _ = prepare_ablation(model, "mean", means, batch, chunk)
    layer0 = [h for h in every if h.layer == 0]
    one_layer = lambda: exact_effects(adapter, chunks, layer0, ablated, progress=False)  # noqa: E731
    results["exact"]["peak_mib"] = torch_peak(one_layer)[0] / MIB
    results["verified"]["peak_mib"] = max(
        results["attribution"]["peak_mib"], results["exact"]["peak_mib"]
    )
    for name in ("attribution", "verified", "exact", "per_head"):
        if name not in results:
            continue
        results[name]["forwards"] = results[name]["seconds"] / unit
        if "peak_mib" in results[name]:
            results[name]["peak_vs_forward"] = (
                results[name]["peak_mib"] / results["forward"]["peak_mib"]
            )

    effect = dict(zip(exact, exact.score("effect"), strict=True))
    estimate = dict(zip(attribution, attribution.score("estimate"), strict=True))
    x = np.array([estimate[h] for h in every])
    y = np.array([effect[h] for h in every])
    top_exact = set(exact.top(10))
    single = nl.nas(model, batch, chunk_size=chunk, progress=False).head.flatten()
    nas_rank = [every[int(i)] for i in torch.argsort(-single, stable=True)]
    agreement = {
        "spearman": float(stats.spearmanr(x, y)[0]),
        "pearson": float(stats.pearsonr(x, y)[0]),
        "top10_overlap_attribution": len(top_exact & set(attribution.top(10))),
        "top10_overlap_verified": len(top_exact & set(verified.top(10))),
        "worst_misses": [
            {
                "head": str(h),
                "exact": effect[h],
                "estimate": estimate[h],
                "attribution_rank": list(attribution).index(h) + 1,
            }
            for h in exact.top(10)
        ],
    }
    ranks = {}
    for head in planted:
        h = nl.Head.parse(head)
        ranks[head] = {
            "nas": nas_rank.index(h) + 1,
            "attribution": list(attribution).index(h) + 1,
            "verified": list(verified).index(h) + 1,
            "exact": list(exact).index(h) + 1,
        }
    return {
        "n_samples": len(batch),
        "mean_tokens": float(batch.attention_mask.sum(dim=1).float().mean()),
        "results": results,
        "ratios": {
            "attribution/forward": results["attribution"]["forwards"],
            "verified/exact": results["verified"]["seconds"] / results["exact"]["seconds"],
            "exact/per_head": (
                results["exact"]["seconds"] / results["per_head"]["seconds"]
                if "per_head" in results
                else None
            ),
        },
        "agreement": agreement,
        "planted_ranks": ranks,
        "exact_top10": [str(h) for h in exact.top(10)],
        "verified_top10": [str(h) for h in verified.top(10)],
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    import torch

    from nasalens.artifacts import write_json

    report: dict[str, object] = {"threads": torch.get_num_threads(), "batches": {}}
    for name, (model, samples, planted) in targets(args).items():
        print(f"{name}: {len(samples)} prompts", flush=True)
        report["batches"][name] = measure(model, samples, planted, args)  # type: ignore[index]
        print(f"  {report['batches'][name]['ratios']}")  # type: ignore[index]
    default = "rank_cost_quick.json" if args.quick else "rank_cost.json"
    write_json(args.out or REPO / "bench" / "results" / default, report)
    return report


if __name__ == "__main__":
    main()
