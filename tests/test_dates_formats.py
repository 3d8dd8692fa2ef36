"""Dates the way people write them; identifiers explained; row-index columns (issue 17).

Before this change, `03/15/2020` and `15.03.2020 10h` were inferred as identifiers (not
learned, replaced by surrogate keys), a datetime column came back with nanoseconds and
its input format lost, polars read `15/03/2020` day first from a column's first rows, and
a `rownames` column (1..n) was learned as a number. Each test below fails on that code.

Fits are tiny (epochs=1, a few hundred rows): what is checked is the format of the output
and the state of the bundle, not quality.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit import DPTVAE, PrivacyBudget
from synthkit.cli import app
from synthkit.dp_schema import EVENT, decide_date_format
from synthkit.errors import DataValidationError, SchemaError
from synthkit.noise import _fixed_for_tests
from synthkit.schema import Column, Schema, infer_schema
from synthkit.table import Table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()
BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
N = 900
# input column -> (strftime format its values are written in, date-only)
WRITTEN = {
    "visit_us": ("%m/%d/%Y", True),
    "sample_eu": ("%d.%m.%Y %Hh", False),
    "birth_eu": ("%d/%m/%Y", True),
    "admitted": ("%Y-%m-%d", True),
}
SHAPES = {
    "visit_us": r"^\d{2}/\d{2}/\d{4}$",
    "sample_eu": r"^\d{2}\.\d{2}\.\d{4} \d{2}h$",
    "birth_eu": r"^\d{2}/\d{2}/\d{4}$",
    "admitted": r"^\d{4}-\d{2}-\d{2}$",
}


def _dates(n: int = N, seed: int = 0) -> pd.DataFrame:
    """A row-index column, US, EU (with an hour written '10h') and ISO dates, and a number."""
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    hour = pd.to_timedelta(rng.integers(6, 20, n), unit="h")
    return pd.DataFrame({
        "rownames": np.arange(1, n + 1),
        "visit_us": day.strftime("%m/%d/%Y"),
        "sample_eu": (day + hour).strftime("%d.%m.%Y %Hh"),
        "birth_eu": (pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 15000, n), unit="D"))
        .strftime("%d/%m/%Y"),
        "admitted": day.strftime("%Y-%m-%d"),
        "cost": rng.gamma(2.0, 50.0, n).round(2),
    })


def _cli(args: list[str]) -> None:
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output


def _fit_generate(tmp_path: Path, name: str, frame: pd.DataFrame, privacy: list[str],
                  extra: list[str] = ()) -> tuple[pd.DataFrame, dict[str, Any]]:
    data = tmp_path / f"{name}.csv"
    frame.to_csv(data, index=False)
    bundle, out = tmp_path / f"{name}-bundle", tmp_path / f"{name}-out.csv"
    with _fixed_for_tests(5):
        _cli(["fit", str(data), "--model", "dptvae", *privacy, "--epochs", "1", "--batch-size", "100",
              "--device", "cpu", "--seed", "3", "--out", str(bundle), *extra])
    _cli(["generate", str(bundle), "--rows", "400", "--seed", "1", "--out", str(out)])
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    return pd.read_csv(out, dtype=str, keep_default_na=False, na_values=[""]), manifest


def _assert_written_as_input(out: pd.DataFrame) -> None:
    for name, (fmt, date_only) in WRITTEN.items():
        values = out[name].dropna()
        assert len(values) > 200, name
        assert values.str.match(SHAPES[name]).all(), (name, values.head(3).tolist())
        parsed = pd.to_datetime(values, format=fmt, errors="coerce")
        assert parsed.notna().all(), name
        if date_only:
            assert (parsed == parsed.dt.normalize()).all(), name
    # the day order is the input's: a US column's first field is a month, an EU one's a day
    us_first = out["visit_us"].dropna().str.slice(0, 2).astype(int)
    eu_first = out["birth_eu"].dropna().str.slice(0, 2).astype(int)
    assert us_first.max() <= 12 and eu_first.max() > 12


@pytest.mark.parametrize("privacy", [["--no-privacy"], ["--epsilon", "3", "--delta", "1e-6"]],
                         ids=["no-privacy", "epsilon-3"])
def test_us_eu_iso_and_date_only_columns_round_trip_in_their_format(tmp_path: Path, privacy: list[str]) -> None:
    out, manifest = _fit_generate(tmp_path, "dates", _dates(), privacy)
    columns = manifest["schema"]["columns"]
    for name, (fmt, date_only) in WRITTEN.items():
        assert columns[name]["kind"] == "datetime", name  # was 'identifier' (non-ISO text)
        assert columns[name]["format"] == fmt, name
        if date_only:
            assert columns[name].get("time_unit") == "day", name  # precision: dates stay dates
    _assert_written_as_input(out)
    assert columns["rownames"]["kind"] == "identifier"
    assert out["rownames"].str.startswith("rownames-").all()  # surrogate keys, not learned numbers
    if "--epsilon" in privacy:
        assert EVENT in [e["name"] for e in manifest["privacy"]["ledger"]["events"]]


def test_a_declared_schema_with_formats_is_public_and_read_back(tmp_path: Path) -> None:
    frame = _dates()
    frame["serial"] = (pd.to_datetime(frame["admitted"]) - pd.Timestamp("1899-12-30")).dt.days
    schema = Schema(columns=(
        Column(name="rownames", kind="identifier"),
        *(Column(name=n, kind="datetime", format=f, time_unit="day" if d else None,
                 bounds=("1940-01-01", "2025-01-01")) for n, (f, d) in WRITTEN.items()),
        Column(name="cost", kind="continuous", bounds=(0.0, 2000.0)),
        Column(name="serial", kind="datetime", format="excel", time_unit="day", bounds=("2018-01-01", "2022-01-01")),
    )).validate()
    path = tmp_path / "schema.yaml"
    schema.save(path)
    assert Schema.load(path) == schema  # format round-trips through YAML
    out, manifest = _fit_generate(tmp_path, "declared", frame, ["--epsilon", "3", "--delta", "1e-6"],
                                  ["--schema", str(path)])
    assert EVENT not in [e["name"] for e in manifest["privacy"]["ledger"]["events"]]  # nothing decided
    _assert_written_as_input(out)
    serial = pd.to_numeric(out["serial"].dropna())
    assert (serial == serial.round()).all() and serial.between(43101, 44563).all()  # Excel days of 2018..2021


def test_a_declared_datetime_without_format_has_no_nanoseconds(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 400
    t = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s")
    frame = pd.DataFrame({"when": t.strftime("%Y-%m-%d %H:%M:%S"), "x": rng.normal(size=n).round(3)})
    schema = tmp_path / "s.yaml"
    Schema(columns=(Column(name="when", kind="datetime", time_unit="second"),
                    Column(name="x", kind="continuous"))).save(schema)
    out, _ = _fit_generate(tmp_path, "seconds", frame, ["--no-privacy"], ["--schema", str(schema)])
    assert out["when"].dropna().str.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$").all()  # no .664216320


def test_rownames_is_an_identifier_and_the_other_columns_are_unaffected(tmp_path: Path) -> None:
    frame = _dates().drop(columns=["sample_eu", "birth_eu"])
    with_index, _ = _fit_generate(tmp_path, "with", frame, ["--no-privacy"])
    without, _ = _fit_generate(tmp_path, "without", frame.drop(columns=["rownames"]), ["--no-privacy"])
    pd.testing.assert_frame_equal(with_index.drop(columns=["rownames"]), without)
    # and under DP the name alone decides it (public): a row index's name, or a key's
    # (`row_no`, s13: schema.looks_like_identifier) with most values distinct; a 1..n column
    # under another name is only caught by the reviewed `schema infer`
    seq = frame.rename(columns={"rownames": "counter"})
    assert infer_schema(seq).column("counter").kind == "identifier"
    model = DPTVAE(epochs=1, batch_size=100, device="cpu")
    model._infer_schema_dp(frame.assign(row_no=frame["rownames"], counter=frame["rownames"]), budget=BUDGET,
                           roles={}, ledger=None)
    assert model.inferred_schema_.column("rownames").kind == "identifier"
    assert model.inferred_schema_.column("row_no").kind == "identifier"
    assert model.inferred_schema_.column("counter").kind != "identifier"


def test_schema_infer_warns_about_every_identifier_column_and_says_why(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(4)
    n = 120
    frame = _dates(n).assign(
        **{"Unnamed: 0": np.arange(n), "patient_id": [f"P{i:05d}" for i in rng.permutation(n)],
           "remark": [f"note {i} {rng.integers(10**6)}" for i in range(n)], "visit": np.arange(1, n + 1),
           "ward": rng.choice(["a", "b"], n)})
    data, out = tmp_path / "t.csv", tmp_path / "schema.yaml"
    frame.to_csv(data, index=False)
    with caplog.at_level(logging.WARNING, logger="synthkit.schema"):
        _cli(["schema", "infer", str(data), "--out", str(out)])
    schema = Schema.load(out)
    identifiers = {c.name for c in schema.columns if c.kind == "identifier"}
    assert identifiers == {"rownames", "Unnamed: 0", "patient_id", "remark", "visit"}
    assert {c.name for c in schema.columns if c.kind == "datetime"} == set(WRITTEN)  # dates are no reason
    warned = {r.args[0]: r.getMessage() for r in caplog.records if "becomes an identifier" in r.getMessage()}
    assert set(warned) == identifiers
    assert "row index" in warned["rownames"] and "row index" in warned["Unnamed: 0"]
    assert "name looks like an identifier" in warned["patient_id"]
    assert "distinct" in warned["remark"] and "row numbers 1..n" in warned["visit"]
    text = "\n".join(warned.values())
    assert not any(v in text for v in frame["patient_id"].head(20))  # no cell value in a warning
    assert schema.column("visit_us").format == "%m/%d/%Y" and schema.column("visit_us").time_unit == "day"
    assert schema.column("sample_eu").format == "%d.%m.%Y %Hh"


def test_the_day_order_under_dp_is_decided_by_noisy_counts_in_the_ledger(monkeypatch) -> None:
    """Differential check: an all-ambiguous '/' column (every day <= 12) and its neighbour
    with one row whose day is 25. The rows-based guess flips its day order on that row;
    the DP decision (same noise) does not, and the format in the schema is what the
    post-processing of the noisy counts returned, charged to the ledger's one event."""
    rng = np.random.default_rng(7)
    n = 1200
    day = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    day = day[day.day <= 12][:600]
    base = pd.DataFrame({"seen": day.strftime("%d/%m/%Y"), "x": rng.normal(size=len(day)).round(2)})
    hostile = pd.concat([base, pd.DataFrame({"seen": ["25/01/2020"], "x": [0.5]})], ignore_index=True)
    assert infer_schema(base).column("seen").format == "%m/%d/%Y"  # the documented default for '/'
    assert infer_schema(hostile).column("seen").format == "%d/%m/%Y"  # control: one row decides it

    decided = []

    def spy(noisy: np.ndarray, sigma: float) -> tuple[str | None, str | None]:
        decided.append(decide_date_format(noisy, sigma))
        return decided[-1]

    monkeypatch.setattr("synthkit.dp_schema.decide_date_format", spy)
    formats = []
    for frame in (base, hostile):
        model = DPTVAE(epochs=1, batch_size=100, device="cpu")
        with _fixed_for_tests(11):
            ledger = model._infer_schema_dp(frame, budget=BUDGET, roles={}, ledger=None)
        assert [e.name for e in ledger.events] == [EVENT]
        col = model.inferred_schema_.column("seen")
        assert (col.format, col.time_unit) == decided[-1]  # no format but the decided one
        formats.append(col.format)
    assert formats[0] == formats[1] == "%m/%d/%Y"


