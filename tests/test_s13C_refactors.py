"""Pure refactors, outputs bit-identical under fixed noise (session 13, task C, item 3).

`mechanisms.geometric_range` now runs `cleared_extent` (which gained `zero_bin`,
`spike_aside` and `on_windows` for it) instead of its own copy of the windows loop, and
`transforms.zoomed_histogram`'s averaged branch draws its second look on the counts it
binned for the first (it binned the values twice). The functions as they were at 3e68075
are copied verbatim at the end of this file (docstrings shortened, and the old
`zoomed_histogram` calling the old `cleared_extent`); each test runs old and new on the
same inputs with generators seeded alike and asserts equal outputs: every array
bit-for-bit, the ledger's notes and charges, the log lines, the error of a range that
cannot be learned.

Negative control: these tests compare two versions, so they pass on 3e68075 by
construction (old == old). They were checked to catch a change: with `spike_aside=False`
in the new geometric_range call, test_geometric_range_is_unchanged fails (σ = 3 and 12, the
wt.loss-like spike cases); with the averaged branch's second look drawn on the counts shifted
by one bin, test_zoomed_histogram_is_unchanged fails (private and not). (ZOOM_SHARE = 0.5, so
s1 == s2: a mutation swapping them is invisible here.)
"""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from mechanism_doubles import StubLedger
from synthkit.mechanisms import (
    GEOMETRIC_EDGES,
    INTEGER_EDGES,
    MAX_ABS,
    RANGE_FALSE_CLEAR,
    RANGE_FALSE_CLEAR_WINDOWS,
    RANGE_OUTSIDE_BINS,
    RANGE_WINDOWS,
    DPRange,
    RangeNotLearnedError,
    _drop_isolated,
    _extend_by_windows,
    _extend_to_neighbours,
    _join_zero,
    _note_clipped,
    charge_two_looks,
    cleared_extent,
    geometric_range,
    noisy_histogram,
    uncharged_look,
)
from synthkit.transforms import (
    ZOOM_NARROW_BINS,
    ZOOM_SHARE,
    ZOOM_TAIL_MARGIN,
    FitContext,
    _narrowed,
    bin_index,
    histogram_edges,
    zoomed_histogram,
)

logger = logging.getLogger("synthkit.mechanisms")  # the old geometric_range logs where the new one does


class _Ledger(StubLedger):
    """A stub ledger that keeps what was charged (to compare the two versions' charges)."""

    def __init__(self, *, private: bool = True) -> None:
        super().__init__()
        self.private = private
        self.charged: list[object] = []

    def charge(self, event: object) -> None:
        self.charged.append(event)


def _samples(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, bool]]:
    """Columns (values, integer) that reach every path of the windows loop: wide and narrow
    ranges, a spike at 0 with a thin tail (the single-bin clear set aside), tiny tables
    (windows of 2-8 bins), negative values, and a few units too few to clear anything."""
    return {
        "normal": (rng.normal(50, 10, 4000), False),
        "lognormal": (rng.lognormal(8, 2, 3000), False),
        "negative": (-rng.lognormal(3, 1, 2000), False),
        "spike_at_0_thin_tail": (np.concatenate([np.zeros(60), rng.uniform(1, 3000, 40)]), False),
        "spike_thin_tail_integer": (np.concatenate([np.zeros(80), rng.integers(1, 5000, 30)]).astype(float), True),
        "small_table": (rng.normal(300, 80, 40), False),
        "small_integer": (rng.poisson(40, 25).astype(float), True),
        "counts": (rng.poisson(3, 5000).astype(float), True),
        "too_few": (rng.uniform(1e3, 1e6, 5), False),
    }


def _outcome(fn, values, *, seed: int, sigma: float, integer: bool, caplog) -> tuple:
    ledger = _Ledger()
    caplog.clear()
    try:
        out: object = fn(values, sigma=sigma, sensitivity=1.0, name="bounds:x", ledger=ledger,
                         rng=np.random.default_rng(seed), what="column 'x'", integer=integer)
    except RangeNotLearnedError as err:
        out = ("not learned", str(err), err.whats)
    logs = [(r.levelname, r.getMessage()) for r in caplog.records]
    return out, ledger.notes, [repr(e) for e in ledger.charged], logs


