"""The DP preprocessing statistics as map-reduce: a partial sum per block, a merge, and ONE
release on the driver that adds the noise and charges the ledger.

Why this split keeps the guarantee of the single-process fit (synthkit.models.base.fit):
every statistic here is a SUM over privacy units (counts, histogram bins, Σ vvᵀ), so the
sum of per-block partial sums is the statistic of the whole table exactly, before any
noise. The noise is then added once, by the same mechanism function the single-process
path calls (`noisy_count`, `noisy_histogram`, `select_partitions`, `DependenceCalibrator.fit`),
with the same sensitivity, the same ledger event name and the same order of draws: with the
noise source fixed, the map-reduce release equals the single-process one, number for number.

Two things would break it, and both are ruled out here:
- Partition selection on per-block counts. A category whose rows are spread thinly over
  many blocks would never clear the threshold anywhere (and a per-block release would
  spend the budget once per block). Only the MERGED count is thresholded, on the driver.
- A unit split over blocks. The contribution bound (k rows per unit) must see all of a
  unit's rows at once: bounded per block, a unit in B blocks would contribute B·k rows and
  every sensitivity would be wrong. So rows are routed by their unit key first: the Ray
  driver sorts by the key (`Dataset.sort(key)`, the shuffle Ray's own
  `groupby().map_groups()` relies on to keep a group in one block) and maps each whole
  block with `batch_size=None`; only then is each unit bounded to k rows
  (`bound_block`). The in-process driver (`partials_of_frame`) routes with the same key
  hash as `synthkit.distributed.partition.rank_of_keys`.

Private values never reach a repr, a log line or an error: partials hide their sums
(`repr=False`), and a failure inside a block is re-raised as a `StatisticError` that names
the statistic and the exception type only (`from None`: the original message, which may
quote a cell, is not chained into Ray's task error).

A numeric column without public bounds needs more than one pass: the DP range first, then
its value histogram on edges that depend on it, and, for a narrow band far from 0, a second
look on edges chosen from the first look's DP output (`release_numeric`, with a `count` per
pass: `frame_counter`, `ray_counter`). DPHMM's entity-weighted range histogram is
`EntityRangeHistogram`.

The Ray driver (`ray_partials`) imports Ray lazily: `import synthkit` never imports it.
"""

from __future__ import annotations

import glob
import math
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from synthkit.distributed.partition import rank_of_keys
from synthkit.distributed.ray_session import LOCAL_NUM_CPUS, init_ray  # Ray itself is imported only when called
from synthkit.errors import ConfigError, DataValidationError, SynthkitError
from synthkit.ledger import PrivacyLedger
from synthkit.mechanisms import (
    GEOMETRIC_EDGES,
    INTEGER_EDGES,
    DPRange,
    PreprocessingPlan,
    RangeNotLearnedError,
    charge_two_looks,
    cleared_extent,
    geometric_range,
    noisy_count,
    noisy_histogram,
    partition_threshold,
    select_partitions,
    substreams,
    uncharged_look,
)
from synthkit.schema import Column
from synthkit.transforms import (
    MAX_INTEGER_BINS,
    OUTER_CUT_MAX_VALUES,
    NULL,
    OTHER,
    ZOOM_MIN_ROWS_SIGMAS,
    ZOOM_NARROW_BINS,
    ZOOM_SHARE,
    ZOOM_TAIL_MARGIN,
    CategoricalTransform,
    FitContext,
    NumericTransform,
    _forced_top_clears,
    _narrowed,
    bin_index,
    clear_histogram,
    histogram_edges,
    null_released,
    outer_values_kept,
    outside_mass_clears,
    padded_range,
    padding_kept,
    zero_bin,
    zoom_eligible,
)


class StatisticError(SynthkitError):
    """A block's partial sum failed; the message names the statistic, never a value."""


# ------------------------------------------------------------------ partial sums
@dataclass(frozen=True, slots=True, kw_only=True)
class CountPartial:
    """Units and rows of a block (after the bound). A block holds whole units."""

    n_units: int = field(repr=False)
    n_rows: int = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryPartial:
    """Rows per label string and null rows of one column in a block."""

    column: str
    counts: dict[str, int] = field(repr=False)  # the labels themselves are private until released
    n_null: int = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistogramPartial:
    """Rows per bin on data-independent edges; the last cell counts the nulls."""

    column: str
    counts: np.ndarray = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MomentPartial:
    """Σ vvᵀ of a block's clipped score vectors (synthkit.dependence)."""

    moments: np.ndarray = field(repr=False)


Partial = CountPartial | CategoryPartial | HistogramPartial | MomentPartial


def merge(a: Partial, b: Partial) -> Partial:
    """The partial sum of two disjoint sets of units (associative and commutative: any tree
    of merges gives the same result, exactly for the integer counts)."""
    if type(a) is not type(b) or getattr(a, "column", None) != getattr(b, "column", None):
        raise ConfigError(f"cannot merge a {type(a).__name__} with a {type(b).__name__} of another statistic; "
                          "merge the partials of one statistic with each other")
    if isinstance(a, CountPartial):
        return CountPartial(n_units=a.n_units + b.n_units, n_rows=a.n_rows + b.n_rows)
    if isinstance(a, CategoryPartial):
        counts = dict(a.counts)
        for label, n in b.counts.items():
            counts[label] = counts.get(label, 0) + n
        return CategoryPartial(column=a.column, counts=counts, n_null=a.n_null + b.n_null)
    if isinstance(a, HistogramPartial):
        if a.counts.shape != b.counts.shape:
            raise ConfigError(f"histograms of column {a.column!r} on different edges cannot be merged; "
                              "compute every block's partial from the same statistic")
        return HistogramPartial(column=a.column, counts=a.counts + b.counts)
    return MomentPartial(moments=a.moments + b.moments)


def merge_all(partials: Sequence[Sequence[Partial]]) -> list[Partial]:
    """Merge per-block lists of partials (one entry per statistic, same order) position-wise."""
    if not partials:
        raise ConfigError("no block to merge: the source holds no rows; check the path or glob")
    out = list(partials[0])
    for block in partials[1:]:
        out = [merge(a, b) for a, b in zip(out, block, strict=True)]
    return out


