from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from nasalens.correlation import nas_confidence_correlation
from nasalens.errors import NasalensError
from nasalens.heads import (
    HeadSet,
    negative_heads,
    overlap,
    overlap_table,
    random_like,
)
from nasalens.metrics import EvalResult
from nasalens.models import Head, ModelInfo
from nasalens.scores import NasScores

GEO = ModelInfo("m", "Llama", 3, 4, 2, 64, 16, 100, 128)


def _scores(per_sample):
    t = torch.as_tensor(per_sample, dtype=torch.float32)
    return NasScores(t, t.abs(), t.abs(), tuple(f"s{i}" for i in range(t.shape[0])))


def _select_by_loop(per_sample, k, n, consistency):
    """Eq. 2-4 written out with Python lists."""
    samples, layers, heads = per_sample.shape
    every = [Head(layer, h) for layer in range(layers) for h in range(heads)]
    counts = Counter()
    for s in range(samples):
        ranked = sorted(every, key=lambda hd: -float(per_sample[s, hd.layer, hd.head]))
        counts.update(ranked[:k])
    kept = [hd for hd in every if counts[hd] / samples >= consistency]
    mean = {hd: float(per_sample[:, hd.layer, hd.head].mean()) for hd in kept}
    return sorted(kept, key=lambda hd: -mean[hd])[:n]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("k", "n", "consistency"), [(3, 2, 0.9), (5, 10, 0.6), (12, 4, 1.0)])
def test_selection_matches_the_rule_written_out(seed, k, n, consistency):
    gen = torch.Generator().manual_seed(seed)
    # A shared head-level signal plus per-sample noise, so some heads are consistent.
    per_sample = torch.randn(3, 4, generator=gen) * 2 + torch.randn(10, 3, 4, generator=gen)
    got = negative_heads(_scores(per_sample), k=k, top_n=n, consistency=consistency)
    assert list(got) == _select_by_loop(per_sample, k, n, consistency)
    assert all(share >= consistency for share in got.share)


def test_consistency_keeps_a_head_in_nine_of_ten_lists_but_not_eight():
    per_sample = torch.zeros(10, 1, 3)
    per_sample[:9, 0, 0] = 5.0  # head 0 top-1 in 9 of 10 samples
    per_sample[:8, 0, 1] = 4.0  # head 1 top-2 in 8 of 10 (head 2 fills the rest)
    per_sample[8:, 0, 2] = 9.0
    got = negative_heads(_scores(per_sample), k=2, top_n=5, consistency=0.9)
    assert Head(0, 0) in got and Head(0, 1) not in got
    assert got.share[0] == pytest.approx(1.0)  # head 0 is in every top-2 list


def test_bad_selection_arguments():
    scores = _scores(torch.zeros(2, 3, 4))
    with pytest.raises(NasalensError, match="k must be"):
        negative_heads(scores, k=13)
    with pytest.raises(NasalensError, match="consistency"):
        negative_heads(scores, k=2, consistency=0.0)


def test_random_controls_match_the_layer_histogram_and_are_seeded():
    heads = [Head(0, 1), Head(2, 0), Head(2, 3)]
    sets = random_like(heads, GEO, n_sets=20, seed=7)
    assert sets == random_like(heads, GEO, n_sets=20, seed=7)
    assert sets != random_like(heads, GEO, n_sets=20, seed=8)
    for drawn in sets:
        assert Counter(h.layer for h in drawn) == Counter({0: 1, 2: 2})
        assert not set(drawn) & set(heads)
    with pytest.raises(NasalensError, match="layer 0 has 0 heads"):
        random_like([Head(0, i) for i in range(4)], GEO)


def test_overlaps():
    a, b = HeadSet.of(["L0H1", "L1H2", "L2H3"]), HeadSet.of(["L1H2", "L2H3", "L0H0"])
    assert overlap(a, b) == 2
    table = overlap_table({"a": a, "b": b})
    assert table.loc["a", "b"] == 2 and table.loc["a", "a"] == 3


