"""Shared CLI plumbing: one-line errors with exit codes, progress bars, logging."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
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
        # escaped: a path or a name with [brackets] must print as written, not as rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]: no output was written")
        raise typer.Exit(130) from None
    except OSError as err:  # the machine said no (permissions, a full or read-only disk): name the path
        where = escape(f" {err.filename!r}") if err.filename else ""
        what = escape(err.strerror or type(err).__name__)
        err_console.print(f"[bold red]error:[/] cannot read or write{where}: {what}; check the path given to "
                          "the command (its folder must exist or be creatable, and be writable for --out) "
                          "and the free disk space", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
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




# ------------------------------------------------------------------ argument checks
# A seed goes into numpy's SeedSequence (non-negative) and from there into torch (64 bits).
MAX_SEED = 2**63 - 1


def check_seed(seed: int | None, option: str = "--seed") -> None:
    """Refuse a seed numpy and torch cannot take, as one line naming the option."""
    from synthkit.errors import ConfigError
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{option} {seed} is outside 0..{MAX_SEED}; give a whole number in that range "
                          "(or leave the option out)")


def existing_ancestor(path: Path) -> Path:
    """The nearest of `path` and its parents that exists (a file or a folder)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output path that cannot be created: a file on the way,
    a folder without write permission, a read-only disk, a name the system refuses."""
    from synthkit.errors import ConfigError
    text = str(path)
    if "\x00" in text:
        raise ConfigError(f"{option} contains a NUL character; give a plain path")
    try:
        parent = existing_ancestor(Path(path).parent)
        if not parent.is_dir():
            raise ConfigError(f"{option} {text!r}: {str(parent)!r} is a file, not a folder; give an {option} path "
                              "inside a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"{option} {text!r}: the folder {str(parent)!r} is not writable (permissions or a "
                              f"read-only disk); give an {option} in a folder you can write to")
    except OSError as err:
        raise ConfigError(f"{option} {text!r}: {err.strerror or type(err).__name__}; give a shorter or plain "
                          f"{option} path") from None


# ------------------------------------------------------------------ reading options of data files
# One definition for every command that reads a data file (the reader's error messages
# name these options). `None` for --header/--no-header: detect, conservatively.
HeaderOption = Annotated[Optional[bool], typer.Option(
    "--header/--no-header", help="CSV/TSV: the first line is (or is not) a header; default: detected",
    show_default=False)]
EncodingOption = Annotated[Optional[str], typer.Option(
    "--encoding", help="CSV/TSV: the text encoding (utf-8, latin-1, cp1252, utf-16, ...); default: utf-8")]


def read_options(header: bool | None, encoding: str | None) -> dict[str, Any]:
    """`connectors.read` keyword arguments for --header/--no-header and --encoding; only
    those given, so a source that takes no such option (SQL) is not handed one."""
    options: dict[str, Any] = {}
    if header is not None:
        options["has_header"] = header
    if encoding is not None:
        options["encoding"] = encoding
    return options


def check_input_frame(frame: Any, *, option: str, location: str, min_rows: int, fix: str) -> None:
    """Refuse a data file the command cannot use, in one line naming the option, the file
    and, for infinite values, the column, never a value nor an exact count of rows (the
    data may be private): fewer than `min_rows` rows, or ±inf in a numeric column."""
    import numpy as np
    import pandas as pd

    from synthkit.errors import SourceError
    if len(frame) < min_rows:
        what = "no rows" if min_rows == 1 else f"fewer than {min_rows} rows"
        raise SourceError(f"{option} {location!r} holds {what}; {fix}")
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_float_dtype(column.dtype) and bool(np.isinf(column.to_numpy(dtype=float)).any()):
            raise SourceError(f"{option} {location!r}: column {str(name)!r} holds infinite values, which no "
                              "metric can compare; remove or replace them (synthkit generate never writes them)")


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