# ------------------------------------------------------------------ statistics
class Statistic(Protocol):
    """What every statistic offers: a pure partial sum of one block (of whole, bounded
    units) and the release of the merged sum on the driver."""

    name: str

    def partial(self, block: pd.DataFrame) -> Partial: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitCount:
    """The DP count of privacy units, and of rows when k > 1 (base.fit's step 3)."""

    entity_key: str | None = None
    name: str = "count"

    def partial(self, block: pd.DataFrame) -> CountPartial:
        n_units = int(block[self.entity_key].nunique()) if self.entity_key else len(block)  # bounded: no NULL key
        return CountPartial(n_units=n_units, n_rows=len(block))

    def release(self, merged: CountPartial, plan: PreprocessingPlan, ledger: PrivacyLedger,
                rng: np.random.Generator) -> tuple[float, float]:
        """(DP units, DP rows): the same calls, names and order of draws as base.fit."""
        n_units_dp = noisy_count(merged.n_units, sigma=plan.sigma_units, sensitivity=1.0, name="count:units",
                                 ledger=ledger, rng=rng)
        n_rows_dp = (noisy_count(merged.n_rows, sigma=plan.sigma_rows, sensitivity=float(plan.k), name="count:rows",
                                 ledger=ledger, rng=rng) if plan.k > 1 else n_units_dp)
        return n_units_dp, n_rows_dp


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryRelease:
    """A categorical column's DP measurement: the released labels with their noisy counts
    (declared labels always; discovered ones only when their GLOBAL noisy count cleared
    the threshold) and the null label's noisy count when it was released."""

    labels: tuple[str, ...]
    counts: tuple[float, ...]
    null_count: float | None
    threshold: float | None  # τ of partition selection (public: a function of the plan)


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryCounts:
    """Category counts for partition selection (or a histogram over declared categories),
    as `CategoricalTransform.fit` releases them."""

    column: Column
    name: str = ""

    def _transform(self) -> CategoricalTransform:
        return CategoricalTransform(self.column)

    def partial(self, block: pd.DataFrame) -> CategoryPartial:
        values = self._transform()._strings(block[self.column.name])  # the transform's own label strings
        n_null = int(values.isna().sum())
        observed = values.dropna().value_counts()
        return CategoryPartial(column=self.column.name, counts={str(k): int(v) for k, v in observed.items()},
                               n_null=n_null)

    def release(self, merged: CategoryPartial, plan: PreprocessingPlan, ledger: PrivacyLedger,
                rng: np.random.Generator, *, n_rows_dp: float) -> CategoryRelease:
        """One release on the MERGED counts (`CategoricalTransform.fit`'s mechanism calls)."""
        t = self._transform()
        name = f"categories:{self.column.name}"
        ctx = FitContext(ledger=ledger, plan=plan, rng=rng, n_rows_dp=n_rows_dp)
        domain = t.public_domain
        if domain is not None:
            raw = np.array([int(merged.counts.get(c, 0)) for c in domain] + [merged.n_null], dtype=float)
            noisy = noisy_histogram(raw, sigma=plan.sigma_hist, sensitivity=plan.k, name=name, ledger=ledger, rng=rng)
            null = float(noisy[-1]) if null_released(noisy[-1], merged.n_null, ctx) else None
            return CategoryRelease(labels=tuple(domain), counts=tuple(float(c) for c in noisy[:-1]),
                                   null_count=null, threshold=None)
        raw = {k: v for k, v in merged.counts.items() if k not in (NULL, OTHER)}  # as the transform folds them
        if merged.n_null:
            raw[NULL] = merged.n_null
        kept = select_partitions(raw, sigma=plan.sigma_hist, k=plan.k, threshold_delta=plan.threshold_delta,
                                 name=name, ledger=ledger, rng=rng)
        null = kept.pop(NULL, None)
        labels = tuple(sorted(kept))
        tau = (partition_threshold(sigma=plan.sigma_hist, k=plan.k, threshold_delta=plan.threshold_delta)
               if ledger.private else None)
        return CategoryRelease(labels=labels, counts=tuple(kept[c] for c in labels), null_count=null, threshold=tau)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistogramRelease:
    """A numeric column's DP histogram: the edges, the noisy counts (the measurement), the
    noisy null cell, and `cleared`, the counts after `NumericTransform.fit`'s post-processing
    (what the transform keeps as `hist_`). `sigma`: the noise std of a value bin (the
    transform's `hist_sigma_`; a zoomed column's second look has its own)."""

    edges: np.ndarray
    noisy: np.ndarray
    null: float
    cleared: np.ndarray
    sigma: float = 0.0
    bounds: tuple[float, float] | None = None  # the transform's final (lo, hi), `bounds_`


def _post_processed(noisy: np.ndarray, edges: np.ndarray, *, n_null: int, sigma_bins: float, integer: bool,
                    plan: PreprocessingPlan, ledger: PrivacyLedger, rng: np.random.Generator,
                    n_rows_dp: float) -> HistogramRelease:
    """`NumericTransform.fit`'s post-processing of a value histogram (null cell last):
    `clear_histogram` at the value bins' noise std, the null cell's release threshold.
    Free: no new charge, no draw."""
    ctx = FitContext(ledger=ledger, plan=plan, rng=rng, n_rows_dp=n_rows_dp)
    cleared = noisy
    if ledger.private:
        null = max(float(noisy[-1]), 0.0) if null_released(noisy[-1], n_null, ctx) else 0.0
        kept = clear_histogram(noisy[:-1], np.diff(edges), sigma=sigma_bins, total=n_rows_dp - null,
                               total_sigma=float(np.hypot(plan.sigma_rows, plan.sigma_hist)),
                               zero=zero_bin(edges, integer=integer))
        if kept.sum() > 0:
            cleared = np.concatenate([kept, noisy[-1:]])
    cleared = np.clip(cleared, 0, None)
    lo, hi = float(edges[0]), float(edges[-1])
    return HistogramRelease(edges=edges, noisy=noisy[:-1], null=float(noisy[-1]), cleared=cleared[:-1],
                            sigma=float(sigma_bins) if ledger.private else 0.0,
                            bounds=(lo + 0.5, hi - 0.5) if integer else (lo, hi))  # integer edges: half-integers


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueHistogram:
    """A numeric column's histogram on the data-independent edges `histogram_edges(lo, hi)`
    (one bin per value for a small integer range; the exact zero bin of a continuous column)
    plus a null cell, inside bounds that are public or already released under DP. `bounds`
    are the transform's final (lo, hi): for an integer column, whole values."""

    column: Column
    bounds: tuple[float, float]
    name: str = ""

    @property
    def edges(self) -> np.ndarray:
        lo, hi = self.bounds
        return histogram_edges(lo, hi, integer=self.column.kind == "integer",
                               zero_spike=self.column.kind == "continuous")

    def partial(self, block: pd.DataFrame) -> HistogramPartial:
        x = NumericTransform(self.column).floats(block[self.column.name])
        present = ~np.isnan(x)
        edges = self.edges
        idx = bin_index(edges, np.clip(x[present], *self.bounds))  # clipped as the transform clips
        counts = np.concatenate([np.bincount(idx, minlength=len(edges) - 1), [np.count_nonzero(~present)]])
        return HistogramPartial(column=self.column.name, counts=counts.astype(np.int64))

    def release(self, merged: HistogramPartial, plan: PreprocessingPlan, ledger: PrivacyLedger,
                rng: np.random.Generator, *, n_rows_dp: float, label: str | None = None) -> HistogramRelease:
        """`noisy_histogram` on the merged counts, then the transform's post-processing
        (`clear_histogram`, the null cell's release threshold): free, no new charge."""
        raw = merged.counts.astype(float)
        noisy = noisy_histogram(raw, sigma=plan.sigma_hist, sensitivity=plan.k,
                                name=f"histogram:{label or self.column.name}", ledger=ledger, rng=rng)
        return _post_processed(noisy, self.edges, n_null=int(raw[-1]), sigma_bins=plan.sigma_hist,
                               integer=self.column.kind == "integer", plan=plan, ledger=ledger, rng=rng,
                               n_rows_dp=n_rows_dp)


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeHistogram:
    """Rows per bin on explicit edges (a tuple, chosen on the driver from DP output: a look
    of the two-look zoom, `release_numeric`), the values clipped onto [edges[0], edges[-1]]
    as `transforms.zoomed_histogram` clips them; the last cell counts the nulls."""

    column: Column
    edges: tuple[float, ...]
    name: str = ""

    def partial(self, block: pd.DataFrame) -> HistogramPartial:
        x = NumericTransform(self.column).floats(block[self.column.name])
        present = ~np.isnan(x)
        edges = np.asarray(self.edges, dtype=float)
        idx = bin_index(edges, np.clip(x[present], edges[0], edges[-1]))
        counts = np.concatenate([np.bincount(idx, minlength=len(edges) - 1), [np.count_nonzero(~present)]])
        return HistogramPartial(column=self.column.name, counts=counts.astype(np.int64))