def test_correlation_uses_only_negative_answers_and_matches_scipy():
    rng = np.random.default_rng(0)
    per_sample = torch.tensor(rng.normal(size=(30, 2, 2)), dtype=torch.float32)
    scores = _scores(per_sample)
    p_yes = rng.uniform(0, 1, 30)
    frame = pd.DataFrame({"id": list(scores.sample_ids), "p_yes": p_yes, "decision": p_yes > 0.5})
    result = EvalResult("x", {}, frame.iloc[::-1].reset_index(drop=True))  # order must not matter
    got = nas_confidence_correlation(scores, result)
    no = p_yes <= 0.5
    x, y = per_sample.sum((1, 2)).numpy()[no], 1 - p_yes[no]
    assert got.n == no.sum()
    assert got.pearson == pytest.approx(stats.pearsonr(x, y)[0])
    assert got.spearman_p == pytest.approx(stats.spearmanr(x, y)[1])


def test_head_sets_round_trip_through_json(tmp_path):
    scores = _scores(torch.randn(6, 3, 4))
    heads = negative_heads(scores, k=6, top_n=4, consistency=0.5)
    heads.save(tmp_path / "heads.json")
    back = HeadSet.load(tmp_path / "heads.json")
    assert back == heads and back.heads == heads.heads and back.k == 6
    assert back.method == "nas" and back.by == "nas" and back.n_samples == 6
    np.testing.assert_array_equal(back.nas, heads.nas)
    ranked = HeadSet(
        heads.heads,
        {"effect": (0.5, float("nan"), -1.0, 2.0)},
        "ablation",
        "effect",
        {"how": "mean"},
    )
    ranked.save(tmp_path / "ranked.json")
    assert HeadSet.load(tmp_path / "ranked.json") == ranked
    # Files written before the ranked type (format version 1) still load.
    (tmp_path / "v1.json").write_text(
        '{"heads": ["L1H2", "L0H0"], "nas": [0.5, null], "share": [1.0, 0.9], "k": 100, '
        '"consistency": 0.9, "n_samples": 8}'
    )
    old = HeadSet.load(tmp_path / "v1.json")
    assert list(old) == [Head(1, 2), Head(0, 0)] and old.k == 100 and old.n_samples == 8
    assert old.nas[0] == 0.5 and np.isnan(old.nas[1]) and old.share == (1.0, 0.9)
    (tmp_path / "list.json").write_text('["L1H2", "L0H0"]')
    assert list(HeadSet.load(tmp_path / "list.json")) == [Head(1, 2), Head(0, 0)]
    (tmp_path / "bad.json").write_text('{"heads": ["17.7"]}')
    with pytest.raises(NasalensError, match="L<layer>H<head>"):
        HeadSet.load(tmp_path / "bad.json")
    with pytest.raises(NasalensError, match="appears twice"):
        HeadSet.of(["L1H1", "L1H1"])


def test_slicing_a_head_set_keeps_its_numbers():
    scores = _scores(torch.randn(6, 3, 4))
    heads = negative_heads(scores, k=6, top_n=5, consistency=0.5)
    first = heads[:2]
    assert isinstance(first, HeadSet) and first.heads == heads.heads[:2]
    assert first.nas == heads.nas[:2] and first == heads.top(2)
    assert heads[0] == heads.heads[0]


def test_every_form_of_a_head_is_read_by_one_checker():
    want = [Head(1, 2), Head(0, 3)]
    assert HeadSet.of(["L1H2", (0, 3)]).heads == tuple(want)
    assert HeadSet.of(HeadSet.of(want)).heads == tuple(want)
    assert GEO.check_heads([(np.int64(1), torch.tensor(2)), "l0h3"]) == want
    assert GEO.check_heads("L1H2") == [Head(1, 2)]
    for bad, message in [
        ([1.5], "is not a head"),
        ([(1, 2, 3)], "is not a head"),
        (["L1"], "L<layer>H<head>"),
        ([(True, 1)], "is not a head"),
        ([(5, 0)], "does not exist"),
        (["L1H2", (1, 2)], "appears twice"),
        (7, "must be a list of heads"),
    ]:
        with pytest.raises(NasalensError, match=message):
            GEO.check_heads(bad)


def test_the_old_argument_name_still_works_with_a_warning():
    scores = _scores(torch.randn(6, 3, 4))
    with pytest.warns(DeprecationWarning, match="top_n"):
        old = negative_heads(scores, k=6, n=3, consistency=0.5)
    assert old == negative_heads(scores, k=6, top_n=3, consistency=0.5)
    with pytest.raises(NasalensError, match="pass top_n= only"):
        negative_heads(scores, k=6, n=3, top_n=3)
