"""Hostile and malformed input files (issue 16): each ends in ONE line — a SynthkitError
naming the file, the column or field and the fix, never a cell value — or, for header
detection, in the right header. Hangs are bounded by the loaders' caps (the file is
refused before it is expanded or walked), never by a wall-clock assertion.

Positive controls beside each family: ordinary files still read the same."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import connectors
from reports.policy import PolicyError, load_policy
from synthkit import safeload
from synthkit.cli import app
from synthkit.errors import DataValidationError, SchemaError, SourceError, SynthkitError
from synthkit.jobs import JobSpecError, load_job
from synthkit.schema import Column, Schema, infer_schema
from synthkit.table import Table

SECRET = "SECRET_CELL_VALUE_777"


def one_line(err: pytest.ExceptionInfo) -> str:
    """The error is ours, one line, with no traceback text and no planted value."""
    assert isinstance(err.value, SynthkitError), type(err.value)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert SECRET not in message
    return message


# ------------------------------------------------------------------ CSV bytes
@pytest.mark.parametrize("name, data, fragment", [
    ("cr_only.csv", b"age,sex\r34,f\r51,m\r", "carriage return"),
    ("nul.csv", b"age,sex\n34,\x00" + SECRET.encode() + b"\n", "NUL bytes"),
    ("png.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "NUL bytes"),
    ("utf16.csv", "age,sex\n34,f\n".encode("utf-16"), "NUL bytes"),
])
def test_binary_and_cr_only_csv_is_one_line(tmp_path: Path, name: str, data: bytes, fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SourceError) as err:
        connectors.read(path)
    message = one_line(err)
    assert fragment in message and name in message


def test_csv_with_crlf_and_an_encoding_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(b"age,sex\r\n34,f\r\n51,m\r\n")
    assert connectors.read(path).to_dict("list") == {"age": [34, 51], "sex": ["f", "m"]}
    latin = tmp_path / "latin.csv"
    latin.write_bytes("age,ville\n34,Orléans\n51,Nîmes\n".encode("latin-1"))
    assert connectors.read(latin, encoding="latin-1")["ville"].tolist() == ["Orléans", "Nîmes"]


# ------------------------------------------------------------------ CSV header detection
@pytest.mark.parametrize("header, fragment", [
    ("age,age,income", "fields 1 and 2 repeat"),
    ("age,,income", "field 2 is empty"),
    ("age,2019,income", "field 2 is a number"),
])
def test_a_doubtful_header_is_an_error_not_a_silent_flip(tmp_path: Path, header: str, fragment: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(f"{header}\n34,1,52000\n51,2,61000\n")
    with pytest.raises(SourceError) as err:
        connectors.read(path)
    message = one_line(err)
    assert fragment in message and "--header" in message and "--no-header" in message


def test_a_numeric_header_over_a_text_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("1,2,3\n" + "".join(f"{i},{2 * i},x{i % 3}\n" for i in range(20)))
    with pytest.raises(SourceError) as err:
        connectors.read(path)
    assert "fields 3 differ in type" in one_line(err) and "field 1 is a number" in str(err.value)
    assert connectors.read(path, has_header=True).columns.tolist() == ["1", "2", "3"]


def test_the_user_decides_a_doubtful_header(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("age,2019,income\n34,1,52000\n51,2,61000\n")
    assert connectors.read(path, has_header=True).columns.tolist() == ["age", "2019", "income"]
    headerless = connectors.read(path, has_header=False)
    assert headerless.columns.tolist() == ["column_0", "column_1", "column_2"] and len(headerless) == 3


@pytest.mark.parametrize("header, fragment", [
    ("age,,income", "column 2 of the header is empty"),
    ("age,age,income", "names column 'age' more than once"),
])
def test_a_declared_header_must_name_every_column_once(tmp_path: Path, header: str, fragment: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(f"{header}\n34,1,52000\n")
    with pytest.raises(SourceError) as err:
        connectors.read(path, has_header=True)
    assert fragment in one_line(err)


def test_clear_headers_and_headerless_numbers_read_as_before(tmp_path: Path) -> None:
    with_header = tmp_path / "a.csv"
    with_header.write_text("age,sex,income\n34,f,52000\n51,m,61000\n")
    assert connectors.read(with_header).columns.tolist() == ["age", "sex", "income"]
    text_only = tmp_path / "b.csv"
    text_only.write_text("city,sex\nParis,f\nLyon,m\n")
    assert connectors.read(text_only).columns.tolist() == ["city", "sex"]
    numbers = tmp_path / "c.csv"
    numbers.write_text("34,f,52000\n51,m,61000\n")
    frame = connectors.read(numbers)
    assert len(frame) == 2 and frame.iloc[:, 0].tolist() == [34, 51]


def test_a_null_marker_in_the_first_row_is_not_a_column_name(tmp_path: Path) -> None:
    path = tmp_path / "na.csv"
    path.write_text("NA,5\n3,6\n4,7\n")
    frame = connectors.read(path)
    assert len(frame) == 3 and frame.iloc[1:, 0].tolist() == [3, 4]


@pytest.mark.parametrize("options, fragment", [({"has_header": True}, "CSV files only"),
                                               ({"encoding": "latin-1"}, "CSV files only")])
def test_csv_options_on_json_lines_are_one_line(tmp_path: Path, options: dict, fragment: str) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n')
    with pytest.raises(SourceError) as err:
        connectors.read(path, **options)
    assert fragment in one_line(err)


def test_csv_options_for_other_sources_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"camt053:{tmp_path / 'empty'}", has_header=True)
    assert "do not apply" in one_line(err)


# ------------------------------------------------------------------ width
def test_a_10000_column_csv_is_refused_with_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    names = [f"c{i}" for i in range(10_000)]
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    with pytest.raises(SourceError) as err:
        connectors.read(path)
    assert "10,000 columns, over the limit of 2,000" in one_line(err)


# ------------------------------------------------------------------ JSON lines
def test_nested_jsonl_objects_are_refused_by_column(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text(json.dumps({"age": 3, "address": {"city": SECRET}}) + "\n"
                    + json.dumps({"age": 4, "address": {"city": "x"}}) + "\n")
    with pytest.raises(SourceError) as err:
        connectors.read(path)
    assert "['address']" in one_line(err) and "flatten" in str(err.value)


@pytest.mark.parametrize("depth", [100, 5_000, 200_000])
def test_deeply_nested_jsonl_is_one_line(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"a":' * depth + "1" + "}" * depth + "\n" + '{"a": 1}\n')
    with pytest.raises(SourceError) as err:
        connectors.read(path)
    one_line(err)


def test_integers_around_1e30_read_as_text_not_an_arrow_error(tmp_path: Path) -> None:
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("account,n\n1000000000000000000000000000000,1\n2,3\n")
    frame = connectors.read(csv_path)
    assert frame["account"].tolist() == ["1000000000000000000000000000000", "2"]
    jsonl = tmp_path / "big.jsonl"
    jsonl.write_text('{"a": 1000000000000000000000000000000}\n{"a": 1}\n')
    assert connectors.read(jsonl)["a"].tolist() == ["1000000000000000000000000000000", "1"]


def test_integers_near_minus_2_63_are_refused_by_column_not_bincount(tmp_path: Path) -> None:
    path = tmp_path / "neg.csv"
    path.write_text("a,b\n" + "".join(f"{-2**63 + i},x\n" for i in range(5)))
    frame = connectors.read(path)
    assert frame["a"].dtype == np.int64  # read exactly
    schema = Schema(columns=(Column(name="a", kind="integer"), Column(name="b", kind="categorical"))).validate()
    with pytest.raises(DataValidationError) as err:
        Table.from_frame(frame, schema)
    assert "'a'" in one_line(err) and "2**53" in str(err.value)


# ------------------------------------------------------------------ FHIR
@pytest.mark.parametrize("suffix", [".json", ".ndjson"])
def test_deeply_nested_fhir_is_one_line(tmp_path: Path, suffix: str) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    deep = '{"resourceType": "Patient", "id": "p1", "extension": ' + "[" * 50_000 + "]" * 50_000 + "}"
    (folder / f"export{suffix}").write_text(deep + "\n")
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"fhir:{folder}")
    assert f"export{suffix}" in one_line(err)


def test_fhir_nested_just_beyond_python_recursion_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    bundle = {"resourceType": "Patient", "id": "p1"}
    for _ in range(300):  # parses, but Bundle unpacking and validation would recurse
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": bundle}]}
    (folder / "b.json").write_text(json.dumps(bundle))
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"fhir:{folder}")
    assert "nested more than 100 levels" in one_line(err)


# ------------------------------------------------------------------ camt.053
def _camt(entries: str, amount_opening: str = "1000.00") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>
<GrpHdr><MsgId>M</MsgId><CreDtTm>2024-02-01T06:00:00</CreDtTm></GrpHdr>
<Stmt><Id>S1</Id><CreDtTm>2024-01-31T18:00:00</CreDtTm>
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{amount_opening}</Amt>
<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-01-01</Dt></Dt></Bal>{entries}</Stmt></BkToCstmrStmt></Document>"""


