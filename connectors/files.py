"""CSV, Parquet and JSON-lines files: lazy reading through polars, atomic writing.

Why polars: its lazy scanners read CSV/Parquet/NDJSON in parallel with typed columns and
can stream a file in batches, so a file larger than memory can be read batch by batch
(`iter_batches`) or sampled (`sample`) with bounded memory; the whole-file `read` is for
data that fits. Parquet keeps its own column types, which then feed schema inference.

Privacy: a CSV header becomes column names, which synthkit treats as PUBLIC schema. A
headerless file read as if it had a header would publish its first row, so header
detection (`has_header=None`, in connectors.csvhead) is conservative: a first row holding a
number, a date, an empty or a repeated field is taken as data. Errors name the file and line numbers and
counts, never a cell value (polars' own messages quote values, so they are never passed
on).

Writes go to a temporary file in the target folder, are flushed to disk and renamed over
the target only when complete: an interrupted or failed write leaves no partial file, and
an existing target is never replaced without `overwrite=True`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

# the CSV layout (text checks, delimiter, header detection, refused names) is decided by
# connectors.csvhead from the file's head with the standard library; the header-only path
# (connectors.read_columns) calls the same functions, so the two cannot disagree
from connectors.csvhead import (  # noqa: F401  (NULL_VALUES, MAX_COLUMNS, _header: part of this module's API)
    _MAX_LINES_SHOWN,
    _INFER_ROWS,
    MAX_COLUMNS,
    NULL_VALUES,
    _head_text,
    _header,
    check_file,
    check_names,
    decoder,
    is_utf8,
    layout,
    too_many_columns,
)
from synthkit.errors import SourceError

log = logging.getLogger(__name__)

FileKind = Literal["csv", "parquet", "jsonl"]


# ------------------------------------------------------------------ reading
def read(path: Path, *, kind: FileKind, separator: str | None = None, encoding: str = "utf8",
         has_header: bool | None = None, quote_char: str | None = '"',
         null_values: Sequence[str] = NULL_VALUES, parse_dates: bool = True,
         columns: Sequence[str] | None = None, n_rows: int | None = None,
         check_rows: bool = True) -> pd.DataFrame:
    """Read a whole file (or its first `n_rows`) into pandas.

    CSV options: `separator` (sniffed among , ; tab | when None; tab for .tsv),
    `encoding` (any Python codec; non-UTF-8 files are transcoded in a streamed temp copy),
    `has_header` (None: detect, conservatively), `quote_char` (None: no quoting),
    `null_values`, `parse_dates` (ISO dates and times, with offsets as UTC), `check_rows`
    (refuse rows with a different field count, naming their lines)."""
    options = dict(separator=separator, encoding=encoding, has_header=has_header, quote_char=quote_char,
                   null_values=null_values, parse_dates=parse_dates, check_rows=check_rows)
    return to_pandas(_read_polars(path, kind=kind, columns=columns, n_rows=n_rows, **options))


def read_parts(paths: Sequence[Path], *, kind: FileKind, where: str, columns: Sequence[str] | None = None,
               n_rows: int | None = None, **options: Any) -> pd.DataFrame:
    """A dataset of part files (one table split over a folder or a glob) into one pandas
    frame. Each part is read and checked as `read` reads one file (its own CSV layout,
    encoding and diagnosis, errors naming the part); every part must have the first part's
    column names in the same order; column types are unified to their common supertype
    (an integer column that is float in another part becomes float, as one file holding
    both would)."""
    frames: list[pl.DataFrame] = []
    names: list[str] | None = None
    left = n_rows
    for path in paths:
        if left is not None and left <= 0 and frames:
            break
        frame = _read_polars(path, kind=kind, columns=columns, n_rows=left, **options)
        if names is None:
            names = frame.columns
        check_part_header(names, list(frame.columns), part=path, where=where)
        frames.append(frame)
        if left is not None:
            left -= len(frame)
    try:
        whole = pl.concat(frames, how="vertical_relaxed")
    except (pl.exceptions.PolarsError, pa.ArrowException):
        bad = [c for c in frames[0].columns if len({f.schema[c] for f in frames}) > 1]
        raise SourceError(f"{where!r}: columns {bad} have types in some parts that fit no common type; type them "
                          "alike in every part (or as text)") from None
    return to_pandas(whole)


def check_part_header(first: Sequence[str], names: Sequence[str], *, part: Path, where: str) -> None:
    """Refuse a part whose column names differ from the first part's (in one line naming the
    part and the column names, never a value)."""
    if list(names) == list(first):
        return
    missing = [c for c in first if c not in names]
    extra = [c for c in names if c not in first]
    detail = (f"missing {missing}" if missing else "") + ("; " if missing and extra else "") + (
        f"extra {extra}" if extra else "") or "the same columns in another order"
    raise SourceError(f"{where!r}: part {part.name!r} does not have the first part's columns ({detail}); "
                      "every part of a dataset must have the same header")


def _read_polars(path: Path, *, kind: FileKind, columns: Sequence[str] | None = None, n_rows: int | None = None,
                 **options: Any) -> pl.DataFrame:
    text_columns: list[str] = []
    while True:
        with _scan(path, kind=kind, text_columns=tuple(text_columns), **options) as lazy:
            if columns is not None:
                lazy = lazy.select(_known_columns(path, lazy, columns))
            if n_rows is not None:
                lazy = lazy.head(n_rows)
            try:
                return _collect(path, kind, lazy.collect)
            except _TypeRetry as retry:
                if not _can_retype(retry, text_columns):
                    raise  # `_scan` turns it into a diagnosis
                text_columns.append(retry.column)  # type: ignore[arg-type]
                log.info("%s: column %r holds values beyond its inferred type; reading it as text", path, retry.column)


def iter_batches(path: Path, *, kind: FileKind, batch_size: int = 100_000, columns: Sequence[str] | None = None,
                 **options: object) -> Iterator[pd.DataFrame]:
    """Stream a file as pandas frames of at most `batch_size` rows; memory is bounded by a
    few batches (polars' streaming engine), not by the file. Options as in `read`."""
    if batch_size < 1:
        raise SourceError(f"{str(path)!r}: batch_size must be at least 1 (got {batch_size})")
    text_columns: list[str] = []
    while True:
        yielded = False
        with _scan(path, kind=kind, text_columns=tuple(text_columns), **options) as lazy:  # type: ignore[arg-type]
            if columns is not None:
                lazy = lazy.select(_known_columns(path, lazy, columns))
            try:
                batches = _collect(path, kind, lambda: iter(lazy.collect_batches(chunk_size=batch_size)))
                while (batch := _collect(path, kind, lambda: next(batches, None))) is not None:
                    yielded = True
                    yield to_pandas(batch)
                return
            except _TypeRetry as retry:
                if yielded or not _can_retype(retry, text_columns):
                    raise  # batches already handed out cannot be re-typed
                text_columns.append(retry.column)  # type: ignore[arg-type]


_MAX_RETYPES = 50


def _can_retype(retry: _TypeRetry, done: list[str]) -> bool:
    return retry.column is not None and retry.column not in done and len(done) < _MAX_RETYPES


def sample(path: Path, *, kind: FileKind, n_rows: int, seed: int | None = None, batch_size: int = 200_000,
           **options: object) -> pd.DataFrame:
    """A uniform sample of `n_rows` rows without replacement from a file of any size.

    Bottom-k sampling: every row gets an independent uniform key and the `n_rows` smallest
    keys win, which is exactly a uniform sample; it needs one pass and memory for
    `n_rows + batch_size` rows. (The sample is still private data, fitted under the same
    DP accounting.)"""
    if n_rows < 1:
        raise SourceError(f"{str(path)!r}: n_rows must be at least 1 (got {n_rows})")
    rng = np.random.default_rng(seed)
    kept: pd.DataFrame | None = None
    keys = np.empty(0)
    for batch in iter_batches(path, kind=kind, batch_size=batch_size, **options):
        frame = batch if kept is None else pd.concat([kept, batch], ignore_index=True)
        keys = np.concatenate([keys, rng.random(len(batch))])
        if len(frame) > n_rows:
            order = np.argpartition(keys, n_rows - 1)[:n_rows]
            order.sort()  # keep file order among the kept rows
            frame, keys = frame.iloc[order].reset_index(drop=True), keys[order]
        kept = frame
    if kept is None:
        raise SourceError(f"{str(path)!r}: the file has no rows")
    return kept


def to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """The one polars→pandas mapping used by every connector, so files and SQL agree:
    numpy dtypes (integers with nulls become float64, booleans with nulls object),
    datetimes as datetime64 (time zone kept), dates as datetime64 at midnight."""
    date_cols = [name for name, dtype in frame.schema.items() if dtype == pl.Date]
    if date_cols:
        frame = frame.with_columns(pl.col(date_cols).cast(pl.Datetime("us")))
    return frame.to_pandas(use_pyarrow_extension_array=False)


@contextmanager
def _scan(path: Path, *, kind: FileKind, text_columns: tuple[str, ...] = (), separator: str | None = None,
          encoding: str = "utf8", has_header: bool | None = None, quote_char: str | None = '"',
          null_values: Sequence[str] = NULL_VALUES, parse_dates: bool = True,
          check_rows: bool = True) -> Iterator[pl.LazyFrame]:
    where = str(path)
    check_file(path)
    if kind != "csv" and has_header is not None:
        raise SourceError(f"{where!r}: --header/--no-header (has_header) applies to CSV files only; "
                          f"a {kind} file names its columns itself")
    if kind != "csv" and encoding.lower().replace("-", "").replace("_", "") not in ("utf8", "utf8sig"):
        raise SourceError(f"{where!r}: --encoding applies to CSV files only; a {kind} file is read as it "
                          "stores itself (JSON lines must be UTF-8)")
    if kind == "parquet":
        lazy = _collect(path, kind, lambda: pl.scan_parquet(path))
        yield _checked_columns(str(path), lazy, _collect(path, kind, lazy.collect_schema))
        return
    if kind == "jsonl":
        try:
            # types from every line, not the first ones: one late record of another type
            # must neither fail the read nor be typed by where it sits in the file
            lazy = pl.scan_ndjson(path, infer_schema_length=None)
            lazy = _checked_columns(str(path), lazy, lazy.collect_schema())
            casts = _date_casts(lazy) if parse_dates else []
        except (pl.exceptions.PolarsError, OSError):
            raise SourceError(_jsonl_diagnosis(path)) from None
        yield lazy.with_columns(casts) if casts else lazy
        return
    with _utf8(path, encoding) as text_path:
        sep, header = layout(path, _head_text(text_path), encoding=encoding, separator=separator,
                             has_header=has_header, quote_char=quote_char, null_values=null_values)
        opts = dict(separator=sep, has_header=header, quote_char=quote_char)
        # types are inferred from the first rows (polars' inference is slow per row); a column
        # that later holds a value of another type is re-read as text (see `read`)
        lazy = pl.scan_csv(text_path, infer_schema_length=_INFER_ROWS, null_values=list(null_values),
                           schema_overrides={c: pl.String for c in text_columns} or None,
                           try_parse_dates=False, encoding="utf8", raise_if_empty=True, **opts)
        try:
            names = lazy.collect_schema().names()
            if check_rows:
                _check_field_counts(path, text_path, len(names), opts)
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError):
            raise SourceError(_csv_diagnosis(path, text_path, sep, quote_char, header)
                              or f"{where!r}: cannot be read as CSV (separator {sep!r}, header {header}); "
                                 "check the delimiter, quoting and encoding") from None
        check_names(path, names, encoding)
        try:
            lazy = _checked_columns(str(path), lazy, lazy.collect_schema())
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError):
            raise SourceError(f"{where!r}: cannot be read as CSV (separator {sep!r}, header {header}); "
                              "check the delimiter, quoting and encoding") from None
        if parse_dates:
            # ISO dates and times only, and only where EVERY value is one (as JSON lines):
            # polars' `try_parse_dates` also reads 15/03/2020 as day first, deciding a
            # column's day order from its first rows. Other written dates stay text, and
            # their format is the schema's (declared, proposed by `schema infer`, or
            # decided under DP: synthkit.dp_schema).
            try:
                casts = _date_casts(lazy)
            except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError):
                casts = []  # the collect below fails the same way and is diagnosed there
            if casts:
                lazy = lazy.with_columns(casts)
        try:
            yield lazy
        except _CsvFailure:
            raise SourceError(_csv_diagnosis(path, text_path, sep, quote_char, header)
                              or f"{where!r}: cannot be read as CSV (separator {sep!r}, header {header}); "
                                 "check the delimiter, quoting and encoding") from None
        except _TypeRetry as retry:
            raise SourceError(_csv_diagnosis(path, text_path, sep, quote_char, header)
                              or _type_message(path, retry)) from None


_ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"


def _date_casts(lazy: pl.LazyFrame) -> list[pl.Expr]:
    """JSON has no date type: text columns whose values are ALL ISO dates or times (every
    line, so no one record decides it by its place in the file) are parsed, offsets → UTC
    when they all have one; a column that mixes local times with offsets stays text, as
    it does through CSV's `try_parse_dates`."""
    text = [name for name, dtype in lazy.collect_schema().items() if dtype == pl.String]
    if text:  # only columns whose first rows are all ISO (or empty) need the check over every row
        head = lazy.select(text).head(_INFER_ROWS).collect()
        text = [n for n in text if bool(head[n].str.contains(_ISO_DATETIME).all())]
    if not text:
        return []
    offset = r"(Z|[+-]\d{2}:?\d{2})$"
    checks = lazy.select(  # aggregations skip nulls
        *[(pl.col(n).str.contains(_ISO_DATETIME).all() & (pl.col(n).count() > 0)).alias(f"iso{i}")
          for i, n in enumerate(text)],
        *[pl.col(n).str.contains(offset).any().alias(f"any{i}") for i, n in enumerate(text)],
        *[pl.col(n).str.contains(offset).all().alias(f"all{i}") for i, n in enumerate(text)],
    ).collect().row(0, named=True)
    return [pl.col(n).str.to_datetime(time_unit="us", time_zone="UTC" if checks[f"all{i}"] else None)
            for i, n in enumerate(text) if checks[f"iso{i}"] and (checks[f"all{i}"] or not checks[f"any{i}"])]


