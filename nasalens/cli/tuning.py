"""Commands of the tuning group (filled in by its issue)."""

from __future__ import annotations

from nasalens.cli.app import app  # noqa: F401
