"""Connectors, SQL: SQLite (embedded) and PostgreSQL (a REAL server, never a mock).

PostgreSQL tests run when SYNTHKIT_TEST_POSTGRES_URL points at a server where the user may
create tables, e.g. the throwaway one that `scripts/postgres.sh` starts:

    export SYNTHKIT_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
import pytest

import connectors
from synthkit.errors import SourceError
from test_connectors_files import SECRET, assert_same, typed_frame

PG_URL = os.environ.get("SYNTHKIT_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(
    not PG_URL, reason="PostgreSQL tests need a server: export SYNTHKIT_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_pg)])
def db(request, tmp_path: Path):
    """A database URI and a fresh table name; PostgreSQL tables are dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'w.db'}", name
        return
    yield PG_URL, name
    _pg_execute(f'DROP TABLE IF EXISTS "{name}"')


def _pg_execute(sql: str) -> None:
    import adbc_driver_postgresql.dbapi as pg
    with pg.connect(PG_URL) as conn, conn.cursor() as cur:
        cur.execute(sql)
        conn.commit()


def _table_names(uri: str) -> list[str]:
    from connectors import sql
    return sql.tables(connectors.parse(uri))


def test_round_trip_keeps_values_types_nulls_dates_and_time_zones(db) -> None:
    uri, table = db
    original = typed_frame(n=300)
    connectors.write(original, uri, table=table)
    assert_same(connectors.read(uri, table=table), original)
    # a query's columns keep their types too (SQLite: declared types through a temp view)
    back = connectors.read(uri, query=f'SELECT "flag", "at", "day" FROM "{table}" ORDER BY "count", "amount"')
    assert str(back["at"].dt.tz) == "UTC" and back["day"].dt.tz is None
    assert set(back["flag"].dropna().map(type)) == {bool}


def test_streamed_chunks_make_one_table(db) -> None:
    uri, table = db
    original = typed_frame(n=1000, seed=2)
    connectors.write_chunks((original.iloc[i:i + 250] for i in range(0, 1000, 250)), uri, table=table)
    assert_same(connectors.read(uri, table=table), original)


def _failing(frame: pd.DataFrame, after: int):
    for i in range(0, len(frame), 100):
        if i // 100 == after:
            raise RuntimeError("injected failure")
        yield frame.iloc[i:i + 100]


def test_failed_write_leaves_no_table_and_keeps_the_old_one(db) -> None:
    uri, table = db
    frame = typed_frame(n=500)
    with pytest.raises(RuntimeError, match="injected"):
        connectors.write_chunks(_failing(frame, after=3), uri, table=table)
    assert table not in _table_names(uri)
    connectors.write(frame.iloc[:7], uri, table=table)
    with pytest.raises(RuntimeError, match="injected"):
        connectors.write_chunks(_failing(frame, after=2), uri, table=table, overwrite=True)
    assert len(connectors.read(uri, table=table)) == 7


def test_existing_table_needs_overwrite(db) -> None:
    uri, table = db
    connectors.write(pd.DataFrame({"a": [1, 2]}), uri, table=table)
    with pytest.raises(SourceError, match="already exists.*--overwrite"):
        connectors.write(pd.DataFrame({"a": [3]}), uri, table=table)
    connectors.write(pd.DataFrame({"a": [3]}), uri, table=table, overwrite=True)
    assert connectors.read(uri, table=table)["a"].tolist() == [3]


def test_queries_are_read_only(db) -> None:
    uri, table = db
    connectors.write(pd.DataFrame({"a": [1, 2]}), uri, table=table)
    with pytest.raises(SourceError, match="read only|change the database"):
        connectors.read(uri, query=f'DELETE FROM "{table}" RETURNING *' if uri.startswith("postgres")
                        else f'DELETE FROM "{table}"')
    assert connectors.read(uri, table=table)["a"].tolist() == [1, 2]


def test_unknown_table_lists_the_tables(db) -> None:
    uri, table = db
    connectors.write(pd.DataFrame({"a": [1]}), uri, table=table)
    with pytest.raises(SourceError, match=f"no table 'nope'; tables there: .*{table}"):
        connectors.read(uri, table="nope")


