"""Declared rules (synthkit.rules): parsed and validated with every problem at once,
enforced on every sampled chunk, counted in the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit import DPTVAE, PrivacyBudget, Schema
from synthkit.errors import SchemaError
from synthkit.rules import enforce, parse_rule, violations

KINDS = {"rel": "categorical", "sex": "categorical", "smoker": "boolean", "start": "integer", "end": "integer",
         "fees": "continuous", "principal": "continuous", "total": "continuous"}


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"rel": ["husband", "husband", "wife", None], "sex": ["female", "male", "male", "female"],
                         "smoker": pd.array([True, False, None, True], dtype="boolean"),
                         "start": pd.array([5, 1, 3, None], dtype="Int64"), "end": pd.array([2, 4, 3, 1], dtype="Int64"),
                         "fees": [1.0, 2.0, 3.0, np.nan], "principal": [10.0, 20.0, 30.0, 1.0],
                         "total": [11.0, 25.0, 33.0, 9.0]})


def test_forms_parse():
    assert parse_rule("rel == husband => sex == male").columns == ("rel", "sex")
    assert parse_rule("rel == 'own child' => `home owner` == no").values == ("own child", "no")
    r = parse_rule("end >= start")
    assert (r.kind, r.columns, r.strict) == ("order", ("start", "end"), False)
    assert parse_rule("fees + principal == total").columns == ("fees", "principal", "total")
    with pytest.raises(ValueError, match="matches no form"):
        parse_rule("fees * 2 == total")


def test_violations_are_counted_and_enforce_removes_every_one():
    rules = tuple(parse_rule(t) for t in ("rel == husband => sex == male", "start <= end", "fees + principal == total",
                                          "rel == wife => smoker == false"))
    frame = _frame()
    before = violations(frame, rules, KINDS)
    # row 0 breaks the implication; row 0 the order; row 1 the sum; nulls are not judged
    assert before.sum(axis=1).tolist() == [1, 1, 1, 0]
    after = enforce(frame, rules, KINDS)
    assert not violations(after, rules, KINDS).any()
    assert after.loc[0, "sex"] == "male" and (after.loc[0, "start"], after.loc[0, "end"]) == (2, 5)
    assert after.loc[1, "total"] == 22.0
    assert after.loc[3].equals(frame.loc[3])      # a row with nulls in a rule's columns is left alone
    assert frame.loc[0, "sex"] == "female"        # the input is not modified


def test_schema_lists_every_rule_problem_at_once():
    with pytest.raises(SchemaError) as err:
        Schema.from_dict({"columns": {"a": "categorical", "b": "integer", "c": "continuous"},
                          "rules": ["a == x => b == 1", "b <= c", "z + b == c", "a ~ b"]})
    text = str(err.value)
    assert "implication needs categorical" in text and "order needs two numeric" in text
    assert "['z']" in text and "matches no form" in text


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    married = rng.random(n) < 0.5
    male = rng.random(n) < 0.6
    start = rng.integers(0, 50, n)
    return pd.DataFrame({"rel": np.where(married, np.where(male, "husband", "wife"), "single"),
                         "sex": np.where(male, "male", "female"), "start": start, "end": start + rng.integers(0, 20, n),
                         "fees": np.round(rng.uniform(0, 10, n), 2), "principal": np.round(rng.uniform(0, 100, n), 2)}
                        ).assign(total=lambda f: f.fees + f.principal)


def test_sampling_and_the_report_honour_declared_rules():
    import reports
    real = _table(3000, 1)
    base = {"columns": {"rel": "categorical", "sex": "categorical", "start": "integer", "end": "integer",
                        "fees": "continuous", "principal": "continuous", "total": "continuous"}}
    rules = ["rel == husband => sex == male", "rel == wife => sex == female", "start <= end", "fees + principal == total"]
    parsed = tuple(parse_rule(r) for r in rules)
    kinds = {c: (v if isinstance(v, str) else v["kind"]) for c, v in base["columns"].items()}
    budget = PrivacyBudget(epsilon=3.0, delta=1e-6)
    # the control: the same model without the rules (and without the pair tree) breaks them
    control = DPTVAE(epochs=1, batch_size=300, seed=0, device="cpu", calibrate_pairs=False).fit(
        real, schema=Schema.from_dict(base), budget=budget).sample(3000, seed=1)
    assert (violations(control, parsed, kinds).mean(axis=1) > 0.05).all()
    schema = Schema.from_dict({**base, "rules": rules})
    model = DPTVAE(epochs=1, batch_size=300, seed=0, device="cpu", calibrate_pairs=False).fit(
        real, schema=schema, budget=budget)
    syn = model.sample(3000, seed=1)
    assert not violations(syn, parsed, kinds).any()
    report = reports.evaluate(real=real, synthetic=syn, schema=schema, seed=0)
    metric = next(m for m in report.metrics if m.id == "validation.rules.violation_rate")
    assert metric.value == 0.0
    assert [r["real_share"] for r in metric.details["rules"]] == [0.0, 0.0, 0.0, 0.0]
    broken = reports.evaluate(real=real, synthetic=control, schema=schema, seed=0)
    assert next(m for m in broken.metrics if m.id == "validation.rules.violation_rate").value > 0.05
