"""Readers outside the model read a datetime column with its `format` (US '%m/%d/%Y', EU
'%d.%m.%Y'), never per value and never as text.

Before this change: validation checked a US/EU column's type and bounds on its text (a
US+EU table had validation success rate 0.5, below the default policy's 0.9, so the gate
refused it); the report's encoding, the audit and DPHMM read '05.03.2020' month first
(3 May) and DPHMM wrote its index back as datetimes, not in the input's format; an order
rule compared '12/01/2019' and '02/01/2020' as text. Each test below fails on that code.

Frames are synthetic and public-shaped, built here. Fits are tiny (--no-privacy, one or
two epochs): what is checked is how dates are read and written, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reports.encoding import canonical
from reports.validation import validate
from synthkit.audit import _numeric
from synthkit.cli import app
from synthkit.models.hmm import DPHMM
from synthkit.rules import enforce, parse_rule, violations
from synthkit.schema import Column, Schema
from synthkit.sequence import TimeAxis

pytestmark = pytest.mark.usefixtures("one_torch_thread")

runner = CliRunner()
US, EU = "%m/%d/%Y", "%d.%m.%Y"


def _cli(args: list[str]) -> str:
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def _us_eu_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    born = pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(0, 15000, n), unit="D")
    return pd.DataFrame({"visit_us": day.strftime(US), "birth_eu": born.strftime(EU),
                         "cost": rng.gamma(2.0, 50.0, n).round(2), "group": rng.choice(["a", "b", "c"], n)})


# ---------------------------------------------------------------- (a) validation and gate
def test_us_and_eu_date_columns_pass_validation_and_the_gate(tmp_path: Path) -> None:
    data, bundle, out, rep = (tmp_path / "d.csv", tmp_path / "bundle", tmp_path / "s.csv", tmp_path / "rep")
    _us_eu_table().to_csv(data, index=False)
    _cli(["fit", str(data), "--model", "dptvae", "--no-privacy", "--epochs", "1", "--batch-size", "100",
          "--device", "cpu", "--seed", "3", "--out", str(bundle)])
    _cli(["generate", str(bundle), "--rows", "300", "--seed", "1", "--out", str(out)])
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["schema"]["columns"]["visit_us"]["format"] == US
    assert manifest["schema"]["columns"]["birth_eu"]["format"] == EU
    _cli(["evaluate", str(bundle), "--real", str(data), "--synthetic", str(out), "--out", str(rep)])
    report = json.loads((rep / "report.json").read_text(encoding="utf-8"))
    validation = report["validation"]
    assert validation["success_rate"] == 1.0, validation  # 0.5 before: type and bounds judged on the text
    checked = {(e["column"], e["expectation"]) for e in validation["expectations"]}
    for name in ("visit_us", "birth_eu"):  # readability in the format and the bounds, both on dates
        assert (name, "ExpectColumnValuesToBeInSet") in checked and (name, "ExpectColumnValuesToBeBetween") in checked
    # the default policy still rejects a --no-privacy model (exit 3); the validation check passes
    r = runner.invoke(app, ["gate", str(rep), "--json"], catch_exceptions=False)
    assert r.exit_code in (0, 3), r.output
    decision = json.loads(r.output)
    check = next(c for c in decision["checks"] if c["metric"] == "validation.success_rate")
    assert check["passed"] and not check["skipped"], check


def test_validation_judges_formatted_dates_as_dates() -> None:
    """Negative controls for (a): bounds are compared as dates (a US value inside the bounds
    as text but outside as a date fails), and a value not written in the format fails the
    column's readability check instead of passing unseen."""
    schema = Schema(columns=(Column(name="visit_us", kind="datetime", format=US,
                                    bounds=("2019-01-01", "2020-12-31")),))
    ok = pd.DataFrame({"visit_us": ["01/15/2019", "12/31/2020", "06/30/2020", None]})
    assert validate(ok, schema)["success_rate"] == 1.0
    # '01/15/2021' sorts between the bounds' texts but is after 2020-12-31
    late = validate(pd.DataFrame({"visit_us": ["01/15/2019", "01/15/2021"]}), schema)
    failed = {(e["column"], e["expectation"]) for e in late["expectations"] if not e["success"]}
    assert failed == {("visit_us", "ExpectColumnValuesToBeBetween")}, late["expectations"]
    # day first in a month-first column: not readable in '%m/%d/%Y'
    swapped = validate(pd.DataFrame({"visit_us": ["01/15/2019", "15/01/2019"]}), schema)
    failed = {(e["column"], e["expectation"]) for e in swapped["expectations"] if not e["success"]}
    assert ("visit_us", "ExpectColumnValuesToBeInSet") in failed, swapped["expectations"]


