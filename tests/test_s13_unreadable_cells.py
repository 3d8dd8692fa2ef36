"""Cells a decided kind cannot read are named by column (issue 17, session 13 trial).

Ecdat `breaches` (1,055 rows): `Date_of_Breach` holds US dates in 86% of its cells and date
ranges ('10/16/2009 - 10/28/2011') in the rest. The fit without a schema decided a date and
read the ranges as missing: the synthetic column came back with 14% nulls where the real one
has none, and no line named it. Now a column decided as dates or numbers whose other cells
clear the noise of the inference release (post-processing, no new budget) is named in one
warning line, with the fix; a clean date or number column is not.

Negative control: on bbe5b2d `test_dates_with_ranges_are_named` fails (no such line)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from synthkit import PrivacyBudget
from synthkit.dp_schema import dp_infer_schema
from synthkit.ledger import PrivacyLedger

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)


def _frame(seed: int, n: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2009-01-01") + pd.to_timedelta(rng.integers(0, 2000, n), unit="D")
    dates = day.strftime("%m/%d/%Y").to_numpy(dtype=object)
    ranged = rng.random(n) < 0.15
    dates[ranged] = [f"{a} - {a}" for a in dates[ranged]]
    return pd.DataFrame({"when": dates, "clean_date": day.strftime("%m/%d/%Y"),
                         "amount": rng.gamma(2.0, 100.0, n).round(2), "n": rng.integers(0, 50, n)})


def _said(frame: pd.DataFrame, seed: int, caplog) -> tuple[str, dict[str, str]]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="synthkit.dp_schema"):
        schema = dp_infer_schema(frame, ledger=PrivacyLedger(BUDGET), budget=BUDGET, k=1,
                                 rng=np.random.default_rng(seed))
    lines = [r.getMessage() for r in caplog.records if "other cells" in r.getMessage()]
    return (lines[0] if lines else ""), {c.name: c.kind for c in schema.columns}


def test_dates_with_ranges_are_named(caplog) -> None:
    named = 0
    for draw in range(10):
        line, kinds = _said(_frame(draw), draw, caplog)
        if kinds["when"] == "datetime":
            named += "'when'" in line
            assert "'clean_date'" not in line and "'amount'" not in line and "'n'" not in line
            assert "10/" not in line and "2009" not in line  # never a value
    assert named >= 8, named


def test_clean_columns_are_not_named(caplog) -> None:
    for draw in range(10):
        line, _ = _said(_frame(draw).drop(columns=["when"]), 50 + draw, caplog)
        assert line == "", line