def test_decide_date_format_on_clear_counts() -> None:
    from synthkit.dp_schema import CLASSES, DATE_CLASSES, N_COUNTS

    def counts(fine: dict[str, float]) -> np.ndarray:
        out = np.zeros(N_COUNTS)
        for key, v in fine.items():  # date classes: 'iso_date', 'iso_time' or 'sep|time|evidence'
            out[len(CLASSES) + 1 + DATE_CLASSES.index(key)] = v
        return out

    assert decide_date_format(counts({"/||month_first": 500, "/||either": 400}), 5.0) == ("%m/%d/%Y", "day")
    assert decide_date_format(counts({"/||day_first": 500, "/||either": 400}), 5.0) == ("%d/%m/%Y", "day")
    assert decide_date_format(counts({"/||either": 900}), 5.0) == ("%m/%d/%Y", "day")  # default for '/'
    assert decide_date_format(counts({".||either": 900}), 5.0) == ("%d.%m.%Y", "day")  # default for '.'
    assert decide_date_format(counts({".|h|either": 900}), 5.0) == ("%d.%m.%Y %Hh", None)
    assert decide_date_format(counts({"/|hm|month_first": 900}), 5.0) == ("%m/%d/%Y %H:%M", None)
    assert decide_date_format(counts({"iso_date": 900}), 5.0) == ("%Y-%m-%d", "day")
    assert decide_date_format(counts({"iso_time": 900}), 5.0) == (None, "second")
    # a lead within the noise (2 std of a difference) is no evidence: the default holds
    assert decide_date_format(counts({"/||day_first": 12, "/||either": 900}), 5.0) == ("%m/%d/%Y", "day")
    assert decide_date_format(counts({"/||day_first": 16, "/||either": 900}), 5.0) == ("%d/%m/%Y", "day")