def test_report_encoding_and_audit_read_eu_dates_day_first() -> None:
    col = Column(name="d", kind="datetime", format=EU)
    s = pd.Series(["05.03.2020", "25.03.2020", None])
    want = np.array([pd.Timestamp("2020-03-05").value / 1e9, pd.Timestamp("2020-03-25").value / 1e9, np.nan])
    np.testing.assert_array_equal(canonical(pd.DataFrame({"d": s}), [col])["d"].to_numpy(), want)  # was 3 May
    np.testing.assert_array_equal(_numeric(s, "datetime", EU), want)


def test_time_axis_reads_the_index_in_its_format_and_bounds_as_iso() -> None:
    axis = TimeAxis.for_column(Column(name="d", kind="datetime", format=EU, time_unit="day",
                                      bounds=("2020-01-01", "2020-12-31")))
    ticks = axis.to_ticks(pd.Series(["05.03.2020", "12.04.2020"]))
    assert list(pd.to_datetime(ticks, unit="D")) == [pd.Timestamp("2020-03-05"), pd.Timestamp("2020-04-12")]
    lo, hi = axis.bound_ticks(("2020-01-01", "2020-12-31"))
    assert (lo, hi) == (pd.Timestamp("2020-01-01").value // 86_400_000_000_000,
                        pd.Timestamp("2020-12-31").value // 86_400_000_000_000)
    assert "format" not in axis.to_dict()  # the bundle's strict layout is unchanged; the schema holds it


# ---------------------------------------------------------------- (b) DPHMM index
def test_dphmm_reads_and_writes_an_eu_sequence_index_in_its_format() -> None:
    rng = np.random.default_rng(0)
    n, k = 200, 5
    start = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 90, n), unit="D")
    gaps = rng.integers(20, 41, (n, k))  # 20..40 days between events
    gaps[:, 0] = 0
    days = (np.asarray(start.values)[:, None] + (np.cumsum(gaps, axis=1) * np.timedelta64(1, "D"))).ravel()
    written = pd.Series(days).dt.strftime(EU)
    assert (written.str.slice(0, 2).astype(int) > 12).any() and (written.str.slice(0, 2).astype(int) <= 12).any()
    frame = pd.DataFrame({"pid": np.repeat([f"p{i}" for i in range(n)], k), "day": written,
                          "lab": rng.normal(5.0, 1.0, n * k).round(2)})
    schema = Schema(columns=(Column(name="pid", kind="identifier", nullable=False),
                             Column(name="day", kind="datetime", nullable=False, format=EU, time_unit="day"),
                             Column(name="lab", kind="continuous", nullable=False)),
                    entity_key="pid", sequence_index="day")
    m = DPHMM(n_states=2, epochs=2, batch_size=50, context_epochs=2, context_hidden=(16,), context_embedding_dim=4,
              device="cpu", seed=0).fit(frame, schema=schema, budget=None)
    out = m.sample(100, seed=1)
    text = out["day"]
    assert text.map(type).eq(str).all() and text.str.fullmatch(r"\d{2}\.\d{2}\.\d{4}").all()  # was datetime64
    when = pd.to_datetime(text, format=EU)
    assert (text.str.slice(0, 2).astype(int) > 12).any()
    step = when.groupby(out["pid"]).diff().dropna().dt.days
    assert len(step) > 100 and (step > 0).all()  # strictly increasing within each entity
    # gaps learned from dates read day first: all of them 20..40 days (read month first,
    # '05.03.2020' is 3 May and the learned gaps spread from 1 to ~190 days)
    assert step.between(20, 40).mean() > 0.95, step.describe()
    assert when.min() >= pd.Timestamp("2019-12-01") and when.max() <= pd.Timestamp("2020-12-31")
    # the report reads the index in its format too: time order holds and validation passes
    import reports
    metrics = {m.id: m.value for m in reports.evaluate(real=frame, synthetic=out, schema=schema, seed=0).metrics}
    assert metrics["sequence.ordering_violations"] == 0.0 and metrics["validation.success_rate"] == 1.0


