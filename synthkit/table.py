"""Table: a pandas frame plus its schema, checked against each other.

Validation lists every problem at once, naming columns and counts of offending cells but
never a cell value: messages reach logs and terminals that private data must not.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthkit.errors import DataValidationError
from synthkit.schema import MAX_EXACT_INTEGER, Column, Schema, infer_schema

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


@dataclass(frozen=True, slots=True)
class Table:
    """A validated frame and its schema. Build with `Table.from_frame`; the input frame
    is never mutated."""

    frame: pd.DataFrame
    schema: Schema

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, schema: Schema | None = None) -> Table:
        if not isinstance(frame, pd.DataFrame):
            raise DataValidationError([f"expected a pandas DataFrame, got {type(frame).__name__}"])
        if schema is None:
            schema = infer_schema(frame)
        schema.validate()
        problems = validate_frame(frame, schema)
        if problems:
            raise DataValidationError(problems)
        return cls(frame=frame, schema=schema)

    @property
    def n_rows(self) -> int:
        return len(self.frame)


def validate_frame(frame: pd.DataFrame, schema: Schema) -> list[str]:
    """Every way `frame` contradicts `schema`, as messages without values."""
    problems: list[str] = []
    if len(frame.columns) != len(set(map(str, frame.columns))):
        problems.append("the data has duplicated column names")
    data_cols = [str(c) for c in frame.columns]
    missing = [n for n in schema.names if n not in data_cols]
    extra = [n for n in data_cols if n not in schema]
    if missing:
        problems.append(f"columns declared in the schema but absent from the data: {missing}")
    if extra:
        problems.append(
            f"columns in the data but not in the schema: {extra}; add them to the schema "
            "(kind 'identifier' if they must not be learned) or drop them before fitting"
        )
    if len(frame) == 0:
        problems.append("the table is empty (0 rows)")
        return problems
    for col in schema.columns:
        if col.name in data_cols:
            problems.extend(_column_problems(col, frame[col.name]))
    if schema.entity_key and schema.entity_key in data_cols:
        if frame[schema.entity_key].isna().any():
            problems.append(f"entity_key column {schema.entity_key!r} has missing values")
    return problems


def _column_problems(col: Column, s: pd.Series) -> list[str]:
    """What is wrong with one column: the column and the fix, never a value and never a
    count of offending rows (a count of private rows is itself a fact about the data)."""
    where = f"column {col.name!r} ({col.kind})"
    out: list[str] = []
    nulls = int(s.isna().sum())
    if nulls and not col.nullable:
        out.append(f"{where} is declared nullable: false but has missing values; "
                   "set nullable: true or fill them before fitting")
    if nulls == len(s):
        # an all-null column is valid when nullable (a column no record fills must not
        # vanish: one record would decide whether it exists); its null share is learned
        # under DP and the transforms release it as empty
        return out
    if s.dtype == object and bool(s.map(lambda v: isinstance(v, (dict, list, tuple, set, bytes, bytearray))).any()):
        return out + [f"{where} holds nested objects, lists or bytes, which cannot be learned; "
                      "flatten them into one plain value per cell, or drop the column"]
    if col.kind in ("continuous", "integer"):
        values = numeric_values(s)
        if bool((values.isna() & s.notna()).any()):
            out.append(f"{where}: some values are not numbers; clean them, or declare kind 'categorical'")
        finite = values.dropna().to_numpy(dtype=float)
        if not np.isfinite(finite).all():
            out.append(f"{where}: contains infinite values; clean them (or leave those cells empty)")
        finite = finite[np.isfinite(finite)]
        if col.kind == "integer" and len(finite) and not np.all(np.mod(finite, 1.0) == 0):
            out.append(f"{where}: some values are not whole numbers; declare kind 'continuous'")
        if col.kind == "integer" and len(finite) and np.abs(finite).max() > MAX_EXACT_INTEGER:
            out.append(f"{where}: values beyond ±2**53 (9007199254740992) cannot be learned as exact integers; "
                       "declare kind 'identifier' if they are codes, or kind 'continuous'")
        elif col.kind == "continuous" and len(finite) and np.abs(finite).max() > 1e300:
            out.append(f"{where}: values beyond ±1e300 cannot be computed with; change the unit or clean them")
        out.extend(_outside_bounds(col, where, finite))
    elif col.kind == "datetime":
        if bool((datetime_values(s).isna() & s.notna()).any()):
            out.append(f"{where}: some values are not dates/times; clean them, or declare kind 'categorical'")
    elif col.kind == "boolean":
        if bool((boolean_values(s).isna() & s.notna()).any()):
            out.append(f"{where}: some values are not true/false; clean them, or declare kind 'categorical'")
    elif col.kind == "categorical" and col.categories is not None:
        if not bool(s.dropna().astype(str).isin(set(col.categories)).all()):
            out.append(
                f"{where}: some values are outside the declared public categories; "
                "extend 'categories' in the schema or remove the list to learn them under DP"
            )
    return out


def _outside_bounds(col: Column, where: str, finite: np.ndarray) -> list[str]:
    """Declared bounds that no value falls in are a mistake (e.g. [-5, -1] on counts), not
    a clipping choice: every value would be clipped to one end. Values partly outside are
    clipped, as declared bounds are meant to do."""
    if col.bounds is None or not len(finite):
        return []
    try:
        lo, hi = float(col.bounds[0]), float(col.bounds[1])
    except (TypeError, ValueError):
        return []  # the schema's own validation names it
    if not bool(((finite >= lo) & (finite <= hi)).any()):
        return [f"{where}: no value lies inside the declared bounds [{col.bounds[0]}, {col.bounds[1]}]; "
                "correct the bounds in the schema (values outside them are clipped to the nearest end)"]
    return []


def numeric_values(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype(float)
    if pd.api.types.is_numeric_dtype(s):
        return s.astype("float64")
    return pd.to_numeric(s.astype("string").str.strip(), errors="coerce").astype("float64")


def datetime_values(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas' notice about mixed offsets, handled below
        out = pd.to_datetime(s, errors="coerce", format="mixed")
    if not pd.api.types.is_datetime64_any_dtype(out):
        # mixed UTC offsets (local times across a DST change) parse to objects; as instants
        # they share one scale, UTC
        out = pd.to_datetime(s, errors="coerce", format="mixed", utc=True)
    return out


def boolean_values(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean")
    lowered = s.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[lowered.isin(_TRUE)] = True
    out[lowered.isin(_FALSE)] = False
    return out