def _ntry(amount: str) -> str:
    return (f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
            "<BookgDt><Dt>2024-01-03</Dt></BookgDt></Ntry>")


@pytest.mark.parametrize("entries, opening, fragment", [
    (_ntry("9" * 5000), "1000.00", "at most 18 digits"),
    (_ntry("12.50"), "9" * 5000, "at most 18 digits"),
    ("", "1000.00", "no entries"),
])
def test_camt053_huge_amounts_and_no_entries_are_refused(tmp_path: Path, entries: str, opening: str,
                                                          fragment: str) -> None:
    path = tmp_path / "s.xml"
    path.write_text(_camt(entries, opening))
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"camt053:{path}")
    assert fragment in one_line(err)


def test_camt053_impossible_dates_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.xml"
    path.write_text(_camt(_ntry("12.50").replace("2024-01-03", "2024-13-45")))
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"camt053:{path}")
    assert "not an ISO date" in one_line(err)
    path.write_text(_camt(_ntry("12.50")).replace("<GrpHdr>", "<X>" * 5_000 + "</X>" * 5_000 + "<GrpHdr>"))
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"camt053:{path}")
    assert "more than 64 levels" in one_line(err)


@pytest.mark.parametrize("rows, fragment", [
    ("A1,2024-01-01,10.5,C,EUR\nA1,2024-01-02,inf,D,EUR\n", "at most 18 digits"),
    ("A1,2024-01-01,10.5,C,EUR\nA1,2024-01-02," + "9" * 5000 + ",D,EUR\n", "at most 18 digits"),
    ("", "no transactions"),
])
def test_bank_exports_with_impossible_amounts_or_no_rows_are_refused(tmp_path: Path, rows: str,
                                                                     fragment: str) -> None:
    path = tmp_path / "export.csv"
    path.write_text("account,date,amount,dc,currency\n" + rows)
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"banktx:{path}")
    assert fragment in one_line(err)


