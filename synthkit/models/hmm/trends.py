"""Columns that move with time within an entity (age, experience, tenure, a cumulative
count): declared non-decreasing, and made so at sampling (post-processing, free).

Which columns are non-decreasing is PUBLIC knowledge the user declares
(`DPHMM(non_decreasing=("age",))`): it is never read from the rows, so it costs no budget
and tells nothing about any one person. (A DP test per column, the share of entities whose
column never falls released with the entity as unit, would be the alternative for a user
who cannot say; it would spend budget on a fact users of a panel nearly always know.)

The HMM draws each event's value given its state and the previous value (AR emission), so
a drawn age may dip by a year where the real never does. The fix projects each entity's
drawn sequence onto the non-decreasing sequences: the mean of its running maximum
(forward, ≥ the draw) and of its running minimum taken backwards (≤ the draw). Both are
non-decreasing, so is their mean, and the two pulls roughly cancel, so the level of the
sequence (and the column's margin) is kept where a running maximum alone would drift
upwards. Missing values stay missing and are skipped; the values stay inside the range of
the entity's own draws, hence inside the column's DP or public bounds.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from synthkit.errors import ConfigError

TREND_KINDS = ("integer", "continuous")


def check_non_decreasing(names: Iterable[str], event_columns: Iterable[Any]) -> tuple[str, ...]:
    """The declared non-decreasing columns, checked against the event columns of the schema
    (names and kinds only, public): one line naming every column that cannot be one."""
    kinds = {c.name: c.kind for c in event_columns}
    names = tuple(names)
    problems = [f"{n!r} is not an event column" if n not in kinds else
                f"{n!r} is {kinds[n]}, not a number" for n in names if kinds.get(n) not in TREND_KINDS]
    if problems:
        raise ConfigError("non_decreasing names columns that cannot rise with time: " + "; ".join(problems)
                          + f"; name integer or continuous event columns (allowed: {sorted(k for k, v in kinds.items() if v in TREND_KINDS)})")
    return names


def project_non_decreasing(x: np.ndarray) -> np.ndarray:
    """[n, T] values (NaN: missing or past an entity's end) → the same shape, non-decreasing
    along each row over its non-missing cells (see the module docstring)."""
    if x.size == 0:
        return x.copy()
    up = np.fmax.accumulate(x, axis=1)
    down = np.fmin.accumulate(x[:, ::-1], axis=1)[:, ::-1]
    return np.where(np.isnan(x), np.nan, 0.5 * (up + down))


def non_decreasing_events(events: pd.DataFrame, *, key: str, columns: dict[str, bool]) -> pd.DataFrame:
    """A decoded chunk (each entity's events together, in time order, as the decoder writes
    them) with each column of `columns` (name → integer?) made non-decreasing within each
    entity; the column keeps its dtype (Int64 with its nulls, int64, float64)."""
    if not columns or events.empty:
        return events
    ent, _ = pd.factorize(events[key], sort=False)
    step = pd.Series(ent).groupby(ent).cumcount().to_numpy()
    mask = np.zeros((int(ent.max()) + 1, int(step.max()) + 1), dtype=bool)
    mask[ent, step] = True
    out = events.copy()
    for name, integer in columns.items():
        x = np.full(mask.shape, np.nan)
        x[ent, step] = pd.to_numeric(out[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        y = project_non_decreasing(x)[ent, step]
        if integer:
            y = np.round(y)  # half to even: monotone too, and no upward pull on the .5s
        if isinstance(out[name].dtype, pd.api.extensions.ExtensionDtype):
            out[name] = pd.array(np.where(np.isnan(y), 0, y).astype("int64") if integer else y,
                                 dtype=out[name].dtype)
            out.loc[np.isnan(y), name] = pd.NA
        else:
            out[name] = y.astype(out[name].dtype)
    return out
