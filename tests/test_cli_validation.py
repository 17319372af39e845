import pytest
from typer.testing import CliRunner

import nasalens.cli.validation as cli_validation
from nasalens.cli import app
from nasalens.data import builtin
from nasalens.heads import HeadSet
from nasalens.models import Head
from nasalens.validation import validate_heads

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.legacy]

HEADS = [Head(0, 1), Head(1, 3)]


@pytest.fixture
def run(tiny_model, monkeypatch, tmp_path):
    """Invoke `nasalens validate` in process on the tiny model, writing under tmp_path."""
    monkeypatch.setattr(cli_validation, "load", lambda name: tiny_model)
    path = tmp_path / "heads.json"
    HeadSet.of(HEADS).save(path)

    def invoke(*args):
        options = ["--heads", str(path), "--n-sets", "3", "--out", str(tmp_path / "out")]
        return CliRunner().invoke(app, ["validate", *options, *args])

    return invoke


def test_validate_prints_the_table_and_writes_figures(run, tiny_model, tmp_path):
    result = run("--data", "builtin-eval", "--n", "6")
    assert result.exit_code == 0, result.output
    expected = validate_heads(tiny_model, builtin("eval", n=6), HEADS, n_sets=3, progress=False)
    effect = expected.effect("logit_diff")
    assert f"{effect:.3f}" in result.output
    assert "logit_diff" in result.output and "share_beaten" in result.output
    out = tmp_path / "out"
    for name in ("validation", "per-head"):
        assert "plotly" in (out / f"builtin-eval-{name}.html").read_text()[:5000].lower()
    assert (out / "builtin-eval-summary.csv").read_text().startswith("metric,")


def test_validate_rejects_an_unknown_ablation(run):
    result = run("--data", "builtin-eval", "--n", "4", "--how", "half")
    assert result.exit_code == 2 and "unknown ablation" in result.stderr
