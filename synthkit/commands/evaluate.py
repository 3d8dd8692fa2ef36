"""`synthkit` commands of the evaluate area (registered by synthkit.commands.register_all)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to `app` (none yet)."""
