"""Tests of nasalens.data without the reference files: samples, JSONL loading, paths, dispatch."""

from __future__ import annotations

import ast
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasalens.data import (
    Question,
    Sample,
    binary_samples,
    load,
    load_ar_lsat,
    load_jsonl,
    load_questions_jsonl,
    load_strategyqa,
)
from nasalens.data.ar_lsat import strip_letter
from nasalens.data.files import DATA_DIR_ENV, locate
from nasalens.data.sample import balance, subset
from nasalens.errors import NasalensError
from tests.builders import make_question, make_sample

DATA_DIR = Path(__file__).resolve().parents[1] / "nasalens" / "data"


def question(i: int) -> Question:
    return make_question(id=f"q{i}", answers=(str(i + 1),), wrong=str(i + 2))


def sample(i: int, gold: bool) -> Sample:
    return make_sample(gold=gold, id=f"s{i}")


def write_jsonl(path: Path, rows: list[object]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- sample.py: binary_samples, balance, subset ---------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 7, 10])
def test_binary_samples_balance_and_ids(count: int) -> None:
    samples = binary_samples([question(i) for i in range(count)], seed=3)
    n_yes = sum(s.gold for s in samples)
    assert len(samples) == count and n_yes - (count - n_yes) in (0, 1)
    assert all(s.id.endswith("/yes") == s.gold for s in samples)
    assert [s.label for s in samples if not s.gold] == [
        str(int(s.id[1:-3]) + 2) for s in samples if not s.gold
    ]


def test_binary_samples_n_and_pairs() -> None:
    questions = [question(i) for i in range(10)]
    assert len(binary_samples(questions, n=5)) == 5
    paired = binary_samples(questions, n=5, pairs=True, seed=1)
    assert len(paired) == 5 and sum(s.gold for s in paired) == 3
    assert len(binary_samples(questions, pairs=True)) == 20
    assert binary_samples(questions, n=6, seed=2) == binary_samples(questions, n=6, seed=2)
    assert binary_samples(questions, n=6, seed=2) != binary_samples(questions, n=6, seed=3)
    with pytest.raises(NasalensError, match="n=11"):
        binary_samples(questions, n=11)
    with pytest.raises(NasalensError, match="at least one"):
        binary_samples(questions, n=0)
    with pytest.raises(NasalensError, match="more than once"):
        binary_samples([question(1), question(1)])
    with pytest.raises(NasalensError, match="no wrong answer"):
        binary_samples([make_question(wrong=None)], pairs=True)


def test_balance() -> None:
    samples = [sample(i, gold=i < 3) for i in range(10)]  # 3 Yes, 7 No
    kept = balance(samples, seed=0)
    assert len(kept) == 6 and sum(s.gold for s in kept) == 3
    assert [s.id for s in kept] == sorted((s.id for s in kept), key=lambda x: int(x[1:]))
    odd = balance(samples, n=5, seed=0)
    assert len(odd) == 5 and sum(s.gold for s in odd) == 2  # the extra one from the larger class
    assert len(balance(samples, n=7)) == 7  # 3 Yes + 4 No is balanced to within one
    with pytest.raises(NasalensError, match="n=8"):
        balance(samples, n=8)
    with pytest.raises(NasalensError, match="no positive"):
        balance([make_sample(gold=False)])


def test_subset() -> None:
    assert subset(list(range(10)), 4, seed=1) == sorted(subset(list(range(10)), 4, seed=1))
    assert subset([1, 2], None) == [1, 2]
    with pytest.raises(NasalensError):
        subset([1, 2], 3)


# --- jsonl.py: good files -------------------------------------------------------------------


def test_load_jsonl_round_trip(tmp_path: Path) -> None:
    rows = [
        {"question": "Is Paris the capital of France?", "gold": "yes"},
        "",
        {"id": "q2", "question": "What is 2+2?", "label": "5", "gold": False, "context": "c"},
        {"id": 7, "question": "Is 3 odd?", "gold": "YES", "answers": "yes", "meta": {"x": [1]}},
        {"question": "Is the sky green?", "gold": "No", "answers": ["no", "nope"]},
    ]
    file = write_jsonl(tmp_path / "mine.jsonl", rows)
    samples = load_jsonl(file, balanced=False)
    assert [s.id for s in samples] == ["mine-1", "q2", "7", "mine-5"]
    assert [s.gold for s in samples] == [True, False, True, False]
    assert samples[1].label == "5" and samples[1].context == "c"
    assert samples[2].answers == ("yes",) and samples[3].answers == ("no", "nope")
    assert all(s.source == "mine" for s in samples)
    assert load_jsonl(file) == samples  # already balanced: nothing dropped
    assert len(load_jsonl(file, n=2, seed=1)) == 2


