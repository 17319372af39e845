"""The organism suite's bookkeeping (bench/organism_suite.py), checked on hand-made cases."""

import json

from bench import organism_suite as suite
from nasalens.models import Head

H = Head.parse


def test_ranks_and_recall_at_10_count_from_one():
    ranking = [H(f"L{i // 9}H{i % 9}") for i in range(27)]
    got = suite.ranks(ranking, [H("L0H0"), H("L1H0"), H("L2H8")])
    assert got["ranks"] == {"L0H0": 1, "L1H0": 10, "L2H8": 27}
    assert got["recall_at_10"] == 2 / 3


def test_the_layer_matched_floor_is_the_expected_recall_of_matched_random_heads():
    top = [H("L3H0"), H("L3H1"), H("L5H2")]  # two picks in layer 3, one in layer 5
    planted = [H("L3H7"), H("L5H0"), H("L8H1")]
    # P(L3H7 picked) = 2/9, P(L5H0) = 1/9, P(L8H1) = 0
    assert abs(suite.layer_matched_floor(top, planted, 9) - (2 / 9 + 1 / 9) / 3) < 1e-12


def test_repaired_needs_recall_back_auroc_kept_and_accuracy_not_lower():
    before, planted = {"recall": 0.7, "auroc": 0.88}, {"accuracy": 0.5}
    assert suite.repaired({"recall": 0.63, "auroc": 0.86, "accuracy": 0.5}, before, planted)
    assert not suite.repaired({"recall": 0.62, "auroc": 0.90, "accuracy": 0.7}, before, planted)
    assert not suite.repaired({"recall": 0.9, "auroc": 0.859, "accuracy": 0.7}, before, planted)
    assert not suite.repaired({"recall": 1.0, "auroc": 0.9, "accuracy": 0.49}, before, planted)


def test_draws_are_seeded_distinct_heads_inside_their_band():
    for draw in suite.DRAWS[1:]:
        plant = draw.plant(30, 9)
        assert plant == draw.plant(30, 9) and plant.weights == draw.weights
        heads = plant.planted_heads
        low, high = suite.BANDS[draw.band]
        assert len(set(heads)) == draw.n_heads and all(low <= h.layer < high for h in heads)
    routes = [d.weights for d in suite.DRAWS]
    assert len(suite.DRAWS) >= 8 and routes.count("ov") >= 2
    assert {d.weights for d in suite.DRAWS[: suite.QUICK]} == {"q", "qk", "ov"}


def test_a_plant_that_does_not_take_is_planted_again_with_twice_the_epochs(monkeypatch):
    from nasalens import organisms, plants

    planted: list[int] = []
    recall = {}

    def load_plant(spec, source=None, progress=True):
        planted.append(spec.epochs)
        return spec.epochs  # stands for the model

    def measure(model, sets, chunk):
        return {"checks": {"recall": recall[model]}, "held_out": {"recall": 0.0}}

    monkeypatch.setattr(organisms, "load_plant", load_plant)
    monkeypatch.setattr(suite, "measure", measure)
    ctx = {"organism": None, "sets": {}}
    recall.update({4: 0.5, 8: 0.3, 16: 0.1})
    spec, model, attempts = suite.strengthen(plants.Plant(("L1H1",)), ctx, 16)
    assert planted == [4, 8, 16] and spec.epochs == model == 16
    assert [a["checks_recall"] for a in attempts] == [0.5, 0.3, 0.1]
    assert "measured" in attempts[-1] and all("measured" not in a for a in attempts[:-1])
    planted.clear()
    recall.update({4: 0.1})  # takes at once
    spec, _, attempts = suite.strengthen(plants.Plant(("L1H1",)), ctx, 16)
    assert planted == [4] and spec.epochs == 4 and len(attempts) == 1
    planted.clear()
    recall.update({4: 0.5, 8: 0.5, 16: 0.5, 32: 0.0})  # never takes: gives up after two
    spec, _, attempts = suite.strengthen(plants.Plant(("L1H1",)), ctx, 16)
    assert planted == [4, 8, 16] == [a["epochs"] for a in attempts]
    assert suite.STRENGTHEN == 2 and spec.epochs == 16


def test_an_old_record_is_kept_only_for_the_plant_it_measured():
    from dataclasses import asdict

    from nasalens import plants

    draw, spec = suite.DRAWS[2], plants.Plant(("L1H1",), "ov")
    old = {"plant": asdict(spec), "measured": {"planted": 0, "random": 1}, "localization": 2}

    def attempts():
        return [{"epochs": spec.epochs, "seconds": 3.0, "measured": "new"}]

    got = suite.planted_record(draw, spec, attempts(), old)
    assert got["measured"] == {"planted": "new", "random": 1} and got["localization"] == 2
    assert got["plant_seconds"] == 3.0 and "measured" not in got["attempts"][-1]
    stronger = plants.Plant(("L1H1",), "ov", epochs=8)  # strengthened: the old record is stale
    got = suite.planted_record(draw, stronger, attempts(), old)
    assert got["measured"] == {"planted": "new"} and "localization" not in got
    assert got["plant"]["epochs"] == 8


