"""Read and write data: CSV and Parquet files (a later issue adds SQL, FHIR, camt.053).

Files are read through polars (fast, typed; dates parsed) and handed to synthkit as
pandas, the public API's frame type. Writes are atomic: data goes to a temporary file in
the target folder and is renamed when complete, so an interrupted write leaves no
partial file behind, and an existing target is never replaced without `overwrite=True`.
Errors name the source and the problem, never a value.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from synthkit.errors import SourceError

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(f"{str(path)!r}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    return fmt


def _no_sql_options(where: str, table: str | None, query: str | None) -> None:
    if table is not None or query is not None:
        raise SourceError(f"{where}: --table and --query apply to SQL sources only")


def read(uri: str | os.PathLike[str], *, table: str | None = None, query: str | None = None,
         separator: str | None = None, encoding: str = "utf8") -> pd.DataFrame:
    """Read a CSV or Parquet file into a pandas frame."""
    path = Path(uri)
    _no_sql_options(str(path), table, query)
    fmt = _format(path)
    if not path.is_file():
        raise SourceError(f"{str(path)!r}: no such file")
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(path)
        else:
            sep = separator or ("\t" if path.suffix.lower() == ".tsv" else ",")
            frame = pl.read_csv(path, separator=sep, encoding=encoding, try_parse_dates=True,
                                infer_schema_length=10_000, null_values=["", "NA", "N/A", "null", "NULL"])
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, UnicodeDecodeError,
            pa.ArrowInvalid, OSError) as err:
        raise SourceError(f"{str(path)!r}: cannot be read as {fmt} ({type(err).__name__}); "
                          "check the file type, delimiter and encoding") from None
    if frame.width == 0:
        raise SourceError(f"{str(path)!r}: the file has no columns")
    if any(not name.isprintable() for name in frame.columns):
        raise SourceError(f"{str(path)!r}: the header holds control or binary characters; "
                          f"is this a text {fmt.upper()} file in encoding {encoding!r}?")
    return frame.to_pandas(use_pyarrow_extension_array=False)


@contextmanager
def _atomic_target(path: Path, *, overwrite: bool) -> Iterator[Path]:
    if path.exists() and not overwrite:
        raise SourceError(f"{str(path)!r} already exists; choose another path or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write(frame: pd.DataFrame, uri: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write one frame atomically (CSV or Parquet by extension)."""
    return write_chunks([frame], uri, overwrite=overwrite)


def write_chunks(chunks: Iterable[pd.DataFrame], uri: str | os.PathLike[str], *, overwrite: bool = False,
                 table: str | None = None) -> Path:
    """Stream chunks into one file atomically; memory is bounded by one chunk."""
    path = Path(uri)
    _no_sql_options(str(path), table, None)
    fmt = _format(path)
    with _atomic_target(path, overwrite=overwrite) as tmp:
        if fmt == "parquet":
            writer = None
            try:
                for chunk in chunks:
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table.cast(writer.schema))
            finally:
                if writer is not None:
                    writer.close()
        else:
            header = True
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                for chunk in chunks:
                    chunk.to_csv(f, index=False, header=header)
                    header = False
    return path
