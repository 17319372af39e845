"""The probing set (known facts -> TP / FN train / V, tau) and NasaConfig as a saved job."""

import json
import logging
import math

import pandas as pd
import pytest
from jaxtyping import TypeCheckError

from nasalens.artifacts import read_json
from nasalens.data.sample import Question
from nasalens.errors import NasalensError
from nasalens.metrics import EvalResult
from nasalens.models import adapt
from nasalens.prompts import binary, encode
from nasalens.scores import nas
from nasalens.tuning import NasaConfig, ProbeSet, probe_set
from nasalens.tuning import probe as probe_mod
from nasalens.tuning.nasa import threshold
from tests.builders import make_question


def questions(n=12):
    return [
        make_question(id=f"q{i}", question=f"What is {i} plus {i}?", answers=(str(2 * i),))
        for i in range(n)
    ]


def fake_answers(known: set[int]):
    """short_answers stand-in: right for the questions in ``known``, wrong for the others."""

    def answer(model, samples, **kwargs):
        rows = []
        for i, s in enumerate(samples):
            text = f"It is {s.answers[0]}." if i in known else "I do not know."
            rows.append({"id": s.id, "answer": text})
        return pd.DataFrame(rows)

    return answer


def fake_decisions(yes: set[str]):
    def decide(model, samples, template=None, **kwargs):
        frame = pd.DataFrame(
            {"id": [s.id for s in samples], "p_yes": [0.9 if s.id in yes else 0.1 for s in samples]}
        )
        frame["decision"] = frame["p_yes"] > 0.5
        return EvalResult("fake", {}, frame)

    return decide


def test_the_split_counts_and_tau(tiny_model, monkeypatch):
    monkeypatch.setattr(probe_mod, "short_answers", fake_answers({0, 1, 2, 3, 4, 5, 6, 7, 8}))
    monkeypatch.setattr(probe_mod, "evaluate", fake_decisions({"q0/yes", "q3/yes"}))
    probe = probe_set(tiny_model, questions(), progress=False)
    assert probe.counts() == {
        "questions": 12, "known": 9, "tp": 2, "fn": 7, "train": 6, "val": 1,
    }  # fmt: skip
    assert {s.id for s in probe.tp} == {"q0/yes", "q3/yes"}
    assert all(s.gold and s.label == s.answers[0] for s in probe.fn)
    expected = nas(
        tiny_model, encode(tiny_model, list(probe.tp), template=binary()), progress=False
    )
    tau = threshold(adapt(tiny_model), probe, [], NasaConfig())  # tau: NASA's, computed once
    assert math.isclose(tau, float(expected.model_per_sample.min()), rel_tol=1e-6)
    known = probe.answers.set_index("id")
    assert known.loc["q9/yes", "known"] == False  # noqa: E712
    assert known.loc["q0/yes", "decision"] == "tp" and known.loc["q1/yes", "decision"] == "fn"
    # The V split is seeded: same seed, same V; another seed, possibly another.
    again = probe_set(tiny_model, questions(), progress=False)
    assert [s.id for s in again.val] == [s.id for s in probe.val]


def test_empty_tp_gives_minus_infinity_and_says_so(tiny_model, monkeypatch, caplog):
    monkeypatch.setattr(probe_mod, "short_answers", fake_answers({0, 1, 2, 3, 4}))
    monkeypatch.setattr(probe_mod, "evaluate", fake_decisions(set()))
    with caplog.at_level(logging.WARNING, logger="nasalens.tuning.probe"):
        probe = probe_set(tiny_model, questions(), val_fraction=0.4, progress=False)
    assert threshold(adapt(tiny_model), probe, [], NasaConfig()) == -math.inf and not probe.tp
    assert (len(probe.train), len(probe.val)) == (3, 2)
    assert "TP is empty" in caplog.text


def test_the_last_number_rule_decides_what_is_known(tiny_model, monkeypatch):
    def echo(model, samples, **kwargs):
        # "What is 3 plus 3?" answered "3 plus 3 is 7": echoes 3 first, the answer is last.
        return pd.DataFrame(
            [
                {"id": s.id, "answer": f"3 plus 3 is {x}"}
                for s, x in zip(samples, ("6", "7"), strict=True)
            ]
        )

    monkeypatch.setattr(probe_mod, "short_answers", echo)
    monkeypatch.setattr(probe_mod, "evaluate", fake_decisions(set()))
    qs = [make_question(id=f"q{i}", question="What is 3 plus 3?", answers=("6",)) for i in (0, 1)]
    probe = probe_set(tiny_model, qs, progress=False)
    assert [s.id for s in probe.fn] == ["q0/yes"]