def test_load_jsonl_balances(tmp_path: Path) -> None:
    rows = [{"question": f"Q{i}?", "gold": i < 2} for i in range(6)]
    file = write_jsonl(tmp_path / "b.jsonl", rows)
    kept = load_jsonl(file)
    assert len(kept) == 4 and sum(s.gold for s in kept) == 2
    assert load_jsonl(file, seed=5) == load_jsonl(file, seed=5)
    all_yes = write_jsonl(tmp_path / "y.jsonl", [{"question": "Q?", "gold": "yes"}])
    with pytest.raises(NasalensError, match=r"y\.jsonl.*balanced=False"):
        load_jsonl(all_yes)
    assert len(load_jsonl(all_yes, balanced=False)) == 1


def test_question_files(tmp_path: Path) -> None:
    rows = [
        {"question": "What is 7 plus 5?", "answers": ["12", "twelve"], "wrong": "13"},
        {"id": "cap", "question": "What is the capital of France?", "answers": "Paris",
         "wrong": "Lyon", "kind": "place", "context": "Europe"},
        {"question": "Who wrote Hamlet?", "answers": ["William Shakespeare"], "wrong": "Marlowe"},
    ]  # fmt: skip
    file = write_jsonl(tmp_path / "facts.jsonl", rows)
    questions = load_questions_jsonl(file)
    assert [q.id for q in questions] == ["facts-1", "cap", "facts-3"]
    assert [q.kind for q in questions] == ["number", "place", "person"]  # default: answer_kind
    assert questions[0].answers == ("12", "twelve") and questions[1].context == "Europe"
    samples = load_jsonl(file, seed=0)  # a question file read as samples
    assert len(samples) == 3 and sum(s.gold for s in samples) == 2
    assert {s.id.split("/")[0] for s in samples} == {"facts-1", "cap", "facts-3"}


# --- jsonl.py: every kind of bad row names file:line ----------------------------------------

GOOD = {"question": "Is it?", "gold": "yes"}
GOOD_Q = {"question": "What is 1+1?", "answers": ["2"], "wrong": "3"}
BAD_ROWS = [
    ("{not json", "not valid JSON", GOOD),
    ('["a", "list"]', "expected a JSON object", GOOD),
    ("42", "expected a JSON object", GOOD),
    ({"gold": "yes"}, "'question' is missing", GOOD),
    ({"question": 5, "gold": "yes"}, "'question' must be a string", GOOD),
    ({"question": "   ", "gold": "yes"}, "'question' is empty", GOOD),
    ({"question": "Q?"}, "'gold' is missing", GOOD),
    ({"question": "Q?", "gold": "maybe"}, "'gold' must be", GOOD),
    ({"question": "Q?", "gold": 1}, "'gold' must be", GOOD),
    ({"question": "Q?", "gold": "no", "label": 3}, "'label' must be a string", GOOD),
    ({"question": "Q?", "gold": "no", "label": ""}, "'label' is empty", GOOD),
    ({"question": "Q?", "gold": "no", "context": []}, "'context' must be a string", GOOD),
    ({"question": "Q?", "gold": "no", "answers": []}, "'answers' must be a string or", GOOD),
    ({"question": "Q?", "gold": "no", "answers": ["a", 2]}, "'answers' item 1", GOOD),
    ({"question": "Q?", "gold": "no", "id": True}, "'id' must be a string or an integer", GOOD),
    ({"question": "Q?", "gold": "no", "questoin": "x"}, "unknown field(s) 'questoin'", GOOD),
    ({"question": "Q?", "gold": "no", "wrong": "x"}, "unknown field(s) 'wrong'", GOOD),
    ({"question": "Q\ud800", "gold": "no"}, "lone surrogate", GOOD),
    ({"question": "Q?", "gold": "yes", "id": "dup"}, "already used at", {**GOOD, "id": "dup"}),
    ({"question": "Q?", "answers": ["2"], "gold": "no"}, "'gold' belongs to binary", GOOD_Q),
    ({"question": "Q?", "answers": ["Paris"], "wrong": "the Paris"}, "reads as one", GOOD_Q),
    ({"question": "Q?", "answers": ["2"], "kind": "animal"}, "'kind' is 'animal'", GOOD_Q),
    ({"question": "Q?", "wrong": "3"}, "'answers' is missing", GOOD_Q),
    ({"question": "Q?", "answers": ["2"], "label": "x"}, "unknown field(s) 'label'", GOOD_Q),
]