@pytest.mark.parametrize("sigma", [0.5, 3.0, 12.0])
def test_geometric_range_is_unchanged(sigma, caplog):
    caplog.set_level(logging.INFO, logger="synthkit.mechanisms")
    n_paths = {"learned": 0, "not learned": 0, "windows": 0}
    for seed in range(6):
        for name, (values, integer) in _samples(np.random.default_rng(100 + seed)).items():
            new = _outcome(geometric_range, values, seed=seed, sigma=sigma, integer=integer, caplog=caplog)
            old = _outcome(old_geometric_range, values, seed=seed, sigma=sigma, integer=integer, caplog=caplog)
            assert new == old, (name, seed)
            n_paths["not learned" if isinstance(new[0], tuple) else "learned"] += 1
            n_paths["windows"] += any("windows of" in n for n in new[1])
    assert n_paths["learned"] and (sigma < 1 or n_paths["not learned"] + n_paths["windows"]), n_paths


def test_geometric_range_without_privacy_is_unchanged(caplog):
    class Public(_Ledger):
        def __init__(self) -> None:
            super().__init__(private=False)
    for name, (values, integer) in _samples(np.random.default_rng(7)).items():
        a, b = Public(), Public()
        new = geometric_range(values, sigma=1.0, sensitivity=1.0, name="bounds:x", ledger=a,
                              rng=np.random.default_rng(0), what="column 'x'", integer=integer)
        old = old_geometric_range(values, sigma=1.0, sensitivity=1.0, name="bounds:x", ledger=b,
                                  rng=np.random.default_rng(0), what="column 'x'", integer=integer)
        assert new == old and a.notes == b.notes, name


def test_cleared_extent_is_unchanged():
    rng = np.random.default_rng(20261207)
    for trial in range(400):
        n = int(rng.integers(1, 120))
        sigma = float(rng.choice([0.3, 1.0, 4.0]))
        counts = np.zeros(n)
        a = int(rng.integers(0, n))
        b = min(n, a + int(rng.integers(1, 30)))
        counts[a:b] = rng.choice([0.0, 2.0, 8.0, 40.0]) * rng.random(b - a)
        noisy = counts + rng.normal(0, sigma, n)
        assert cleared_extent(noisy, sigma=sigma) == old_cleared_extent(noisy, sigma=sigma), trial


def _zoom_ctx(*, seed: int, private: bool, sigma: float, n_rows: int) -> FitContext:
    # session 13 (task F): the zoom reads the DP row count and its noise std (`outside_mass_clears`);
    # here the exact row count (values and the 17 nulls), so that the rule keeps every narrowing
    return FitContext(ledger=_Ledger(private=private), plan=SimpleNamespace(sigma_hist=sigma, k=1, sigma_rows=sigma),
                      rng=np.random.default_rng(seed), n_rows_dp=float(n_rows))


