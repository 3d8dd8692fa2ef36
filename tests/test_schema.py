"""Schema and table validation: exact tests (STYLE.md, tests kind 1).

- a schema round-trips through YAML, JSON and files;
- validation lists every problem of a document at once, and never crashes on a
  malformed one (anything other than SchemaError would reach the CLI as a traceback);
- inference fills in kinds only: bounds and categories inferred from the data would be
  private statistics (DESIGN.md §4), and nullability is left open;
- table validation reports every problem at once, names the column, and never echoes a
  cell value.
"""

from __future__ import annotations

import dataclasses
import json
import math
import string
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthkit.errors import DataValidationError, SchemaError
from synthkit.schema import SCHEMA_VERSION, Column, Schema, infer_schema, propose_formats
from synthkit.table import Table, validate_frame

# ----------------------------------------------------------------- fixtures


def _clinical_schema() -> Schema:
    """A schema that uses every kind, public bounds/categories and every table role."""
    return Schema(
        columns=(
            Column(name="patient_id", kind="identifier", nullable=False),
            Column(name="visit_time", kind="datetime", bounds=("2020-01-01T00:00:00", "2024-12-31T23:59:59")),
            Column(name="age", kind="integer", nullable=False, bounds=(0, 120)),
            Column(name="bmi", kind="continuous", bounds=(10.5, 70.25)),
            Column(name="sex", kind="categorical", nullable=False, categories=("female", "male", "other")),
            Column(name="ward", kind="categorical"),
            Column(name="smoker", kind="boolean"),
            Column(name="mrn", kind="identifier"),
        ),
        entity_key="patient_id",
        sequence_index="visit_time",
        context_columns=("sex",),
        sensitive=("sex", "smoker"),
        quasi_identifiers=("age", "sex"),
        targets=("bmi", "smoker"),
    ).validate()


# ----------------------------------------------------------------- round trip


def test_yaml_round_trip_is_identity() -> None:
    schema = _clinical_schema()
    text = schema.to_yaml()
    back = Schema.from_yaml(text)
    assert back == schema
    assert back.to_dict() == schema.to_dict()
    assert back.to_yaml() == text  # a second trip changes nothing either


def test_dict_and_json_round_trip_is_identity() -> None:
    schema = _clinical_schema()
    data = schema.to_dict()
    assert data["version"] == SCHEMA_VERSION
    assert Schema.from_dict(data) == schema
    assert Schema.from_dict(json.loads(schema.to_json())) == schema


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_then_load_gives_the_same_schema(tmp_path: Path, suffix: str) -> None:
    schema = _clinical_schema()
    path = tmp_path / f"schema{suffix}"
    schema.save(path)
    assert Schema.load(path) == schema
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write leaves nothing behind
    if suffix == ".json":
        assert json.loads(path.read_text(encoding="utf-8")) == schema.to_dict()


