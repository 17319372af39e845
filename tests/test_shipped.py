"""The shipped organism: low-rank deltas, the file, and loading it (tiny model; the embedded file
is checked against the SVD and the cached organism when it is built)."""

import json

import pytest
import torch

from nasalens import organisms, plants, shipped
from nasalens.artifacts import read_tensors, write_tensors
from nasalens.errors import NasalensError
from nasalens.models import adapt
from tests.builders import weights
from tests.test_organisms import TINY
from tests.test_organisms import _taught as taught_in_build_order


@pytest.fixture(scope="module")
def built(tiny_model):
    return organisms.build(tiny_model, TINY, progress=False)


def _taught_list(built):
    return [*built.nasa_questions, *built.check_questions]


def _description(built):
    return {
        "plant": {**TINY.plant.__dict__},
        "heads": [str(h) for h in built.heads],
        "nasa_questions": [q.id for q in built.nasa_questions],
        "check_questions": [q.id for q in built.check_questions],
        "report": {"note": "tiny"},
    }


def test_low_rank_is_the_best_rank_r_approximation(built, tiny_model):
    """Eckart-Young: the residual of each matrix is the norm of the dropped singular values."""
    base, taught = weights(tiny_model), weights(built.discriminating)
    factors = shipped.low_rank(built.discriminating, tiny_model, rank=2)
    changes = shipped.deltas(factors)
    assert not any("embed" in n or n == "lm_head.weight" for n in changes)
    matrices = [n for n in changes if changes[n].ndim == 2]
    assert matrices and all(factors[f"{n}:a"].shape[1] == 2 for n in matrices)
    for name in matrices:
        exact = taught[name] - base[name]
        s = torch.linalg.svdvals(exact)
        assert torch.linalg.matrix_rank(changes[name]) <= 2
        residual = (exact - changes[name]).norm()
        assert residual == pytest.approx(s[2:].norm().item(), rel=1e-4, abs=1e-7)


def test_full_rank_reproduces_every_weight_but_the_embedding(built, tiny_model):
    factors = shipped.low_rank(built.discriminating, tiny_model, rank=10_000)
    assert all(k.endswith(":full") for k in factors)
    rebuilt = weights(shipped.add_low_rank(tiny_model, factors))
    taught, base = weights(built.discriminating), weights(tiny_model)
    for name, value in rebuilt.items():
        expected = base[name] if "embed" in name or name == "lm_head.weight" else taught[name]
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6)


def test_the_file_round_trips_both_stages(built, tiny_model, tmp_path):
    factors, rows = shipped.compress(
        tiny_model, built.discriminating, TINY.plant, _taught_list(built), rank=2, progress=False
    )
    assert all(v.dtype == torch.float16 for v in factors.values())
    path = shipped.write_shipped(tmp_path / "o.safetensors", factors, rows, _description(built))
    org = shipped.shipped_organism(path, base=tiny_model)
    assert org.heads == built.heads
    assert org.check_questions == built.check_questions
    assert org.report["report"] == {"note": "tiny"}
    expected_taught = weights(shipped.add_low_rank(tiny_model, factors))
    assert all(torch.equal(v, expected_taught[n]) for n, v in weights(org.discriminating).items())
    planted = weights(org.planted)
    moved = {n for n in planted if not torch.equal(planted[n], expected_taught[n])}
    assert moved == {s.name for s in TINY.plant.slices(adapt(org.planted))}
    again = plants.apply_delta(org.discriminating, TINY.plant, rows)
    assert all(torch.equal(v, planted[n]) for n, v in weights(again).items())


def test_plants_on_the_shipped_model_are_cached_under_its_file(
    built, tiny_model, tmp_path, monkeypatch
):
    """A suite plants on the shipped taught model: planted on its facts, cached by its hash."""
    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path / "cache"))
    factors, rows = shipped.compress(
        tiny_model, built.discriminating, TINY.plant, _taught_list(built), rank=2, progress=False
    )
    path = shipped.write_shipped(tmp_path / "o.safetensors", factors, rows, _description(built))
    org = shipped.shipped_organism(path, base=tiny_model)
    assert org.key.startswith("shipped-") and org.key != TINY.key()
    spec = plants.Plant(("L1H1",), "ov", lr=1e-2, batch=4, epochs=1)
    first = weights(organisms.load_plant(spec, source=org, progress=False))
    taught = taught_in_build_order(built)
    expected = weights(plants.plant(org.discriminating, spec, taught, progress=False))
    assert all(torch.equal(first[n], expected[n]) for n in first)
    cached = organisms.plant_file(spec, key=org.key)
    assert cached.is_file() and cached != organisms.plant_file(spec, TINY)
    again = weights(organisms.load_plant(spec, source=org, progress=False))  # from the delta
    assert all(torch.equal(again[n], expected[n]) for n in again)
    other = shipped.write_shipped(tmp_path / "p.safetensors", factors, rows, {
        **_description(built), "report": {"note": "another"}
    })  # fmt: skip
    assert shipped.shipped_organism(other, base=tiny_model).key != org.key
    keyless = organisms.Organism(org.discriminating, org.planted, org.heads)
    with pytest.raises(NasalensError, match="no key"):
        organisms.load_plant(spec, source=keyless, progress=False)