@pytest.mark.parametrize("private", [True, False])
def test_zoomed_histogram_is_unchanged(private, monkeypatch):
    """Session 13, task F: zoomed_histogram now narrows (the zoom window, the final extent) only
    where `outside_mass_clears` finds no data outside the bins kept (issue 17, acs12
    `hrs_work`). Where that rule kept every narrowing (each of its calls returned False), the
    comparison with the 3e68075 copy still pins C's refactor bit for bit; those calls cover
    both branches and most of the inputs. Where it refused one (the bell N(1000, 3) at sigma =
    15: the extent on the zoom's finer bins, without a tail margin, cut its tails, ~5% of the
    rows), the new edges hold the old ones. The rule itself: tests/test_s13F_zoom_outside_mass.py."""
    import synthkit.transforms as transforms

    verdicts: list[bool] = []
    real_rule = transforms.outside_mass_clears

    def spy(*args, **kwargs) -> bool:
        verdicts.append(real_rule(*args, **kwargs))
        return verdicts[-1]

    monkeypatch.setattr(transforms, "outside_mass_clears", spy)
    rng = np.random.default_rng(31)
    columns = {  # far from 0: what `zoom_eligible` sends here
        "narrow_band": (rng.normal(1000, 3, 5000), False),
        "wide_band": (rng.uniform(100, 5000, 5000), False),
        "narrow_integer": (rng.poisson(1000, 5000).astype(float), True),
        "one_bin_per_value": (rng.integers(50, 61, 3000).astype(float), True),
        "wide_integer": (rng.integers(200, 90000, 4000).astype(float), True),
    }
    branches, pinned, touched = set(), 0, 0
    for name, (values, integer) in columns.items():
        dp_range = geometric_range(values, sigma=2.0, sensitivity=1.0, name="bounds:x", ledger=StubLedger(),
                                   rng=np.random.default_rng(5), what="column 'x'", integer=integer)
        for seed in range(4):
            for sigma in (2.0, 15.0):
                kw = dict(label="x", integer=integer)
                new_ctx = _zoom_ctx(seed=seed, private=private, sigma=sigma, n_rows=len(values) + 17)
                old_ctx = _zoom_ctx(seed=seed, private=private, sigma=sigma, n_rows=len(values) + 17)
                verdicts.clear()
                new = zoomed_histogram(values, 17, dp_range.lo, dp_range.hi, dp_range, new_ctx, **kw)
                old = old_zoomed_histogram(values, 17, dp_range.lo, dp_range.hi, dp_range, old_ctx, **kw)
                assert [repr(e) for e in new_ctx.ledger.charged] == [repr(e) for e in old_ctx.ledger.charged]
                if any(verdicts):  # the session-13 rule kept wider edges: not a refactor input
                    touched += 1
                    assert new[0][0] <= old[0][0] and new[0][-1] >= old[0][-1], (name, seed, sigma)
                    continue
                pinned += 1
                for x, y in zip(new[:3], old[:3]):
                    assert x.dtype == y.dtype and np.array_equal(x, y), (name, seed, sigma)
                assert new[3] == old[3], (name, seed, sigma)
                # the generators drew the same numbers: their next draw agrees
                assert new_ctx.rng.random() == old_ctx.rng.random()
                full = histogram_edges(dp_range.lo, dp_range.hi, integer=integer)
                branches.add("averaged" if new[3] == sigma else "zoomed")
                branches.add("narrowed" if len(new[0]) < len(full) else "kept")
    assert {"averaged", "zoomed", "narrowed"} <= branches, branches
    assert pinned >= 3 * touched, (pinned, touched)


# ---------------------------------------------------------------------------- as of 3e68075
def old_cleared_extent(noisy: np.ndarray, *, sigma: float) -> tuple[int, int] | None:
    """cleared_extent as of 3e68075."""
    noisy = np.asarray(noisy, dtype=float)
    first = last = -1
    for m in RANGE_WINDOWS:
        if m > len(noisy):
            break
        sums = np.convolve(noisy, np.ones(m), mode="valid")  # window i: bins i .. i + m - 1
        alpha = RANGE_FALSE_CLEAR if m == 1 else RANGE_FALSE_CLEAR_WINDOWS
        tau = sigma * math.sqrt(m) * float(norm.isf(alpha / len(sums)))
        cleared = np.flatnonzero(sums > tau)
        cleared = _drop_isolated(cleared, sums, sigma=sigma, zero_bin=-1, m=m,
                                 extent=(first, last) if first >= 0 else None)
        if len(cleared):
            lo_m, hi_m = int(cleared[0]), int(cleared[-1]) + m - 1
            first, last = (lo_m, hi_m) if first < 0 else (min(first, lo_m), max(last, hi_m))
        if last > first:
            break
    if first < 0:
        return None
    first, last = _extend_to_neighbours(noisy, first, last, sigma=sigma)
    return _extend_by_windows(noisy, first, last, sigma=sigma)


