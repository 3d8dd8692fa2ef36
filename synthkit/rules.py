"""Declared rules between columns: public knowledge that synthetic rows must obey exactly.

A DP model learns relations up to noise, so a rule that holds in every real row ("a husband
is male", "admission before discharge", "fees + principal = total") can be broken in a few
synthetic rows. Rules written in the schema are PUBLIC (the user asserts them; nothing is
learned from the data) and sampling enforces them after the model has drawn a chunk
(post-processing, no privacy cost), as SDV's constraints do. The report counts the rows
that break each rule, in the real data too, so a rule that does not hold there shows up.

Three forms (column names as in the schema, in backticks when they hold spaces or symbols):
- implication: ``relationship == Husband => sex == Male`` (categorical or boolean columns):
  a row with the premise gets the consequent's value;
- order: ``admitted <= discharged`` (also ``<``, ``>=``, ``>``; numeric or datetime columns
  of one kind): a row in the wrong order gets the two values swapped (a strict rule whose
  two values are equal stays counted as broken); datetimes written as text are compared as
  dates read with each column's `format` (pass `formats`), never as text ('12/01/2019' is
  before '02/01/2020' under '%m/%d/%Y');
- sum: ``fees + principal == total`` (integer or continuous columns): the total is
  recomputed from the parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from synthkit.schema import Schema

_NAME = r"(`[^`]+`|[A-Za-z_][\w.\-]*)"
_IMPLIES = re.compile(rf"^\s*{_NAME}\s*==\s*(.+?)\s*=>\s*{_NAME}\s*==\s*(.+?)\s*$")
_ORDER = re.compile(rf"^\s*{_NAME}\s*(<=|<|>=|>)\s*{_NAME}\s*$")
_SUM = re.compile(rf"^\s*({_NAME}(?:\s*\+\s*{_NAME})+)\s*==\s*{_NAME}\s*$")
_FORMS = "'A == x => B == y', 'A <= B' (or <, >=, >) or 'A + B == C'"


@dataclass(frozen=True, slots=True)
class Rule:
    text: str
    kind: Literal["implies", "order", "sum"]
    columns: tuple[str, ...]       # implies: (A, B); order: (low, high); sum: (parts..., total)
    values: tuple[str, ...] = ()   # implies: (x, y)
    strict: bool = False           # order: < instead of <=


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith("`") and name.endswith("`") else name


def _value(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def parse_rule(text: str) -> Rule:
    """One rule from its text; ValueError with the allowed forms when it matches none."""
    if not isinstance(text, str):
        raise ValueError(f"a rule must be a string of the form {_FORMS}")
    if m := _IMPLIES.match(text):
        return Rule(text, "implies", (_unquote(m[1]), _unquote(m[3])), (_value(m[2]), _value(m[4])))
    if m := _ORDER.match(text):
        low, op, high = _unquote(m[1]), m[2], _unquote(m[3])
        if op in (">=", ">"):
            low, high = high, low
        return Rule(text, "order", (low, high), strict=op in ("<", ">"))
    if m := _SUM.match(text):
        parts = tuple(_unquote(p.strip()) for p in re.split(r"\s*\+\s*", m[1]))
        return Rule(text, "sum", parts + (_unquote(m[m.lastindex]),))
    raise ValueError(f"rule {text!r} matches no form; write {_FORMS}")


def rule_problems(texts: tuple[str, ...], schema: Schema) -> list[str]:
    """Every problem with the declared rules (unknown columns, wrong kinds, bad syntax)."""
    problems = []
    learned = {c.name: c for c in schema.learned_columns}
    for text in texts:
        try:
            rule = parse_rule(text)
        except ValueError as err:
            problems.append(str(err))
            continue
        missing = [c for c in rule.columns if c not in learned]
        if missing:
            problems.append(f"rule {text!r} names {missing}, not learned columns of the schema; use column names "
                            "as declared (identifiers and the entity key are not learned)")
            continue
        kinds = [learned[c].kind for c in rule.columns]
        if rule.kind == "implies" and not all(k in ("categorical", "boolean") for k in kinds):
            problems.append(f"rule {text!r}: an implication needs categorical or boolean columns, got {kinds}")
        elif rule.kind == "order" and not (kinds[0] == kinds[1] and kinds[0] in ("integer", "continuous", "datetime")):
            problems.append(f"rule {text!r}: an order needs two numeric or two datetime columns of one kind, got {kinds}")
        elif rule.kind == "sum" and not all(k in ("integer", "continuous") for k in kinds):
            problems.append(f"rule {text!r}: a sum needs integer or continuous columns, got {kinds}")
    return problems


def _text(s: pd.Series) -> np.ndarray:
    """Values as text for comparison with a rule's value (booleans as True/False)."""
    if pd.api.types.is_bool_dtype(s) or str(s.dtype) == "boolean":
        out = s.astype(object).map({True: "True", False: "False"})
    else:
        out = s.astype(object)
    return np.where(pd.isna(out), None, out.astype(str)).astype(object)


