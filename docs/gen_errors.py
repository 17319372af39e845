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

## The contract

- **Every public function** turns bad input into a `NasalensError`: a missing file, a folder,
  FIFO or device where a file belongs, a file that is not UTF-8, JSON with a repeated key or an
  integer longer than Python reads (4,300 digits), a control character in a text field, an
  argument of the wrong type or range. Anything else that escapes is a bug: please report it.
- **Messages are short.** A user value is quoted to at most about 200 characters
  (`nasalens.errors.quote`); a whole message to at most 2,000.
- **User text is text.** A question, label, context or few-shot example that spells a special
  token (`<|im_end|>`, BOS, EOS) is tokenized as characters; it never becomes a control token.
- **The command line** prints one line, `error: <message>`, on stderr and exits with status 2;
  `nasalens --debug COMMAND ...` (or `NASALENS_DEBUG=1`) shows the traceback instead. Every
  command checks its data, output folders and config files before it loads a model.

## What repairs itself (a warning, not an error)

| what | found by | what happens |
|---|---|---|
| the GGUF-derived model cache: a file missing, truncated, changed or unparsable | the manifest of sizes and hashes written with it; the load | rebuilt from the GGUF file |
| a run's `log.jsonl` ends in a torn line (a kill during an append) | the line does not parse and has no newline | the line is dropped on resume |
| a run's checkpoint fails its hash (truncated, changed) | the content hash written in it | set aside as `*.damaged`; that head runs again (bit-identical) |
| a run's `final.safetensors` fails its hash | the content hash | the run counts as unfinished; resuming writes it again |
| a kill during any other write | writes are atomic (temp file, then rename) | nothing to repair; a leftover temp file is removed on resume |

The organism cache is checked the same way but not rebuilt (that takes 18 CPU minutes): the
error names the folder to delete.
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
                out.append("{" + _value(part.value) + "}")  # type: ignore[attr-defined]
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return "{" + ast.unparse(node) + "}"


def _value(node: ast.expr) -> str:
    """A variable part as source; `quote(x)` and `shorten(x)` (the length bounds) show as x."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("quote", "shorten"):
        return ast.unparse(node.args[0])
    return ast.unparse(node)


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
