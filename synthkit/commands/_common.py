"""Shared CLI plumbing: one-line errors with exit codes, progress bars, logging."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from synthkit.errors import SynthkitError

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