def old_geometric_range(values: np.ndarray, *, sigma: float, sensitivity: float, name: str,
                    ledger: PrivacyLedger, rng: np.random.Generator, what: str,
                    integer: bool = False, weights: np.ndarray | None = None) -> DPRange:
    """geometric_range as of 3e68075 (its own copy of the windows loop)."""
    grid = INTEGER_EDGES if integer else GEOMETRIC_EDGES
    n_bins = len(grid) + 1
    idx = np.searchsorted(grid, values, side="right")
    counts = np.bincount(idx, weights=weights, minlength=n_bins)
    noisy = noisy_histogram(counts, sigma=sigma, sensitivity=sensitivity, name=name, ledger=ledger, rng=rng)
    first = last = -1
    zero_bin = int(np.searchsorted(grid, 0.0, side="right"))
    zero_count, zero_sigma = float(noisy[zero_bin]), (float(sigma) if ledger.private else 0.0)
    if ledger.private:
        residual = noisy
        for m in RANGE_WINDOWS:
            sums = np.convolve(residual, np.ones(m), mode="valid")  # window i: bins i .. i + m - 1
            alpha = RANGE_FALSE_CLEAR if m == 1 else RANGE_FALSE_CLEAR_WINDOWS
            tau = sigma * math.sqrt(m) * float(norm.isf(alpha / len(sums)))
            cleared = np.flatnonzero(sums > tau)
            cleared = _drop_isolated(cleared, sums, sigma=sigma, zero_bin=zero_bin, m=m,
                                     extent=(first, last) if first >= 0 else None)
            if len(cleared):
                lo_m, hi_m = int(cleared[0]), int(cleared[-1]) + m - 1
                widened = first < 0 or lo_m < first or hi_m > last
                first, last = (lo_m, hi_m) if first < 0 else (min(first, lo_m), max(last, hi_m))
                if m > 1 and widened:
                    logger.warning("%s: no single bin of its DP range histogram cleared the noise; its range was "
                                   "learned on windows of %d neighbouring bins (coarser); declare 'bounds' for it to "
                                   "set it", what, m)
                    ledger.notes.append(f"{what}: DP range learned on windows of {m} neighbouring bins of the "
                                        "geometric grid (too few units per bin); declare 'bounds' to set it")
            if last > first:
                break
            if first >= 0 and m == 1:
                # one grid bin alone cleared (a spike such as 0 in a small clinical column,
                # the rest spread too thin per bin): no range; the windows look for the rest
                # beside it, without that bin's count (issue 17: wt.loss came back as only 0)
                residual = np.where(np.arange(len(noisy)) == first, 0.0, noisy)
        if first >= 0:
            first, last = _extend_to_neighbours(noisy, first, last, sigma=sigma, zero_bin=zero_bin)
            first, last = _join_zero(noisy, first, last, sigma=sigma, zero_bin=zero_bin)
            first, last = _extend_by_windows(noisy, first, last, sigma=sigma)
            _note_clipped(noisy, first, last, sigma=sigma, what=what, ledger=ledger)
    else:
        nonzero = np.flatnonzero(counts > 0)
        if len(nonzero):
            first, last = int(nonzero[0]), int(nonzero[-1])
    if first < 0:
        raise RangeNotLearnedError([what], noisy=noisy if ledger.private else None)
    keep = np.array([first, last])
    edges = np.concatenate([[-np.inf], grid, [np.inf]])
    lo_edge, hi_edge = edges[keep[0]], edges[keep[-1] + 1]
    if not ledger.private:  # exact range is fine without a guarantee to keep
        finite = values[np.isfinite(values)]
        if not len(finite):
            finite = np.zeros(1)
        lo = float(np.clip(np.min(finite), -MAX_ABS, MAX_ABS))
        hi = float(np.clip(np.max(finite), -MAX_ABS, MAX_ABS))
        if hi <= lo:  # a constant column: give it a usable range (±0.5, or relative where 0.5 is lost)
            pad = max(0.5, abs(lo) * 1e-6)
            lo, hi = lo - pad, hi + pad
        return DPRange(lo=lo, hi=hi, zero_count=zero_count, sigma=zero_sigma)
    # the outermost bins extend to ±inf; fall back to the finite grid ends: values beyond
    # them are clipped to the grid's ends (±2^60), as DP requires of a range learnt this way
    lo = lo_edge if np.isfinite(lo_edge) else GEOMETRIC_EDGES[0]
    hi = hi_edge if np.isfinite(hi_edge) else GEOMETRIC_EDGES[-1]
    if lo >= GEOMETRIC_EDGES[-1]:  # only the open top bin cleared: its finite part is the last grid bin
        lo = GEOMETRIC_EDGES[-2]
    if hi <= GEOMETRIC_EDGES[0]:   # likewise at the bottom
        hi = GEOMETRIC_EDGES[1]
    outer = {"lo_bin": (float(edges[first]), float(edges[first + 1]), float(noisy[first])),
             "hi_bin": (float(edges[last]), float(edges[last + 1]), float(noisy[last])),
             "below": tuple((float(edges[j]), float(edges[j + 1]), float(noisy[j]))
                            for j in range(first - 1, max(first - 1 - RANGE_OUTSIDE_BINS, -1), -1)),
             "above": tuple((float(edges[j]), float(edges[j + 1]), float(noisy[j]))
                            for j in range(last + 1, min(last + 1 + RANGE_OUTSIDE_BINS, len(noisy)))),
             "inside": (float(noisy[first:last + 1].sum()), int(last - first + 1))}
    if integer:
        # the whole values inside the cleared bins: a bin [a, b) holds ceil(a) .. ceil(b) - 1,
        # so the bin of 1, [0.5, 2), gives 1 and not 2 (a 0/1 flag learned as an integer came
        # back with 2s, and every count whose range ended on a power of 2 one value too wide)
        lo, hi = float(np.ceil(lo)) + 0.0, float(np.ceil(hi) - 1.0) + 0.0  # + 0.0: no -0.0
        return DPRange(lo=lo, hi=max(hi, lo), zero_count=zero_count, sigma=zero_sigma, **outer)
    # the zero bin [-2^-20, 2^-20) is tiny: make sure a column of zeros gets a usable range
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    return DPRange(lo=float(lo), hi=float(hi), zero_count=zero_count, sigma=zero_sigma, **outer)


