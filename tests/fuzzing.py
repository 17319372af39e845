"""Hostile inputs for nasalens's readers, as hypothesis strategies, and the outcome of each call.

Shared by the fuzz suite (tests/test_fuzz.py, a few hundred cases per kind) and bench/fuzz.py
(10,000 or more per kind). Every kind is a strategy of inputs and a function that feeds one input
to nasalens; `outcome` sorts what happened into "accepted", "NasalensError" or "other" (any other
exception: the contract says there are none) and checks the message of a NasalensError: at most
`MESSAGE_LIMIT` characters, naming the file it read when there is one.

Kinds: ``jsonl`` (`load_jsonl`, `load_questions_jsonl`), ``heads`` (`HeadSet.load`), ``toml``
(`NasaConfig.from_toml`), ``run`` (a run folder with one file replaced: `Run.open`, `records`,
`status`, `check_finished`) and ``arguments`` (wrong types and values for the public readers).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from hypothesis import strategies as st

from nasalens.data import load, load_jsonl, load_questions_jsonl
from nasalens.errors import MESSAGE_LIMIT, NasalensError, quote
from nasalens.heads import HeadSet
from nasalens.tuning import NasaConfig
from nasalens.tuning.runs import Run

OUTCOMES = ("accepted", "NasalensError", "other")
BIG_INT = "9" * 5000  # past Python's 4,300-digit limit for int(str)

# ---- JSON text with hostile edits -----------------------------------------------------------

_WORDS = ["yes", "no", "YES", "true", "", "  ", "Paris", "12", "twelve", "L1H2", "L0H0", "nan"]
TEXTS = st.one_of(
    st.sampled_from(_WORDS),
    st.text(max_size=12),
    st.sampled_from(["a\x00b", "\x07", "\u2028", "\ud800", "<|im_end|>", "x" * 3000]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXTS,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXTS, inner, max_size=4),
    max_leaves=8,
)


@st.composite
def hostile(draw: st.DrawFn, values: st.SearchStrategy[object]) -> bytes:
    """A JSON value as text, then up to three edits that a careless or hostile writer makes."""
    text = json.dumps(draw(values), ensure_ascii=draw(st.booleans()), allow_nan=True)
    raw = text.encode("utf-8", "surrogatepass")
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):  # half stay intact
        edit = draw(st.sampled_from(EDITS))
        raw = edit(raw, draw)
    return raw


def _at(raw: bytes, draw: st.DrawFn) -> int:
    return draw(st.integers(0, len(raw)))


def _insert(piece: bytes) -> Callable[[bytes, st.DrawFn], bytes]:
    def edit(raw: bytes, draw: st.DrawFn) -> bytes:
        i = _at(raw, draw)
        return raw[:i] + piece + raw[i:]

    return edit


def _duplicate_first_key(raw: bytes, draw: st.DrawFn) -> bytes:
    if raw.startswith(b'{"'):
        end = raw.find(b",")
        if end > 0:
            return raw[:1] + raw[1:end] + b"," + raw[1:]
    return raw


def _big_number(raw: bytes, draw: st.DrawFn) -> bytes:
    if raw.startswith(b"{") and raw.endswith(b"}") and len(raw) > 2:
        return raw[:-1] + b', "n": ' + BIG_INT.encode() + b"}"
    return BIG_INT.encode()


EDITS: list[Callable[[bytes, st.DrawFn], bytes]] = [
    lambda raw, draw: raw[: _at(raw, draw)],  # truncated (a torn write)
    lambda raw, draw: raw + b"\n" + raw,  # two values
    _insert(b"\xff\xfe"),  # not UTF-8
    _insert(b"\x00"),
    _insert(b'"\\u0007"'),
    _insert(b"NaN"),
    _insert(b"\r\n"),
    _insert(b"\xef\xbb\xbf"),  # a byte-order mark
    _insert(b"[" * 50_000),
    _duplicate_first_key,
    _big_number,
]

# ---- the kinds ------------------------------------------------------------------------------

_ROW_KEYS = ["question", "gold", "id", "label", "context", "answers", "wrong", "kind", "meta"]
_PLAIN = st.sampled_from(["Is it?", "What is 2 + 2?", "Paris", "12", "Q"])
_ROW = st.one_of(
    st.dictionaries(st.sampled_from(_ROW_KEYS) | TEXTS, JSON, max_size=6),
    st.fixed_dictionaries(
        {"question": _PLAIN | TEXTS, "gold": st.sampled_from(["yes", "no", True, False, "No"])},
        optional={"id": st.integers(0, 9), "label": _PLAIN, "context": _PLAIN},
    ),
    st.fixed_dictionaries(
        {"question": TEXTS, "gold": st.sampled_from(["yes", "no", True, False, 1, "maybe"])},
        optional={"id": TEXTS | st.integers(), "label": TEXTS, "answers": JSON},
    ),
    st.fixed_dictionaries(
        {"question": TEXTS, "answers": st.lists(TEXTS, max_size=3) | TEXTS},
        optional={"wrong": TEXTS, "kind": st.sampled_from(["number", "place", "fish"])},
    ),
    st.fixed_dictionaries(
        {"question": _PLAIN, "answers": st.sampled_from([["4", "four"], "Paris"])},
        optional={"wrong": st.sampled_from(["5", "Rome"]), "kind": st.just("number")},
    ),
)
JSONL_FILES = st.lists(hostile(_ROW) | st.binary(max_size=16), min_size=1, max_size=6).map(
    b"\n".join
)
_NAMES = st.sampled_from(["L1H2", "L0H3", "L99H99", "l1h2", "1.2", "", "L" + "9" * 30 + "H1"])
_HEADS = st.one_of(
    st.lists(_NAMES | SCALARS, max_size=4),
    st.fixed_dictionaries(
        {"heads": st.lists(_NAMES, max_size=4) | JSON},
        optional={
            "nas": st.lists(SCALARS, max_size=4) | SCALARS,
            "share": st.lists(SCALARS, max_size=4) | SCALARS,
            "k": SCALARS,
            "consistency": SCALARS,
            "n_samples": SCALARS,
        },
    ),
    JSON,
)
HEAD_FILES = hostile(_HEADS)
_FIELDS = [f.name for f in fields(NasaConfig)]
_TOML_VALUES = st.one_of(
    st.integers().map(str),
    st.just(BIG_INT),
    st.floats(allow_nan=True).map(lambda x: repr(x).replace("inf", "inf").lower()),
    st.sampled_from(["true", "false", '"qk"', '"random"', '"fast"', "[1, 2]", "{a = 1}", "1e999"]),
    TEXTS.map(lambda t: json.dumps(t)),
)
_TOML_LINES = st.lists(
    st.tuples(st.sampled_from(_FIELDS) | st.text(max_size=6), _TOML_VALUES).map(
        lambda kv: f"{kv[0]} = {kv[1]}"
    ),
    max_size=5,
)


@st.composite
def toml_files(draw: st.DrawFn) -> bytes:
    """A TOML file of NasaConfig fields (or not), with a [nasa] table or not, then edits."""
    header = draw(st.sampled_from(["", "[nasa]\n", "[other]\n", "nasa = 1\n"]))
    raw = (header + "\n".join(draw(_TOML_LINES)) + "\n").encode("utf-8", "surrogatepass")
    for _ in range(draw(st.integers(0, 2))):
        raw = draw(st.sampled_from(EDITS[:9]))(raw, draw)
    return raw


RUN_TARGETS = [
    "run.json",
    "config.json",
    "probe.json",
    "heads.json",
    "log.jsonl",
    "checkpoints/head-000.safetensors",
    "final.safetensors",
]


@st.composite
def run_edits(draw: st.DrawFn) -> tuple[str, str, bytes, int]:
    """One file of a run folder, how it is damaged ("edit", "replace", "delete"), new bytes."""
    target = draw(st.sampled_from(RUN_TARGETS))
    how = draw(st.sampled_from(["edit", "edit", "replace", "delete"]))
    raw = draw(hostile(JSON)) if how == "replace" else b""
    return target, how, raw, draw(st.integers(0, 2**32))


def edit_bytes(original: bytes, seed: int) -> bytes:
    """Deterministic damage to a file: cut, flipped bytes, or an edited number."""
    import random

    rng = random.Random(seed)
    raw = bytearray(original)
    choice = rng.randrange(4)
    if choice == 0:
        return bytes(raw[: rng.randrange(len(raw) + 1)])
    if choice == 1:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(raw))
            raw[i] ^= 1 << rng.randrange(8)
        return bytes(raw)
    if choice == 2:
        text = bytes(raw).replace(b"1", BIG_INT.encode(), 1)
        return text
    i = rng.randrange(len(raw) + 1)
    return bytes(raw[:i]) + rng.randbytes(rng.randint(1, 20)) + bytes(raw[i:])


# ---- running one case -----------------------------------------------------------------------


@dataclass
class Outcome:
    """What one call did: its outcome and, for a NasalensError, what was wrong with the message."""

    kind: str
    problem: str = ""
    error: BaseException | None = None


def outcome(call: Callable[[], object], *, names: str | None = None, other: tuple = ()) -> Outcome:
    """Run ``call`` and sort what happened.

    Args:
        call: The call.
        names: A file name every NasalensError message must contain.
        other: Further exception types to count as "NasalensError" (the test suite's run-time
            type checks word a wrong argument type before nasalens sees it).
    """
    try:
        call()
    except NasalensError as err:
        text = str(err)
        if len(text) > MESSAGE_LIMIT + 50:
            return Outcome("NasalensError", f"message of {len(text)} characters", err)
        if names is not None and names not in text:
            return Outcome("NasalensError", f"message does not name {names}: {text[:300]}", err)
        return Outcome("NasalensError", "", err)
    except other as err:
        return Outcome("NasalensError", "", err)
    except Exception as err:  # the contract: none of these
        return Outcome("other", f"{type(err).__name__}: {str(err)[:300]}", err)
    return Outcome("accepted")


def check_jsonl(folder: Path, raw: bytes) -> list[Outcome]:
    path = folder / "data.jsonl"
    path.write_bytes(raw)
    return [
        outcome(lambda: load_jsonl(path, balanced=False), names=path.name),
        outcome(lambda: load_jsonl(path), names=path.name),
        outcome(lambda: load_questions_jsonl(path), names=path.name),
    ]


def check_heads(folder: Path, raw: bytes) -> list[Outcome]:
    path = folder / "heads.json"
    path.write_bytes(raw)
    return [outcome(lambda: HeadSet.load(path), names=path.name)]


def check_toml(folder: Path, raw: bytes) -> list[Outcome]:
    path = folder / "nasa.toml"
    path.write_bytes(raw)
    return [outcome(lambda: NasaConfig.from_toml(path), names=path.name)]


def check_run(template: Path, folder: Path, edit: tuple[str, str, bytes, int]) -> list[Outcome]:
    """Copy the run folder ``template``, damage one file as ``edit`` says, and read the copy."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(template, folder)
    target, how, raw, seed = edit
    path = folder / target
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes(edit_bytes(path.read_bytes(), seed) if how == "edit" else raw)

    def read() -> None:
        run = Run.open(folder)
        run.records()
        run.status()
        run.check_finished()

    return [outcome(read)]


