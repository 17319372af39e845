"""The `nasalens` command: thin wrappers that build a config, call the public API, print, write.

Every command calls the same functions a notebook would; nothing is reachable only from here.
"""

from __future__ import annotations

import logging

# Importing a command module registers its commands on `app`.
from nasalens.cli import analysis, demo, evaluation, heads, tuning, validation  # noqa: F401
from nasalens.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `nasalens` console script (errors: see `nasalens.cli.app`)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(prog_name="nasalens")
