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
histogram's own event), so nothing here depends on the rows.

Since session 12 (issue 18) the event columns' and the gaps' range histograms count
ENTITIES, not events (`EntityRangeTransform`): a range needs support, not frequencies, so
each entity gives each grid bin its kept values touch the weight 1/√(bins it touches) and
nothing else. Its vector has L2 norm exactly 1, so adding or removing an entity moves the
histogram by at most 1 in L2: a Gaussian of sensitivity 1 on the fixed (data-independent)
grid, at σ_range/k, the planned ρ k²/(2σ_range²) of the event-level histogram it replaces
(the same arithmetic as discovery.py's labels and preprocess.release_common_starts). It is
run and charged in the plan's own units: weights k/√m (norm k), sensitivity k, σ_range,
the same mechanism scaled by k (every threshold of `geometric_range` is a multiple of σ),
so the ledger's `bounds:*` events keep the plan's σ and sensitivity (tests/test_hmm_plan.py).
The noise falls k times against a mass that falls by at most the same factor (an entity
whose values sit in one bin weighs 1 where it counted up to k events) and that usually
falls less (values spread over m bins weigh 1/√m each): pbcseq (312 patients, k = 20,
ε = 3) had σ 818 against 1,945 visits, it now has σ about 41 against up to 312 patient-weights.
The entity average that margins.py rejects for margins (short sequences weigh more per
event) does not matter here: only which bins hold anyone is used. A range that does not
clear even so is not guessed: the column is generated empty (`drop_unlearned_ranges`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from synthkit.ledger import PrivacyLedger
from synthkit.mechanisms import (GEOMETRIC_EDGES, GUESS_MIN_SIGMAS, INTEGER_EDGES, RangeNotLearnedError,  # noqa: F401
                                 geometric_range, guess_kept)  # GUESS_MIN_SIGMAS re-exported
from synthkit.schema import Column
from synthkit.transforms import DAY, DataTransformer, FitContext, NumericTransform

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
            and getattr(t, "entity_range_", None) is None
            and (not t.empty_ or getattr(t, "guess_set_aside_", False))
            and getattr(t, "range_zero_", None) is None and t.bounds_ is not None)


def presence_weights(values: np.ndarray, entity: np.ndarray, *, integer: bool) -> np.ndarray:
    """Each value's weight in the range histogram: 1 / (c·√m), c the values of its entity in
    its grid bin, m the bins its entity touches, so each touched bin sums to 1/√m and the
    entity's vector has L2 norm 1 (the grid is `geometric_range`'s, binned the same way)."""
    if not len(values):
        return np.zeros(0)
    grid = INTEGER_EDGES if integer else GEOMETRIC_EDGES
    frame = pd.DataFrame({"e": np.asarray(entity), "b": np.searchsorted(grid, values, side="right")})
    per_bin = frame.groupby(["e", "b"], sort=False)["b"].transform("size").to_numpy(dtype=float)
    bins = frame.groupby("e", sort=False)["b"].transform("nunique").to_numpy(dtype=float)
    return 1.0 / (per_bin * np.sqrt(bins))


class EntityRangeTransform(NumericTransform):
    """A numeric transform whose DP range histogram has the entity as the unit (see the
    module docstring): k·`presence_weights` over `geometric_range`'s grid, sensitivity k,
    σ_range (sensitivity 1 at σ_range/k, scaled by k), under the same name `bounds:<label>`. The range then stands for
    the column's bounds in the ordinary fit (its value histogram, σ_hist, sensitivity k, as
    planned), so what the transform saves and samples is a plain NumericTransform's.
    Not carried over from the event-level path (whose counts were events): the integer
    padding tests and the bin-of-0 count the pair tree combines (`range_zero_` stays None).
    A range that does not clear: the column (nullable) is marked `entity_range_` =
    "unlearned" and made empty by `drop_unlearned_ranges`; a non-nullable one raises
    RangeNotLearnedError as before. `entity`: the entity code of each row of the series
    to fit (dropped after the fit: no private array is kept)."""

    def __init__(self, column: Column, *, entity: np.ndarray) -> None:
        super().__init__(column)
        self._entity: np.ndarray | None = np.asarray(entity)
        self._range: tuple[float, float] | None = None
        self.entity_range_: str | None = None  # "learned" | "unlearned" (fit time only, not saved)

    def _public_bounds(self) -> tuple[float, float] | None:
        return self._range if self._range is not None else super()._public_bounds()

    def fit(self, s: pd.Series, ctx: FitContext) -> EntityRangeTransform:
        if self.column.bounds is not None or self._entity is None:
            super().fit(s, ctx)
            return self
        try:
            self._fit_entity_range(s, ctx)
        except BaseException:
            self._entity, self._range = None, None
            raise
        try:
            super().fit(s, ctx)
        finally:
            self._entity, self._range = None, None
        self.range_zero_ = None  # the range histogram's bin of 0 counts entities, not events
        return self

    def _fit_entity_range(self, s: pd.Series, ctx: FitContext) -> None:
        """The entity-level DP range (sets `_range`); the caller clears the entity array."""
        x = self.floats(s)
        if len(x) != len(self._entity):  # no lengths in the message: they are kept-event counts
            raise ValueError("EntityRangeTransform: the entity array does not match the column's rows")
        present = ~np.isnan(x)
        values, entity = x[present], self._entity[present]
        integer = self.column.kind == "integer"
        what = getattr(self, "what", None) or f"column {self.column.name!r}"
        label = getattr(self, "event_label", None) or self.column.name
        try:
            k = max(ctx.plan.k, 1)  # each entity's weights have L2 norm k: the plan's sensitivity
            r = geometric_range(values, weights=k * presence_weights(values, entity, integer=integer),
                                sigma=ctx.plan.sigma_range, sensitivity=k, name=f"bounds:{label}", ledger=ctx.ledger,
                                rng=ctx.rng, what=what, integer=integer)
            self._range, self.entity_range_ = (float(r.lo), float(r.hi)), "learned"
        except RangeNotLearnedError:
            if not self.column.nullable:
                raise
            # a placeholder for the (planned) value histogram; the column is generated empty
            self._range = (0.0, DAY) if self.column.kind == "datetime" else (0.0, 1.0)
            self.entity_range_ = "unlearned"


def entity_ranges(transformer: DataTransformer, entity: np.ndarray, *, ledger: PrivacyLedger) -> list[str]:
    """Give every numeric event column without declared bounds an `EntityRangeTransform` (in
    place, before `transformer.fit`; `entity`: the entity code of each kept event row). A
    no-op without a private ledger (the exact range is then released either way)."""
    if not ledger.private:
        return []
    names = [name for name, t in transformer.transforms.items()
             if type(t) is NumericTransform and t.column.bounds is None]
    for name in names:
        transformer.transforms[name] = EntityRangeTransform(transformer.transforms[name].column, entity=entity)
    return names


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
        unlearned = getattr(t, "entity_range_", None) == "unlearned"  # nothing guessed: always dropped
        if name in skip or not (unlearned or guessed_range(t, ledger)):
            continue
        if getattr(t, "guess_set_aside_", False):  # the transform's fit applied the same rule and warned
            dropped.append(name)
            continue
        sigma = _range_sigma(ledger, f"{prefix}bounds:{name}")
        if not unlearned and (sigma is None or guess_kept(n_rows_dp, sigma)):
            continue
        if mark:
            t.empty_ = True
            t.hist_ = np.zeros_like(t.hist_)
            t.null_share_ = 1.0
        dropped.append(name)
        logger.warning("%s column %r: its range cannot be learned under DP at this epsilon and size (%s), so it "
                       "is generated empty (all null); declare 'bounds' for it "
                       "in a schema (--schema) or raise --epsilon", table, name,
                       "too few entities' values cleared the noise" if unlearned else
                       "its values would be a guess from noise: the coarse guess logged for it is set aside")
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