class _TypeRetry(Exception):
    """A CSV value did not fit the type inferred from the first rows; `column` is its name
    (schema, hence public) when polars named it."""

    def __init__(self, column: str | None) -> None:
        super().__init__(column)
        self.column = column


_PARSE_COLUMN = re.compile(r"at column '([^']*)'")


class _CsvFailure(Exception):
    """polars refused a CSV while collecting; `_scan` turns it into a diagnosis."""


def _type_message(path: Path, retry: _TypeRetry) -> str:
    where = f"column {retry.column!r}" if retry.column else "a column"
    return (f"{str(path)!r}: {where} holds values that fit no single type; "
            "clean the export or type the column as text")


def _collect(path: Path, kind: str, action):  # type: ignore[no-untyped-def]
    """Run a polars action, turning its errors (which quote values) into value-free ones."""
    try:
        return action()
    except FileNotFoundError:
        raise SourceError(f"{str(path)!r}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{str(path)!r}: not a file") from None
    except PermissionError:
        raise SourceError(f"{str(path)!r}: permission denied") from None
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError, UnicodeDecodeError) as err:
        text = str(err)
        if kind == "csv" and "could not parse" in text:
            match = _PARSE_COLUMN.search(text)
            raise _TypeRetry(match.group(1) if match else None) from None
        if kind == "csv":
            raise _CsvFailure() from None
        raise SourceError(f"{str(path)!r}: cannot be read as {kind} ({type(err).__name__}); "
                          "check the file type, delimiter and encoding") from None