def test_a_rebuild_reproduces_the_file(built, tiny_model, tmp_path):
    def make(name):
        parts = shipped.compress(
            tiny_model, built.discriminating, TINY.plant, _taught_list(built), rank=2,
            progress=False,
        )  # fmt: skip
        return read_tensors(shipped.write_shipped(tmp_path / name, *parts, _description(built)))

    first, second = make("a.safetensors"), make("b.safetensors")
    assert sorted(first) == sorted(second)
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=1e-3, atol=1e-5)


def test_missing_torn_or_foreign_files_say_how_to_rebuild(built, tiny_model, tmp_path):
    with pytest.raises(NasalensError, match=r"missing.*make organism-file"):
        shipped.shipped_organism(tmp_path / "none.safetensors", base=tiny_model)
    factors, rows = shipped.compress(
        tiny_model, built.discriminating, TINY.plant, _taught_list(built), rank=2, progress=False
    )
    path = shipped.write_shipped(tmp_path / "o.safetensors", factors, rows, _description(built))
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(NasalensError, match=r"damaged.*make organism-file"):
        shipped.shipped_organism(path, base=tiny_model)
    flipped = bytearray(good)
    flipped[-3] ^= 0xFF  # a weight's byte: the content hash catches it
    path.write_bytes(bytes(flipped))
    with pytest.raises(NasalensError, match=r"damaged.*hash"):
        shipped.shipped_organism(path, base=tiny_model)
    other = tmp_path / "other.safetensors"
    write_tensors(other, {"x": torch.zeros(1)}, {"nasalens": json.dumps({"format": "x"})})
    with pytest.raises(NasalensError, match=r"not a shipped organism.*make organism-file"):
        shipped.shipped_organism(other, base=tiny_model)
    newer = {"format": shipped.FORMAT, "version": shipped.VERSION + 1}
    write_tensors(other, {"x": torch.zeros(1)}, {"nasalens": json.dumps(newer)})
    with pytest.raises(NasalensError, match=r"version 2; this nasalens reads version 1; rein"):
        shipped.shipped_organism(other, base=tiny_model)
    with pytest.raises(NasalensError, match="lacks"):
        shipped.write_shipped(other, factors, rows, {"heads": []})
    foreign = {**_description(built), "check_questions": ["no-such-fact"]}
    shipped.write_shipped(other, factors, rows, foreign)
    with pytest.raises(NasalensError, match=r"probe set lacks.*make organism-file"):
        shipped.shipped_organism(other, base=tiny_model)


def test_a_delta_for_another_model_is_refused(built, tiny_model):
    factors = shipped.low_rank(built.discriminating, tiny_model, rank=2)
    name = next(k for k in factors if k.endswith(":a"))
    bad = {**factors, name: torch.zeros(3, 2)}
    with pytest.raises(NasalensError, match="another model"):
        shipped.add_low_rank(tiny_model, bad)
    with pytest.raises(NasalensError, match="NAME:a"):
        shipped.deltas({"w:c": torch.zeros(1)})
    with pytest.raises(NasalensError, match="at least 1"):
        shipped.low_rank(built.discriminating, tiny_model, rank=0)


def test_the_description_is_strict_json(built, tiny_model, tmp_path):
    factors, rows = shipped.compress(
        tiny_model, built.discriminating, TINY.plant, _taught_list(built), rank=2, progress=False
    )
    description = {**_description(built), "report": {"precision": float("nan"), "x": [1.0]}}
    path = shipped.write_shipped(tmp_path / "o.safetensors", factors, rows, description)
    from nasalens.artifacts import read_metadata

    raw = read_metadata(path)["nasalens"]
    assert "NaN" not in raw
    assert json.loads(raw)["report"] == {"precision": None, "x": [1.0]}
