"""make gpu-check: a clean skip without CUDA, and its plan of steps."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import gpu_check  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: make gpu-check runs")
def test_without_cuda_it_says_so_and_exits_0():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("gpu-check: skipped, nothing was run: no CUDA device")


def test_the_plan_covers_the_device_tests_and_every_bench(tmp_path):
    one = gpu_check.steps(tmp_path, 1)
    labels = [s.label for s in one]
    assert labels[0] == "tests on cuda" and one[0].env == {"NASALENS_TEST_DEVICE": "cuda"}
    assert "-m" in one[0].command and "devices" in one[0].command
    benches = ("nas_cost float32", "tune_cost bfloat16", "dtype_agreement", "load_memory")
    for bench in (*benches, "step_memory"):
        assert bench in labels
    assert ("rank_cost" in labels) == (REPO / "bench" / "rank_cost.py").is_file()
    two = gpu_check.steps(tmp_path, 2)
    assert two[1].env["NASALENS_TEST_SPLIT"] == "cuda2"
    assert all("--device" in s.command for s in one[1:])
    # Each step's own limit; --budget (570 s) ends the whole, skipping steps that no longer fit.
    assert sum(s.limit for s in one) <= 570
