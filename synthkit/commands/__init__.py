"""CLI commands by area. `synthkit.cli` defines the core commands (schema, fit, generate,
inspect, demo) and calls `register_all`; every other area owns one module here with a
`register(app)` function, so areas evolve without editing one shared file."""

from __future__ import annotations

import importlib

import typer

AREAS = ("connectors", "evaluate", "audit", "release")


def register_all(app: typer.Typer) -> None:
    for area in AREAS:
        importlib.import_module(f"synthkit.commands.{area}").register(app)
