"""The CLI error contract, for every command: bad input -> one line 'error: ...', exit 2.

Each case is a bad invocation from issue 19 (or of the same kind); none may load a model (the
cheap arguments are checked first), print a traceback, or take more than one line to say what
is wrong. `--debug` shows the traceback instead.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import nasalens
from nasalens.cli import app
from nasalens.errors import MESSAGE_LIMIT, NasalensError
from nasalens.heads import HeadSet
from nasalens.tuning import runs
from nasalens.tuning.export import export
from nasalens.tuning.runs import Run, tune_run
from tests.test_tuning import make_probe
from tests.test_tuning_runs import CONFIG, HEADS

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def paths(tiny_model, tmp_path_factory):
    """Every bad input, built once: files, folders, runs (finished, unfinished, mismatched)."""
    root = tmp_path_factory.mktemp("bad")
    p = {"root": root, "missing": root / "missing.jsonl", "file": root / "a-file.txt"}
    p["file"].write_text("x")
    p["empty_dir"] = root / "empty"
    p["empty_dir"].mkdir()
    p["dir_jsonl"] = root / "folder.jsonl"
    p["dir_jsonl"].mkdir()
    p["fifo"] = root / "pipe.jsonl"
    os.mkfifo(p["fifo"])
    p["bigint"] = root / "bigint.jsonl"
    p["bigint"].write_text('{"question": "Q?", "gold": "yes", "meta": ' + "7" * 5000 + "}\n")
    p["dup"] = root / "dup.jsonl"
    p["dup"].write_text('{"question": "Q?", "gold": "yes", "gold": "no"}\n')
    p["control"] = root / "control.jsonl"
    p["control"].write_text('{"question": "Q\\u0007?", "gold": "yes"}\n')
    p["latin1_toml"] = root / "latin1.toml"
    p["latin1_toml"].write_bytes(b"[nasa]\n# caf\xe9\nlr = 0.001\n")
    p["typo_toml"] = root / "typo.toml"
    p["typo_toml"].write_text("[nasa]\nlearning_rate = 0.001\n")
    p["random_gguf"] = root / "random.gguf"
    p["random_gguf"].write_bytes(os.urandom(4096))
    p["heads"] = root / "heads.json"
    HeadSet.of(["L1H2", "L0H1"]).save(p["heads"])
    p["bad_heads"] = root / "bad-heads.json"
    p["bad_heads"].write_text('{"heads": ["L1H2", "L0H1"], "nas": [0.5]}')
    p["model_dir"] = export(tiny_model, root / "tiny")
    p["demo_run"] = root / "demo-run"  # what `nasalens demo` writes: not a NASA run folder
    p["demo_run"].mkdir()
    for name in ("heads.json", "config.json", "nasa.jsonl", "report.html"):
        (p["demo_run"] / name).write_text("{}")
    p["unfinished"] = root / "unfinished"
    Run.create(p["unfinished"], tiny_model, make_probe(), HEADS, CONFIG)
    p["mismatched"] = root / "mismatched"
    tune_run(p["mismatched"], tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    (p["mismatched"] / "heads.json").write_text('{"heads": ["L1H2", "L0H1", "L1H0"], "nas": [1]}')
    p["finished"] = root / "finished"
    tune_run(p["finished"], tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    return p


@pytest.fixture
def no_model(monkeypatch):
    """Fail any test that loads a model: every case here must stop first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was found")

    monkeypatch.setattr(nasalens, "load_model", refuse)
    monkeypatch.setattr(runs, "load_model", refuse)


