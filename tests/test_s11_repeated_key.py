"""A fit without --entity-key names a column that looks like a repeated key, in one line
(issue 17, session 11, item 5: survival/colon has 2 rows per patient `id`; the fit gave no hint).

The decision reads only the counts the DP kind inference already released (no new charge):
an identifier-like name (public), and a noisy distinct count near n/k for a whole k in 2..10.

Negative control: `test_fit_names_a_repeated_key_once` run against df40585
(PYTHONPATH=/tmp/ctl_A, an archive of it) fails: no line about --entity-key was logged. The
brackets (no line for a unique key, for a non-identifier name with n/2 values, or when the
entity key is declared) pass on both.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from synthkit.dp_schema import _counts, dp_infer_schema
from synthkit.ledger import PrivacyBudget, PrivacyLedger

N_PATIENTS = 400
SECRET = 987654  # a made-up key value; must never appear in a message


def _frame(rows_per_patient: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(SECRET, SECRET + N_PATIENTS), rows_per_patient)
    n = len(ids)
    return pd.DataFrame({"patient_id": ids, "age": rng.integers(30, 80, n),
                         "arm": rng.choice(["obs", "lev"], n), "time": rng.normal(1000, 300, n).round(1)})


def _lines(caplog, frame: pd.DataFrame, entity_key: str | None = None) -> list[str]:
    budget = PrivacyBudget(epsilon=1.0, delta=1e-6)
    ledger = PrivacyLedger(budget=budget, unit="row", max_rows_per_unit=1)
    with caplog.at_level(logging.WARNING, logger="synthkit.dp_schema"):
        caplog.clear()
        dp_infer_schema(frame, ledger=ledger, budget=budget, k=1, rng=np.random.default_rng(11),
                        entity_key=entity_key)
    return [r.getMessage() for r in caplog.records if "--entity-key" in r.getMessage()]


def test_fit_names_a_repeated_key_once(caplog):
    lines = _lines(caplog, _frame(2))
    assert len(lines) == 1, lines
    assert "'patient_id'" in lines[0] and "--entity-key patient_id" in lines[0]
    assert str(SECRET) not in lines[0] and "'age'" not in lines[0]


def test_no_hint_for_a_unique_key_or_a_declared_entity_key(caplog):
    assert _lines(caplog, _frame(1)) == []  # one row per value: k = 1, the row is the unit already
    assert _lines(caplog, _frame(2), entity_key="patient_id") == []


@pytest.mark.parametrize("rows_per_unit", [2, 3, 5])
def test_repeated_key_on_exact_counts(rows_per_unit):
    """Noise-free counts (σ small against them): a key with k rows per value passes; the same
    values under a name that is no identifier's do not (age with n/k distinct values is common)."""
    from synthkit.dp_schema import repeated_key
    ids = pd.Series(np.repeat(np.arange(300), rows_per_unit))
    counts = _counts(ids)
    assert repeated_key("patient_id", counts, sigma=1.0)
    assert repeated_key("PatientID", counts, sigma=1.0)
    assert not repeated_key("age", counts, sigma=1.0)
    assert not repeated_key("patient_id", _counts(pd.Series(np.arange(900))), sigma=1.0)  # k = 1
    # too few values against the noise: the ratio means nothing
    assert not repeated_key("patient_id", counts, sigma=counts[5] / 2.0)
