"""The great-expectations suite is generated from the schema and the bundle's DP
statistics (never profiled from real data) and catches what it should."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.validation import public_statistics, validate
from synthkit.schema import Schema

SCHEMA = Schema.from_dict({"columns": {
    "id": {"kind": "identifier", "nullable": False}, "age": {"kind": "integer", "nullable": False, "bounds": [0, 120]},
    "income": "continuous", "plan": "categorical", "region": {"kind": "categorical", "categories": ["n", "s"]},
    "seen": {"kind": "datetime", "bounds": ["2020-01-01", "2021-01-01"]}, "smoker": "boolean"}})
DP_STATE = {"income": {"bounds": [0.0, 50.0]}, "plan": {"labels": ["a", "b", "__other__", "__null__"]}}


def frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"id-{i}" for i in range(n)], "age": rng.integers(0, 100, n),
                         "income": rng.uniform(0, 50, n), "plan": rng.choice(["a", "b"], n),
                         "region": rng.choice(["n", "s"], n),
                         "seen": pd.Timestamp("2020-02-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D"),
                         "smoker": rng.random(n) < 0.3})


def test_statistics_come_from_schema_then_dp_only():
    stats = public_statistics(SCHEMA, DP_STATE)
    assert stats["age"] == {"bounds": [0, 120], "bounds_source": "schema"}
    assert stats["income"] == {"bounds": [0.0, 50.0], "bounds_source": "dp"}
    assert stats["plan"] == {"categories": ["a", "b"], "categories_source": "dp"}  # OTHER/NULL tokens are not values
    assert stats["region"]["categories_source"] == "schema"
    # without a bundle nothing is learned, and nothing is profiled from data
    assert "bounds" not in public_statistics(SCHEMA, None)["income"]


def test_clean_output_passes():
    res = validate(frame(), SCHEMA, transformer_state=DP_STATE)
    assert res["success"], [e for e in res["expectations"] if not e["success"]]
    kinds = {e["expectation"] for e in res["expectations"]}
    assert {"ExpectColumnValuesToBeBetween", "ExpectColumnValuesToBeInSet", "ExpectColumnValuesToBeUnique",
            "ExpectColumnValuesToNotBeNull", "ExpectTableColumnsToMatchSet"} <= kinds


def test_each_broken_rule_is_caught():
    cases = {
        "age: within the schema bounds": lambda f: f.assign(age=f["age"].where(f.index != 3, 130)),
        "income: within the dp bounds": lambda f: f.assign(income=f["income"].where(f.index != 3, -1.0)),
        "plan: values among the dp categories": lambda f: f.assign(plan=f["plan"].where(f.index != 3, "zzz")),
        "region: values among the schema categories": lambda f: f.assign(region=f["region"].where(f.index != 3, "e")),
        "id: unique key": lambda f: f.assign(id=f["id"].where(f.index != 3, "id-0")),
        "age: no missing values (nullable: false)": lambda f: f.assign(age=f["age"].astype(float).where(f.index != 3)),
        "seen: within the schema bounds": lambda f: f.assign(seen=f["seen"].where(f.index != 3, pd.Timestamp("2030-01-01"))),
        "the columns are exactly the schema's columns": lambda f: f.drop(columns=["smoker"]),
    }
    for description, breaker in cases.items():
        res = validate(breaker(frame()), SCHEMA, transformer_state=DP_STATE)
        failed = {e["description"] for e in res["expectations"] if not e["success"]}
        assert description in failed, (description, failed)
        assert not res["success"]
