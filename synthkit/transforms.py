"""Reversible per-column transforms whose learned state is public or DP.

Contract (after RDT): `fit(values, ctx)` learns under DP and charges the ledger;
`transform(values, rng)` → float block; `inverse_transform(block)` → values. The encoded
layout is described by `Span`s (width + activation) shared by transformers and networks,
as in CTGAN's data transformer.

- categorical / boolean: one-hot over the DP-discovered (or public) categories, plus one
  explicit OTHER label for categories too rare to release and a NULL label when nullable.
- continuous / integer / datetime: CTGAN's mode-specific normalisation, with the modes
  fitted to a DP histogram inside DP (or public) bounds; plus a null indicator.
- identifier: never learned; the output gets fresh surrogate keys.

Format facts (a boolean's spelling, a datetime's time zone and unit) come from the
DECLARED schema or its canonical defaults, never from the rows (schema.py): a row spelled
"no" or carrying another UTC offset changes nothing in the fitted state.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import norm

from synthkit.errors import DataValidationError
from synthkit.ledger import PrivacyLedger
from synthkit.mechanisms import (
    GEOMETRIC_EDGES,
    INTEGER_EDGES,
    RANGE_CLIP_NOTE_FALSE,
    PreprocessingPlan,
    charge_two_looks,
    cleared_extent,
    clipped_mass_clears,
    fit_mixture_to_histogram,
    geometric_range,
    guess_kept,
    noisy_histogram,
    partition_threshold,
    select_partitions,
    substreams,
    uncharged_look,
)
from synthkit.schema import Column, Schema, zero_one_dtype
from synthkit.table import boolean_values, numeric_values, render_datetimes, utc_seconds

logger = logging.getLogger(__name__)

OTHER = "__other__"
NULL = "__null__"
FINE_BINS = 64
DAY = 86_400.0  # seconds
MAX_INTEGER_BINS = 256


@dataclass(frozen=True, slots=True)
class Span:
    width: int
    activation: Literal["tanh", "softmax"]


@dataclass(slots=True, kw_only=True)
class FitContext:
    """What a transform needs to learn under DP: the ledger, the noise plan, a stream."""

    ledger: PrivacyLedger
    plan: PreprocessingPlan
    rng: np.random.Generator
    n_rows_dp: float  # DP count of rows (post-processing may use it freely)


# The false-release rate the null threshold uses when the plan discovers no category (its
# threshold_delta is then 0): the per-column δ of discovery at the default δ = 1e-6 over
# ten columns. Thresholding a bin of a Gaussian histogram is post-processing, so this
# costs no privacy; it only sets how rarely a column without nulls is given some.
NULL_RELEASE_DELTA = 1e-8
# the folded remainder of a discovered column (`CategoricalTransform.fit`) keeps an OTHER
# label only when it clears this many of its noise std: a column that folds nothing gets
# one in 2.3% of fits (post-processing of the row count and the released label counts)
OTHER_CLEAR_SIGMAS = 2.0


def null_release_threshold(plan: PreprocessingPlan) -> float:
    """The DP count a null label must exceed to be released: the category-discovery
    threshold τ of `partition_threshold` (k + σ·Φ⁻¹(1 − δ/k)) for the plan's histogram
    noise — so a column without nulls gets none (a noisy 0 clears τ with probability
    below δ/k), while a column with many keeps them."""
    delta = plan.threshold_delta if plan.threshold_delta > 0 else NULL_RELEASE_DELTA
    return partition_threshold(sigma=plan.sigma_hist, k=plan.k, threshold_delta=delta)


def null_released(noisy_count: float, n_null: int, ctx: FitContext) -> bool:
    """Whether a column's null label is released (post-processing of its noisy count;
    without privacy: whether the column holds any null)."""
    if not ctx.ledger.private:
        return n_null > 0
    return float(noisy_count) > null_release_threshold(ctx.plan)


# The widest window of neighbouring grid bins `best_window_range` considers, the noise
# penalty (in noise stds of the window's sum) that keeps it from widening into empty bins,
# and the magnitudes it searches (a public prior, not data): without it the best window
# lands on noise far out on the grid more often (burn-like columns, 1,000 noise draws: it
# missed the data in 4-7% of draws over the whole grid, 1.4-3.5% within 2^30).
FALLBACK_MAX_WINDOW = 16
FALLBACK_PENALTY = 2.0
FALLBACK_MAX_ABS = 2.0 ** 30
FALLBACK_MAX_ABS_DATETIME = 2.0 ** 34  # UTC seconds: up to the year 2514
# internal columns a model needs with a range, even a guessed one (DPHMM's context start,
# models/hmm/context.START; ranges.drop_unlearned_ranges skips it too): `guess_kept` is not
# applied to them
GUESS_GUARD_EXEMPT = frozenset({"__start__"})


# A value bin of an integer column inside its DP range's outermost grid bin, beyond the
# values there that clear the noise, keeps its place only when the mass estimated beyond
# them clears this many std of that estimate (`outer_values_kept`)
OUTER_KEEP_SIGMAS = 2.0
# ... and only when at most this many values lie beyond (the few whole values of a grid bin
# under 12, where an invented value sits right next to the data: a stage 5, a score of 11).
# Cutting longer runs lost real values below 2 std (lung `pat.karno`'s 70s in [64, 90.5),
# birthwt ages 16-19 in [16, 22.6); 20 draws at ε = 3: total variation 0.609 -> 0.613 and
# 0.408 -> 0.416), so a wide outer bin keeps its values
OUTER_MAX_CUT = 3
# ... and only on a short scale, a range of at most this many whole values (stages, scores,
# short counts), where a value beyond the data is read as a bug. On wide ranges the cut
# moved the last 1-3 values and cost utility: credit_data (schema infer, target Status, ε = 1,
# fixed draws 1-6) TSTR 0.759 without the cut, 0.712 with it on every integer column (Time,
# Expenses, Income, ...), the padding alone 0.759 (session 10, bench_associations)
OUTER_CUT_MAX_VALUES = 16


# An integer column's DP range is padded by up to PAD_BINS grid bins just outside it on each
# side, each holding at most PAD_MAX_VALUES whole values: with 1, the bins of 0, 1, 2 and 3
# alone (small scores, stages, short stays). Bins of 2-4 values (4-5 ... 12-15) were padded
# too at first; on NMES1988 at ε = 1 (1,500 rows, fixed draws 17-22) that widened `visits`
# from 0-5 to 0-15 in one draw and its released zero share then missed by 4.5 pp (mean gap
# over 71 column-draws unchanged, 1.07 pp; tests/test_zero_spikes_eps1 then capped the worst at 4).
# The value histogram, measured over the padded range, and the range histogram's
# counts of those bins decide together, outermost first, how far it stays: their combined
# estimate of a padded bin's mass must clear PAD_KEEP_SIGMAS std for it and the padded bins
# inside it to stay (`padding_kept`). Empty padded bins stay with probability about
# PAD_BINS x 0.13% per side (the one-bin range tests allow about 0.1%).
PAD_BINS = 3
PAD_MAX_VALUES = 1
PAD_KEEP_SIGMAS = 3.0
FORCED_TOP_KEEP_SIGMAS = 1.0  # the value after a one-value range (`_forced_top_clears`)


def _whole_values(left: float, right: float) -> tuple[float, float]:
    """The whole values a grid bin [left, right) holds: ceil(left) .. ceil(right) - 1."""
    return float(np.ceil(left)) + 0.0, float(np.ceil(right) - 1.0) + 0.0


def padded_range(lo: float, hi: float, dp_range: Any) -> tuple[float, float, tuple[list[int], list[int]]]:
    """[lo, hi] of an integer column widened by the grid bins just outside its DP range that
    hold 1..PAD_MAX_VALUES whole values (0, 1, 2, 3), at most PAD_BINS per side (issue 17), and how many
    values each added bin holds (nearest first) per side.

    Small integer spans lost their ends on ~200-row tables: at ε = 3 with σ ≈ 20 per range
    bin, licorice's Mallampati class 1 (70 patients) or birthwt's race 3 (67, behind race 2's
    26) failed the range tests (4.5σ, 3.35σ for a neighbour) about half the time, and at
    ε = 1 medpar's stays of 1-3 days (272 of 1,495) were cut (range 4-22). The padded bins are
    public edges chosen from the range's DP output (post-processing); whether they keep any
    value is decided on the noisy counts (`padding_kept`)."""
    sides: tuple[list[int], list[int]] = ([], [])
    for side, bins in ((0, getattr(dp_range, "below", ())), (1, getattr(dp_range, "above", ()))):
        for left, right, _ in bins[:PAD_BINS]:
            if not (np.isfinite(left) and np.isfinite(right)):
                break
            a, b = _whole_values(left, right)
            if not (1 <= b - a + 1 <= PAD_MAX_VALUES) or (b != lo - 1 if side == 0 else a != hi + 1):
                break
            sides[side].append(int(b - a + 1))
            lo, hi = (a, hi) if side == 0 else (lo, b)
    return lo, hi, sides


def _forced_top_clears(count: float, value: float, dp_range: Any, *, sigma_hist: float, sigma_range: float) -> bool:
    """Whether the value after a one-value DP range stays. It was added for the histogram's
    sake (two bins), not from the data, so it must clear FORCED_TOP_KEEP_SIGMAS std of its
    value histogram count, combined (inverse variance) with the range histogram's count of
    the grid bin just above the range when that bin holds this value alone. Session 11's
    trial: ICU's 0/1 `Survive` got the range [1, 1] at 140 rows and came back with 2s from
    noise. The bar is one std, not the padding's three: the top bin also holds every value
    clipped beyond the range, so cutting it wrongly moves all of that mass onto the one value
    (NMES1988 `novisits` at ε = 1, range [0, 0]: 3 std cut its 17% of nonzero rows in one of
    six fixed draws, a 16.5 pp zero-share miss), while keeping an empty one wrongly gives it
    only noise-level mass. Post-processing of the two noisy histograms."""
    w = 1.0 / sigma_hist**2
    total = float(count) * w
    above = getattr(dp_range, "above", ())
    if above and np.isfinite(above[0][0]) and np.isfinite(above[0][1]) \
            and _whole_values(above[0][0], above[0][1]) == (value, value):
        total += float(above[0][2]) / sigma_range**2
        w += 1.0 / sigma_range**2
    return total / w > FORCED_TOP_KEEP_SIGMAS / np.sqrt(w)


def padding_kept(noisy: np.ndarray, pad: tuple[list[int], list[int]], *, dp_range: Any, sigma_hist: float,
                 sigma_range: float) -> tuple[tuple[int, int], Any]:
    """Which value bins of a padded range stay ((first, last) into `noisy`, whose last cell
    is the null count), and the range's outer bins after it (a DPRange-like value for
    `outer_values_kept`). Per side, outermost first, a padded bin and every padded bin
    inside it stay when the combined estimate of its mass — the range histogram's noisy
    count of that grid bin (σ_r) and the sum of the value histogram's noisy counts of its
    values (σ per value; the end value also holds the clipped values beyond it) — clears
    PAD_KEEP_SIGMAS std; else it goes and the next one inward is tested. (Testing a bin
    together with the empty bins beyond it diluted the test: licorice's Mallampati class 1
    came back in 24 of 40 seeded draws instead of 36.)
    Post-processing of the two noisy histograms."""
    values = np.asarray(noisy[:-1], dtype=float)
    outer = dp_range

    def clears(counts: list[float], part: np.ndarray) -> bool:  # counts: range bins, part: their values
        w1, w2 = 1.0 / (len(counts) * sigma_range**2), 1.0 / (len(part) * sigma_hist**2)
        return (sum(counts) * w1 + float(part.sum()) * w2) / (w1 + w2) > PAD_KEEP_SIGMAS / np.sqrt(w1 + w2)

    below, above = pad
    n = len(values)
    last = n - 1 - sum(above)  # no padded bin above stays unless a test keeps it
    for j in range(len(above), 0, -1):  # bin j (k outermost): keep bins 1..j?
        start = n - sum(above[j - 1:])
        if clears([dp_range.above[j - 1][2]], values[start:start + above[j - 1]]):
            last = start + above[j - 1] - 1
            outer = dataclasses.replace(outer, hi_bin=dp_range.above[j - 1])
            break
    first = sum(below)
    for j in range(len(below), 0, -1):
        stop = sum(below[j - 1:])
        if clears([dp_range.below[j - 1][2]], values[stop - below[j - 1]:stop]):
            first = stop - below[j - 1]
            outer = dataclasses.replace(outer, lo_bin=dp_range.below[j - 1])
            break
    return (first, last), outer


def outer_values_kept(noisy: np.ndarray, *, lo: float, dp_range: Any, sigma_hist: float,
                      sigma_range: float) -> tuple[int, int]:
    """The first and last value bins of an integer column's value histogram to keep (issue 17).

    The DP range ends on the edges of the integer grid, whose bins above 4 hold several whole
    values ([4, 5.66) holds 4 and 5): a 1-4 column (pbc `stage`) got the range 2-5, and the
    value histogram's rest, spread over its uncleared bins, gave 5 to 7-9% of the rows, a
    stage no patient has. Two independent DP releases measure that outermost range bin: the
    range histogram's noisy count R of the whole bin, and the value histogram's noisy counts
    of its values. Walking from the range's end inward to the first value that clears
    CLEAR_SIGMAS·σ, the mass beyond that value is estimated twice — R minus the noisy counts
    of the bin's values up to it (variance σ_r² + j·σ²), and the sum of the noisy counts
    beyond it (m·σ²) — and combined by inverse variance; when the combination is under
    OUTER_KEEP_SIGMAS std, the values beyond (at most OUTER_MAX_CUT) are left out of the
    histogram (and the range).
    A bin with no cleared value keeps all its values (the data are in it, the noise cannot
    say where: ph.karno's 100 in [90.5, 128)). A side is not cut where fewer than two value
    bins would stay (the range keeps two whole values at least). `noisy` holds
    the value bins (one per whole value from `lo`) and the null cell last. All of it is
    post-processing of the two noisy histograms; nothing new is read from the data."""
    values = np.asarray(noisy[:-1], dtype=float)
    n = len(values)
    first, last = 0, n - 1
    tau = CLEAR_SIGMAS * sigma_hist

    def beyond_is_empty(inner: np.ndarray, outer: np.ndarray, count: float) -> bool:
        var1 = sigma_range**2 + len(inner) * sigma_hist**2
        var2 = len(outer) * sigma_hist**2
        r1, r2 = count - float(inner.sum()), float(outer.sum())
        w1, w2 = 1.0 / var1, 1.0 / var2
        return (r1 * w1 + r2 * w2) / (w1 + w2) < OUTER_KEEP_SIGMAS / np.sqrt(w1 + w2)

    hi_bin, lo_bin = getattr(dp_range, "hi_bin", None), getattr(dp_range, "lo_bin", None)
    if hi_bin is not None:
        start = int(max(np.ceil(hi_bin[0]) - lo, 0)) if np.isfinite(hi_bin[0]) else 0
        cleared = [j for j in range(start, n) if values[j] > tau]
        if cleared and 1 <= cleared[-1] < n - 1 and n - 1 - cleared[-1] <= OUTER_MAX_CUT and beyond_is_empty(
                values[start:cleared[-1] + 1], values[cleared[-1] + 1:], hi_bin[2]):
            last = cleared[-1]
    if lo_bin is not None:
        stop = int(min(np.ceil(lo_bin[1]) - 1 - lo, n - 1)) if np.isfinite(lo_bin[1]) else n - 1
        cleared = [j for j in range(0, stop + 1) if values[j] > tau]
        if cleared and 0 < cleared[0] < last and cleared[0] <= OUTER_MAX_CUT and beyond_is_empty(
                values[cleared[0]:stop + 1], values[:cleared[0]], lo_bin[2]):
            first = cleared[0]
    return first, last


# Issue 17 (session 12): a column in a narrow band far from 0 (years 1995-2003, prices near
# 1,000, birth years) gets a DP range of whole grid bins, a factor sqrt(2) each: survival's
# flchain `sample.yr` (7,874 rows, epsilon = 3) got [1449, 2047], and its 64 value bins of ~9.4
# years then spread the 9 real years over 1991-2009 (14% of synthetic rows outside [1995,
# 2003]). Where the DP range excludes 0 and spans at most ZOOM_MAX_RATIO (its ends' magnitudes;
# no geometric edge to resolve it) and, for an integer column, more than OUTER_CUT_MAX_VALUES
# whole values, the value histogram is measured in two looks with the same total rho: ZOOM_SHARE
# of its rho for the second. The first look uses the usual edges; when the bins whose noisy
# counts hold data (`mechanisms.cleared_extent`) are at most ZOOM_NARROW_BINS, the second look
# measures only them and one bin beyond on each side, on finer edges (`histogram_edges` of that
# window: one bin per whole value up to MAX_INTEGER_BINS); otherwise it measures the same edges
# again and the two are averaged by inverse variance (the noise of one look at the full rho).
# Last, the range is narrowed to the extent that clears on the final histogram, but never past
# the inner edge of the DP range's outermost grid bins (the range histogram, at twice a value
# histogram's rho, says data lie in them). On the usual edges the extent is first widened by
# ZOOM_TAIL_MARGIN of its width on each side: a bell's tails thinner than the noise do not
# clear (N(1000, 20), 2,000 rows, sigma ~ 13: the extent alone was about +-2 sd and the
# narrowed range cut ~5% of the rows; with the margin 0.2% of the margin lies outside the data,
# mean of 10 draws). The finer bins of the zoom get no margin (years: their empty neighbours
# got rows from the rest that `clear_histogram` places, up to 6% in one draw of ten). An
# integer column whose usual edges are one bin per value is not narrowed there (only averaged):
# `clear_histogram` already leaves its empty values empty, and the extent cut real spiky values
# (modeldata credit `Time`, months 6-72 in steps of 6, at epsilon = 1: the range started at 22,
# not 12 or 16, in one draw of three; flchain `age` ended at 97 in 2 draws of 10). The two looks' noise, 1/s1^2 + 1/s2^2 = 1/s^2, has
# the Renyi curve of the one Gaussian planned and charged (`mechanisms.charge_two_looks`: one
# event `histogram:<column>` at s, the same ledger as any other column's); the zoom's edges are
# chosen from the first look's DP output (adaptive composition). The rest is post-processing.
# Only where the DP row count is at least ZOOM_MIN_ROWS_SIGMAS value-histogram noise std (one
# std per bin were the rows spread evenly over 64 bins): below it the extent on the finer bins cut real values (300 rows,
# years 1995-2003 at sigma ~ 13: the narrowed range started at 2000 in one draw of ten), and
# the column keeps one look on the usual edges and its DP range, as before.
ZOOM_MAX_RATIO = 4.0
ZOOM_SHARE = 0.5
ZOOM_NARROW_BINS = 4
ZOOM_TAIL_MARGIN = 0.25
ZOOM_MIN_ROWS_SIGMAS = 64.0

# Session 13 (issue 17): openintro acs12 `hrs_work` (2,000 rows, ~1,000 null; whole hours 1-99,
# 46% of its values in 38-42, the rest spread over the other hours) came out as [38, 42] with
# 3-5 distinct values (8 of 20 transform-level draws at epsilon = 3): the first look's extent
# was the spike alone (the rest, a few rows per bin, clears no bin nor window), so the zoom
# measured only the spike, and all else was dropped. Now both narrowings, the zoom window and
# the final extent, are taken only when the mass outside the bins kept does not clear its
# noise (`outside_mass_clears`; values beyond the edges are clipped into the outer bins, so
# they count as outside), else the column keeps the wider edges: the usual edges, averaged,
# instead of the zoom; the window or the usual edges instead of the final extent. Two
# estimates of that mass, each tested one-sided at ZOOM_OUTSIDE_FALSE / 2: the sum of the noisy
# counts outside (std sigma * sqrt(#bins outside): ~6.7 sigma on acs12's 45 bins, and its
# spread-out ~540 rows were kept in only 3 of 8 such draws with it alone), and the DP row count
# less the noisy null cell less the noisy counts kept (`mechanisms.clipped_mass_clears`'s
# estimate; std sqrt(sigma_rows^2 + (1 + #bins kept) sigma^2): ~3 sigma for a zoom window of 3
# bins). A column with nothing outside keeps the wider edges in at most ZOOM_OUTSIDE_FALSE of
# its draws per narrowing. Post-processing of DP outputs: no new charge.
ZOOM_OUTSIDE_FALSE = RANGE_CLIP_NOTE_FALSE


def outside_mass_clears(noisy: np.ndarray, kept: tuple[int, int], *, sigma: float, sigma_null: float,
                        n_rows_dp: float, sigma_rows: float) -> bool:
    """Whether data lie outside value bins kept[0]..kept[1] of a noisy histogram (`noisy`: the
    value bins, Gaussian noise of std `sigma` each, then the null cell, std `sigma_null`), by
    either estimate of ZOOM_OUTSIDE_FALSE: the noisy counts outside summed, or the DP row count
    `n_rows_dp` (std `sigma_rows`) less the null cell less the counts kept. Post-processing of
    DP outputs: no charge."""
    noisy = np.asarray(noisy, dtype=float)
    bins, (a, b) = noisy[:-1], kept
    outside = np.concatenate([bins[:a], bins[b + 1:]])
    if not len(outside):
        return False
    z = float(norm.isf(ZOOM_OUTSIDE_FALSE / 2))
    if float(outside.sum()) > z * sigma * math.sqrt(len(outside)):
        return True
    missing = float(n_rows_dp) - float(noisy[-1]) - float(bins[a:b + 1].sum())
    return missing > z * math.sqrt(sigma_rows ** 2 + sigma_null ** 2 + (b - a + 1) * sigma ** 2)


def zoom_eligible(lo: float, hi: float, *, kind: str) -> bool:
    """Whether a DP range [lo, hi] is narrowed by the two-look value histogram (see ZOOM_SHARE)."""
    if not (lo > 0 or hi < 0):
        return False
    small, big = sorted((abs(lo), abs(hi)))
    if big > ZOOM_MAX_RATIO * small:
        return False
    return not (kind == "integer" and hi - lo + 1 <= OUTER_CUT_MAX_VALUES)


def _narrowed(edges: np.ndarray, extent: tuple[int, int], dp_range: Any, *, integer: bool) -> tuple[int, int]:
    """The bins [c, d] of `edges` to keep: `extent`, widened where needed so that the range still
    reaches the inner edge of the DP range's outermost grid bins, and at least two bins."""
    n = len(edges) - 1
    c, d = extent
    lo_max, hi_min = float(dp_range.lo_bin[1]), float(dp_range.hi_bin[0])
    if integer:  # the last whole value of the lowest grid bin, the first of the highest
        lo_max, hi_min = float(np.ceil(lo_max) - 1.0), float(np.ceil(hi_min))
    c = min(c, int(np.clip(np.searchsorted(edges, lo_max, side="right") - 1, 0, n - 1)))
    d = max(d, int(np.clip(np.searchsorted(edges, hi_min, side="right") - 1, 0, n - 1)))
    if d == c:
        c, d = (c, c + 1) if c + 1 < n else (max(c - 1, 0), c)
    return c, d


def zoomed_histogram(values: np.ndarray, n_null: int, lo: float, hi: float, dp_range: Any, ctx: FitContext, *,
                     label: str, integer: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The value histogram of a column whose DP range is `zoom_eligible` (see ZOOM_SHARE): its
    edges (inside [lo, hi], maybe narrower), exact counts and noisy counts (the null cell last
    in both), and the noise std of its value bins (the null cell's is the plan's sigma_hist)."""
    sigma = float(ctx.plan.sigma_hist)
    # one event, `histogram:<label>` at the planned sigma, as for any other column (see charge_two_looks)
    s1, s2 = charge_two_looks(sigma=sigma, sensitivity=ctx.plan.k, share=ZOOM_SHARE, name=f"histogram:{label}",
                              ledger=ctx.ledger)

    def measure(edges: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
        idx = bin_index(edges, np.clip(values, edges[0], edges[-1]))
        raw = np.concatenate([np.bincount(idx, minlength=len(edges) - 1), [n_null]]).astype(float)
        return raw, look(raw, s)

    def look(raw: np.ndarray, s: float) -> np.ndarray:
        return uncharged_look(raw, sigma=s, ledger=ctx.ledger, rng=ctx.rng)

    def average(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
        return (a / s1**2 + b / s2**2) / (1.0 / s1**2 + 1.0 / s2**2)

    edges = histogram_edges(lo, hi, integer=integer)
    raw, first = measure(edges, s1)
    rows = dict(n_rows_dp=ctx.n_rows_dp, sigma_rows=float(ctx.plan.sigma_rows))
    extent = cleared_extent(first[:-1], sigma=s1)
    window = None
    if extent is not None and extent[1] - extent[0] + 1 <= ZOOM_NARROW_BINS:
        window = max(extent[0] - 1, 0), min(extent[1] + 1, len(edges) - 2)
        if outside_mass_clears(first, window, sigma=s1, sigma_null=s1, **rows):  # see ZOOM_OUTSIDE_FALSE
            window = None
    if window is not None:
        a, b = window
        w_lo, w_hi = (edges[a] + 0.5, edges[b + 1] - 0.5) if integer else (edges[a], edges[b + 1])
        edges = histogram_edges(w_lo, w_hi, integer=integer)
        raw, second = measure(edges, s2)
        noisy = np.concatenate([second[:-1], [average(first[-1], second[-1])]])
        s_bins, tail = s2, 0.0
    else:
        second = look(raw, s2)  # the same edges: the counts binned for the first look
        noisy, s_bins, tail = average(first, second), sigma, ZOOM_TAIL_MARGIN
        if integer and len(edges) - 1 == hi - lo + 1:  # one bin per value: not narrowed (see ZOOM_TAIL_MARGIN)
            return edges, raw, noisy, s_bins
    extent = cleared_extent(noisy[:-1], sigma=s_bins)
    if extent is not None:
        margin = math.ceil(tail * (extent[1] - extent[0] + 1))
        extent = (max(extent[0] - margin, 0), min(extent[1] + margin, len(edges) - 2))
        c, d = _narrowed(edges, extent, dp_range, integer=integer)
        if outside_mass_clears(noisy, (c, d), sigma=s_bins, sigma_null=sigma, **rows):  # see ZOOM_OUTSIDE_FALSE
            return edges, raw, noisy, s_bins
        edges = edges[c:d + 2]
        noisy = np.concatenate([noisy[c:d + 1], noisy[-1:]])
        idx = bin_index(edges, np.clip(values, edges[0], edges[-1]))
        raw = np.concatenate([np.bincount(idx, minlength=len(edges) - 1), raw[-1:]]).astype(float)
    return edges, raw, noisy, s_bins


def best_window_range(noisy: np.ndarray, *, sigma: float, integer: bool,
                      max_abs: float = FALLBACK_MAX_ABS) -> tuple[float, float]:
    """A range guessed from a range histogram that no bin or window cleared (issue 17).

    The histogram (`geometric_range`) puts Gaussian noise on EVERY bin of a finite,
    data-independent grid (dense), so any function of its noisy counts is post-processing:
    no extra charge. Among the windows of 1..FALLBACK_MAX_WINDOW neighbouring bins inside
    ±max_abs, the one with the largest lower bound sum − FALLBACK_PENALTY·σ√m is taken.
    Unlike the cleared windows it carries no false-clear guarantee: on burn's integer
    columns (154 units over ~10 bins, σ ≈ 14; 1,000 noise draws each) it overlaps the data
    in 96.5-98.6% of draws and holds 87-91% of the values on average. The caller keeps it
    only when the column's null cell did not clear (its values must lie somewhere) and says
    so in a warning. Returns whole values for an integer grid, as `geometric_range` does."""
    grid = INTEGER_EDGES if integer else GEOMETRIC_EDGES
    edges = np.concatenate([[-np.inf], grid, [np.inf]])
    inside = (np.abs(edges[:-1]) <= max_abs) & (np.abs(edges[1:]) <= max_abs)  # bin i: [edges[i], edges[i+1])
    noisy = np.where(inside, np.asarray(noisy, dtype=float), 0.0)
    best, first, last = -np.inf, 0, 0
    for m in range(1, FALLBACK_MAX_WINDOW + 1):
        sums = np.convolve(noisy, np.ones(m), mode="valid")  # window i: bins i .. i + m - 1
        whole = np.convolve(inside.astype(float), np.ones(m), mode="valid") == m
        lower = np.where(whole, sums - FALLBACK_PENALTY * sigma * np.sqrt(m), -np.inf)
        i = int(np.argmax(lower))
        if lower[i] > best:
            best, first, last = float(lower[i]), i, i + m - 1
    lo, hi = float(edges[first]), float(edges[last + 1])  # finite: `inside` holds no open end bin
    if integer:  # the whole values the bins hold: [a, b) holds ceil(a) .. ceil(b) - 1
        lo, hi = float(np.ceil(lo)) + 0.0, float(np.ceil(hi) - 1.0) + 0.0
        return lo, max(hi, lo)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


# ------------------------------------------------------------------ categorical
class CategoricalTransform:
    """One-hot over released labels. Public categories (declared, or True/False for a
    boolean) need no discovery; otherwise labels are released by partition selection."""

    def __init__(self, column: Column) -> None:
        self.column = column
        self.labels_: list[str] | None = None
        self.counts_: list[float] | None = None  # DP counts per label (for conditional sampling)
        # [false, true] spellings of a boolean: the schema's declared `true_false`, never the data's
        self.tokens_: list[str] | None = self._declared_tokens()
        self.release_threshold_: float | None = None  # count a category needs to be released (discovery)
        self.floor_: float = 0.0  # the smallest count a declared category is given (post-processing)
        # a declared target (public role, set by DataTransformer): its label histogram gets the
        # plan's target noise (mechanisms.TARGET_SHARE) when its labels are discovered
        self.target = False

    @property
    def public_domain(self) -> tuple[str, ...] | None:
        if self.column.kind == "boolean":
            return ("False", "True")
        return self.column.categories

    def n_histograms(self) -> int:
        return 1

    def n_discovery(self) -> int:
        return 0 if self.public_domain is not None else 1

    def n_targets(self) -> int:
        """1 for a declared target whose labels are discovered (its own noise in the plan)."""
        return int(self.target and self.n_discovery() == 1)

    def _strings(self, s: pd.Series) -> pd.Series:
        if self.column.kind == "boolean":
            b = boolean_values(s)
            return b.map({True: "True", False: "False"}).astype(object).where(b.notna(), None)
        present = s.notna().to_numpy()
        out = np.full(len(s), None, dtype=object)
        out[present] = s[present].astype(str).to_numpy(dtype=object)  # vectorised: no per-row Python
        return pd.Series(out, index=s.index, dtype=object)

    def _declared_tokens(self) -> list[str] | None:
        """[false, true] as the schema declares them (`true_false: [true, false]`); None:
        the canonical output, a boolean column. Any accepted spelling is READ either way."""
        pair = self.column.true_false if self.column.kind == "boolean" else None
        return None if pair is None else [pair[1], pair[0]]

    def fit(self, s: pd.Series, ctx: FitContext) -> CategoricalTransform:
        name = f"categories:{self.column.name}"
        self.tokens_ = self._declared_tokens()
        values = self._strings(s)
        n_null = int(values.isna().sum())
        observed = values.dropna().value_counts()
        domain = self.public_domain
        if domain is not None:
            raw = np.array([int(observed.get(c, 0)) for c in domain] + [n_null], dtype=float)
            noisy = noisy_histogram(raw, sigma=ctx.plan.sigma_hist, sensitivity=ctx.plan.k, name=name,
                                    ledger=ctx.ledger, rng=ctx.rng)
            # declared categories are public: every one stays reachable. A floor of half the
            # noise std (at least one row, at most a tenth of an even share) keeps a rare or
            # absent declared category in the output at a frequency below what the noise
            # could tell apart from zero (post-processing)
            floor = max(1.0, min(0.5 * ctx.plan.sigma_hist if ctx.ledger.private else 1.0,
                                 ctx.n_rows_dp / (10 * max(len(domain), 1))))
            labels, counts = list(domain), [max(float(c), floor) for c in noisy[:-1]]
            self.floor_ = float(floor)
            # the null bin is released like a category: only when its DP count clears the
            # discovery threshold (post-processing of this histogram's bin)
            null_count = noisy[-1] if null_released(noisy[-1], n_null, ctx) else None
            other_count = None
        else:
            # a literal NULL or OTHER in the data is not a label of its own: it folds into the
            # remainder (a second OTHER label made every later lookup ambiguous: re-fitting a
            # synthetic table that holds `__other__` failed with an internal error)
            raw = {str(k): int(v) for k, v in observed.items() if str(k) not in (NULL, OTHER)}
            if n_null:
                raw[NULL] = n_null  # one more category: released only if it clears the threshold
            sigma = ctx.plan.sigma_labels(target=bool(self.n_targets()))
            kept = select_partitions(raw, sigma=sigma, k=ctx.plan.k,
                                     threshold_delta=ctx.plan.threshold_delta, name=name,
                                     ledger=ctx.ledger, rng=ctx.rng)
            null_count = kept.pop(NULL, None)
            if ctx.ledger.private:
                self.release_threshold_ = partition_threshold(sigma=sigma, k=ctx.plan.k,
                                                              threshold_delta=ctx.plan.threshold_delta)
            labels = sorted(kept)
            counts = [kept[c] for c in labels]
            # the folded remainder from the DP row count: post-processing of DP values. It is
            # a difference of noisy counts, so it is positive whenever the noise pulls the
            # released counts under the row count, and it gave columns that fold nothing an
            # invented OTHER label (session 10's trial: Titanic `sex` 4.2% `__other__` with both
            # labels released). It stays only when it clears OTHER_CLEAR_SIGMAS of its own noise
            # (the row count's and every released count's, independent Gaussians)
            other_count = max(0.0, ctx.n_rows_dp - (null_count or 0.0) - sum(counts))
            if ctx.ledger.private:
                other_sd = math.sqrt(ctx.plan.sigma_rows ** 2
                                     + (len(counts) + (null_count is not None)) * sigma ** 2)
                if other_count <= OTHER_CLEAR_SIGMAS * other_sd:
                    other_count = 0.0
        if domain is None:
            labels.append(OTHER)
            counts.append(other_count if other_count is not None else 0.0)
        if self.column.nullable and null_count is not None:
            labels.append(NULL)
            counts.append(null_count)
        self.labels_ = labels
        self.counts_ = [float(max(c, 0.0)) for c in counts]
        return self

    @property
    def spans(self) -> list[Span]:
        return [Span(len(self.labels_), "softmax")]

    def transform(self, s: pd.Series, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros((len(s), len(self.labels_)), dtype=np.float32)
        out[np.arange(len(s)), self.codes(s)] = 1.0
        return out

    def codes(self, s: pd.Series) -> np.ndarray:
        """Label index of every value: a null → NULL, an unreleased category → OTHER; a
        null whose label was not released → OTHER, or the label of largest DP count."""
        values = self._strings(s).to_numpy(dtype=object)
        labels = pd.Index(self.labels_)
        other = labels.get_loc(OTHER) if OTHER in labels else -1
        null = labels.get_loc(NULL) if NULL in labels else (other if other >= 0 else int(np.argmax(self.counts_)))
        is_null = pd.isna(values)
        codes = labels.get_indexer(np.where(is_null, "", values).astype(object))
        codes = np.where(is_null, null, np.where(codes < 0, other, codes))
        codes[codes < 0] = 0  # only reachable if a label vanished without OTHER/NULL
        return codes.astype(np.int64)

    def inverse_transform(self, block: np.ndarray) -> pd.Series:
        return self.to_series(np.argmax(block, axis=1))

    def to_series(self, codes: np.ndarray) -> pd.Series:
        """Label indices → values (NULL → missing; booleans in the declared spelling)."""
        labels = np.array(self.labels_, dtype=object)
        is_null = labels == NULL
        if self.column.kind == "boolean":
            numbers = zero_one_dtype((self.tokens_[1], self.tokens_[0])) if self.tokens_ else None
            if numbers is not None:
                # a 0/1 indicator (`true_false` ['1', '0'] or ['1.0', '0.0']) comes back as numbers:
                # floats for '1.0', and for '1' integers unless the model releases nulls for the
                # column (then floats with NaN, as pandas holds integers with missing values).
                # Decided per model (its labels), never per chunk, so every chunk has one dtype.
                value = np.array([np.nan if n else (1.0 if v == "True" else 0.0) for v, n in zip(labels, is_null)])
                out = value[codes]
                return pd.Series(out.astype(np.int64) if numbers == "int" and not is_null.any() else out)
            if self.tokens_:
                spell = {"False": self.tokens_[0], "True": self.tokens_[1]}
                spelled = np.array([None if n else spell.get(v, v) for v, n in zip(labels, is_null)], dtype=object)
                return pd.Series(spelled[codes], dtype=object)
            truth = np.array([v == "True" for v in labels], dtype=bool)
            return pd.Series(pd.arrays.BooleanArray(truth[codes], is_null[codes]))
        labels[is_null] = None
        return pd.Series(labels[codes], dtype=object)

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.labels_, "counts": self.counts_, "tokens": self.tokens_,
                "release_threshold": self.release_threshold_, "floor": self.floor_}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.labels_ = list(state["labels"])
        self.counts_ = [float(c) for c in state["counts"]]
        # bundles written before `true_false` existed stored the spelling the data showed
        self.tokens_ = state.get("tokens") or self._declared_tokens()
        self.release_threshold_ = state.get("release_threshold")
        self.floor_ = float(state.get("floor") or 0.0)


# ------------------------------------------------------------------ numeric
class NumericTransform:
    """Mode-specific normalisation (Xu et al. 2019, §4.2) with modes from DP statistics.

    A value x in mode j (mean μ_j, std σ_j) is encoded as α = (x − μ_j)/(4σ_j) ∈ [−1, 1]
    and a one-hot β over modes. Bounds are public or DP (signed geometric histogram); the
    modes come from a weighted EM fitted to a DP histogram of 64 bins inside the bounds."""

    def __init__(self, column: Column) -> None:
        self.column = column
        self.bounds_: tuple[float, float] | None = None
        self.means_: np.ndarray | None = None
        self.stds_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None
        self.null_share_: float | None = None
        # the zone synthetic datetimes are written in: the declared `timezone`, never the data's
        self.tz_: str | None = column.timezone if column.kind == "datetime" else None
        self.edges_: np.ndarray | None = None  # the DP histogram: data-independent edges
        self.hist_: np.ndarray | None = None   # and its noisy counts (post-processed, >= 0)
        self.empty_: bool = False  # no DP range could be released: the column is generated all null
        self.hist_sigma_: float = 0.0  # noise std of a histogram bin (set in a private fit; not saved)
        self.hist_noisy_: np.ndarray | None = None  # its raw noisy counts (a private fit; not saved)
        # the DP range histogram's noisy count of its bin of 0 and that count's noise std (a
        # private fit without declared bounds; not saved): `marginals._combined_point_shares`
        self.range_zero_: tuple[float, float] | None = None
        self._levels: tuple[int, np.ndarray] | None = None  # cache of `quantile_levels`

    def n_histograms(self) -> int:
        return 1 if self.column.bounds is not None else 2

    def n_discovery(self) -> int:
        return 0

    def floats(self, s: pd.Series) -> np.ndarray:
        """The column as floats (NaN = null; datetimes as UTC seconds: a value with an
        offset is converted, one without is read as UTC; nothing about it is kept)."""
        if self.column.kind == "datetime":
            return utc_seconds(s, self.column.format)  # the declared (or DP-decided) format
        return numeric_values(s).to_numpy(dtype=float)

    def _public_bounds(self) -> tuple[float, float] | None:
        b = self.column.bounds
        if b is None:
            return None
        if self.column.kind == "datetime":
            return (pd.Timestamp(b[0]).value / 1e9, pd.Timestamp(b[1]).value / 1e9)
        return (float(b[0]), float(b[1]))

    def fit(self, s: pd.Series, ctx: FitContext) -> NumericTransform:
        x = self.floats(s)
        present = ~np.isnan(x)
        values = x[present]
        bounds = self._public_bounds()
        # `what`: how messages name the column (a model's internal column sets a public description)
        what = getattr(self, "what", None) or f"column {self.column.name!r}"
        label = getattr(self, "event_label", None) or self.column.name  # its ledger events' suffix
        self.empty_ = False
        self.range_zero_ = None
        self.guess_set_aside_ = False  # fit time only (not saved): the guessed range was noise (`guess_kept`)
        guessed = False  # the range is `best_window_range`'s guess (no bin or window cleared)
        dp_range = None  # the DP range (with its outermost grid bins) when learned here
        if bounds is None:
            from synthkit.mechanisms import RangeNotLearnedError
            try:
                dp_range = geometric_range(values, sigma=ctx.plan.sigma_range, sensitivity=ctx.plan.k,
                                           name=f"bounds:{label}", ledger=ctx.ledger, rng=ctx.rng,
                                           what=what, integer=self.column.kind == "integer")
                bounds = (dp_range.lo, dp_range.hi)
                if ctx.ledger.private:
                    # the range histogram's noisy count of its bin of 0 (DP output; fit time only)
                    self.range_zero_ = (dp_range.zero_count, dp_range.sigma)
            except RangeNotLearnedError as err:  # a refused charge (BudgetExceededError) still ends the fit
                if not self.column.nullable:
                    raise
                # No bin of the DP range histogram cleared the noise (a column no record
                # fills, or too few). The histogram is dense (noise on every bin of a finite
                # grid), so its best window is a post-processed guess (`best_window_range`);
                # the histogram below runs on it (the same charge either way), and its null
                # cell decides: cleared (a column of nulls) -> released empty, all null, as
                # before; not cleared (issue 17: burn's Z4, 154 values, no null) -> the
                # guessed range is kept, with a warning. Without a guess (no noisy counts):
                # a fixed placeholder range, and the column is empty.
                if err.noisy is not None:
                    bounds = best_window_range(err.noisy, sigma=ctx.plan.sigma_range,
                                               integer=self.column.kind == "integer",
                                               max_abs=FALLBACK_MAX_ABS_DATETIME if self.column.kind == "datetime"
                                               else FALLBACK_MAX_ABS)
                    guessed = True
                    if (ctx.ledger.private and self.column.name not in GUESS_GUARD_EXEMPT
                            and not guess_kept(ctx.n_rows_dp, ctx.plan.sigma_range)):
                        # session 12: on a small table (60 rows, σ ≈ 13) the best window is a
                        # window of pure noise (ages of -14,049 to -1,451); the DP row count
                        # (already released) is under GUESS_MIN_SIGMAS noise stds, so the guess
                        # says nothing about the column: it is generated empty (post-processing)
                        self.empty_ = self.guess_set_aside_ = True
                else:
                    self.empty_ = True
                    bounds = (0.0, DAY) if self.column.kind == "datetime" else (0.0, 1.0)
        lo, hi = bounds
        forced_top = False
        if self.column.kind == "integer":
            # the smallest whole value inside the range: a DP range starting at the grid edge
            # -0.5 (the bin of 0) holds no -1, which floor() let a count column produce
            lo, hi = float(np.ceil(lo)) + 0.0, float(np.ceil(hi)) + 0.0  # + 0.0: no -0.0
            if hi <= lo:  # one value: a second bin for the histogram, kept only if it clears (below)
                hi, forced_top = lo + 1, True
            if not hi > lo:  # beyond 2**53 a float cannot tell lo from lo + 1 (table validation refuses such data)
                raise DataValidationError([f"{what}: its range lies beyond ±2**53, where integers are not exact; "
                                           "declare kind 'identifier' or 'continuous'"])
        pad: tuple[list[int], list[int]] = ([], [])  # values of each padded bin, below / above
        if ctx.ledger.private and dp_range is not None and self.column.kind == "integer":
            lo_pad, hi_pad, pad_pad = padded_range(lo, hi, dp_range)
            if hi_pad - lo_pad + 1 <= MAX_INTEGER_BINS:  # one bin per value: the padding can be tested
                lo, hi, pad = lo_pad, hi_pad, pad_pad
        sigma_bins = float(ctx.plan.sigma_hist)  # noise std of a value bin (the null cell's: sigma_hist)
        zoomed = (ctx.ledger.private and dp_range is not None and not guessed and not forced_top
                  and pad == ([], []) and zoom_eligible(lo, hi, kind=self.column.kind)
                  and ctx.n_rows_dp >= ZOOM_MIN_ROWS_SIGMAS * ctx.plan.sigma_hist)
        if zoomed:  # a narrow band far from 0: two looks, the range narrowed (see ZOOM_SHARE)
            edges, raw, noisy, sigma_bins = zoomed_histogram(values, int(np.count_nonzero(~present)), lo, hi,
                                                             dp_range, ctx, label=label,
                                                             integer=self.column.kind == "integer")
            n_bins = len(edges) - 1
            if self.column.kind == "integer":
                lo, hi = float(edges[0] + 0.5), float(edges[-1] - 0.5)
            else:
                lo, hi = float(edges[0]), float(edges[-1])
        else:
            edges = histogram_edges(lo, hi, integer=self.column.kind == "integer",
                                    zero_spike=self.column.kind == "continuous")
            n_bins = len(edges) - 1
            idx = bin_index(edges, np.clip(values, lo, hi))
            raw = np.concatenate([np.bincount(idx, minlength=n_bins), [np.count_nonzero(~present)]]).astype(float)
            noisy = noisy_histogram(raw, sigma=ctx.plan.sigma_hist, sensitivity=ctx.plan.k,
                                    name=f"histogram:{label}", ledger=ctx.ledger, rng=ctx.rng)
        if (ctx.ledger.private and dp_range is not None and self.column.kind == "integer"
                and n_bins == hi - lo + 1 and not zoomed):
            keep, outer = padding_kept(noisy, pad, dp_range=dp_range, sigma_hist=ctx.plan.sigma_hist,
                                       sigma_range=ctx.plan.sigma_range)
            def cut(a: int, b: int) -> None:  # keep value bins a..b (and the null cell)
                nonlocal edges, lo, hi, noisy, raw, n_bins
                edges, lo, hi = edges[a:b + 2], lo + a, lo + b
                noisy = np.concatenate([noisy[a:b + 1], noisy[-1:]])
                raw = np.concatenate([raw[a:b + 1], raw[-1:]])
                n_bins = len(edges) - 1

            if forced_top and not pad[1] and keep[1] == n_bins - 1 > keep[0] \
                    and not _forced_top_clears(noisy[n_bins - 1], float(hi), dp_range, sigma_hist=ctx.plan.sigma_hist,
                                               sigma_range=ctx.plan.sigma_range):
                keep = (keep[0], keep[1] - 1)
            if keep != (0, n_bins - 1):  # a padded bin the two histograms do not fill: out again
                cut(*keep)
            if n_bins <= OUTER_CUT_MAX_VALUES:  # post-processing: the value bins beyond the data
                keep = outer_values_kept(noisy, lo=lo, dp_range=outer, sigma_hist=ctx.plan.sigma_hist,
                                         sigma_range=ctx.plan.sigma_range)
                if keep != (0, n_bins - 1):
                    cut(*keep)
        noisy_raw = noisy
        if (ctx.ledger.private and dp_range is not None and dp_range.inside is not None
                and not any(n.startswith(f"{what}: values ") for n in ctx.ledger.notes)  # `_note_clipped` said it
                and clipped_mass_clears(n_rows_dp=ctx.n_rows_dp, sigma_rows=ctx.plan.sigma_rows,
                                        null_count=float(noisy_raw[-1]), sigma_null=sigma_bins,
                                        inside=dp_range.inside, sigma_range=dp_range.sigma)):
            # session 12 (nsw74psid3 `re74`: range {0}, 40% of its values far above it, unsaid):
            # the DP row count exceeds what the range and the null cell hold by more than the
            # noise (post-processing; derivation next to mechanisms.RANGE_CLIP_NOTE_FALSE)
            logger.warning("%s: part of its values lie beyond its DP range and were clipped onto it (too few per grid "
                           "bin to clear the noise); declare 'bounds' for it in a schema (--schema), or fit with a "
                           "larger epsilon or more rows", what)
            ctx.ledger.notes.append(f"{what}: values beyond its DP range were clipped (the DP row count exceeds the "
                                    "range's noisy count); declare 'bounds', or a larger epsilon or more rows")
        if ctx.ledger.private:
            # post-processing (`clear_histogram`): bins that clear 3σ keep their count, the
            # rest of the DP row count goes where aggregated bins clear the noise, so noise
            # over empty bins does not become a fat synthetic tail and a diffuse part is not
            # lost next to a spike
            null = max(float(noisy[-1]), 0.0) if null_released(noisy[-1], int(raw[-1]), ctx) else 0.0
            cleared = clear_histogram(noisy[:-1], np.diff(edges), sigma=sigma_bins,
                                      total=ctx.n_rows_dp - null,
                                      total_sigma=float(np.hypot(ctx.plan.sigma_rows, ctx.plan.sigma_hist)),
                                      zero=zero_bin(edges, integer=self.column.kind == "integer"))
            if cleared.sum() > 0:
                noisy = np.concatenate([cleared, noisy[-1:]])
        noisy = np.clip(noisy, 0, None)
        self.edges_, self.hist_ = edges, noisy[:-1]
        # the raw noisy counts (DP output, before clearing): the pair tree combines a one-value
        # bin's raw count with its tables' (`marginals._combined_point_shares`); a cleared count
        # is biased low where the bin fell under the threshold (fit time only, not saved)
        self.hist_noisy_ = np.asarray(noisy_raw[:-1], dtype=float) if ctx.ledger.private else None
        # the noise std of each histogram bin (public, from the plan): the pair tree weighs
        # this measurement of a one-value bin against its tables' (fit time only, not saved)
        self.hist_sigma_ = sigma_bins if ctx.ledger.private else 0.0
        self._levels = None
        # the modes are fitted on the histogram summed onto at most FINE_BINS equal bins
        centres, counts, width = _equal_width(edges, noisy[:-1])
        self.means_, self.stds_, self.weights_ = fit_mixture_to_histogram(centres, counts, bin_width=width)
        total = noisy.sum()
        self.null_share_ = float(noisy[-1] / total) if total > 0 else 0.0
        if not null_released(noisy[-1], int(raw[-1]), ctx):
            # the null label did not clear the release threshold: no null is generated
            # (a share of exactly 0 marks it in the bundle; `nulls_released`)
            self.null_share_ = 0.0
        if guessed and (null_released(noisy[-1], int(raw[-1]), ctx) or noisy[-1] > ctx.n_rows_dp / 2):
            # its nulls cleared, or its noisy null count is over half the DP row count (a
            # column of nulls on a table too small for the null threshold; review R3): the
            # guessed range is not trusted and the column stays empty, as before the guess
            self.empty_ = True
        if self.guess_set_aside_:
            logger.warning("%s: its range cannot be learned under DP at this epsilon and row count (a guess would "
                           "come from noise alone), so it is generated empty (all null); declare 'bounds' for it in "
                           "a schema (--schema), or fit with a larger epsilon or more rows", what)
            ctx.ledger.notes.append(f"{what}: range not learned under DP (a guess from noise set aside); generated "
                                    "empty (all null); declare 'bounds', or a larger epsilon or more rows")
            self.hist_ = np.zeros_like(self.hist_)
            self.null_share_ = 1.0
        elif self.empty_:
            logger.warning("%s: too few values to learn its range under DP; it is generated empty (all null); "
                           "declare 'bounds' for it to learn its values", what)
            ctx.ledger.notes.append(f"{what}: too few values to learn its range under DP; generated empty "
                                    "(all null); declare 'bounds' for it to learn its values")
            self.hist_ = np.zeros_like(self.hist_)
            self.null_share_ = 1.0
        elif guessed:
            logger.warning("%s: no bin or window of its DP range histogram cleared the noise; its range is the "
                           "histogram's best window (a coarse guess that may miss part of the values); declare "
                           "'bounds' for it or raise --epsilon", what)
            ctx.ledger.notes.append(f"{what}: DP range guessed from the best window of its range histogram (no bin "
                                    "cleared; post-processing, no extra epsilon); declare 'bounds' or raise epsilon")
        self.bounds_ = (float(lo), float(hi))
        return self

    @property
    def n_modes(self) -> int:
        return len(self.means_)

    @property
    def nulls_released(self) -> bool:
        """Whether the model generates nulls: the column is nullable and its null label
        cleared the release threshold in `fit` (a DP null share of exactly 0 means it did
        not; a bundle that carries no share keeps its nulls). The layout keeps the null
        span either way, so bundles of every version load unchanged."""
        return self.column.nullable and (self.null_share_ is None or self.null_share_ > 0)

    @property
    def spans(self) -> list[Span]:
        spans = [Span(1, "tanh"), Span(self.n_modes, "softmax")]
        if self.column.nullable:
            spans.append(Span(2, "softmax"))
        return spans

    def transform(self, s: pd.Series, rng: np.random.Generator) -> np.ndarray:
        x = self.floats(s)
        present = ~np.isnan(x)
        lo, hi = self.bounds_
        xc = np.clip(np.where(present, x, self.means_[0]), lo, hi)
        # posterior over modes; sample the mode as CTGAN does (seeded stream)
        logp = (-0.5 * ((xc[:, None] - self.means_[None, :]) / self.stds_[None, :]) ** 2
                - np.log(self.stds_[None, :]) + np.log(self.weights_[None, :] + 1e-12))
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random(len(xc))[:, None]
        mode = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), self.n_modes - 1)
        alpha = np.clip((xc - self.means_[mode]) / (4 * self.stds_[mode]), -0.99, 0.99)
        width = 1 + self.n_modes + (2 if self.column.nullable else 0)
        out = np.zeros((len(xc), width), dtype=np.float32)
        out[:, 0] = np.where(present, alpha, 0.0)
        out[np.arange(len(xc)), 1 + mode] = 1.0
        if self.column.nullable:
            # a null below the release threshold is encoded as a value (its α is 0, the
            # first mode's centre): the model is not taught a label it may not generate
            flag = present if self.nulls_released else np.ones(len(xc), dtype=bool)
            out[:, 1 + self.n_modes] = flag
            out[:, 2 + self.n_modes] = ~flag
        return out

    def quantiles(self, u: np.ndarray, grid_size: int = 4096) -> np.ndarray:
        """Inverse CDF of the DP margin: of the DP histogram (uniform inside each bin, so a
        one-integer bin is a point mass: spikes such as "no debt" come out exactly), or of
        the DP mixture truncated to the bounds for bundles that carry no histogram."""
        u = np.asarray(u, dtype=float)
        if self.hist_ is not None and float(np.sum(self.hist_)) > 0:
            keep = np.flatnonzero(self.hist_ > 0)
            mass = self.hist_[keep] / self.hist_[keep].sum()
            left, right = self.edges_[keep], self.edges_[keep + 1]
            cum = np.cumsum(mass)
            j = np.minimum(np.searchsorted(cum, u, side="right"), len(keep) - 1)
            frac = np.clip((u - (cum[j] - mass[j])) / mass[j], 0.0, 1.0)
            return np.clip(left[j] + frac * (right[j] - left[j]), *self.bounds_)
        from scipy.special import ndtr
        lo, hi = self.bounds_
        grid = np.linspace(lo, hi, grid_size)
        cdf = (self.weights_[None, :] * ndtr((grid[:, None] - self.means_[None, :]) / self.stds_[None, :])).sum(axis=1)
        cdf = (cdf - cdf[0]) / max(cdf[-1] - cdf[0], 1e-300)
        cdf, keep = np.unique(cdf, return_index=True)  # strictly increasing for interpolation
        return np.interp(u, cdf, grid[keep])

    def quantile_levels(self, m: int) -> np.ndarray:
        """The DP quantiles at the m levels (i + ½)/m, i < m (what `decode` assigns to the
        ranks of m values); the last m asked for is cached: chunks repeat it."""
        if self._levels is None or self._levels[0] != m:
            self._levels = (m, self.quantiles((np.arange(m) + 0.5) / m))
        return self._levels[1]

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """CDF of the DP histogram (the inverse of `quantiles`; needs a fitted histogram), as
        P(X < x): at an exact bin of width zero (the spike at 0) it is the share BELOW the
        spike, so a bin [0, b) of `searchsorted(..., side="right")` (marginals' cells) spans
        the spike's levels, and just above 0 it is the share up to and including it."""
        cum = np.concatenate([[0.0], np.cumsum(self.hist_)]) / float(np.sum(self.hist_))
        x = np.asarray(x, dtype=float)
        edges = self.edges_
        j = np.clip(np.searchsorted(edges, x, side="left"), 1, len(edges) - 1)  # first edge >= x
        left, right = edges[j - 1], edges[j]
        width = right - left
        frac = np.where(width > 0, (x - left) / np.where(width > 0, width, 1.0), (x > left).astype(float))
        frac = np.clip(frac, 0.0, 1.0)
        return cum[j - 1] + frac * (cum[j] - cum[j - 1])

    def inverse_transform(self, block: np.ndarray, *, calibrate: bool = False) -> pd.Series:
        """Decode an encoded block (see `decode`)."""
        null = (np.argmax(block[:, 1 + self.n_modes:], axis=1) == 1) if self.nulls_released else None
        x, _ = self.decode(block[:, 0], np.argmax(block[:, 1:1 + self.n_modes], axis=1), null, calibrate=calibrate)
        return self.to_series(x)

    def decode(self, alpha: np.ndarray, mode: np.ndarray, null: np.ndarray | None, *,
               calibrate: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(α, mode, null flag) → float values (NaN for a null; seconds for datetimes), and
        the indices of the present rows in increasing order of value when calibrated.

        With `calibrate`, the values are mapped rank for rank onto the DP margin's
        quantiles (`quantiles`; post-processing): the margin becomes the DP one while the
        order of the rows — hence every rank dependence the model learned — is kept."""
        x = np.clip(alpha.astype(np.float64), -1, 1) * 4 * self.stds_[mode] + self.means_[mode]
        x = np.clip(x, *self.bounds_)
        present = np.arange(len(x)) if null is None else np.flatnonzero(~null)
        order = None
        if calibrate and len(present) > 1:
            order = present[value_order(x[present])]
            x[order] = self.quantile_levels(len(order))
        x = self.round_like_column(x)
        if null is not None:
            x[null] = np.nan
        return x, order

    def round_like_column(self, x: np.ndarray) -> np.ndarray:
        """Values as the column holds them: whole for an integer, its decimals, whole days."""
        if self.column.kind == "integer":
            return np.round(x)
        if self.column.decimals is not None:
            return self.round_to_decimals(x)
        if self.column.kind == "datetime" and self.column.step_seconds > 0:
            return self.round_to_days(x, step=self.column.step_seconds)
        return x

    def round_to_decimals(self, x: np.ndarray) -> np.ndarray:
        """Values rounded to the declared `decimals`, kept inside the bounds (rounded inwards,
        so a value next to a bound cannot round past it)."""
        d = self.column.decimals
        scale = 10.0 ** d
        lo, hi = self.bounds_
        inner_lo, inner_hi = np.ceil(lo * scale - 1e-9) / scale, np.floor(hi * scale + 1e-9) / scale
        out = np.round(x, d)
        return np.clip(out, inner_lo, inner_hi) if inner_lo <= inner_hi else out

    def round_to_days(self, x: np.ndarray, *, step: float = DAY) -> np.ndarray:
        """Seconds rounded to whole (UTC) days — a column declared `time_unit: day` holds
        dates — or to the `step` of the column's precision (`Column.step_seconds`: whole
        seconds, or minutes for a format without seconds; never nanoseconds), kept inside
        the bounds (rounded inwards, as `round_to_decimals`)."""
        lo, hi = self.bounds_
        inner_lo, inner_hi = np.ceil(lo / step - 1e-9) * step, np.floor(hi / step + 1e-9) * step
        out = np.round(x / step) * step
        return np.clip(out, inner_lo, inner_hi) if inner_lo <= inner_hi else out

    def to_series(self, x: np.ndarray) -> pd.Series:
        """Float values from `decode` (NaN = null) → a Series of the column's kind."""
        if self.empty_:
            x = np.full(len(x), np.nan)
        missing = np.isnan(x)
        if self.column.kind == "integer":
            return pd.Series(pd.arrays.IntegerArray(np.where(missing, 0, x).astype("int64"), missing))
        if self.column.kind == "datetime":
            if self.column.step_seconds > 0 and self.bounds_ is not None:  # also values from the pair model
                x = np.where(missing, x, self.round_to_days(np.where(missing, 0.0, x), step=self.column.step_seconds))
            ns = np.round(np.where(missing, 0, x) * 1e9).astype("int64").astype("datetime64[ns]")
            ns[missing] = np.datetime64("NaT")
            out = pd.Series(ns)
            if self.tz_:
                out = out.dt.tz_localize("UTC").dt.tz_convert(self.tz_)
            return render_datetimes(out, self.column.format)  # written as the input was
        return pd.Series(x)

    def state_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds_), "means": self.means_.tolist(), "stds": self.stds_.tolist(),
                "weights": self.weights_.tolist(), "null_share": self.null_share_, "tz": self.tz_,
                "edges": None if self.edges_ is None else self.edges_.tolist(),
                "histogram": None if self.hist_ is None else self.hist_.tolist(), "empty": self.empty_}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bounds_ = (float(state["bounds"][0]), float(state["bounds"][1]))
        self.means_ = np.asarray(state["means"], dtype=float)
        self.stds_ = np.asarray(state["stds"], dtype=float)
        self.weights_ = np.asarray(state["weights"], dtype=float)
        self.null_share_ = state.get("null_share")
        # bundles written before `timezone` existed stored the zone the data showed
        self.tz_ = state.get("tz") or (self.column.timezone if self.column.kind == "datetime" else None)
        edges, hist = state.get("edges"), state.get("histogram")
        self.edges_ = None if edges is None else np.asarray(edges, dtype=float)
        self.hist_ = None if hist is None else np.asarray(hist, dtype=float)
        self.empty_ = bool(state.get("empty", False))
        self._levels = None


def value_order(x: np.ndarray) -> np.ndarray:
    """Indices that sort `x` (no NaNs), ties and values equal in float32 in index order.

    Sampling sorts every numeric column of every chunk twice (decode, dependence), which
    was a tenth of generation time with np.argsort. Here each value's float32 bits, made
    to compare like the floats (sign flipped, negatives inverted), go in the high half of
    a uint64 and the row index in the low half; np.sort of that is vectorised and about
    a third faster than argsort. Values closer than float32 resolution (~1e-7 relative)
    may come out in index order; every caller maps ranks onto quantiles or scores, where
    that is far below the sampling noise."""
    n = len(x)
    if n >= 2**32:
        return np.argsort(x, kind="stable")
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    key = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    key <<= np.uint64(32)
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    return (key & np.uint64(0xFFFFFFFF)).astype(np.intp)


def histogram_edges(lo: float, hi: float, *, integer: bool, zero_spike: bool = False) -> np.ndarray:
    """Data-independent bin edges inside [lo, hi] (the bounds are public or DP).

    An integer column with a modest range gets one bin per value. Otherwise FINE_BINS equal
    bins are merged with the signed geometric grid (ratio √2), down to a floor of 1/1024 of
    the range: heavy-tailed money columns (debt, assets, income) get resolution where their
    mass is. 0 gets an exact bin whenever the range holds it (a spike in such columns: "no
    expenditure", "no debt"): for an integer column the bin [-½, ½]; with `zero_spike` (a
    continuous column) a bin of width zero, the edge 0 repeated, which `bin_index` fills
    with the values equal to 0 exactly and `quantiles` turns back into exact zeros.
    Integer edges sit on half-integers so every bin holds whole values."""
    if integer and hi - lo + 1 <= MAX_INTEGER_BINS:
        return np.arange(lo - 0.5, hi + 1.0, 1.0)
    floor = (hi - lo) / (16 * FINE_BINS)
    geo = GEOMETRIC_EDGES[(GEOMETRIC_EDGES > lo) & (GEOMETRIC_EDGES < hi) & (np.abs(GEOMETRIC_EDGES) >= floor)]
    edges = np.union1d(np.linspace(lo, hi, FINE_BINS + 1), geo)
    if integer:
        inner = np.round(edges[1:-1] - 0.5) + 0.5
        zero = [-0.5, 0.5] if lo <= 0 <= hi else []
        edges = np.unique(np.concatenate([[lo - 0.5, hi + 0.5], inner, zero]))
        edges = edges[(edges >= lo - 0.5) & (edges <= hi + 0.5)]
    elif zero_spike and lo <= 0 <= hi:
        edges = np.sort(np.concatenate([np.union1d(edges, [0.0]), [0.0]]))
    return edges


def bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The histogram bin of every value (already clipped to [edges[0], edges[-1]]): bin i is
    [edges[i], edges[i+1]), the last one closed; a value equal to a repeated edge (the exact
    bin for 0 of `histogram_edges`) goes to the zero-width bin between the repeats."""
    n_bins = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, n_bins - 1)
    point = np.flatnonzero(np.diff(edges) == 0)
    for j in point:
        idx[values == edges[j]] = j
    return idx


CLEAR_SIGMAS = 3.0       # a single bin is kept when its noisy count clears this many noise std
CLEAR_SIGMAS_GROUP = 2.0  # a group of m uncleared bins holds mass when its sum clears this many √m·σ
SPLIT_SIGMAS = 2.0  # two halves' densities differ when their difference clears this many std
# the bin of 0 (a public special value: the grid gives it an exact bin) is kept when its noisy
# count clears this many noise std (issue 17, session 8). At 3σ a zero spike of 8-20% at 1,500
# rows and ε = 1 (σ ≈ 60-80 rows) was cleared to nothing in about one fit in ten, and a cell
# the histogram holds nothing in cannot be drawn, whatever the pair tables say. Kept from 1σ,
# the pair tree re-estimates the cell from the raw noisy count and every pair table
# (`marginals._combined_point_shares`); an empty bin of 0 is kept in 16% of fits, where that
# estimate then stays near 0
CLEAR_SIGMAS_ZERO = 1.0


def zero_bin(edges: np.ndarray, *, integer: bool) -> int | None:
    """The histogram bin that holds 0 alone (`histogram_edges`): the zero-width bin of a
    continuous column, [-½, ½] of an integer one; None when the grid has none."""
    e = np.asarray(edges, dtype=float)
    if integer:
        hit = np.flatnonzero((e[:-1] == -0.5) & (e[1:] == 0.5))
    else:
        hit = np.flatnonzero((e[:-1] == 0.0) & (e[1:] == 0.0))
    return int(hit[0]) if len(hit) else None


def clear_histogram(noisy: np.ndarray, widths: np.ndarray, *, sigma: float, total: float,
                    total_sigma: float, zero: int | None = None) -> np.ndarray:
    """A noisy histogram (Gaussian, std `sigma` per bin) → non-negative counts (post-processing).

    Bins whose count clears CLEAR_SIGMAS·σ keep it. Zeroing all the others (what was done
    before) kept noise out of empty tails but threw away a diffuse part — a column with
    62% exact zeros and the rest spread thinly over 80 bins came back with 90% zeros. So
    the rest of `total` (the DP count of present values, std `total_sigma`) is placed on
    the uncleared bins by `_tree_weights`: a dyadic split top down, where an empty tail
    gets nothing, halves the noise cannot tell apart share by width (a uniform density) and
    halves it can by their noisy counts.

    A positive rest is always placed, however small (issue 17): dropping a rest under
    CLEAR_SIGMAS·total_sigma (what was done before) took the small bins next to a spike out
    of the histogram and biased its total down (and the spike's share up) — Tobacco `age`
    at 1,500 rows, ε = 1: 124 zeros inside the DP range came back as none. A uniform
    spread of the whole rest would put as much on 60 visits as on 1 on a count column's
    one-bin-per-value grid (a fat synthetic tail): the tree's tail test and counts keep the
    rest where the noisy counts say it is. Bins whose share is under half a row get none and
    their share goes to the larger ones (largest weights first), so the placed total equals
    `total` exactly, as it does when the cleared bins overshoot it (they are scaled down to
    it): the released total is the DP count, unbiased. `zero`, the bin of 0, keeps its count
    from CLEAR_SIGMAS_ZERO·σ up (one public bin, tested alone). All of it is post-processing."""
    noisy = np.asarray(noisy, dtype=float)
    widths = np.asarray(widths, dtype=float)
    cleared = noisy > CLEAR_SIGMAS * sigma
    if zero is not None:
        cleared[zero] = noisy[zero] > CLEAR_SIGMAS_ZERO * sigma
    out = np.where(cleared, noisy, 0.0)
    rest = float(total) - float(out.sum())
    if rest < 0 and total > 0:  # the cleared bins' noise overshoots the DP count: keep their shares
        return out * (float(total) / float(out.sum()))
    if rest < 0.5 or cleared.all():  # less than half a row is no row
        return out
    free = np.where(cleared, 0.0, noisy)
    free_bins = (~cleared).astype(float)
    weight = _tree_weights(free, widths, free_bins, sigma=sigma)
    if weight.sum() <= 0:
        weight = free_bins
    return out + _place_rest(rest, weight)


def _tree_weights(free: np.ndarray, widths: np.ndarray, free_bins: np.ndarray, *, sigma: float) -> np.ndarray:
    """Where the rest of a histogram goes among its uncleared bins (weights summing to 1;
    post-processing of the noisy counts `free`, std `sigma` per bin): a dyadic tree split top
    down. At each node the mass goes to the two halves by
    - a tail test: when their densities (noisy sum per unit width) differ by more than
      SPLIT_SIGMAS std of that difference and only one half's sum clears
      CLEAR_SIGMAS_GROUP·σ√m, the other half is empty and gets nothing;
    - else a shrunk proportion: λ·(the halves' positive noisy sums) + (1 − λ)·(their
      widths), λ = d²/(d² + 1) for d the density difference in its std — halves the noise
      cannot tell apart share by width (a uniform density), halves it can by their counts.
    What it replaced, "the smallest groups whose sum clears take it all, a sibling that does
    not clear gets nothing", turned a flat column whose bins each sit near the noise into
    two or three narrow spikes (Mroz, 753 rows, ε = 3: the husbands' ages 30-60 came back at
    32 and 56 only, their hours per year in one 170-hour window). Over 100 noise draws per
    real histogram (benchmarks/bench_clear.py, results/clear.json) the total variation to the
    true histogram fell on 10 of 12 columns (0.43 → 0.22 on those ages, 0.55 → 0.44 on
    NMES1988's visits at ε = 1) and stayed within 0.001 on the other 2; the mass placed where
    the data has none fell on 5, stayed on 2 and rose on 5 (by at most 0.9 pp: 1.2 → 2.0%
    and 4.2 → 5.0% on Mroz's education columns)."""
    weight = np.zeros(len(free))
    sums = np.concatenate([[0.0], np.cumsum(free)])
    count = np.concatenate([[0.0], np.cumsum(free_bins)])
    width = np.concatenate([[0.0], np.cumsum(widths * free_bins)])

    def split(lo: int, hi: int, mass: float) -> None:
        m = count[hi] - count[lo]
        if m <= 0 or mass <= 0:
            return
        if m == 1 or hi - lo == 1:
            w = widths[lo:hi] * free_bins[lo:hi]
            weight[lo:hi] += mass * (w / w.sum() if w.sum() > 0 else free_bins[lo:hi] / m)
            return
        mid = (lo + hi) // 2
        m_lo, m_hi = count[mid] - count[lo], count[hi] - count[mid]
        if m_lo == 0 or m_hi == 0:
            split(lo, mid, mass) if m_hi == 0 else split(mid, hi, mass)
            return
        s_lo, s_hi = sums[mid] - sums[lo], sums[hi] - sums[mid]
        w_lo, w_hi = width[mid] - width[lo], width[hi] - width[mid]
        if w_lo > 0 and w_hi > 0:  # densities per unit width
            d = abs(s_lo / w_lo - s_hi / w_hi) / (sigma * np.sqrt(m_lo / w_lo**2 + m_hi / w_hi**2))
            by_width = w_lo / (w_lo + w_hi)
        else:  # the exact bin of 0 (width zero) on one side: a point mass, compared per bin
            d = abs(s_lo / m_lo - s_hi / m_hi) / (sigma * np.sqrt(1.0 / m_lo + 1.0 / m_hi))
            by_width = m_lo / m
        clear_lo = s_lo > CLEAR_SIGMAS_GROUP * sigma * np.sqrt(m_lo)
        clear_hi = s_hi > CLEAR_SIGMAS_GROUP * sigma * np.sqrt(m_hi)
        if d > SPLIT_SIGMAS and clear_lo != clear_hi:
            share = 1.0 if clear_lo else 0.0
        else:
            a, b = max(s_lo, 0.0), max(s_hi, 0.0)
            lam = d * d / (d * d + 1.0)
            share = lam * (a / (a + b) if a + b > 0 else by_width) + (1.0 - lam) * by_width
        split(lo, mid, mass * share)
        split(mid, hi, mass * (1.0 - share))

    split(0, len(free), 1.0)
    return weight


def _place_rest(rest: float, weight: np.ndarray) -> np.ndarray:
    """`rest` (≥ 0.5) over the bins in proportion to `weight` (≥ 0, positive sum), none to a
    bin whose share would be under half a row — a sliver such as [-1e-6, 0) below a spike at
    0 (the DP lower bound just under 0) would otherwise hold a few negative values — their
    shares going to the others: the j bins of largest weight are kept, j the largest for
    which the smallest of their shares is still ≥ 0.5 (that share falls as j grows). The
    placed total is `rest` exactly."""
    order = np.argsort(-weight, kind="stable")
    w = weight[order]
    smallest = rest * w / np.cumsum(w)  # the smallest share when the first j + 1 bins are kept
    j = int(np.flatnonzero((smallest >= 0.5) & (w > 0))[-1]) + 1
    out = np.zeros(len(weight))
    out[order[:j]] = rest * w[:j] / w[:j].sum()
    return out


def _equal_width(edges: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A histogram on `edges` as one on at most FINE_BINS equal bins (each bin's count goes
    to the equal bin holding its centre): the grid the mode fit expects."""
    widths = np.diff(edges)
    # relative only: with allclose's absolute 1e-8 a range of width 1e-185 (a column of 0 and
    # 2.7e-185, found by test_data_transformer_round_trip) counted as equal bins and its
    # zero-width bin of 0 came out as the width
    if widths[0] > 0 and np.allclose(widths, widths[0], atol=0.0):
        return (edges[:-1] + edges[1:]) / 2, counts, float(widths[0])
    lo, hi = edges[0], edges[-1]
    width = (hi - lo) / FINE_BINS
    which = np.clip(((edges[:-1] + edges[1:]) / 2 - lo) // width, 0, FINE_BINS - 1).astype(int)
    return lo + width * (np.arange(FINE_BINS) + 0.5), np.bincount(which, weights=counts, minlength=FINE_BINS), width


ColumnTransform = CategoricalTransform | NumericTransform


def make_transform(column: Column) -> ColumnTransform:
    if column.kind in ("categorical", "boolean"):
        return CategoricalTransform(column)
    return NumericTransform(column)


# ------------------------------------------------------------------ whole table
class DataTransformer:
    """All learned columns of a schema, concatenated into one encoded matrix."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.transforms: dict[str, ColumnTransform] = {c.name: make_transform(c) for c in schema.learned_columns}
        for name in getattr(schema, "targets", ()) or ():
            if isinstance(self.transforms.get(name), CategoricalTransform):
                self.transforms[name].target = True
        self.fitted = False

    def n_histograms(self) -> int:
        return sum(t.n_histograms() for t in self.transforms.values())

    def n_discovery(self) -> int:
        return sum(t.n_discovery() for t in self.transforms.values())

    def n_targets(self) -> int:
        """How many of the histograms are declared targets' label histograms with discovery."""
        return sum(t.n_targets() for t in self.transforms.values() if isinstance(t, CategoricalTransform))

    def n_bounds(self) -> int:
        """How many of the histograms are DP range histograms (numeric columns without public bounds)."""
        return sum(1 for t in self.transforms.values() if isinstance(t, NumericTransform) and t.column.bounds is None)

    def fit(self, frame: pd.DataFrame, ctx: FitContext) -> DataTransformer:
        # one stream per column: a column's data-dependent draws never shift another's noise
        rngs = substreams(ctx.rng, len(self.transforms))
        from synthkit.mechanisms import RangeNotLearnedError
        failed: list[str] = []  # every column whose DP range is refused, reported together
        for (name, t), rng in zip(self.transforms.items(), rngs):
            try:
                t.fit(frame[name], dataclasses.replace(ctx, rng=rng))
            except RangeNotLearnedError as err:
                failed.extend(err.whats)
        if failed:
            raise RangeNotLearnedError(failed)
        self.fitted = True
        return self

    @property
    def spans(self) -> list[Span]:
        return [s for t in self.transforms.values() for s in t.spans]

    @property
    def width(self) -> int:
        return sum(s.width for s in self.spans)

    def column_slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, t in self.transforms.items():
            w = sum(s.width for s in t.spans)
            out[name] = slice(start, start + w)
            start += w
        return out

    def span_targets(self) -> list[np.ndarray | None]:
        """For each span (aligned with `spans`): the DP frequencies of its labels — DP
        category counts, DP mixture weights of the modes, DP null share — or None (α)."""
        out: list[np.ndarray | None] = []
        for t in self.transforms.values():
            if isinstance(t, CategoricalTransform):
                out.append(np.asarray(t.counts_, dtype=float))
            else:
                out += [None, np.asarray(t.weights_, dtype=float)]
                if t.column.nullable:
                    share = float(t.null_share_ or 0.0)
                    out.append(np.array([1.0 - share, share]))
        return out

    def discrete_columns(self) -> list[tuple[str, slice, np.ndarray]]:
        """(name, slice in the encoded matrix, DP label frequencies) for conditioning."""
        out = []
        slices = self.column_slices()
        for name, t in self.transforms.items():
            if isinstance(t, CategoricalTransform):
                counts = np.asarray(t.counts_, dtype=float)
                freq = counts / counts.sum() if counts.sum() > 0 else np.full(len(counts), 1 / len(counts))
                out.append((name, slices[name], freq))
        return out

    def transform(self, frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        blocks = [t.transform(frame[name], rng) for name, t in self.transforms.items()]
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def inverse_transform(self, data: np.ndarray, *, calibrate: bool = False) -> pd.DataFrame:
        """Decode an encoded matrix; `calibrate` maps numeric columns onto their DP margins
        (see NumericTransform.decode)."""
        cols = {}
        for name, sl in self.column_slices().items():
            t = self.transforms[name]
            series = (t.inverse_transform(data[:, sl], calibrate=calibrate) if isinstance(t, NumericTransform)
                      else t.inverse_transform(data[:, sl]))
            cols[name] = series.reset_index(drop=True)
        return pd.DataFrame(cols)

    def decode(self, alpha: np.ndarray, codes: np.ndarray, *, calibrate: bool = False
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Sampled codes (rows: α per tanh span, label index per softmax span, in span
        order; columns: the sampled rows) →
        per column: float values (numeric, NaN = null) or label indices (categorical);
        and, for calibrated numeric columns, the present rows in order of value."""
        values, orders = {}, {}
        a = s = 0
        for name, t in self.transforms.items():
            if isinstance(t, CategoricalTransform):
                values[name] = codes[s]
                s += 1
                continue
            null = (codes[s + 1] == 1) if t.nulls_released else None
            values[name], order = t.decode(alpha[a], codes[s], null, calibrate=calibrate)
            if order is not None:
                orders[name] = order
            a += 1
            s += 2 if t.column.nullable else 1
        return values, orders

    def to_frame(self, values: dict[str, np.ndarray]) -> pd.DataFrame:
        """The output of `decode` as a frame of the columns' kinds."""
        return pd.DataFrame({name: t.to_series(values[name]) for name, t in self.transforms.items()})

    def state_dict(self) -> dict[str, Any]:
        return {name: t.state_dict() for name, t in self.transforms.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, t in self.transforms.items():
            t.load_state_dict(state[name])
        self.fitted = True
