"""Ground truth at scale: planted biases with known heads score every localization and repair.

Issue 17's suite. Every plant starts from one taught ("discriminating") model: by default the
shipped organism's (`nasalens.shipped_organism`, rank-8 teaching, loads in seconds;
``--taught cached`` uses the full-change model that `nasalens.organisms` builds in about 18
minutes). A `Plant` trains a few heads towards "No" through their query rows (``q``), query and
key rows (``qk``) or output columns (``ov``, invisible to NAS by construction); its delta is
cached, so a plant costs minutes once and seconds after. For each plant, in one process:

* **plant**: accuracy, recall, AUROC and share of "Yes" of the planted model on the checks
  (taught facts NASA never sees) and on held-out facts (never taught). A plant that leaves
  recall at 0.2 or more on the checks is planted again with twice the epochs, at most
  ``STRENGTHEN`` times (every attempt is recorded); one that still does not take is recorded
  as not taken (and neither localized nor repaired: there is nothing to find);
* **localization**: the planted heads' ranks among all heads, and recall@10, under NAS (both
  regions), `rank_heads` attribution and verified (exact and activation patching in the full
  run), and the layer-matched random floor (the expected recall@10 of random heads with the
  per-layer counts of the verified top 10);
* **repair**: recall and AUROC (bootstrap 95%), accuracy and share of "Yes" on the checks and on
  the held-out facts for: the planted model, restoring the planted weights (the ceiling: the
  pre-plant model, bit for bit), the inference-time head fix and contextual calibration, and in
  the full run NASA as printed (NAS heads, paper rules), NASA with causal heads and the rules
  off (preset ``causal``), causal heads with the paper's rules, query rows only, and random
  heads of the same layers trained like ``causal``. A plant is *repaired* on a set when recall
  is back to at least 90% of the pre-plant model's, AUROC within 0.02 of it, and accuracy not
  below the planted model's.

Results go to one JSON per plant and a summary JSON over every plant measured so far; a rerun
adds only what a plant's record lacks (``--plants 0,1 --repairs causal_rules_off,random`` adds
two NASA routes to two plants). The tables go to docs/organism_suite.md, the two figures to
docs/figures/ (with ``--out`` elsewhere: beside the JSON files, the docs left alone).

    python bench/organism_suite.py --quick     # 3 plants, the cheap methods (14 min from scratch)
    python bench/organism_suite.py             # every plant and method (hours; resumable)
    python bench/organism_suite.py --plants 3,4 --localize cheap --repairs nasa_paper,random
    python bench/organism_suite.py --render    # docs/organism_suite.md from the JSON
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

OUT = REPO / "bench" / "results" / "organism_suite"
DOCS = REPO / "docs" / "organism_suite.md"
#: Layer bands of the 30-layer embedded model (layers 0-1 and 29 are left out).
BANDS = {"early": (2, 10), "middle": (10, 20), "late": (20, 29)}
TOP = 10
TAKEN = 0.2  # a plant took when it leaves recall on the checks below this
STRENGTHEN = 2  # a plant that did not take is planted again with twice the epochs, this often
N_HELD_OUT = 50  # held-out facts, each a Yes and a No check: 100 samples
CHEAP_REPAIRS = ("planted", "restore", "headfix", "calibration")
NASA_REPAIRS = ("nasa_paper", "causal_rules_off", "causal_paper_rules", "query_only", "random")


@dataclass(frozen=True)
class Draw:
    """How one plant is drawn: route, layer band, number of heads, seed (``recipe``: the
    organism recipe's own plant, L12H2 + L19H5 + L24H1 through their query rows)."""

    weights: str
    band: str
    n_heads: int
    seed: int

    def plant(self, n_layers: int, n_heads: int):
        import numpy as np

        from nasalens import organisms, plants

        if self.band == "recipe":
            return organisms.OrganismRecipe().plant
        low, high = BANDS[self.band]
        high = min(high, n_layers)
        rng = np.random.default_rng(self.seed)
        cells = rng.choice((high - low) * n_heads, size=self.n_heads, replace=False)
        heads = sorted((low + int(c) // n_heads, int(c) % n_heads) for c in cells)
        return plants.Plant(tuple(f"L{layer}H{head}" for layer, head in heads), self.weights)


DRAWS = (
    Draw("q", "recipe", 3, 0),
    Draw("qk", "middle", 2, 1),
    Draw("ov", "middle", 1, 2),
    Draw("q", "late", 1, 3),
    Draw("q", "early", 2, 4),
    Draw("qk", "late", 4, 5),
    Draw("ov", "late", 3, 6),
    Draw("ov", "early", 2, 7),
    Draw("ov", "middle", 4, 8),
)
QUICK = 3  # --quick: the first three draws (one per route)
#: --localize: the costly methods run beside NAS, attribution and verified (one pass per head).
LOCALIZE = {
    "cheap": (),
    "patching": ("patching",),
    "exact": ("exact",),
    "all": ("exact", "patching"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 plants, the cheap methods")
    parser.add_argument("--plants", default=None, help="draw indices to run, e.g. 0,2,5")
    parser.add_argument(
        "--repairs",
        default=None,
        help=f"comma-separated, of {','.join(CHEAP_REPAIRS[1:] + NASA_REPAIRS)}",
    )
    parser.add_argument(
        "--localize",
        choices=list(LOCALIZE),
        default=None,
        help="cheap: NAS, attribution, verified; patching: also activation patching; "
        "exact: also exact ablation; all: both (a plant keeps what earlier runs found)",
    )
    parser.add_argument(
        "--taught",
        choices=["shipped", "cached"],
        default="shipped",
        help="the taught model every plant starts from: the shipped organism's (rank 8, "
        "seconds) or the full-change one built and cached by nasalens.organisms (18 min)",
    )
    parser.add_argument("--render", action="store_true", help="only write docs from the JSON")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"folder of the JSON files (default {OUT}/TAUGHT)"
    )
    parser.add_argument("--chunk-size", type=int, default=16)
    args = parser.parse_args(argv)
    args.localize = args.localize or ("cheap" if args.quick else "all")
    args.out = args.out or OUT / args.taught  # plants on another taught model do not mix
    known = CHEAP_REPAIRS[1:] + NASA_REPAIRS
    args.wanted = (
        tuple(args.repairs.split(",")) if args.repairs
        else CHEAP_REPAIRS[1:] if args.quick else known
    )  # fmt: skip
    unknown = set(args.wanted) - set(known)
    if unknown:
        parser.error(f"unknown repairs {sorted(unknown)}; use some of {','.join(known)}")
    return args


def say(text: str) -> None:
    print(text, flush=True)


# ---- localization ----


def ranks(ranking: Sequence, planted: Sequence) -> dict[str, object]:
    """Planted heads' 1-based ranks in ``ranking`` (every head) and their recall@10."""
    order = {h: i + 1 for i, h in enumerate(ranking)}
    found = {str(h): order[h] for h in planted}
    return {"ranks": found, "recall_at_10": sum(r <= TOP for r in found.values()) / len(found)}


def layer_matched_floor(top: Sequence, planted: Sequence, n_heads: int) -> float:
    """Expected recall@10 of random heads with the per-layer counts of ``top``."""
    counts: dict[int, int] = {}
    for h in top:
        counts[h.layer] = counts.get(h.layer, 0) + 1
    return sum(counts.get(h.layer, 0) / n_heads for h in planted) / len(planted)


def localize(model, probe, planted, costly: Sequence[str], chunk: int) -> tuple[dict, dict]:
    import torch

    import nasalens as nl
    from nasalens.models import info
    from nasalens.patching import contrast, patch_heads

    geo = info(model)
    every = list(geo.heads())
    out: dict[str, object] = {}
    timings: dict[str, float] = {}
    samples = list(probe.train)
    for region in ("after_instruction", "answer"):
        start = time.perf_counter()
        scores = nl.nas(model, [*probe.train, *probe.tp], region=region, progress=False)
        flat = scores.head.flatten()
        order = [every[int(i)] for i in torch.argsort(-flat, stable=True)]
        out[f"nas_{region}"] = ranks(order, planted)
        timings[f"nas_{region}"] = time.perf_counter() - start
    methods = ["attribution", "verified"] + [m for m in costly if m == "exact"]
    rankings = {}
    for method in methods:
        start = time.perf_counter()
        rankings[method] = nl.rank_heads(
            model, samples, method=method, chunk_size=chunk, progress=False
        )
        timings[method] = time.perf_counter() - start
        out[method] = ranks(list(rankings[method]), planted)
    if "patching" in costly:
        start = time.perf_counter()
        clean, corrupt = contrast(model, samples)
        result = patch_heads(model, clean, corrupt, progress=False)
        timings["patching"] = time.perf_counter() - start
        out["patching"] = ranks(list(result.ranking()), planted)
    floor = layer_matched_floor(rankings["verified"].top(TOP), planted, geo.n_heads)
    out["random_floor"] = {"recall_at_10": floor}
    out["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    out["verified_top10"] = [str(h) for h in rankings["verified"].top(TOP)]
    out["n_verified"] = rankings["verified"].meta.get("n_verified")
    return out, rankings


def merge_localization(old: dict, found: dict) -> dict:
    """A plant's localization after a run: what it found over what earlier runs found, seconds
    per method merged the same way (a method not run again keeps its rank and its time)."""
    return {**old, **found, "seconds": {**old.get("seconds", {}), **found.get("seconds", {})}}


# ---- repair ----


def measure(model, sets: dict, chunk: int) -> dict[str, dict[str, object]]:
    """Accuracy, recall and AUROC with bootstrap 95% intervals, and share of Yes, per set."""
    import nasalens as nl

    out = {}
    for name, samples in sets.items():
        result = nl.evaluate(model, samples, chunk_size=chunk, progress=False)
        s = result.summary
        out[name] = {
            "accuracy": s["accuracy"],
            "recall": s["recall"],
            "recall_ci": result.interval("recall"),
            "auroc": s["auroc"],
            "auroc_ci": result.interval("auroc"),
            "share_yes": s["share_yes"],
        }
    return out


def repaired(after: dict, before: dict, planted: dict) -> bool:
    """Recall back to >= 90% of the pre-plant model's, AUROC within 0.02 of it, and accuracy
    not below the planted model's (discrimination kept, not only the answers shifted)."""
    return (
        after["recall"] >= 0.9 * before["recall"]
        and after["auroc"] >= before["auroc"] - 0.02
        and after["accuracy"] >= planted["accuracy"]
    )


def verdicts(measured: dict, preplant: dict) -> dict[str, dict[str, bool]]:
    """Whether each measured repair of a plant counts as repaired, per set."""
    planted = measured["planted"]
    return {
        name: {s: repaired(m[s], preplant[s], planted[s]) for s in preplant}
        for name, m in measured.items()
    }


def repair_table(planted_model, base, spec, probe, rankings) -> dict[str, Callable[[], object]]:
    """Each repair as a thunk returning the repaired model (or a decider wrapping it)."""
    import nasalens as nl
    from nasalens import plants
    from nasalens.baselines import ContextualCalibration, HeadFix
    from nasalens.tuning import select_heads

    causal = rankings["verified"]
    nas_heads = select_heads(planted_model, probe, nl.NasaConfig(), progress=False)
    off = nl.NasaConfig.preset("causal", lr=1e-3, top_n=TOP, max_epochs=5)
    paper = nl.NasaConfig(lr=1e-3, top_n=TOP)

    def tuned(heads, config):
        return lambda: nl.nasa(planted_model, probe, heads, config, progress=False).model

    return {
        "restore": lambda: plants.unplant(planted_model, base, spec),
        "headfix": lambda: HeadFix(planted_model, nas_heads.top(TOP), how="equalize"),
        "calibration": lambda: ContextualCalibration(planted_model),
        "nasa_paper": tuned(nas_heads, paper),
        "causal_rules_off": tuned(causal, off),
        "causal_paper_rules": tuned(causal, paper),
        "query_only": tuned(causal, off.replace(mode="q")),
        "random": tuned(causal, off.replace(mode="random")),
    }


# ---- one plant, the suite ----


def strengthen(spec, ctx: dict, chunk: int) -> tuple[object, object, list[dict]]:
    """Plant ``spec``; while it does not take, plant it again with twice the epochs.

    Returns the last plant, its model, and one entry per attempt (epochs, seconds, recall on
    the checks and held out; the last one also holds the full measurement under "measured").
    """
    import dataclasses

    from nasalens import organisms

    attempts: list[dict] = []
    for attempt in range(STRENGTHEN + 1):
        start = time.perf_counter()
        model = organisms.load_plant(spec, source=ctx["organism"], progress=False)
        seconds = time.perf_counter() - start
        found = measure(model, ctx["sets"], chunk)
        attempts.append({
            "epochs": spec.epochs, "seconds": round(seconds, 1),
            "checks_recall": found["checks"]["recall"],
            "held_out_recall": found["held_out"]["recall"], "measured": found,
        })  # fmt: skip
        if found["checks"]["recall"] < TAKEN or attempt == STRENGTHEN:
            break
        say(f"  {spec.epochs} epochs: checks recall {found['checks']['recall']:.3f}; again, "
            f"{2 * spec.epochs} epochs")  # fmt: skip
        spec = dataclasses.replace(spec, epochs=2 * spec.epochs)
    for a in attempts[:-1]:
        del a["measured"]
    return spec, model, attempts


def planted_record(draw: Draw, spec, attempts: list[dict], old: dict) -> dict:
    """A plant's record after its attempts; what ``old`` measured is kept only when it measured
    this very plant (a record from before attempts were kept, of a plant not strengthened)."""
    kept = old if old.get("plant") == asdict(spec) else {}
    return {
        **kept,
        "draw": asdict(draw),
        "plant": asdict(spec),
        "name": spec.name,
        "attempts": attempts,
        "plant_seconds": round(sum(a["seconds"] for a in attempts), 1),
        "measured": {**kept.get("measured", {}), "planted": attempts[-1].pop("measured")},
    }


def run_plant(draw: Draw, index: int, ctx: dict, args: argparse.Namespace, old: dict) -> dict:
    """Measure one plant: what ``old`` (an earlier record of it) lacks of what is asked."""
    import torch

    import nasalens as nl
    from nasalens import organisms, plants
    from nasalens.models import adapt, info

    geo = info(ctx["base"])
    chunk = args.chunk_size
    if old.get("attempts"):  # resumed: the plant as its last attempt left it (a cached delta)
        spec = plants.Plant(**{**old["plant"], "heads": tuple(old["plant"]["heads"])})
        say(f"plant {index}: {spec.name} ({draw.band})")
        model = organisms.load_plant(spec, source=ctx["organism"], progress=False)
        record: dict = dict(old)
    else:
        spec = draw.plant(geo.n_layers, geo.n_heads)
        say(f"plant {index}: {spec.name} ({draw.band})")
        spec, model, attempts = strengthen(spec, ctx, chunk)
        record = planted_record(draw, spec, attempts, old)
    measured = record["measured"]
    record["taken"] = measured["planted"]["checks"]["recall"] < TAKEN
    say("  planted: " + _line(measured["planted"]) + ("" if record["taken"] else " (not taken)"))
    if not record["taken"] and "localization" not in record:  # nothing to find or repair
        say("  not taken: localization and repair skipped")
        return record
    probe = nl.probe_set(model, ctx["nasa_questions"], progress=False)
    record["probe"] = probe.counts()
    if not probe.train:
        say("  no FN to rank heads on: localization and repair skipped")
        return record
    planted = [nl.Head.parse(h) for h in spec.heads]
    found, rankings = localize(model, probe, planted, LOCALIZE[args.localize], chunk)
    record["localization"] = merge_localization(record.get("localization", {}), found)
    loc = record["localization"]
    recalls = [
        f"{k} {v['recall_at_10']:.2f}"
        for k, v in loc.items()
        if isinstance(v, dict) and "recall_at_10" in v
    ]
    say("  recall@10: " + ", ".join(recalls))
    seconds = record.setdefault("repair_seconds", {})
    table = repair_table(model, ctx["discriminating"], spec, probe, rankings)
    for name, thunk in table.items():
        if name not in args.wanted or name in measured:
            continue
        start = time.perf_counter()
        fixed = thunk()
        if name == "restore":  # the ceiling is the pre-plant model itself, bit for bit
            a = adapt(fixed).hf_parameters()
            b = adapt(ctx["discriminating"]).hf_parameters()
            record["restore_bit_identical"] = all(torch.equal(a[n], b[n]) for n in a)
            measured[name] = ctx["preplant"]
        else:
            measured[name] = measure(fixed, ctx["sets"], chunk)
        seconds[name] = round(time.perf_counter() - start, 1)
        say(f"  {name}: {_line(measured[name])} ({seconds[name]} s)")
    record["repaired"] = verdicts(measured, ctx["preplant"])
    return record


def _line(m: dict) -> str:
    c, h = m["checks"], m["held_out"]
    return (
        f"checks recall {c['recall']:.3f} AUROC {c['auroc']:.3f}; "
        f"held out recall {h['recall']:.3f} AUROC {h['auroc']:.3f}"
    )


def context(args: argparse.Namespace) -> dict:
    """What every plant shares: the base and taught models, the sets, the pre-plant figures."""
    import nasalens as nl
    from nasalens import organisms
    from nasalens.artifacts import read_json, write_json
    from nasalens.data import binary_samples, builtin_questions
    from nasalens.data.sample import subset

    base = nl.load_model()
    if args.taught == "shipped":
        source = nl.shipped_organism(base=base)
        ids = set(source.report["held_out_questions"])
        known = [q for q in builtin_questions("eval") if q.id in ids]
        held = subset(known, min(N_HELD_OUT, len(known)), seed=0)
        discriminating, checks = (
            source.discriminating,
            binary_samples(source.check_questions, pairs=True),
        )
        nasa_questions = list(source.nasa_questions)
    else:
        source = None  # organisms.load_plant plants in the cached build
        discriminating = organisms.organism("discriminating")
        checks, nasa_questions = organisms.checks(), organisms.nasa_questions()
        held_path = args.out / "held_out.json"
        if held_path.is_file():
            ids = set(read_json(held_path)["ids"])
            held = [q for q in builtin_questions("eval") if q.id in ids]
        else:  # the eval facts the embedded model knows, as the build measured them
            _, known = organisms.teach_questions(base, organisms.OrganismRecipe(), progress=False)
            held = subset(known, min(N_HELD_OUT, len(known)), seed=0)
            write_json(held_path, {"ids": [q.id for q in held]})
    sets = {"checks": checks, "held_out": binary_samples(held, pairs=True)}
    say(f"sets: {len(sets['checks'])} checks, {len(sets['held_out'])} held-out samples")
    preplant = measure(discriminating, sets, args.chunk_size)
    say(
        f"pre-plant: checks recall {preplant['checks']['recall']:.3f} AUROC "
        f"{preplant['checks']['auroc']:.3f}; held out recall {preplant['held_out']['recall']:.3f}"
        f" AUROC {preplant['held_out']['auroc']:.3f}"
    )
    return {
        "base": base,
        "organism": source,
        "discriminating": discriminating,
        "sets": sets,
        "preplant": preplant,
        "nasa_questions": nasa_questions,
    }


def summarize(records: list[dict], preplant: dict) -> dict:
    """Mean and range of recall@10 per localization method; share repaired per repair."""
    taken = [r for r in records if r.get("taken") and "localization" in r]
    local: dict[str, dict[str, object]] = {}
    for r in taken:
        for method, v in r["localization"].items():
            if isinstance(v, dict) and "recall_at_10" in v:
                local.setdefault(method, {"values": [], "by_route": {}})
                local[method]["values"].append(v["recall_at_10"])
                route = local[method]["by_route"].setdefault(r["plant"]["weights"], [])
                route.append(v["recall_at_10"])
    for v in local.values():
        values = v["values"]
        v.update(mean=sum(values) / len(values), low=min(values), high=max(values), n=len(values))
        v["by_route"] = {k: sum(x) / len(x) for k, x in v["by_route"].items()}
    fixes: dict[str, dict[str, object]] = {}
    for r in taken:
        for name, by_set in r.get("repaired", {}).items():
            entry = fixes.setdefault(name, {"n": 0, "checks": 0, "held_out": 0, "both": 0})
            entry["n"] += 1
            for s in ("checks", "held_out"):
                entry[s] += by_set[s]
            entry["both"] += by_set["checks"] and by_set["held_out"]
    for entry in fixes.values():
        for s in ("checks", "held_out", "both"):
            entry[f"share_{s}"] = entry[s] / entry["n"]
    return {
        "plants": len(records),
        "taken": len(taken),
        "preplant": preplant,
        "localization": local,
        "repair": fixes,
    }


def render(out: Path, page: Path = DOCS) -> None:
    """The suite's page (docs/organism_suite.md) and two figures beside it, from the JSON
    files in ``out``."""
    import plotly.graph_objects as go

    from nasalens.artifacts import read_json, write_json

    records = [read_json(p) for p in sorted(out.glob("plant-*.json"))]
    # The summary is recomputed from the plants' records (a run cut short left it behind them),
    # and the verdicts from their measurements (the rule may have changed since).
    summary = read_json(out / "summary.json")
    for r in records:
        if "repaired" in r:
            r["repaired"] = verdicts(r["measured"], summary["preplant"])
    summary.update(summarize(records, summary["preplant"]), draws=[r["draw"] for r in records])
    write_json(out / "summary.json", _plain(summary))
    lines = [
        "# The organism suite",
        "",
        "Generated by `python bench/organism_suite.py --render` from "
        f"{_shown(out)}/ ({summary['plants']} plants, {summary['taken']} taken). Runs add to "
        "the plants' records, so a method shows on the plants it ran on ('–' elsewhere; the "
        f"last run: {summary.get('mode', 'quick')}). What the suite is and how to read it: "
        "[results](results.md#the-organism-suite).",
        "",
        "## Plants",
        "",
        "A draw that does not take (checks recall ≥ "
        f"{TAKEN}) is planted again with twice the epochs, at most {STRENGTHEN} times; "
        "the epochs column lists the checks recall after each attempt.",
        "",
        "| # | plant | band | epochs: checks recall | plant s | checks recall / AUROC "
        "| held out recall / AUROC | taken |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(records):
        c, h = r["measured"]["planted"]["checks"], r["measured"]["planted"]["held_out"]
        tries = ", ".join(
            f"{a['epochs']}: {a['checks_recall']:.3f}" for a in r.get("attempts", [])
        ) or str(r["plant"]["epochs"])
        lines.append(
            f"| {i} | `{r['name']}` | {r['draw']['band']} | {tries} | {r['plant_seconds']} | "
            f"{c['recall']:.3f} / {c['auroc']:.3f} | {h['recall']:.3f} / {h['auroc']:.3f} | "
            f"{'yes' if r['taken'] else 'no'} |"
        )
    pre = summary["preplant"]
    lines += [
        "",
        f"Pre-plant model: checks recall {pre['checks']['recall']:.3f}, AUROC "
        f"{pre['checks']['auroc']:.3f}; held out recall {pre['held_out']['recall']:.3f}, AUROC "
        f"{pre['held_out']['auroc']:.3f}.",
        "",
        "## Localization: recall@10 of the planted heads",
        "",
        "| method | mean | range | q | qk | ov | plants |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, v in summary["localization"].items():
        route = v["by_route"]
        cells = " | ".join(f"{route[k]:.2f}" if k in route else "–" for k in ("q", "qk", "ov"))
        lines.append(
            f"| {method} | {v['mean']:.2f} | {v['low']:.2f}–{v['high']:.2f} | {cells} | {v['n']} |"
        )
    lines += [
        "",
        "Ranks of each planted head (of all heads):",
        "",
        "| plant | head | "
        + " | ".join(m for m in summary["localization"] if m != "random_floor")
        + " |",
        "|---|---|" + "---|" * (len(summary["localization"]) - 1),
    ]
    methods = [m for m in summary["localization"] if m != "random_floor"]
    for r in records:
        if "localization" not in r:
            continue
        for head in r["plant"]["heads"]:
            cells = " | ".join(
                str(r["localization"].get(m, {}).get("ranks", {}).get(head, "–")) for m in methods
            )
            lines.append(f"| `{r['name']}` | {head} | {cells} |")
    lines += [
        "",
        "## Repair: share of plants repaired",
        "",
        "Repaired: recall ≥ 90% of the pre-plant model's, AUROC within 0.02 of it and accuracy "
        "not below the planted model's, on the set.",
        "",
        "| repair | checks | held out | both | plants |",
        "|---|---|---|---|---|",
    ]
    for name, e in summary["repair"].items():
        lines.append(
            f"| {name} | {e['share_checks']:.2f} | {e['share_held_out']:.2f} | "
            f"{e['share_both']:.2f} | {e['n']} |"
        )
    lines += [
        "",
        "Per plant (recall and AUROC with bootstrap 95% intervals):",
        "",
        "| plant | repair | checks: accuracy | recall | AUROC | share Yes "
        "| held out: accuracy | recall | AUROC | share Yes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        for name, m in r["measured"].items():
            c, h = m["checks"], m["held_out"]
            lines.append(
                f"| `{r['name']}` | {name} | {c['accuracy']:.3f} | {c['recall']:.3f} "
                f"[{c['recall_ci'][0]:.2f}, {c['recall_ci'][1]:.2f}] | {c['auroc']:.3f} "
                f"[{c['auroc_ci'][0]:.2f}, {c['auroc_ci'][1]:.2f}] | {c['share_yes']:.2f} "
                f"| {h['accuracy']:.3f} | {h['recall']:.3f} [{h['recall_ci'][0]:.2f}, "
                f"{h['recall_ci'][1]:.2f}] | {h['auroc']:.3f} [{h['auroc_ci'][0]:.2f}, "
                f"{h['auroc_ci'][1]:.2f}] | {h['share_yes']:.2f} |"
            )
    figures = page.parent / "figures"  # beside the page, so the docs site serves them
    figures.mkdir(exist_ok=True)
    rank_fig = go.Figure()
    for m in methods:
        xs, ys, texts = [], [], []
        for r in records:
            for head, rank in r.get("localization", {}).get(m, {}).get("ranks", {}).items():
                xs.append(m)
                ys.append(rank)
                texts.append(f"{r['name']} {head}")
        rank_fig.add_trace(go.Box(x=xs, y=ys, name=m, boxpoints="all", text=texts))
    rank_fig.update_layout(
        title="Rank of each planted head, per localization method (1 = first)",
        yaxis={"type": "log", "title": "rank of 270"},
        showlegend=False,
    )
    rank_fig.write_html(figures / "planted_ranks.html", include_plotlyjs="cdn")
    fix_fig = go.Figure()
    for name in summary["repair"]:
        pts = [r["measured"][name]["checks"] for r in records if name in r["measured"]]
        fix_fig.add_trace(
            go.Scatter(
                x=[p["auroc"] for p in pts], y=[p["recall"] for p in pts], mode="markers",
                name=name, text=[r["name"] for r in records if name in r["measured"]],
            )
        )  # fmt: skip
    fix_fig.add_vline(x=pre["checks"]["auroc"] - 0.02, line_dash="dot")
    fix_fig.add_hline(y=0.9 * pre["checks"]["recall"], line_dash="dot")
    fix_fig.update_layout(
        title="Recall vs AUROC on the checks, one point per plant (dotted: repaired)",
        xaxis_title="AUROC",
        yaxis_title="recall",
    )
    fix_fig.write_html(figures / "repair_scatter.html", include_plotlyjs="cdn")
    lines += [
        "",
        "Figures (plotly): [rank of each planted head per method](figures/planted_ranks.html) "
        "and [recall vs AUROC per repair, one point per plant](figures/repair_scatter.html).",
        "",
    ]
    page.write_text("\n".join(lines))
    say(f"wrote {page}")


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    from nasalens.artifacts import read_json, write_json

    args.out.mkdir(parents=True, exist_ok=True)
    # Only the recorded suite writes the docs; a run elsewhere gets its page beside its JSON.
    page = DOCS if args.out == OUT / args.taught else args.out / "organism_suite.md"
    if args.render:
        render(args.out, page)
        return None
    import torch

    picks = (
        [int(i) for i in args.plants.split(",")] if args.plants
        else list(range(QUICK if args.quick else len(DRAWS)))
    )  # fmt: skip
    start = time.perf_counter()
    ctx = context(args)
    mode = f"taught={args.taught}; localize={args.localize}; repairs={','.join(args.wanted)}"
    for i in picks:
        path = args.out / f"plant-{i}.json"
        old = read_json(path) if path.is_file() else {}
        if old.get("draw") != asdict(DRAWS[i]):
            old = {}  # another draw under this number: start again
        begin = time.perf_counter()
        record = run_plant(DRAWS[i], i, ctx, args, old)
        record["seconds"] = round(time.perf_counter() - begin + old.get("seconds", 0), 1)
        write_json(path, _plain(record))
    # The summary covers every plant measured so far, this run's and earlier ones.
    records = [read_json(p) for p in sorted(args.out.glob("plant-*.json"))]
    summary = summarize(records, ctx["preplant"])
    summary.update(
        mode=mode,
        threads=torch.get_num_threads(),
        seconds=round(time.perf_counter() - start, 1),
        draws=[r["draw"] for r in records],
    )
    write_json(args.out / "summary.json", _plain(summary))
    say(json.dumps(_plain({k: summary[k] for k in ("localization", "repair")}), indent=1))
    say(f"suite: {summary['seconds']} s")
    render(args.out, page)
    return summary


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (the docs name no home folders)."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _plain(value: object) -> object:
    """JSON-ready: NaN as None, tuples as lists, numbers as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    if hasattr(value, "item"):  # numpy and torch scalars
        return _plain(value.item())
    return str(value)


if __name__ == "__main__":
    main()