def test_load_reports_a_missing_file_and_bad_syntax(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        Schema.load(tmp_path / "absent.yaml")
    bad_json = tmp_path / "schema.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.load(bad_json)
    with pytest.raises(SchemaError, match="not valid YAML"):
        Schema.from_yaml("columns: [unclosed")


def test_a_schema_file_without_targets_still_loads_and_writes_none() -> None:
    # files written before the `targets` role existed: the missing key means no target
    schema = Schema.from_yaml("version: 1\nsensitive: [ward]\ncolumns:\n  age: integer\n  ward: categorical\n")
    assert schema.targets == ()
    assert "targets" not in schema.to_dict()
    assert Schema.from_yaml("targets: age\ncolumns:\n  age: integer\n").targets == ("age",)  # one name as text


def test_targets_validation_lists_every_problem_at_once() -> None:
    document = {"entity_key": "pid", "targets": ["pid", "mrn", "ghost", "age", "age"], "columns": {
        "pid": {"kind": "integer", "nullable": False}, "mrn": "identifier", "age": "integer"}}
    with pytest.raises(SchemaError) as info:
        Schema.from_dict(document)
    problems = info.value.problems
    expected = [("'pid'", "entity_key"), ("'mrn'", "identifier"), ("unknown column 'ghost'",),
                ("'age'", "more than once")]
    for fragments in expected:
        assert any(all(f in p for f in fragments) for p in problems), (fragments, problems)
    assert len(problems) == len(expected)


def test_with_targets_adds_once_in_order_and_validates() -> None:
    schema = _clinical_schema()
    assert schema.with_targets([]) is schema
    more = schema.with_targets(["age", "bmi", "age"])
    assert more.targets == ("bmi", "smoker", "age")
    with pytest.raises(SchemaError, match="'mrn' is an identifier"):
        schema.with_targets(["mrn"])


def test_shorthand_kind_is_accepted() -> None:
    schema = Schema.from_yaml("columns:\n  age: integer\n  ward: categorical\n")
    assert [(c.name, c.kind, c.nullable) for c in schema.columns] == [
        ("age", "integer", True), ("ward", "categorical", True)]


_NAME = st.text(min_size=1, max_size=12)
_FINITE = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def _schemas(draw: st.DrawFn) -> Schema:
    names = draw(st.lists(_NAME, min_size=1, max_size=6, unique=True))
    columns = []
    for name in names:
        kind = draw(st.sampled_from(["continuous", "integer", "categorical", "boolean", "datetime", "identifier"]))
        bounds = categories = None
        if kind in ("continuous", "integer") and draw(st.booleans()):
            lo, hi = sorted(draw(st.lists(_FINITE, min_size=2, max_size=2, unique=True)))
            if kind == "integer" and math.floor(hi) < math.ceil(lo):  # valid integer bounds hold a whole number
                lo, hi = float(math.floor(lo)), float(math.floor(lo) + 1)
            if hi - lo < 1e-9 * max(abs(lo), abs(hi), 1.0):  # valid bounds leave a range at float precision
                hi = lo + max(abs(lo), 1.0) * 1e-6
            bounds = (lo, hi)
        if kind == "datetime" and draw(st.booleans()):
            lo, hi = sorted(draw(st.lists(st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2200, 1, 1)),
                                          min_size=2, max_size=2, unique=True)))
            bounds = (lo.isoformat(), hi.isoformat())
        if kind == "categorical" and draw(st.booleans()):
            categories = tuple(draw(st.lists(st.text(max_size=8), min_size=1, max_size=5, unique=True)))
        formats: dict = {}
        if kind == "boolean":
            formats["true_false"] = draw(st.none() | st.sampled_from([("yes", "no"), ("Y", "N"), ("TRUE", "false"),
                                                                     ("1", "0"), ("t", "F")]))
        if kind == "datetime":
            formats["timezone"] = draw(st.none() | st.sampled_from(["UTC", "Europe/Berlin", "+05:30", "Etc/GMT-2"]))
            units = ["second", "day"] if formats["timezone"] in (None, "UTC") else ["second"]
            formats["time_unit"] = draw(st.none() | st.sampled_from(units))
        columns.append(Column(name=name, kind=kind, nullable=draw(st.booleans()), bounds=bounds,
                              categories=categories, **formats))
    learned = [c for c in columns if c.kind != "identifier"]
    if not learned:
        columns.append(Column(name=names[0] + "_value", kind="continuous"))
        learned = [columns[-1]]
    entity_key = None
    if len(columns) > 1 and draw(st.booleans()):
        key = draw(st.sampled_from(columns))
        if any(c is not key for c in learned):
            columns = [replace_nullable(c, False) if c is key else c for c in columns]
            entity_key = key.name
    numeric = [c.name for c in columns if c.kind in ("continuous", "integer", "datetime") and c.name != entity_key]
    discrete = [c.name for c in columns if c.kind in ("categorical", "boolean")]
    all_names = [c.name for c in columns]
    return Schema(
        columns=tuple(columns),
        entity_key=entity_key,
        sequence_index=draw(st.none() | st.sampled_from(numeric)) if numeric else None,
        context_columns=tuple(draw(st.lists(st.sampled_from(all_names), max_size=2, unique=True))),
        sensitive=tuple(draw(st.lists(st.sampled_from(discrete), max_size=2, unique=True))) if discrete else (),
        quasi_identifiers=tuple(draw(st.lists(st.sampled_from(all_names), max_size=3, unique=True))),
        targets=tuple(draw(st.lists(st.sampled_from([c.name for c in learned if c.name != entity_key]),
                                    max_size=2, unique=True))),
    ).validate()


