"""Write docs/errors.md: every NasalensError message in nasalens/, by module and function.

Run `python docs/gen_errors.py` after adding or changing an error; tests/test_docs.py fails
while the page is out of date.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "errors.md"

HEADER = """# Errors

Bad input raises `nasalens.NasalensError`, a `ValueError`. Every message names the offending
item (sample id, `file:line`, head, field) and states the cause, then what to do. Below is
every message nasalens can raise, by module and function, with its variable parts in braces.
This page is generated from the source by `docs/gen_errors.py`.
"""


def _text(node: ast.expr) -> str:
    """The message template of a string, f-string or concatenation."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            else:
                out.append("{" + ast.unparse(part.value) + "}")  # type: ignore[attr-defined]
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return "{" + ast.unparse(node) + "}"


def messages() -> dict[str, list[tuple[str, str]]]:
    """Module -> [(function, message template)], in source order."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted((ROOT / "nasalens").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                call = node.exc if isinstance(node, ast.Raise) else None
                if not (
                    isinstance(call, ast.Call) and getattr(call.func, "id", "") == "NasalensError"
                ):
                    continue
                text = " ".join(_text(call.args[0]).split()) if call.args else ""
                entry = (func.name, text)
                if entry not in found.setdefault(module, []):
                    found[module].append(entry)
    return found


def render() -> str:
    """The page."""
    lines = [HEADER]
    for module, entries in messages().items():
        lines += [f"\n## `{module}`\n", "| function | message |", "|---|---|"]
        for func, text in entries:
            cell = text.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{func}` | {cell} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PAGE.write_text(render())
    sys.stdout.write(f"wrote {PAGE} ({sum(len(v) for v in messages().values())} messages)\n")
