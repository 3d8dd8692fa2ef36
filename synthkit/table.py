"""Table: a pandas frame plus its schema, checked against each other.

Validation lists every problem at once, naming columns and counts of offending cells but
never a cell value: messages reach logs and terminals that private data must not.
"""

from __future__ import annotations

import re
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
    def from_frame(cls, frame: pd.DataFrame, schema: Schema | None = None, *,
                   require_learned: bool = True) -> Table:
        """`require_learned=False` (a DPHMM context table) accepts a schema whose every
        column is an identifier (Schema.validate)."""
        if not isinstance(frame, pd.DataFrame):
            raise DataValidationError([f"expected a pandas DataFrame, got {type(frame).__name__}"])
        if schema is None:
            schema = infer_schema(frame)
        schema.validate(require_learned=require_learned)
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
        if bool((datetime_values(s, col.format).isna() & s.notna()).any()):
            if col.format == "excel":
                out.append(f"{where}: some values are not Excel serial day numbers (format 'excel'); clean them, "
                           "or remove the format if the column holds written dates")
            elif col.format not in (None, "iso"):
                out.append(f"{where}: some values do not match its format {col.format!r}; correct 'format' in "
                           "the schema (a strftime pattern such as '%d.%m.%Y' or '%m/%d/%Y %H:%M', 'iso' or "
                           "'excel'; without --schema a private fit decides it under DP: run `synthkit schema "
                           "infer` and pass --schema), or clean those cells")
            else:
                out.append(f"{where}: some values are not dates/times; declare their 'format' in the schema "
                           "(e.g. '%d.%m.%Y' or '%m/%d/%Y'), clean them, or declare kind 'categorical'")
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
    """Numbers of a column. Text cells are read each on its own by a fixed rule (never one
    read from the column): a plain number, or one written as banks and spreadsheets export
    it (`number_shapes`: '1,234', '1,234,567.50', '$1,234.50', '-€12.00')."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype(float)
    if pd.api.types.is_numeric_dtype(s):
        return s.astype("float64")
    text = s.astype("string").str.strip()
    out = pd.to_numeric(text, errors="coerce").astype("float64")
    rest = out.isna() & text.notna()
    if bool(rest.any()):
        shaped = number_shapes(text[rest])
        out[shaped.index] = shaped["value"].to_numpy(dtype=float)
    return out


# ---------------------------------------------------------------- number formats
# How banks and spreadsheets write numbers (issue 17, s13): thousands grouped with ',' and
# a currency symbol in front ('1,234', '1,234,567.50', '$1,234.50', '-$12.00', '$-12.00').
# Each cell is read by its own text (`number_shapes`, used by `numeric_values`), so no
# column-level guess is needed to read them; how a COLUMN is written back is its public
# `format` (schema.py: an Excel-style number pattern such as '#,##0', '#,##0.00' or
# '$#,##0.00'), declared, proposed by `schema infer` from the rows (`detect_number_format`),
# or decided under DP from noisy counts of these shapes (synthkit.dp_schema). A ',' decimal
# mark ('1.234,50') is not read (a '1,500' is read as fifteen hundred).
CURRENCY_SYMBOLS: tuple[str, ...] = ("$", "€", "£")
_NUMBER_SHAPE = re.compile(r"^(-)?([$€£])?(-)?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?$")
_NUMBER_FORMAT = re.compile(r"^([$€£]?)(#,##0|0)(?:\.(0+|#+))?$")


def number_shapes(text: pd.Series) -> pd.DataFrame:
    """Per cell (text): `value` (float; NaN when the cell has no number shape with a
    currency symbol or thousands groups), `symbol` ('' or one of CURRENCY_SYMBOLS),
    `grouped` (thousands written with ',') and `decimals` (digits after the '.').
    Vectorised; plain numbers ('1234.5') are not shaped (NaN): `pd.to_numeric` reads them."""
    m = text.astype("string").str.strip().str.extract(_NUMBER_SHAPE)
    symbol = m[1].fillna("")
    grouped = m[3].str.contains(",", regex=False).fillna(False).astype(bool)
    shaped = m[3].notna() & ~(m[0].notna() & m[2].notna()) & ((symbol != "") | grouped)
    digits = m[3].str.replace(",", "", regex=False) + ("." + m[4].fillna("0"))
    value = pd.to_numeric(digits.where(shaped), errors="coerce").astype("float64")
    value = value.where(~(m[0].notna() | m[2].notna()), -value)
    return pd.DataFrame({"value": value.where(shaped), "symbol": symbol.where(shaped, "").astype(object),
                         "grouped": grouped & shaped, "decimals": m[4].str.len().fillna(0).astype(int)},
                        index=text.index)


def number_pattern(symbol: str, grouped: bool, decimals: int | None) -> str:
    """The Excel-style pattern of a number shape: decimals None writes up to 6 decimals
    (trailing zeros dropped)."""
    body = "#,##0" if grouped else "0"
    tail = "" if decimals == 0 else (".######" if decimals is None else "." + "0" * decimals)
    return f"{symbol}{body}{tail}"


def is_number_format(fmt: object) -> bool:
    return isinstance(fmt, str) and bool(_NUMBER_FORMAT.match(fmt))


def render_numbers(values: pd.Series, fmt: str | None) -> pd.Series:
    """Numbers written in a column's number `format` (post-processing of synthetic values):
    text such as '$1,234.50' ('-$1,234.50' below zero), None where missing; the values
    unchanged without a format."""
    m = _NUMBER_FORMAT.match(fmt) if isinstance(fmt, str) else None
    if m is None:
        return values
    symbol, body, tail = m.group(1), m.group(2), m.group(3) or ""
    x = numeric_values(values)
    sep = "," if body == "#,##0" else ""
    if tail.startswith("#"):
        def one(v: float) -> str:
            return f"{abs(v):{sep}.{len(tail)}f}".rstrip("0").rstrip(".")
    else:
        def one(v: float) -> str:
            return f"{abs(v):{sep}.{len(tail)}f}"
    out = [None if not np.isfinite(v) else ("-" if v < 0 and float(one(v).replace(",", "")) != 0 else "")
           + symbol + one(v) for v in x.to_numpy(dtype=float)]
    return pd.Series(out, index=values.index, dtype=object)


def render_number_columns(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """`frame` with each number column that has a `format` written in it (`render_numbers`);
    the one place the table models and DPHMM write synthetic numbers as the input was."""
    for col in schema.columns:
        if col.format is not None and col.kind in ("continuous", "integer") and col.name in frame.columns:
            frame[col.name] = render_numbers(frame[col.name], col.format)
    return frame


def detect_number_format(s: pd.Series) -> str | None:
    """The number `format` of a text column read from EVERY value (the rows-based proposal
    of `schema infer`, reviewed before a private fit): None when no value is shaped (plain
    numbers); else the symbol most values carry, grouped when any value is, and the number
    of decimals when every value has the same (None: up to 6). Every value must be a number."""
    text = s.dropna().astype("string").str.strip()
    if not len(text) or pd.api.types.is_numeric_dtype(s):
        return None
    shapes = number_shapes(text)
    is_shaped = shapes["value"].notna()
    if not bool(is_shaped.any()):
        return None
    plain = pd.to_numeric(text[~is_shaped], errors="coerce")
    if bool(plain.isna().any()):
        return None
    symbols = shapes.loc[is_shaped, "symbol"].value_counts()
    decimals = pd.concat([shapes.loc[is_shaped, "decimals"],
                          text[~is_shaped].str.extract(r"\.(\d+)$")[0].str.len().fillna(0).astype(int)])
    n_dec = int(decimals.iloc[0]) if decimals.nunique() == 1 else None
    return number_pattern(str(symbols.index[0]), bool(shapes["grouped"].any()), n_dec)


def datetime_values(s: pd.Series, fmt: str | None = None) -> pd.Series:
    """Datetimes of a column. `fmt` is the column's DECLARED (or DP-decided) `format`: a
    strftime pattern, 'excel' (serial day numbers) or 'iso'/None, where each value is read
    on its own by a fixed rule (ISO; dateutil otherwise), never by a rule read from the
    column. Values already typed as datetimes (a connector parsed them) are kept."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    if fmt == "excel":
        days = numeric_values(s)
        days = days.where(days.abs() < EXCEL_MAX_SERIAL)  # out of datetime64's range: not a date
        return (EXCEL_EPOCH + pd.to_timedelta(days * DAY_SECONDS, unit="s")).dt.round("s")
    if fmt is not None and fmt != "iso" and not fmt.startswith("%Y-%m-%d"):
        # (an ISO pattern reads every ISO value, as 'iso' does; it sets how they are written)
        text = s.astype("string").str.strip()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return pd.to_datetime(text, format=fmt, errors="coerce")
        except (ValueError, TypeError):  # mixed UTC offsets under a %z pattern: as instants, UTC
            return pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas' notice about mixed offsets, handled below
        out = pd.to_datetime(s, errors="coerce", format="mixed")
    if not pd.api.types.is_datetime64_any_dtype(out):
        # mixed UTC offsets (local times across a DST change) parse to objects; as instants
        # they share one scale, UTC
        out = pd.to_datetime(s, errors="coerce", format="mixed", utc=True)
    return out