@pytest.mark.parametrize(("bad", "message", "first"), BAD_ROWS)
def test_bad_row_names_file_and_line(
    tmp_path: Path, bad: object, message: str, first: dict
) -> None:
    file = write_jsonl(tmp_path / "bad.jsonl", [first, "", bad, GOOD])
    loader = load_questions_jsonl if "answers" in first else load_jsonl
    with pytest.raises(NasalensError) as info:
        loader(file)
    assert f"{file}:3:" in str(info.value)
    assert message in str(info.value)


def test_bad_bytes_and_missing_wrong(tmp_path: Path) -> None:
    file = tmp_path / "bytes.jsonl"
    file.write_bytes(json.dumps(GOOD).encode() + b'\n{"question": "\xff\xfe", "gold": "no"}\n')
    with pytest.raises(NasalensError, match=re.escape(f"{file}:2: not valid UTF-8")):
        load_jsonl(file)
    no_wrong = write_jsonl(tmp_path / "nw.jsonl", [GOOD_Q, {"question": "Q?", "answers": "x"}])
    with pytest.raises(NasalensError, match=re.escape(f"{no_wrong}:2: field 'wrong' is missing")):
        load_jsonl(no_wrong)
    assert len(load_questions_jsonl(no_wrong)) == 2  # fine as questions


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(NasalensError, match="no rows"):
        load_jsonl(empty)
    with pytest.raises(NasalensError, match="no such file"):
        load_jsonl(tmp_path / "absent.jsonl")


# --- property: any file gives Samples or a NasalensError naming the file --------------------

_KEYS = ["question", "gold", "id", "label", "context", "answers", "wrong", "kind", "meta"]
_TEXTS = st.sampled_from(
    ["yes", "no", "YES", "true", "", "  ", "\ud800", "Paris", "12", "twelve", "a\x00b", "\u2028"]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXTS | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
_ROW = st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), _JSON, max_size=6)
_GOOD_ROW = st.one_of(
    st.fixed_dictionaries(
        {"question": st.text(min_size=1), "gold": st.sampled_from(["yes", "no", True, False])},
        optional={"id": st.text(max_size=3) | st.integers(0, 5), "label": _TEXTS},
    ),
    st.fixed_dictionaries(
        {"question": _TEXTS, "answers": st.lists(_TEXTS, max_size=2)},
        optional={"wrong": _TEXTS, "kind": st.sampled_from(["number", "place", "fish"])},
    ),
)
_LINE = st.one_of(
    _GOOD_ROW.map(lambda r: json.dumps(r).encode()),
    _ROW.map(lambda r: json.dumps(r).encode()),
    _ROW.map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=12),
    st.just(b""),
)
_COUNTER = itertools.count()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_LINE, min_size=1, max_size=6))
def test_any_file_loads_or_names_file_line(tmp_path_factory, lines: list[bytes]) -> None:
    file = tmp_path_factory.getbasetemp() / f"prop-{next(_COUNTER)}.jsonl"
    file.write_bytes(b"\n".join(lines))
    row_error = re.compile(re.escape(str(file)) + r":\d+: ")
    for call in (
        lambda: load_jsonl(file, balanced=False),
        lambda: load_questions_jsonl(file),
        lambda: load_jsonl(file),
    ):
        try:
            items = call()
        except NasalensError as err:
            msg = str(err)
            assert row_error.match(msg) or msg.startswith(f"{file}: "), msg
        else:
            assert items and all(isinstance(i, Sample | Question) for i in items)
            assert len({i.id for i in items}) == len(items)


# --- files.py and registry.py: paths, the environment variable, names -----------------------


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    rows = [
        {"qid": f"q{i}", "question": f"Is {i} odd?", "answer": bool(i % 2), "facts": [f"F{i}."]}
        for i in range(7)
    ]
    (tmp_path / "strategyqa").mkdir()
    (tmp_path / "strategyqa" / "dev.json").write_text(json.dumps(rows), encoding="utf-8")
    return tmp_path


