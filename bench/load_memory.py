"""Peak host memory while `load_model` loads a model, against the size of its weights.

Each load runs in a fresh subprocess that first loads a tiny model through the same code (so
every module the load imports is already imported), then records VmRSS, loads the model and
reads VmHWM (the peak resident set since the reset): ``peak - before`` is what the load itself
held at its worst, weights and all. Memory figures do not depend on other jobs on the machine
(times do). Two models:

* ``embedded``: SmolLM2-135M-Instruct from its converted safetensors cache (one per dtype; the
  first load of a dtype converts the GGUF once and is not what is measured here);
* ``wide-float32``, ``wide-bfloat16``: the tiny test model widened to d_model 2048, d_mlp
  5632, 16 heads (4 KV heads), 8 layers (361 M parameters), saved by ``save_pretrained`` in
  float32 (1.4 GB) or bfloat16 (0.7 GB) to a temp folder, deleted afterwards.

Cases: float32 and bfloat16 on ``--device``, and bfloat16 with half the layers offloaded to
disk (``device_map``). The issue's target: peak - before <= 1.2 x the bfloat16 weights.
A poll of /proc/self/status every 0.5 ms splits the peak into anonymous memory (tensors the load
allocated) and file-backed pages (the checkpoint's files, memory-mapped by safetensors: clean
page cache that the kernel may drop, counted in RSS while mapped). Loading a float32 file in
bfloat16 maps the whole file but allocates only bfloat16 weights: no float32 copy.

    python bench/load_memory.py                  # CPU, both models (~2 min)
    python bench/load_memory.py --device cuda    # host memory while loading onto the GPU
    python bench/load_memory.py --quick          # a smaller wide model
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20
TARGET = 1.2

CHILD = r"""
import json, sys, tempfile, threading, time
import torch
from nasalens.models import adapt, load_model, tiny_hf_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

class Poll(threading.Thread):
    # The peak of anonymous and of file-backed resident memory, sampled every 0.5 ms.
    def __init__(self):
        super().__init__()
        self.stop, self.anon, self.file = False, 0, 0
    def run(self):
        while not self.stop:
            self.anon = max(self.anon, status("RssAnon"))
            self.file = max(self.file, status("RssFile"))
            time.sleep(0.0005)

name, dtype, device, split = sys.argv[1], getattr(torch, sys.argv[2]), sys.argv[3], sys.argv[4]
warm = tempfile.mkdtemp()
hf, tok = tiny_hf_model()
hf.save_pretrained(warm)
tok.save_pretrained(warm)
load_model(warm, dtype=dtype)  # imports every module the load below needs
del hf
options = {}
if split == "disk":
    n_layers = 30 if name == "embedded" else 8
    half = {f"model.layers.{i}": "disk" if i < n_layers // 2 else "cpu" for i in range(n_layers)}
    options = {"device_map": {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", **half,
               "model.norm": "cpu", "lm_head": "cpu"}, "offload_folder": tempfile.mkdtemp()}
elif device != "cpu":
    options = {"device": device}
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset VmHWM
before, anon, file = status("VmRSS"), status("RssAnon"), status("RssFile")
poll = Poll()
poll.start()
start = time.perf_counter()
model = load_model(None if name == "embedded" else name, dtype=dtype, **options)
seconds = time.perf_counter() - start
poll.stop = True
poll.join()
peak = status("VmHWM")
anon_peak = max(poll.anon, status("RssAnon")) - anon
file_peak = max(poll.file, status("RssFile")) - file
shapes = [(t.numel(), t.element_size()) for t in adapt(model).hf_tensors().values()]
weights = sum(n * size for n, size in shapes)
bf16 = sum(n * 2 for n, _ in shapes)
gpu = torch.cuda.memory_allocated() if torch.cuda.is_available() else 0
print(json.dumps({"before": before, "peak": peak, "weights": weights, "bf16_weights": bf16,
                  "anon": anon_peak, "file": file_peak,
                  "gpu_allocated": gpu, "seconds": seconds}))
"""


def wide_checkpoint(folder: Path, quick: bool, dtype: str) -> None:
    import torch

    from nasalens.models import tiny_hf_model

    size = (
        {"d_model": 512, "d_mlp": 1536, "n_heads": 8, "n_kv_heads": 2, "n_layers": 8}
        if quick
        else {"d_model": 2048, "d_mlp": 5632, "n_heads": 16, "n_kv_heads": 4, "n_layers": 8}
    )
    hf, tok = tiny_hf_model(**size)
    hf.to(getattr(torch, dtype)).save_pretrained(folder)
    tok.save_pretrained(folder)


def measure(name: str, dtype: str, device: str, split: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, name, dtype, device, split],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{name} {dtype} {split}: {proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    held = r["peak"] - r["before"]
    return {
        "model": Path(name).name,
        "dtype": dtype,
        "placement": split if split == "disk" else device,
        "weights_mib": round(r["weights"] / MIB, 1),
        "peak_minus_before_mib": round(held / MIB, 1),
        "x_weights": round(held / r["weights"], 3),
        "x_bf16_weights": round(held / r["bf16_weights"], 3),
        "anon_peak_mib": round(r["anon"] / MIB, 1),
        "file_peak_mib": round(r["file"] / MIB, 1),
        "anon_x_weights": round(r["anon"] / r["weights"], 3),
        "gpu_allocated_mib": round(r["gpu_allocated"] / MIB, 1),
        "seconds": round(r["seconds"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="a 27 M-parameter wide model")
    parser.add_argument(
        "--models", nargs="*", default=["embedded", "wide-float32", "wide-bfloat16"]
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    cases = {
        "embedded": (("float32", "-"), ("bfloat16", "-"), ("bfloat16", "disk")),
        "wide-float32": (("float32", "-"), ("bfloat16", "-")),
        "wide-bfloat16": (("bfloat16", "-"), ("bfloat16", "disk")),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            name = "embedded"
            if model != "embedded":  # the wide model, saved in float32 or in bfloat16
                name = str(Path(tmp) / model)
                wide_checkpoint(Path(name), args.quick, model.removeprefix("wide-"))
            for dtype, split in cases[model]:
                row = measure(name, dtype, args.device, split)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{'model':9s} {'dtype':9s} {'placement':9s} {'weights':>9s} {'held':>9s} "
          f"{'x weights':>9s} {'anon':>9s} {'file':>9s}")  # fmt: skip
    for r in rows:
        print(
            f"{r['model']:9s} {r['dtype']:9s} {r['placement']:9s} {r['weights_mib']:8.1f}M "
            f"{r['peak_minus_before_mib']:8.1f}M {r['x_weights']:9.3f} "
            f"{r['anon_peak_mib']:8.1f}M {r['file_peak_mib']:8.1f}M"
        )
    bf16 = [r for r in rows if r["dtype"] == "bfloat16" and r["placement"] != "disk"]
    met = all(r["x_weights"] <= TARGET for r in bf16)
    print(f"target: held <= {TARGET} x bfloat16 weights: {met}")
    out = args.out or REPO / "bench" / "results" / f"load_memory_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
