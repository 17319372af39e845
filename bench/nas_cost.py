"""What `nas()` costs, against a bare forward pass and `run_with_cache` of every pattern.

Issue 3's benchmark. On the embedded model, two batches: 64 built-in samples (about 80
tokens each) and 16 AR-LSAT samples (about 400 tokens, from ../shared/data). For each, four
ways to run the same rows, in the same chunks (``--chunk-size``, rows grouped by length as
`nas()` does):

The long rows use the paper's Prompt I with one solved AR-LSAT example (1-shot), because a
bare AR-LSAT prompt is only about 220 tokens.

* ``a_forward``  the bare forward pass a user writes: ``model(tokens, attention_mask=...)``,
  full-vocabulary logits included (the issue's baseline "a");
* ``a_lean``     the same pass without the final norm and unembedding (what `nas()` runs
  under its hooks), so that the hooks' own cost can be read off too;
* ``b_cache``    ``run_with_cache`` of every ``blocks.{l}.attn.hook_pattern``, then NAS from
  the cached patterns (what a user would write first);
* ``c_nas``      ``nasalens.scores.nas``.

Time: one warm-up call, then the median of ``--repeats`` calls (``time.perf_counter``).
Memory: the **torch peak**, from a separate call under ``torch.profiler.profile(
profile_memory=True)``: the profiler's raw allocation records (``[memory]`` events, + on
allocation, - on free) summed in time order; the peak of that running sum is the most tensor
memory alive at once that the call created, and its end value what the call left alive.
Weights and the inputs are not counted. (TL4_NOTES.md §6 sums the same allocator events
through the profiler's memory timeline.) Process RSS is not used: glibc makes it swing by
hundreds of MiB between identical runs.

Ratios written (per batch): ``c/a`` (time), ``(c-a)/(b-a)`` (extra torch peak), ``b/c`` (time
and peak), each also against ``a_lean``. The issue's targets, on the long batch:
``c/a <= 1.15`` and ``(c-a)/(b-a) <= 0.10``.

Run on a quiet machine, one torch job at a time (a second job on two cores can slow a run
fourfold)::

    OMP_NUM_THREADS=2 python bench/nas_cost.py            # writes bench/results/nas_cost.json
    python bench/nas_cost.py --quick                      # tiny sizes, a check that it runs
    python bench/nas_cost.py --device cuda --dtype bfloat16   # on a GPU (make gpu-check)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

MIB = 2**20
CONFIGS = ("a_forward", "a_lean", "b_cache", "c_nas")
#: The issue's targets on the long batch.
TARGET_TIME = 1.15
TARGET_MEMORY = 0.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 short + 2 long rows, 1 repeat")
    parser.add_argument("--model", default=None, help="default: the embedded model; 'tiny' too")
    parser.add_argument("--data-dir", type=Path, default=None, help="root of ../shared/data")
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--device", default="cpu", help="e.g. cuda (memory: CUDA peak)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    return parser.parse_args(argv)


def data_root(option: Path | None) -> Path:
    if option is not None:
        return option
    env = os.environ.get("NASALENS_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


def load(name: str | None, device: str = "cpu", dtype: str = "float32"):
    import torch

    from nasalens.models import load_model, tiny_model

    kind = getattr(torch, dtype)
    if name == "tiny":
        return tiny_model(n_ctx=4096, dtype=kind, device=device)
    return load_model(name, dtype=kind, device=device)


def sync() -> None:
    """Wait for queued GPU work, so that wall-clock times cover it (no-op on the CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def batches(model, root: Path, quick: bool) -> dict[str, object]:
    """The short (built-in) and long (AR-LSAT) batches; long only when the data is there."""
    import nasalens as nl
    from nasalens import data

    out = {"short": nl.encode(model, data.builtin("eval", n=8 if quick else 64))}
    if (root / "ar_lsat").is_dir():
        rows = data.load("ar_lsat", root, n=2 if quick else 16)
        # Prompt I on AR-LSAT is 155-286 tokens; one solved example (the first correct option
        # of another question) brings the 16 rows to about 400 (375-441 on SmolLM2).
        taken = {s.id for s in rows}
        shot = next(s for s in data.load("ar_lsat", root) if s.gold and s.id not in taken)
        out["long"] = nl.encode(model, rows, template=nl.binary(shots=(shot,)))
    else:
        print(f"no AR-LSAT under {root}: skipping the long batch (pass --data-dir)")
    return out


def runners(model, batch, chunk_size: int) -> dict[str, Callable[[], object]]:
    """One callable per configuration, each over the same chunks of ``batch``."""
    import torch

    from nasalens.models import adapt
    from nasalens.scores import nas, nas_from_pattern, region_mask

    adapter = adapt(model)
    chunks = [sub for _, sub in batch.chunks(chunk_size)]
    n_layers = adapter.info.n_layers

    def a_forward() -> None:
        with torch.no_grad():
            for sub in chunks:
                model(sub.tokens, attention_mask=sub.attention_mask)

    def a_lean() -> None:
        with torch.no_grad():
            for sub in chunks:
                adapter.run(sub.tokens, sub.attention_mask)

    def b_cache() -> torch.Tensor:
        rows = []
        with torch.no_grad():
            for sub in chunks:
                _, cache = model.run_with_cache(
                    sub.tokens,
                    attention_mask=sub.attention_mask,
                    names_filter=lambda name: name.endswith("attn.hook_pattern"),
                )
                pos, neg = sub.pos_cand.float(), sub.neg_cand.float()
                where = region_mask(sub)
                layers = [
                    nas_from_pattern(cache[f"blocks.{layer}.attn.hook_pattern"], pos, neg, where)[0]
                    for layer in range(n_layers)
                ]
                rows.append(torch.stack(layers, dim=1))
                del cache
        return torch.cat(rows)

    def c_nas() -> torch.Tensor:
        return nas(model, batch, chunk_size=chunk_size, progress=False).per_sample

    return {"a_forward": a_forward, "a_lean": a_lean, "b_cache": b_cache, "c_nas": c_nas}


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def torch_peak(fn: Callable[[], object], device: str = "cpu") -> tuple[float, float]:
    """Peak and retained bytes of the tensors ``fn`` creates (profiler allocation records).

    On a GPU: the CUDA allocator's peak and what stays allocated, above what was before.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    if torch.device(device).type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        kept = fn()
        sync()
        peak, after = torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated()
        del kept
        return float(peak - before), float(after - before)

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        kept = fn()
    records = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    records.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in records:
        live += event.nbytes()
        peak = max(peak, live)
    del kept
    return float(peak), float(live)


def ratios(results: dict[str, dict[str, float]]) -> dict[str, float]:
    time_of = {name: r["median_s"] for name, r in results.items()}
    peak_of = {name: r["peak_mib"] for name, r in results.items()}
    out = {}
    for base in ("a_forward", "a_lean"):
        suffix = "" if base == "a_forward" else "_lean"
        out[f"c/a{suffix} time"] = time_of["c_nas"] / time_of[base]
        gap = peak_of["b_cache"] - peak_of[base]
        extra = peak_of["c_nas"] - peak_of[base]
        out[f"(c-a)/(b-a){suffix} peak"] = extra / gap if gap > 0 else float("nan")
    out["b/c time"] = time_of["b_cache"] / time_of["c_nas"]
    out["b/c peak"] = peak_of["b_cache"] / peak_of["c_nas"] if peak_of["c_nas"] else float("nan")
    return out


def run_batch(
    model, batch, chunk_size: int, repeats: int, device: str = "cpu"
) -> dict[str, object]:
    import torch

    fns = runners(model, batch, chunk_size)
    lengths = batch.attention_mask.sum(dim=1).float()
    results: dict[str, dict[str, float]] = {}
    for name in CONFIGS:
        times = timed(fns[name], repeats)
        peak, retained = torch_peak(fns[name], device)
        results[name] = {
            "median_s": statistics.median(times),
            "times_s": times,
            "peak_mib": peak / MIB,
            "retained_mib": retained / MIB,
        }
        print(
            f"  {name:10s} median {results[name]['median_s']:7.3f} s   torch peak "
            f"{results[name]['peak_mib']:8.1f} MiB   retained {results[name]['retained_mib']:7.1f}"
        )
    with torch.no_grad():
        diff = (fns["b_cache"]() - fns["c_nas"]()).abs().max()
    return {
        "rows": len(batch),
        "mean_tokens": float(lengths.mean()),
        "max_tokens": int(lengths.max()),
        "chunk_size": chunk_size,
        "results": results,
        "ratios": ratios(results),
        "nas_max_abs_diff_b_vs_c": float(diff),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    import nasalens as nl

    repeats = args.repeats or (1 if args.quick else 3)
    start = time.perf_counter()
    model = load(args.model, args.device, args.dtype)
    print(f"loaded {nl.info(model).name} in {time.perf_counter() - start:.1f} s")
    measured: dict[str, dict] = {}
    for name, batch in batches(model, data_root(args.data_dir), args.quick).items():
        lengths = batch.attention_mask.sum(dim=1).float()
        mean, top = float(lengths.mean()), int(lengths.max())
        print(f"\n{name}: {len(batch)} rows, {mean:.0f} tokens on average (max {top})")
        measured[name] = run_batch(model, batch, args.chunk_size, repeats, args.device)
        for key, value in measured[name]["ratios"].items():
            print(f"  {key:24s} {value:7.3f}")
    report: dict[str, object] = {
        "model": nl.info(model).name,
        "device": args.device,
        "dtype": args.dtype,
        "quick": args.quick,
        "repeats": repeats,
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformer_lens": importlib.metadata.version("transformer-lens"),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
        "batches": measured,
    }
    if "long" in measured:
        r = measured["long"]["ratios"]
        report["targets"] = {
            "c/a time <= 1.15": r["c/a time"] <= TARGET_TIME,
            "(c-a)/(b-a) peak <= 0.10": r["(c-a)/(b-a) peak"] <= TARGET_MEMORY,
        }
        print(f"\ntargets on the long batch: {report['targets']}")
    suffix = "" if args.device == "cpu" else f"_{torch.device(args.device).type}"
    default = f"nas_cost{'_quick' if args.quick else ''}{suffix}.json"
    out = args.out or REPO / "bench" / "results" / default
    from nasalens.artifacts import write_json

    write_json(out, report)
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
