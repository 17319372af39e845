"""The prompt grid: k-shot examples from a disjoint pool, every row an independent evaluation."""

import pytest

from nasalens.analysis.generalization import COLUMNS, generalization, pick_shots
from nasalens.errors import NasalensError
from nasalens.metrics import evaluate
from nasalens.prompts import binary
from tests.builders import make_sample, make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


def test_pick_shots_is_balanced_seeded_and_from_the_pool():
    pool = make_samples(10)
    shots = pick_shots(pool, 4, seed=3)
    assert sum(s.gold for s in shots) == 2 and len(shots) == 4
    assert shots == pick_shots(pool, 4, seed=3)
    assert {s.id for s in shots} <= {s.id for s in pool}
    assert sum(s.gold for s in pick_shots(pool, 3)) == 1  # k // 2 positives


def test_pick_shots_needs_both_answers():
    only_yes = [make_sample(gold=True, id=f"y{i}") for i in range(5)]
    with pytest.raises(
        NasalensError, match="need 2 Yes and 2 No examples, but the pool has 5 and 0"
    ):
        pick_shots(only_yes, 4)


def test_every_row_is_an_evaluation_with_the_same_examples(tiny_model, tiny_model_copy):
    samples = make_samples(6)
    pool = [make_sample(gold=i % 2 == 0, id=f"p{i}", question=f"Is {i} even?") for i in range(6)]
    table = generalization(
        tiny_model,
        samples,
        tuned=tiny_model_copy,
        pool=pool,
        seed=1,
        instructions=("nasa", "b"),
        candidates=("yes_no", "correct_wrong"),
        progress=False,
    )
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 2 * 2 * 2 * 2
    assert set(table["model"]) == {"base", "tuned"} and (table["n"] == 6).all()
    # One row recomputed: base, correct_wrong, instruction b, 4-shot.
    shots = pick_shots(pool, 4, seed=1)
    expected = evaluate(
        tiny_model, samples, template=binary("b", "correct_wrong", shots=shots), progress=False
    )
    row = table.query(
        "model == 'base' and candidates == 'correct_wrong' and instruction == 'b' and shots == 4"
    ).iloc[0]
    for column in ("accuracy", "f1", "share_yes", "auroc"):
        assert row[column] == pytest.approx(expected.summary[column], nan_ok=True)
    # The copy has the same weights: identical rows.
    base = table[table["model"] == "base"].drop(columns="model").reset_index(drop=True)
    tuned = table[table["model"] == "tuned"].drop(columns="model").reset_index(drop=True)
    assert base.equals(tuned)


def test_without_a_pool_the_examples_are_held_out(tiny_model):
    samples = make_samples(8)
    table = generalization(
        tiny_model, samples, instructions=("nasa",), candidates=("yes_no",), progress=False
    )
    assert table["shots"].tolist() == [0, 4] and (table["n"] == 4).all()
    zero = generalization(
        tiny_model,
        samples,
        n_shots=0,
        instructions=("a",),
        candidates=("true_false",),
        progress=False,
    )
    assert zero["shots"].tolist() == [0] and zero["n"].item() == 8


def test_the_pool_must_be_disjoint(tiny_model):
    samples = make_samples(4)
    pool = [*make_samples(2), make_sample(gold=False, id="x", question="Is ice hot?")]
    with pytest.raises(NasalensError, match="pool sample 's0' is also an evaluated sample"):
        generalization(tiny_model, samples, pool=pool, progress=False)
    with pytest.raises(NasalensError, match="shots must be 0 or more"):
        generalization(tiny_model, samples, n_shots=-1, progress=False)
