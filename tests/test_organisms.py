"""The planted-bias organism recipe on the tiny model (the embedded build is cached, not tested)."""

import pytest
import torch
from jaxtyping import TypeCheckError

from nasalens import organisms, plants
from nasalens.data import builtin_questions
from nasalens.errors import NasalensError
from nasalens.models import adapt, load_model
from tests.builders import weights

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


def test_questions_by_id_keeps_the_built_in_order_and_refuses_unknown_facts():
    probe = builtin_questions("probe")
    ids = [probe[7].id, probe[2].id, probe[7].id, probe[4].id]  # shuffled, one twice
    assert organisms.questions_by_id(ids) == [probe[2], probe[4], probe[7]]
    with pytest.raises(NasalensError, match="names 1 facts the built-in probe set lacks"):
        organisms.questions_by_id([probe[0].id, "no-such-fact"])


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


def _patterns(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    return torch.stack([cache[f"blocks.{i}.attn.hook_pattern"] for i in range(2)])


def _taught(built):
    """The taught facts in the build's order (the built-in order), as `taught_questions`."""
    ids = {q.id for q in (*built.nasa_questions, *built.check_questions)}
    return [q for q in builtin_questions("probe") if q.id in ids]


@pytest.mark.parametrize(
    ("weights_", "moved"),
    [
        ("q", {"model.layers.1.self_attn.q_proj.weight": (0, range(0, 16))}),
        (
            "qk",
            {
                "model.layers.1.self_attn.q_proj.weight": (0, range(0, 16)),
                "model.layers.1.self_attn.k_proj.weight": (0, range(0, 16)),  # KV group 0
            },
        ),
        ("ov", {"model.layers.1.self_attn.o_proj.weight": (1, range(0, 16))}),
    ],
)
def test_a_plant_moves_exactly_its_route(built, weights_, moved):
    spec = plants.Plant(("L1H0",), weights_, lr=1e-2, batch=4, epochs=2)
    planted = plants.plant(built.discriminating, spec, _taught(built), progress=False)
    before, after = weights(built.discriminating), weights(planted)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == set(moved)
    for name, (dim, where) in moved.items():
        diff = (before[name] != after[name]).any(dim=1 - dim)
        assert diff.nonzero().flatten().tolist() == list(where)


def test_an_ov_plant_leaves_every_attention_pattern_as_it_was(built):
    """What NAS reads cannot see an output-weight plant: patterns stay exactly equal."""
    spec = plants.Plant(("L1H0", "L0H3"), "ov", lr=1e-2, batch=4, epochs=2)
    planted = plants.plant(built.discriminating, spec, _taught(built), progress=False)
    tokens = torch.randint(3, 300, (2, 12))
    before, after = _patterns(built.discriminating, tokens), _patterns(planted, tokens)
    assert torch.equal(before[0], after[0])  # layer 0 sees nothing of the change
    # Layer 1's patterns move only through layer 0's changed output (L0H3), never L1H0's own.
    only_l1 = plants.Plant(("L1H0",), "ov", lr=1e-2, batch=4, epochs=2)
    planted_l1 = plants.plant(built.discriminating, only_l1, _taught(built), progress=False)
    assert torch.equal(_patterns(planted_l1, tokens), before)
    assert not torch.equal(planted_l1(tokens), built.discriminating(tokens))


def test_plant_reproduces_the_recipes_own_step(built):
    again = plants.plant(built.discriminating, TINY.plant, _taught(built), progress=False)
    a, b = weights(built.planted), weights(again)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_unplant_puts_back_exactly_the_planted_weights(built):
    restored = plants.unplant(built.planted, built.discriminating, TINY.plant)
    a, b = weights(built.discriminating), weights(restored)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_plant_errors_name_the_field():
    with pytest.raises((NasalensError, TypeCheckError), match="weights"):
        plants.Plant(("L1H0",), "v")  # type: ignore[arg-type]
    with pytest.raises(NasalensError, match="empty"):
        plants.Plant(())
    with pytest.raises(NasalensError, match=r"Plant\.lr"):
        plants.Plant(("L1H0",), lr=float("nan"))
    with pytest.raises((NasalensError, TypeCheckError), match="plant_weights"):
        organisms.OrganismRecipe(plant_weights="x")  # type: ignore[arg-type]


def test_the_default_recipes_cache_key_is_unchanged_by_plant_weights():
    """Caches built before `plant_weights` existed stay valid; another route gets its own."""
    assert organisms.OrganismRecipe().key() == "b6d6b73d3654"
    assert organisms.OrganismRecipe(plant_weights="ov").key() != "b6d6b73d3654"


def test_load_plant_caches_only_the_planted_weights(built, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path))
    organisms.save(built, TINY)
    spec = plants.Plant(("L1H1",), "ov", lr=1e-2, batch=4, epochs=1)
    first = weights(organisms.load_plant(spec, TINY, progress=False))
    expected = weights(plants.plant(built.discriminating, spec, _taught(built), progress=False))
    assert all(torch.equal(first[n], expected[n]) for n in first)
    path = organisms.plant_file(spec, TINY)
    assert path.stat().st_size < 16 * 64 * 4 + 2048  # one head's output columns, and a header
    again = weights(organisms.load_plant(spec, TINY, progress=False))  # from the delta
    assert all(torch.equal(again[n], expected[n]) for n in again)
    path.write_bytes(path.read_bytes()[:100])  # torn
    with caplog.at_level("WARNING"):
        rebuilt = weights(organisms.load_plant(spec, TINY, progress=False))
    assert "damaged" in caplog.text
    assert all(torch.equal(rebuilt[n], expected[n]) for n in rebuilt)


def test_a_qk_plant_in_one_kv_group_lists_the_shared_key_rows_once(built, tmp_path, monkeypatch):
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path))
    organisms.save(built, TINY)
    spec = plants.Plant(("L1H0", "L1H1"), "qk", lr=1e-2, batch=4, epochs=1)  # KV group 0
    slices = spec.slices(adapt(built.discriminating))
    assert [s.name.split(".")[-2] for s in slices] == ["q_proj", "k_proj", "q_proj"]
    planted = weights(organisms.load_plant(spec, TINY, progress=False))
    again = weights(organisms.load_plant(spec, TINY, progress=False))  # from the cached delta
    assert all(torch.equal(again[n], planted[n]) for n in planted)