def _known_columns(path: Path, lazy: pl.LazyFrame, columns: Sequence[str]) -> list[str]:
    names = lazy.collect_schema().names()
    missing = [c for c in columns if c not in names]
    if missing:
        raise SourceError(f"{str(path)!r}: unknown columns {missing}; the file has {names}")
    return list(columns)


@contextmanager
def _utf8(path: Path, encoding: str) -> Iterator[Path]:
    """The file itself when it is UTF-8, else a streamed UTF-8 copy in a private temp file
    (polars parses only UTF-8; transcoding in 1 MiB pieces keeps memory bounded)."""
    if is_utf8(encoding):
        yield path
        return
    decode = decoder(path, encoding)
    fd, tmp_name = tempfile.mkstemp(prefix="synthkit-utf8-", suffix=".csv")
    tmp = Path(tmp_name)
    try:
        line = 1
        with open(path, "rb") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            while chunk := src.read(1 << 20):
                try:
                    text = decode.decode(chunk)
                except UnicodeDecodeError:
                    raise SourceError(f"{str(path)!r}: line {line} is not valid {encoding}; "
                                      "pass the file's real encoding") from None
                line += text.count("\n")
                dst.write(text)
            dst.write(decode.decode(b"", final=True))
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _checked_columns(where: str, frame: pl.LazyFrame | pl.DataFrame, schema: pl.Schema) -> pl.LazyFrame | pl.DataFrame:
    """Refuse what no model can learn, naming the columns (files and SQL results alike);
    read whole numbers beyond 64 bits (long account or card numbers, or 1e30 written out)
    as text, which numpy and pandas can hold: such a column is then an identifier or is
    refused by the kind checks, instead of failing in Arrow."""
    if (wide := too_many_columns(where, len(schema))) is not None:
        raise SourceError(wide)
    nested = [n for n, d in schema.items() if isinstance(d, (pl.Struct, pl.List, pl.Array)) or d == pl.Object]
    if nested:
        raise SourceError(f"{where!r}: columns {nested[:_MAX_LINES_SHOWN]} hold nested objects or lists, which "
                          "cannot be learned; flatten them into one value per column (or leave them out)")
    binary = [n for n, d in schema.items() if d == pl.Binary]
    if binary:
        raise SourceError(f"{where!r}: columns {binary[:_MAX_LINES_SHOWN]} hold binary data (bytes, BLOB), which "
                          "cannot be learned; leave them out, or cast them to text in a --query")
    wide = [n for n, d in schema.items() if d in (pl.Int128, pl.UInt128)]
    return frame.with_columns(pl.col(wide).cast(pl.String)) if wide else frame


