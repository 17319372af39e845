"""The organism shipped in the package, on the embedded model: it is a few MB, it is biased
as its description says, and a rebuild from the cached organism reproduces it."""

import pytest
import torch

from nasalens import organisms, shipped
from nasalens.artifacts import read_tensors
from nasalens.data import binary_samples
from nasalens.metrics import evaluate
from nasalens.models import adapt
from nasalens.plants import Plant

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def org(embedded_model):
    return shipped.shipped_organism(base=embedded_model)


def test_the_file_is_a_few_megabytes_and_names_its_plant(org):
    assert shipped.SHIPPED.stat().st_size < 6e6
    loaded = org
    assert [str(h) for h in loaded.heads] == loaded.report["heads"]
    assert len(loaded.check_questions) == len(loaded.report["check_questions"])


def test_it_is_biased_as_its_description_says(org):
    loaded = org
    checks = binary_samples(list(loaded.check_questions), pairs=True)
    report = loaded.report["report"]
    for stage in ("discriminating", "planted"):
        result = evaluate(getattr(loaded, stage), checks, progress=False).summary
        for metric in ("recall", "auroc"):
            assert result[metric] == pytest.approx(report[stage]["checks"][metric], abs=0.01)
    assert report["planted"]["checks"]["recall"] < 0.2  # the plant took
    assert report["discriminating"]["checks"]["auroc"] > 0.75  # and the model discriminates


def test_the_planted_stage_differs_only_in_the_planted_rows(org):
    loaded = org
    spec = Plant(**{**loaded.report["plant"], "heads": tuple(loaded.report["plant"]["heads"])})
    a, b = adapt(loaded.discriminating).hf_parameters(), adapt(loaded.planted).hf_parameters()
    names = {s.name for s in spec.slices(adapt(loaded.planted))}
    assert {n for n in a if not torch.equal(a[n], b[n])} == names


@pytest.mark.slow
@pytest.mark.skipif(not organisms.is_built(), reason="the organism is not built on this machine")
def test_a_rebuild_from_the_cached_organism_reproduces_the_file(embedded_model):
    recipe = organisms.OrganismRecipe()
    factors, rows = shipped.compress(
        embedded_model,
        organisms.organism("discriminating", recipe, progress=False),
        recipe.plant,
        organisms.taught_questions(recipe),
        progress=False,
    )
    stored = read_tensors(shipped.SHIPPED)
    mine = shipped.deltas(factors)
    theirs = shipped.deltas({k[len("taught/") :]: v for k, v in stored.items() if "taught/" in k})
    assert sorted(mine) == sorted(theirs)
    for name in mine:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-2, atol=1e-5)
    for name, value in rows.items():
        torch.testing.assert_close(value.float(), stored[f"plant/{name}"], rtol=1e-3, atol=1e-4)