def replace_nullable(column: Column, nullable: bool) -> Column:
    return dataclasses.replace(column, nullable=nullable)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=_schemas())
def test_any_valid_schema_round_trips_through_yaml_and_json(schema: Schema) -> None:
    assert Schema.from_yaml(schema.to_yaml()) == schema
    assert Schema.from_dict(json.loads(schema.to_json())) == schema


# ----------------------------------------------------------------- validation

_BROKEN_DOCUMENT = """
version: 1
entity_key: customer
owner: finance-team
columns:
  amount: {kind: money}
  balance: {kind: continuous, bounds: [100, 5]}
  age: {kind: continuous, categories: [young, old]}
  opened: {kind: datetime, unit: days}
  branch: categorical
"""


def test_validation_lists_every_problem_at_once() -> None:
    with pytest.raises(SchemaError) as info:
        Schema.from_yaml(_BROKEN_DOCUMENT)
    problems = info.value.problems
    expected = {
        "unknown kind": ["'amount'", "unknown kind 'money'"],
        "bounds low >= high": ["'balance'", "low < high"],
        "categories on a continuous column": ["'age'", "categories are only allowed for kind 'categorical'"],
        "entity key naming an unknown column": ["entity_key names unknown column 'customer'"],
        "unknown top-level key": ["unknown key 'owner'"],
        "unknown column key": ["'opened'", "unknown key 'unit'"],
    }
    for what, fragments in expected.items():
        assert any(all(f in p for f in fragments) for p in problems), f"{what} not reported in {problems}"
    assert len(problems) == len(expected)  # one message per problem, no duplicates
    for p in problems:  # and all of them in the one message the CLI prints
        assert p in str(info.value)


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"columns": {}}, "'columns' must be a non-empty mapping"),
        ({"version": 2, "columns": {"a": "integer"}}, "version 2 is not supported"),
        ({"columns": {"a": "integer", "b": {"kind": "integer", "nullable": "sometimes"}}}, "nullable must be"),
        ({"columns": {"a": {"kind": "continuous", "bounds": [1, 2, 3]}}}, "bounds must be a list [low, high]"),
        ({"columns": {"a": {"kind": "categorical", "bounds": [1, 2]}}}, "bounds are only allowed"),
        ({"columns": {"a": {"kind": "datetime", "bounds": ["2020-01-01", "not a date"]}}}, "two dates"),
        ({"columns": {"a": {"kind": "datetime", "bounds": ["0001-01-01", "2020-01-01"]}}}, "between 1677 and 2262"),
        ({"columns": {"a": {"kind": "categorical", "categories": []}}}, "categories is empty"),
        ({"columns": {"a": {"kind": "categorical", "categories": ["x", "x"]}}}, "duplicates"),
        ({"entity_key": "a", "columns": {"a": "integer", "b": "integer"}}, "must not be nullable"),
        ({"sequence_index": "a", "columns": {"a": "categorical", "b": "integer"}}, "sequence_index 'a' must be"),
        ({"sensitive": ["a"], "columns": {"a": "continuous"}}, "must be categorical or boolean"),
        ({"columns": {"a": "identifier"}}, "no column to learn"),
        ({"entity_key": ["a", "b"], "columns": {"a": "integer", "b": "integer"}}, "entity_key"),
        ({"sequence_index": {"a": 1}, "columns": {"a": "integer"}}, "sequence_index"),
    ],
)
def test_each_single_problem_is_reported(document: dict, fragment: str) -> None:
    with pytest.raises(SchemaError) as info:
        Schema.from_dict(document)
    assert any(fragment in p for p in info.value.problems), info.value.problems


_JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
_JSON = st.recursive(
    _JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
_SPEC_KEYS = st.sampled_from(["kind", "nullable", "bounds", "categories", "extra", "true_false", "timezone",
                              "time_unit"])
_COLUMN_SPEC = st.dictionaries(_SPEC_KEYS, _JSON | st.sampled_from(["continuous", "integer", "categorical",
                                                                    "boolean", "datetime", "identifier"]),
                               max_size=4) | _JSON
_DOC_KEYS = st.sampled_from(["version", "entity_key", "sequence_index", "context_columns", "sensitive",
                             "quasi_identifiers", "targets", "columns", "other"])
_DOCUMENT = st.dictionaries(_DOC_KEYS, _JSON | st.dictionaries(st.text(max_size=4), _COLUMN_SPEC, max_size=4),
                            max_size=6) | _JSON


@settings(max_examples=300, deadline=None)
@given(document=_DOCUMENT)
def test_any_document_is_accepted_or_refused_with_schema_error(document: object) -> None:
    """Malformed input must yield the one error type the CLI turns into a clean message."""
    try:
        schema = Schema.from_dict(document)
    except SchemaError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)
    else:
        assert schema.validate() is schema


# ----------------------------------------------------------------- inference


def _mixed_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "smoker": rng.random(n) < 0.3,
        "age": rng.integers(18, 90, n),
        "bmi": rng.normal(27.0, 4.0, n),
        "visit_date": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "admitted": pd.date_range("2021-01-01", periods=n, freq="h", tz="Europe/Berlin"),
        "ward": rng.choice(["cardiology", "oncology", "icu"], n),
        "consent": rng.choice(["yes", "no"], n),
        "n_visits": rng.integers(0, 50, n).astype(float),
        "patient_id": [f"P{i:05d}" for i in range(n)],
        "account_no": rng.permutation(n),
    })


def test_infer_schema_infers_kinds() -> None:
    schema = infer_schema(_mixed_frame())
    assert {c.name: c.kind for c in schema.columns} == {
        "smoker": "boolean",
        "age": "integer",
        "bmi": "continuous",
        "visit_date": "datetime",
        "admitted": "datetime",
        "ward": "categorical",
        "consent": "boolean",
        "n_visits": "integer",  # whole-number floats
        "patient_id": "identifier",
        "account_no": "identifier",
    }
    assert [c.name for c in schema.identifier_columns] == ["patient_id", "account_no"]


def test_infer_schema_never_fills_public_knowledge_and_leaves_nulls_open() -> None:
    frame = _mixed_frame()
    original = frame.copy()
    schema = infer_schema(frame)
    for column in schema.columns:
        assert column.bounds is None, column.name  # bounds from data are private statistics
        assert column.categories is None, column.name  # so are category sets
        assert column.nullable, column.name  # the frame has no null, yet that is private too
    pd.testing.assert_frame_equal(frame, original)
    # nothing data-derived reaches the serialised schema either
    text = schema.to_yaml()
    assert "bounds" not in text and "categories" not in text and "cardiology" not in text


def test_infer_schema_roles() -> None:
    frame = _mixed_frame()
    schema = infer_schema(frame, entity_key="patient_id", sequence_index="admitted", sensitive=["ward"],
                          identifiers=["bmi"])
    assert schema.entity_key == "patient_id" and schema.sequence_index == "admitted"
    assert schema.column("patient_id").nullable is False  # the privacy unit cannot be missing
    assert schema.column("bmi").kind == "identifier"
    assert schema.sensitive == ("ward",)
    assert schema.targets == ()  # what the data is for is declared, never inferred
    declared = infer_schema(frame, entity_key="patient_id", targets=["smoker", "age", "smoker"])
    assert declared.targets == ("smoker", "age")
    assert Schema.from_yaml(declared.to_yaml()) == declared
    with pytest.raises(SchemaError, match="entity_key"):
        infer_schema(frame, entity_key="patient_id", targets=["patient_id"])


def test_an_id_like_name_with_few_distinct_values_stays_learnable() -> None:
    frame = pd.DataFrame({"region_id": ["north", "south"] * 50, "x": np.arange(100.0) / 3})
    assert infer_schema(frame).column("region_id").kind == "categorical"


