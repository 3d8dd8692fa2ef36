"""Errors that carry a list keep their one-line message when pickled (a Ray task, a process
pool, multiprocessing): unpickling called the class with the joined message, and a class that
takes a LIST of problems then split it into characters ("(53 problems): t; h; e; ..."). The
negative control, run once on the code before `__reduce__`: every case below failed."""

from __future__ import annotations

import pickle

import pytest

from synthkit.errors import DataValidationError, SchemaError
from synthkit.mechanisms import RangeNotLearnedError


@pytest.mark.parametrize("error", [
    SchemaError(["column 'age': unknown kind 'numbr'", "column 'id': duplicated"]),
    DataValidationError(["column 'age': 3 cells are not whole numbers; declare it continuous"]),
    RangeNotLearnedError(["column 'age'", "column 'bmi'"]),
    RangeNotLearnedError(["column 'wt'"], fix="declare 'bounds' for {them}"),
], ids=["schema", "data", "range", "range-fix"])
def test_a_pickled_error_keeps_its_message_and_its_problems(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    for attr in ("problems", "whats", "fix"):
        assert getattr(back, attr, None) == getattr(error, attr, None)