def _grid_representatives(grid: np.ndarray) -> np.ndarray:
    """One value per bin of `np.searchsorted(grid, x, side="right")`: bin j holds [grid[j-1],
    grid[j]), bin 0 lies below grid[0]."""
    return np.concatenate([[grid[0] - 1.0], grid])


@dataclass(frozen=True, slots=True, kw_only=True)
class RangeHistogram:
    """A numeric column's DP range histogram on the signed geometric grid (the integer grid
    for an integer column): the first pass for a column without public bounds."""

    column: Column
    name: str = ""

    @property
    def grid(self) -> np.ndarray:
        return INTEGER_EDGES if self.column.kind == "integer" else GEOMETRIC_EDGES

    def partial(self, block: pd.DataFrame) -> HistogramPartial:
        x = NumericTransform(self.column).floats(block[self.column.name])
        x = x[~np.isnan(x)]
        counts = np.bincount(np.searchsorted(self.grid, x, side="right"), minlength=len(self.grid) + 1)
        return HistogramPartial(column=self.column.name, counts=counts.astype(np.int64))

    def release(self, merged: HistogramPartial, plan: PreprocessingPlan, ledger: PrivacyLedger,
                rng: np.random.Generator, *, label: str | None = None) -> tuple[float, float]:
        """The (lo, hi) of `dp_range`."""
        r = self.dp_range(merged, plan, ledger, rng, label=label)
        return r.lo, r.hi

    def dp_range(self, merged: HistogramPartial, plan: PreprocessingPlan, ledger: PrivacyLedger,
                 rng: np.random.Generator, *, label: str | None = None) -> DPRange:
        """The DP range by `geometric_range` itself (so the post-processing is the
        single-process one, its outermost bins included, which the zoom reads). Under DP it
        reads only the bin counts: one representative value per bin, weighted by the merged
        count (no copy per row). Without a budget it returns the exact range of its values,
        so it gets one representative value per row (each bin's left edge, or the finite
        grid end): the range of those, not the exact one."""
        reps = _grid_representatives(self.grid)
        values, weights = (reps, merged.counts.astype(float)) if ledger.private else (np.repeat(reps, merged.counts),
                                                                                      None)
        return geometric_range(values, weights=weights, sigma=plan.sigma_range, sensitivity=plan.k,
                               name=f"bounds:{label or self.column.name}", ledger=ledger, rng=rng,
                               what=f"column {self.column.name!r}", integer=self.column.kind == "integer")


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityRangeHistogram:
    """DPHMM's entity-weighted DP range histogram (`models.hmm.ranges.EntityRangeTransform`):
    each entity gives each grid bin its kept values touch the weight k/√(bins it touches)
    (`presence_weights` times k: L2 norm k per entity), released at sensitivity k and the
    plan's σ_range under the same name `bounds:<label>`. A block must hold whole, bounded
    entities (the drivers route by `entity_key` first), so the weights are the
    single-process ones and the merge is their sum (up to float summation order). `k` is
    the plan's k (the weights are taken in the block, before the plan reaches the driver's
    release, which checks it). Private fits only, as in DPHMM."""

    column: Column
    entity_key: str
    k: int
    name: str = ""

    @property
    def grid(self) -> np.ndarray:
        return INTEGER_EDGES if self.column.kind == "integer" else GEOMETRIC_EDGES

    def partial(self, block: pd.DataFrame) -> HistogramPartial:
        from synthkit.models.hmm.ranges import presence_weights  # numpy/pandas only: no torch

        x = NumericTransform(self.column).floats(block[self.column.name])
        present = ~np.isnan(x)
        values, entity = x[present], block[self.entity_key].to_numpy()[present]
        w = max(self.k, 1) * presence_weights(values, entity, integer=self.column.kind == "integer")
        counts = np.bincount(np.searchsorted(self.grid, values, side="right"), weights=w, minlength=len(self.grid) + 1)
        return HistogramPartial(column=self.column.name, counts=counts.astype(float))

    def release(self, merged: HistogramPartial, plan: PreprocessingPlan, ledger: PrivacyLedger,
                rng: np.random.Generator, *, label: str | None = None) -> DPRange | None:
        """`geometric_range` on the merged weights, as `EntityRangeTransform` calls it. None
        when no bin cleared and the column is nullable (DPHMM generates it empty); a
        non-nullable column raises RangeNotLearnedError, as the transform does."""
        if not ledger.private:
            raise ConfigError("entity-weighted ranges are released only under a privacy budget (DPHMM releases the "
                              "exact range without one); use RangeHistogram, or fit with --epsilon")
        if max(plan.k, 1) != max(self.k, 1):
            raise ConfigError(f"the entity range histogram of column {self.column.name!r} was weighted for k = "
                              f"{self.k} but the plan has k = {plan.k}; build the statistic with the plan's k")
        k = max(plan.k, 1)
        try:
            return geometric_range(_grid_representatives(self.grid), weights=merged.counts, sigma=plan.sigma_range,
                                   sensitivity=k, name=f"bounds:{label or self.column.name}", ledger=ledger, rng=rng,
                                   what=f"column {self.column.name!r}", integer=self.column.kind == "integer")
        except RangeNotLearnedError:
            if not self.column.nullable:
                raise
            return None