def utc_seconds(s: pd.Series, fmt: str | None = None) -> np.ndarray:
    """A datetime column as float seconds since the epoch, UTC (NaN where missing or not
    readable in `fmt`, the column's declared or DP-decided format): a value with an offset
    is converted, one without is read as UTC."""
    d = datetime_values(s, fmt)
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    ns = d.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
    ns[d.isna().to_numpy()] = np.nan
    return ns / 1e9


def render_datetimes(d: pd.Series, fmt: str | None) -> pd.Series:
    """Datetimes written in a column's `format` (post-processing of synthetic values):
    a strftime pattern gives text (None for a missing value), 'excel' serial day numbers
    (whole days when the pattern of the values is whole days), 'iso'/None the datetimes."""
    if fmt is None or fmt == "iso":
        return d
    if fmt == "excel":
        naive = d.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(d.dt, "tz", None) is not None else d
        days = (naive - EXCEL_EPOCH) / pd.Timedelta(days=1)
        whole = days.dropna()
        return days.round().astype("Int64") if bool((whole == whole.round()).all()) else days
    out = d.dt.strftime(fmt).astype(object)
    return out.where(d.notna(), None)


# ---------------------------------------------------------------- date formats
# How people write dates (issue 17). A value of a numeric D/M/Y shape is one separator
# (/ . -), a four-digit year last, and an optional time of day in one of TIME_FORMS. Its
# day order is known from the value only when one field is above 12 (`date_shapes`).
# Which shape and order a COLUMN has is a decision: `schema infer` reads it from the rows
# (`detect_date_format`, the reviewed path), a private fit without a schema decides it
# from noisy counts of these shapes (synthkit.dp_schema), a declared `format` is public.
EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # Excel's 1900 date system (serial 1 = 1900-01-01, after its leap bug)
EXCEL_MAX_SERIAL = 100_000  # 2173-10-14: serials beyond are not dates (and would overflow datetime64)
DAY_SECONDS = 86_400
DATE_SEPARATORS: tuple[str, ...] = ("/", ".", "-")
TIME_FORMS: dict[str, str] = {"": "", "hm": " %H:%M", "hms": " %H:%M:%S", "h": " %Hh"}
# the day order of a column whose every value has day and month <= 12 (no evidence either
# way): month first for '/' (US, as pandas and dateutil read it), day first for '.' and '-'
DEFAULT_DAY_FIRST: dict[str, bool] = {"/": False, ".": True, "-": True}
_NUMERIC_DATE = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})"
                           r"(?:\s+(\d{1,2})(?:(:\d{2})(:\d{2})?|(h)))?$")