_INFER_COLUMN = st.one_of(
    st.lists(st.integers(-10**6, 10**6), min_size=20, max_size=20),
    st.lists(st.floats(allow_infinity=False) | st.none(), min_size=20, max_size=20),
    st.lists(st.booleans(), min_size=20, max_size=20),
    st.lists(st.text(alphabet=string.ascii_letters, max_size=5) | st.none(), min_size=20, max_size=20),
    st.lists(st.datetimes(), min_size=20, max_size=20),
)


@settings(max_examples=100, deadline=None)
@given(columns=st.dictionaries(st.sampled_from(["a", "b", "c", "record_id", "email"]), _INFER_COLUMN,
                               min_size=1, max_size=5))
def test_inference_never_fills_bounds_or_categories(columns: dict[str, list]) -> None:
    frame = pd.DataFrame(columns)
    try:
        schema = infer_schema(frame)
    except SchemaError as err:  # only refusal allowed: every column looks like an identifier
        assert err.problems == ["no column to learn: every column is an identifier"]
        return
    assert schema.names == list(frame.columns)
    for column in schema.columns:
        assert column.bounds is None and column.categories is None and column.nullable


# ----------------------------------------------------------------- table validation

_PLANTED = ("SECRET_VALUE_123", "SECRET_CAT_456", "SECRET_BOOL_789", "98765.4321", "424242")


def _table_schema() -> Schema:
    return Schema(columns=(
        Column(name="record_id", kind="identifier", nullable=False),
        Column(name="age", kind="integer"),
        Column(name="n_children", kind="integer"),
        Column(name="income", kind="continuous", nullable=False),
        Column(name="plan", kind="categorical", categories=("basic", "premium")),
        Column(name="insured", kind="boolean"),
        Column(name="diagnosis_code", kind="categorical"),  # absent from the data
    )).validate()


def _bad_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "record_id": ["r1", "r2", "r3", "r4"],
        "age": ["41", "SECRET_VALUE_123", "38", "52"],        # not a number
        "n_children": [0.0, 2.0, 98765.4321, 1.0],            # not a whole number
        "income": [52000.0, None, 424242.0, 61000.0],         # null in a nullable: false column
        "plan": ["basic", "premium", "SECRET_CAT_456", None],  # outside the public categories
        "insured": ["yes", "no", "SECRET_BOOL_789", "true"],   # not true/false
        "favourite_colour": ["red", "blue", "red", "green"],  # not in the schema
    })


def test_table_validation_lists_every_problem_and_names_the_column() -> None:
    frame = _bad_frame()
    original = frame.copy(deep=True)
    with pytest.raises(DataValidationError) as info:
        Table.from_frame(frame, _table_schema())
    problems = info.value.problems
    expected = {
        "column in the schema, absent from the data": ["absent from the data", "'diagnosis_code'"],
        "column in the data, absent from the schema": ["not in the schema", "'favourite_colour'"],
        "non-numeric values in an integer column": ["'age'", "some values are not numbers"],
        "non-whole numbers in an integer column": ["'n_children'", "some values are not whole numbers"],
        "nulls in a nullable: false column": ["'income'", "nullable: false", "has missing values"],
        "values outside the public categories": ["'plan'", "some values are outside the declared public categories"],
        "non-boolean values in a boolean column": ["'insured'", "some values are not true/false"],
    }
    for what, fragments in expected.items():
        assert any(all(f in p for f in fragments) for p in problems), f"{what} not reported in {problems}"
    assert len(problems) == len(expected)
    pd.testing.assert_frame_equal(frame, original)  # the input is never mutated


def test_validation_messages_never_contain_a_cell_value() -> None:
    with pytest.raises(DataValidationError) as info:
        Table.from_frame(_bad_frame(), _table_schema())
    message = str(info.value) + repr(info.value) + " ".join(info.value.problems)
    for value in _PLANTED:
        assert value not in message


def test_an_empty_table_is_refused() -> None:
    schema = _table_schema()
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.names})
    with pytest.raises(DataValidationError) as info:
        Table.from_frame(frame, schema)
    assert info.value.problems == ["the table is empty (0 rows)"]


