"""Column kinds decided under DP, for a private fit that is given no schema.

`infer_schema` reads the rows: one row with a fraction in an integer column, a word in a
number column or one more distinct value could flip a column's kind, and the kind shapes
the bundle. So a private fit without a schema decides each kind from NOISY counts instead,
charged to the fit's own ledger (event "schema-inference") before anything else is
released. Per column, one Gaussian release of a histogram and a count:

- every non-null cell falls in exactly one class: boolean-spelled (true/false, yes/no,
  t/f, y/n), ISO date, whole number, other number, other text;
- the number of distinct non-null values.

One row moves one class by 1 and the distinct count by at most 1, so one privacy unit of
k rows moves the release of d columns by at most k·√(2d) in L2 norm. The decisions are
post-processing of the noisy counts, with cut-offs of `infer_schema`'s kind (boolean,
datetime, integer, continuous, identifier, categorical) wide enough for the noise:

- >= 80% of cells one class: boolean, datetime, or a number (integer when under 10% of
  the numbers have a fraction, else continuous);
- a name that looks like an identifier and > 50% distinct values, or text with > 90%
  distinct values: identifier (never learned);
- otherwise categorical; also when the noisy non-null count is too small to tell.

The column NAMES are public (the source's header, not a row); the roles (entity key,
sequence index, targets, sensitive) are the user's declarations. Unlike `infer_schema`,
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
from synthkit.schema import _IDENTIFIER_NAME, Column, Schema

logger = logging.getLogger(__name__)

EVENT = "schema-inference"
INFERENCE_SHARE = 0.05  # of the target's ρ (zCDP), spent on the counts below
MAJORITY = 0.8  # share of the cells one class needs; at 4 noise std of n the margin is >= 4 std
CLASSES = ("boolean", "date", "whole", "number", "text")
N_COUNTS = len(CLASSES) + 1  # + distinct values
_BOOL = {"true", "false", "yes", "no", "t", "f", "y", "n"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def inference_event(budget: PrivacyBudget, *, k: int, n_columns: int) -> GaussianEvent:
    """The one Gaussian release of the inference, from the budget, k and the column count
    alone (public). In zero-concentrated terms it takes INFERENCE_SHARE of the ρ that the
    whole target ε would allow one Gaussian, as the preprocessing plan splits its share; the
    training noise is then calibrated to what the ledger has left."""
    sensitivity = float(k) * math.sqrt(2 * max(n_columns, 1))

    lo = rho_for_epsilon(budget.epsilon, budget.delta)  # ρ of the whole target
    return GaussianEvent(name=EVENT, sigma=sensitivity / math.sqrt(2 * INFERENCE_SHARE * lo), sensitivity=sensitivity)


def _counts(s: pd.Series) -> np.ndarray:
    """One column's class histogram and distinct count (exact; noised by the caller)."""
    non_null = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        text = non_null.map(lambda v: "true" if v else "false")
    elif pd.api.types.is_datetime64_any_dtype(s):
        text = non_null.dt.strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = non_null.astype(str).str.strip()
    is_bool = text.str.lower().isin(_BOOL).to_numpy()
    is_date = text.str.match(_ISO_DATE).to_numpy(dtype=bool) & ~is_bool
    numeric = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    is_num = np.isfinite(numeric) & ~is_bool & ~is_date
    is_whole = is_num & (np.mod(np.where(is_num, numeric, 0.5), 1.0) == 0)
    n_text = len(text) - int(is_bool.sum() + is_date.sum() + is_num.sum())
    return np.array([is_bool.sum(), is_date.sum(), is_whole.sum(), (is_num & ~is_whole).sum(), n_text,
                     text.nunique()], dtype=float)


def decide_kind(name: str, noisy: np.ndarray, sigma: float) -> str:
    """A kind from one column's noisy counts (post-processing)."""
    n = float(np.sum(noisy[: len(CLASSES)]))  # unbiased: the noise of the classes is not clipped here
    n_bool, n_date, n_whole, n_frac, n_text, n_distinct = (max(float(x), 0.0) for x in noisy)
    if n < 20 or n < 4.0 * sigma * math.sqrt(len(CLASSES)):  # too few cells to tell: learn labels
        return "categorical"
    distinct = min(n_distinct / n, 1.0)
    if n_bool >= MAJORITY * n:
        return "boolean"
    if n_date >= MAJORITY * n:
        return "datetime"
    if _IDENTIFIER_NAME.search(name) and distinct > 0.5:
        return "identifier"
    if n_whole + n_frac >= MAJORITY * n:
        return "continuous" if n_frac >= 0.1 * (n_whole + n_frac) else "integer"
    if distinct > 0.9 and n > 50:
        return "identifier"
    return "categorical"


def decide_index_kind(noisy: np.ndarray) -> str:
    """The kind of a declared sequence index, from the same noisy counts: it must be ordered,
    so where `decide_kind` found no clear kind (too few cells, mixed classes) the larger of
    dates and numbers decides (post-processing); a value the kind cannot read then fails
    validation with a message, as with a declared schema."""
    _, n_date, n_whole, n_frac = (max(float(x), 0.0) for x in noisy[:4])
    if n_date > n_whole + n_frac:
        return "datetime"
    return "continuous" if n_frac >= 0.1 * (n_whole + n_frac) and n_frac > 0 else "integer"


def dp_infer_schema(frame: pd.DataFrame, *, ledger: PrivacyLedger, budget: PrivacyBudget, k: int,
                    rng: np.random.Generator, entity_key: str | None = None, sequence_index: str | None = None,
                    sensitive: Iterable[str] = (), identifiers: Iterable[str] = (),
                    targets: Iterable[str] = (), unit_codes: np.ndarray | None = None) -> Schema:
    """The schema of `frame` with kinds decided from noisy counts, charged to `ledger`.

    The caller bounds each unit to k rows first (`frame` holds at most k rows per unit)."""
    ident = set(identifiers)
    names = [str(c) for c in frame.columns]
    decided_cols = [n for n in names if n not in ident and n != entity_key]
    event = inference_event(budget, k=k, n_columns=len(decided_cols))
    ledger.charge(event)
    kinds: dict[str, str] = {}
    for name in decided_cols:
        noisy = _counts(frame[name]) + rng.normal(0.0, event.sigma, size=N_COUNTS)
        kinds[name] = decide_kind(name, noisy, event.sigma)
        if name == sequence_index and kinds[name] not in ("datetime", "integer", "continuous"):
            kinds[name] = decide_index_kind(noisy)  # a declared order needs an ordered kind
    columns = []
    for name in names:
        kind = "identifier" if (name in ident or name == entity_key) else kinds[name]
        columns.append(Column(name=name, kind=kind, nullable=name != entity_key))
    schema = Schema(columns=tuple(columns), entity_key=entity_key, sequence_index=sequence_index,
                    sensitive=tuple(sensitive), targets=tuple(dict.fromkeys(targets))).validate()
    logger.info("no schema given: column kinds decided under DP (event %r): %s; to choose them yourself, run "
                "`synthkit schema infer`, review the file and pass --schema", EVENT,
                ", ".join(f"{n}={kinds.get(n, 'identifier')}" for n in names))
    return schema
