"""bfloat16 against float32 on one model: NAS, the selected heads, the decisions, a NASA run.

Loads the model twice (float32 and bfloat16, on ``--device``) and measures on the built-in eval
set (200 balanced fact checks):

* NAS of every sample, layer and head: max and mean |ΔNAS|, model NAS of each;
* the top 30 heads, by the paper's rule (``negative_heads(k=100, n=30)``) and by single-head
  NAS alone: how many of the float32 model's 30 the bfloat16 model also picks;
* the Yes/No decisions: share that agree, max |Δ(log P(Yes) - log P(No))|;
* a NASA run on the bfloat16 model (its own probing set; ``--lr``, default 1e-3, the documented
  learning rate of the embedded model, docs/tuning.md; the top ``--heads`` NAS heads,
  ``--epochs`` epochs each, stopping rules off): which weights and rows changed, which must be
  the trained heads' query/key rows only;
* the trap the float32 master copies avoid: ``--trap-steps`` AdamW steps at the paper's own
  learning rate 1e-6 on one head's rows of the bfloat16 model, with and without the copies:
  the share of the rows' entries that changed.

    python bench/dtype_agreement.py                     # embedded model, CPU (~15 min on 2 cores)
    python bench/dtype_agreement.py --device cuda
    python bench/dtype_agreement.py --quick             # tiny model, a check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

import nasalens as nl  # noqa: E402
from nasalens.data import builtin, builtin_questions  # noqa: E402
from nasalens.models import adapt, tiny_model  # noqa: E402
from nasalens.prompts import binary, encode  # noqa: E402
from nasalens.tuning import NasaConfig, train  # noqa: E402


def load(quick: bool, dtype: torch.dtype, device: str) -> torch.nn.Module:
    if quick:
        return tiny_model(n_layers=4, dtype=dtype, device=device)
    return nl.load_model(dtype=dtype, device=device)


def top_by_nas(scores, n: int) -> set[str]:
    flat = scores.head.flatten()
    n_heads = scores.head.shape[1]
    order = torch.argsort(flat, descending=True, stable=True)[:n]
    return {str(nl.Head(int(i) // n_heads, int(i) % n_heads)) for i in order}


def agreement(models: dict, samples: list) -> dict:
    scores = {k: nl.nas(m, samples, progress=False) for k, m in models.items()}
    evals = {k: nl.evaluate(m, samples, progress=False) for k, m in models.items()}
    a, b = scores["float32"], scores["bfloat16"]
    diff = (a.per_sample - b.per_sample).abs()
    total = a.head.numel()
    k_top, n_top = min(100, total), min(30, total // 2)  # the paper's k=100, N=30
    rule = {k: {str(h) for h in nl.negative_heads(s, k=k_top, n=n_top)} for k, s in scores.items()}
    top = {k: top_by_nas(s, n_top) for k, s in scores.items()}
    fa, fb = evals["float32"].per_sample, evals["bfloat16"].per_sample
    return {
        "samples": len(samples),
        "max_abs_delta_nas": float(diff.max()),
        "mean_abs_delta_nas": float(diff.mean()),
        "max_abs_delta_head_nas": float((a.head - b.head).abs().max()),
        "max_abs_nas": float(a.per_sample.abs().max()),
        "model_nas": {k: s.model for k, s in scores.items()},
        "top_n": n_top,
        "top30_rule_agree": len(rule["float32"] & rule["bfloat16"]),
        "top30_rule_sizes": {k: len(v) for k, v in rule.items()},
        "top30_nas_agree": len(top["float32"] & top["bfloat16"]),
        "decisions_agree": float((fa["decision"] == fb["decision"]).mean()),
        "max_abs_delta_logit_diff": float((fa["logit_diff"] - fb["logit_diff"]).abs().max()),
        "recall": {k: e.summary["recall"] for k, e in evals.items()},
        "share_yes": {k: e.summary["share_yes"] for k, e in evals.items()},
        "heads": sorted(top["float32"], key=lambda h: -a.head[nl.Head.parse(h)].item())[:5],
    }


def nasa_run(model, quick: bool, lr: float, n_heads: int, epochs: int) -> dict:
    questions = builtin_questions("probe")[: 12 if quick else None]
    probe = nl.probe_set(model, questions, progress=False)
    if not probe.train or not probe.val:
        return {"skipped": f"probing set has {len(probe.train)} train / {len(probe.val)} V"}
    scores = nl.nas(model, [s for s in probe.train], progress=False)
    heads = sorted(
        (nl.Head(layer, head) for layer in range(scores.head.shape[0])
         for head in range(scores.head.shape[1])),
        key=lambda h: -float(scores.head[h.layer, h.head]),
    )[:n_heads]  # fmt: skip
    config = NasaConfig(
        lr=lr, max_epochs=epochs, early_stopping=False, cancellation=False, halting="never"
    )
    start = time.perf_counter()
    result = nl.nasa(model, probe, heads, config, progress=False)
    before, after = adapt(model).hf_parameters(), adapt(result.model).hf_parameters()
    allowed: dict[str, set[int]] = {}
    for head in heads:
        for s in adapt(model).qk_slices(head):
            allowed.setdefault(s.name, set()).update(range(s.param.shape[0])[s.rows])
    changed = {}
    outside = 0
    for name, p in after.items():
        rows = (p != before[name]).reshape(p.shape[0], -1).any(dim=1).nonzero().flatten().tolist()
        if rows:
            changed[name] = len(rows)
            outside += len(set(rows) - allowed.get(name, set()))
    return {
        "heads": [str(h) for h in heads],
        "lr": lr,
        "epochs": epochs,
        "n_train": len(probe.train),
        "n_val": len(probe.val),
        "rows_changed": changed,
        "rows_changed_outside_the_trained_slices": outside,
        "share_yes_on_V": [r["end_share_yes"] for r in result.head_records],
        "dtype_after": str(next(iter(after.values())).dtype),
        "seconds": round(time.perf_counter() - start, 1),
    }


def trap(model, steps: int) -> dict:
    """Share of one head's query-row entries that ``steps`` AdamW steps at 1e-6 change."""
    adapter = adapt(model)
    batch = encode(model, builtin("probe", n=16), template=binary())
    head = nl.Head(adapter.info.n_layers // 2, 0)
    resid = train.residuals(adapter, batch, head.layer, chunk_size=16)
    targets = torch.full((len(batch),), batch.pos_target)
    out = {}
    for label, master in (("with_master_copies", None), ("without", False)):
        tuned = adapt(adapter.clone())
        q = tuned.qk_slices(head)[0]
        start = q.param.detach()[q.rows].clone()
        with train.master_weights(tuned, [q], master=master) as weights:
            opt = train.optimizer(weights.params, 1e-6)
            for _ in range(steps):
                loss = train.answer_loss(tuned, resid, head.layer, batch, targets)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                weights.step(opt)
        moved = q.param.detach()[q.rows] != start
        out[label] = round(float(moved.float().mean()), 4)
    return {"head": str(head), "lr": 1e-6, "steps": steps, "share_of_row_entries_changed": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few samples")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=None, help="eval samples (default: all 200)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--trap-steps", type=int, default=20)
    parser.add_argument("--skip-nasa", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    models = {
        "float32": load(args.quick, torch.float32, args.device),
        "bfloat16": load(args.quick, torch.bfloat16, args.device),
    }
    n = args.n or (16 if args.quick else None)
    report: dict = {"model": nl.info(models["float32"]).name, "device": args.device}
    report["agreement"] = agreement(models, builtin("eval", n=n))
    print(json.dumps(report["agreement"], indent=1), flush=True)
    report["trap"] = trap(models["bfloat16"], 3 if args.quick else args.trap_steps)
    print(json.dumps(report["trap"]), flush=True)
    if not args.skip_nasa:
        report["nasa_bfloat16"] = nasa_run(
            models["bfloat16"], args.quick, args.lr, args.heads, args.epochs
        )
        print(json.dumps(report["nasa_bfloat16"], indent=1), flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or REPO / "bench" / "results" / f"dtype_agreement_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