def _check_field_counts(path: Path, text_path: Path, n_fields: int, opts: dict) -> None:
    """Rows with fewer fields than the header: polars pads them with nulls silently, which
    would hide a broken export. A fast screen counts separators per physical line with
    polars (vectorised); only when some line disagrees (or quoted fields may hold
    separators) does the exact, slower check with Python's csv reader run."""
    sep = opts["separator"]
    lines = pl.scan_csv(text_path, has_header=False, separator="\x1f", quote_char=None, infer_schema=False,
                        new_columns=["line"], null_values=None, encoding="utf8")
    odd = lines.select((pl.col("line").str.count_matches(sep, literal=True) != n_fields - 1).sum()).collect().item()
    if not odd:
        return
    width, n_ragged, ragged = _ragged_rows(text_path, sep, opts["quote_char"])
    if n_ragged:
        raise SourceError(f"{str(path)!r}: {n_ragged} malformed rows whose field count differs from the "
                          f"first row's ({width}), at lines {_lines(ragged, n_ragged)}; fix the export or its delimiter")


def _ragged_rows(text_path: Path, sep: str, quote_char: str | None) -> tuple[int | None, int, list[int]]:
    """Exact count of records whose field count differs from the first record's, with the
    first few physical line numbers. Raises csv.Error on broken quoting."""
    ragged: list[int] = []
    n_ragged = 0
    width: int | None = None
    with open(text_path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=sep, quotechar=quote_char or '"', strict=True,
                            quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE)
        for record in reader:
            if not record:
                continue
            if width is None:
                width = len(record)
            elif len(record) != width:
                n_ragged += 1
                if len(ragged) < _MAX_LINES_SHOWN:
                    ragged.append(reader.line_num)
    return width, n_ragged, ragged


def _lines(lines: list[int], total: int) -> str:
    shown = ", ".join(map(str, lines))
    return shown + (f" and {total - len(lines)} more" if total > len(lines) else "")