def test_an_empty_table_with_wrong_columns_reports_both() -> None:
    problems = validate_frame(pd.DataFrame({"unexpected": pd.Series(dtype=float)}),
                              Schema(columns=(Column(name="x", kind="continuous"),)))
    assert len(problems) == 3
    assert any("'x'" in p and "absent from the data" in p for p in problems)
    assert any("'unexpected'" in p and "not in the schema" in p for p in problems)
    assert "the table is empty (0 rows)" in problems


def test_more_data_problems_are_reported_without_values() -> None:
    schema = Schema(columns=(
        Column(name="balance", kind="continuous"),
        Column(name="opened", kind="datetime"),
        Column(name="closed", kind="datetime"),
        Column(name="owner", kind="categorical", nullable=False),
    ), entity_key="owner").validate()
    frame = pd.DataFrame({
        "balance": [1.5, np.inf, 3.25],
        "opened": ["2020-01-01", "SECRET_VALUE_123", "2021-06-30"],
        "closed": [None, None, None],
        "owner": ["a", None, "b"],
    })
    with pytest.raises(DataValidationError) as info:
        Table.from_frame(frame, schema)
    problems = info.value.problems
    assert any("'balance'" in p and "infinite" in p for p in problems)
    assert any("'opened'" in p and "some values are not dates/times" in p for p in problems)
    assert not any("'closed'" in p for p in problems)  # nullable and all null: valid, learned under DP
    assert any("'owner'" in p and "has missing values" in p for p in problems)
    assert any("entity_key column 'owner' has missing values" in p for p in problems)
    assert "SECRET_VALUE_123" not in str(info.value)


def test_a_valid_frame_becomes_a_table_unchanged() -> None:
    schema = _table_schema()
    frame = pd.DataFrame({
        "record_id": ["r1", "r2", "r3"],
        "age": [41, 38, None],
        "n_children": [0.0, 2.0, 1.0],
        "income": [52000.0, 48000.5, 61000.0],
        "plan": ["basic", "premium", None],
        "insured": [True, False, None],
        "diagnosis_code": ["I10", "E11", "I10"],
    })
    original = frame.copy(deep=True)
    table = Table.from_frame(frame, schema)
    assert table.n_rows == 3 and table.schema == schema
    pd.testing.assert_frame_equal(frame, original)
    assert validate_frame(frame, schema) == []


def test_table_refuses_a_non_frame() -> None:
    with pytest.raises(DataValidationError, match="expected a pandas DataFrame"):
        Table.from_frame([[1, 2]], _table_schema())  # type: ignore[arg-type]


def test_a_column_name_with_a_next_line_character_round_trips_through_yaml() -> None:
    # U+0085 is what a cp1252 "…" becomes in a header read as Latin-1; PyYAML reads it
    # back as a line break unless it is escaped
    schema = Schema(columns=(Column(name="dose\x85", kind="continuous"),)).validate()
    assert Schema.from_yaml(schema.to_yaml()) == schema


def test_decimals_round_trip_validate_and_round_the_output():
    from synthkit import DPTVAE
    s = Schema.from_dict({"columns": {"age": {"kind": "continuous", "decimals": 1}, "n": "integer"}})
    assert Schema.from_yaml(s.to_yaml()) == s
    with pytest.raises(SchemaError) as err:
        Schema.from_dict({"columns": {"n": {"kind": "integer", "decimals": 1},
                                      "x": {"kind": "continuous", "decimals": -1}}})
    assert "'n'" in str(err.value) and "'x'" in str(err.value)  # every problem at once
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": np.round(rng.uniform(60, 90, 800), 1), "n": rng.integers(0, 5, 800)})
    out = DPTVAE(epochs=1, batch_size=100, seed=0, device="cpu").fit(frame, schema=s, budget=None).sample(300, seed=1)
    values = out["age"].dropna().to_numpy(dtype=float)
    assert np.allclose(values, np.round(values, 1))


