import json

import pytest
import torch
from typer.testing import CliRunner

import nasalens.cli.heads as cli_heads
from nasalens.artifacts import read_json
from nasalens.cli import app
from nasalens.data import builtin_questions
from nasalens.data.sample import subset
from nasalens.heads import HeadSet, negative_heads
from nasalens.scores import NasScores, nas

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.legacy]

OPTIONS = ["--k", "4", "--top-n", "3", "--consistency", "0.5", "--chunk-size", "2"]


@pytest.fixture
def run(tiny_model, monkeypatch, tmp_path):
    """Invoke `nasalens heads` in process on the tiny model, writing under tmp_path."""
    monkeypatch.setattr(cli_heads, "load", lambda name: tiny_model)

    def invoke(*args):  # later options win, so ``args`` can override the defaults
        return CliRunner().invoke(app, ["heads", *OPTIONS, "--out", str(tmp_path), *args])

    return invoke


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_heads_writes_the_head_set_the_scores_and_the_figures(run, tiny_model, tmp_path):
    result = run("--data", "builtin-probe", "--samples", "5")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "builtin-probe"
    # The same computation, done by hand: every question's positive sample.
    positives = [q.positive() for q in subset(builtin_questions("probe"), 5, seed=0)]
    scores = nas(tiny_model, positives, chunk_size=2, progress=False)
    expected = negative_heads(scores, k=4, top_n=3, consistency=0.5)
    assert HeadSet.load(folder / "heads.json") == expected
    saved = NasScores.load(folder)  # what a notebook picks up
    torch.testing.assert_close(saved.per_sample, scores.per_sample)
    torch.testing.assert_close(saved.attn_neg, scores.attn_neg)
    assert saved.sample_ids == scores.sample_ids and saved.region == scores.region
    for page in ("head_scores.html", "heatmap.html"):
        assert "plotly" in (folder / page).read_text()[:5000].lower()
    assert "5 positive samples" in result.output
    for head in expected:
        assert str(head) in result.output


def test_heads_on_a_jsonl_file_keeps_its_gold_yes_rows(run, tmp_path):
    rows = [
        {"id": "a", "question": "Is the sky blue?", "gold": "yes"},
        {"id": "b", "question": "Is fire cold?", "gold": "no"},
        {"id": "c", "question": "Is 2 + 2 equal to 4?", "gold": "yes"},
    ]
    file = _jsonl(tmp_path / "mine.jsonl", rows)
    result = run("--data", str(file), "--data", "builtin-eval", "--samples", "3")
    assert result.exit_code == 0, result.output
    assert "mine: 2 positive samples" in result.output
    overlaps = read_json(tmp_path / "overlaps.json")
    assert set(overlaps) == {"mine", "builtin-eval"}
    mine = HeadSet.load(tmp_path / "mine" / "heads.json")
    assert overlaps["mine"]["mine"] == len(mine)
    assert "Shared heads between the sets" in result.output


def test_heads_reports_too_few_consistent_heads(run):
    result = run("--data", "builtin-probe", "--samples", "4", "--top-n", "8")
    assert result.exit_code == 0, result.output
    assert "raise --k or lower --consistency" in result.output


def test_heads_rejects_a_set_without_positive_samples(run, tmp_path):
    file = _jsonl(tmp_path / "no.jsonl", [{"question": "Is fire cold?", "gold": "no"}])
    result = run("--data", str(file))
    assert result.exit_code == 2 and "no positive (gold Yes) samples" in result.stderr


def test_heads_rejects_a_k_larger_than_the_model(run):
    result = CliRunner().invoke(app, ["heads", "--data", "builtin-probe", "--samples", "2"])
    assert result.exit_code == 2
    assert "k must be between 1 and the number of heads (8)" in result.stderr
