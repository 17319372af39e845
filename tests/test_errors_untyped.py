"""Wrong argument types meet nasalens's own checks (a NasalensError), outside the test hooks.

The suite runs with jaxtyping + beartype run-time checks, which reject a wrong type from the
annotation before nasalens's code runs. Users run without them: this test calls the public
functions with wrong types in a plain interpreter and expects a NasalensError from each.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import nasalens as nl
    from nasalens.data import load, load_jsonl, load_questions_jsonl, binary_samples
    from nasalens.errors import NasalensError
    from nasalens.heads import HeadSet
    from nasalens.models import tiny_model
    from nasalens.tuning import NasaConfig
    from nasalens.tuning.runs import Run
    from tests.builders import make_samples

    good = Path(sys.argv[1])
    good.write_text('{"question": "Q?", "gold": "yes"}\\n{"question": "R?", "gold": "no"}\\n')
    model = tiny_model(seed=0)
    batch = nl.encode(model, make_samples(2))
    calls = {
        "load_jsonl(None)": lambda: load_jsonl(None),
        "load_jsonl(3)": lambda: load_jsonl(3),
        "load_jsonl(b'x')": lambda: load_jsonl(b"x.jsonl"),
        "load_jsonl(n='2')": lambda: load_jsonl(good, n="2"),
        "load_jsonl(n=2.0)": lambda: load_jsonl(good, n=2.0),
        "load_jsonl(seed=[1])": lambda: load_jsonl(good, seed=[1]),
        "load_jsonl(balanced='no')": lambda: load_jsonl(good, balanced="no"),
        "load_questions_jsonl(None)": lambda: load_questions_jsonl(None),
        "load(None)": lambda: load(None),
        "load(n=10**5000)": lambda: load("builtin-eval", n=10**5000),
        "binary_samples(pairs='y')": lambda: binary_samples([], pairs="y"),
        "HeadSet.load(3)": lambda: HeadSet.load(3),
        "NasaConfig.from_toml(None)": lambda: NasaConfig.from_toml(None),
        "Run.open(None)": lambda: Run.open(None),
        "encode(max_length=1.5)": lambda: nl.encode(model, make_samples(2), max_length=1.5),
        "chunks(None)": lambda: batch.chunks(None),
        "nas(chunk_size=None)": lambda: nl.nas(model, batch, chunk_size=None, progress=False),
        "evaluate(chunk_size='4')": lambda: nl.evaluate(model, make_samples(2), chunk_size="4"),
    }
    for name, call in calls.items():
        try:
            call()
        except NasalensError:
            continue
        except Exception as err:
            print(f"{name}: {type(err).__name__}: {err}"[:300])
            continue
        print(f"{name}: accepted")
    """
)


def test_wrong_argument_types_raise_our_error_without_the_test_hooks(tmp_path):
    script = tmp_path / "untyped.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "good.jsonl")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "", proc.stdout
