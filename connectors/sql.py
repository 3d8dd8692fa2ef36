"""SQL sources and sinks: SQLite (embedded) and PostgreSQL, through ADBC.

Why ADBC (`adbc-driver-sqlite`, `adbc-driver-postgresql`): both read and write Arrow
directly (PostgreSQL through binary COPY), so no per-row Python runs on either side, and
the same DBAPI shape covers both databases. Measured on the 2-core dev machine with
200,000 rows x 20 columns (see benchmarks/bench_connectors.py for the 1,000,000-row run):

| | read rows/s | write rows/s |
|---|---|---|
| ADBC SQLite | 310,000 | 327,000 |
| connectorx SQLite (read only) | 246,000 | — |
| pandas + sqlite3 | 68,000 | 84,000 |
| ADBC PostgreSQL | 319,000 | 144,000 |
| connectorx PostgreSQL (read only) | 301,000 | — |
| psycopg 3 (fetchall / COPY rows) | 95,000 | 67,000 |

connectorx reads about as fast but cannot write; SQLAlchemy + psycopg is 3x slower on
reads and 2x on writes. The ADBC SQLite driver bundles SQLite, so nothing else is needed.

Credentials: the PostgreSQL driver is libpq, so a password may come from the URI, from
the `PGPASSWORD` environment variable or from a `.pgpass` file (`PGPASSFILE` or
`~/.pgpass`), exactly as with psql. A password in the URI is visible to other users in
the process list, so a warning recommends the other two. Credentials are never logged
and never reach an error message: driver messages can quote the URI or a data value
(`invalid input syntax ... "value"`), so errors are classified by SQLSTATE and rewritten.

Reads run read-only (SQLite opened with mode=ro; PostgreSQL transactions READ ONLY), so
a `--query` cannot change the database. Writes are one transaction: the table is created
(after dropping the old one when `overwrite=True`), every chunk is appended, and only the
final COMMIT makes it visible; a failure rolls everything back, leaving no half-filled
table. SQLite has no date, time or boolean storage types, so tables written here declare
BOOLEAN / DATE / TIMESTAMP / TIMESTAMPTZ and reads convert those columns back.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote

import pandas as pd
import polars as pl
import pyarrow as pa

from connectors.files import _checked_columns, to_pandas
from connectors.uri import Location
from synthkit.errors import SourceError

log = logging.getLogger(__name__)

_TMP_VIEW = "_synthkit_query"
_WARNED: set[str] = set()
_MAX_TABLES_SHOWN = 20


# ------------------------------------------------------------------ key-range partitions
_PART_ALIAS = "_synthkit_part"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRanges:
    """`partitions` ranges of the unit key `key`: range i holds the rows whose key is above
    upper[i-1] and at most upper[i] (the last has no upper bound). Every row of one key
    value satisfies exactly one range's condition, so a privacy unit never straddles two
    partitions, which is what lets each partition be bounded to k rows per unit on its own
    (synthkit.distributed.stats). A NULL key is no unit: rows without one would be many
    people counted as one unit of k rows, so they are refused (`key_ranges`, `read_range`),
    as the single-process fit refuses a missing entity key. Range 0's condition still
    selects them, so that a NULL key written after `key_ranges` ran is refused by
    `read_range` instead of silently left out.

    The bounds are key values (private): they stay out of repr, logs and errors, and reach
    the database only as bound parameters, never inside the SQL text. There are always
    exactly `partitions` ranges, some empty when the table has fewer distinct keys, so the
    number of ranges says nothing about the number of units."""

    key: str
    partitions: int
    upper: tuple[Any, ...] = dataclass_field(repr=False)

    def condition(self, index: int, *, placeholder: Callable[[int], str]) -> tuple[str, list[Any]]:
        """The WHERE condition of range `index` and its parameters."""
        if not 0 <= index < self.partitions:
            raise SourceError(f"partition {index} is outside 0..{self.partitions - 1}")
        k = _quote(self.key)
        if not self.upper:  # one range, or a table without a non-null key: all rows in range 0
            return ("1=1" if index == 0 else "1=0"), []
        params: list[Any] = []
        parts = []
        if index > 0:
            params.append(self.upper[index - 1])
            parts.append(f"{k} > {placeholder(len(params))}")
        if index < self.partitions - 1:
            params.append(self.upper[index])
            parts.append(f"{k} <= {placeholder(len(params))}")
        cond = " AND ".join(parts)
        return (f"({k} IS NULL OR {cond})" if index == 0 else cond), params


def _placeholder(loc: Location) -> Callable[[int], str]:
    return (lambda i: "?") if loc.kind == "sqlite" else (lambda i: f"${i}")


def key_ranges(loc: Location, *, table: str | None = None, query: str | None = None, key: str,
               partitions: int) -> KeyRanges:
    """Split the source into `partitions` ranges of `key` holding about equal numbers of
    DISTINCT keys (units), from one query: ntile over the distinct keys in the database's
    own order (the order its `<=` compares by). The bounds never leave the returned value
    (see KeyRanges). A NULL key is refused (see KeyRanges)."""
    if (table is None) == (query is None):
        raise SourceError(f"{loc.redacted!r}: a SQL source needs exactly one of --table or --query")
    if not (isinstance(partitions, int) and not isinstance(partitions, bool) and 1 <= partitions <= 100_000):
        raise SourceError(f"{loc.redacted!r}: partitions must be an integer in 1..100,000, got {partitions!r}")
    if partitions == 1:
        return KeyRanges(key=key, partitions=1, upper=())
    k = _quote(key)
    with _connect(loc, read_only=True) as conn:
        with conn.cursor() as cur:
            source = _partition_source(loc, cur, conn, table=table, query=query)
            names = _column_names(cur, source)
            if key not in names:
                raise SourceError(f"{loc.redacted!r}: the partition key {key!r} is not a column of the source; "
                                  f"its columns are {names[:20]}")
            cur.execute(f"SELECT 1 FROM {source} WHERE {k} IS NULL LIMIT 1")
            if cur.fetchall():
                raise _null_key_error(loc, key)
            cur.execute(f"SELECT max(k) FROM (SELECT k, ntile({int(partitions)}) OVER (ORDER BY k) AS t FROM "
                        f"(SELECT DISTINCT {k} AS k FROM {source} WHERE {k} IS NOT NULL) AS d) AS x "
                        "GROUP BY t ORDER BY t")
            tops = [row[0] for row in cur.fetchall()]
        if loc.kind == "postgresql":
            conn.rollback()
    upper = tops[:-1]
    if upper:  # fewer distinct keys than partitions: the last ranges are empty
        upper += [upper[-1]] * (partitions - 1 - len(upper))
        # ... unless there was exactly one distinct key: then only range 0 may hold it
    elif tops:
        upper = [tops[0]] * (partitions - 1)
    return KeyRanges(key=key, partitions=partitions, upper=tuple(upper))


def _partition_source(loc: Location, cur: Any, conn: Any, *, table: str | None, query: str | None) -> str:
    """The FROM item of a partitioned read: the table, or the query as a subquery."""
    if table is not None:
        schema_name, name = _split(loc, table)
        if not _exists(loc, cur, schema_name, name):
            raise _unknown_table(loc, conn, table)
        return _qualified(schema_name, name) if loc.kind == "postgresql" else _quote(name)
    return f"({_strip_query(loc, query)}) AS {_PART_ALIAS}"


def _column_names(cur: Any, source: str) -> list[str]:
    cur.execute(f"SELECT * FROM {source} LIMIT 0")
    return [str(d[0]) for d in cur.description or []]


def read_range(loc: Location, ranges: KeyRanges, index: int, *, table: str | None = None,
               query: str | None = None) -> pd.DataFrame:
    """The rows of partition `index` of `ranges` (whole units), typed as `read` types them.
    A row without a key is refused (see KeyRanges): no partial frame is returned."""
    where = ranges.condition(index, placeholder=_placeholder(loc))
    with _connect(loc, read_only=True) as conn:
        if loc.kind == "sqlite":
            arrow, decl = _sqlite_read(loc, conn, table=table, query=query, where=where)
        else:
            arrow, decl = _postgres_read(loc, conn, table=table, query=query, where=where)
    if ranges.key in arrow.column_names and arrow.column(ranges.key).null_count:
        raise _null_key_error(loc, ranges.key)
    return to_pandas(_convert(loc, arrow, decl))


def _null_key_error(loc: Location, key: str) -> SourceError:
    """The refusal of a NULL unit key (the single-process fit's words, synthkit.table): no
    value and no count of rows, only that some exist."""
    return SourceError(f"{loc.redacted!r}: entity_key column {key!r} has missing values; every row needs its "
                       f"unit's key: fill them, or leave those rows out with --query (... WHERE {_quote(key)} "
                       "IS NOT NULL)")


# ------------------------------------------------------------------ public
def read(loc: Location, *, table: str | None = None, query: str | None = None) -> pd.DataFrame:
    """Read a whole table or the result of a query into pandas."""
    if (table is None) == (query is None):
        raise SourceError(f"{loc.redacted!r}: a SQL source needs exactly one of --table or --query")
    with _connect(loc, read_only=True) as conn:
        if loc.kind == "sqlite":
            arrow, decl = _sqlite_read(loc, conn, table=table, query=query)
        else:
            arrow, decl = _postgres_read(loc, conn, table=table, query=query)
    return to_pandas(_convert(loc, arrow, decl))


def tables(loc: Location) -> list[str]:
    """Names of the tables (and views) a reader can see, for error messages and listings."""
    with _connect(loc, read_only=True) as conn:
        return _table_names(loc, conn)


def write_chunks(chunks: Iterable[pd.DataFrame], loc: Location, *, table: str | None, overwrite: bool = False) -> int:
    """Write chunks into one new table in one transaction; returns the number of rows."""
    if not table:
        raise SourceError(f"{loc.redacted!r}: writing to a database needs --table NAME")
    schema_name, name = _split(loc, table)
    n_rows = 0
    with _connect(loc, read_only=False) as conn:
        try:
            with conn.cursor() as cur:
                if _exists(loc, cur, schema_name, name):
                    if not overwrite:
                        raise SourceError(f"{loc.redacted!r}: table {table!r} already exists; "
                                          "choose another --table or pass --overwrite")
                    cur.execute(f"DROP TABLE {_qualified(schema_name, name)}")
                first: pa.Schema | None = None
                for i, chunk in enumerate(chunks):
                    if not isinstance(chunk, pd.DataFrame):
                        raise SourceError(f"{loc.redacted!r}: expected pandas DataFrames to write, "
                                          f"got {type(chunk).__name__}")
                    data = pa.Table.from_pandas(chunk, preserve_index=False)
                    if first is None:
                        first = _storable(loc, data.schema)
                        data = data.cast(first)
                        if loc.kind == "sqlite":
                            cur.execute(_sqlite_create(name, first))
                            mode = "append"
                        else:
                            mode = "create"
                    else:
                        data = _conform(loc, data, first, i)
                        mode = "append"
                    cur.adbc_ingest(name, data, mode=mode, db_schema_name=schema_name)
                    n_rows += data.num_rows
                if first is None:
                    raise SourceError(f"{loc.redacted!r}: nothing to write (no chunks)")
            conn.commit()
        except BaseException as err:
            _rollback(conn)
            if isinstance(err, _driver_errors()):
                raise _error(loc, err, action=f"writing table {table!r}") from None
            raise
    log.info("wrote %d rows to table %r of %s", n_rows, table, loc.redacted)
    return n_rows


# ------------------------------------------------------------------ connections
def _driver_errors() -> tuple[type[BaseException], ...]:
    import adbc_driver_manager
    return (adbc_driver_manager.Error,)


@contextmanager
def _connect(loc: Location, *, read_only: bool) -> Iterator[Any]:
    if loc.kind == "sqlite":
        import adbc_driver_sqlite.dbapi as driver
        assert loc.path is not None
        if read_only:
            if not loc.path.is_file():
                raise SourceError(f"{loc.redacted!r}: no such SQLite database file")
            target = f"file:{quote(str(loc.path.resolve()))}?mode=ro"
        else:
            loc.path.parent.mkdir(parents=True, exist_ok=True)
            target = str(loc.path)
    else:
        import adbc_driver_postgresql.dbapi as driver
        assert loc.connect is not None
        if loc.has_password and loc.redacted not in _WARNED:
            _WARNED.add(loc.redacted)
            log.warning("%s: the password is in the URI, where other users of this machine can see it in the "
                        "process list; prefer PGPASSWORD or a ~/.pgpass file", loc.redacted)
        target = loc.connect
    try:
        conn = driver.connect(target)
    except _driver_errors() as err:
        raise _error(loc, err, action="connecting") from None
    try:
        if read_only and loc.kind == "postgresql":
            with conn.cursor() as cur:
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            conn.commit()
        yield conn
    except _driver_errors() as err:
        _rollback(conn)
        raise _error(loc, err, action="reading") from None
    finally:
        try:
            conn.close()
        except _driver_errors():
            pass


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # the connection may already be gone; the server rolls back itself
        pass


# ------------------------------------------------------------------ reading
def _sqlite_read(loc: Location, conn: Any, *, table: str | None, query: str | None,
                 where: tuple[str, list[Any]] | None = None) -> tuple[pa.Table, dict[str, str]]:
    cond, params = where if where is not None else ("1=1", [])
    with conn.cursor() as cur:
        if table is not None:
            _, name = _split(loc, table)
            if not _exists(loc, cur, None, name):
                raise _unknown_table(loc, conn, table)
            source = _quote(name)
        else:
            # a temporary view exposes the declared type of every column the query selects
            text = _strip_query(loc, query)
            cur.execute(f"DROP VIEW IF EXISTS temp.{_TMP_VIEW}")
            try:
                cur.execute(f"CREATE TEMP VIEW {_TMP_VIEW} AS {text}")
            except _driver_errors():
                # not a plain SELECT (a CTE with DML, a PRAGMA, a write): run it as it is, so
                # the read-only connection or the parser gives the real reason
                if where is not None:
                    raise SourceError(f"{loc.redacted!r}: a partitioned read needs a plain SELECT --query") from None
                cur.execute(text)
                return cur.fetch_arrow_table(), {}
            source = _TMP_VIEW
        cur.execute(f"PRAGMA table_info({source})")
        decl = {str(row[1]): str(row[2] or "").upper() for row in cur.fetchall()}
        # the driver types each column from its first batch of rows: a column whose first
        # 1,024 values are null and later ones text would fail (SQLite types per value), so
        # the whole result is read as one batch
        cur.execute(f"SELECT count(*) FROM {source} WHERE {cond}", parameters=params or None)
        n_rows = int(cur.fetchone()[0])
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(min(max(n_rows, 1024), 2**30))})
        cur.execute(f"SELECT * FROM {source} WHERE {cond}", parameters=params or None)
        try:
            return cur.fetch_arrow_table(), decl
        except _driver_errors():
            raise SourceError(f"{loc.redacted!r}: a column holds values of mixed types (SQLite allows text in a "
                              "number column); cast it in a --query, e.g. SELECT CAST(col AS TEXT) AS col ...") from None


def _postgres_read(loc: Location, conn: Any, *, table: str | None, query: str | None,
                   where: tuple[str, list[Any]] | None = None) -> tuple[pa.Table, dict[str, str]]:
    with conn.cursor() as cur:
        if table is not None:
            schema_name, name = _split(loc, table)
            if not _exists(loc, cur, schema_name, name):
                raise _unknown_table(loc, conn, table)
            sql = f"SELECT * FROM {_qualified(schema_name, name)}"
        else:
            sql = _strip_query(loc, query)
        if where is not None:
            sql = f"SELECT * FROM ({sql}) AS {_PART_ALIAS} WHERE {where[0]}"
        cur.execute(sql, parameters=(where[1] or None) if where is not None else None)
        result = cur.fetch_arrow_table()
    conn.rollback()  # end the read-only transaction
    return result, {}


_LEADING_COMMENTS = re.compile(r"^(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*", re.DOTALL)
_READ_STATEMENTS = ("select", "with", "values", "table", "(")


def _strip_query(loc: Location, query: str | None) -> str:
    """The query when it is ONE reading statement. A read-only connection does not stop
    everything: SQLite's ATTACH creates a database file and PRAGMA can change settings,
    and a second statement after a `;` may run too; so only SELECT / WITH / VALUES (and
    PostgreSQL's TABLE) pass, alone."""
    text = (query or "").strip().rstrip(";").strip()
    if not text:
        raise SourceError(f"{loc.redacted!r}: --query is empty")
    body = _LEADING_COMMENTS.sub("", text, count=1)
    first = re.match(r"\(|[A-Za-z]+", body)
    keyword = first.group(0).lower() if first else ""
    if keyword not in _READ_STATEMENTS:
        shown = keyword.upper() if keyword.isalpha() and len(keyword) <= 20 else "other"
        raise SourceError(f"{loc.redacted!r}: --query must be one SELECT statement (or WITH ... SELECT, VALUES), "
                          f"got a statement starting with {shown}; sources are read only, never changed or attached")
    if _has_second_statement(text):
        raise SourceError(f"{loc.redacted!r}: --query must be one statement; remove the ';' and what follows it")
    return text


def _has_second_statement(text: str) -> bool:
    """A `;` outside quotes and comments."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in ("'", '"', "`"):
            end = text.find(ch, i + 1)
            while end != -1 and end + 1 < n and text[end + 1] == ch:  # doubled quote inside
                end = text.find(ch, end + 2)
            if end == -1:
                return False  # unterminated: the parser names it
            i = end + 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif ch == ";":
            return True
        else:
            i += 1
    return False


def _convert(loc: Location, arrow: pa.Table, decl: dict[str, str]) -> pl.DataFrame:
    """Arrow from the driver → polars with synthkit's types: PostgreSQL numeric → float,
    SQLite's declared BOOLEAN/DATE/TIMESTAMP[TZ] text or integers → real types."""
    columns = []
    for field, column in zip(arrow.schema, arrow.columns):
        if isinstance(field.type, pa.BaseExtensionType):  # e.g. PostgreSQL numeric: text storage
            column = pa.chunked_array([c.storage for c in column.chunks], type=field.type.storage_type)
        columns.append(column)
    table = pa.Table.from_arrays(columns, names=arrow.schema.names)
    try:
        frame = pl.from_arrow(table)
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError):
        raise SourceError(f"{loc.redacted!r}: the result has a column type synthkit cannot read; "
                          "cast it in a --query (e.g. to text or a number)") from None
    assert isinstance(frame, pl.DataFrame)
    frame = _checked_columns(loc.redacted, frame, frame.schema)  # type: ignore[assignment]
    casts = []
    for field in arrow.schema:
        name = field.name
        pg_type = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
        if pg_type == "numeric":
            casts.append(pl.col(name).cast(pl.Float64, strict=False))
        kind = decl.get(name, "")
        dtype = frame.schema[name]
        if not kind or dtype not in (pl.String, pl.Int64):
            continue
        if kind in ("BOOLEAN", "BOOL") and dtype == pl.Int64:
            casts.append(pl.col(name).cast(pl.Boolean))
        elif dtype == pl.String and kind == "DATE":
            casts.append(pl.col(name).str.to_date(strict=False))
        elif dtype == pl.String and kind in ("TIMESTAMP", "DATETIME"):
            casts.append(pl.col(name).str.to_datetime(time_unit="us", strict=False))
        elif dtype == pl.String and kind in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
            casts.append(pl.col(name).str.to_datetime(time_unit="us", strict=False).dt.replace_time_zone("UTC"))
    if casts:
        converted = frame.with_columns(casts)
        lost = [c for c in frame.columns if converted[c].null_count() > frame[c].null_count()]
        if lost:
            log.warning("%s: columns %s hold values that do not match their declared type; they are read as text",
                        loc.redacted, lost)
            converted = converted.with_columns(frame.select(lost))
        frame = converted
    return frame


# ------------------------------------------------------------------ writing
def _storable(loc: Location, schema: pa.Schema) -> pa.Schema:
    """Arrow types every driver can store: null-typed (all-missing) columns become text,
    nanosecond times become microseconds (what both databases keep)."""
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_null(t):
            t = pa.string()
        elif pa.types.is_timestamp(t) and t.unit == "ns":
            t = pa.timestamp("us", tz=t.tz)
        elif pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_dictionary(t):
            t = t.value_type
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def _conform(loc: Location, data: pa.Table, schema: pa.Schema, index: int) -> pa.Table:
    if data.schema.names != schema.names:
        raise SourceError(f"{loc.redacted!r}: chunk {index} has different columns from the first chunk")
    try:
        return data.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = [f.name for f, g in zip(data.schema, schema) if f.type != g.type]
        raise SourceError(f"{loc.redacted!r}: chunk {index} changes the type of columns {bad}") from None


def _sqlite_create(name: str, schema: pa.Schema) -> str:
    def decl(t: pa.DataType) -> str:
        if pa.types.is_boolean(t):
            return "BOOLEAN"
        if pa.types.is_integer(t):
            return "INTEGER"
        if pa.types.is_floating(t) or pa.types.is_decimal(t):
            return "REAL"
        if pa.types.is_timestamp(t):
            return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
        if pa.types.is_date(t):
            return "DATE"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "TEXT"
        return "BLOB"
    cols = ", ".join(f"{_quote(f.name)} {decl(f.type)}" for f in schema)
    return f"CREATE TABLE {_quote(name)} ({cols})"


# ------------------------------------------------------------------ names
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _split(loc: Location, table: str) -> tuple[str | None, str]:
    """`schema.table` (PostgreSQL) or `table`; a name with a dot can be written "a.b" quoted."""
    text = table.strip()
    if not text or "\x00" in text:
        raise SourceError(f"{loc.redacted!r}: invalid table name")
    if text.startswith('"') and text.endswith('"') and len(text) > 1:
        return None, text[1:-1].replace('""', '"')
    if "." in text and loc.kind == "postgresql":
        schema_name, _, name = text.partition(".")
        if schema_name and name and _PLAIN.match(schema_name) and _PLAIN.match(name):
            return schema_name, name
    return None, text


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema_name: str | None, name: str) -> str:
    return (f"{_quote(schema_name)}." if schema_name else "") + _quote(name)


