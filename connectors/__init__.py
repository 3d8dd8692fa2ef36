"""Read and write data where it lives: files, SQL databases, FHIR R4 exports, camt.053 statements.

    frame = connectors.read("claims.parquet")                              # one table → pandas
    frame = connectors.read("sqlite:///warehouse.db", table="patients")
    frame = connectors.read("postgresql://analyst@db/clinic", query="select * from labs")
    source = connectors.read_source("fhir:exports/")                       # entity + event tables
    sf = source.sequence_frames()                                          # long events + context
    connectors.write_chunks(chunks, "postgresql://db/out", table="synthetic", overwrite=False)
    connectors.redact("postgresql://user:secret@db/clinic")                # 'postgresql://db/clinic'

Modules: `uri` (parsing and redaction), `files` (CSV/Parquet/JSON lines via polars),
`sql` (SQLite and PostgreSQL via ADBC), `fhir` (FHIR R4), `camt053` (ISO 20022 bank
statements), `banktx` (generic transaction CSV exports), `source` (the Source value).

Every write is atomic (temporary file + rename, or one database transaction) and refuses
an existing target unless `overwrite=True`. Credentials never leave the connection: what
may be stored or shown is `redact(uri)` / `Source.location`. Errors are SourceError with
the redacted source and the problem, never a data value.

Importing this package is light (issue 17): pandas, polars, pyarrow and the readers load on
first use (PEP 562), so `connectors.parse` and `connectors.read_columns` on a CSV, which
the CLI uses to refuse a misspelled column, never import them.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from connectors.uri import Location, parse, redact
from synthkit.errors import SourceError

if TYPE_CHECKING:
    import pandas as pd

    from connectors import banktx, camt053, csvhead, fhir, files, source, sql
    from connectors.source import SequenceFrames, Source, stack_events

__all__ = ["Location", "SequenceFrames", "Source", "SOURCES", "SINKS", "describe", "iter_batches", "parse",
           "read", "read_columns", "read_partitions", "read_source", "redact", "sample", "stack_events", "write", "write_chunks"]

# loaded on first access (PEP 562): name -> module
_SUBMODULES = ("banktx", "camt053", "csvhead", "fhir", "files", "source", "sql")
_LAZY_NAMES = {"SequenceFrames": "connectors.source", "Source": "connectors.source",
               "stack_events": "connectors.source"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"connectors.{name}")  # which also sets it on this package
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'connectors' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES) | set(_LAZY_NAMES))

Uri = str | os.PathLike[str]

# (kind, URI form, what it is) — shown by `synthkit connectors`
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("csv", "path/to/data.csv | .tsv", "CSV/TSV; delimiter, header, encoding detected or given; read lazily by polars"),
    ("parquet", "path/to/data.parquet | folder/ | 'parts/*.parquet'",
     "Parquet; column types kept. A folder or glob of CSV, Parquet or JSON-lines parts is one table "
     "(names starting with _ or . skipped; nested folders refused)"),
    ("jsonl", "path/to/data.jsonl | .ndjson", "JSON lines, one object per row"),
    ("sqlite", "sqlite:///relative.db | sqlite:////abs/path.db", "SQLite file (needs --table or --query)"),
    ("postgresql", "postgresql://[user@]host[:port]/db",
     "PostgreSQL (needs --table or --query); password from PGPASSWORD, ~/.pgpass or the URI"),
    ("fhir", "fhir:folder/ | fhir:file.json", "FHIR R4 Bundles (.json) or bulk export (.ndjson) → patients + "
     "encounters, observations, conditions"),
    ("camt053", "camt053:folder/ | camt053:file.xml", "ISO 20022 camt.053 statements → accounts + transactions"),
    ("banktx", "banktx:export.csv", "a bank's transaction CSV export, columns mapped to the camt.053 layout"),
)
SINKS: tuple[tuple[str, str, str], ...] = (
    ("csv", "path/to/out.csv", "atomic: temporary file renamed when complete"),
    ("parquet", "path/to/out.parquet", "atomic: temporary file renamed when complete"),
    ("jsonl", "path/to/out.jsonl", "atomic: temporary file renamed when complete"),
    ("sqlite", "sqlite:///out.db --table NAME", "atomic: one transaction"),
    ("postgresql", "postgresql://[user@]host[:port]/db --table NAME", "atomic: one transaction (binary COPY)"),
)
_SINK_KINDS = {kind for kind, _, _ in SINKS}


def read(uri: Uri, *, table: str | None = None, query: str | None = None, **options: Any) -> pd.DataFrame:
    """Read one table into a pandas frame.

    Files take the reading options of `connectors.files.read` (separator, encoding,
    has_header, quote_char, null_values, parse_dates, columns, n_rows, check_rows); SQL
    sources take exactly one of `table` or `query`. A multi-table source (fhir:, camt053:,
    banktx:) needs `table` to pick one of its tables; `read_source` gives all of them."""
    from connectors import files, sql
    from synthkit.schema import KINDS_ATTR

    loc = parse(uri)
    if loc.is_sql:
        if options:
            raise SourceError(f"{loc.redacted!r}: options {sorted(options)} do not apply to SQL sources")
        return sql.read(loc, table=table, query=query)
    if query is not None:
        raise SourceError(f"{loc.redacted!r}: --query applies to SQL sources only")
    if loc.kind in ("csv", "parquet", "jsonl"):
        if table is not None:
            raise SourceError(f"{loc.redacted!r}: --table applies to SQL and multi-table sources only")
        assert loc.path is not None
        _check_options(loc, options, FILE_OPTIONS)
        if loc.parts:
            return files.read_parts(loc.parts, kind=loc.kind, where=loc.redacted, **options)
        return files.read(loc.path, kind=loc.kind, **options)
    source = read_source(loc, **options)
    if table is None:
        raise SourceError(f"{loc.redacted!r}: a {loc.kind} source has several tables {sorted(source.tables)}; "
                          "pick one with --table")
    if table not in source.tables:
        raise SourceError(f"{loc.redacted!r}: no table {table!r}; this source has {sorted(source.tables)}")
    frame = source.tables[table]
    if table in source.schemas:
        # the mapping's kinds (fixed by the standard, public): `infer_schema(strict=True)`
        # takes them for columns the rows cannot show a kind for (one the export never fills)
        frame.attrs[KINDS_ATTR] = {c.name: c.kind for c in source.schemas[table].columns}
    return frame


def read_columns(uri: Uri, *, table: str | None = None, query: str | None = None,
                 **options: Any) -> list[str] | None:
    """The column names `read` gives a one-table file source (CSV, Parquet, JSON lines),
    without its rows; None for SQL and multi-table sources (their columns are known only
    once connected or parsed). Column names are public (the header is the schema's names).

    A CSV's header is read with the standard library (connectors.csvhead: the same layout
    decisions and refusals as `read`, which calls the same functions), so neither pandas
    nor polars is imported: a misspelled column is refused in a fraction of a second. A
    CSV whose first record is not plain (a quote inside a field, a field over two lines) is
    read as `read(..., n_rows=0)`. Parquet and JSON lines take their names from polars' scan
    schema (polars only); one that polars cannot scan goes through `read` for its error."""
    loc = parse(uri)
    if loc.is_sql or loc.kind not in ("csv", "parquet", "jsonl"):
        return None
    if loc.parts:  # a dataset: its first part's header (`read` checks that every part has the same)
        return read_columns(loc.parts[0], table=table, query=query, **options)
    if loc.kind == "csv" and table is None and query is None and set(options) <= _HEADER_OPTIONS:
        from connectors import csvhead

        assert loc.path is not None
        _check_options(loc, options, FILE_OPTIONS)
        names = csvhead.columns(loc.path, **{k: v for k, v in options.items() if k in _LAYOUT_OPTIONS})
        if names is not None:
            return names
    if loc.kind in ("parquet", "jsonl") and table is None and query is None and set(options) <= _ROW_OPTIONS:
        assert loc.path is not None
        names = _scanned_names(loc.path, loc.kind)
        if names is not None:
            return names
    frame = read(uri, table=table, query=query, **{**options, "n_rows": 0, "check_rows": False})
    return [str(c) for c in frame.columns]


def _scanned_names(path: Path, kind: str) -> list[str] | None:
    """A Parquet or JSON-lines file's column names from the same polars scan that `read`
    starts with, importing polars only (not pandas or pyarrow, which `read` needs for the
    rows). None when polars cannot scan it, or when its columns hold what `read` refuses
    (too many, nested, binary): the full read then gives its one clear error."""
    import polars as pl

    from connectors.csvhead import too_many_columns

    try:
        lazy = pl.scan_parquet(path) if kind == "parquet" else pl.scan_ndjson(path, infer_schema_length=None)
        schema = lazy.collect_schema()
    except (pl.exceptions.PolarsError, OSError):
        return None
    refused = too_many_columns(str(path), len(schema)) is not None or any(
        isinstance(d, (pl.Struct, pl.List, pl.Array)) or d in (pl.Object, pl.Binary) for d in schema.values())
    return None if refused else [str(c) for c in schema.names()]


def read_source(uri: Uri | Location, *, table: str | None = None, query: str | None = None,
                **options: Any) -> Source:
    """Read a source into a `Source`: its tables, suggested schemas and roles.

    Domain sources (fhir:, camt053:, banktx:) give an entity table and event tables;
    files and SQL give one table (named after the file, the SQL table, or "query") whose
    schema is inferred from kinds only."""
    from connectors import files, sql
    from connectors.source import Source
    from synthkit.schema import infer_schema

    loc = uri if isinstance(uri, Location) else parse(uri)
    assert loc.path is not None or loc.is_sql
    if loc.kind == "fhir":
        from connectors import fhir
        _no_sql(loc, table, query)
        _check_options(loc, options, ("on_invalid",))
        return fhir.read_source(loc.path, location=loc.redacted, **options)  # type: ignore[arg-type]
    if loc.kind == "camt053":
        from connectors import camt053
        _no_sql(loc, table, query)
        _check_options(loc, options, ())
        return camt053.read_source(loc.path, location=loc.redacted, **options)  # type: ignore[arg-type]
    if loc.kind == "banktx":
        from connectors import banktx
        _no_sql(loc, table, query)
        _check_options(loc, options, FILE_OPTIONS + ("columns", "currency", "decimal_comma"))
        return banktx.read_source(loc.path, location=loc.redacted, **options)  # type: ignore[arg-type]
    if loc.is_sql:
        if options:
            raise SourceError(f"{loc.redacted!r}: options {sorted(options)} do not apply to SQL sources")
        frame = sql.read(loc, table=table, query=query)
        name = table or "query"
    else:
        _no_sql(loc, table, query)
        _check_options(loc, options, FILE_OPTIONS)
        if loc.parts:
            frame = files.read_parts(loc.parts, kind=loc.kind, where=loc.redacted, **options)  # type: ignore[arg-type]
            name = (loc.path if loc.path.is_dir() else loc.path.parent).name or "dataset"  # type: ignore[union-attr]
        else:
            frame = files.read(loc.path, kind=loc.kind, **options)  # type: ignore[arg-type]
            name = loc.path.stem  # type: ignore[union-attr]
    return Source(kind=loc.kind, location=loc.redacted, tables={name: frame}, schemas={name: infer_schema(frame)})


def read_partitions(uri: Uri, *, key: str, partitions: int, table: str | None = None,
                    query: str | None = None) -> Iterator[pd.DataFrame]:
    """A SQL source in `partitions` frames split by ranges of the unit key `key`: every row
    of one key lands in exactly one frame (a unit never straddles two), the ranges hold
    about equal numbers of distinct keys, and their bounds (key values) are bound query
    parameters that no repr, log line or error shows (connectors.sql.KeyRanges). Each
    frame is typed as `read` types the whole source. Some frames are empty when the source
    has fewer distinct keys than `partitions`."""
    from connectors import sql

    loc = parse(uri)
    if not loc.is_sql:
        raise SourceError(f"{loc.redacted!r}: read_partitions splits SQL sources (sqlite:///, postgresql://); "
                          "a file dataset is already split into its parts")
    ranges = sql.key_ranges(loc, table=table, query=query, key=key, partitions=partitions)
    return (sql.read_range(loc, ranges, i, table=table, query=query) for i in range(partitions))


def iter_batches(uri: Uri, *, batch_size: int = 100_000, **options: Any) -> Iterator[pd.DataFrame]:
    """Stream a file source in pandas batches with bounded memory (CSV, Parquet, JSON lines)."""
    from connectors import files

    loc = _file_location(uri, "iter_batches")
    if loc.parts:
        return _iter_parts(loc, batch_size=batch_size, **options)
    return files.iter_batches(loc.path, kind=loc.kind, batch_size=batch_size, **options)  # type: ignore[arg-type]


def _iter_parts(loc: Location, *, batch_size: int, **options: Any) -> Iterator[pd.DataFrame]:
    """A dataset's parts streamed one after another; every batch must have the first part's
    columns, as `read` checks (a part with another header is refused, not streamed)."""
    from connectors import files

    first: list[str] | None = None
    for part in loc.parts:
        for batch in files.iter_batches(part, kind=loc.kind, batch_size=batch_size, **options):  # type: ignore[arg-type]
            first = list(batch.columns) if first is None else first
            files.check_part_header(first, list(batch.columns), part=part, where=loc.redacted)
            yield batch


def sample(uri: Uri, *, n_rows: int, seed: int | None = None, **options: Any) -> pd.DataFrame:
    """A uniform random sample of `n_rows` rows of a file of any size (one pass, bounded memory)."""
    from connectors import files

    loc = _file_location(uri, "sample")
    if loc.parts:
        raise SourceError(f"{loc.redacted!r}: sample reads one file; give one part, or read the dataset with read")
    return files.sample(loc.path, kind=loc.kind, n_rows=n_rows, seed=seed, **options)  # type: ignore[arg-type]


def write(frame: pd.DataFrame, uri: Uri, *, table: str | None = None, overwrite: bool = False) -> Path | str:
    """Write one frame atomically (file by extension, or a SQL table)."""
    return write_chunks([frame], uri, table=table, overwrite=overwrite)


def write_chunks(chunks: Iterable[pd.DataFrame], uri: Uri, *, table: str | None = None,
                 overwrite: bool = False) -> Path | str:
    """Stream chunks into one file or table atomically; memory is bounded by one chunk.
    Returns the file path, or the redacted URI of a database."""
    from connectors import files, sql

    loc = parse(uri, sink=True)
    if loc.kind not in _SINK_KINDS:
        raise SourceError(f"{loc.redacted!r}: {loc.kind} is a source only; write to "
                          ".csv, .parquet, .jsonl, sqlite:/// or postgresql://")
    if loc.is_sql:
        sql.write_chunks(chunks, loc, table=table, overwrite=overwrite)
        return loc.redacted
    if table is not None:
        raise SourceError(f"{loc.redacted!r}: --table applies to SQL sinks only")
    assert loc.path is not None
    files.write_chunks(chunks, loc.path, kind=loc.kind, overwrite=overwrite)  # type: ignore[arg-type]
    return loc.path


def describe(uri: Uri) -> dict[str, str]:
    """What a model bundle or report may record about a source: its kind and redacted location."""
    loc = parse(uri)
    return {"kind": loc.kind, "location": loc.redacted}


# reading options of `files.read` (the CLI's --header/--no-header is has_header, --encoding is encoding)
FILE_OPTIONS: tuple[str, ...] = ("separator", "encoding", "has_header", "quote_char", "null_values", "parse_dates",
                                 "columns", "n_rows", "check_rows")
# the options that decide a CSV's column names (connectors.csvhead.columns), and those that do not
_LAYOUT_OPTIONS = frozenset({"separator", "encoding", "has_header", "quote_char", "null_values"})
_HEADER_OPTIONS = _LAYOUT_OPTIONS | {"parse_dates", "n_rows", "check_rows"}
_ROW_OPTIONS = frozenset({"parse_dates", "n_rows", "check_rows"})  # options that change no column name


def _check_options(loc: Location, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """An option the source does not take is one clear line, not a TypeError."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"it takes {list(allowed)}" if allowed else "it takes none"
        raise SourceError(f"{loc.redacted!r}: options {unknown} do not apply to a {loc.kind} source; {takes}")
    header = options.get("has_header")
    if header is not None and not isinstance(header, bool):
        raise SourceError(f"{loc.redacted!r}: has_header must be True, False or None (detect), "
                          f"got a {type(header).__name__}")


def _no_sql(loc: Location, table: str | None, query: str | None) -> None:
    if table is not None or query is not None:
        raise SourceError(f"{loc.redacted!r}: --table and --query apply to SQL sources; "
                          "read_source gives every table of this source")


def _file_location(uri: Uri, what: str) -> Location:
    loc = parse(uri)
    if loc.kind not in ("csv", "parquet", "jsonl"):
        raise SourceError(f"{loc.redacted!r}: {what} works on CSV, Parquet and JSON-lines files")
    return loc
