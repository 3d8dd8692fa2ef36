"""Connectors, files: CSV/Parquet/JSON-lines round trips (values, types, nulls, dates, time
zones), CSV dialects and header detection, malformed input reported by line number and
count without values, batched/sampled reading, atomic writes under injected failures,
URI parsing and redaction, and the `synthkit connectors` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import connectors
from synthkit.errors import SourceError
from synthkit.schema import infer_schema

SECRET = "SECRET_CELL_VALUE_4242"


def typed_frame(n: int = 50, seed: int = 0) -> pd.DataFrame:
    """Every type the connectors must keep, with nulls in every column."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "count": rng.integers(-1000, 1000, n).astype("int64"),
        "amount": rng.normal(100, 30, n).round(6),
        "label": rng.choice(["alpha", "béta", "with,comma", 'with "quote"'], n).astype(object),
        "flag": rng.choice([True, False], n),
        "day": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        # instants across a DST change, written from a local zone
        "at": (pd.Timestamp("2024-03-30T12:00:00", tz="Europe/Berlin")
               + pd.to_timedelta(rng.integers(0, 48 * 3600, n), unit="s")).tz_convert("UTC"),
    })
    frame["count_nullable"] = frame["count"].astype("float64")
    frame["flag"] = frame["flag"].astype(object)
    for col in frame.columns:
        frame.loc[frame.index[rng.random(n) < 0.15], col] = None
    frame["count"] = frame["count"].fillna(0).astype("int64")  # one integer column without nulls
    return frame


def assert_same(back: pd.DataFrame, original: pd.DataFrame) -> None:
    assert list(back.columns) == list(original.columns)
    assert len(back) == len(original)
    assert back["count"].dtype == np.int64
    assert back["amount"].dtype == np.float64 and back["count_nullable"].dtype == np.float64
    np.testing.assert_array_equal(back["count"].to_numpy(), original["count"].to_numpy())
    np.testing.assert_allclose(back["amount"].to_numpy(float), original["amount"].to_numpy(float), equal_nan=True)
    assert back["label"].tolist() == [None if pd.isna(v) else v for v in original["label"]]
    assert [None if pd.isna(v) else bool(v) for v in back["flag"]] == [None if pd.isna(v) else bool(v) for v in original["flag"]]
    assert pd.api.types.is_datetime64_any_dtype(back["day"]) and back["day"].dt.tz is None
    assert (back["day"].isna() == original["day"].isna()).all()
    assert (back["day"].dropna().values.astype("datetime64[us]") == original["day"].dropna().values.astype("datetime64[us]")).all()
    assert str(back["at"].dt.tz) == "UTC"
    assert back["at"].dropna().tolist() == original["at"].dropna().tolist()
    assert (back["at"].isna() == original["at"].isna()).all()


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_round_trip_keeps_values_types_nulls_dates_and_time_zones(tmp_path: Path, suffix: str) -> None:
    original = typed_frame()
    path = tmp_path / f"data{suffix}"
    connectors.write(original, path)
    assert_same(connectors.read(path), original)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_streamed_chunks_equal_one_write_and_batches_cover_every_row(tmp_path: Path, suffix: str) -> None:
    original = typed_frame(n=1000, seed=1)
    path = tmp_path / f"chunks{suffix}"
    connectors.write_chunks((original.iloc[i:i + 300] for i in range(0, 1000, 300)), path)
    assert_same(connectors.read(path), original)
    batches = list(connectors.iter_batches(path, batch_size=128))
    assert all(len(b) <= 128 for b in batches)
    assert_same(pd.concat(batches, ignore_index=True), original)