def _matches(s: pd.Series, value: str, kind: str) -> np.ndarray:
    text = _text(s)
    if kind == "boolean":
        from synthkit.table import boolean_values
        want = boolean_values(pd.Series([value])).iloc[0]
        truth = boolean_values(s)
        return (truth == want).fillna(False).to_numpy(dtype=bool) if not pd.isna(want) else text == value
    return text == value


def _ordered(s: pd.Series, kind: str, fmt: str | None) -> pd.Series:
    """An order rule's column as comparable values: a datetime column as UTC nanoseconds
    (float, NaN when missing or not readable in its `format`), other columns as they are."""
    if kind != "datetime":
        return s
    from synthkit.table import datetime_values
    d = datetime_values(s, fmt)
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    ns = d.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
    ns[d.isna().to_numpy()] = np.nan
    return pd.Series(ns, index=s.index)


def violations(frame: pd.DataFrame, rules: tuple[Rule, ...], kinds: dict[str, str],
               formats: dict[str, str | None] | None = None) -> np.ndarray:
    """[rules, rows] True where a row breaks a rule (rows with a null in the rule's columns
    are not judged). `formats`: each datetime column's declared (or DP-decided) `format`,
    for columns written as text ('%m/%d/%Y'); without it such text is read as ISO."""
    formats = formats or {}
    out = np.zeros((len(rules), len(frame)), dtype=bool)
    for i, rule in enumerate(rules):
        if rule.kind == "implies":
            a, b = rule.columns
            premise = _matches(frame[a], rule.values[0], kinds[a])
            present = frame[b].notna().to_numpy()
            out[i] = premise & present & ~_matches(frame[b], rule.values[1], kinds[b])
        elif rule.kind == "order":
            lo, hi = (_ordered(frame[c], kinds.get(c, ""), formats.get(c)) for c in rule.columns)
            both = (lo.notna() & hi.notna()).to_numpy()
            with np.errstate(invalid="ignore"):
                bad = (lo >= hi) if rule.strict else (lo > hi)
            out[i] = both & bad.fillna(False).to_numpy(dtype=bool)
        else:
            parts = [pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float) for c in rule.columns]
            total = parts.pop()
            s = np.sum(parts, axis=0)
            ok = ~np.isnan(s) & ~np.isnan(total)
            out[i] = ok & ~np.isclose(s, total, rtol=1e-9, atol=1e-6)
    return out


def enforce(frame: pd.DataFrame, rules: tuple[Rule, ...], kinds: dict[str, str],
            formats: dict[str, str | None] | None = None) -> pd.DataFrame:
    """The frame with every rule made to hold (see the module docstring), in rule order;
    `formats` as in `violations`."""
    if not rules:
        return frame
    out = frame.copy()
    for rule in rules:
        bad = violations(out, (rule,), kinds, formats)[0]
        if not bad.any():
            continue
        if rule.kind == "implies":
            b = rule.columns[1]
            value: object = rule.values[1]
            if kinds[b] == "boolean":
                from synthkit.table import boolean_values
                truth = boolean_values(pd.Series([value])).iloc[0]
                same = _text(out[b]) == value
                # keep the column's own spelling when it has one for that truth value
                value = out[b][same].iloc[0] if same.any() else (bool(truth) if not pd.isna(truth) else value)
            col = out[b].astype(object) if not isinstance(value, bool) else out[b]
            col = col.copy()
            col[bad] = value
            out[b] = col
        elif rule.kind == "order":
            lo, hi = rule.columns
            a, b = out[lo].copy(), out[hi].copy()
            a[bad], b[bad] = out[hi][bad].to_numpy(), out[lo][bad].to_numpy()
            out[lo], out[hi] = a, b
        else:
            *parts, total = rule.columns
            s = sum(pd.to_numeric(out[c], errors="coerce") for c in parts)
            col = out[total].copy()
            if kinds[total] == "integer":
                col[bad] = np.round(s[bad]).astype("int64")
            else:
                col[bad] = s[bad]
            out[total] = col
    return out
