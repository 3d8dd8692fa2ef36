"""`synthkit connectors`: the sources and sinks synthkit reads and writes, with their URI forms.

The import of `connectors` stays inside the command (synthkit's core must not depend on
it at import time; see DESIGN.md's layout table)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from synthkit.commands._common import cli_errors, console


def list_connectors() -> dict[str, list[dict[str, str]]]:
    """The plain function behind the command: sources and sinks as records."""
    import connectors
    return {
        "sources": [{"kind": k, "uri": u, "notes": n} for k, u, n in connectors.SOURCES],
        "sinks": [{"kind": k, "uri": u, "notes": n} for k, u, n in connectors.SINKS],
    }


def register(app: typer.Typer) -> None:
    """Add `synthkit connectors` to `app`."""

    @app.command("connectors")
    def connectors_command(
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        """List the data sources and sinks and their URI forms."""
        with cli_errors():
            info = list_connectors()
            if as_json:
                typer.echo(json.dumps(info, indent=2))
                return
            for title, rows in (("sources (synthkit fit DATA, schema infer DATA)", info["sources"]),
                                ("sinks (synthkit generate --out URI)", info["sinks"])):
                table = RichTable(title=title, title_justify="left")
                table.add_column("kind")
                table.add_column("URI form", overflow="fold")
                table.add_column("notes")
                for row in rows:
                    table.add_row(row["kind"], escape(row["uri"]), escape(row["notes"]))
                console.print(table)
            console.print("Credentials: PostgreSQL passwords come from PGPASSWORD, a ~/.pgpass file or the URI; "
                          "they are never logged or written into bundles or reports (only the redacted location is).")
