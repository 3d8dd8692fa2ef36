"""Shared CLI plumbing: one-line errors with exit codes, progress bars, logging."""

from __future__ import annotations

import logging
import os
import sys
import time
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

# soft_wrap: a long path or run id is printed whole on one line, never folded at the
# terminal's width, so it can be copied (tables still fit the width)
err_console = Console(stderr=True, soft_wrap=True)
console = Console(soft_wrap=True)

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


def _progress_line(text: str) -> None:
    """One timestamped progress line on stderr, never folded (a log file keeps it whole)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    err_console.print(f"{stamp} {text}", highlight=False, markup=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str) -> Iterator[Any]:
    """A `progress(stage, done, total)` callback (with `.watch(ledger, epochs=...)` for
    ε spent): a rich bar with the epoch, ε spent and the time left on a terminal; one line
    at most every $SYNTHKIT_PROGRESS_INTERVAL seconds (default 10) and at most once per
    epoch elsewhere (a script, a scheduler, a log file; see synthkit.progress)."""
    from synthkit.progress import ProgressFacts, ProgressLog, interval_from_env
    if not err_console.is_terminal:
        log = ProgressLog(description, emit=_progress_line, interval=interval_from_env())
        with log.watchdog():  # a line every interval even where no step reports (ProgressLog.alive)
            yield log
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[extras]}"), TimeRemainingColumn(), console=err_console,
                  transient=False) as bar:
        task = bar.add_task(description, total=None, extras="")
        facts = ProgressFacts(description)

        class _Bar:
            def watch(self, ledger: Any, *, epochs: dict[str, int] | None = None) -> None:
                facts.watch(ledger, epochs=epochs)

            def __call__(self, stage: str, done: int, total: int) -> None:
                facts.update(stage, done, total)
                bar.update(task, completed=done, total=total, description=f"{description} ({stage})",
                           extras=escape(facts.extras()))

        yield _Bar()


class _LibraryNotes(logging.Filter):
    """Holds back INFO and DEBUG records of a library logger that sets its own level on
    import (great-expectations sets INFO and announces each temporary folder it makes), so
    neither a logger level set before the import nor a handler's level can; --verbose
    (setup_logging) lets them through. Installed when the CLI loads, so `run` and `demo`
    are quiet too."""

    verbose = False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose or record.levelno >= logging.WARNING


_LIBRARY_NOTES = _LibraryNotes()
for _name in ("great_expectations.data_context.types.base",):
    logging.getLogger(_name).addFilter(_LIBRARY_NOTES)
_HANDLER: logging.Handler | None = None


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current sys.stderr (as rich's consoles do), not the one at creation,
    and each distinct warning once: `audit` fits the same model once per trial, and its
    notes about the data would otherwise repeat for every trial."""

    def __init__(self) -> None:
        super().__init__()
        self._warned: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if record.levelno >= logging.WARNING:
            key = (record.name, record.levelno, record.getMessage())
            if key in self._warned:
                return False
            self._warned.add(key)
        return bool(super().filter(record))

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(verbose: bool) -> None:
    """Warnings on stderr, one line each; --verbose adds the INFO lines of synthkit and of the
    libraries. The level is set on synthkit's own handler (a library logger that sets itself
    to INFO still stops there); a host that configured logging first (pytest, an
    application) keeps its handlers and levels."""
    global _HANDLER
    level = logging.INFO if verbose else logging.WARNING
    _LIBRARY_NOTES.verbose = verbose
    root = logging.getLogger()
    if _HANDLER is None and not root.handlers:
        _HANDLER = _StderrHandler()
        _HANDLER.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(_HANDLER)
    if _HANDLER is not None:
        _HANDLER.setLevel(level)
        root.setLevel(level)




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
        _probe_write(parent, text, option)
    except OSError as err:
        raise ConfigError(f"{option} {text!r}: {err.strerror or type(err).__name__}; give a shorter or plain "
                          f"{option} path") from None


def _probe_write(parent: Path, text: str, option: str) -> None:
    """Create and remove an empty file in `parent`: os.access answers yes for root on a
    folder no file can be made in (/proc, a read-only bind mount seen as writable), where
    only a try tells (issue 17: `fit --out /proc/x/m` failed after the budget was spent)."""
    import tempfile

    from synthkit.errors import ConfigError
    try:
        fd, name = tempfile.mkstemp(dir=parent, prefix=".synthkit-probe-")
    except OSError:
        raise ConfigError(f"{option} {text!r}: its folder cannot be created or written (no file can be made in "
                          f"{str(parent)!r}); give an {option} in a folder you can write to") from None
    os.close(fd)
    os.unlink(name)


# ------------------------------------------------------------------ checks before torch is imported
# Importing the models (torch, opacus) takes seconds, tens of seconds on a busy machine; a
# misspelled option must be refused before that (issue 17). These checks use only the
# torch-free parts of synthkit and, for column names, the source's header.
def privacy_budget(epsilon: float, delta: float) -> Any:
    """The PrivacyBudget of --epsilon/--delta, or one line naming the option at fault."""
    from synthkit.errors import ConfigError
    from synthkit.ledger import PrivacyBudget
    try:
        return PrivacyBudget(epsilon=epsilon, delta=delta)
    except ConfigError as err:
        if str(err).startswith("epsilon"):
            raise ConfigError(f"--epsilon {epsilon:g} is not a budget: epsilon must be a finite number > 0; give "
                              "e.g. --epsilon 1 (smaller is more private and noisier)") from None
        raise ConfigError(f"--delta: {err}") from None