def test_a_later_run_adds_its_methods_and_keeps_what_it_did_not_run():
    old = {"patching": {"ranks": [3]}, "verified": {"ranks": [2]}, "seconds": {"patching": 684.3}}
    found = {"verified": {"ranks": [1]}, "exact": {"ranks": [4]}, "seconds": {"exact": 446.7}}
    got = suite.merge_localization(old, found)
    assert got["patching"] == {"ranks": [3]} and got["exact"] == {"ranks": [4]}
    assert got["verified"] == {"ranks": [1]}  # run again: the new result
    assert got["seconds"] == {"patching": 684.3, "exact": 446.7}
    assert suite.LOCALIZE["exact"] == ("exact",) and set(suite.LOCALIZE["all"]) == {
        "exact",
        "patching",
    }


def test_summary_means_and_shares_over_taken_plants():
    def record(route, recall_nas, fixed, taken=True):
        return {
            "taken": taken,
            "plant": {"weights": route},
            "localization": {"nas": {"recall_at_10": recall_nas}, "seconds": {}},
            "repaired": {"causal": {"checks": fixed, "held_out": False}},
        }

    records = [record("q", 1.0, True), record("ov", 0.0, True), record("ov", 0.5, False)]
    records.append(record("q", 1.0, True, taken=False))  # not taken: left out
    got = suite.summarize(records, {})
    nas = got["localization"]["nas"]
    assert (nas["mean"], nas["low"], nas["high"], nas["n"]) == (0.5, 0.0, 1.0, 3)
    assert nas["by_route"] == {"q": 1.0, "ov": 0.25}
    causal = got["repair"]["causal"]
    assert causal["share_checks"] == 2 / 3 and causal["share_both"] == 0
    assert (got["plants"], got["taken"]) == (4, 3)


def test_plain_makes_results_json_ready():
    import numpy as np
    import torch

    value = {"a": (1, float("nan")), "b": np.float32(0.5), "c": torch.tensor(2), 3: True}
    assert json.loads(json.dumps(suite._plain(value))) == {
        "a": [1, None], "b": 0.5, "c": 2, "3": True,
    }  # fmt: skip


def test_render_writes_the_tables_and_both_figures(tmp_path, monkeypatch):
    from nasalens.artifacts import write_json

    def m(recall, auroc):
        part = {"accuracy": 0.5, "recall": recall, "recall_ci": [0.0, 1.0], "auroc": auroc,
                "auroc_ci": [0.4, 0.9], "share_yes": 0.1}  # fmt: skip
        return {"checks": part, "held_out": part}

    records = []
    for i, route in enumerate(("q", "ov")):
        heads = ["L12H2"] if route == "q" else ["L3H1", "L4H4"]
        loc = {"nas_answer": {"ranks": dict.fromkeys(heads, 5), "recall_at_10": 1.0}}
        if route == "q":  # a method one plant lacks renders as "–"
            loc["exact"] = {"ranks": dict.fromkeys(heads, 1), "recall_at_10": 1.0}
        loc["random_floor"] = {"recall_at_10": 0.03}
        record = {
            "draw": {"weights": route, "band": "middle", "n_heads": len(heads), "seed": i},
            "plant": {"heads": heads, "weights": route, "epochs": 8},
            "name": f"{route}:{'+'.join(heads)}",
            "plant_seconds": 1.0,
            "taken": True,
            "measured": {"planted": m(0.0, 0.8), "headfix": m(0.7, 0.88)},
            "localization": loc,
            "repaired": {
                "planted": {"checks": False, "held_out": False},
                "headfix": {"checks": True, "held_out": False},
            },
        }
        if route == "ov":  # strengthened once; the q plant's record predates attempts
            record["attempts"] = [
                {"epochs": 4, "checks_recall": 0.5}, {"epochs": 8, "checks_recall": 0.0}
            ]  # fmt: skip
        write_json(tmp_path / f"plant-{i}.json", record)
        records.append(record)
    # A summary left behind by a run cut short (one plant): render recomputes it from both.
    stale = suite.summarize(records[:1], m(0.7, 0.88))
    write_json(tmp_path / "summary.json", {**stale, "mode": "x"})
    suite.render(tmp_path, tmp_path / "suite.md")
    assert json.loads((tmp_path / "summary.json").read_text())["plants"] == 2
    page = (tmp_path / "suite.md").read_text()
    assert "(2 plants, 2 taken)" in page and "the last run: x)" in page
    # the verdicts are recomputed from the measurements: headfix meets the rule on both sets
    assert "| headfix | 1.00 | 1.00 | 1.00 | 2 |" in page and "| planted | 0.00 |" in page
    assert "| `ov:L3H1+L4H4` | L3H1 | 5 | – |" in page
    assert "| 1 | `ov:L3H1+L4H4` | middle | 4: 0.500, 8: 0.000 | 1.0 |" in page
    assert "| 0 | `q:L12H2` | middle | 8 | 1.0 |" in page
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {
        "planted_ranks.html", "repair_scatter.html",
    }  # fmt: skip
    # A run with --out elsewhere writes its page beside its JSON and leaves the docs alone.
    monkeypatch.setattr(suite, "DOCS", tmp_path / "docs" / "organism_suite.md")
    suite.main(["--render", "--out", str(tmp_path)])
    assert (tmp_path / "organism_suite.md").is_file() and not (tmp_path / "docs").exists()
