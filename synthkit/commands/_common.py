"""Shared CLI plumbing: one-line errors with exit codes, progress bars, logging."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from synthkit.errors import SynthkitError

if TYPE_CHECKING:
    from synthkit.schema import Schema

err_console = Console(stderr=True)
console = Console()

EXIT_BAD_INPUT = 2
EXIT_CRASH = 1
EXIT_GATE_REJECTED = 3  # a release gate said no: not a crash, not bad input


@contextmanager
def cli_errors() -> Iterator[None]:
    try:
        yield
    except SynthkitError as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]: no output was written")
        raise typer.Exit(130) from None
    except Exception as err:  # unexpected: one line, the type only (a message may hold data)
        err_console.print(f"[bold red]internal error:[/] {type(err).__name__} (run with SYNTHKIT_DEBUG=1 for details)")
        if os.environ.get("SYNTHKIT_DEBUG"):
            raise
        raise typer.Exit(EXIT_CRASH) from None


@contextmanager
def progress_bar(description: str) -> Iterator[Any]:
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=err_console, transient=False,
                  disable=not err_console.is_terminal) as bar:
        task = bar.add_task(description, total=None)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{description} ({stage})")

        yield update


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")




# ------------------------------------------------------------------ options shared by fit and audit
# One definition each, so that `synthkit fit` and `synthkit audit` cannot drift apart.
EntityKeyOption = Annotated[Optional[str], typer.Option("--entity-key", help="column naming the privacy unit")]
SequenceIndexOption = Annotated[Optional[str], typer.Option(
    "--sequence-index", help="dphmm: column ordering each entity's events")]
ContextColumnOption = Annotated[Optional[list[str]], typer.Option(
    "--context-column", help="dphmm: a static column of the events table (repeat the option)")]
MaxLengthOption = Annotated[Optional[int], typer.Option(
    "--max-length", help="dphmm: events kept per entity (public); omitted: chosen under DP")]
StatesOption = Annotated[Optional[int], typer.Option("--states", help="dphmm: number of hidden states")]
ContextEpochsOption = Annotated[Optional[int], typer.Option(
    "--context-epochs", help="dphmm: training epochs of the context model (static attributes, length, start)")]


def sequence_schema(schema: Schema, *, sequence_index: str | None, context_columns: tuple[str, ...]) -> Schema:
    """The events schema of a `--model dphmm` run: the options' roles merged into the
    schema's (each set in one place), checked, validated."""
    import dataclasses

    from synthkit.errors import ConfigError

    if schema.entity_key is None:
        raise ConfigError("--model dphmm needs --entity-key (the entity whose events form one sequence)")
    if sequence_index is not None and schema.sequence_index not in (None, sequence_index):
        raise ConfigError("--sequence-index differs from the schema's sequence_index; set it in one place")
    if sequence_index is not None and schema.sequence_index is None:
        schema = dataclasses.replace(schema, sequence_index=sequence_index)
    if schema.sequence_index is None:
        raise ConfigError("--model dphmm needs --sequence-index (the column that orders each entity's events)")
    if context_columns:
        if schema.context_columns and set(schema.context_columns) != set(context_columns):
            raise ConfigError("--context-column differs from the schema's context_columns; set them in one place")
        schema = dataclasses.replace(schema, context_columns=tuple(context_columns))
    return schema.validate()