def check_model_options(model: str, options: dict[str, tuple[str, Any]], *, command: str) -> None:
    """Refuse an unknown --model, or an option value (`options`: hyperparameter name ->
    (option, value)) outside what the model accepts. Names and bounds come from
    synthkit.manifest, the ones `check_hyperparameters` and the bundle loader apply, so
    they cannot drift apart; options the model does not have are left to the command."""
    import difflib

    from pydantic import TypeAdapter, ValidationError

    from synthkit.errors import ConfigError
    from synthkit.manifest import HYPERPARAMETERS, MODEL_NAMES

    by_name = {name: cls for cls, name in MODEL_NAMES.items()}
    if model not in by_name:
        close = difflib.get_close_matches(str(model).lower(), list(by_name), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {model!r}{hint}; choose one of {sorted(by_name)} with --model")
    fields = HYPERPARAMETERS[by_name[model]].model_fields
    for name, (option, value) in options.items():
        field = fields.get(name)
        if value is None or field is None:
            continue
        kind = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
        try:
            TypeAdapter(kind).validate_python(value, strict=True)
        except ValidationError as err:
            why = err.errors(include_url=False, include_input=False, include_context=False)[0]["msg"]
            raise ConfigError(f"{option} {value!r} is not allowed: {why[:1].lower()}{why[1:]}; choose a value "
                              f"in the allowed range (see `{command} --help`)") from None


def check_source_exists(data: str | Path, what: str) -> None:
    """Refuse a plain file path that does not exist before the readers (polars, pandas)
    are imported. Anything with a colon (sqlite:, postgresql://, fhir:, a drive letter) or
    that is not a plain path is left to connectors, which parses it as it always does."""
    from synthkit.errors import SourceError

    text = os.fspath(data)
    text = text.strip() if isinstance(data, str) else text  # as connectors.uri.parse reads it
    if not text or ":" in text or "\x00" in text:
        return
    path = Path(text)
    try:
        missing = not path.exists()
    except OSError:  # a name the system refuses: the reader says so
        return
    if missing:
        raise SourceError(f"{str(path)!r}: no such file; check the path given as {what}")


def source_columns(data: str | Path, *, table: str | None = None, query: str | None = None,
                   read_opts: dict[str, Any] | None = None) -> list[str] | None:
    """The column names of a one-table file source (CSV, Parquet, JSON lines), read from
    its header without its rows; None for SQL and multi-table sources (their columns are
    known only once connected or parsed). Column names are public (DESIGN: the source's
    header is the schema's names). A missing or unreadable file fails here with the
    reader's own message. A CSV's header is read without pandas or polars
    (`connectors.read_columns`), so a misspelled column is refused in a fraction of a second."""
    import connectors

    notes = logging.getLogger("connectors.files")
    was = notes.disabled
    notes.disabled = True  # the full read detects the header again and says what it found then
    try:
        return connectors.read_columns(data, table=table, query=query, **(read_opts or {}))
    finally:
        notes.disabled = was


def check_columns(columns: list[str], options: dict[str, str | tuple[str, ...] | None], *, location: str) -> None:
    """Refuse an option (`options`: option -> column name(s)) naming a column the source
    does not have, in one line with the closest name and the source's columns."""
    import difflib

    from synthkit.errors import ConfigError

    known = set(columns)
    for option, given in options.items():
        for name in ((given,) if isinstance(given, str) else (given or ())):
            if name in known:
                continue
            close = difflib.get_close_matches(name, columns, n=1) or [c for c in columns if c.lower() == name.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            shown = ", ".join(repr(c) for c in columns[:12]) + (f" and {len(columns) - 12} more"
                                                                 if len(columns) > 12 else "")
            raise ConfigError(f"{option} {name!r} is not a column of {location!r}{hint}; its columns are {shown}; "
                              f"give one of them (names are case-sensitive)")


# ------------------------------------------------------------------ threads
ThreadsOption = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads (torch, BLAS, polars); default: $SYNTHKIT_THREADS, else $OMP_NUM_THREADS, "
                      "else half the CPUs, so jobs sharing a machine do not oversubscribe it",
    show_default=False)]


def use_threads(threads: int | None) -> int:
    """Resolve --threads ($SYNTHKIT_THREADS, the default) and apply it before numpy, polars
    and torch load (synthkit.threads)."""
    from synthkit.threads import use_threads as _use
    return _use(threads, where="--threads")


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
    "--context-column", metavar="<column>", help="dphmm: a static column of the events table (repeat the option)")]
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


def with_entity_key(schema: Any, entity_key: str, schema_path: Path | None) -> Any:
    """A schema file that declares no entity_key takes --entity-key (issue 17, trial 3: a
    `schema infer` output without --entity-key then `fit --entity-key id` was refused as
    'differs'). The key column is the privacy unit: not learned, and never missing (the
    data check refuses a missing key whatever the column's nullable says)."""
    from dataclasses import replace

    from synthkit.errors import ConfigError
    if entity_key not in schema:
        raise ConfigError(f"--entity-key {entity_key!r} is not a column of the schema {str(schema_path)!r}; "
                          f"the schema has {schema.names}")
    columns = tuple(replace(c, nullable=False) if c.name == entity_key else c for c in schema.columns)
    return replace(schema, columns=columns, entity_key=entity_key).validate()
