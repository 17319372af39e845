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
    "plants",
    "organisms",
    "shipped",
    "analysis",
    "plotting",
    "report",
    "demo_report",
    "demo_organism",
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


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The nasalens modules ``name`` imports, at any depth of its code (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            # "from nasalens.models import loading" imports the module nasalens.models.loading
            found |= {
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            }
    return {m for m in found if m in known and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_inside_a_package():
    """No circle of imports, including imports inside functions (DESIGN.md: none in a package)."""
    modules = dict(_modules())
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_circle():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}, "p": {"p.a"}}
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]
    assert _cycles({"p.a": {"p.b"}, "p.b": set()}) == []
