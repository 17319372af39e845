"""Fuzz suite: hostile files and arguments give a result or a NasalensError, never anything else.

Each test draws a few hundred hostile inputs (tests/fuzzing.py; bench/fuzz.py runs 10,000 or more
per kind and prints the counts). A NasalensError must also be short and name the file it read.
Under the suite's run-time type checks (jaxtyping + beartype) a wrong argument type is caught by
the annotation before nasalens sees it; that counts as the clean error it is.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from jaxtyping import TypeCheckError

from tests import fuzzing
from tests.test_tuning import make_probe
from tests.test_tuning_runs import CONFIG, HEADS


def fuzz(examples):
    """Hypothesis settings for ``examples`` cases (the suite's budget: about 60 s in all)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def run_template(tiny_model, tmp_path_factory):
    from nasalens.tuning.runs import tune_run

    template = tmp_path_factory.mktemp("template") / "run"
    tune_run(template, tiny_model, make_probe(), HEADS, CONFIG, progress=False)
    return template


def clean(outcomes):
    for o in outcomes:
        assert o.kind != "other" and not o.problem, (o.problem, o.error)


@fuzz(250)
@given(raw=fuzzing.JSONL_FILES)
def test_jsonl_loaders(folder, raw):
    clean(fuzzing.check_jsonl(folder, raw))


@fuzz(250)
@given(raw=fuzzing.HEAD_FILES)
def test_head_set_files(folder, raw):
    clean(fuzzing.check_heads(folder, raw))


@fuzz(250)
@given(raw=fuzzing.toml_files())
def test_nasa_config_toml(folder, raw):
    clean(fuzzing.check_toml(folder, raw))


@fuzz(120)
@given(edit=fuzzing.run_edits())
def test_run_folder_readers(run_template, folder, edit):
    clean(fuzzing.check_run(run_template, folder / "run", edit))


def test_public_readers_with_wrong_arguments(folder):
    calls = fuzzing.argument_calls(folder)

    @fuzz(200)
    @given(call=calls)
    def check(call):
        name, run = call
        result = fuzzing.outcome(run, other=(TypeCheckError,))
        assert result.kind != "other" and not result.problem, (name, result.problem)

    check()


def test_the_strategies_reach_every_outcome(folder):
    """The generators are not all-bad: valid files are drawn and accepted too."""
    good = b'{"question": "Is it?", "gold": "yes"}\n{"question": "Or not?", "gold": "no"}'
    assert [o.kind for o in fuzzing.check_jsonl(folder, good)] == ["accepted"] * 2 + [
        "NasalensError"  # question rows need 'answers'
    ]
    assert fuzzing.check_heads(folder, b'["L1H2"]')[0].kind == "accepted"
    assert fuzzing.check_toml(folder, b"[nasa]\nlr = 0.001\n")[0].kind == "accepted"
    bad = fuzzing.outcome(lambda: int("x"))
    assert bad.kind == "other" and "ValueError" in bad.problem
