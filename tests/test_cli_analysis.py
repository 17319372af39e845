"""`nasalens analyze` in process, on the tiny model, in a temporary folder."""

import json

import pytest
from typer.testing import CliRunner

from nasalens.cli import analysis as cli_analysis
from nasalens.cli import app
from nasalens.models import clone

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


def _write_set(path):
    rows = [
        {"id": f"r{i}", "question": q, "label": a, "gold": g, "answers": [gold]}
        for i, (q, a, g, gold) in enumerate(
            [
                ("What is 2 + 2?", "4", "yes", "4"),
                ("What is 2 + 2?", "5", "no", "4"),
                ("Who wrote Hamlet?", "Shakespeare", "yes", "Shakespeare"),
                ("Who wrote Hamlet?", "Dickens", "no", "Shakespeare"),
                ("What colour is the sky?", "blue", "yes", "blue"),
                ("What colour is the sky?", "green", "no", "blue"),
                ("How many legs does a spider have?", "8", "yes", "8"),
                ("How many legs does a spider have?", "6", "no", "8"),
            ]
        )
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.filterwarnings("error")
def test_analyze_prints_tables_and_writes_one_page(tiny_model, monkeypatch, tmp_path):
    models = {None: tiny_model, "tuned-dir": clone(tiny_model)}
    # The command module binds `load` from nasalens.cli.app at import: patch it where it is used.
    monkeypatch.setattr(cli_analysis, "load", lambda spec: models[spec])
    data = tmp_path / "mine.jsonl"
    _write_set(data)
    out = tmp_path / "report"
    args = ["analyze", "--data", str(data), "--tuned", "tuned-dir", "--n", "8", "--shots", "2"]
    result = CliRunner().invoke(
        app, [*args, "--cot-tokens", "4", "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    for heading in (
        "== mine: 8 samples ==",
        "Generalization across prompts:",
        "False negatives by category:",
        "Decision shifts after tuning:",
        "Prompting scenarios:",
    ):
        assert heading in result.output
    page = (out / "analysis.html").read_text()
    assert "Analysis: mine" in page and page.rstrip().endswith("</html>")
    assert sorted(p.name for p in out.iterdir()) == ["analysis.html"]


def test_analyze_rejects_an_unknown_scenario_before_loading(monkeypatch, tmp_path):
    def no_model(spec):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(cli_analysis, "load", no_model)
    args = ["analyze", "--data", "strategyqa", "--scenario", "debate", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "unknown scenario 'debate'" in result.output
