"""Models split across devices: every public path against the undivided model.

Here (no GPU) the split is the one a CPU-only machine has: accelerate offloads the embedding and
layer 0 of the tiny model to disk and keeps layer 1 resident on the CPU; the split model must
give the undivided model's numbers exactly. Under `make gpu-check` with two GPUs the same tests
run with the layers on GPUs 0 and 1 (tests/devices.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import nasalens as nl
from nasalens.analysis import analyze
from nasalens.errors import NasalensError
from nasalens.generation import short_answers
from nasalens.heads import HeadSet
from nasalens.metrics import answer_logprobs
from nasalens.models import Head, adapt, load_model, tiny_hf_model
from nasalens.models.bridge import BridgeAdapter
from nasalens.patching import contrast, move_attention, patch
from nasalens.prompts import binary, encode
from nasalens.tuning import NasaConfig
from nasalens.tuning.export import export
from nasalens.tuning.runs import Run, tune_run
from nasalens.validation import rank_heads
from tests.builders import make_question, make_samples
from tests.devices import split_kind, split_map, tolerance
from tests.test_tuning import make_probe

pytestmark = pytest.mark.devices

KIND = split_kind()
ATOL = tolerance(torch.device("cpu" if KIND == "disk" else "cuda"))
#: The rules off: every head trains every epoch, so the runs compare step for step.
FREE = NasaConfig(
    lr=1e-2, batch_size=4, max_epochs=2, early_stopping=False, cancellation=False, halting="never"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-hf")
    hf, tok = tiny_hf_model(seed=0)
    hf.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def whole(folder):
    """The undivided float32 model on the CPU: the reference."""
    return load_model(folder)


@pytest.fixture(scope="module")
def split(folder, tmp_path_factory):
    if KIND == "cuda2" and torch.cuda.device_count() < 2:
        pytest.skip("NASALENS_TEST_SPLIT=cuda2 needs two CUDA devices")
    offload = tmp_path_factory.mktemp("offload") if KIND == "disk" else None
    return load_model(folder, device_map=split_map(2, KIND), offload_folder=offload)


@pytest.fixture(scope="module")
def samples():
    return make_samples(6)


def close(a, b):
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0, equal_nan=True)


def test_the_split_is_what_the_map_says(split, whole):
    adapter = adapt(split)
    assert adapter.split and not adapt(whole).split
    placed = split.original_model.hf_device_map
    assert placed["model.layers.0"] == ("disk" if KIND == "disk" else 0)
    assert adapter.device == torch.device("cpu" if KIND == "disk" else "cuda:0")
    assert split.cfg.device == str(adapter.device)  # not the embedding's meta placeholder
    resident = adapter.hf_parameters()
    if KIND == "disk":  # offloaded weights are meta placeholders, left out of hf_parameters
        assert all(n.startswith(("model.layers.1.", "model.norm", "lm_head")) for n in resident)
    # Every weight reads back, offloaded ones included, equal to the undivided model's.
    ours, theirs = adapter.hf_tensors(), adapt(whole).hf_tensors()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[n], theirs[n]) for n in theirs)


def test_nas_and_decisions(split, whole, samples):
    close(nl.nas(split, samples, progress=False).per_sample, nl.nas(whole, samples).per_sample)
    a = nl.evaluate(split, samples, progress=False).per_sample
    b = nl.evaluate(whole, samples, progress=False).per_sample
    close(torch.tensor(a["logit_diff"].to_numpy()), torch.tensor(b["logit_diff"].to_numpy()))
    assert list(a["decision"]) == list(b["decision"])


@pytest.mark.parametrize("how", ["zero", "mean", "resample"])
def test_ablations(split, whole, samples, how):
    heads = [Head(0, 1), Head(1, 2)]  # one head on each side of the split
    out = []
    for model in (split, whole):
        batch = encode(model, samples, template=binary())
        with nl.ablate(model, heads, how=how, reference=batch):
            out.append(answer_logprobs(model, batch, progress=False))
    close(*out)


def test_patching_and_attention_moves(split, whole, samples):
    heads = [Head(0, 3), Head(1, 0)]
    out = []
    for model in (split, whole):
        clean, corrupt = contrast(model, samples, n_shots=2)
        with patch(model, heads, clean, corrupt):
            patched = answer_logprobs(model, corrupt, progress=False)
        with move_attention(model, heads, corrupt, how="equalize"):
            moved = answer_logprobs(model, corrupt, progress=False)
        sweep = nl.patch_heads(model, clean, corrupt, chunk_size=4, progress=False)
        out.append((patched, moved, sweep))
    (p1, m1, s1), (p2, m2, s2) = out
    close(p1, p2)
    close(m1, m2)
    close(s1.patched, s2.patched)
    assert s1.resumed and s2.resumed


@pytest.mark.parametrize("method", ["attribution", "exact", "verified"])
def test_rank_heads(split, whole, samples, method):
    ranked = [
        rank_heads(m, samples, method=method, chunk_size=4, progress=False) for m in (split, whole)
    ]
    for score in ranked[0].scores:
        close(torch.tensor(ranked[0].score(score)), torch.tensor(ranked[1].score(score)))
    assert list(ranked[0]) == list(ranked[1])


def test_validate_heads(split, whole, samples):
    heads = [Head(1, 2), Head(0, 0)]
    checked = [
        nl.validate_heads(m, samples, heads, n_sets=2, n_boot=20, per_head=1, progress=False)
        for m in (split, whole)
    ]
    for column in ("baseline", "ablated", "effect", "random_mean"):
        a, b = (torch.tensor(c.summary[column].to_numpy()) for c in checked)
        close(a, b)


def test_greedy_decoding_runs_through_the_bridge(split, whole, monkeypatch):
    questions = [make_question(id=f"q{i}").positive() for i in range(3)]
    # The undivided model decodes with a cache through its Hugging Face twin.
    expected = short_answers(whole, questions, max_new_tokens=5, progress=False)

    def bare_twin(self):
        raise AssertionError("a split model must not lend its weights to a bare HF twin")

    monkeypatch.setattr(BridgeAdapter, "_hf_twin", bare_twin)
    got = short_answers(split, questions, max_new_tokens=5, progress=False)
    assert list(got["answer"]) == list(expected["answer"])
    # The twin attends with sdpa, the bridge eagerly: equal up to float rounding.
    got_entropy, expected_entropy = (
        torch.tensor(f["first_entropy"].to_numpy()) for f in (got, expected)
    )
    torch.testing.assert_close(got_entropy, expected_entropy, atol=1e-4, rtol=0)


def test_nasa_resume_and_export(split, whole, tmp_path):
    heads = HeadSet.of(["L1H2", "L1H0"])  # layer 1 is resident in every split kind
    runs = {}
    for name, model in (("split", split), ("whole", whole)):
        runs[name] = tune_run(tmp_path / name, model, make_probe(), heads, FREE, progress=False)
    ours, theirs = adapt(runs["split"].model), adapt(runs["whole"].model)
    for name, p in theirs.hf_parameters().items():
        close(ours.hf_tensors()[name], p.detach().cpu())
    assert ours.split and not adapt(split).hf_parameters().keys() - ours.hf_parameters().keys()
    for a, b in zip(runs["split"].head_records, runs["whole"].head_records, strict=True):
        assert a["decision"] == b["decision"]
        assert a["end_model_nas"] == pytest.approx(b["end_model_nas"], abs=max(ATOL, 1e-6))
    # Resume after losing the last head's checkpoint: the same weights as the whole run.
    (tmp_path / "split" / "final.safetensors").unlink()
    (tmp_path / "split" / "checkpoints" / "head-001.safetensors").unlink()
    resumed = Run.open(tmp_path / "split").execute(split, progress=False)
    again = adapt(resumed.model).hf_tensors()
    assert all(torch.equal(again[n], t) for n, t in ours.hf_tensors().items())
    # The export reads offloaded weights back and loads in plain transformers.
    from transformers import AutoModelForCausalLM

    out = export(runs["split"].model, tmp_path / "export")
    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    for name, p in plain.named_parameters():
        close(p.detach(), adapt(runs["whole"].model).hf_tensors()[name])


def test_an_offloaded_head_cannot_train(split):
    if KIND != "disk":
        pytest.skip("only a disk split offloads weights")
    with pytest.raises(NasalensError, match="offloaded by the model's device_map"):
        nl.nasa(split, make_probe(), HeadSet.of(["L0H1"]), FREE, progress=False)


def test_the_analysis_suite(split, whole):
    samples = [replace(s, answers=("4",)) for s in make_samples(6)]
    out = [
        analyze(m, samples, n_shots=2, which=("plain", "idk"), cot_tokens=4, progress=False)
        for m in (split, whole)
    ]
    a, b = (r.generalization for r in out)
    close(torch.tensor(a["accuracy"].to_numpy()), torch.tensor(b["accuracy"].to_numpy()))
    assert list(out[0].knowledge.per_item["answer"]) == list(out[1].knowledge.per_item["answer"])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"device": "cpu", "device_map": "auto"}, "pass one of them"),
        ({"device_map": "auto", "n_devices": 2}, "pass one"),
        ({"n_devices": 0}, "at least 1"),
        ({"max_memory": {"cpu": "1GiB"}}, "only applies when the layers are split"),
        ({"offload_folder": "/tmp/x"}, "only applies to a device_map"),
        ({"device_map": {"model.layers.0": "meta"}}, "'meta', which holds no weights"),
        ({"dtype": torch.int8}, "not supported"),
        ({"revision": "main"}, "applies to hub ids only"),
    ],
)
def test_placement_options_that_do_not_go_together(folder, options, match):
    with pytest.raises(NasalensError, match=match):
        load_model(folder, **options)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"device": "cuda"}, "CUDA is not available"),
        ({"n_devices": 2}, "requires CUDA"),
        ({"device_map": {"model.layers.0": 0}}, "CUDA is not available"),
    ],
)
def test_gpu_options_without_cuda_say_so(folder, options, match):
    with pytest.raises(NasalensError, match=match):
        load_model(folder, **options)
