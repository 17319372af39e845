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
from nasalens.tuning.runs import Run, apply_tensors, is_run, load_any, tune_run
from tests.builders import weights
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


# --- a kill during a write: the torn log line and the half-written checkpoint ---------------

KILLED_IN_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import safetensors.torch
    from nasalens.models import tiny_model
    from nasalens.tuning import runs

    where, count = sys.argv[2], int(sys.argv[3])
    calls = 0

    def die():
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a hard kill

    def torn_append(path, record):  # the count-th log line is cut in the middle of its write
        global calls
        calls += 1
        if calls < count:
            return append(path, record)
        with open(path, "a") as handle:
            line = runs.json.dumps(record)
            handle.write(line[: len(line) // 2])
            handle.flush()
            os.fsync(handle.fileno())
        die()

    def torn_save(tensors, filename, metadata=None):  # the count-th checkpoint, half written
        global calls
        if "checkpoints" not in filename:
            return save(tensors, filename, metadata=metadata)
        calls += 1
        if calls < count:
            return save(tensors, filename, metadata=metadata)
        save(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as handle:
            handle.truncate(os.path.getsize(filename) // 2)
        die()

    append, save = runs.append_jsonl, safetensors.torch.save_file
    if where == "log":
        runs.append_jsonl = torn_append
    else:
        safetensors.torch.save_file = torn_save
    runs.Run.open(sys.argv[1]).execute(tiny_model(seed=0), progress=False)
    """
)


def kill_in_write(tmp_path, tiny_model, where, count):
    folder = tmp_path / f"killed-{where}"
    Run.create(folder, tiny_model, make_probe(), HEADS, CONFIG)
    script = tmp_path / "killed_in_write.py"
    script.write_text(KILLED_IN_WRITE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(script), str(folder), where, str(count)],
        env=env,
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    return folder


def test_a_kill_during_a_log_write_resumes_bit_identical(tiny_model, tmp_path, caplog):
    whole = tune_run(tmp_path / "whole", tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    # Head 0 logs 3 epochs and its end (4 lines); the 6th line is head 1's second epoch.
    folder = kill_in_write(tmp_path, tiny_model, "log", 6)
    text = (folder / "log.jsonl").read_text()
    assert not text.endswith("\n") and text.count("\n") == 5  # a torn sixth line
    run = Run.open(folder)
    assert [r["head_index"] for r in run.records()] == [0, 0, 0, 0, 1]
    assert "dropped a torn last line" in caplog.text
    assert run.status() == {"heads_done": 1, "halted": False, "state": "partial"}
    resumed = run.execute(tiny_model, progress=False)
    a, b = weights(whole.model), weights(resumed.model)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert strip_time(resumed.records) == strip_time(whole.records)
    assert (folder / "log.jsonl").read_text().endswith("\n")


def test_a_kill_during_a_checkpoint_write_resumes_bit_identical(tiny_model, tmp_path):
    whole = tune_run(tmp_path / "whole", tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    folder = kill_in_write(tmp_path, tiny_model, "checkpoint", 2)  # head 1's checkpoint
    names = sorted(p.name for p in (folder / "checkpoints").iterdir())
    assert names[0].startswith(".head-001.safetensors.")  # the half-written temp file
    assert names[1:] == ["head-000.safetensors"]
    run = Run.open(folder)
    assert run.status()["heads_done"] == 1
    resumed = run.execute(tiny_model, progress=False)
    a, b = weights(whole.model), weights(resumed.model)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert strip_time(resumed.records) == strip_time(whole.records)
    names = sorted(p.name for p in (folder / "checkpoints").iterdir())
    assert names == ["head-000.safetensors", "head-001.safetensors", "head-002.safetensors"]


def test_a_damaged_checkpoint_is_set_aside_and_its_head_runs_again(tiny_model, tmp_path, caplog):
    whole = tune_run(tmp_path / "whole", tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    folder = tmp_path / "damaged"
    tune_run(folder, tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    (folder / "final.safetensors").unlink()
    ckpt = folder / "checkpoints" / "head-002.safetensors"
    raw = bytearray(ckpt.read_bytes())
    raw[-4] ^= 0xFF  # one changed byte of the tensors: found by the hash, not by the parser
    ckpt.write_bytes(bytes(raw))
    run = Run.open(folder)
    assert run.status() == {"heads_done": 2, "halted": False, "state": "partial"}
    assert "checkpoint head-002.safetensors is damaged" in caplog.text
    resumed = run.execute(tiny_model, progress=False)
    assert (folder / "checkpoints" / "head-002.safetensors.damaged").is_file()
    a, b = weights(whole.model), weights(resumed.model)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert strip_time(resumed.records) == strip_time(whole.records)
    final = folder / "final.safetensors"
    final.write_bytes(final.read_bytes()[:100])  # a truncated final: not finished any more
    with pytest.raises(NasalensError, match=r"an intact final.safetensors .* is missing"):
        Run.open(folder).tuned_model(tiny_model)
    Run.open(folder).execute(tiny_model, progress=False)  # writes it again
    assert Run.open(folder).status()["state"] == "done"


# --- every file a run reads goes through one validating reader ------------------------------

BAD_RUN_FILES = [
    ("run.json", '{"model": null, "tau": "abc", "format": 1}', "'tau' must be a number"),
    ("run.json", '{"model": null, "tau": 1.0, "tau": 2.0, "format": 1}', "appears twice"),
    ("run.json", "[1, 2]", "not a run.json of format 1"),
    ("probe.json", '{"tau": "abc"}', "probe.json"),
    ("config.json", '{"lr": -1.0}', "NasaConfig.lr=-1.0: use a positive learning rate"),
    ("config.json", '{"lr": 1' + "0" * 400 + "}", "config.json"),
    ("heads.json", '{"heads": ["L1H2"], "nas": [1.0, 2.0]}', "'nas' must hold one number"),
    ("heads.json", '{"heads": ["L1H2"], "nas": 5}', "'nas' must hold one number"),
    ("heads.json", '{"heads": ["L1H2", "L1H2"]}', "appears twice"),
    ("heads.json", '{"heads": ["1.2"]}', "not of the form"),
    ("heads.json", '{"heads": []}', "no heads"),
    ("heads.json", b'{"heads": ["L1H2\xff"]}', "not valid UTF-8"),
    ("log.jsonl", '{"event": "epoch", "head_index": 0}\n[1]\n{"a": 1}\n', "log.jsonl:2: not a log"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_RUN_FILES)
def test_a_bad_run_file_is_named_with_its_fault(tiny_model, tmp_path, name, content, message):
    folder = tmp_path / "run"
    Run.create(folder, tiny_model, make_probe(), HEADS, CONFIG)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(NasalensError) as info:
        Run.open(folder).records()
    assert message in str(info.value) and str(path) in str(info.value)


def test_heads_outside_the_model_are_named_before_any_training(tiny_model, tmp_path):
    folder = tmp_path / "run"
    Run.create(folder, tiny_model, make_probe(), HEADS, CONFIG)
    (folder / "heads.json").write_text('["L99H99"]')
    with pytest.raises(NasalensError, match="head L99H99 does not exist"):
        Run.open(folder).execute(tiny_model, progress=False)


def test_missing_run_files_are_listed_and_unfinished_runs_refused(tiny_model, tmp_path):
    folder = tmp_path / "run"
    Run.create(folder, tiny_model, make_probe(), HEADS, CONFIG)
    (folder / "probe.json").unlink()
    (folder / "heads.json").unlink()
    with pytest.raises(NasalensError, match=r"probe.json \(the probing set\), heads.json"):
        Run.open(folder)
    with pytest.raises(NasalensError, match=r"a NASA run folder has run\.json"):
        load_any(tmp_path)  # neither a run nor a model folder
    export(tiny_model, tmp_path / "hf")
    base, _ = load_any(tmp_path / "hf")
    assert base is None and is_run(folder) and not is_run(tmp_path / "hf")
    fresh = tmp_path / "fresh"
    Run.create(fresh, tiny_model, make_probe(), HEADS, CONFIG)
    with pytest.raises(NasalensError, match=r"not finished: final.safetensors \(0 of 3 heads"):
        load_any(fresh)
