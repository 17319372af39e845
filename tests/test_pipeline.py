import json

import pytest

from nasalens import pipeline
from nasalens.errors import NasalensError
from nasalens.tuning import NasaConfig
from tests.test_tuning import make_probe

SMALL = pipeline.DemoConfig(
    sets=("builtin-eval",),
    n_eval=12,
    n_probe=8,
    k=4,
    top_n=3,
    consistency=0.5,
    n_validate=12,
    n_sets=2,
    per_head=2,
    n_analysis=8,
    nasa=NasaConfig(lr=1e-2, batch_size=4, max_epochs=1, top_n=2),
    organism="off",
)


def test_the_main_job_runs_every_step_and_writes_its_folder(tiny_model, tmp_path, monkeypatch):
    # The tiny random model knows no fact, so give NASA a constructed probing set.
    calls: list[str] = []

    def probe(*args, **kwargs):
        calls.append("probe_set called")
        return make_probe()

    def on_step(step, result):
        calls.append(step)
        if step == "NAS":
            assert len(result) == 3  # the heads, handed over as soon as they are chosen

    monkeypatch.setattr(pipeline, "probe_set", probe)
    run = pipeline.run_demo(
        SMALL, model=tiny_model, out=tmp_path / "run", progress=False, on_step=on_step
    )
    # Each step's result is handed out when it finishes, before the next step starts.
    assert calls == [
        "bias", "probe_set called", "probing set", "NAS", "causal validation", "NASA",
        "comparison", "analysis",
    ]  # fmt: skip
    names = {p.name for p in run.folder.iterdir()}
    assert {"report.html", "config.json", "heads.json", "nasa.jsonl", "comparison.csv"} <= names
    assert json.loads((run.folder / "config.json").read_text())["nasa"]["lr"] == 0.01
    # The model was passed in, so its loading is not among the steps timed here.
    assert list(run.timings) == [
        "bias", "probing set", "NAS", "causal validation", "NASA", "comparison", "analysis",
    ]  # fmt: skip
    assert run.tuning is not None and len(run.tuning.head_records) >= 1
    assert set(run.comparison.table["model"]) == {"baseline", "nasa", "head fix", "calibration"}
    assert len(run.validation.controls) == 2 and len(run.validation.per_head) == 2
    page = run.report.read_text()
    for title in ("The bias", "Negative heads (NAS)", "Causal validation", "NASA", "Baseline vs"):
        assert title in page
    assert "Decision shifts after tuning" in page  # the analysis, base vs tuned
    assert "Why each head stopped" in page
    lines = (run.folder / "nasa.jsonl").read_text().splitlines()
    assert len(lines) == len(run.tuning.records)


def test_nasa_is_skipped_with_a_reason_when_the_model_knows_nothing(tiny_model, tmp_path):
    run = pipeline.run_demo(SMALL, model=tiny_model, out=tmp_path / "run", progress=False)
    assert run.tuning is None
    assert "nasa" not in set(run.comparison.table["model"])
    assert "Skipped: the probing set has 0 false negatives" in run.report.read_text()


def test_external_sets_need_the_builtin_one():
    with pytest.raises(NasalensError, match="builtin-eval"):
        pipeline._eval_sets(pipeline.DemoConfig(sets=("strategyqa",)))


def test_the_quick_config_is_smaller_in_every_costly_step():
    full, quick = pipeline.DemoConfig(), pipeline.DemoConfig.quick()
    for name in (
        "n_eval",
        "n_compare",
        "top_n",
        "n_validate",
        "n_sets",
        "per_head",
        "n_analysis",
    ):
        assert getattr(quick, name) < getattr(full, name)
    assert quick.nasa.top_n < full.nasa.top_n


def test_validation_and_analysis_samples_are_balanced():
    from nasalens import data
    from nasalens.data.sample import subset

    samples = data.load("builtin-eval", n=200, seed=0)
    # The trap: a plain seeded subset repeats the draw that assigned Yes and No.
    assert sum(s.gold for s in subset(samples, 100, seed=0)) == 0
    for n in (100, 60, 41):
        picked = pipeline._pick(samples, n, 0)
        assert len(picked) == n and abs(2 * sum(s.gold for s in picked) - n) <= 1


def test_a_missing_organism_file_is_reported_and_the_job_goes_on(
    tiny_model, tmp_path, monkeypatch, caplog
):
    import dataclasses

    from nasalens import shipped

    monkeypatch.setattr(pipeline, "probe_set", lambda *a, **k: make_probe())
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "gone.safetensors")
    config = dataclasses.replace(SMALL, organism="ranks", n_analysis=0, per_head=0)
    with caplog.at_level("WARNING"):
        run = pipeline.run_demo(config, model=tiny_model, out=tmp_path / "run", progress=False)
    assert "organism" in run.timings and run.organism is None
    page = run.report.read_text()
    assert "Ground truth" in page and "make organism-file" in page
    assert "ground-truth step skipped" in caplog.text