# ------------------------------------------------------------------ numeric release over passes
Count = Callable[[Sequence["Statistic"]], list[Partial]]


def _value_range(column: Column, dp_range: DPRange, plan: PreprocessingPlan, ledger: PrivacyLedger, *,
                 n_rows_dp: float) -> tuple[float, float, tuple[list[int], list[int]], bool, bool]:
    """(lo, hi, pad, forced_top, zoomed) of the value histogram from a learned DP range:
    `NumericTransform.fit`'s decision (whole values for an integer column, a second value
    after a one-value range, the padded integer range, the zoom's conditions).
    Post-processing of DP output only."""
    integer = column.kind == "integer"
    lo, hi = dp_range.lo, dp_range.hi
    forced_top = False
    if integer:
        lo, hi = float(np.ceil(lo)) + 0.0, float(np.ceil(hi)) + 0.0
        if hi <= lo:
            hi, forced_top = lo + 1, True
    pad: tuple[list[int], list[int]] = ([], [])
    if ledger.private and integer:
        lo_pad, hi_pad, pad_pad = padded_range(lo, hi, dp_range)
        if hi_pad - lo_pad + 1 <= MAX_INTEGER_BINS:
            lo, hi, pad = lo_pad, hi_pad, pad_pad
    zoomed = (ledger.private and not forced_top and pad == ([], []) and zoom_eligible(lo, hi, kind=column.kind)
              and n_rows_dp >= ZOOM_MIN_ROWS_SIGMAS * plan.sigma_hist)
    return lo, hi, pad, forced_top, zoomed


def _integer_values_kept(noisy: np.ndarray, edges: np.ndarray, *, lo: float, hi: float,
                         pad: tuple[list[int], list[int]], forced_top: bool, dp_range: DPRange,
                         plan: PreprocessingPlan) -> tuple[np.ndarray, np.ndarray]:
    """(edges, noisy) of a one-bin-per-value integer histogram after `NumericTransform.fit`'s
    cuts: the padded values the two histograms do not fill (`padding_kept`), the value after
    a one-value range that does not clear (`_forced_top_clears`), the outer values of the
    range's grid bins beyond the data (`outer_values_kept`). Post-processing of the two
    noisy histograms; kept step for step with the transform (tests/test_s13B_*)."""
    n_bins = len(edges) - 1

    def cut(a: int, b: int) -> None:
        nonlocal edges, lo, hi, noisy, n_bins
        edges, lo, hi = edges[a:b + 2], lo + a, lo + b
        noisy = np.concatenate([noisy[a:b + 1], noisy[-1:]])
        n_bins = len(edges) - 1

    keep, outer = padding_kept(noisy, pad, dp_range=dp_range, sigma_hist=plan.sigma_hist,
                               sigma_range=plan.sigma_range)
    if forced_top and not pad[1] and keep[1] == n_bins - 1 > keep[0] \
            and not _forced_top_clears(noisy[n_bins - 1], float(hi), dp_range, sigma_hist=plan.sigma_hist,
                                       sigma_range=plan.sigma_range):
        keep = (keep[0], keep[1] - 1)
    if keep != (0, n_bins - 1):
        cut(*keep)
    if n_bins <= OUTER_CUT_MAX_VALUES:
        keep = outer_values_kept(noisy, lo=lo, dp_range=outer, sigma_hist=plan.sigma_hist,
                                 sigma_range=plan.sigma_range)
        if keep != (0, n_bins - 1):
            cut(*keep)
    return edges, noisy