def _exists(loc: Location, cur: Any, schema_name: str | None, name: str) -> bool:
    if loc.kind == "sqlite":
        cur.execute("SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?",
                    parameters=(name,))
    else:
        cur.execute("SELECT to_regclass($1) IS NOT NULL", parameters=(_qualified(schema_name, name),))
    return bool(cur.fetchone()[0])


def _table_names(loc: Location, conn: Any) -> list[str]:
    with conn.cursor() as cur:
        if loc.kind == "sqlite":
            cur.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                        "AND name NOT LIKE 'sqlite_%' ORDER BY name")
        else:
            cur.execute("SELECT CASE WHEN table_schema = 'public' THEN table_name "
                        "ELSE table_schema || '.' || table_name END FROM information_schema.tables "
                        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
        return [str(r[0]) for r in cur.fetchall()]


def _unknown_table(loc: Location, conn: Any, table: str) -> SourceError:
    names = _table_names(loc, conn)
    shown = names[:_MAX_TABLES_SHOWN] + (["..."] if len(names) > _MAX_TABLES_SHOWN else [])
    return SourceError(f"{loc.redacted!r}: no table {table!r}; tables there: {shown or 'none'}")


# ------------------------------------------------------------------ errors
_SQLSTATE = {
    "28P01": "login failed: wrong password for this user (set it in PGPASSWORD, ~/.pgpass or the URI)",
    "28000": "login refused for this user or database (check the user name and pg_hba.conf)",
    "3D000": "the database does not exist",
    "42P01": "the query names a table that does not exist",
    "42703": "the query names a column that does not exist",
    "42601": "the query has a syntax error",
    "42501": "permission denied",
    "25006": "the query tries to change the database; sources are read only",
    "57014": "the query was cancelled (statement timeout)",
    "53100": "the database server is out of disk space",
    "22P02": "a value does not fit the column's type",
    "23505": "a unique constraint was violated",
}
_MESSAGE_CLUES = (
    ("password authentication failed", "login failed: wrong user or password (set it in PGPASSWORD, ~/.pgpass or the URI)"),
    ("no password supplied", "login failed: the server wants a password; set PGPASSWORD, a ~/.pgpass entry or put it in the URI"),
    ("does not exist", "the database or user does not exist"),
    ("connection refused", "cannot connect: nothing listens at that host and port (is the server running?)"),
    ("could not translate host name", "cannot connect: unknown host name"),
    ("timeout expired", "cannot connect: the server did not answer in time"),
    ("no such table", "the query names a table that does not exist"),
    ("no such column", "the query names a column that does not exist"),
    ("syntax error", "the query has a syntax error"),
    ("readonly database", "the query tries to change the database; sources are read only"),
    ("file is not a database", "the file is not a SQLite database"),
    ("database is locked", "the SQLite database is locked by another process"),
    ("unable to open", "the SQLite database file cannot be opened"),
)


def _error(loc: Location, err: BaseException, *, action: str) -> SourceError:
    """A one-line error naming the (redacted) source and the problem; the driver's own
    message is only matched against known clues, never repeated (it may hold values or
    the connection string)."""
    state = getattr(err, "sqlstate", None)
    text = str(err).lower()
    problem = _SQLSTATE.get(state or "")
    if problem is None:
        problem = next((p for clue, p in _MESSAGE_CLUES if clue in text), None)
    if problem is None:
        problem = f"the database refused the operation ({type(err).__name__}" + (f", SQLSTATE {state})" if state else ")")
    return SourceError(f"{loc.redacted!r}: {action}: {problem}")
