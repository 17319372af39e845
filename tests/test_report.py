import re

import pandas as pd
import plotly.graph_objects as go

from nasalens.report import Section, render, write_report


def test_report_holds_every_section_table_and_figure_once_with_plotly_inlined(tmp_path):
    fig = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))
    sections = [
        Section(
            "Bias",
            text="First.\n\nSecond <b>",
            findings=("recall 0.02",),
            tables=(("table one", pd.DataFrame({"a": [1.23456], "b": ["x"]})),),
        ),
        Section("Heads", figures=(fig, fig), html="<p id='frag'>fragment</p>"),
    ]
    page = render("Run", sections, subtitle="model m", config={"k": 100}, timings={"nas": 1.5})
    assert page.count("<h2 id='s") == 2 and "href='#s1'" in page
    assert "Second &lt;b&gt;" in page  # text is escaped, fragments are not
    assert "<p id='frag'>fragment</p>" in page
    assert "1.235" in page and "recall 0.02" in page
    assert page.count("class='fig'") == 2
    assert len(re.findall(r"Plotly\.newPlot", page)) == 2
    assert page.count("<script type='text/javascript'>") == 1  # plotly.js once
    assert "&quot;k&quot;: 100" in page and "<td>nas</td>" in page
    out = write_report(tmp_path / "r" / "report.html", "Run", sections)
    assert out.read_text().startswith("<!DOCTYPE html>")