def _csv_diagnosis(path: Path, text_path: Path, sep: str, quote_char: str | None, header: bool) -> str | None:
    """Find what is wrong with a CSV polars refused, by line number and count only."""
    where = str(path)
    bad_utf8: list[int] = []
    n_bad_utf8 = 0
    with open(text_path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                n_bad_utf8 += 1
                if len(bad_utf8) < _MAX_LINES_SHOWN:
                    bad_utf8.append(number)
    if n_bad_utf8:
        return (f"{where!r}: {n_bad_utf8} lines are not valid UTF-8 (lines {_lines(bad_utf8, n_bad_utf8)}); "
                "pass the file's encoding: --encoding latin-1 (or cp1252) on the command line, "
                "encoding='latin-1' in Python")
    try:
        width, n_ragged, ragged = _ragged_rows(text_path, sep, quote_char)
    except csv.Error:
        return (f"{where!r}: malformed quoting (an unterminated or stray quote); "
                "fix the export or pass quote_char=None")
    if n_ragged:
        return (f"{where!r}: {n_ragged} malformed rows whose field count differs from the first row's ({width}), "
                f"at lines {_lines(ragged, n_ragged)}; fix the export or its delimiter")
    return None


def _jsonl_diagnosis(path: Path) -> str:
    bad: list[int] = []
    n_bad = 0
    nested: list[int] = []
    n_nested = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                doc = json.loads(raw)
                if not isinstance(doc, dict):
                    raise ValueError
            except RecursionError:  # nested beyond Python's limit
                doc = {"": {}}
            except ValueError:
                n_bad += 1
                if len(bad) < _MAX_LINES_SHOWN:
                    bad.append(number)
                continue
            if any(isinstance(v, (dict, list)) for v in doc.values()):
                n_nested += 1
                if len(nested) < _MAX_LINES_SHOWN:
                    nested.append(number)
    if n_bad:
        return f"{str(path)!r}: {n_bad} lines are not JSON objects (lines {_lines(bad, n_bad)})"
    if n_nested:
        return (f"{str(path)!r}: {n_nested} lines hold nested objects or lists (lines {_lines(nested, n_nested)}), "
                "which cannot be learned; flatten them into one value per field")
    return f"{str(path)!r}: cannot be read as JSON lines (one JSON object per line)"


# ------------------------------------------------------------------ writing
@contextmanager
def atomic_path(path: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only on success."""
    if path.exists() and not overwrite:
        raise SourceError(f"{str(path)!r} already exists; choose another path or pass --overwrite")
    if path.is_dir():
        raise SourceError(f"{str(path)!r} is a folder; give a file path")
    # a hidden partial locked while it is written (synthkit.partials): flushed to disk and
    # renamed over `path` on success, removed on error; a killed writer's partial is removed
    # by the next write to `path`, a live writer's never
    from synthkit.partials import staged_file

    with staged_file(path) as tmp:
        yield tmp


def write_chunks(chunks: Iterable[pd.DataFrame], path: Path, *, kind: FileKind, overwrite: bool = False) -> int:
    """Stream chunks into one file atomically; memory is bounded by one chunk. Returns rows written."""
    n_rows = 0
    with atomic_path(path, overwrite=overwrite) as tmp:
        if kind == "parquet":
            writer: pq.ParquetWriter | None = None
            try:
                for i, chunk in enumerate(chunks):
                    table = pa.Table.from_pandas(_frame(chunk, path), preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(_conform(table, writer.schema, path, i))
                    n_rows += table.num_rows
                if writer is None:
                    raise SourceError(f"{str(path)!r}: nothing to write (no chunks)")
            finally:
                if writer is not None:
                    writer.close()
        else:
            with open(tmp, "wb") as f:
                first: pl.Schema | None = None
                for i, chunk in enumerate(chunks):
                    frame = _whole_seconds_text(pl.from_pandas(_frame(chunk, path))) if kind == "csv" else \
                        pl.from_pandas(_frame(chunk, path))
                    if first is None:
                        first = frame.schema
                    elif frame.columns != list(first.names()):
                        raise SourceError(f"{str(path)!r}: chunk {i} has different columns from the first chunk")
                    if kind == "csv":
                        frame.write_csv(f, include_header=i == 0,
                                        separator="\t" if path.suffix.lower() == ".tsv" else ",")
                    else:
                        frame.write_ndjson(f)
                    n_rows += frame.height
                if first is None:
                    raise SourceError(f"{str(path)!r}: nothing to write (no chunks)")
    return n_rows


def _whole_seconds_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Datetimes as ISO text with a fraction of a second only where a value has one:
    polars writes every datetime with nine digits of nanoseconds (2021-11-06T08:14:43.000000000),
    which no one wrote in the input (issue 17). An offset is kept."""
    casts = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            zone = "%:z" if dtype.time_zone else ""
            casts.append(pl.col(name).dt.to_string(f"%Y-%m-%dT%H:%M:%S%.f{zone}"))
    return frame.with_columns(casts) if casts else frame


def _frame(chunk: object, path: Path) -> pd.DataFrame:
    if not isinstance(chunk, pd.DataFrame):
        raise SourceError(f"{str(path)!r}: expected pandas DataFrames to write, got {type(chunk).__name__}")
    return chunk


def _conform(table: pa.Table, schema: pa.Schema, path: Path, index: int) -> pa.Table:
    if table.schema.names != schema.names:
        raise SourceError(f"{str(path)!r}: chunk {index} has different columns from the first chunk")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = [f.name for f, g in zip(table.schema, schema) if f.type != g.type]
        raise SourceError(f"{str(path)!r}: chunk {index} changes the type of columns {bad}") from None