def test_locate_forms(fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = fake_root / "strategyqa" / "dev.json"
    for path in (file, file.parent, fake_root, str(fake_root)):
        assert locate(path, "strategyqa", "dev.json") == file
    monkeypatch.setenv(DATA_DIR_ENV, str(fake_root))
    assert locate(None, "strategyqa", "dev.json") == file
    monkeypatch.delenv(DATA_DIR_ENV)
    with pytest.raises(NasalensError, match=r"pass path=\.\.\."):
        locate(None, "strategyqa", "dev.json")
    with pytest.raises(NasalensError, match="no gsm8k data found"):
        locate(fake_root, "gsm8k", "test.jsonl")


def test_load_dispatch(fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    direct = load_strategyqa(fake_root)
    assert len(direct) == 6 and all(s.context == f"F{s.id[-1]}." for s in direct)
    assert load("strategyqa", fake_root) == direct
    assert load("StrategyQA", fake_root / "strategyqa", n=4) == load_strategyqa(fake_root, n=4)
    monkeypatch.setenv(DATA_DIR_ENV, str(fake_root))
    assert load("strategyqa") == direct
    assert len(load("builtin-eval", n=10)) == 10 and len(load("builtin_probe")) == 170
    with pytest.raises(NasalensError, match="strategyqa, gsm8k, nq_open"):
        load("squad")
    with pytest.raises(NasalensError, match="path="):
        load("jsonl")
    with pytest.raises(NasalensError, match="takes no path"):
        load("builtin-eval", fake_root)


def test_external_loader_reports_bad_items(tmp_path: Path) -> None:
    file = tmp_path / "dev.json"
    file.write_text(json.dumps([{"qid": "a", "question": "Q?", "answer": "yes"}]), "utf-8")
    with pytest.raises(NasalensError, match=re.escape(f"{file} item 0: field 'answer'")):
        load_strategyqa(file)
    file.write_text("[1, 2", "utf-8")
    with pytest.raises(NasalensError, match="not valid JSON"):
        load_strategyqa(file)


def test_data_imports_stay_light() -> None:
    """data/ imports only the standard library, nasalens.errors, .artifacts and itself (no torch).

    nasalens.artifacts imports torch and pandas only inside the functions that need them.
    """
    allowed = {"nasalens.errors", "nasalens.data", "nasalens.artifacts"}
    modules = sorted((DATA_DIR.parent / "artifacts").glob("*.py"))
    assert len(modules) >= 4  # __init__, files, records, tensors
    for artifacts in modules:
        for node in ast.parse(artifacts.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                own = name == "nasalens.errors" or name.startswith("nasalens.artifacts.")
                light = name.split(".")[0] in sys.stdlib_module_names or own
                assert light or name == "__future__", f"{artifacts.name} imports {name} on import"
    for module in DATA_DIR.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or top == "__future__"
                ok = ok or any(name == a or name.startswith(a + ".") for a in allowed)
                assert ok, f"{module.name} imports {name}"


def test_ar_lsat_strips_letters(tmp_path: Path) -> None:
    assert strip_letter("B) Juan is in locker 5.", "B") == "Juan is in locker 5."
    assert strip_letter("(C) locker 2", "C") == "locker 2"
    assert strip_letter("D. Fred, Juan", "D") == "Fred, Juan"
    assert strip_letter("Apple", "A") == "Apple"
    assert strip_letter("A) x", "B") == "A) x"
    passage = {
        "id": "p1",
        "passage": "Five kids share lockers.",
        "questions": [
            {"questionId": "1", "question": "Who?", "options": ["A) Ann", "B) Bo", "C) Cy"],
             "answer": "B"},
            {"questionId": "2", "question": "Where?", "options": ["(A) one", "(B) two"],
             "answer": "A"},
        ],
    }  # fmt: skip
    (tmp_path / "AR_DevelopmentData.json").write_text(json.dumps([passage]), "utf-8")
    samples = load_ar_lsat(tmp_path)
    assert [(s.id, s.label, s.gold) for s in samples][2:] == [
        ("arlsat-p1-2-A", "one", True),
        ("arlsat-p1-2-B", "two", False),
    ]
    assert samples[0].question == "Five kids share lockers. Who?"
    assert ("arlsat-p1-1-B", "Bo", True) in [(s.id, s.label, s.gold) for s in samples]
    assert len(load_ar_lsat(tmp_path, n=3)) == 3
    passage["questions"][0]["answer"] = "F"
    (tmp_path / "AR_DevelopmentData.json").write_text(json.dumps([passage]), "utf-8")
    with pytest.raises(NasalensError, match="item 0 question 0: field 'answer'"):
        load_ar_lsat(tmp_path)
