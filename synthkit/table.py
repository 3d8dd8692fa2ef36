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
from synthkit.schema import Column, Schema, infer_schema

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
    where = f"column {col.name!r} ({col.kind})"
    out: list[str] = []
    nulls = int(s.isna().sum())
    if nulls and not col.nullable:
        out.append(f"{where} is declared nullable: false but has {nulls} missing values")
    if nulls == len(s):
        # an all-null column is valid when nullable (a column no record fills must not
        # vanish: one record would decide whether it exists); its null share is learned
        # under DP and the transforms release it as empty
        return out
    if col.kind in ("continuous", "integer"):
        values = numeric_values(s)
        bad = int((values.isna() & s.notna()).sum())
        if bad:
            out.append(f"{where}: {bad} values are not numbers")
        finite = values.dropna()
        if not np.isfinite(finite.to_numpy(dtype=float)).all():
            out.append(f"{where}: contains infinite values")
        if col.kind == "integer" and len(finite) and not np.all(np.mod(finite.to_numpy(dtype=float), 1.0) == 0):
            out.append(f"{where}: {int((np.mod(finite.to_numpy(dtype=float), 1.0) != 0).sum())} values are not whole numbers; declare kind 'continuous'")
    elif col.kind == "datetime":
        bad = int((datetime_values(s).isna() & s.notna()).sum())
        if bad:
            out.append(f"{where}: {bad} values are not dates/times")
    elif col.kind == "boolean":
        bad = int((boolean_values(s).isna() & s.notna()).sum())
        if bad:
            out.append(f"{where}: {bad} values are not true/false")
    elif col.kind == "categorical" and col.categories is not None:
        allowed = set(col.categories)
        outside = int((~s.dropna().astype(str).isin(allowed)).sum())
        if outside:
            out.append(
                f"{where}: {outside} values are outside the declared public categories; "
                "extend 'categories' in the schema or remove the list to learn them under DP"
            )
    return out


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