# (name, argv with {placeholders} from `paths`, what the one line must say)
CASES = [
    ("demo out is a file", ["demo", "--out", "{file}"], "is a file, not a folder"),
    ("demo data dir missing", ["demo", "--data-dir", "{missing}"], "is not a folder"),
    ("evaluate missing data", ["evaluate", "--data", "{missing}"], "no such file"),
    ("evaluate data is a folder", ["evaluate", "--data", "{dir_jsonl}"], "is a folder"),
    ("evaluate data is a FIFO", ["evaluate", "--data", "{fifo}"], "is a named pipe (FIFO)"),
    ("evaluate 5000 digits", ["evaluate", "--data", "{bigint}"], "more digits than Python"),
    ("evaluate repeated key", ["evaluate", "--data", "{dup}"], "key 'gold' appears twice"),
    ("evaluate control char", ["evaluate", "--data", "{control}"], "control character"),
    ("evaluate unknown set", ["evaluate", "--data", "nosuchset"], "unknown data set"),
    ("evaluate n 0", ["evaluate", "--data", "builtin-eval", "--n", "0"], "at least one"),
    ("evaluate n text", ["evaluate", "--data", "builtin-eval", "--n", "x"], "a valid integer"),
    ("evaluate no data", ["evaluate"], "Missing option '--data'"),
    ("evaluate out is a file", ["evaluate", "-d", "builtin-eval", "--out", "{file}"], "a file"),
    ("evaluate retention", ["evaluate", "-d", "builtin-eval", "--qa-retention", "-1"], "at least"),
    ("evaluate random gguf", ["evaluate", "-d", "builtin-eval", "-m", "{random_gguf}"], "GGUF"),
    ("evaluate empty folder", ["evaluate", "-d", "builtin-eval", "-m", "{empty_dir}"], "config"),
    (
        "evaluate unfinished run",
        ["evaluate", "-d", "builtin-eval", "-m", "{unfinished}"],
        "not fin",
    ),
    ("evaluate mismatched run", ["evaluate", "-d", "builtin-eval", "-m", "{mismatched}"], "'nas'"),
    ("heads missing data", ["heads", "--data", "{missing}"], "no such file"),
    ("heads k 0", ["heads", "--data", "builtin-probe", "--k", "0"], "k must be between"),
    ("heads consistency", ["heads", "-d", "builtin-probe", "--consistency", "2"], "consistency"),
    ("heads chunk size", ["heads", "-d", "builtin-probe", "--chunk-size", "0"], "--chunk-size"),
    ("heads out is a file", ["heads", "-d", "builtin-probe", "--out", "{file}"], "is a file"),
    ("validate heads missing", ["validate", "--heads", "{missing}", "-d", "builtin-eval"], "no su"),
    ("validate bad heads", ["validate", "--heads", "{bad_heads}", "-d", "builtin-eval"], "'nas'"),
    ("validate missing data", ["validate", "--heads", "{heads}", "-d", "{missing}"], "no such"),
    ("validate how", ["validate", "--heads", "{heads}", "-d", "builtin-eval", "--how", "x"], "abl"),
    ("tune latin-1 config", ["tune", "--out", "{root}/r1", "--config", "{latin1_toml}"], "UTF-8"),
    ("tune missing config", ["tune", "--out", "{root}/r2", "--config", "{missing}"], "no such"),
    ("tune config typo", ["tune", "--out", "{root}/r3", "--config", "{typo_toml}"], "unknown Nasa"),
    ("tune bad heads", ["tune", "--out", "{root}/r4", "--heads", "{bad_heads}"], "'nas'"),
    ("tune missing probe", ["tune", "--out", "{root}/r5", "--probe", "{missing}"], "no such"),
    ("tune out is a file", ["tune", "--out", "{file}"], "is a file"),
    ("tune bad lr", ["tune", "--out", "{root}/r6", "--lr", "-1"], "NasaConfig.lr"),
    ("tune resume mismatched", ["tune", "--out", "{mismatched}"], "'nas' must hold"),
    ("tune resume other lr", ["tune", "--out", "{finished}", "--lr", "0.5"], "other settings"),
    ("export empty folder", ["export", "{empty_dir}", "--out", "{root}/e1"], "not a NASA run"),
    ("export demo folder", ["export", "{demo_run}", "--out", "{root}/e2"], "not a NASA run"),
    ("export model folder", ["export", "{model_dir}", "--out", "{root}/e3"], "not a NASA run"),
    ("export unfinished", ["export", "{unfinished}", "--out", "{root}/e4"], "final.safetensors"),
    ("export mismatched", ["export", "{mismatched}", "--out", "{root}/e5"], "'nas' must hold"),
    ("export out not empty", ["export", "{finished}", "--out", "{root}"], "not an empty folder"),
    ("analyze missing data", ["analyze", "--data", "{missing}"], "no such file"),
    ("analyze scenario", ["analyze", "-d", "builtin-eval", "--scenario", "x"], "unknown scenario"),
    ("analyze out is a file", ["analyze", "-d", "builtin-eval", "--out", "{file}"], "is a file"),
    ("organism stage", ["organism", "--stage", "biased"], "use 'planted' or 'discriminating'"),
    ("unknown command", ["tuen"], "No such command 'tuen'"),
]