def test_schema_infer_takes_the_mapping_kind_for_a_column_no_entry_fills(tmp_path: Path) -> None:
    path = tmp_path / "s.xml"
    path.write_text(_camt(_ntry("12.50") + _ntry("13.50")))  # no RvslInd: reversal is all null
    out = tmp_path / "schema.yaml"
    result = CliRunner().invoke(app, ["schema", "infer", f"camt053:{path}", "--table", "transactions",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Schema.load(out).column("reversal").kind == "boolean"  # the camt.053 mapping's kind


def test_camt053_ordinary_amounts_still_read(tmp_path: Path) -> None:
    path = tmp_path / "s.xml"
    path.write_text(_camt(_ntry("12.50") + _ntry("999999999999999.99")))
    frame = connectors.read_source(f"camt053:{path}").tables["transactions"]
    assert sorted(frame["amount"].tolist()) == [12.5, 999999999999999.99]


# ------------------------------------------------------------------ SQL
@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a INTEGER, photo BLOB)")
    con.execute("INSERT INTO t VALUES (1, ?), (2, ?)", (SECRET.encode(), b"\x00\x01"))
    con.commit()
    con.close()
    return path


def test_blobs_from_a_query_are_refused_by_column(sqlite_db: Path) -> None:
    with pytest.raises(SourceError) as err:
        connectors.read(f"sqlite:///{sqlite_db}", query="SELECT * FROM t")
    assert "['photo']" in one_line(err) and "binary" in str(err.value)
    assert connectors.read(f"sqlite:///{sqlite_db}", query="SELECT a FROM t")["a"].tolist() == [1, 2]


@pytest.mark.parametrize("query", [
    "ATTACH DATABASE '{new}' AS e",
    "/* harmless */ ATTACH '{new}' AS e",
    "SELECT 1 AS x; ATTACH DATABASE '{new}' AS e",
    "VACUUM INTO '{new}'",
])
def test_a_query_cannot_create_files_on_a_read_only_source(sqlite_db: Path, tmp_path: Path, query: str) -> None:
    new = tmp_path / "created.db"
    with pytest.raises(SourceError) as err:
        connectors.read(f"sqlite:///{sqlite_db}", query=query.format(new=new))
    assert "--query must be one" in one_line(err)
    assert not new.exists()


def test_semicolons_inside_quotes_and_comments_are_fine(sqlite_db: Path) -> None:
    frame = connectors.read(f"sqlite:///{sqlite_db}", query="-- a;b\nSELECT a, 'x;y' AS s FROM t; ")
    assert frame["s"].tolist() == ["x;y", "x;y"]


# ------------------------------------------------------------------ YAML / JSON loaders
def _bomb(inner: str) -> str:
    """Nine levels of nine aliases: 9**9 (387 million) values once expanded, 1 KB on disk."""
    lines = ["a0: &a0 [" + ", ".join([inner] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_in_schema_categories_is_refused(tmp_path: Path) -> None:
    anchors = "\n".join("  " + line for line in _bomb("lol").splitlines())
    path = tmp_path / "schema.yaml"
    path.write_text(f"x-anchors:\n{anchors}\ncolumns:\n  plan:\n    kind: categorical\n    categories: *a9\n")
    with pytest.raises(SchemaError) as err:
        Schema.load(path)
    assert "expands to more than" in one_line(err)


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text("columns:\n  plan: &p\n    kind: categorical\n    categories: [*p]\n")
    with pytest.raises(SchemaError) as err:
        Schema.load(path)
    assert "recursive alias" in one_line(err)


def test_a_yaml_alias_bomb_in_a_job_or_policy_is_refused(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: j\n" + _bomb("x"))
    with pytest.raises(JobSpecError) as err:
        load_job(job)
    assert "expands to more than" in one_line(err)
    policy = tmp_path / "p.yaml"
    policy.write_text("name: p\n" + _bomb("x"))
    with pytest.raises(PolicyError) as err:
        load_policy(policy)
    assert "expands to more than" in one_line(err)


def test_a_20mb_schema_comment_is_refused_by_size(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    with open(path, "w") as f:
        f.write("# " + "c" * (20 * 1024 * 1024) + "\ncolumns:\n  a: integer\n")
    with pytest.raises(SchemaError) as err:
        Schema.load(path)
    assert "over the limit" in one_line(err)


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "columns: " + "[" * 100_000 + "]" * 100_000),
    (".yaml", "columns:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200))),
    (".json", '{"columns": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    (".json", '{"columns": ' + "[" * 500 + "]" * 500 + "}"),
    (".json", '{"version": ' + "1" * 5000 + "}"),
    (".yaml", "version: " + "1" * 5000 + "\n"),
])
def test_deep_or_huge_schema_documents_are_one_line(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"schema{suffix}"
    path.write_text(text)
    with pytest.raises(SchemaError) as err:
        Schema.load(path)
    one_line(err)


def test_a_non_utf8_schema_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_bytes("columns:\n  ville: categorical\n  # Orléans\n".encode("latin-1"))
    with pytest.raises(SchemaError) as err:
        Schema.load(path)
    assert "line 3 is not valid UTF-8" in one_line(err)


def test_a_non_utf8_job_and_policy_are_one_line(tmp_path: Path) -> None:
    for path, call, error in ((tmp_path / "job.yaml", load_job, JobSpecError),
                              (tmp_path / "p.yaml", load_policy, PolicyError)):
        path.write_bytes("name: caf\xe9\n".encode("latin-1"))
        with pytest.raises(error) as err:
            call(path)
        assert "UTF-8" in one_line(err)


def test_the_safe_loader_keeps_ordinary_documents() -> None:
    text = "base: &b {kind: integer}\ncolumns:\n  a: *b\n  c:\n    <<: *b\n    nullable: false\n"
    assert safeload.load_yaml(text, where="t") == yaml.safe_load(text)
    assert safeload.load_json('{"a": [1, {"b": null}]}', where="t") == {"a": [1, {"b": None}]}
    shipped = [load_policy(name) for name in ("default", "healthcare", "finance")]
    assert all(p.checks for p in shipped)


# ------------------------------------------------------------------ schema check
@pytest.mark.parametrize("spec, fragment", [
    ({"kind": "continuous", "bounds": [0, 1e-320]}, "empty at float precision"),
    ({"kind": "continuous", "bounds": [-1e308, 1e308]}, "too wide"),
    ({"kind": "integer", "bounds": [0, 2.0**60]}, "2**53"),
    ({"kind": "integer", "bounds": [0.2, 0.8]}, "no whole number"),
    ({"kind": "continuous", "bounds": [True, 5]}, "true/false"),
    ({"kind": "continuous", "bounds": [5, 1]}, "low < high"),
    ({"kind": "categorical", "categories": ["a", ["b", "c"]]}, "nested"),
    ({"kind": "categorical", "categories": ["a", None]}, "null"),
    ({"kind": "categorical", "categories": [{"k": "v"}]}, "nested"),
])
def test_schema_check_refuses_empty_bounds_and_odd_categories(spec: dict, fragment: str) -> None:
    with pytest.raises(SchemaError) as err:
        Schema.from_dict({"columns": {"x": spec}})
    message = one_line(err)
    assert "'x'" in message and fragment in message


def test_bounds_no_value_lies_in_are_refused_at_fit() -> None:
    schema = Schema.from_dict({"columns": {"n": {"kind": "integer", "bounds": [-5, -1]}}})
    with pytest.raises(DataValidationError) as err:
        Table.from_frame(pd.DataFrame({"n": [0, 3, 7, 12]}), schema)
    assert "'n'" in one_line(err) and "correct the bounds" in str(err.value)
    Table.from_frame(pd.DataFrame({"n": [-3, 0, 7]}), schema)  # partly outside: clipped, as declared


def test_validation_errors_carry_no_counts_of_private_rows() -> None:
    schema = Schema.from_dict({"columns": {"plan": {"kind": "categorical", "categories": ["a", "b"]},
                                           "age": {"kind": "integer", "nullable": False}}})
    frame = pd.DataFrame({"plan": ["a", SECRET, "c"], "age": [1.5, None, 3.0]})
    with pytest.raises(DataValidationError) as err:
        Table.from_frame(frame, schema)
    message = one_line(err)
    assert "'plan'" in message and "'age'" in message
    for count in ("1 values", "2 values", "1 missing", "has 1"):
        assert count not in message


def test_nested_values_in_a_frame_are_refused_by_column() -> None:
    frame = pd.DataFrame({"a": [{"k": 1}, {"k": 2}], "b": [1, 2]})
    with pytest.raises(SchemaError) as err:
        infer_schema(frame)
    assert "['a']" in one_line(err)


# ------------------------------------------------------------------ schema infer
@pytest.mark.parametrize("text, fragment", [
    ("age,sex\n", "no data rows"),
    ("age,sex\n34,f\n", "a single data row"),
    ("age,sex\n,f\n,m\n,f\n", "'age' has no values"),
    ("age,sex\ninf,f\ninf,m\n-inf,f\n", "'age' holds infinite numbers"),
])
def test_schema_infer_refuses_files_that_show_no_kinds(tmp_path: Path, text: str, fragment: str) -> None:
    data = tmp_path / "d.csv"
    data.write_text(text)
    out = tmp_path / "schema.yaml"
    result = CliRunner().invoke(app, ["schema", "infer", str(data), "--out", str(out)])
    assert result.exit_code != 0
    assert fragment in result.output and "Traceback" not in result.output
    assert not out.exists()  # nothing partial written


def test_schema_infer_still_writes_ordinary_kinds(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("age,sex\n34,f\n51,m\n47,f\n")
    schema = infer_schema(connectors.read(data), formats=True)
    assert [(c.name, c.kind) for c in schema.columns] == [("age", "integer"), ("sex", "categorical")]
