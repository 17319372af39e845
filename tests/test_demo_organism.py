"""The main job's ground-truth step, on an organism built from the tiny model."""

import pytest

from nasalens import demo_organism, organisms, shipped
from nasalens.errors import NasalensError
from nasalens.models import Head
from nasalens.report import Section
from tests.test_organisms import TINY


@pytest.fixture
def cached(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path))
    assert not organisms.is_built(TINY)
    organisms.save(organisms.build(tiny_model, TINY, progress=False), TINY)
    assert organisms.is_built(TINY)
    return organisms.load(TINY, progress=False)


def test_a_missing_shipped_organism_is_an_error_with_a_rebuild_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED", tmp_path / "gone.safetensors")
    with pytest.raises(NasalensError, match="make organism-file"):
        demo_organism.check_organism(progress=False)
    section = demo_organism.organism_section(None, problem="the file is gone")
    assert isinstance(section, Section) and "the file is gone" in section.text


def test_load_returns_the_cached_stages_and_split(cached):
    report = organisms.build_report(TINY)
    assert [str(h) for h in cached.heads] == report["heads"]
    assert [q.id for q in cached.check_questions] == report["check_questions"]
    assert cached.report == report["report"]


def test_the_step_ranks_the_planted_heads_and_repairs(cached, monkeypatch):
    from tests.test_tuning import make_probe

    # The tiny random model knows no fact: give the step a constructed probing set.
    monkeypatch.setattr(demo_organism, "probe_set", lambda *a, **k: make_probe())
    monkeypatch.setattr(demo_organism, "REPAIR", demo_organism.REPAIR.replace(max_epochs=1))
    check = demo_organism.check_organism(cached, progress=False)
    assert [str(h) for h in check.planted] == ["L1H0", "L0H3"]
    ranking = list(check.ranking)
    for row in check.ranks.itertuples():
        assert ranking.index(Head.parse(row.head)) + 1 == row.causal_rank
        assert 1 <= row.nas_rank <= len(ranking)
    assert set(check.results) == {"planted", "pre-plant", "repaired"}
    table = demo_organism.organism_table(check)
    assert list(table["name"]) == ["planted", "pre-plant", "repaired"]
    assert (table["recall_lo"] <= table["recall"]).all()
    section = demo_organism.organism_section(check)
    assert any("causal rank" in f for f in section.findings)
    maps, tradeoff = section.figures
    assert maps.data[0].z.shape == (2, 4)  # NAS, layer x head, beside the effects
    assert [t.name for t in tradeoff.data] == ["planted", "pre-plant", "repaired"]
    ranks_only = demo_organism.check_organism(cached, repair=False, progress=False)
    assert set(ranks_only.results) == {"planted", "pre-plant"}
