"""Imports go one way (STYLE.md): a module imports only nasalens modules before it in LAYERS."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nasalens"

#: Lowest first. A module may import modules earlier in this list, or its own package.
LAYERS = [
    "errors",
    "deprecation",
    "artifacts",
    "models",
    "data",
    "prompts",
    "generation",
    "scores",
    "metrics",
    "heads",
    "correlation",
    "patching",
    "baselines",
    "validation",
    "tuning",
    "organisms",
    "analysis",
    "plotting",
    "report",
    "demo_report",
    "pipeline",
    "cli",
]


def _top(module: str) -> str:
    return module.split(".")[1] if module.startswith("nasalens.") else ""


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name.removesuffix(".__init__")
        if name != "nasalens":
            yield name, path


@pytest.mark.parametrize(("name", "path"), list(_modules()), ids=lambda x: str(x))
def test_imports_go_one_way(name, path):
    own = _top(name)
    assert own in LAYERS, f"{name}: add its top-level module to LAYERS in {__file__}"
    rank = LAYERS.index(own)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module]
        for target in targets:
            other = _top(target)
            if not other or other == own:
                continue
            assert other in LAYERS, f"{name} imports unknown nasalens module {target}"
            assert LAYERS.index(other) < rank, f"{name} imports {target}, a higher layer"
