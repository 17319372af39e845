"""Saving figures: self-contained HTML always, PNG when kaleido and a Chrome-type browser exist.

Both writes are atomic (`nasalens.artifacts`). PNG export is optional: without kaleido or a
browser it raises a `NasalensError` that says what to install, never a crash elsewhere.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import plotly.graph_objects as go

from nasalens.artifacts import write_bytes
from nasalens.errors import NasalensError

logger = logging.getLogger(__name__)

#: What to install for PNG export, quoted in the error.
PNG_HINT = (
    "install kaleido (`pip install kaleido`, or `pip install 'nasalens[png]'`) and a Chrome-type "
    "browser (on Debian/Ubuntu: `apt-get install chromium`); or save the figure as HTML with "
    "save_html"
)


def save_html(fig: go.Figure, path: str | Path) -> Path:
    """Write a figure as one self-contained HTML page (plotly.js inlined, works offline).

    Args:
        fig: A plotly figure.
        path: The ``.html`` file to write; parent folders are created.

    Returns:
        The path written.

    Example:
        >>> save_html(nasalens.heatmap(model, "What is 2 + 2?"), "heatmap.html")  # doctest: +SKIP
    """
    path = Path(path)
    html = fig.to_html(include_plotlyjs=True, full_html=True)
    write_bytes(path, html.encode("utf-8"))
    logger.info("wrote %s", path)
    return path


def save_png(fig: go.Figure, path: str | Path, *, scale: float = 2.0) -> Path:
    """Render a figure to PNG through kaleido (which drives a headless Chrome or Chromium).

    Args:
        fig: A plotly figure; its layout's width and height are used.
        path: The ``.png`` file to write; parent folders are created.
        scale: Pixel density (2.0 doubles width and height).

    Returns:
        The path written.

    Raises:
        NasalensError: When kaleido is not installed, no browser is found, or the browser fails;
            the message says what to install. Nothing is written then.
    """
    path = Path(path)
    if importlib.util.find_spec("kaleido") is None:
        raise NasalensError(f"cannot write {path}: PNG export needs kaleido; {PNG_HINT}")
    try:
        data = fig.to_image(format="png", scale=scale)
    except RuntimeError as err:  # plotly re-raises a missing Chrome or old kaleido like this
        text = " ".join(str(err).split())
        cause = (
            "kaleido found no Chrome or Chromium browser"
            if "Chrome" in text
            else f"PNG export failed ({type(err).__name__}: {text[:200]})"
        )
        raise NasalensError(f"cannot write {path}: {cause}; {PNG_HINT}") from err
    write_bytes(path, data)
    logger.info("wrote %s", path)
    return path