ISO_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def date_pattern(sep: str, time_form: str, *, day_first: bool) -> str:
    """The strftime pattern of a numeric D/M/Y shape in a day order."""
    day_month = f"%d{sep}%m" if day_first else f"%m{sep}%d"
    return f"{day_month}{sep}%Y{TIME_FORMS[time_form]}"


def date_shapes(text: pd.Series) -> pd.DataFrame:
    """Per value (stripped text): `sep` and `time` of its numeric D/M/Y shape (None when
    it has none) and `evidence`: 'day_first' (first field > 12), 'month_first' (second
    field > 12), 'either' (both <= 12) or None (neither order is a date). Vectorised."""
    m = text.astype("string").str.strip().str.extract(_NUMERIC_DATE)
    a = pd.to_numeric(m[0], errors="coerce")
    b = pd.to_numeric(m[2], errors="coerce")
    ok_a, ok_b = a.between(1, 31), b.between(1, 31)
    day_first = ok_a & b.between(1, 12)
    month_first = ok_b & a.between(1, 12)
    evidence = pd.Series(None, index=text.index, dtype=object)
    evidence[day_first & month_first] = "either"
    evidence[day_first & ~month_first] = "day_first"
    evidence[month_first & ~day_first] = "month_first"
    time = pd.Series("", index=text.index, dtype=object)
    time[m[4].notna()] = "h"
    time[m[5].notna()] = "hm"
    time[m[6].notna()] = "hms"
    shaped = evidence.notna()
    return pd.DataFrame({"sep": m[1].where(shaped, None).astype(object),
                         "time": time.where(shaped, None), "evidence": evidence})


