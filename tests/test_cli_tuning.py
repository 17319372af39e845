"""The tuning commands in process on the tiny model: tune (and resume), export, evaluate a run."""

import json
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from nasalens.cli import app
from nasalens.tuning import probe as probe_mod
from nasalens.tuning.export import export
from tests.test_tuning_probe import fake_answers, fake_decisions

runner = CliRunner()


@pytest.fixture
def tiny_dir(tiny_model, tmp_path):
    return export(tiny_model, tmp_path / "tiny")


@pytest.fixture
def knows_some(monkeypatch):
    """The tiny model 'knows' 12 probe facts and says "Yes" to 2 of them."""
    monkeypatch.setattr(probe_mod, "short_answers", fake_answers(set(range(12))))
    yes = {"probe-capital-france/yes", "probe-capital-germany/yes"}
    monkeypatch.setattr(probe_mod, "evaluate", fake_decisions(yes))


def invoke(*args):
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_tune_writes_a_run_that_resumes_exports_and_evaluates(tiny_dir, knows_some, tmp_path):
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps(["L1H2", "L0H1"]))
    run = tmp_path / "run"
    args = ["tune", "--model", tiny_dir, "--heads", heads, "--out", run, "--no-progress"]
    out = invoke(*args, "--lr", "0.01", "--batch-size", "4", "--max-epochs", "2")
    assert "probing set: {'questions': 170, 'known': 12, 'tp': 2, 'fn': 10" in out
    assert {p.name for p in run.iterdir()} >= {
        "run.json", "config.json", "probe.json", "heads.json", "log.jsonl", "checkpoints",
        "final.safetensors",
    }  # fmt: skip
    stored = json.loads((run / "config.json").read_text())
    assert stored["lr"] == 0.01
    # No --preset: the default preset, causal (the organism suite's choice), not the paper's.
    assert stored["select"] == "causal" and stored["early_stopping"] is False
    # Re-running without settings resumes with the stored ones (here: nothing left to do).
    assert "resuming Run(" in invoke("tune", "--out", run, "--no-progress")
    hf = tmp_path / "hf"
    assert "AutoModelForCausalLM" in invoke("export", run, "--out", hf)
    assert (hf / "model.safetensors").is_file()
    out = invoke(
        "evaluate", "--model", run, "--data", "builtin-eval", "--n", "6", "--qa-retention", 0
    )
    assert "baseline" in out and "tuned" in out and "verdict" in out
    assert "retention" not in out
    out = invoke(
        "evaluate", "--model", hf, "--data", "builtin-eval", "--n", "4", "--qa-retention", 0
    )
    assert "builtin-eval" in out


def test_evaluate_reports_qa_retention_of_baseline_and_tuned(
    tiny_dir, knows_some, tmp_path, shared_data
):
    from nasalens import data
    from nasalens.models import load_model
    from nasalens.tuning.evaluation import qa_retention

    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps(["L1H2"]))
    run = tmp_path / "run"
    invoke("tune", "--model", tiny_dir, "--heads", heads, "--out", run, "--max-epochs", "1",
           "--batch-size", "4", "--lr", "0.01", "--no-progress")  # fmt: skip
    args = ["evaluate", "--model", run, "--data", "builtin-eval", "--n", "4"]
    out = invoke(*args, "--data-dir", shared_data, "--qa-retention", "5")
    rows = [
        line.split() for line in out.splitlines() if line.split()[:1] in (["baseline"], ["tuned"])
    ]
    retention = {r[0]: r[1:] for r in rows if len(r) == 3}
    expected = qa_retention(
        load_model(str(tiny_dir)), data.nq_open_questions(shared_data, n=5, seed=1)
    )
    assert retention["baseline"] == [f"{expected['qa_exact_match']:.3f}", "5"]
    assert set(retention) == {"baseline", "tuned"}
    # Without NQ-open the command says why it skipped, and still prints the decisions.
    out = invoke(*args, "--data-dir", tmp_path, "--qa-retention", "5")
    assert "QA retention skipped" in out and "verdict" in out


def test_tune_selects_heads_by_nas_and_reads_a_toml_config(tiny_dir, knows_some, tmp_path):
    toml = tmp_path / "nasa.toml"
    toml.write_text("[nasa]\nlr = 0.01\nbatch_size = 4\nmax_epochs = 1\nk = 8\ntop_n = 2\n")
    run = tmp_path / "run"
    out = invoke("tune", "--model", tiny_dir, "--config", toml, "--out", run, "--no-progress")
    assert "heads: HeadSet([" in out
    assert len(json.loads((run / "heads.json").read_text())["heads"]) == 2


