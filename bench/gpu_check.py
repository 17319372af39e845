"""`make gpu-check`: the device tests and the benches on CUDA, in one table (under 10 minutes).

Without CUDA it prints one line saying so and exits 0: nothing here can run on a CPU-only
machine that `make test` does not already run. With CUDA, in order, each step with its own
time limit (the whole stays under ``--budget`` seconds; steps that no longer fit are skipped):

1. the tests marked ``devices`` with ``NASALENS_TEST_DEVICE=cuda`` (bfloat16 vs float32 on the
   GPU, master weights, the embedded model's bfloat16 tolerances, the disk split);
2. with two GPUs, the split tests with the layers on GPUs 0 and 1 (``NASALENS_TEST_SPLIT=cuda2``);
3. the benches on the GPU: ``nas_cost`` and ``tune_cost`` (float32 and bfloat16),
   ``rank_cost`` when it exists, ``dtype_agreement`` (the bfloat16 figures of the issue),
   ``load_memory`` (host memory while loading onto the GPU) and ``step_memory`` (each step's
   GPU memory against the formulas of docs/large_models.md).

Each bench writes its JSON under ``--out`` (default ``bench/results/gpu``); the table shows the
step, its outcome, its time and a few figures. Exit status 1 when any step failed.

    make gpu-check                      # = python bench/gpu_check.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def figures_nas(data: dict) -> str:
    parts = []
    for name, batch in data.get("batches", {}).items():
        c = batch["results"]["c_nas"]
        parts.append(
            f"{name}: nas {c['median_s']:.3f}s peak {c['peak_mib']:.0f}MiB "
            f"c/a {batch['ratios']['c/a time']:.2f}"
        )
    return "; ".join(parts)


def figures_tune(data: dict) -> str:
    rows = ", ".join(f"L{r['layer']} {r['skip_s']:.3f}s x{r['ratio']:.2f}" for r in data["rows"])
    return f"full-depth step {data['full_depth_step_s']:.3f}s; skipping: {rows}"


def figures_dtype(data: dict) -> str:
    a = data["agreement"]
    out = (
        f"max|dNAS| {a['max_abs_delta_nas']:.3f}, top-30 {a['top30_rule_agree']}/30, "
        f"decisions {a['decisions_agree']:.3f}"
    )
    nasa = data.get("nasa_bfloat16", {})
    if "rows_changed_outside_the_trained_slices" in nasa:
        out += f", NASA rows outside {nasa['rows_changed_outside_the_trained_slices']}"
    return out


def figures_memory(data: list) -> str:
    return "; ".join(
        f"{r['model']} {r['dtype']}: host x{r['x_weights']:.2f}, "
        f"gpu {r['gpu_allocated_mib']:.0f}MiB"
        for r in data
    )


def figures_steps(data: list) -> str:
    ratios = [r["measured/formula"] for r in data]
    return f"{len(ratios)} steps, measured/formula {min(ratios):.2f}..{max(ratios):.2f}"


@dataclass(frozen=True)
class Step:
    """One command of the check: what it runs, its time limit, the JSON it writes."""

    label: str
    command: list[str]
    limit: int
    env: dict = field(default_factory=dict)
    result: Path | None = None
    summarize: Callable = str


def figures_rank(data: dict) -> str:
    """The attribution, verified and exact ranking costs, in bare forwards of the batch."""
    batch = data["batches"]["embedded"]
    r = batch["results"]
    return (
        f"attribution {r['attribution']['forwards']:.1f}, verified {r['verified']['forwards']:.1f}"
        f", exact {r['exact']['forwards']:.1f} forwards; Spearman "
        f"{batch['agreement']['spearman']:.2f}"
    )


def steps(out: Path, n_gpus: int) -> list[Step]:
    py = sys.executable
    cuda = {"NASALENS_TEST_DEVICE": "cuda"}
    tests = [py, "-m", "pytest", "-q", "-p", "no:xdist"]
    plan = [Step("tests on cuda", [*tests, "-m", "devices", "tests"], 140, cuda)]
    if n_gpus >= 2:
        split = {**cuda, "NASALENS_TEST_SPLIT": "cuda2"}
        plan.append(
            Step("split over cuda:0/1", [*tests, "tests/test_models_placement.py"], 60, split)
        )

    def bench(label: str, script: str, limit: int, summarize: Callable, *options: str) -> Step:
        result = out / f"{label.replace(' ', '_')}.json"
        command = [py, f"bench/{script}", "--device", "cuda", *options, "--out", str(result)]
        return Step(label, command, limit, {}, result, summarize)

    for dtype in ("float32", "bfloat16"):
        plan.append(bench(f"nas_cost {dtype}", "nas_cost.py", 60, figures_nas, "--dtype", dtype))
        plan.append(bench(f"tune_cost {dtype}", "tune_cost.py", 45, figures_tune, "--dtype", dtype))
    if (REPO / "bench" / "rank_cost.py").is_file():  # the lead's, when it lands
        light = ("--only", "embedded", "--loop-heads", "3", "--repeats", "1")
        plan.append(bench("rank_cost", "rank_cost.py", 30, figures_rank, *light))
    plan.append(bench("dtype_agreement", "dtype_agreement.py", 85, figures_dtype))
    models = ("--models", "embedded", "wide-bfloat16")
    plan.append(bench("load_memory", "load_memory.py", 60, figures_memory, *models))
    plan.append(bench("step_memory", "step_memory.py", 45, figures_steps))
    return plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=570, help="seconds for every step")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        why = (
            "this torch is a CPU build (GPU_PYTHON= an environment with a CUDA build)"
            if torch.version.cuda is None
            else f"torch is built for CUDA {torch.version.cuda} but sees no device"
        )
        print(
            f"gpu-check: skipped, nothing was run: no CUDA device; torch {torch.__version__}: {why}"
        )
        return 0
    n_gpus = torch.cuda.device_count()
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(n_gpus))
    print(f"gpu-check: {n_gpus} CUDA device(s): {names}; torch {torch.__version__}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    deadline = time.monotonic() + args.budget
    rows = []
    for step in steps(args.out, n_gpus):
        label, left = step.label, deadline - time.monotonic()
        if left < min(step.limit, 30):
            rows.append((label, "skipped", 0.0, f"no time left ({left:.0f}s)"))
            continue
        start = time.monotonic()
        try:
            proc = subprocess.run(
                step.command, cwd=REPO, env={**env, **step.env}, capture_output=True, text=True,
                timeout=min(step.limit, left), check=False,
            )  # fmt: skip
            status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
            tail = (proc.stdout + proc.stderr).strip().splitlines()
        except subprocess.TimeoutExpired:
            status, tail = "TIMEOUT", []
        seconds = time.monotonic() - start
        note = tail[-1] if tail else ""
        if status == "ok" and step.result is not None and step.result.is_file():
            note = step.summarize(json.loads(step.result.read_text()))
        elif status != "ok":
            print(f"--- {label} ---\n" + "\n".join(tail[-30:]), flush=True)
        rows.append((label, status, seconds, note))
        print(f"{label}: {status} ({seconds:.0f}s)", flush=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'step':{width}s}  {'outcome':12s} {'time':>6s}  figures")
    for label, status, seconds, note in rows:
        print(f"{label:{width}s}  {status:12s} {seconds:5.0f}s  {note}")
    return 1 if any(r[1] not in ("ok", "skipped") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