def detect_date_format(s: pd.Series) -> tuple[bool, str | None, bool]:
    """(is a date column, its format, date-only) read from EVERY value of a text column:
    the exact rows-based decision of `schema infer` (reviewed before a private fit; a
    private fit decides it under DP). ISO values give format None ('iso'; '%Y-%m-%d' when
    all are dates); a numeric D/M/Y shape must be the same for every value, and its day
    order is the one the values show (day first when some day is above 12), the
    DEFAULT_DAY_FIRST of its separator when none shows it, and no date when both do."""
    text = s.dropna().astype("string").str.strip()
    if not len(text):
        return False, None, False
    if text.str.match(ISO_DATETIME).all():
        parsed = pd.to_datetime(text, errors="coerce", format="mixed")
        if not parsed.notna().all():
            return False, None, False
        date_only = bool(text.str.match(ISO_DATE_ONLY).all())
        return True, ("%Y-%m-%d" if date_only else _iso_time_pattern(text)), date_only
    shapes = date_shapes(text)
    if shapes["evidence"].isna().any() or shapes["sep"].nunique() != 1 or shapes["time"].nunique() != 1:
        return False, None, False
    sep, time_form = shapes["sep"].iloc[0], shapes["time"].iloc[0]
    seen = set(shapes["evidence"])
    if {"day_first", "month_first"} <= seen:
        return False, None, False
    day_first = ("day_first" in seen) or ("month_first" not in seen and DEFAULT_DAY_FIRST[sep])
    fmt = date_pattern(sep, time_form, day_first=day_first)
    if not datetime_values(text, fmt).notna().all():  # e.g. 31.04. or an hour of 25
        return False, None, False
    return True, fmt, time_form == ""


_ISO_PLAIN_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ])\d{2}:\d{2}(:\d{2})?$")


def _iso_time_pattern(text: pd.Series) -> str | None:
    """The strftime pattern of ISO dates with a time of day when EVERY value is written
    the same plain way: one separator (T or space), minutes or seconds, no fraction and no
    offset (issue 17: `2020-03-15 10:00` came back as `2019-12-08T23:09:16`); None (ISO,
    written with T and whole seconds) otherwise."""
    m = text.str.extract(_ISO_PLAIN_TIME)
    if m[0].isna().any() or m[0].nunique() != 1 or m[1].isna().any() != m[1].isna().all():
        return None
    return f"%Y-%m-%d{m[0].iloc[0]}%H:%M" + ("" if m[1].isna().all() else ":%S")


def boolean_values(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean")
    lowered = s.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[lowered.isin(_TRUE)] = True
    out[lowered.isin(_FALSE)] = False
    rest = out.isna() & lowered.notna()
    if rest.any():  # numbers equal to 1 or 0 however written (1.00, 01, 1e0): a 0/1 flag reads by value
        numeric = pd.to_numeric(lowered[rest], errors="coerce")
        out[numeric.index[numeric == 1]] = True
        out[numeric.index[numeric == 0]] = False
    return out


DECIDED_NOTE = ("cells that the column kinds and formats decided under DP cannot read, if any, were read as "
                "missing values (integer columns: rounded to whole numbers)")


def conform_to_decided(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """`frame` with every cell that the schema's kind (and format) cannot read set to
    missing, for a schema whose kinds were DECIDED UNDER DP (synthkit.dp_schema), never
    declared. Validating the rows against such a decision would turn one row (a word in a
    number column, a date in another order) into a fit that fails or not: a bit about the
    data that no ledger charges. So those cells are read as missing instead (the decided
    columns are nullable), and the caller records `DECIDED_NOTE` whatever the rows hold.
    The entity key and the identifiers are left as they are. `frame` is not mutated."""
    out = frame.copy(deep=False)
    for col in schema.columns:
        if col.name not in out.columns or col.kind == "identifier" or col.name == schema.entity_key:
            continue
        s = out[col.name]
        if col.kind in ("continuous", "integer"):
            values = numeric_values(s).to_numpy(dtype=float, copy=True)
            values[~np.isfinite(values)] = np.nan
            if col.kind == "integer":
                values = np.round(values)
                values[np.abs(values) > MAX_EXACT_INTEGER] = np.nan
            else:
                values[np.abs(values) > 1e300] = np.nan
            out[col.name] = pd.Series(values, index=s.index, dtype="float64")
        elif col.kind == "datetime":
            readable = datetime_values(s, col.format).notna().to_numpy()
            if not readable[s.notna().to_numpy()].all():
                out[col.name] = s.where(readable)
        elif col.kind == "boolean":
            readable = boolean_values(s).notna().to_numpy()
            if not readable[s.notna().to_numpy()].all():
                out[col.name] = s.where(readable)
        elif s.dtype == object:  # categorical: nested objects (JSON lines) are no label
            nested = s.map(lambda v: isinstance(v, (dict, list, tuple, set, bytes, bytearray))).to_numpy(dtype=bool)
            if nested.any():
                out[col.name] = s.where(~nested)
    return out