def _zoomed_looks(column: Column, lo: float, hi: float, dp_range: DPRange, count: Count, plan: PreprocessingPlan,
                  ledger: PrivacyLedger, rng: np.random.Generator, *, n_rows_dp: float,
                  label: str) -> tuple[np.ndarray, int, np.ndarray, float]:
    """`transforms.zoomed_histogram` with its data passes as map-reduce passes (`count`):
    one charge (`charge_two_looks`), the first look on the usual edges, the second on the
    edges chosen from the first look's DP output (a second pass over the source) or on the
    same edges (no new pass: the same counts, a second draw), the range narrowed by the
    same post-processing. Returns (edges, null count, noisy counts with the null cell last,
    value-bin noise std). Kept step for step with zoomed_histogram, which
    tests/test_s13B_zoom_entity_stats.py checks number for number."""
    integer = column.kind == "integer"
    sigma = float(plan.sigma_hist)
    s1, s2 = charge_two_looks(sigma=sigma, sensitivity=plan.k, share=ZOOM_SHARE, name=f"histogram:{label}",
                              ledger=ledger)

    def measure(edges: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
        raw = count([EdgeHistogram(column=column, edges=tuple(float(e) for e in edges))])[0].counts.astype(float)
        return raw, uncharged_look(raw, sigma=s, ledger=ledger, rng=rng)

    def average(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
        return (a / s1**2 + b / s2**2) / (1.0 / s1**2 + 1.0 / s2**2)

    edges = histogram_edges(lo, hi, integer=integer)
    raw, first = measure(edges, s1)
    n_null = int(raw[-1])
    rows = dict(n_rows_dp=n_rows_dp, sigma_rows=float(plan.sigma_rows))
    extent = cleared_extent(first[:-1], sigma=s1)
    window = None
    if extent is not None and extent[1] - extent[0] + 1 <= ZOOM_NARROW_BINS:
        window = max(extent[0] - 1, 0), min(extent[1] + 1, len(edges) - 2)
        if outside_mass_clears(first, window, sigma=s1, sigma_null=s1, **rows):
            window = None
    if window is not None:
        a, b = window
        w_lo, w_hi = (edges[a] + 0.5, edges[b + 1] - 0.5) if integer else (edges[a], edges[b + 1])
        edges = histogram_edges(w_lo, w_hi, integer=integer)
        _, second = measure(edges, s2)
        noisy = np.concatenate([second[:-1], [average(first[-1], second[-1])]])
        s_bins, tail = s2, 0.0
    else:
        second = uncharged_look(raw, sigma=s2, ledger=ledger, rng=rng)  # the same edges: the same counts
        noisy, s_bins, tail = average(first, second), sigma, ZOOM_TAIL_MARGIN
        if integer and len(edges) - 1 == hi - lo + 1:
            return edges, n_null, noisy, s_bins
    extent = cleared_extent(noisy[:-1], sigma=s_bins)
    if extent is not None:
        margin = math.ceil(tail * (extent[1] - extent[0] + 1))
        extent = (max(extent[0] - margin, 0), min(extent[1] + margin, len(edges) - 2))
        c, d = _narrowed(edges, extent, dp_range, integer=integer)
        if outside_mass_clears(noisy, (c, d), sigma=s_bins, sigma_null=sigma, **rows):
            return edges, n_null, noisy, s_bins
        edges = edges[c:d + 2]
        noisy = np.concatenate([noisy[c:d + 1], noisy[-1:]])
    return edges, n_null, noisy, s_bins


def release_numeric(column: Column, merged_range: HistogramPartial, count: Count, plan: PreprocessingPlan,
                    ledger: PrivacyLedger, rng: np.random.Generator, *, n_rows_dp: float,
                    label: str | None = None) -> HistogramRelease:
    """A numeric column without public bounds, released as `NumericTransform.fit` releases
    it, over as many passes as it needs: the DP range from the merged `RangeHistogram` of
    the first pass, then the value histogram through `count` (one pass of the source per
    call: `frame_counter` in process, `ray_counter` on Ray Data). A column whose DP range is
    a narrow band far from 0 (`transforms.zoom_eligible`: years 1995-2003 whose range is
    [1449, 2047]) takes two looks, charged as ONE event `histogram:<label>`: the first look
    is a pass on the usual edges; the second, a pass on finer edges around the bins the
    first look's noisy counts cleared (chosen on the driver from DP output). An integer
    range of at most 256 values gets the transform's padding and cuts of its outer values
    (post-processing). `rng` draws the range's noise and then the histogram's, in the
    single-process order. Not mirrored: a range that does not clear raises
    RangeNotLearnedError (the single process does so for a non-nullable column; for a
    nullable one it guesses a range from the noisy counts, `best_window_range`), and the
    ledger note of a clipped mass (`clipped_mass_clears`, a note, no event).
    (DPHMM's entity ranges, `EntityRangeHistogram`, stand for public bounds instead: their
    value histogram is `ValueHistogram(bounds=(r.lo, r.hi))`, with no zoom.)"""
    label = label or column.name
    integer = column.kind == "integer"
    dp_range = RangeHistogram(column=column).dp_range(merged_range, plan, ledger, rng, label=label)
    lo, hi, pad, forced_top, zoomed = _value_range(column, dp_range, plan, ledger, n_rows_dp=n_rows_dp)
    if zoomed:
        edges, n_null, noisy, s_bins = _zoomed_looks(column, lo, hi, dp_range, count, plan, ledger, rng,
                                                      n_rows_dp=n_rows_dp, label=label)
    else:
        spec = ValueHistogram(column=column, bounds=(lo, hi))
        raw = count([spec])[0].counts.astype(float)
        edges, n_null, s_bins = spec.edges, int(raw[-1]), float(plan.sigma_hist)
        noisy = noisy_histogram(raw, sigma=plan.sigma_hist, sensitivity=plan.k, name=f"histogram:{label}",
                                ledger=ledger, rng=rng)
        if ledger.private and integer and len(edges) - 1 == hi - lo + 1:
            edges, noisy = _integer_values_kept(noisy, edges, lo=lo, hi=hi, pad=pad, forced_top=forced_top,
                                                dp_range=dp_range, plan=plan)
    return _post_processed(noisy, edges, n_null=n_null, sigma_bins=s_bins, integer=integer,
                           plan=plan, ledger=ledger, rng=rng, n_rows_dp=n_rows_dp)


def frame_counter(frame: pd.DataFrame, *, entity_key: str | None, k: int, n_blocks: int,
                  rng: np.random.Generator, first_by: SequenceOrder | None = None) -> Count:
    """A `count` for `release_numeric` over an in-process frame: one `partials_of_frame`
    pass per call, merged. The bound draws from `rng` (a DP stream), one pass after another."""
    return lambda stats: merge_all(partials_of_frame(frame, stats, entity_key=entity_key, k=k, n_blocks=n_blocks,
                                                     rng=rng, first_by=first_by))


def ray_counter(paths: str | Sequence[str], *, entity_key: str | None = None, k: int = 1, **kwargs: Any) -> Count:
    """A `count` for `release_numeric` over a Parquet/CSV dataset: one `ray_partials` pass per
    call (the same keyword arguments). Every pass bounds each unit again, from the workers'
    OS entropy: with k > 1, a unit with more than k rows may keep other rows in another pass.
    Each pass is bounded (sensitivity k), so the accounting holds; the passes are then not
    the single process's one bounded table, only distributed as it is. With `first_by`
    (DPHMM's bound: each entity's first k events) every pass keeps the same rows."""
    return lambda stats: ray_partials(paths, stats, entity_key=entity_key, k=k, **kwargs)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreMoments:
    """Σ vvᵀ of the clipped score vectors of `synthkit.dependence` (the calibrator's layout
    comes from DP state: the transformer fitted on the released statistics). The integer
    columns' jitter draws come from `rng`; `block_partials` passes none, so each block draws
    from a fresh OS-entropy generator (not a DP release: the noise is added on the driver)."""

    calibrator: Any  # a DependenceCalibrator over a fitted DataTransformer
    name: str = "dependence"

    def partial(self, block: pd.DataFrame, rng: np.random.Generator | None = None) -> MomentPartial:
        return MomentPartial(moments=self.calibrator.moments(block, rng or np.random.default_rng()))

    def release(self, merged: MomentPartial, plan: PreprocessingPlan, ledger: PrivacyLedger,
                rng: np.random.Generator, *, n_rows_dp: float) -> np.ndarray | None:
        """`DependenceCalibrator.fit` itself on the merged moments (one charge, one noise draw)."""
        from synthkit.dependence import DependenceCalibrator

        class _Merged(DependenceCalibrator):
            def moments(self, frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
                return merged.moments

        released = _Merged(self.calibrator.transformer).fit(
            None, noise_multiplier=plan.dependence_noise, k=plan.k, n_rows_dp=n_rows_dp, ledger=ledger, rng=rng)
        return released.correlation_


# ------------------------------------------------------------------ bound + map
@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceOrder:
    """DPHMM's contribution bound (`sequence.group_events`): an entity keeps its FIRST k
    events by the sequence index (ticks of `axis`, ties in the rows' order), not a uniform
    sample. Given to the drivers as `first_by`, every pass keeps the same rows, those DPHMM
    keeps. Picklable (it travels to Ray tasks)."""

    index: str
    axis: Any  # synthkit.sequence.TimeAxis (a plain dataclass; imported lazily)

    def ticks(self, block: pd.DataFrame) -> np.ndarray:
        if self.index not in block.columns:
            raise ConfigError(f"the sequence index column {self.index!r} is not in the source; set --sequence-index "
                              "to a column")
        ticks = self.axis.to_ticks(block[self.index])
        if np.isnan(ticks).any():  # no count in the message: it is a fact about the rows
            raise DataValidationError([f"sequence_index {self.index!r} has missing or unreadable values; every "
                                       "event needs a time"])
        return ticks

    def first(self, rows: pd.DataFrame, entity_key: str, k: int) -> pd.DataFrame:
        """Each entity's first k rows by ticks (a stable sort: ties keep the rows' order)."""
        ordered = rows.iloc[np.argsort(self.ticks(rows), kind="stable")]
        return ordered[ordered.groupby(entity_key, sort=False).cumcount().to_numpy() < k]


def bound_block(block: pd.DataFrame, *, entity_key: str | None, k: int, rng: np.random.Generator,
                first_by: SequenceOrder | None = None) -> pd.DataFrame:
    """At most `k` rows per unit, uniformly at random (`rng` is a DP stream), or, with
    `first_by`, each unit's first k rows by its sequence index. The block must hold ALL
    rows of each of its units (route by key first).

    A missing key is refused, as the single-process fit refuses it (synthkit.table): rows
    without a key would be many people bounded as ONE unit of k rows, and adding or
    removing one of them would change up to k kept rows, beyond the sensitivity the plan
    assumes. Units are told apart by the key's VALUE (pandas equality, as a database's own
    `=`): a text key "7" and an integer 7, or a text "None", are units of their own, as they
    are to the SQL key ranges that put them in different partitions; `astype(str)` here
    would merge them into one unit counted in two partitions."""
    if entity_key is None:
        return block
    if entity_key not in block.columns:
        raise ConfigError(f"the entity key column {entity_key!r} is not in the source; set --entity-key to a column")
    if block[entity_key].isna().any():
        raise DataValidationError([f"entity_key column {entity_key!r} has missing values"])
    if first_by is not None:
        return first_by.first(block, entity_key, k)
    shuffled = block.iloc[rng.permutation(len(block))]
    return shuffled[shuffled.groupby(entity_key, sort=False).cumcount().to_numpy() < k]


def block_partials(block: pd.DataFrame, stats: Sequence[Statistic], *, entity_key: str | None, k: int,
                   rng: np.random.Generator, first_by: SequenceOrder | None = None) -> list[Partial]:
    """Bound a block of whole units, then every statistic's partial sum. A failure names
    the statistic and the exception type, never the message (it may quote a cell)."""
    bounded = bound_block(block, entity_key=entity_key, k=k, rng=rng, first_by=first_by)
    out = []
    for stat in stats:
        try:
            out.append(stat.partial(bounded))
        except SynthkitError:
            raise
        except Exception as err:  # noqa: BLE001 - any library error may carry a value
            raise StatisticError(f"the partial sum of {_describe(stat)} failed on a block ({type(err).__name__}); "
                                 "check that column's kind and values in the schema") from None
    return out


def _describe(stat: Statistic) -> str:
    column = getattr(stat, "column", None)
    return f"{type(stat).__name__} of column {column.name!r}" if column is not None else type(stat).__name__


def partials_of_frame(frame: pd.DataFrame, stats: Sequence[Statistic], *, entity_key: str | None, k: int,
                      n_blocks: int, rng: np.random.Generator,
                      first_by: SequenceOrder | None = None) -> list[list[Partial]]:
    """The engine-neutral map: route rows to `n_blocks` blocks by unit key (the rows
    themselves when there is no key), then bound and take the partial sums of each."""
    if n_blocks < 1:
        raise ConfigError(f"blocks must be at least 1, got {n_blocks}; use 1 or more")
    if entity_key is not None:
        which = rank_of_keys(frame[entity_key], n_blocks)
    else:
        which = np.arange(len(frame)) % n_blocks
    rngs = substreams(rng, n_blocks)  # one bounding stream per block
    return [block_partials(frame[which == b], stats, entity_key=entity_key, k=k, rng=r, first_by=first_by)
            for b, r in zip(range(n_blocks), rngs)]


# ------------------------------------------------------------------ Ray Data driver
def _ray_map(batch: pd.DataFrame, *, stats: Sequence[Statistic], entity_key: str | None, k: int,
             first_by: SequenceOrder | None = None) -> dict[str, Any]:
    """The function each Ray task runs on one whole block: bound, partial sums, and one
    output row carrying them. The bound's subsample draws from OS entropy in the worker
    (synthkit.noise: a DP stream, never seeded by the user).

    With a key, the block is a slice of the key-sorted dataset, so only its smallest and
    its largest unit can have rows in another block too (Ray Data slices a sorted
    partition into blocks of ~128 MiB). Those two units are left out of the block's sums:
    the block sends each one's row count and a uniform sample of at most k of its rows, and
    the driver bounds and adds every such unit once (`merge_boundary_units`). With
    `first_by`, the sample is the unit's first k rows in the block by sequence index, and
    the driver keeps the first k of their union: the unit's first k rows."""
    from synthkit.noise import private_seed_sequence

    rng = np.random.default_rng(private_seed_sequence())
    edge: dict[Any, tuple[int, pd.DataFrame]] = {}
    if entity_key is not None and len(batch):
        keys = batch[entity_key]
        if keys.isna().any():  # refused before the edge split, which would drop them (groupby skips NaN)
            raise DataValidationError([f"entity_key column {entity_key!r} has missing values"])
        ends = {keys.min(), keys.max()}
        at_edge = keys.isin(ends).to_numpy()
        for key, rows in batch[at_edge].groupby(entity_key, sort=False):
            kept = (first_by.first(rows, entity_key, k) if first_by is not None
                    else rows.iloc[rng.permutation(len(rows))[:k]])
            edge[key] = (len(rows), kept)  # by value, as bound_block tells units apart
        batch = batch[~at_edge]
    partials = block_partials(batch, stats, entity_key=entity_key, k=k, rng=rng, first_by=first_by)
    return {"partials": np.array([pickle.dumps((partials, edge))], dtype=object)}


def merge_boundary_units(pieces: dict[Any, list[tuple[int, pd.DataFrame]]], *, k: int,
                         rng: np.random.Generator, first_by: SequenceOrder | None = None,
                         entity_key: str | None = None) -> pd.DataFrame:
    """One uniform sample of at most k rows per unit from its pieces in several blocks.

    Each piece is (its row count n_i, a uniform sample of min(k, n_i) of its rows). How many
    of the unit's k kept rows come from each piece is multivariate hypergeometric in the
    n_i; taking that many from each piece's own uniform sample makes the union a uniform
    sample of min(k, Σ n_i) of the unit's rows: the single-process bound, applied once.
    With `first_by` each piece holds its first k rows by sequence index, so the first k of
    their union are the unit's first k (ties across pieces in the pieces' order)."""
    out = []
    if first_by is not None:
        if entity_key is None:
            raise ConfigError("a bound by sequence index needs the entity key; set --entity-key")
        for parts in pieces.values():
            out.append(first_by.first(pd.concat([rows for _, rows in parts], ignore_index=True), entity_key, k))
        return pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    for parts in pieces.values():
        sizes = np.array([n for n, _ in parts], dtype=np.int64)
        take = rng.multivariate_hypergeometric(sizes, min(k, int(sizes.sum())))
        out.extend(rows.iloc[rng.permutation(len(rows))[:t]] for t, (_, rows) in zip(take, parts) if t)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def merge_mapped(blobs: Iterable[bytes], stats: Sequence[Statistic], *, entity_key: str | None,
                 k: int, first_by: SequenceOrder | None = None) -> list[Partial]:
    """The driver's reduce over `_ray_map`'s outputs, as they stream in: the blocks' partial
    sums merged, then every unit seen at a block's edge bounded once over all its blocks
    and added (memory: one merged partial per statistic plus ≤ k rows per edge unit)."""
    merged: list[Partial] | None = None
    pieces: dict[Any, list[tuple[int, pd.DataFrame]]] = {}  # units at a block's edge, by key
    for blob in blobs:
        block, edge = pickle.loads(blob)  # produced by _ray_map, in this job
        for key, piece in edge.items():
            pieces.setdefault(key, []).append(piece)
        merged = block if merged is None else [merge(a, b) for a, b in zip(merged, block, strict=True)]
    if merged is None:
        raise ConfigError("the source holds no rows; check the path or glob")
    if pieces:
        from synthkit.noise import private_seed_sequence
        rng = np.random.default_rng(private_seed_sequence())
        rows = merge_boundary_units(pieces, k=k, rng=rng, first_by=first_by, entity_key=entity_key)
        edge_sums = block_partials(rows, stats, entity_key=entity_key, k=k, rng=rng, first_by=first_by)
        merged = [merge(a, b) for a, b in zip(merged, edge_sums, strict=True)]
    return merged


def _read_block_partials(index: int, reader: Callable[[], pd.DataFrame], stats: Sequence[Statistic], *,
                         entity_key: str | None, k: int, first_by: SequenceOrder | None = None) -> bytes:
    """One Ray task of `ray_block_partials`: read a block of WHOLE units, bound it, partial
    sums. A synthkit error (value-free by rule: a redacted source, a column name) passes;
    any other exception is replaced here, in the worker, so its message (which may quote a
    cell or a key) reaches neither Ray's logs nor the driver."""
    from synthkit.noise import private_seed_sequence
    try:
        block = reader()
        rng = np.random.default_rng(private_seed_sequence())
        return pickle.dumps(block_partials(block, stats, entity_key=entity_key, k=k, rng=rng, first_by=first_by))
    except SynthkitError:
        raise
    except Exception as err:  # noqa: BLE001 - any driver or library error may carry a value
        raise StatisticError(f"block {index} failed to read or sum ({type(err).__name__}); check the source "
                             "and the schema") from None


def ray_block_partials(readers: Sequence[Callable[[], pd.DataFrame]], stats: Sequence[Statistic], *,
                       entity_key: str | None = None, k: int = 1, address: str | None = None,
                       num_cpus: int = LOCAL_NUM_CPUS, first_by: SequenceOrder | None = None) -> list[Partial]:
    """The partial sums of blocks that each hold WHOLE units, one Ray task per block, merged
    on the driver as they finish. A block comes from a picklable `reader` that the task
    calls, e.g. `functools.partial(connectors.sql.read_range, loc, ranges, i, table=...)`:
    one SQL query per key range, run on the worker, so no sort or shuffle is needed (the
    key ranges already keep each unit in one block) and the driver never holds the rows.
    The readers travel in the tasks' arguments (Ray's object store, which may spill to
    /tmp/ray: inside the trust boundary, like the rows; never in a task name or log line).

    The result is EXACT: the merged partial sums, with no noise. It is private data, to be
    released only through each statistic's `release` (which adds the noise and charges the
    ledger), never stored or shown as it is."""
    if k < 1:
        raise ConfigError(f"max rows per entity must be at least 1, got {k}; use --max-rows-per-entity 1 or more")
    if entity_key is None and k != 1:
        raise ConfigError("max rows per entity above 1 needs an entity key; set --entity-key or use k=1")
    if not readers:
        raise ConfigError("no blocks to read; give at least one partition")
    from synthkit.distributed.ray_session import import_ray

    ray = import_ray()
    started = init_ray(address=address, num_cpus=num_cpus)
    try:
        return _gather_blocks(ray, readers, stats, entity_key=entity_key, k=k, first_by=first_by)
    finally:
        if started:  # a Ray session found running is left running (as generate does)
            ray.shutdown()


def _gather_blocks(ray: Any, readers: Sequence[Callable[[], pd.DataFrame]], stats: Sequence[Statistic], *,
                   entity_key: str | None, k: int, first_by: SequenceOrder | None = None) -> list[Partial]:
    task = ray.remote(num_cpus=1, max_retries=1)(_read_block_partials)
    pending = [task.remote(i, reader, list(stats), entity_key=entity_key, k=k, first_by=first_by)
               for i, reader in enumerate(readers)]
    merged: list[Partial] | None = None
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            block = pickle.loads(ray.get(ready[0]))  # produced by _read_block_partials, in this job
        except Exception as err:  # RayTaskError: its cause's message is value-free (replaced in the worker)
            for ref in pending:
                ray.cancel(ref, force=True)
            cause = getattr(err, "cause", None)
            if isinstance(cause, SynthkitError):
                raise _unpickled(cause) from None
            raise StatisticError(f"a block's task failed on its Ray worker ({type(cause or err).__name__}); "
                                 "re-run, and check the source and the schema") from None
        merged = block if merged is None else [merge(a, b) for a, b in zip(merged, block, strict=True)]
    assert merged is not None
    return merged


def _unpickled(cause: SynthkitError) -> SynthkitError:
    """A worker's synthkit error as it was raised. Ray pickles it, and unpickling calls the
    class with its args, the joined message: an error that takes a LIST of problems
    (DataValidationError, SchemaError) then splits that message into characters, while its
    `problems` attribute comes back intact. So those are rebuilt from `problems`; any other
    is raised as it arrived (its message is value-free by rule). Rebuilding every error
    from `str(cause)` garbled the list-taking ones."""
    problems = getattr(cause, "problems", None)
    if isinstance(problems, list):
        return type(cause)(problems)  # type: ignore[call-arg]
    return cause


def _bookkeeping(name: str) -> bool:
    """A file or folder name that Spark, pyarrow, Ray and synthkit keep for bookkeeping
    (`_SUCCESS`, `.crc`, `_temporary/`): never data. The rule of connectors/uri.py's
    datasets (`_hidden`), written again because synthkit does not import connectors."""
    return name.startswith(("_", "."))


def expand_paths(paths: str | Sequence[str]) -> list[str]:
    """Local globs expanded (sorted); files, folders and URIs kept. A glob that matches
    nothing is refused in one line naming it. As connectors' datasets do, a glob skips
    bookkeeping file names and refuses to reach, below its literal root, into a
    bookkeeping folder (Spark's uncommitted `_temporary/` parts: rows counted twice or
    half written); the folder is not named. `k=v` folders are read: Ray Data's hive
    partitioning keeps their column."""
    out: list[str] = []
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths):
        path = os.fspath(path)
        if "://" not in path and glob.has_magic(path):
            found = sorted(p for p in glob.glob(path) if not _bookkeeping(os.path.basename(p)))
            if not found:
                raise ConfigError(f"the source glob {path!r} matches no file; check the pattern or pass the folder")
            depth = next(i for i, part in enumerate(path.split(os.sep)) if glob.has_magic(part))
            if any(_bookkeeping(d) for p in found for d in p.split(os.sep)[depth:-1]):
                raise ConfigError(f"the source glob {path!r} reaches files inside a bookkeeping folder ('_' or '.', "
                                  "such as Spark's _temporary, which holds uncommitted parts); narrow the glob to "
                                  "the committed part files, e.g. 'folder/*.parquet'")
            out.extend(found)
        else:
            out.append(path)
    return out


def read_source(paths: str | Sequence[str], *, fmt: str = "parquet") -> Any:
    """A Ray Dataset over a Parquet or CSV dataset: a file, a directory, a glob, or a list.
    Ray Data reads files and directories but does not expand a local glob: it is expanded
    here (sorted). A URI (s3://, gs://, ...) is passed on as it is: name its folder."""
    import ray

    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"source format {fmt!r} is not supported by the Ray driver; use 'parquet' or 'csv'")
    read = ray.data.read_parquet if fmt == "parquet" else ray.data.read_csv
    # one read per path, then a union: Ray 2.60 resolves a LIST of paths on several threads,
    # and where fsspec's http module cannot import (no aiohttp) one thread's failed import
    # makes another's fail with ImportError; one path per read resolves on one thread
    datasets = [read(path) for path in expand_paths(paths)]
    return datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]


