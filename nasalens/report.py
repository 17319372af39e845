"""One self-contained HTML report: sections of text, tables and plotly figures, offline.

plotly.js is inlined once in the page head, so the file opens anywhere without a network. Other
modules contribute sections (`Section`), or ready HTML fragments through `Section.html`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from nasalens.artifacts import write_bytes

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 24px 32px 64px; color: #1d232b; line-height: 1.45; }
h1 { margin-bottom: 4px; } .subtitle { color: #5a6472; margin-top: 0; }
h2 { border-bottom: 2px solid #e4e8ee; padding-bottom: 4px; margin-top: 40px; }
.wide { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 8px 0 18px; font-size: 13px; }
th, td { border: 1px solid #d9dee5; padding: 4px 8px; text-align: right; }
th { background: #f3f5f8; } td:first-child, th:first-child { text-align: left; }
.note { background: #fff8e5; border-left: 4px solid #f0b400; padding: 8px 12px; margin: 12px 0; }
.finding { background: #eef6ff; border-left: 4px solid #2f7fd8; padding: 8px 12px; margin: 12px 0; }
nav ol { columns: 2; font-size: 14px; } pre { background: #f6f8fa; padding: 10px; overflow-x: auto;
       font-size: 12px; } .fig { margin: 8px 0 20px; }
"""


@dataclass(frozen=True)
class Section:
    """One section of a report.

    Attributes:
        title: The heading.
        text: Paragraphs of plain text (blank lines separate them).
        findings: Sentences stating what this step decided or showed, highlighted.
        tables: (caption, DataFrame) pairs.
        figures: Plotly figures.
        html: A ready HTML fragment appended after the rest (trusted, not escaped).
    """

    title: str
    text: str = ""
    findings: tuple[str, ...] = ()
    tables: tuple[tuple[str, pd.DataFrame], ...] = field(default=())
    figures: tuple[go.Figure, ...] = field(default=())
    html: str = ""


def render(
    title: str,
    sections: Sequence[Section],
    *,
    subtitle: str = "",
    config: Mapping[str, object] | None = None,
    timings: Mapping[str, float] | None = None,
) -> str:
    """Return the report as one HTML page (plotly.js inlined once).

    Args:
        title: The page title.
        sections: The sections, in order; a table of contents links them.
        subtitle: A line under the title (e.g. the model and the date).
        config: The run's configuration, shown as JSON at the end.
        timings: Seconds per step, shown as a table at the end.

    Returns:
        The page.
    """
    from plotly.offline import get_plotlyjs

    parts = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='subtitle'>{html.escape(subtitle)}</p>" if subtitle else "",
        "<nav><ol>",
        *(f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>" for i, s in enumerate(sections)),
        "</ol></nav>",
    ]
    for i, section in enumerate(sections):
        parts.append(_section(i, section))
    if timings:
        frame = pd.DataFrame({"step": list(timings), "seconds": [timings[k] for k in timings]})
        parts += ["<h2>Timings</h2>", _table(frame)]
    if config:
        text = json.dumps(config, indent=2, default=str)
        parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(text)}</pre>"]
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts.append(f"<p class='subtitle'>Written by nasalens on {html.escape(stamp)}.</p>")
    parts.append("</body></html>\n")
    return "\n".join(p for p in parts if p)


def write_report(
    path: str | Path,
    title: str,
    sections: Sequence[Section],
    *,
    subtitle: str = "",
    config: Mapping[str, object] | None = None,
    timings: Mapping[str, float] | None = None,
) -> Path:
    """Write the report (atomically) and return its path."""
    page = render(title, sections, subtitle=subtitle, config=config, timings=timings)
    path = Path(path)
    write_bytes(path, page.encode("utf-8"))
    return path


def _section(index: int, section: Section) -> str:
    out = [f"<h2 id='s{index}'>{html.escape(section.title)}</h2>"]
    for paragraph in (p.strip() for p in section.text.split("\n\n")):
        if paragraph:
            out.append(f"<p>{html.escape(paragraph)}</p>")
    out += [f"<div class='finding'>{html.escape(f)}</div>" for f in section.findings]
    for caption, frame in section.tables:
        out += [f"<h3>{html.escape(caption)}</h3>", _table(frame)]
    for fig in section.figures:
        out.append(f"<div class='fig'>{fig.to_html(full_html=False, include_plotlyjs=False)}</div>")
    if section.html:
        out.append(section.html)
    return "\n".join(out)


def _table(frame: pd.DataFrame) -> str:
    inner = frame.to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="–", border=0)
    return f"<div class='wide'>{inner}</div>"  # wide tables scroll instead of overflowing
