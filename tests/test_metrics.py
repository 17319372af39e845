import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasalens import metrics
from nasalens.models import info
from nasalens.prompts import binary, encode
from tests.builders import make_samples

pytestmark = pytest.mark.legacy  # also runs on HookedTransformers (make test-legacy)


def test_classification_against_a_hand_worked_table():
    # gold:  Y Y Y Y N N N N N N ; pred: Y N N N Y N N N N N  -> TP 1, FN 3, FP 1, TN 5
    gold = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    out = metrics.classification(gold, pred)
    assert (out["tp"], out["fn"], out["fp"], out["tn"]) == (1, 3, 1, 5)
    assert out["accuracy"] == pytest.approx(0.6)
    assert out["precision"] == pytest.approx(0.5)
    assert out["recall"] == pytest.approx(0.25)
    assert out["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert out["pr_gap"] == pytest.approx(0.25)


def test_a_model_that_always_says_no_has_no_precision_and_zero_recall():
    out = metrics.classification([1, 0, 1, 0], [0, 0, 0, 0])
    assert math.isnan(out["precision"]) and out["recall"] == 0 and out["f1"] == 0
    assert out["accuracy"] == 0.5


def _auroc_by_pairs(gold, score):
    pos = [s for g, s in zip(gold, score, strict=True) if g]
    neg = [s for g, s in zip(gold, score, strict=True) if not g]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def _best_threshold_by_loop(gold, score):
    g = np.asarray(gold, bool)
    thresholds = [-np.inf, *sorted(set(score))]
    return max(np.mean((np.asarray(score) > t) == g) for t in thresholds)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])),
        min_size=1,
        max_size=30,
    )
)
def test_auroc_and_best_threshold_match_brute_force(rows):
    gold = [g for g, _ in rows]
    score = [s for _, s in rows]
    if all(gold) or not any(gold):
        assert math.isnan(metrics.auroc(gold, score))
    else:
        assert metrics.auroc(gold, score) == pytest.approx(_auroc_by_pairs(gold, score))
    assert metrics.best_threshold_accuracy(gold, score) == pytest.approx(
        _best_threshold_by_loop(gold, score)
    )


def test_ece_hand_case():
    # two confident right answers (0.95 -> bin 9, accuracy 1) and two 0.65 half right (bin 6)
    gold = [True, False, True, False]
    p = [0.95, 0.05, 0.65, 0.65]
    expected = 0.5 * abs(1 - 0.95) + 0.5 * abs(0.5 - 0.65)
    assert metrics.ece(gold, p) == pytest.approx(expected)


@pytest.mark.parametrize("name", metrics.METRICS)
def test_a_bootstrap_by_name_computes_the_metric_as_summarize_does(name):
    rng = np.random.default_rng(1)
    gold, p = rng.random(40) < 0.5, rng.random(40)
    p[:6] = 0.5  # ties and the threshold itself
    whole = metrics.bootstrap(gold, p, lambda g, q: metrics.summarize(g, q)[name], n_boot=200)
    assert metrics.bootstrap(gold, p, name, n_boot=200) == whole


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    gold = rng.random(200) < 0.5
    p = np.clip(gold * 0.3 + rng.random(200) * 0.7, 0, 1)
    lo, hi = metrics.bootstrap(gold, p, "auroc", n_boot=300, seed=3)
    assert (lo, hi) == metrics.bootstrap(gold, p, "auroc", n_boot=300, seed=3)
    assert lo < metrics.auroc(gold, p) < hi
    with pytest.raises(metrics.NasalensError, match="unknown metric"):
        metrics.bootstrap(gold, p, "accuracyy")


def test_answer_logprobs_match_an_independent_full_forward(tiny_model):
    batch = encode(tiny_model, make_samples(5), template=binary(chat=False), padding_side="left")
    got = metrics.answer_logprobs(tiny_model, batch, chunk_size=2, progress=False)
    with torch.no_grad():
        logits = tiny_model(batch.tokens, attention_mask=batch.attention_mask)
    logp = logits[torch.arange(5), batch.answer_pos].log_softmax(-1)
    expected = torch.stack(
        [logp[:, list(batch.pos_ids)].logsumexp(-1), logp[:, list(batch.neg_ids)].logsumexp(-1)],
        dim=1,
    )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_candidate_logprobs_sum_the_variants_probabilities(tiny_model):
    batch = encode(tiny_model, make_samples(3), template=binary(chat=False))
    vocab = info(tiny_model).d_vocab
    logits = torch.randn(3, vocab, generator=torch.Generator().manual_seed(0))
    probs = logits.softmax(-1)
    got = metrics.candidate_logprobs(logits, batch)
    for col, ids in enumerate((batch.pos_ids, batch.neg_ids)):
        by_hand = sum(probs[:, i] for i in ids).log()  # a slow sum over the variants
        torch.testing.assert_close(got[:, col], by_hand, atol=1e-6, rtol=0)


def test_evaluate_is_the_same_batched_or_one_row_at_a_time(tiny_model):
    samples = make_samples(6)
    batched = metrics.evaluate(tiny_model, samples, chunk_size=4, progress=False)
    for i, sample in enumerate(samples):
        alone = metrics.evaluate(tiny_model, [sample], progress=False)
        assert alone.per_sample["p_yes"][0] == pytest.approx(
            batched.per_sample["p_yes"][i], abs=1e-5
        )
    frame = batched.per_sample
    assert list(frame["id"]) == [s.id for s in samples]
    assert batched.summary["n"] == 6
    assert (frame["decision"] == (frame["p_yes"] > 0.5)).all()
    row = batched.to_frame()
    assert list(row.columns[:2]) == ["name", "n"]


def test_evaluate_accepts_a_decider(tiny_model):
    class AlwaysYes:
        model = tiny_model

        def answer_logprobs(self, batch, *, chunk_size=16, progress=True):
            return torch.tensor([[-0.1, -3.0]]).repeat(len(batch), 1)

    result = metrics.evaluate(AlwaysYes(), make_samples(4), progress=False)
    assert result.summary["share_yes"] == 1.0 and result.summary["recall"] == 1.0