# ----------------------------------------------------------------- format facts
_BAD_FORMATS = """
columns:
  insured: {kind: boolean, true_false: [yes, no]}
  consent: {kind: boolean, true_false: ['ja', 'nein']}
  smoker: {kind: boolean, true_false: ['yes']}
  admitted: {kind: datetime, timezone: Mars/Olympus, time_unit: hour}
  visit: {kind: datetime, timezone: Europe/Berlin, time_unit: day}
  ward: {kind: categorical, true_false: ['yes', 'no'], timezone: UTC, time_unit: day}
"""


def test_format_facts_validation_lists_every_problem_each_naming_the_column_and_the_fix() -> None:
    with pytest.raises(SchemaError) as info:
        Schema.from_yaml(_BAD_FORMATS)
    problems = info.value.problems
    expected = [
        ["'insured'", "quote them"],  # YAML 1.1 reads yes/no as booleans
        ["'consent'", "not read back as [true, false]", "'yes'"],
        ["'smoker'", "two quoted spellings"],
        ["'admitted'", "not a known time zone", "Europe/Berlin"],
        ["'admitted'", "time_unit must be 'second' (times) or 'day' (dates)"],
        ["'visit'", "UTC days", "remove timezone"],
        ["'ward'", "true_false is only allowed on kind 'boolean'"],
        ["'ward'", "timezone is only allowed on kind 'datetime'"],
        ["'ward'", "time_unit is only allowed on kind 'datetime'"],
    ]
    for fragments in expected:
        assert sum(all(f in p for f in fragments) for p in problems) == 1, (fragments, problems)
    assert len(problems) == len(expected)
    assert all(p in str(info.value) for p in problems)


def test_format_facts_round_trip_and_default_to_canonical() -> None:
    text = """
columns:
  insured: {kind: boolean, true_false: ['Yes', 'No']}
  admitted: {kind: datetime, timezone: Europe/Berlin}
  visit: {kind: datetime, time_unit: day}
  at: datetime
"""
    schema = Schema.from_yaml(text)
    assert schema.column("insured").true_false == ("Yes", "No")
    assert (schema.column("admitted").timezone, schema.column("admitted").unit) == ("Europe/Berlin", "second")
    assert schema.column("visit").unit == "day"
    at = schema.column("at")
    assert (at.timezone, at.time_unit, at.unit) == (None, None, "second")  # canonical defaults, not written
    assert "time_unit" not in schema.to_dict()["columns"]["at"]
    assert Schema.from_yaml(schema.to_yaml()) == schema
    assert Schema.from_dict(json.loads(schema.to_json())) == schema
    assert "'Yes'" in schema.to_yaml()  # quoted, so YAML reads it back as text


def test_inference_proposes_format_facts_only_when_asked() -> None:
    """`schema infer` (a reviewed step) may propose what the rows show; the inference a fit
    runs without a schema must not, or one row would decide them."""
    frame = _mixed_frame()
    plain = infer_schema(frame)
    for c in plain.columns:
        assert (c.true_false, c.timezone) == (None, None)
    # a datetime's format and precision come with its kind (issue 17: dates written as dates);
    # the rows decide them only where they decide the kind too (a private fit: synthkit.dp_schema)
    assert [c.name for c in plain.columns if c.time_unit or c.format] == ["visit_date", "admitted"]
    assert (plain.column("visit_date").time_unit, plain.column("visit_date").format) == ("day", "%Y-%m-%d")
    assert (plain.column("admitted").time_unit, plain.column("admitted").format) == ("second", None)
    proposed = infer_schema(frame, formats=True)
    assert proposed == propose_formats(frame, plain)
    assert proposed.column("consent").true_false == ("yes", "no")
    assert proposed.column("smoker").true_false is None  # a boolean dtype has no spelling
    assert proposed.column("visit_date").time_unit == "day"
    assert (proposed.column("admitted").timezone, proposed.column("admitted").time_unit) == ("Europe/Berlin", "second")
    only_yes = propose_formats(pd.DataFrame({"ok": ["YES", None]}),
                               Schema(columns=(Column(name="ok", kind="boolean"),)))
    assert only_yes.column("ok").true_false == ("YES", "NO")  # the other spelling paired in the same style
    assert Schema.from_yaml(proposed.to_yaml()) == proposed