def test_file_types_feed_the_inferred_schema(tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    connectors.write(typed_frame(n=200), path)
    kinds = {c.name: c.kind for c in infer_schema(connectors.read(path)).columns}
    assert kinds["day"] == "datetime" and kinds["at"] == "datetime"
    assert kinds["count"] == "integer" and kinds["amount"] == "continuous"


def test_sample_is_uniform_without_replacement_and_reproducible(tmp_path: Path) -> None:
    n = 20_000
    path = tmp_path / "big.csv"
    connectors.write(pd.DataFrame({"row": np.arange(n), "x": np.arange(n) % 7}), path)
    a = connectors.sample(path, n_rows=2000, seed=3, batch_size=1500)
    b = connectors.sample(path, n_rows=2000, seed=3, batch_size=1500)
    pd.testing.assert_frame_equal(a, b)
    assert a["row"].is_unique and len(a) == 2000
    # each row is kept with probability p = 0.1: the kept share of the first half of the file
    # is Hypergeometric, sd = sqrt(2000 * 0.5 * 0.5 * (n - 2000) / (n - 1)) ≈ 21.2; allow 5 sd
    first_half = int((a["row"] < n // 2).sum())
    assert abs(first_half - 1000) < 5 * 21.3
    assert a["row"].is_monotonic_increasing  # file order kept


def test_csv_dialects_separator_encoding_quoting(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_bytes("name;city;amount\nA;Köln;1,5\n\"B;x\";Münster;2\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"not valid UTF-8 \(lines 2, 3\).*encoding") as err:
        connectors.read(path)
    assert "--encoding latin-1" in str(err.value)  # the CLI option, not only Python's keyword (trial, session 11)
    frame = connectors.read(path, encoding="latin-1")
    assert frame.columns.tolist() == ["name", "city", "amount"]
    assert frame["city"].tolist() == ["Köln", "Münster"]
    assert frame["name"].tolist() == ["A", "B;x"]


def test_header_detection_is_conservative(tmp_path: Path) -> None:
    with_header = tmp_path / "h.csv"
    with_header.write_text("age,sex\n34,f\n51,m\n")
    assert connectors.read(with_header).columns.tolist() == ["age", "sex"]
    headerless = tmp_path / "nh.csv"
    headerless.write_text("34,f\n51,m\n")
    frame = connectors.read(headerless)
    # a data row must never become column names (they are public schema)
    assert "34" not in frame.columns and len(frame) == 2
    assert connectors.read(headerless, has_header=True).columns.tolist() == ["34", "f"]


def test_malformed_rows_are_reported_by_line_and_count_never_by_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    rows = ["id,amount,note"] + [f"{i},{i}.5,ok" for i in range(20)]
    rows[5] = f"4,{SECRET}"                 # too few fields
    rows[9] = f"8,1.0,x,{SECRET}"           # too many fields
    rows[15] = "14,2.0"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(SourceError) as err:
        connectors.read(path)
    message = str(err.value)
    assert "3 malformed rows" in message and "lines 6, 10, 16" in message
    assert SECRET not in message


def test_rows_with_missing_fields_are_not_padded_silently(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    rows = ["id,amount,note"] + [f"{i},{i}.5,ok" for i in range(30)]
    rows[7] = f"6,{SECRET}"
    rows[21] = "20"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(SourceError, match=r"2 malformed rows.*lines 8, 22") as err:
        connectors.read(path)
    assert SECRET not in str(err.value)
    assert len(connectors.read(path, check_rows=False)) == 30  # the caller may opt out


def test_type_change_after_inference_window_reads_and_never_leaks(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("a,b\n" + "1,2\n" * 12_000 + f"{SECRET},3\n")
    frame = connectors.read(path)  # retried with full type inference
    assert frame["a"].dtype == object and len(frame) == 12_001


def test_unterminated_quote_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text(f'a,b\n1,"{SECRET}\n2,3\n')
    with pytest.raises(SourceError, match="quot") as err:
        connectors.read(path)
    assert SECRET not in str(err.value)


def test_bad_jsonl_lines_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": ' + SECRET + '\n{"a": 3}\n[1]\n')
    with pytest.raises(SourceError, match=r"2 lines are not JSON objects \(lines 2, 4\)") as err:
        connectors.read(path)
    assert SECRET not in str(err.value)


def test_jsonl_types_come_from_every_line_not_the_first_ones(tmp_path: Path) -> None:
    """One record after the first thousand lines with another type, an offset, a value in a
    column nobody else fills or a non-date in a date column: read whole, never refused
    (before: 'cannot be read as JSON lines'), typed the same wherever the record sits."""
    rows = [{"n": i, "x": 1.5, "day": "2021-01-01", "at": "2021-01-01T10:00:00Z", "empty": None} for i in range(1500)]
    odd = {"n": "x-1", "x": 7, "day": "not a date", "at": "2021-06-01T13:37:00+05:00", "empty": "filled"}
    for where in (0, 1500):
        path = tmp_path / f"odd{where}.jsonl"
        lines = rows[:where] + [odd] + rows[where:]
        path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
        frame = connectors.read(path)
        assert len(frame) == 1501
        assert frame.loc[where, "n"] == "x-1" and frame.loc[where, "x"] == 7.0 and frame.loc[where, "empty"] == "filled"
        assert frame.loc[where, "day"] == "not a date"  # the column stays text: nothing is lost
        assert str(frame["at"].dt.tz) == "UTC" and frame.loc[where, "at"] == pd.Timestamp("2021-06-01T08:37:00Z")


@pytest.mark.parametrize("name, problem", [("missing.csv", "no such file"), ("data.xlsx", "unsupported file type"),
                                           ("empty.csv", "empty")])
def test_bad_paths_are_one_line_errors(tmp_path: Path, name: str, problem: str) -> None:
    if name == "empty.csv":
        (tmp_path / name).write_text("")
    with pytest.raises(SourceError, match=problem):
        connectors.read(tmp_path / name)


# ------------------------------------------------------------------ atomic writes
def _failing(frame: pd.DataFrame, after: int):
    for i in range(0, len(frame), 100):
        if i // 100 == after:
            raise RuntimeError("injected failure")
        yield frame.iloc[i:i + 100]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path, suffix: str) -> None:
    frame = typed_frame(n=500)
    path = tmp_path / f"out{suffix}"
    with pytest.raises(RuntimeError, match="injected"):
        connectors.write_chunks(_failing(frame, after=3), path)
    assert list(tmp_path.iterdir()) == []
    connectors.write(frame.iloc[:10], path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="injected"):
        connectors.write_chunks(_failing(frame, after=2), path, overwrite=True)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_existing_target_needs_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    connectors.write(pd.DataFrame({"a": [1]}), path)
    with pytest.raises(SourceError, match="already exists.*--overwrite"):
        connectors.write(pd.DataFrame({"a": [2]}), path)
    connectors.write(pd.DataFrame({"a": [2]}), path, overwrite=True)
    assert connectors.read(path)["a"].tolist() == [2]


def test_chunk_with_changed_columns_is_refused_atomically(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    chunks = [pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [2.0]})]
    with pytest.raises(SourceError, match="chunk 1 has different columns"):
        connectors.write_chunks(chunks, path)
    assert not path.exists()


# ------------------------------------------------------------------ URIs and redaction
@pytest.mark.parametrize("uri, kind, redacted", [
    ("data/claims.parquet", "parquet", "data/claims.parquet"),
    ("sqlite:///warehouse.db", "sqlite", "sqlite:///warehouse.db"),
    ("sqlite:////abs/w.db", "sqlite", "sqlite:////abs/w.db"),
    ("postgresql://alice:s3cr%40t@db.example:5433/clinic?sslmode=require&password=x2",
     "postgresql", "postgresql://db.example:5433/clinic?sslmode=require"),
    ("postgresql+psycopg://alice@db/clinic", "postgresql", "postgresql://db/clinic"),
    ("postgres://db/clinic", "postgresql", "postgresql://db/clinic"),
    ("fhir:exports/", "fhir", "fhir:exports"),
    ("camt053:statements/", "camt053", "camt053:statements"),
])
def test_parse_and_redact(uri: str, kind: str, redacted: str) -> None:
    loc = connectors.parse(uri)
    assert loc.kind == kind
    assert loc.redacted == redacted == connectors.redact(uri)
    assert "s3cr" not in repr(loc) and "alice" not in loc.redacted and "x2" not in loc.redacted
    assert connectors.describe(uri) == {"kind": kind, "location": loc.redacted}


def test_unknown_scheme_error_is_redacted() -> None:
    with pytest.raises(SourceError) as err:
        connectors.read("mysql://bob:hunter2@db/x")
    assert "hunter2" not in str(err.value) and "bob" not in str(err.value) and "mysql" in str(err.value)


def test_connectors_command_lists_sources_and_sinks() -> None:
    from synthkit.cli import app
    result = CliRunner().invoke(app, ["connectors", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert {s["kind"] for s in info["sources"]} == {"csv", "parquet", "jsonl", "sqlite", "postgresql", "fhir",
                                                   "camt053", "banktx"}
    assert {s["kind"] for s in info["sinks"]} == {"csv", "parquet", "jsonl", "sqlite", "postgresql"}
    text = CliRunner().invoke(app, ["connectors"], catch_exceptions=False).output
    assert "postgresql://[user@]host" in text.replace("\n", "").replace("│", "").replace(" ", "") or "[user@]" in text
