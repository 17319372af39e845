"""Cost of one NASA training step with and without layer skipping.

While head (l, h) trains, blocks below l do not change: NASA computes the residual entering
block l once per head and runs blocks l..L-1 only at each step. This times one step (forward,
backward, AdamW on the head's query/key rows) for heads at a few layers, both ways.

Two ratios per layer l:

- ``ratio``: the skipping step against a *full-depth step*, one that runs every block forward
  and backward (a head at layer 0, where nothing can be skipped). Target: 1.2 x (L - l) / L.
- ``ratio_same_head``: the skipping step against the same head's step without skipping. Only
  the forward of blocks 0..l-1 is saved here (autograd never runs backward below the trained
  block either way), so with forward f and backward b per block the best possible value is
  (L - l)(f + b) / (L f + (L - l) b); ``ideal_same_head`` prints it from the measured f and b.

    python bench/tune_cost.py                       # embedded model, layers 5 17 28
    python bench/tune_cost.py --quick               # tiny model, to check the script
    python bench/tune_cost.py --out cost.json
    python bench/tune_cost.py --device cuda --dtype bfloat16   # on a GPU (make gpu-check)

Run it on a quiet machine (no other torch job): a second job on 2 cores distorts every time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: this checkout's nasalens
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from nasalens.data import builtin  # noqa: E402
from nasalens.models import Head, adapt, load_model, tiny_model  # noqa: E402
from nasalens.prompts import binary, encode  # noqa: E402
from nasalens.tuning import train  # noqa: E402


def sync() -> None:
    """Wait for queued GPU work, so that wall-clock times cover it (no-op on the CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_times(adapter, batch, head: Head, *, skip: bool, repeats: int) -> list[float]:
    """Seconds per training step of ``head`` (after one warm-up step).

    The step NASA takes: float32 master copies of the rows when the weights are not float32.
    """
    layer = head.layer if skip else 0
    resid = train.residuals(adapter, batch, layer, chunk_size=len(batch))
    targets = torch.full((len(batch),), batch.pos_target)
    slices = list(adapter.qk_slices(head))
    times = []
    with train.master_weights(adapter, slices) as weights:
        opt = train.optimizer(weights.params, 1e-6)
        for i in range(repeats + 1):
            sync()
            start = time.perf_counter()
            loss = train.answer_loss(adapter, resid, layer, batch, targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            weights.step(opt)
            sync()
            if i:
                times.append(time.perf_counter() - start)
    return times


def forward_times(adapter, batch, repeats: int) -> list[float]:
    """Seconds per forward pass through every block to the answer loss (no gradient)."""
    resid = train.residuals(adapter, batch, 0, chunk_size=len(batch))
    targets = torch.full((len(batch),), batch.pos_target)
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            sync()
            start = time.perf_counter()
            train.answer_loss(adapter, resid, 0, batch, targets)
            sync()
            if i:
                times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, tiny sizes")
    parser.add_argument("--layers", type=int, nargs="*", default=None)
    parser.add_argument("--batch", type=int, default=32, help="prompts per step (paper: 32)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--device", default="cpu", help="e.g. cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    if args.quick:
        model = tiny_model(n_layers=4, dtype=dtype, device=args.device)
        layers = args.layers or [1, 2, 3]
        n_rows, repeats = min(args.batch, 4), min(args.repeats, 2)
    else:
        model = load_model(dtype=dtype, device=args.device)
        layers = args.layers or [5, 17, 28]
        n_rows, repeats = args.batch, args.repeats
    adapter = adapt(model)
    n_layers = adapter.info.n_layers
    batch = encode(model, builtin("probe", n=n_rows), template=binary())
    depth = statistics.median(step_times(adapter, batch, Head(0, 0), skip=True, repeats=repeats))
    forward = statistics.median(forward_times(adapter, batch, repeats))
    per_block_f = forward / n_layers
    per_block_b = (depth - forward) / n_layers
    print(json.dumps({"full_depth_step_s": round(depth, 4), "full_forward_s": round(forward, 4)}))
    rows = []
    for layer in layers:
        head = Head(layer, 0)
        full = statistics.median(step_times(adapter, batch, head, skip=False, repeats=repeats))
        skip = statistics.median(step_times(adapter, batch, head, skip=True, repeats=repeats))
        above = n_layers - layer
        target = 1.2 * above / n_layers
        ideal = above * (per_block_f + per_block_b) / (n_layers * per_block_f + above * per_block_b)
        rows.append(
            {
                "layer": layer,
                "skip_s": round(skip, 4),
                "ratio": round(skip / depth, 3),
                "target_ratio": round(target, 3),
                "meets_target": skip / depth <= target,
                "same_head_full_s": round(full, 4),
                "ratio_same_head": round(skip / full, 3),
                "ideal_same_head": round(ideal, 3),
            }
        )
        print(json.dumps(rows[-1]))
    report = {
        "model": adapter.info.name,
        "device": args.device,
        "dtype": args.dtype,
        "n_layers": n_layers,
        "batch": n_rows,
        "tokens_per_row": int(batch.attention_mask.sum(1).float().mean()),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "full_depth_step_s": round(depth, 4),
        "full_forward_s": round(forward, 4),
        "rows": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
