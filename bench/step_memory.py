"""Memory of one step of each kind, measured against the formulas of docs/large_models.md.

For a model of L layers, width d, h query heads, MLP width f, vocabulary V, activations of b
bytes, and a chunk of B rows of S tokens, three steps (weights not counted):

* ``nas``: one chunk of `nasalens.nas` (no gradient; stops before the unembedding);
* ``attribution``: one forward pass that keeps its graph from the embedding on, and one backward
  pass of the summed Yes-No log-probability difference to every head's output (``hook_z``):
  the pass an attribution ranking of heads makes;
* ``tune``: one NASA step of one head at layer l (blocks l.. forward and backward, the answer
  position unembedded, AdamW on float32 master copies of the head's rows).

Memory is the torch peak: on the CPU the profiler's allocation records (as bench/nas_cost.py),
on a GPU ``torch.cuda.max_memory_allocated`` above what was allocated before. Each row prints
the formulas' prediction beside the measurement.

    python bench/step_memory.py                      # embedded (float32, bfloat16) + wide model
    python bench/step_memory.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:  # this checkout's nasalens, and nas_cost beside this file
        sys.path.insert(0, str(path))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from nas_cost import torch_peak  # noqa: E402

from nasalens.data import builtin  # noqa: E402
from nasalens.metrics import candidate_logprobs  # noqa: E402
from nasalens.models import Head, adapt, load_model, tiny_model  # noqa: E402
from nasalens.prompts import Batch, binary, encode  # noqa: E402
from nasalens.scores import nas  # noqa: E402
from nasalens.tuning import train  # noqa: E402

MIB = 2**20


def dims(model) -> dict:
    cfg = model.cfg
    geo = adapt(model).info
    return {
        "L": geo.n_layers,
        "d": geo.d_model,
        "h": geo.n_heads,
        "g": geo.n_kv_heads,
        "k": geo.d_head,
        "f": int(cfg.d_mlp),
        "V": geo.d_vocab,
        "b": next(model.parameters()).element_size(),
    }


def kept_per_token_layer(m: dict, S: int, *, heads_kept: bool) -> int:
    """Bytes autograd keeps per token and layer when no weight of the layer needs a gradient.

    ``8d + b (3d + 3f) + s_b h S``: the two RMSNorms' float32 copies of their input (8d bytes);
    in the model's dtype the rotated query and the expanded keys and values (3d) and the MLP's
    gate, its SiLU and up (3f); the attention pattern of the token's query row, kept as the
    float32 softmax output (s_b = 4 bytes per key), plus its copy in the model's dtype when
    that is not float32 (s_b = 6 in bfloat16). ``heads_kept`` adds each head's output (d),
    which an attribution pass keeps to take its gradient.
    """
    b, d, f, h = m["b"], m["d"], m["f"], m["h"]
    s_b = 4 if b == 4 else 4 + b
    return 8 * d + b * ((4 if heads_kept else 3) * d + 3 * f) + s_b * h * S


def predict(kind: str, m: dict, B: int, S: int, layer: int = 0) -> float:
    """The formulas of docs/large_models.md, in bytes (weights not counted)."""
    b, d, f, h, L, V = m["b"], m["d"], m["f"], m["h"], m["L"], m["V"]
    if kind == "nas":  # one block's MLP or attention at its peak (no gradient)
        return b * B * S * (2 * d + 3 * f) + (2 * b + 4) * B * h * S * S
    logits = 12 * B * V  # the answer rows' logits and their float32 log-softmax
    if kind == "attribution":
        return L * B * S * kept_per_token_layer(m, S, heads_kept=True) + logits
    grads = b * d * (m["h"] + m["g"]) * m["k"]  # the full q_proj and k_proj gradients
    return (L - layer) * B * S * kept_per_token_layer(m, S, heads_kept=False) + logits + grads


def chunk(model, B: int, S: int) -> Batch:
    """B built-in prompts, each given a prefix of solved examples to reach about S tokens."""
    import dataclasses

    base = binary()
    shots = builtin("probe", n=64, seed=3)
    samples = builtin("eval", n=B, seed=4)
    for k in range(64):
        batch = encode(model, samples, template=dataclasses.replace(base, shots=tuple(shots[:k])))
        if batch.tokens.shape[1] >= S:
            break
    return batch


def attribution(adapter, batch: Batch) -> list[torch.Tensor]:
    zs: list[torch.Tensor] = []

    def leaf(x, hook):
        return x.detach().requires_grad_(True)

    def keep(z, hook):  # the returned tensor is the one the rest of the pass uses
        zs.append(z.clone())
        return zs[-1]

    hooks = [("hook_embed" if "hook_embed" in adapter.model.hook_dict else "embed.hook_out", leaf)]
    hooks += [(adapter.hook_name(layer, "z"), keep) for layer in range(adapter.info.n_layers)]
    # No weight needs a gradient: autograd keeps only what the activations' gradients need.
    with torch.enable_grad(), train.trainable(adapter, []):
        logits = adapter.logits_at(batch.tokens, batch.attention_mask, batch.answer_pos, hooks)
        lp = candidate_logprobs(logits, batch)
        metric = (lp[:, 0] - lp[:, 1]).sum()
        return list(torch.autograd.grad(metric, zs))


def tune_step(adapter, batch: Batch, layer: int):
    resid = train.residuals(adapter, batch, layer, chunk_size=len(batch))
    targets = torch.full((len(batch),), batch.pos_target)
    slices = adapter.qk_slices(Head(layer, 0))

    def step():
        with train.master_weights(adapter, slices) as weights:
            opt = train.optimizer(weights.params, 1e-6)
            loss = train.answer_loss(adapter, resid, layer, batch, targets)
            loss.backward()
            weights.step(opt)

    return step


def measure(model, label: str, B: int, S: int, device: str, kinds: list[str]) -> list[dict]:
    adapter = adapt(model)
    m = dims(model)
    batch = chunk(model, B, S)
    S = batch.tokens.shape[1]
    layer = m["L"] // 2
    runs = {
        "nas": lambda: nas(model, batch, chunk_size=B, progress=False),
        "attribution": lambda: attribution(adapter, batch),
        "tune": tune_step(adapter, batch, layer),
    }
    rows = []
    for kind, fn in runs.items():
        if kind not in kinds:
            continue
        fn()  # warm-up
        peak, _ = torch_peak(fn, device)
        expected = predict(kind, m, B, S, layer)
        rows.append(
            {
                "model": label,
                "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
                "step": kind if kind != "tune" else f"tune (layer {layer})",
                "B": B,
                "S": S,
                "measured_mib": round(peak / MIB, 1),
                "formula_mib": round(expected / MIB, 1),
                "measured/formula": round(peak / expected, 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny model only")
    parser.add_argument("--steps", nargs="*", default=["nas", "attribution", "tune"])
    args = parser.parse_args()
    rows = []
    if args.quick:
        rows += measure(tiny_model(device=args.device), "tiny", 2, 64, args.device, args.steps)
    else:
        for dtype in (torch.float32, torch.bfloat16):
            model = load_model(dtype=dtype, device=args.device)
            for B, S in ((4, 128), (2, 384)):
                rows += measure(model, "embedded", B, S, args.device, args.steps)
            del model
        wide = tiny_model(
            d_model=2048, d_mlp=5632, n_heads=16, n_kv_heads=4, n_layers=8, n_ctx=2048,
            dtype=torch.bfloat16, device=args.device,
        )  # fmt: skip
        rows += measure(wide, "wide", 2, 128, args.device, args.steps)
    out = args.out or REPO / "bench" / "results" / f"step_memory_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