def test_query_errors_never_quote_values(db) -> None:
    uri, _ = db
    bad_cast = f"SELECT CAST('{SECRET}' AS INTEGER) + 1 AS x FROM nonexistent_{SECRET}"
    with pytest.raises(SourceError) as err:
        connectors.read(uri, query=bad_cast)
    assert SECRET not in str(err.value)


def test_table_and_query_are_exclusive(db) -> None:
    uri, table = db
    with pytest.raises(SourceError, match="exactly one of --table or --query"):
        connectors.read(uri)
    with pytest.raises(SourceError, match="exactly one of --table or --query"):
        connectors.read(uri, table=table, query="select 1")


def test_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(SourceError, match="no such SQLite database file"):
        connectors.read(f"sqlite:///{path}", table="t")
    assert not path.exists()


def test_not_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "fake.db"
    path.write_text("a,b\n1,2\n" * 100)
    with pytest.raises(SourceError, match="not a SQLite database"):
        connectors.read(f"sqlite:///{path}", table="t")


def test_read_source_of_a_table_infers_kinds_only(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'w.db'}"
    connectors.write(typed_frame(n=100), uri, table="visits")
    source = connectors.read_source(uri, table="visits")
    assert source.kind == "sqlite" and list(source.tables) == ["visits"]
    column = source.schemas["visits"].column("at")
    assert column.kind == "datetime" and column.bounds is None


# ------------------------------------------------------------------ PostgreSQL only
def _with_password(url: str, password: str | None) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    netloc = f"{user}{':' + password if password is not None else ''}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@needs_pg
def test_failed_login_is_one_line_without_the_password() -> None:
    wrong = _with_password(PG_URL, "wrong-" + SECRET)
    with pytest.raises(SourceError) as err:
        connectors.read(wrong, query="select 1")
    message = str(err.value)
    assert "login failed" in message and SECRET not in message
    assert urlsplit(PG_URL).password not in message and "@" not in message


@needs_pg
def test_password_from_pgpass_file_and_environment(tmp_path: Path, monkeypatch) -> None:
    parts = urlsplit(PG_URL)
    bare = _with_password(PG_URL, None)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "absent"))
    with pytest.raises(SourceError, match="login failed|password"):
        connectors.read(bare, query="select 1 as one")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{parts.hostname}:{parts.port}:*:{parts.username}:{parts.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert connectors.read(bare, query="select 1 as one")["one"].tolist() == [1]
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "absent"))
    monkeypatch.setenv("PGPASSWORD", parts.password)
    assert connectors.read(bare, query="select 2 as two")["two"].tolist() == [2]


@needs_pg
def test_schema_qualified_tables_and_numeric_columns() -> None:
    schema = f"s_{uuid.uuid4().hex[:8]}"
    _pg_execute(f"CREATE SCHEMA {schema}")
    try:
        _pg_execute(f"CREATE TABLE {schema}.amounts (amount numeric(12, 2), note varchar(10))")
        _pg_execute(f"INSERT INTO {schema}.amounts VALUES (12.34, 'a'), (NULL, NULL), (-0.5, 'b')")
        frame = connectors.read(PG_URL, table=f"{schema}.amounts")
        assert frame["amount"].dtype == np.float64
        np.testing.assert_allclose(frame["amount"].to_numpy(), [12.34, np.nan, -0.5], equal_nan=True)
        connectors.write(frame, PG_URL, table=f"{schema}.copy")
        assert connectors.read(PG_URL, table=f"{schema}.copy")["note"].tolist() == ["a", None, "b"]
    finally:
        _pg_execute(f"DROP SCHEMA {schema} CASCADE")


@needs_pg
def test_unknown_database_is_named_as_the_problem() -> None:
    parts = urlsplit(PG_URL)
    missing = urlunsplit((parts.scheme, parts.netloc, "/no_such_db_4242", "", ""))
    with pytest.raises(SourceError, match="does not exist") as err:
        connectors.read(missing, query="select 1")
    assert parts.password not in str(err.value)