def old_zoomed_histogram(values: np.ndarray, n_null: int, lo: float, hi: float, dp_range: Any, ctx: FitContext, *,
                     label: str, integer: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """zoomed_histogram as of 3e68075 (the averaged branch bins the values twice)."""
    sigma = float(ctx.plan.sigma_hist)
    # one event, `histogram:<label>` at the planned sigma, as for any other column (see charge_two_looks)
    s1, s2 = charge_two_looks(sigma=sigma, sensitivity=ctx.plan.k, share=ZOOM_SHARE, name=f"histogram:{label}",
                              ledger=ctx.ledger)

    def measure(edges: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
        idx = bin_index(edges, np.clip(values, edges[0], edges[-1]))
        raw = np.concatenate([np.bincount(idx, minlength=len(edges) - 1), [n_null]]).astype(float)
        return raw, uncharged_look(raw, sigma=s, ledger=ctx.ledger, rng=ctx.rng)

    def average(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
        return (a / s1**2 + b / s2**2) / (1.0 / s1**2 + 1.0 / s2**2)

    edges = histogram_edges(lo, hi, integer=integer)
    raw, first = measure(edges, s1)
    extent = old_cleared_extent(first[:-1], sigma=s1)
    if extent is not None and extent[1] - extent[0] + 1 <= ZOOM_NARROW_BINS:
        a, b = max(extent[0] - 1, 0), min(extent[1] + 1, len(edges) - 2)
        w_lo, w_hi = (edges[a] + 0.5, edges[b + 1] - 0.5) if integer else (edges[a], edges[b + 1])
        edges = histogram_edges(w_lo, w_hi, integer=integer)
        raw, second = measure(edges, s2)
        noisy = np.concatenate([second[:-1], [average(first[-1], second[-1])]])
        s_bins, tail = s2, 0.0
    else:
        _, second = measure(edges, s2)
        noisy, s_bins, tail = average(first, second), sigma, ZOOM_TAIL_MARGIN
        if integer and len(edges) - 1 == hi - lo + 1:  # one bin per value: not narrowed (see ZOOM_TAIL_MARGIN)
            return edges, raw, noisy, s_bins
    extent = old_cleared_extent(noisy[:-1], sigma=s_bins)
    if extent is not None:
        margin = math.ceil(tail * (extent[1] - extent[0] + 1))
        extent = (max(extent[0] - margin, 0), min(extent[1] + margin, len(edges) - 2))
        c, d = _narrowed(edges, extent, dp_range, integer=integer)
        edges = edges[c:d + 2]
        noisy = np.concatenate([noisy[c:d + 1], noisy[-1:]])
        idx = bin_index(edges, np.clip(values, edges[0], edges[-1]))
        raw = np.concatenate([np.bincount(idx, minlength=len(edges) - 1), raw[-1:]]).astype(float)
    return edges, raw, noisy, s_bins
