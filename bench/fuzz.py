"""Fuzz every reader of user input and count what happens: accepted, NasalensError, or other.

Issue 19's harness. Five kinds of hostile input (tests/fuzzing.py holds the hypothesis
strategies, shared with the test suite's short version in tests/test_fuzz.py):

* ``jsonl``      files fed to `load_jsonl` (balanced and not) and `load_questions_jsonl`;
* ``heads``      files fed to `HeadSet.load`;
* ``toml``       files fed to `NasaConfig.from_toml`;
* ``run``        a finished run folder (tiny model) with one file damaged, deleted or replaced,
  read by `Run.open`, `records`, `status` and `check_finished`;
* ``arguments``  the public readers called with arguments of wrong types and values.

Each kind runs at least ``--cases`` hypothesis-generated cases (each case may make several
calls; every call is counted). The contract is 0 "other": every call returns or raises a
`NasalensError` of at most `nasalens.errors.MESSAGE_LIMIT` characters that names the file it
read. A short message that breaks that rule counts as "message" (and is listed). Unlike the test
suite, this runs without run-time type checks, so a wrong argument type meets nasalens's own.

    python bench/fuzz.py                 # writes bench/results/fuzz.json (10,000 cases a kind)
    python bench/fuzz.py --cases 200     # a quick check that it runs
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from nasalens.artifacts import write_json  # noqa: E402
from tests import fuzzing  # noqa: E402

KINDS = ("jsonl", "heads", "toml", "run", "arguments")


def run_kind(kind: str, cases: int, folder: Path, template: Path) -> dict[str, object]:
    """Run at least ``cases`` cases of one kind; count the outcome of every call."""
    counts: Counter[str] = Counter({o: 0 for o in fuzzing.OUTCOMES})
    problems: list[str] = []
    done = 0
    strategy = {
        "jsonl": fuzzing.JSONL_FILES,
        "heads": fuzzing.HEAD_FILES,
        "toml": fuzzing.toml_files(),
        "run": fuzzing.run_edits(),
        "arguments": fuzzing.argument_calls(folder),
    }[kind]

    def one(value: object) -> list[tuple[str, fuzzing.Outcome]]:
        if kind == "jsonl":
            return [("", o) for o in fuzzing.check_jsonl(folder, value)]  # type: ignore[arg-type]
        if kind == "heads":
            return [("", o) for o in fuzzing.check_heads(folder, value)]  # type: ignore[arg-type]
        if kind == "toml":
            return [("", o) for o in fuzzing.check_toml(folder, value)]  # type: ignore[arg-type]
        if kind == "run":
            return [("", o) for o in fuzzing.check_run(template, folder / "run", value)]  # type: ignore[arg-type]
        name, call = value  # type: ignore[misc]
        return [(name, fuzzing.outcome(call))]

    start = time.perf_counter()
    while done < cases:
        batch = cases - done

        @settings(
            max_examples=batch,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(value=strategy)
        def case(value: object) -> None:
            nonlocal done
            done += 1
            for name, result in one(value):
                counts[result.kind] += 1
                if result.problem:
                    if result.kind == "NasalensError":
                        counts["message"] += 1
                    if len(problems) < 20:
                        problems.append(f"{name} {result.problem}".strip())

        before = done
        case()
        if done == before:  # the strategy is exhausted
            break
    return {
        "cases": done,
        "calls": sum(counts[o] for o in fuzzing.OUTCOMES),
        **dict(counts),
        "problems": problems,
        "seconds": round(time.perf_counter() - start, 1),
    }


def template_run(root: Path) -> Path:
    """A finished NASA run on the tiny model: the folder the run kind damages."""
    from nasalens.models import tiny_model
    from nasalens.tuning import NasaConfig
    from nasalens.tuning.runs import tune_run
    from tests.test_tuning import make_probe
    from tests.test_tuning_runs import HEADS

    config = NasaConfig(
        lr=1e-2, batch_size=4, max_epochs=2, early_stopping=False, cancellation=False,
        halting="never",
    )  # fmt: skip
    folder = root / "template"
    tune_run(folder, tiny_model(seed=0), make_probe(), HEADS, config, progress=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="Cases per kind.")
    parser.add_argument("--kind", action="append", choices=KINDS, help="Only these kinds.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fuzz.json")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the damaged files warn by design; keep the output short
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        template = template_run(root)
        for kind in args.kind or KINDS:
            folder = root / kind
            folder.mkdir()
            results[kind] = run_kind(kind, args.cases, folder, template)
            print(json.dumps({kind: results[kind]}), flush=True)
    report = {
        "cases_per_kind": args.cases,
        "other_total": sum(r["other"] for r in results.values()),  # type: ignore[index,misc]
        "kinds": results,
        "python": sys.version.split()[0],
        "cpu_threads": os.cpu_count(),
    }
    write_json(args.out, report)
    print(
        json.dumps({k: {o: r[o] for o in (*fuzzing.OUTCOMES, "cases")} for k, r in results.items()})
    )  # type: ignore[index]
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