def ray_partials(paths: str | Sequence[str], stats: Sequence[Statistic], *, entity_key: str | None = None,
                 k: int = 1, fmt: str = "parquet", partitions: int | None = None,
                 address: str | None = None, num_cpus: int = LOCAL_NUM_CPUS, columns: Iterable[str] | None = None,
                 first_by: SequenceOrder | None = None) -> list[Partial]:
    """Read the source with Ray Data, map every block to its partial sums, and merge them on
    the driver as they stream in (memory on the driver: one merged partial per statistic).

    With an `entity_key`, the dataset is first sorted by the key (a range-partitioned
    shuffle: all rows of one key land in one sorted partition) and each block is mapped
    whole (`batch_size=None`). Ray Data slices a large sorted partition (above ~1.5 × its
    128 MiB target block size) into consecutive blocks, so a unit's rows can straddle a
    cut: only a block's first and last unit can, and those are bounded once, on the
    driver, over all their blocks (`_ray_map`, `merge_mapped`). `partitions`, when given, sets the number of
    blocks (ranges) first. The sort runs on Ray tasks; the hash shuffle
    (`repartition(keys=...)`) gives the same routing but runs on actors, which crashed on
    teardown (SIGSEGV in Ray's metrics thread) on this 2-core machine. Without a key, the
    row is the unit, nothing needs routing, and blocks stream through in any batch size.
    `first_by` (with a key): DPHMM's bound, each entity's first k rows by sequence index."""
    if first_by is not None and entity_key is None:
        raise ConfigError("a bound by sequence index needs the entity key; set --entity-key")
    if k < 1:
        raise ConfigError(f"max rows per entity must be at least 1, got {k}; use --max-rows-per-entity 1 or more")
    if entity_key is None and k != 1:
        raise ConfigError("max rows per entity above 1 needs an entity key; set --entity-key or use k=1")
    init_ray(address=address, num_cpus=num_cpus)

    ds = read_source(paths, fmt=fmt)
    if columns is not None:
        columns = list(columns)
        if first_by is not None and first_by.index not in columns:
            columns.append(first_by.index)  # the bound reads it
        ds = ds.select_columns(columns)
    fn_kwargs = {"stats": list(stats), "entity_key": entity_key, "k": k, "first_by": first_by}
    if entity_key is not None:
        if partitions:
            ds = ds.repartition(partitions)  # how many sorted ranges (blocks) the sort below makes
        ds = ds.sort(entity_key).map_batches(_ray_map, batch_size=None, batch_format="pandas", fn_kwargs=fn_kwargs)
    else:
        ds = ds.map_batches(_ray_map, batch_format="pandas", fn_kwargs=fn_kwargs)
    blobs = (blob for batch in ds.iter_batches(batch_size=None, batch_format="pandas") for blob in batch["partials"])
    return merge_mapped(blobs, stats, entity_key=entity_key, k=k, first_by=first_by)