def _argv(args, paths):
    return [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]


def test_every_command_has_cases():
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert commands <= {argv[0] for _, argv, _ in CASES}


#: Cases whose bad input is the model itself: they fail inside load_model.
LOADS = {"evaluate random gguf", "evaluate empty folder"}


@pytest.mark.parametrize(("name", "argv", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(paths, request, name, argv, message):
    if name not in LOADS:
        request.getfixturevalue("no_model")
    result = runner.invoke(app, _argv(argv, paths))
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output and len(lines[0]) < MESSAGE_LIMIT + 200


def test_debug_shows_the_traceback(paths, no_model):
    argv = ["--debug", "evaluate", "--data", str(paths["missing"])]
    result = runner.invoke(app, argv)
    assert isinstance(result.exception, NasalensError) and "no such file" in str(result.exception)


def test_a_truncated_model_cache_is_rebuilt_and_the_command_succeeds(
    tiny_model, tmp_path, monkeypatch, caplog
):
    from nasalens.models import loading, tiny_hf_model

    monkeypatch.setenv("NASALENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(loading, "_parse_gguf", lambda gguf, dtype: tiny_hf_model(seed=0))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    argv = ["evaluate", "-d", "builtin-eval", "--n", "4", "-m", str(gguf), "--qa-retention", "0"]
    first = runner.invoke(app, argv)
    assert first.exit_code == 0, first.output
    (cached,) = (tmp_path / "cache").iterdir()
    weights = cached / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="nasalens.models.loading"):
        again = runner.invoke(app, argv)
    assert again.exit_code == 0, again.output
    assert "is damaged" in caplog.text
    assert again.stdout.splitlines()[1:] == first.stdout.splitlines()[1:]  # the same table


def test_the_console_entry_point_keeps_the_contract(tmp_path):
    """`main()` in a fresh interpreter: one line and status 2; --debug: the traceback."""
    code = "from nasalens.cli import main; main()"
    missing = str(tmp_path / "missing.jsonl")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plain = subprocess.run(
        [sys.executable, "-c", code, "evaluate", "--data", missing],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (
        plain.returncode == 2
        and plain.stderr == f"error: {missing}: no such file; check the path\n"
    )
    debug = subprocess.run(
        [sys.executable, "-c", code, "--debug", "evaluate", "--data", missing],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "NasalensError" in debug.stderr


def test_cheap_arguments_fail_before_the_model_loads(paths, monkeypatch):
    loads = []
    monkeypatch.setattr(nasalens, "load_model", lambda *a, **k: loads.append(a))
    runner.invoke(app, ["heads", "--data", str(paths["missing"])])
    runner.invoke(app, ["validate", "--heads", str(paths["heads"]), "-d", str(paths["dup"])])
    assert loads == []
    payload = json.loads(paths["heads"].read_text())
    assert payload["heads"] == ["L1H2", "L0H1"]  # the inputs are left as they were
