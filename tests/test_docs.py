"""The documentation stays in step with the code."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_errors", DOCS / "gen_errors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_errors_page_lists_every_message():
    gen = _generator()
    assert (DOCS / "errors.md").read_text() == gen.render(), "run: python docs/gen_errors.py"


def test_the_generator_finds_messages_of_every_layer():
    found = _generator().messages()
    for module in ("nasalens.prompts.encoding", "nasalens.data.jsonl", "nasalens.scores"):
        assert found[module], module
    text = " ".join(m for entries in found.values() for _, m in entries)
    assert "is not in the instruction of template" in text
