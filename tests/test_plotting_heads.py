import importlib.util
import os
import shutil

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from nasalens.data.sample import Sample
from nasalens.errors import NasalensError
from nasalens.heads import HeadSet, negative_heads
from nasalens.models import Head
from nasalens.plotting.export import save_html, save_png
from nasalens.plotting.heads import attention_view, head_patterns, heatmap, plot_head_scores
from nasalens.prompts import binary, encode
from nasalens.scores import nas
from tests.builders import make_sample, make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


def _nas_of(model, sample, **kwargs):
    return nas(
        model,
        encode(model, [sample], template=kwargs.pop("template", None)),
        progress=False,
        **kwargs,
    )


def test_heatmap_panels_hold_the_attention_sums_and_nas(tiny_model):
    sample = make_sample(id="paris")
    fig = heatmap(tiny_model, sample)
    scores = _nas_of(tiny_model, sample)
    assert len(fig.data) == 3
    for trace, expected in zip(
        fig.data, (scores.attn_pos[0], scores.attn_neg[0], scores.per_sample[0]), strict=True
    ):
        assert trace.z.shape == (2, 4)
        np.testing.assert_allclose(trace.z, expected.double().numpy(), atol=1e-7, rtol=0)
        assert list(trace.x) == [0, 1, 2, 3] and list(trace.y) == [0, 1]
    assert "paris" in fig.layout.title.text and "(shown answer: Paris)" in fig.layout.title.text
    # NAS on a diverging scale centred at 0; both attentions on one scale from 0.
    assert fig.layout.coloraxis2.cmid == 0 and fig.layout.coloraxis.cmin == 0
    assert fig.data[0].coloraxis == fig.data[1].coloraxis == "coloraxis"


def test_heatmap_hover_names_the_head_its_values_and_the_candidate_tokens(tiny_model):
    sample = make_sample()
    fig = heatmap(tiny_model, sample)
    scores = _nas_of(tiny_model, sample)
    text = fig.data[2].text[1][3]
    assert text.startswith("<b>L1H3</b>")
    assert "' Yes'" in text and "' No'" in text
    assert f"{float(scores.per_sample[0, 1, 3]):+.4f}" in text
    assert f"{float(scores.attn_neg[0, 1, 3]):.4f}" in text


def test_a_question_string_is_a_gold_yes_sample_without_a_label(tiny_model):
    question = "What is the capital of France?"
    fig = heatmap(tiny_model, question)
    expected = _nas_of(tiny_model, Sample("prompt", question, True)).per_sample[0]
    np.testing.assert_allclose(fig.data[2].z, expected.double().numpy(), atol=1e-7, rtol=0)
    assert fig.layout.title.text.startswith("prompt:")
    with pytest.raises(NasalensError, match="question must be a non-empty string"):
        heatmap(tiny_model, "  ")


def test_heatmap_follows_the_template_and_region(tiny_model):
    sample = make_sample()
    template = binary(candidates="true_false")
    fig = heatmap(tiny_model, sample, template=template, region="answer")
    scores = _nas_of(tiny_model, sample, template=template, region="answer")
    np.testing.assert_allclose(fig.data[2].z, scores.per_sample[0].double().numpy(), atol=1e-7)
    assert "True'" in fig.data[0].text[0][0] and "answer position" in fig.layout.title.text


def test_head_score_map_marks_the_selected_heads(tiny_model):
    scores = nas(tiny_model, make_samples(4), progress=False)
    chosen = negative_heads(scores, k=4, top_n=3, consistency=0.5)
    assert len(chosen) > 0
    fig = plot_head_scores(scores, chosen)
    heat, marks = fig.data
    assert heat.z.shape == (2, 4) and heat.zmid == 0
    np.testing.assert_allclose(heat.z, scores.head.double().numpy(), atol=1e-7, rtol=0)
    assert list(marks.x) == [h.head for h in chosen] and list(marks.y) == [h.layer for h in chosen]
    assert marks.text[0] == f"{chosen[0]} (rank 1)"
    assert "selected, rank 1" in heat.text[chosen[0].layer][chosen[0].head]
    assert "4 samples" in fig.layout.title.text


def test_head_score_map_without_heads_and_with_a_foreign_head(tiny_model):
    scores = nas(tiny_model, make_samples(2), progress=False)
    assert len(plot_head_scores(scores).data) == 1
    named = plot_head_scores(scores, ["L1H2", "L0H3"]).data[1]
    assert list(named.x) == [2, 3] and list(named.y) == [1, 0]
    with pytest.raises(NasalensError, match="L5H0 is outside the scores"):
        plot_head_scores(scores, HeadSet.of(["L5H0"]))


def test_head_patterns_equal_the_cached_patterns(tiny_model):
    sample = make_sample()
    patterns, tokens = head_patterns(tiny_model, sample, ["L1H2", Head(0, 3)])
    batch = encode(tiny_model, [sample])
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(batch.tokens)
    assert patterns.shape == (2, batch.tokens.shape[1], batch.tokens.shape[1])
    torch.testing.assert_close(patterns[0], cache["blocks.1.attn.hook_pattern"][0, 2])
    torch.testing.assert_close(patterns[1], cache["blocks.0.attn.hook_pattern"][0, 3])
    tok = tiny_model.tokenizer
    assert "".join(tokens) == tok.decode(batch.tokens[0].tolist())
    assert len(tokens) == batch.tokens.shape[1]


def test_attention_view_names_the_heads(tiny_model):
    view = attention_view(tiny_model, "What is 2 + 2?", ["L1H2", Head(0, 1)])
    assert "L1H2" in view.local_src and "L0H1" in view.local_src
    with pytest.raises(NasalensError, match="no heads"):
        attention_view(tiny_model, "What is 2 + 2?", [])
    with pytest.raises(NasalensError, match="L2H0 does not exist"):
        attention_view(tiny_model, "What is 2 + 2?", ["L2H0"])


def _figure() -> go.Figure:
    return go.Figure(go.Heatmap(z=[[1.0, -2.0]]), layout={"title": {"text": "a title"}})


def test_save_html_is_self_contained_and_leaves_no_temp_file(tmp_path):
    path = save_html(_figure(), tmp_path / "sub" / "fig.html")
    html = path.read_text()
    assert html.lower().startswith("<!doctype html>") and "a title" in html
    assert "<script src=" not in html and len(html) > 1_000_000  # plotly.js inlined
    assert [p.name for p in path.parent.iterdir()] == ["fig.html"]


def test_save_png_without_kaleido_names_what_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "kaleido" else real(name, *a)
    )
    with pytest.raises(NasalensError, match="pip install kaleido") as err:
        save_png(_figure(), tmp_path / "fig.png")
    assert "apt-get install chromium" in str(err.value)
    assert not (tmp_path / "fig.png").exists()


def _can_render() -> bool:
    browser = os.environ.get("BROWSER_PATH") or any(
        shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome")
    )
    return bool(browser) and importlib.util.find_spec("kaleido") is not None


@pytest.mark.skipif(importlib.util.find_spec("kaleido") is None, reason="kaleido not installed")
def test_save_png_without_a_browser_names_the_chromium_package(tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-browser"))
    with pytest.raises(NasalensError, match="no Chrome or Chromium browser") as err:
        save_png(_figure(), tmp_path / "fig.png")
    assert "apt-get install chromium" in str(err.value)


@pytest.mark.skipif(not _can_render(), reason="PNG export needs kaleido and chromium")
def test_save_png_writes_a_png(tmp_path):
    path = save_png(_figure(), tmp_path / "fig.png", scale=1.0)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
