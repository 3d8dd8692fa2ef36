"""A literal "__null__" in an undeclared categorical event column is a value, not a null
(synthkit.models.hmm.discovery.entity_weights, session 11 task B).

Negative control, run once on the code before (30d3ecb): `test_literal_null_is_not_a_null`
failed on its main assertion (the 40 entities holding the text "__null__" gave the null
label a weight of 28.3 = 40/√2 in a column with no null at all); the bracket ("x"'s
weight) passed on both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit.models.hmm.discovery import entity_weights
from synthkit.schema import Column
from synthkit.sequence import TimeAxis, group_events
from synthkit.transforms import NULL


def _grouped(frame: pd.DataFrame):
    col = Column(name="year", kind="integer", nullable=False)
    return group_events(frame, entity_key="pid", axis=TimeAxis.for_column(col), index="year", max_length=None)


def _frame(jobs: dict[str, list]) -> pd.DataFrame:
    return pd.DataFrame([(pid, 2000 + t, v) for pid, vs in jobs.items() for t, v in enumerate(vs)],
                        columns=["pid", "year", "job"])


def test_literal_null_is_not_a_null():
    """40 entities of two events "__null__", "x" and 60 of "x", "x", no missing value: the
    null label gets no weight; "x" weighs 60 + 40/√2 (the literal counts in its entity's
    norm); a real missing value still weighs as the null label."""
    jobs = {f"L{i}": [NULL, "x"] for i in range(40)} | {f"X{i}": ["x", "x"] for i in range(60)}
    w = entity_weights(_grouped(_frame(jobs)), "job")
    assert w["x"] == pytest.approx(60 + 40 / np.sqrt(2))  # bracket
    assert NULL not in w
    w = entity_weights(_grouped(_frame(jobs | {"M": [None, "x"]})), "job")
    assert w[NULL] == pytest.approx(1 / np.sqrt(2))


def test_literal_null_keeps_sensitivity_one():
    """Removing any one entity (one with the literal included) moves the weights by at most 1 in L2."""
    jobs = {"a": [NULL, NULL, "x"], "b": ["x", None], "c": ["y"], "d": [NULL]}
    full = entity_weights(_grouped(_frame(jobs)), "job")
    for pid in jobs:
        less = entity_weights(_grouped(_frame({k: v for k, v in jobs.items() if k != pid})), "job")
        diff = np.array([full.get(k, 0.0) - less.get(k, 0.0) for k in set(full) | set(less)])
        assert np.linalg.norm(diff) <= 1.0 + 1e-9
