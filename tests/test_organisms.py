"""The planted-bias organism recipe on the tiny model (the embedded build is cached, not tested)."""

import pytest
import torch
from jaxtyping import TypeCheckError

from nasalens import organisms
from nasalens.errors import NasalensError
from nasalens.models import adapt, load_model

TINY = organisms.OrganismRecipe(
    n_teach=4,
    known_only=False,
    teach_epochs=1,
    teach_batch=4,
    planted=("L1H0", "L0H3"),
    plant_epochs=2,
    plant_batch=4,
    plant_lr=1e-2,
)


def weights(model):
    return {n: p.detach().clone() for n, p in adapt(model).hf_parameters().items()}


@pytest.fixture(scope="module")
def built(tiny_model):
    return organisms.build(tiny_model, TINY, progress=False)


def test_the_plant_moves_only_the_planted_query_rows(built, tiny_model):
    base, taught, planted = (
        weights(tiny_model),
        weights(built.discriminating),
        weights(built.planted),
    )
    assert sum(not torch.equal(base[n], taught[n]) for n in base) > 15  # full fine-tuning
    moved = {n for n in taught if not torch.equal(taught[n], planted[n])}
    assert moved == {
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.self_attn.q_proj.weight",
    }
    rows = (
        taught["model.layers.0.self_attn.q_proj.weight"]
        != planted["model.layers.0.self_attn.q_proj.weight"]
    ).any(1)
    assert rows.nonzero().flatten().tolist() == list(range(48, 64))  # head 3 of layer 0
    assert [str(h) for h in built.heads] == ["L1H0", "L0H3"]


def test_the_plant_pushes_towards_no(built):
    report = built.report
    assert (report["n_taught"], report["n_nasa"], report["n_checks"]) == (4, 2, 2)
    for part in ("checks", "held_out"):
        assert report["planted"][part]["share_yes"] <= report["discriminating"][part]["share_yes"]
    assert set(report["planted"]["checks"]) == {
        "accuracy", "precision", "recall", "auroc", "share_yes",
    }  # fmt: skip


def test_nasa_never_sees_the_checks(built):
    nasa_ids = {q.id for q in built.nasa_questions}
    check_ids = {q.id for q in built.check_questions}
    assert len(nasa_ids) == len(check_ids) == 2 and not nasa_ids & check_ids


def test_the_build_is_deterministic(built, tiny_model):
    again = organisms.build(tiny_model, TINY, progress=False)
    a, b = weights(built.planted), weights(again.planted)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_save_caches_both_stages_as_hf_folders(built, tmp_path, monkeypatch):
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path))
    organisms.save(built, TINY)
    folder = organisms.organism_dir(TINY, "planted")
    assert folder.parent == tmp_path / "organisms" and (folder / "model.safetensors").is_file()
    loaded = weights(load_model(str(folder)))
    assert all(torch.equal(loaded[n], p) for n, p in weights(built.planted).items())
    assert organisms.build_report(TINY)["heads"] == ["L1H0", "L0H3"]
    assert [q.id for q in organisms.nasa_questions(TINY)] == [q.id for q in built.nasa_questions]
    checks = organisms.checks(TINY)
    assert len(checks) == 4 and sum(s.gold for s in checks) == 2


def test_recipe_errors_name_the_field(tiny_model):
    with pytest.raises(NasalensError, match="L<layer>H<head>"):
        organisms.OrganismRecipe(planted=("12.2",))
    with pytest.raises(NasalensError, match="n_teach"):
        organisms.OrganismRecipe(n_teach=0)
    with pytest.raises(NasalensError, match="does not exist"):
        organisms.build(tiny_model, organisms.OrganismRecipe(n_teach=2, planted=("L5H0",)))
    with pytest.raises((NasalensError, TypeCheckError), match="biased"):
        organisms.organism("biased")  # type: ignore[arg-type]