def argument_calls(folder: Path) -> st.SearchStrategy[tuple[str, Callable[[], object]]]:
    """Public readers called with arguments of wrong types and values: (description, call)."""
    fifo = folder / "pipe.jsonl"
    if not fifo.exists():
        os.mkfifo(fifo)
    good = folder / "good.jsonl"
    good.write_text('{"question": "Q?", "gold": "yes"}\n{"question": "R?", "gold": "no"}\n')
    special = [
        folder,
        fifo,
        "/dev/null",
        folder / "absent.jsonl",
        good,
        "a\x00b",
        "x" * 5000,
        "",
        "~nobody-at-all/x",
    ]
    paths = st.one_of(
        st.sampled_from(special), st.none(), st.integers(), st.floats(), st.binary(max_size=8),
        st.text(max_size=300), st.lists(st.text(max_size=3), max_size=2),
    )  # fmt: skip
    sizes = st.one_of(
        st.none(), st.booleans(), st.integers(), st.just(10**5000), st.floats(), TEXTS,
        st.lists(st.integers(), max_size=2),
    )  # fmt: skip
    readers: list[Callable[[object], object]] = [
        load_jsonl, load_questions_jsonl, HeadSet.load, NasaConfig.from_toml, Run.open,
        lambda p: load("jsonl", p),  # type: ignore[arg-type]
        lambda name: load(name),  # type: ignore[arg-type]
    ]  # fmt: skip
    sized: list[Callable[[object], object]] = [
        lambda n: load_jsonl(good, n=n),  # type: ignore[arg-type]
        lambda n: load_jsonl(good, seed=n),  # type: ignore[arg-type]
        lambda n: load_jsonl(good, balanced=n),  # type: ignore[arg-type]
        lambda n: load("builtin-eval", n=n),  # type: ignore[arg-type]
        lambda n: load("builtin-probe", seed=n),  # type: ignore[arg-type]
    ]
    by_path = st.tuples(st.sampled_from(readers), paths)
    by_size = st.tuples(st.sampled_from(sized), sizes)
    return st.one_of(by_path, by_size).map(
        lambda fa: (
            f"{getattr(fa[0], '__qualname__', 'call')}({quote(fa[1], 60)})",
            lambda: fa[0](fa[1]),
        )
    )