def test_save_and_load_round_trip(tiny_model, monkeypatch, tmp_path):
    monkeypatch.setattr(probe_mod, "short_answers", fake_answers({0, 1, 2, 3}))
    monkeypatch.setattr(probe_mod, "evaluate", fake_decisions(set()))
    probe = probe_set(tiny_model, questions(6), progress=False)
    probe.save(tmp_path / "probe.json")
    back = ProbeSet.load(tmp_path / "probe.json")
    assert back.train == probe.train and back.val == probe.val and back.tp == probe.tp
    assert back.val_fraction == probe.val_fraction and back.counts() == probe.counts()
    # A file written before tau moved to NASA (it held tau, region and eps) still loads.
    old = read_json(tmp_path / "probe.json") | {"tau": 1.5, "region": "answer", "eps": 1e-6}
    del old["val_fraction"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert ProbeSet.load(tmp_path / "old.json").train == probe.train
    with pytest.raises(NasalensError, match="not a probing set"):
        (tmp_path / "bad.json").write_text("{}")
        ProbeSet.load(tmp_path / "bad.json")


def test_probe_set_refuses_bad_input(tiny_model):
    with pytest.raises(NasalensError, match="no questions"):
        probe_set(tiny_model, [])
    with pytest.raises(NasalensError, match="val_fraction"):
        probe_set(tiny_model, [Question(id="a", question="b?", answers=("c",))], val_fraction=1.0)


def test_config_defaults_are_the_papers_and_round_trip(tmp_path):
    config = NasaConfig()
    assert (config.lr, config.batch_size, config.max_epochs, config.warmup) == (1e-6, 32, 30, 0.03)
    assert (config.rho, config.mode, config.k, config.top_n) == (0.5, "qk", 100, 30)
    assert config.keep_tripping_epoch and config.model_nas == "all" and config.halting == "nas"
    assert math.isclose(config.log_base, math.e)
    changed = config.replace(lr=1e-3, mode="q", region="answer")
    changed.save(tmp_path / "config.json")
    assert NasaConfig.load(tmp_path / "config.json") == changed


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    (tmp_path / "c.json").write_text('{"lr": 0.001, "learning_rate": 1}')
    with pytest.raises(NasalensError, match=r"unknown NasaConfig key\(s\) \['learning_rate'\]"):
        NasaConfig.load(tmp_path / "c.json")
    # Wrong types: NasalensError from the config itself, or the test run's type checker first.
    with pytest.raises((NasalensError, TypeCheckError), match="qv"):
        NasaConfig(mode="qv")  # type: ignore[arg-type]
    with pytest.raises((NasalensError, TypeCheckError), match=r"2\.5"):
        NasaConfig(max_epochs=2.5)  # type: ignore[arg-type]
    with pytest.raises(NasalensError, match="batch_size=0"):
        NasaConfig(batch_size=0)
    assert NasaConfig.from_dict({"lr": 1}).lr == 1.0  # JSON/TOML may write 1.0 as 1


def test_config_from_toml(tmp_path):
    (tmp_path / "run.toml").write_text('[nasa]\nlr = 1e-3\nmode = "q"\nhalting = "share_yes"\n')
    config = NasaConfig.from_toml(tmp_path / "run.toml")
    assert (config.lr, config.mode, config.halting) == (1e-3, "q", "share_yes")
    (tmp_path / "bad.toml").write_text("[nasa]\nlr = 1e-3\nepochs = 3\n")
    with pytest.raises(NasalensError, match="epochs"):
        NasaConfig.from_toml(tmp_path / "bad.toml")


def test_knowledge_can_come_from_a_reference_model(tiny_model, monkeypatch):
    asked = []

    def answer(model, samples, **kwargs):
        asked.append(model)
        return fake_answers({0, 1, 2})(model, samples)

    monkeypatch.setattr(probe_mod, "short_answers", answer)
    monkeypatch.setattr(probe_mod, "evaluate", fake_decisions(set()))
    reference = object()
    probe = probe_set(tiny_model, questions(4), knowledge_model=reference, progress=False)
    assert asked == [reference] and probe.counts()["known"] == 3


def test_presets_and_a_toml_file_on_top_of_one(tmp_path):
    causal = NasaConfig.preset("causal", lr=1e-3)
    assert causal.select == "causal" and causal.lr == 1e-3 and causal.halting == "never"
    assert not causal.early_stopping and not causal.cancellation
    assert NasaConfig.preset("paper") == NasaConfig()
    with pytest.raises(NasalensError, match="unknown NasaConfig preset"):
        NasaConfig.preset("fast")
    toml = tmp_path / "nasa.toml"
    toml.write_text("[nasa]\nmax_epochs = 3\n")
    layered = NasaConfig.from_toml(toml, base=causal)
    assert layered == causal.replace(max_epochs=3)  # what the file leaves out, the preset says
    assert NasaConfig.from_toml(toml) == NasaConfig(max_epochs=3)