def test_bad_dates_and_bad_formats_get_one_line_naming_the_column_and_the_fix() -> None:
    frame = pd.DataFrame({"visit": ["03/15/2020", "13/13/2020", "04/01/2021"], "x": [1.0, 2.0, 3.0]})
    schema = Schema(columns=(Column(name="visit", kind="datetime", format="%m/%d/%Y"),
                             Column(name="x", kind="continuous")))
    with pytest.raises(DataValidationError) as err:
        Table.from_frame(frame, schema)
    (line,) = err.value.problems
    assert "'visit'" in line and "'%m/%d/%Y'" in line and "format" in line and "13/13" not in line
    with pytest.raises(SchemaError, match="format '%Q' cannot write and read back a date"):
        Schema(columns=(Column(name="visit", kind="datetime", format="%Q"),)).validate()
    with pytest.raises(SchemaError, match="format is only allowed on kind 'datetime'"):
        Schema(columns=(Column(name="x", kind="continuous", format="%d.%m.%Y"),)).validate()


def test_csv_reading_no_longer_guesses_a_day_order() -> None:
    """polars' try_parse_dates read 03/04/2020 day first from a column's first rows; now only
    ISO text becomes datetimes when read, and the rest is the schema's decision."""
    import connectors
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.csv"
        pd.DataFrame({"us": ["03/04/2020", "12/01/2021"], "iso": ["2020-03-04", "2021-12-01"],
                      "eu": ["15.03.2020 10:30", "01.04.2021 09:30"]}).to_csv(path, index=False)
        frame = connectors.read(str(path))
    assert frame["us"].dtype == object and frame["eu"].dtype == object
    assert pd.api.types.is_datetime64_any_dtype(frame["iso"])
    assert re.match(r"^\d{2}/\d{2}/\d{4}$", frame["us"].iloc[0])


def test_a_row_index_name_declared_as_the_sequence_index_keeps_an_ordered_kind() -> None:
    frame = pd.DataFrame({"pid": ["a", "a", "b", "b"], "index": [1, 2, 3, 4], "x": [1.5, 2.5, 3.5, 4.5]})
    assert infer_schema(frame).column("index").kind == "identifier"
    assert infer_schema(frame, entity_key="pid", sequence_index="index").column("index").kind == "integer"