def test_tune_selects_heads_causally_and_writes_the_ranking(tiny_dir, knows_some, tmp_path):
    run = tmp_path / "run"
    args = ["tune", "--model", tiny_dir, "--out", run, "--preset", "causal", "--top-n", "2"]
    invoke(*args, "--max-epochs", "1", "--batch-size", "4", "--lr", "0.01", "--no-progress")
    ranking = pd.read_csv(run / "heads-causal.csv")
    assert len(ranking) == 8 and ranking["verified"].sum() >= 2  # the verified ranking
    verified = ranking[ranking["verified"] == 1]
    assert (verified["effect"].diff().dropna() <= 0).all() and list(verified.index) == list(
        range(len(verified))
    )  # verified heads first, by their exact effect
    assert json.loads((run / "heads.json").read_text())["heads"] == list(ranking["name"][:2])
    stored = json.loads((run / "config.json").read_text())
    assert stored["select"] == "causal" and stored["halting"] == "never"  # the preset
    assert stored["early_stopping"] is False and stored["top_n"] == 2


def test_tune_refuses_a_run_with_other_settings(tiny_dir, knows_some, tmp_path):
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps(["L1H2"]))
    run = tmp_path / "run"
    invoke("tune", "--model", tiny_dir, "--heads", heads, "--out", run, "--max-epochs", "1",
           "--batch-size", "4", "--no-progress")  # fmt: skip
    result = runner.invoke(app, ["tune", "--out", str(run), "--lr", "0.5"])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert "other settings" in result.stderr and "loaded" not in result.stdout


def test_organism_prints_each_stage_on_each_set(monkeypatch):
    from nasalens import organisms

    figures = {"accuracy": 0.5, "precision": 0.25, "recall": 0.125, "auroc": 0.75, "share_yes": 0}
    stages = ("base", "discriminating", "planted")
    report = {s: {"checks": figures, "held_out": figures} for s in stages}
    monkeypatch.setattr(organisms, "organism", lambda stage: None)
    monkeypatch.setattr(organisms, "build_report", lambda: {"heads": ["L1H2"], "report": report})
    out = invoke("organism")
    table_lines = [line.split() for line in out.splitlines() if "heads:" not in line]
    rows = [r for r in table_lines if r[:1] in ([s] for s in stages)]
    assert [r[:2] for r in rows] == [[s, name] for s in stages for name in ("checks", "held_out")]
    assert all("0.125" in r and "0.750" in r for r in rows)
    assert "planted heads: ['L1H2']" in out


def test_tune_on_the_organism_probes_only_nasas_share_of_the_taught_facts(
    tiny_model, tmp_path, monkeypatch
):
    from nasalens import organisms
    from nasalens.cli import tuning as cli_tuning
    from nasalens.data import builtin_questions
    from nasalens.models import clone

    organism = clone(tiny_model)
    share = builtin_questions("probe")[:12]
    asked = []

    def answers(model, samples, **kwargs):
        asked.append((model, [s.id for s in samples]))
        return fake_answers(set(range(12)))(model, samples)

    monkeypatch.setattr(cli_tuning, "resolve", lambda spec: (organism, "/cache/organism"))
    monkeypatch.setattr(organisms, "nasa_questions", lambda: share)
    monkeypatch.setattr(probe_mod, "short_answers", answers)
    monkeypatch.setattr(probe_mod, "evaluate", fake_decisions({f"{share[0].id}/yes"}))
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps(["L1H2"]))
    out = invoke("tune", "--model", "organism", "--heads", heads, "--out", tmp_path / "run",
                 "--max-epochs", "1", "--batch-size", "4", "--no-progress")  # fmt: skip
    assert "probing set from NASA's share of the taught facts (12)" in out
    assert "'questions': 12, 'known': 12, 'tp': 1, 'fn': 11" in out
    # Only NASA's share is asked (the checks' facts stay out), and the organism itself answers.
    assert asked == [(organism, [f"{q.id}/yes" for q in share])]


def test_organism_checks_are_a_data_set_for_every_command(monkeypatch, tmp_path):
    from nasalens import organisms
    from nasalens.cli.app import load_set
    from nasalens.data import builtin

    checks = builtin("eval", n=6)
    monkeypatch.setattr(organisms, "checks", lambda: checks)
    assert load_set("organism-checks", tmp_path) == checks
    assert load_set("organism-checks", tmp_path, n=4) == checks[:4]
    # A data root never reaches the built-in sets, which ship with nasalens.
    assert load_set("builtin-eval", tmp_path, n=6) == checks
