"""Run folders: resume after SIGKILL mid-epoch ends bit-identical; exports load in plain HF."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nasalens.artifacts import read_tensors
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet
from nasalens.models import Head, adapt, load_model
from nasalens.tuning import NasaConfig
from nasalens.tuning.export import export
from nasalens.tuning.runs import Run, apply_tensors, tune_run
from tests.test_tuning import make_probe

REPO = Path(__file__).resolve().parents[1]
HEADS = HeadSet.of(["L1H2", "L0H1", "L1H0"])
#: Rules off: every head trains 3 epochs of 2 steps, so the kill lands inside head 1's epochs.
CONFIG = NasaConfig(
    lr=1e-2, batch_size=4, max_epochs=3, early_stopping=False, cancellation=False, halting="never"
)

KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from nasalens.models import tiny_model
    from nasalens.tuning import train
    from nasalens.tuning.runs import Run

    steps = 0
    loss = train.answer_loss

    def counting_loss(*args, **kwargs):
        global steps
        steps += 1
        if steps == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a hard kill
        return loss(*args, **kwargs)

    train.answer_loss = counting_loss
    Run.open(sys.argv[1]).execute(tiny_model(seed=0), progress=False)
    """
)


def weights(model):
    return {n: p.detach().clone() for n, p in adapt(model).hf_parameters().items()}


def strip_time(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_a_run_killed_mid_epoch_resumes_bit_identical(tiny_model, tmp_path):
    whole = tune_run(tmp_path / "whole", tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    folder = tmp_path / "killed"
    Run.create(folder, tiny_model, make_probe(), HEADS, CONFIG)
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # Head 0 takes 6 steps; step 9 is in head 1's second epoch.
    proc = subprocess.run(
        [sys.executable, str(script), str(folder), "9"], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    run = Run.open(folder)
    assert run.status() == {"heads_done": 1, "halted": False, "state": "partial"}
    epochs = [r for r in run.records() if r["event"] == "epoch"]
    assert [r["head_index"] for r in epochs] == [0, 0, 0, 1]  # head 1 was mid-way
    resumed = run.execute(tiny_model, progress=False)
    a, b = weights(whole.model), weights(resumed.model)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert strip_time(resumed.records) == strip_time(whole.records)
    final = read_tensors(folder / "final.safetensors")
    assert sorted(final) == [
        "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.q_proj.weight",
    ]  # fmt: skip


def test_a_kill_between_log_and_checkpoint_reruns_that_head(tiny_model, tmp_path):
    whole = tune_run(tmp_path / "whole", tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    folder = tmp_path / "cut"
    tune_run(folder, tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    (folder / "final.safetensors").unlink()
    (folder / "checkpoints" / "head-002.safetensors").unlink()  # head 2 logged, not saved
    run = Run.open(folder)
    assert run.status()["heads_done"] == 2
    resumed = run.execute(tiny_model, progress=False)
    assert strip_time(resumed.records) == strip_time(whole.records)
    a, b = weights(whole.model), weights(resumed.model)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert Run.open(folder).tuned_model(tiny_model) is not None


def test_a_run_folder_refuses_other_settings_and_unfinished_reads(tiny_model, tmp_path):
    folder = tmp_path / "run"
    Run.create(folder, tiny_model, make_probe(), HEADS, CONFIG)
    with pytest.raises(NasalensError, match="already holds a run"):
        Run.create(folder, tiny_model, make_probe(), HEADS, CONFIG)
    with pytest.raises(NasalensError, match=r"other settings .*'lr'"):
        tune_run(folder, tiny_model, make_probe(), HEADS, CONFIG.replace(lr=0.5), progress=False)
    with pytest.raises(NasalensError, match="not finished"):
        Run.open(folder).tuned_model(tiny_model)
    with pytest.raises(NasalensError, match="not a NASA run folder"):
        Run.open(tmp_path)


def test_export_loads_in_plain_transformers_with_equal_logits(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tuned = tune_run(tmp_path / "run", tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    out = export(tuned.model, tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template and tok.bos_token_id == tiny_model.tokenizer.bos_token_id
    tokens = torch.randint(3, 300, (2, 11))
    with torch.no_grad():
        expected = tuned.model(tokens)
        got = hf(tokens).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # And it loads back as a bridge with the same weights.
    again = weights(load_model(str(out)))
    assert all(torch.equal(again[n], p) for n, p in weights(tuned.model).items())
    with pytest.raises(NasalensError, match="not an empty folder"):
        export(tuned.model, out)


def test_apply_tensors_names_a_misfit(tiny_model_copy):
    with pytest.raises(NasalensError, match="does not fit"):
        apply_tensors(tiny_model_copy, {"model.layers.9.self_attn.q_proj.weight": torch.zeros(2)})
    q, _ = adapt(tiny_model_copy).qk_slices(Head(0, 0))
    apply_tensors(tiny_model_copy, {q.name: torch.ones_like(q.param)})
    assert torch.equal(q.param, torch.ones_like(q.param))
