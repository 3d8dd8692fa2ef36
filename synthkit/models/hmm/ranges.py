"""Numeric columns of a sequence fit whose DP range could not be learned, and the last
guard of sampling: every generated number inside its column's released range.

Why (issue 18, session 11: survival/pbcseq, 312 patients, 1,945 visits, eps = 3): an
event-level DP range histogram has the noise of `max_length` events per entity (σ 818
against 1,945 events spread over the grid), so no bin cleared, and the transformer's
fallback, the histogram's best window (`transforms.best_window_range`), was a window of
pure noise: 0/1 flags got the range [-23170, -16385], a lab value [2048, 65536], and the
context's status [-3e7, -2.4e7]. That fallback is kept for tables where the data can
stand out of the noise (burn's 154 units against σ 14); here the whole of the data is a
few noise stds, so the guessed range says nothing about the column.

A guessed range is therefore kept only when the DP count of the rows it was guessed from
is at least GUESS_MIN_SIGMAS noise stds of the range histogram (both DP: the decision is
post-processing, no extra epsilon); otherwise the column is generated empty (all null)
with one warning that names it and the fix. The std is read from the ledger (the range
histogram's own event), so nothing here depends on the rows."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from synthkit.ledger import PrivacyLedger
from synthkit.mechanisms import GUESS_MIN_SIGMAS, guess_kept  # noqa: F401 (re-exported)
from synthkit.transforms import DataTransformer, NumericTransform

logger = logging.getLogger(__package__)  # the package's one logger: log lines keep their name

# the rule and its derivation are shared with the table models (mechanisms.GUESS_MIN_SIGMAS)


def _range_sigma(ledger: PrivacyLedger, name: str) -> float | None:
    """The noise std of the ledger's Gaussian event `name` (None if there is none)."""
    for e in reversed(ledger.events):
        if e.name == name and getattr(e, "sigma", None) is not None:
            return float(e.sigma)
    return None


def guessed_range(t: Any, ledger: PrivacyLedger) -> bool:
    """Whether a fitted numeric transform's range is the best-window guess: a private fit,
    no declared bounds, not already empty, and no DP range learned (`range_zero_` is set
    only when the range histogram cleared). Fit time only (`range_zero_` is not saved)."""
    return (ledger.private and isinstance(t, NumericTransform) and t.column.bounds is None
            and (not t.empty_ or getattr(t, "guess_set_aside_", False))
            and getattr(t, "range_zero_", None) is None and t.bounds_ is not None)


def drop_unlearned_ranges(transformer: DataTransformer, *, n_rows_dp: float, ledger: PrivacyLedger,
                          prefix: str = "", skip: tuple[str, ...] = (), table: str = "events",
                          mark: bool = True) -> list[str]:
    """Columns of `transformer` whose guessed range is not kept (see the module docstring):
    each is made empty (generated all null) and named in one warning and a ledger note.
    `prefix`: the ledger prefix of the transformer's events ('context:' for the context
    model); `skip`: internal columns that must keep a range (the context's start); `mark`
    False: the transforms are left as fitted (a table model's pair marginals are built on
    them) and the caller empties the columns at sampling (`within_released(empty=...)`)."""
    dropped = []
    for name, t in transformer.transforms.items():
        if name in skip or not guessed_range(t, ledger):
            continue
        if getattr(t, "guess_set_aside_", False):  # the transform's fit applied the same rule and warned
            dropped.append(name)
            continue
        sigma = _range_sigma(ledger, f"{prefix}bounds:{name}")
        if sigma is None or guess_kept(n_rows_dp, sigma):
            continue
        if mark:
            t.empty_ = True
            t.hist_ = np.zeros_like(t.hist_)
            t.null_share_ = 1.0
        dropped.append(name)
        logger.warning("%s column %r: its range cannot be learned under DP at this epsilon and size (its values "
                       "would be a guess from noise: the coarse guess logged for it is set aside), so it is generated "
                       "empty (all null); declare 'bounds' for it "
                       "in a schema (--schema) or raise --epsilon", table, name)
        ledger.notes.append(f"{table} column {name!r}: range not learned under DP; generated empty (all null)")
    return dropped


def within_released(frame: pd.DataFrame, transformer: DataTransformer, *,
                    empty: tuple[str, ...] = ()) -> pd.DataFrame:
    """The last guard of sampling (post-processing): every numeric column of `frame` that
    `transformer` fitted is all null when its transform is empty and otherwise inside its
    released (or declared) range `bounds_`; a value outside is clipped onto it and the
    column named in a log line (a bug upstream, never silent). Integer and datetime columns
    keep their types. `empty`: columns generated all null whatever their transform says."""
    out = frame
    for name, t in transformer.transforms.items():
        if not isinstance(t, NumericTransform) or name not in frame.columns or t.bounds_ is None:
            continue
        s = frame[name]
        if t.empty_ or name in empty:
            if s.notna().any():
                out = out.copy() if out is frame else out
                out[name] = t.to_series(np.full(len(s), np.nan)).to_numpy()
            continue
        if t.column.kind == "datetime":
            continue  # datetimes are rounded inside their bounds by the transform itself
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        lo, hi = t.bounds_
        bad = ~np.isnan(x) & ((x < lo) | (x > hi))
        if bad.any():
            logger.warning("column %r: %d generated values fell outside its released range and were clipped onto "
                           "it (a decoding step did not keep to the range; please report it)", name,
                           int(bad.sum()))
            out = out.copy() if out is frame else out
            clipped = np.where(bad, np.clip(x, lo, hi), x)
            if t.column.kind == "integer":
                clipped = np.where(np.isnan(clipped), np.nan, np.round(clipped))
                clipped = np.clip(clipped, np.ceil(lo), np.floor(hi))
                arr = pd.array(np.where(np.isnan(clipped), 0, clipped).astype("int64"), dtype="Int64")
                arr[np.isnan(clipped)] = pd.NA
                out[name] = arr if s.dtype == object or str(s.dtype) == "Int64" or np.isnan(clipped).any() \
                    else arr.astype("int64")
            else:
                out[name] = clipped
    return out