# ---------------------------------------------------------------- (c) order rule
def test_an_order_rule_on_us_dates_is_judged_by_date_not_text() -> None:
    frame = pd.DataFrame({
        "start": ["12/01/2019", "02/15/2020", "03/01/2020", None],
        "end":   ["02/01/2020", "11/01/2019", "03/01/2020", "01/01/2020"],
    })
    # row 0: in order by date, out of order as text; row 1: the reverse; row 2: equal; row 3: not judged
    assert (frame["start"].iloc[:2] > frame["end"].iloc[:2]).tolist() == [True, False]  # what text order says
    rules = (parse_rule("start <= end"),)
    kinds, formats = {"start": "datetime", "end": "datetime"}, {"start": US, "end": US}
    assert violations(frame, rules, kinds, formats)[0].tolist() == [False, True, False, False]
    strict = violations(frame, (parse_rule("start < end"),), kinds, formats)[0]
    assert strict.tolist() == [False, True, True, False]
    fixed = enforce(frame, rules, kinds, formats)
    assert fixed.loc[0].tolist() == ["12/01/2019", "02/01/2020"]  # untouched
    assert fixed.loc[1].tolist() == ["11/01/2019", "02/15/2020"]  # swapped, still written as US dates
    assert not violations(fixed, rules, kinds, formats).any()


@pytest.mark.parametrize("fmt", [US, "%d/%m/%Y"])
def test_sampling_and_the_report_judge_a_date_rule_by_date(fmt: str) -> None:
    """End to end: sampling enforces `start <= end` on US (and EU, day first) dates by date,
    and the report's rule metric counts by date (text order would swap 11/20/2019..02/03/2020
    into a broken row, and count the correct rows as broken; an EU date read month first
    swaps days and months)."""
    import reports
    from synthkit import DPTVAE

    rng = np.random.default_rng(4)
    n = 600
    start = pd.Timestamp("2019-06-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    end = start + pd.to_timedelta(rng.integers(0, 200, n), unit="D")
    real = pd.DataFrame({"start": start.strftime(fmt), "end": end.strftime(fmt), "x": rng.normal(size=n).round(3)})
    assert (real["start"] > real["end"]).mean() > 0.1  # many rows out of order as text, none as dates
    schema = Schema.from_dict({"columns": {"start": {"kind": "datetime", "format": fmt, "time_unit": "day"},
                                           "end": {"kind": "datetime", "format": fmt, "time_unit": "day"},
                                           "x": "continuous"},
                               "rules": ["start <= end"]})
    syn = DPTVAE(epochs=1, batch_size=100, seed=0, device="cpu", calibrate_pairs=False).fit(
        real, schema=schema, budget=None).sample(600, seed=1)
    s, e = pd.to_datetime(syn["start"], format=fmt), pd.to_datetime(syn["end"], format=fmt)
    both = s.notna() & e.notna()
    assert both.sum() > 500 and (s[both] <= e[both]).all()
    assert (syn["start"][both] > syn["end"][both]).any()  # rows kept although their text is out of order
    report = reports.evaluate(real=real, synthetic=syn, schema=schema, seed=0)
    metric = next(m for m in report.metrics if m.id == "validation.rules.violation_rate")
    assert metric.value == 0.0 and metric.details["rules"][0]["real_share"] == 0.0
