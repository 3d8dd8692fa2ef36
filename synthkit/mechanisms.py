"""DP mechanisms used by preprocessing, and the plan that sizes their noise.

Each function charges the ledger BEFORE it looks at the data (the ledger refuses if the
charge would overshoot). Sensitivities assume contributions are already bounded: one unit
holds at most `k` rows, so any histogram over rows changes by at most k in L2 (all k rows
in one bin) and a count of units by 1.

Everything after the noisy measurement — clipping negative counts, picking bounds,
fitting a mixture to a noisy histogram — is post-processing and free (Dwork & Roth 2014,
Prop. 2.1).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import norm

from synthkit.errors import BudgetExceededError
from synthkit.ledger import GaussianEvent, PrivacyBudget, PrivacyLedger, ThresholdEvent, compose_epsilon

logger = logging.getLogger(__name__)

# Signed geometric grid for learning a column's range without any public knowledge:
# edges ±2^(j/2) for 2^-20..2^60, plus a bin around zero. Data-independent by construction.
_POS_EDGES = 2.0 ** (np.arange(-40, 121) / 2.0)
GEOMETRIC_EDGES = np.concatenate([-_POS_EDGES[::-1], _POS_EDGES])
# The largest magnitude computed with (synthkit.table refuses data beyond it): a range of
# ±MAX_ABS still has a finite width, which ±1.8e308 (the largest double) has not.
MAX_ABS = 1e300


@dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessingPlan:
    """Noise scales of every preprocessing mechanism, fixed from the schema and the budget
    alone (no data), so the plan can be checked before private data is touched."""

    sigma_units: float        # count of privacy units (sensitivity 1)
    sigma_rows: float         # count of rows (sensitivity k)
    sigma_hist: float         # every histogram (sensitivity k)
    threshold_delta: float    # per category-discovery column
    k: int                    # max rows per unit
    n_histograms: int
    n_discovery: int
    dependence_noise: float = 0.0  # noise std / sensitivity of the score-correlation release
    n_dependence: int = 0          # 1 when that release is planned (synthkit.dependence)
    pairs_select_noise: float = 0.0  # noise std / sensitivity of the two-way marginals: all pairs (selection)
    pairs_noise: float = 0.0         # and the selected tree's pairs (synthkit.marginals)
    n_pairs: int = 0                 # 1 when those releases are planned
    # noise std / sensitivity of the pair tree's counts of exact zeros (one vector release
    # over the columns whose 0 is a spike, `PairTree.fit`); 0.0 when none is planned
    pairs_zero_noise: float = 0.0
    # the DP range histograms (geometric_bounds) among the n_histograms, with their own
    # smaller noise (BOUNDS_WEIGHT); 0 / 0.0 when the planner was not told (sigma_hist then)
    n_bounds: int = 0
    sigma_bounds: float = 0.0
    # the label histograms of declared targets that discover their labels (TARGET_SHARE), with
    # their own smaller noise; 0 / 0.0 when none is planned (sigma_hist then)
    n_targets: int = 0
    sigma_target: float = 0.0

    @property
    def sigma_range(self) -> float:
        """The noise of a DP range histogram (sensitivity k, as every histogram)."""
        return self.sigma_bounds if self.n_bounds and self.sigma_bounds > 0 else self.sigma_hist

    def sigma_labels(self, *, target: bool) -> float:
        """The noise of a label histogram: a declared target's (discovery) when one is planned,
        else every histogram's."""
        return self.sigma_target if target and self.n_targets and self.sigma_target > 0 else self.sigma_hist

    def events(self) -> list[GaussianEvent | ThresholdEvent]:
        """The plan as ledger events (names are generic; the real run uses column names)."""
        out: list[GaussianEvent | ThresholdEvent] = [
            GaussianEvent(name="count:units", sigma=self.sigma_units, sensitivity=1.0)]
        if self.k > 1:
            out.append(GaussianEvent(name="count:rows", sigma=self.sigma_rows, sensitivity=float(self.k)))
        n_ranges = min(self.n_bounds, self.n_histograms) if self.sigma_bounds > 0 else 0
        n_targets = min(self.n_targets, self.n_histograms - n_ranges) if self.sigma_target > 0 else 0
        if self.n_histograms - n_ranges - n_targets:
            out.append(GaussianEvent(name="histograms", sigma=self.sigma_hist, sensitivity=float(self.k),
                                     count=self.n_histograms - n_ranges - n_targets))
        if n_ranges:
            out.append(GaussianEvent(name="ranges", sigma=self.sigma_bounds, sensitivity=float(self.k),
                                     count=n_ranges))
        if n_targets:
            out.append(GaussianEvent(name="target-labels", sigma=self.sigma_target, sensitivity=float(self.k),
                                     count=n_targets))
        out.extend(ThresholdEvent(name="category-discovery", delta=self.threshold_delta)
                   for _ in range(self.n_discovery))
        if self.n_dependence:
            out.append(GaussianEvent(name="dependence", sigma=self.dependence_noise, sensitivity=1.0))
        if self.n_pairs:
            out.append(GaussianEvent(name="pair-marginals:select", sigma=self.pairs_select_noise, sensitivity=1.0))
            out.append(GaussianEvent(name="pair-marginals:tree", sigma=self.pairs_noise, sensitivity=1.0))
            if self.pairs_zero_noise > 0:
                out.append(GaussianEvent(name="zeros", sigma=self.pairs_zero_noise, sensitivity=1.0))
        return out


# ρ of a DP range histogram relative to any other preprocessing histogram (see plan_preprocessing)
BOUNDS_WEIGHT = 2.0
# share of the counts' and histograms' ρ that the label histograms of the declared targets
# whose labels are discovered get together (see plan_preprocessing)
TARGET_SHARE = 0.25
# the most of the pair marginals' ρ those targets' extra ρ may take (else the histograms share it)
TARGET_FROM_PAIRS_MAX = 0.5
# with the DP row count known (`target_rows`), a target gets only the weight (up to that share)
# that lets a class of TARGET_CLASS_SHARE of the rows clear its threshold by TARGET_CLEAR_SIGMAS
TARGET_CLASS_SHARE = 0.25
TARGET_CLEAR_SIGMAS = 3.0


def plan_preprocessing(
    *, budget: PrivacyBudget, k: int, n_histograms: int, n_discovery: int, epsilon_share: float,
    delta_share: float = 0.1, dependence_share: float = 0.0, pairs_share: float = 0.0,
    pairs_select_share: float = 1 / 3, n_bounds: int = 0, pairs_zero_share: float = 0.0,
    n_targets: int = 0, target_rows: float | None = None,
) -> PreprocessingPlan:
    """Split `epsilon_share` of ε (in zero-concentrated DP terms) over the Gaussian
    preprocessing mechanisms: `dependence_share` of it to the score-correlation release
    (0 = none planned), the rest evenly over the counts and histograms; `delta_share` of δ
    goes to the thresholds. `pairs_share` of it goes to the two-way marginals (synthkit.marginals), of which
    `pairs_select_share` to measuring all pairs for the tree selection, the rest to the tree;
    `pairs_zero_share` of it (taken from both in proportion) to the counts of exact zeros of
    the columns whose 0 is a spike (`PairTree.fit`, 0 = none planned).
    `n_bounds` of the histograms are DP range histograms (`geometric_bounds`): each gets
    BOUNDS_WEIGHT times the ρ of another histogram, because a range that cannot be learned
    loses the whole column, while a noisier value histogram only blurs it. On birthwt (189
    rows, 10 integer columns, ε = 3; 1,000 noise draws) some column's range failed in 34% of
    fits with equal shares, one-bin thresholds and the full grid, 6% with the integer grid
    and windows (geometric_bounds), 0.3% with this weight as well.

    `n_targets` of the histograms are the label histograms of declared targets whose labels
    are discovered (partition selection, `select_partitions`): together they get TARGET_SHARE
    of the ρ of the counts and histograms (never less than an even share each), so their
    threshold τ = k + σ·Φ⁻¹(1 − δ/k) does not grow with the number of OTHER columns. With an
    even share, σ grows as √(number of Gaussians), and at 200 rows a target's class of a third
    of the rows was lost (issue 17: MASS Pima.tr `type`, 8 columns, ε = 3: σ = 17.7, τ = 93,
    its 68 'Yes' released in 8% of fits; the synthetic data then cannot train a classifier,
    the one thing a declared target is for). With this share: σ = 6.5, τ = 35, 'Yes' kept in
    all but 1e-6 of fits (at ε = 1: σ 49 → 18, τ 256 → 95; 'No' (132) kept in 98% of fits
    instead of 0.6%, 'Yes' in 7%). The targets' ρ beyond an even share is taken from the pair
    marginals' (`pairs_share`; at most TARGET_FROM_PAIRS_MAX of it, else from the other
    histograms): taken from the histograms it raised their σ by 13% there (17.7 → 20.0), and
    the DP range of Pima's `npreg` (0-14, 28 zeros) then failed in 20% of draws instead of 6%
    (falling back to a coarse window) and held 0 in 55% instead of 66%; from the pairs, their
    noise grows by 6.5% there (3.42 → 3.64 per unit of sensitivity). The total ρ, hence ε, is unchanged: one
    Gaussian per histogram, each charged at its own σ.

    `target_rows` (the DP row count, known once `count:units`/`count:rows` is released; the
    split is then post-processing of DP output and the total ρ is the same): the targets get
    only the weight that lets a class of TARGET_CLASS_SHARE of the rows clear τ by
    TARGET_CLEAR_SIGMAS noise std, at most the share above. On a table large enough for an even
    share (modeldata credit, ~3,560 rows at ε = 1) the plan is then the even one: with the
    full share, its pair tables were 7% noisier and TSTR fell from 0.759 to 0.742 in 6 of 6
    fixed-noise draws for classes that cleared anyway."""
    if dependence_share + pairs_share >= 1.0:
        raise ValueError("dependence_share + pairs_share must stay below 1")
    n_bounds = min(max(int(n_bounds), 0), n_histograms)
    n_targets = min(max(int(n_targets), 0), n_histograms - n_bounds)
    n_gauss = 1 + (1 if k > 1 else 0) + n_histograms + (BOUNDS_WEIGHT - 1.0) * n_bounds
    # a target's weight w: n_targets·w / (others + n_targets·w) = TARGET_SHARE, at least 1
    others = n_gauss - n_targets
    target_weight = max(1.0, TARGET_SHARE * others / ((1.0 - TARGET_SHARE) * n_targets)) if n_targets else 1.0
    extra = (target_weight - 1.0) * n_targets  # the targets' ρ beyond an even share, in units of rho_each
    target = epsilon_share * budget.epsilon
    delta_for_thresholds = delta_share * budget.delta if n_discovery else 0.0
    delta_rest = budget.delta - delta_for_thresholds

    lo = rho_for_epsilon(target, delta_rest)  # all Gaussians together behave like one of RDP α·ρ
    if _epsilon_of_rho(lo, delta_rest) > target:
        # the share is below what the accountant can certify for any noise (its largest
        # Rényi order sets a floor); refuse here, from the budget alone, not after the data
        raise BudgetExceededError(
            f"preprocessing gets epsilon={target:.3g} ({epsilon_share:.0%} of {budget.epsilon:g}) but needs at "
            f"least {_epsilon_of_rho(lo, delta_rest):.3g} whatever the noise; raise --epsilon or the preprocessing share")
    if not 0.0 <= pairs_zero_share < 1.0:
        raise ValueError("pairs_zero_share must be in [0, 1)")
    rho_each = lo * (1.0 - dependence_share - pairs_share) / n_gauss
    if extra and target_rows is not None:
        sigma_even = k / math.sqrt(2 * rho_each)
        z = float(norm.isf(delta_for_thresholds / n_discovery / k)) if n_discovery else 0.0
        sigma_needed = (TARGET_CLASS_SHARE * float(target_rows) - k) / (z + TARGET_CLEAR_SIGMAS)
        if sigma_needed > 0:
            target_weight = min(target_weight, max(1.0, (sigma_even / sigma_needed) ** 2))
            extra = (target_weight - 1.0) * n_targets
    if extra and pairs_share > 0 and extra * rho_each <= TARGET_FROM_PAIRS_MAX * lo * pairs_share:
        # the targets' extra ρ comes out of the pair marginals': the other histograms (DP ranges
        # above all) keep their noise
        pairs_share -= extra * rho_each / lo
    elif extra:  # no pair marginals to take it from: the histograms share it
        rho_each = lo * (1.0 - dependence_share - pairs_share) / (n_gauss + extra)
    tables_share = pairs_share * (1.0 - pairs_zero_share)  # the pair tables' part of the pairs' ρ
    sigma_unit = 1.0 / math.sqrt(2 * rho_each)
    return PreprocessingPlan(
        sigma_units=sigma_unit,
        sigma_rows=k * sigma_unit,
        sigma_hist=k * sigma_unit,
        threshold_delta=delta_for_thresholds / n_discovery if n_discovery else 0.0,
        k=k,
        n_histograms=n_histograms,
        n_discovery=n_discovery,
        dependence_noise=1.0 / math.sqrt(2 * lo * dependence_share) if dependence_share > 0 else 0.0,
        n_dependence=1 if dependence_share > 0 else 0,
        pairs_select_noise=(1.0 / math.sqrt(2 * lo * tables_share * pairs_select_share) if pairs_share > 0 else 0.0),
        pairs_noise=(1.0 / math.sqrt(2 * lo * tables_share * (1 - pairs_select_share)) if pairs_share > 0 else 0.0),
        n_pairs=1 if pairs_share > 0 else 0,
        pairs_zero_noise=(1.0 / math.sqrt(2 * lo * pairs_share * pairs_zero_share)
                          if pairs_share > 0 and pairs_zero_share > 0 else 0.0),
        n_bounds=n_bounds,
        sigma_bounds=k * sigma_unit / math.sqrt(BOUNDS_WEIGHT) if n_bounds else 0.0,
        n_targets=n_targets,
        sigma_target=k * sigma_unit / math.sqrt(target_weight) if n_targets else 0.0,
    )


def _epsilon_of_rho(rho: float, delta: float) -> float:
    return compose_epsilon([GaussianEvent(name="plan", sigma=1.0 / math.sqrt(2 * rho), sensitivity=1.0)], delta)


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest zCDP ρ (up to 1e-6 relative) whose Gaussian (σ = 1/√(2ρ) per unit of
    sensitivity) alone spends at most `epsilon` at `delta` by the ledger's accountant; the
    smallest ρ tried (1e-12) when even that spends more (the caller decides what to do)."""
    lo, hi = 1e-12, 1e6
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if _epsilon_of_rho(mid, delta) > epsilon:
            hi = mid
        else:
            lo = mid
        if hi / lo < 1 + 1e-6:
            break
    return lo


def noisy_count(n: int, *, sigma: float, sensitivity: float, name: str, ledger: PrivacyLedger,
                rng: np.random.Generator) -> float:
    ledger.charge(GaussianEvent(name=name, sigma=sigma, sensitivity=sensitivity))
    if not ledger.private:
        return float(n)
    return float(n + rng.normal(0.0, sigma))


def noisy_histogram(counts: np.ndarray, *, sigma: float, sensitivity: float, name: str,
                    ledger: PrivacyLedger, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise on every bin of a histogram over a data-independent set of bins."""
    ledger.charge(GaussianEvent(name=name, sigma=sigma, sensitivity=sensitivity))
    counts = np.asarray(counts, dtype=float)
    if not ledger.private:
        return counts
    return counts + rng.normal(0.0, sigma, size=counts.shape)


def charge_two_looks(*, sigma: float, sensitivity: float, share: float, name: str,
                     ledger: PrivacyLedger) -> tuple[float, float]:
    """Charge ONE Gaussian event at `sigma` for a measurement taken in two looks, and return the
    noise std of each: sigma/√(1 − share) and sigma/√share. Two Gaussians of the same
    sensitivity Δ compose in Rényi DP to αΔ²/2·(1/σ1² + 1/σ2²) = αΔ²/(2σ²) at every order α
    (zCDP: ρ1 + ρ2 = ρ), so the one event charged is exactly what the two looks spend, also
    when the second look's bins are chosen from the first look's output (adaptive
    composition). The ledger then lists the same events whatever the data (a column whose
    second look zooms and one whose does not). Draw the looks with `uncharged_look`."""
    if not 0.0 < share < 1.0:
        raise ValueError("share must be in (0, 1)")
    ledger.charge(GaussianEvent(name=name, sigma=sigma, sensitivity=sensitivity))
    return sigma / math.sqrt(1.0 - share), sigma / math.sqrt(share)


def uncharged_look(counts: np.ndarray, *, sigma: float, ledger: PrivacyLedger,
                   rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise on every bin, charging nothing: ONLY for a look whose cost an earlier
    `charge_two_looks` charged."""
    counts = np.asarray(counts, dtype=float)
    if not ledger.private:
        return counts
    return counts + rng.normal(0.0, sigma, size=counts.shape)


def partition_threshold(*, sigma: float, k: int, threshold_delta: float) -> float:
    """τ of `select_partitions`: a category is released when its noisy count clears it
    (public: a function of the plan); one with a true count of τ is released half the time."""
    return k + sigma * float(norm.isf(threshold_delta / k))


def select_partitions(counts: dict[str, int], *, sigma: float, k: int, threshold_delta: float, name: str,
                      ledger: PrivacyLedger, rng: np.random.Generator,
                      public_keys: tuple[str, ...] = ()) -> dict[str, float]:
    """Release the categories whose noisy count clears a threshold, with their noisy counts.

    Gaussian partition selection (Desfontaines, Voss, Gipson & Mandayam 2022; Google's DP
    SQL): a unit touches at most k categories with at most k rows; a category held by that
    unit alone clears τ = k + σ·Φ⁻¹(1 − δ/k) with probability ≤ δ/k, so ≤ δ over its k
    categories. Shared categories are covered by the Gaussian mechanism (sensitivity k).
    `public_keys` (e.g. the null label) always get their noisy count released: they are
    bins of the same histogram, so the sensitivity stays k.
    """
    ledger.charge(GaussianEvent(name=name, sigma=sigma, sensitivity=float(k)))
    if not ledger.private:
        return {c: float(counts.get(c, 0)) for c in sorted(set(counts) | set(public_keys))}
    ledger.charge(ThresholdEvent(name=name + ":threshold", delta=threshold_delta))
    tau = partition_threshold(sigma=sigma, k=k, threshold_delta=threshold_delta)
    keys = sorted(set(counts) | set(public_keys))
    noise = keyed_normal(rng, keys, sigma)
    return {c: float(counts.get(c, 0) + z) for c, z in zip(keys, noise)
            if c in public_keys or counts.get(c, 0) + z > tau}


def keyed_normal(rng: np.random.Generator, keys: list[str], sigma: float) -> np.ndarray:
    """One N(0, σ²) draw per key, each from its own stream (a secret base drawn from `rng`,
    a fixed amount, plus a hash of the key): a key's noise does not depend on which other
    keys a table holds, so with the noise source fixed (the neighbouring-table tests) one
    record more or less moves only its own key's count."""
    base = [int(x) for x in rng.integers(0, 2**63, size=2)]
    return np.array([np.random.default_rng([*base, int.from_bytes(
        hashlib.sha256(str(key).encode("utf-8")).digest()[:8], "little")]).normal(0.0, sigma) for key in keys])


def substreams(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """`n` independent generators seeded from `rng` by a fixed number of draws, so what one
    consumer draws (often a data-dependent amount) never shifts another's noise."""
    return [np.random.default_rng([int(x) for x in seed]) for seed in rng.integers(0, 2**63, size=(n, 2))]


class RangeNotLearnedError(BudgetExceededError):
    """No DP range could be released for one or more columns (none of their geometric bins,
    nor windows of neighbouring bins, cleared the noise). Carries the columns' public
    descriptions (`what`) so that a whole table's failures are reported in one message."""

    def __init__(self, whats: list[str], *, fix: str | None = None, noisy: np.ndarray | None = None) -> None:
        self.whats = list(whats)
        # the released noisy counts of the range histogram (DP output, every bin of the finite
        # grid; private fits only): a caller may post-process them (transforms' best window)
        self.noisy = noisy
        self.fix = fix or ("declare 'bounds' for {them} in the schema (public knowledge) or raise --epsilon")
        them = "it" if len(self.whats) == 1 else "each"
        its = "its" if len(self.whats) == 1 else "their"
        super().__init__(f"{', '.join(self.whats)}: too few units to learn {its} range under DP at this epsilon; "
                         + self.fix.format(them=them))

    def __reduce__(self):  # pickled as its columns and fix, not its message (see errors.SchemaError)
        return (_range_not_learned, (self.whats, self.fix))


def _range_not_learned(whats: list[str], fix: str) -> RangeNotLearnedError:
    return RangeNotLearnedError(whats, fix=fix)


# Windows of neighbouring grid bins tried, in order, when no single bin of a column's DP
# range histogram clears the noise (small tables): a window of m bins sums m noisy counts
# (noise σ√m) but collects the units of all m, so a column whose units spread over a few
# bins still gets a range — a coarser one (a window of 8 bins spans a factor 16).
RANGE_WINDOWS = (1, 2, 4, 8)
# chance that a bin no unit fills clears the threshold (over the whole grid), and the same
# for each level of windows tried after it
RANGE_FALSE_CLEAR = 1e-3
RANGE_FALSE_CLEAR_WINDOWS = 1e-3
# issue 17, a second look at the same noisy counts (post-processing, no charge):
# - a single cleared bin with at least RANGE_ISOLATION_BINS uncleared bins between it and
#   every other cleared bin is dropped unless it clears the Bonferroni threshold of
#   RANGE_FALSE_CLEAR_ISOLATED over the whole grid, or is the bin of 0 (a public special value:
#   the grid is built around it, and a continuous column's zero spike always sits ~40 empty
#   bins away from values of magnitude 1): a far false clear put 0.1–0.2% of rows far outside
#   the data;
# - the bins just outside the cleared extent are then tested one at a time, outward, each at
#   RANGE_FALSE_CLEAR_NEIGHBOURS / 2 (one test per side reaches the first empty bin beyond the
#   data; the walk stops at the first bin that fails), so a spike in the bin next to the range
#   (Tobacco `age` = 0 at 1,500 rows, ε = 1: 3.5σ against the whole-grid 4.46σ) joins it.
# An empty bin beyond the data ends up in the range with probability at most
#   2·RANGE_ISOLATION_BINS·RANGE_FALSE_CLEAR/n_bins + RANGE_FALSE_CLEAR_ISOLATED + RANGE_FALSE_CLEAR_NEIGHBOURS
# = 6.6e-5 + 1e-5 + 8e-4 < 0.1% on the integer grid (241 bins; on the full grid the first term
# is 5e-5, about 8.6e-4 in all), the figure stated before for single bins (the windows keep
# their own 0.1% per level). Measured in 40,000 draws each: 0.095% (integer), 0.083% (full).
RANGE_ISOLATION_BINS = 8
RANGE_FALSE_CLEAR_ISOLATED = 1e-5
RANGE_FALSE_CLEAR_NEIGHBOURS = 8e-4
# - then, when the bin of 0 lies 2 to RANGE_ZERO_WINDOW bins outside the extent, the bins
#   from it up to the extent are tested together (one window, noise σ√m) at
#   RANGE_FALSE_CLEAR_ZERO: a count column whose 0s and 1s each fall short of the one-bin
#   tests joins 0 when their sum clears (NMES1988 `visits` at ε = 1: 223 zeros and 164 ones,
#   σ ≈ 46 each; the range started at 2 in one draw of three and the 15% of zeros were lost).
#   At most one such test per column (0 lies on one side): for an empty window the bound
#   above grows by 1e-4, to 9.8e-4 on the integer grid (9.6e-4 on the full grid), still
#   under 0.1%. A column without 0s whose 1s fail the walk (3.35σ) yet clear the window
#   (5.3σ) on their own — noise below −1.9σ, ~3% of such columns — gets 0 in its range;
#   its value histogram then gives 0 a share only if that bin clears (transforms).
RANGE_ZERO_WINDOW = 3
RANGE_FALSE_CLEAR_ZERO = 1e-4
# - (session 8) the bin of 0 farther than RANGE_ZERO_WINDOW bins from the extent (a
#   continuous column: ~40 bins lie between 0 and 1) joins when its count alone clears
#   σ·isf(RANGE_FALSE_CLEAR_ZERO): one test, not the whole-grid Bonferroni threshold of 4.5σ
#   (NMES1988 `visits` at ε = 1: 223 zeros, σ ≈ 46, 3.9σ in one draw of twelve, lost). The
#   same own-count test also runs 2 to RANGE_ZERO_WINDOW bins out, beside the window test
#   (CreditCard `active` at ε = 1: 0 at 3.9σ, the 1 between it and the range at 0.9σ): there
#   an empty bin of 0 joins when either clears, 1.9e-4 (Monte Carlo, 2·10^7 draws, m = 2 and
#   3) instead of 1e-4, so the bound above becomes about 1.07e-3 on the integer grid (1.05e-3
#   on the full grid), just over 0.1%; farther out only the own count is tested (1e-4);
# - the bin of 0 right next to the extent is tested in the outward walk at
#   RANGE_FALSE_JOIN_ZERO_NEXT instead of RANGE_FALSE_CLEAR_NEIGHBOURS / 2 (2.05σ, not 3.35σ;
#   Tobacco `age` at ε = 1: 124 zeros, σ ≈ 35, joined in 2 of 12 draws, 8.3 pp lost in the
#   others). A false join costs far less than a lost spike: the range is one whole value
#   wider, and that value gets rows only when the value histogram's own bin of 0 (a second,
#   independent measurement) clears transforms.CLEAR_SIGMAS_ZERO, and then at the pair
#   tree's combined estimate, near 0 for an empty bin. This one bin (the public value 0)
#   falls outside the < 0.1% bound above: an empty bin of 0 next to the range joins it in
#   2% of fits.
RANGE_FALSE_JOIN_ZERO_NEXT = 0.02
# - (session 10, issue 17: tails clipped silently) last, on each side in turn, windows of the
#   RANGE_TAIL_WINDOWS bins just outside the extent (sums of the same noisy counts, noise σ√m)
#   are tested at σ√m·isf(RANGE_FALSE_CLEAR_TAIL / (2·len(RANGE_TAIL_WINDOWS))); the smallest
#   window that clears joins the range and the test repeats from the new end, until none
#   clears. A tail whose units are spread thin over many bins, each below the one-bin tests,
#   then joins by its sum (Titanic `age` at ε = 3, σ ≈ 6.9: 64 children under 8 over 8 bins,
#   3.3σ as one window of 8, at most 1.7σ per bin). For an empty tail next to the extent the
#   first round's 8 tests (4 per side, each at 1e-4: isf = 3.72σ, the level of the window of
#   0 above) add at most RANGE_FALSE_CLEAR_TAIL (Bonferroni; the nested windows are positively
#   correlated, so a little less), so the bound above becomes about 1.9e-3 on the integer
#   grid: 0.2%, not 0.1%. A later round runs only beyond a window that cleared (its own 8e-4
#   for the empty bins beyond a real tail). A window of m bins that clears may hold empty bins
#   beyond the data (the window of m/2 failed); its outermost bins whose noisy count is under
#   one noise std are left out again (post-processing: an empty bin is 84% of the time, a bin
#   of 1.5σ, as in a thin tail, 31%, and is tested again in the next round), and the rest get
#   rows only where the value histogram's bins clear. Such a window can also start with a
#   FILLED bin that failed the one-bin tests (a uniform column's thin edge bin): the range
#   then holds empty bins beyond the data more often than the bound above says. Measured
#   (benchmarks/bench_range_tails.py, uniform on [10, 20], 1,000 rows, 2,000 draws): see
#   benchmarks/results/range_tails.json.
RANGE_TAIL_WINDOWS = (1, 2, 4, 8)
RANGE_FALSE_CLEAR_TAIL = 8e-4
# - and when, after all that, a window of RANGE_TAIL_WINDOWS just outside the final range
#   still clears σ√m·isf(RANGE_CLIP_NOTE_FALSE / len(RANGE_TAIL_WINDOWS)) (3.0σ: about 0.5% of
#   empty sides say so falsely), a log line and a ledger note name the column and the side:
#   values there may have been clipped (no value is quoted). Post-processing, no charge.
RANGE_CLIP_NOTE_FALSE = 5e-3
# - (session 12, issue 17: DAAG nsw74psid3 at ε = 3, 219 rows, σ ≈ 12) a zero-heavy earnings
#   column (60% exact 0s, the other ~87 values spread over 11 grid bins from 18 to 29,389,
#   at most 17 per bin) clears only its bin of 0: no window of the rest clears, and the tail
#   windows and the clipping note above look only next to the range, ~13 bins from the
#   data, so the range was {0} (an integer column generated as 0/1) without a word. A
#   second post-processing test: the DP row count, less the value histogram's noisy null
#   count and the range histogram's noisy counts inside the range, estimates the mass the
#   range leaves out (noise std √(σ_rows² + σ_hist² + m·σ²) for m range bins); when it
#   clears that std times isf(RANGE_CLIP_NOTE_FALSE) (2.58), one log line and a ledger note
#   name the column: its values beyond the range were clipped (`clipped_mass_clears`). A
#   column whose range holds all its values says so falsely in 0.5% of fits; re74's 87
#   clipped values are ~3.1 of this std (σ_rows = σ_hist = 17.5, σ = 12.4) and are named in
#   59-63% of draws (re78: 80%; 200 seeded draws, session 12). A wider window search for WHERE
#   the mass is would not help at this noise: 16 bins holding all 87 sum to 1.7 of their σ√16.
# A range guessed from a range histogram that cleared nothing (`transforms.best_window_range`)
# is kept only when the DP count of the rows it was guessed from is at least GUESS_MIN_SIGMAS
# noise stds of that histogram (`guess_kept`; both DP, so the decision is post-processing).
# With every row in one window of m <= 16 bins, the data's window outscores the best
# pure-noise window (about (3.5 + 2)·σ·√m over the ~10^2-10^3 windows within 2^30) only when
# the mass is about 5.5σ (m = 1) to 22σ (m = 16); 8σ keeps the concentrated columns of a table
# (KMsurv burn: 154 units, σ 14: 11σ) and drops a sequence fit's event columns (pbcseq: 1,945
# events, σ 818: 2.4σ) and its context (312, σ 62: 5σ). A 60-row table at ε = 3 (session 12's
# all_null.csv: σ 7.84, 7.65σ; ages of -14,049 to -1,451 from such a guess) sits at the edge:
# the noisy DP row count (σ 11) falls under 8σ in ~60% of fits; 400 seeded draws: values
# outside ±10x the data in 63 before, 32 now (31 of them kept guesses at a DP count >= 8σ).
# Shared by the table models (`transforms.NumericTransform.fit`) and DPHMM (models/hmm/ranges.py).
GUESS_MIN_SIGMAS = 8.0


def clipped_mass_clears(*, n_rows_dp: float, sigma_rows: float, null_count: float, sigma_null: float,
                        inside: tuple[float, int], sigma_range: float) -> bool:
    """Whether the mass a DP range leaves out, estimated as the DP row count less the noisy
    null count less the range histogram's noisy counts inside the range, clears its noise
    std times isf(RANGE_CLIP_NOTE_FALSE) (derivation next to RANGE_CLIP_NOTE_FALSE, session 12).
    Post-processing of DP outputs: no charge."""
    inside_count, m = inside
    std = math.sqrt(sigma_rows ** 2 + sigma_null ** 2 + m * sigma_range ** 2)
    missing = float(n_rows_dp) - max(float(null_count), 0.0) - float(inside_count)
    return missing > std * float(norm.isf(RANGE_CLIP_NOTE_FALSE))


def guess_kept(n_rows_dp: float, sigma_range: float) -> bool:
    """Whether a best-window range guess stands out of the noise it was guessed from: the DP
    row count `n_rows_dp` is at least GUESS_MIN_SIGMAS noise stds `sigma_range` of the range
    histogram. Post-processing of DP outputs (no charge); never read `len(rows)` here."""
    return float(n_rows_dp) >= GUESS_MIN_SIGMAS * float(sigma_range)


# how many grid bins just outside a range `DPRange` reports on each side (their noisy counts)
RANGE_OUTSIDE_BINS = 3
# an integer column's grid (its kind is public): the geometric edges of magnitude >= 2 and
# bins [-0.5, 0.5) for 0 and [0.5, 2) for 1, so that 0, 1, 2, 3 sit in neighbouring bins (on
# the full grid 40 bins that no integer can fill lie between 0 and 1, and no window of
# neighbouring bins could join them)
INTEGER_EDGES = np.concatenate([GEOMETRIC_EDGES[GEOMETRIC_EDGES <= -2.0], [-0.5, 0.5],
                                GEOMETRIC_EDGES[GEOMETRIC_EDGES >= 2.0]])


def _drop_isolated(cleared: np.ndarray, noisy: np.ndarray, *, sigma: float, zero_bin: int, m: int = 1,
                   extent: tuple[int, int] | None = None) -> np.ndarray:
    """The cleared bins (or windows of m bins: `noisy` then holds the window sums, window i
    covering bins i .. i + m − 1) of `geometric_bounds` without a far false clear: one with
    RANGE_ISOLATION_BINS or more uncleared bins between it and every other cleared one (and
    the `extent` already found, if any) is kept only if it holds the bin of 0 or its count
    clears the whole-grid Bonferroni threshold of RANGE_FALSE_CLEAR_ISOLATED (an empty bin that
    clears the usual one sits just above it: the Gaussian tail beyond 4.5σ decays within a
    fraction of σ). Post-processing of the noisy counts. When every cleared one is such a one
    and no extent was found before, all are kept (nothing else to go on).

    Windows too (session 8): a false window far above the data made the range of a 205-row
    age column [23, 4194303] (melanoma, ε = 3; windows of 2 after the one bin that cleared),
    and its histogram's first bin [23, 4096) then held every row: 1 of 3,000 seeded draws of
    that column's noise at σ = 13 gave a top above 10 times the data's, none in 3,000 now
    (test: test_dp_ranges_spikes, a far false window)."""
    if len(cleared) == 0 or (len(cleared) < 2 and extent is None):
        return cleared
    starts, ends = cleared, cleared + m - 1  # bins each cleared one covers
    gap_before = np.concatenate([[10**9], starts[1:] - ends[:-1] - 1])
    gap_after = np.concatenate([starts[1:] - ends[:-1] - 1, [10**9]])
    if extent is not None:  # the bins found at a finer level count as cleared
        first, last = extent
        to_extent = np.where(ends < first, first - ends - 1, np.where(starts > last, starts - last - 1, 0))
        gap_before, gap_after = np.minimum(gap_before, to_extent), np.minimum(gap_after, to_extent)
    isolated = (gap_before >= RANGE_ISOLATION_BINS) & (gap_after >= RANGE_ISOLATION_BINS)
    tau_isolated = sigma * math.sqrt(m) * float(norm.isf(RANGE_FALSE_CLEAR_ISOLATED / len(noisy)))
    holds_zero = (starts <= zero_bin) & (zero_bin <= ends)
    drop = isolated & ~holds_zero & (noisy[cleared] <= tau_isolated)
    return cleared if (drop.all() and extent is None) else cleared[~drop]


def _join_zero(noisy: np.ndarray, first: int, last: int, *, sigma: float, zero_bin: int) -> tuple[int, int]:
    """Widen the extent [first, last] to the bin of 0 when it lies 2 to RANGE_ZERO_WINDOW
    bins outside and the noisy counts from it up to the extent sum past
    σ·√m·isf(RANGE_FALSE_CLEAR_ZERO) (m bins: the noise of the sum), or (2 bins or farther)
    its own count clears σ·isf(RANGE_FALSE_CLEAR_ZERO). Post-processing."""
    if zero_bin < first:
        window = noisy[zero_bin:first]
    elif zero_bin > last:
        window = noisy[last + 1:zero_bin + 1]
    else:
        return first, last
    m = len(window)
    tau = sigma * float(norm.isf(RANGE_FALSE_CLEAR_ZERO))
    # near: the window's sum, or (session 8) the bin of 0 alone as for a far one — a spike at
    # 0 with a thin bin of 1 between it and the extent (CreditCard `active` at ε = 1: 0 at
    # 3.9σ, 1 at 0.9σ) failed the window's sum and was left out
    if (2 <= m <= RANGE_ZERO_WINDOW and float(window.sum()) > math.sqrt(m) * tau) \
            or (m >= 2 and float(noisy[zero_bin]) > tau):
        return min(first, zero_bin), max(last, zero_bin)
    return first, last


def _extend_to_neighbours(noisy: np.ndarray, first: int, last: int, *, sigma: float,
                          zero_bin: int | None = None) -> tuple[int, int]:
    """Widen the cleared extent [first, last] of `geometric_bounds` bin by bin, outward on
    each side, while the next bin's count clears σ·isf(RANGE_FALSE_CLEAR_NEIGHBOURS / 2)
    (the bin of 0: σ·isf(RANGE_FALSE_JOIN_ZERO_NEXT)). Only the first bin beyond the data on
    each side can pass alone (the walk stops at the first bin that fails), so the two sides
    together add at most RANGE_FALSE_CLEAR_NEIGHBOURS to the chance that an empty bin other
    than 0 enters the range. Post-processing of the noisy counts."""
    tau = sigma * float(norm.isf(RANGE_FALSE_CLEAR_NEIGHBOURS / 2))
    tau_zero = sigma * float(norm.isf(RANGE_FALSE_JOIN_ZERO_NEXT))

    def clears(j: int) -> bool:
        return bool(noisy[j] > (tau_zero if j == zero_bin else tau))

    while first > 0 and clears(first - 1):
        first -= 1
    while last < len(noisy) - 1 and clears(last + 1):
        last += 1
    return first, last


def _tail_window(noisy: np.ndarray, first: int, last: int, *, sigma: float, side: int,
                 alpha: float) -> int:
    """The smallest m of RANGE_TAIL_WINDOWS whose window of the m bins just outside the
    extent [first, last] on `side` (-1 below, +1 above) sums past σ√m·isf(alpha / number of
    windows tested), or 0. Post-processing of the noisy counts."""
    ms = [m for m in RANGE_TAIL_WINDOWS if (first - m >= 0 if side < 0 else last + m <= len(noisy) - 1)]
    if not ms:
        return 0
    z = float(norm.isf(alpha / len(ms)))
    for m in ms:
        window = noisy[first - m:first] if side < 0 else noisy[last + 1:last + 1 + m]
        if float(window.sum()) > sigma * math.sqrt(m) * z:
            return m
    return 0


def _extend_by_windows(noisy: np.ndarray, first: int, last: int, *, sigma: float) -> tuple[int, int]:
    """Widen [first, last] on each side by the smallest window of bins just outside it that
    clears (`_tail_window` at RANGE_FALSE_CLEAR_TAIL / 2 per side), repeated from the new end
    while one clears (issue 17: a tail spread thin over many bins was clipped silently; the
    bound on a false extension is derived next to RANGE_FALSE_CLEAR_TAIL). Post-processing."""
    alpha = RANGE_FALSE_CLEAR_TAIL / 2
    while (m := _tail_window(noisy, first, last, sigma=sigma, side=-1, alpha=alpha)):
        while m > 1 and noisy[first - m] < sigma:  # the window's outermost bins under 1 std
            m -= 1
        first -= m
    while (m := _tail_window(noisy, first, last, sigma=sigma, side=+1, alpha=alpha)):
        while m > 1 and noisy[last + m] < sigma:
            m -= 1
        last += m
    return first, last


def _note_clipped(noisy: np.ndarray, first: int, last: int, *, sigma: float, what: str,
                  ledger: PrivacyLedger) -> None:
    """Say once per side when a window just outside the final range still clears
    RANGE_CLIP_NOTE_FALSE: values there may have been clipped. Names the column and the side,
    never a value (post-processing of the noisy counts)."""
    for side, word in ((-1, "below"), (+1, "above")):
        if _tail_window(noisy, first, last, sigma=sigma, side=side, alpha=RANGE_CLIP_NOTE_FALSE):
            logger.warning("%s: values %s its DP range may have been clipped (their noisy count just outside it "
                           "clears the noise, but not the range's tests); declare 'bounds' for it to keep them",
                           what, word)
            ledger.notes.append(f"{what}: values {word} its DP range may have been clipped (noisy mass just "
                                "outside it); declare 'bounds'")


def cleared_extent(noisy: np.ndarray, *, sigma: float, zero_bin: int = -1, spike_aside: bool = False,
                   on_windows: Callable[[int], None] | None = None) -> tuple[int, int] | None:
    """The first and last bins of a noisy histogram (Gaussian, std `sigma` per bin, bins on
    edges fixed before it was measured) that hold data by the same tests as
    `geometric_range`: single bins, then windows of RANGE_WINDOWS bins, each level at its
    Bonferroni threshold over the bins (RANGE_FALSE_CLEAR), far isolated clears dropped
    (`_drop_isolated`), then the outward neighbour walk and the tail windows
    (`_extend_to_neighbours`, `_extend_by_windows`). None when nothing clears. An empty bin
    beyond the data ends inside the extent with probability about 0.2% (the bound derived next
    to RANGE_FALSE_CLEAR_TAIL, without its terms for the bin of 0). Post-processing only: no
    charge, no log line (issue 17, session 12: `transforms` narrows a DP range far from 0 to
    this extent of its value histogram).

    `geometric_range` runs the same tests with three more facts of its grid: `zero_bin`,
    the bin of 0 (spared by the isolation rule, given its own neighbour threshold, joined
    by `_join_zero`; -1: no such bin); `spike_aside`, a single bin that clears alone is set
    aside (its count zeroed) while the windows look for the rest beside it (issue 17:
    wt.loss came back as only 0); and `on_windows(m)`, called when windows of m > 1 bins
    widened the extent (it states the coarser range)."""
    noisy = np.asarray(noisy, dtype=float)
    first = last = -1
    residual = noisy
    for m in RANGE_WINDOWS:
        if m > len(noisy):
            break
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
            if m > 1 and widened and on_windows is not None:
                on_windows(m)
        if last > first:
            break
        if spike_aside and first >= 0 and m == 1:
            residual = np.where(np.arange(len(noisy)) == first, 0.0, noisy)
    if first < 0:
        return None
    first, last = _extend_to_neighbours(noisy, first, last, sigma=sigma, zero_bin=zero_bin if zero_bin >= 0 else None)
    if zero_bin >= 0:
        first, last = _join_zero(noisy, first, last, sigma=sigma, zero_bin=zero_bin)
    return _extend_by_windows(noisy, first, last, sigma=sigma)


@dataclass(frozen=True, slots=True, kw_only=True)
class DPRange:
    """What `geometric_range` releases: the range, and the noisy count of the grid's bin
    of 0 (DP output of the same histogram, noise std `sigma`; the exact count without
    privacy), which the pair tree combines with its other measurements of the exact-0 cell
    (`marginals._combined_point_shares`)."""

    lo: float
    hi: float
    zero_count: float
    sigma: float
    # the range's two outermost grid bins as (left edge, right edge, noisy count): DP output
    # of the same histogram (a private fit; None without privacy or for a guessed range).
    # On the integer grid a bin such as [4, 5.66) holds two whole values, so the range of a
    # 1-4 column ends at 5; `transforms.NumericTransform` tells from the value histogram
    # whether the data reach into such a bin's far values (issue 17: pbc `stage` 5)
    lo_bin: tuple[float, float, float] | None = None
    hi_bin: tuple[float, float, float] | None = None
    # the RANGE_OUTSIDE_BINS grid bins just outside the range on each side, likewise,
    # nearest first (fewer at the grid's ends): small integer values beyond the range that
    # failed its tests on this histogram alone may still show in the value histogram
    # (`transforms.padded_range`)
    below: tuple[tuple[float, float, float], ...] = ()
    above: tuple[tuple[float, float, float], ...] = ()
    # the noisy counts of the range's grid bins summed, and how many bins (DP output of the same
    # histogram; None without privacy): against the DP row count, a test of the mass the range
    # leaves out (`clipped_mass_clears`, issue 17, session 12)
    inside: tuple[float, int] | None = None


def geometric_bounds(values: np.ndarray, *, sigma: float, sensitivity: float, name: str,
                     ledger: PrivacyLedger, rng: np.random.Generator, what: str,
                     integer: bool = False) -> tuple[float, float]:
    """The (lo, hi) of `geometric_range`."""
    r = geometric_range(values, sigma=sigma, sensitivity=sensitivity, name=name, ledger=ledger, rng=rng,
                        what=what, integer=integer)
    return r.lo, r.hi


def geometric_range(values: np.ndarray, *, sigma: float, sensitivity: float, name: str,
                    ledger: PrivacyLedger, rng: np.random.Generator, what: str,
                    integer: bool = False, weights: np.ndarray | None = None) -> DPRange:
    """DP range of a column with no public bounds: a noisy histogram on the signed
    geometric grid, then the outermost bins whose noisy count clears a Bonferroni
    threshold over the whole grid. A cleared bin far from every other cleared bin
    (RANGE_ISOLATION_BINS) must clear a much higher one unless it is the bin of 0, and the
    bins just outside the cleared extent are then tested outward with a threshold corrected
    only for those few tests (RANGE_FALSE_CLEAR_NEIGHBOURS): an empty bin beyond the data
    still ends up in the range with probability about 0.1% (the bound is derived next to the
    constants). Last, windows of 1-8 bins just outside the range join it while one clears
    (`_extend_by_windows`: a tail spread thin over many bins), and a side whose noisy mass just
    outside still clears its own noise is named in a log line and a ledger note
    (`_note_clipped`, issue 17). Tail bins with fewer units than that are left out: their
    values are clipped, as DP requires.

    When no single bin clears (a small table: the units spread over bins each too small
    against the noise), windows of 2, 4, then 8 neighbouring bins are tried in turn, each
    level with its own Bonferroni threshold over its windows (σ√m per window): the range is
    then the extent of the cleared windows. All of it is post-processing of the one noisy
    histogram (no new charge); the coarser range is stated in a log line and a ledger note.
    The isolation rule and the neighbour tests read the same noisy counts again: also
    post-processing, so the privacy guarantee (the one Gaussian charge) is unchanged; what
    a second family of tests changes is only the chance of a false clear, which the bound
    above counts (union over both families).
    `integer` (a public kind) uses INTEGER_EDGES and returns the whole values the cleared
    bins hold, both ends included (post-processing of the same edges). `weights`: each
    value's weight in its bin (None: 1); `sensitivity` must bound the weights' L2 change."""
    grid = INTEGER_EDGES if integer else GEOMETRIC_EDGES
    n_bins = len(grid) + 1
    idx = np.searchsorted(grid, values, side="right")
    counts = np.bincount(idx, weights=weights, minlength=n_bins)
    noisy = noisy_histogram(counts, sigma=sigma, sensitivity=sensitivity, name=name, ledger=ledger, rng=rng)
    first = last = -1
    zero_bin = int(np.searchsorted(grid, 0.0, side="right"))
    zero_count, zero_sigma = float(noisy[zero_bin]), (float(sigma) if ledger.private else 0.0)
    if ledger.private:
        def coarser(m: int) -> None:
            logger.warning("%s: no single bin of its DP range histogram cleared the noise; its range was "
                           "learned on windows of %d neighbouring bins (coarser); declare 'bounds' for it to "
                           "set it", what, m)
            ledger.notes.append(f"{what}: DP range learned on windows of {m} neighbouring bins of the "
                                "geometric grid (too few units per bin); declare 'bounds' to set it")
        # the tests of `cleared_extent`, with the bin of 0 and a lone spike set aside (one grid
        # bin alone cleared, such as 0 in a small clinical column, the rest spread too thin
        # per bin: the windows look for the rest beside it, without that bin's count)
        extent = cleared_extent(noisy, sigma=sigma, zero_bin=zero_bin, spike_aside=True, on_windows=coarser)
        if extent is not None:
            first, last = extent
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


def fit_mixture_to_histogram(centres: np.ndarray, weights: np.ndarray, *, bin_width: float,
                             max_modes: int = 10, min_weight: float = 0.005, n_iter: int = 200
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 1-D Gaussian mixture fitted by weighted EM to a (noisy, clipped ≥ 0) histogram.

    This replaces CTGAN's variational GMM on raw values (not private) by the same kind of
    mode-specific normalisation fitted to DP counts: pure post-processing. Returns means,
    standard deviations and weights of the modes kept (weight ≥ min_weight).

    Far from 1 (a range near ±1e300, where squares overflow) the fit runs on the centres
    divided by a power of two, exact in floating point, and is scaled back; ordinary
    ranges are fitted unscaled."""
    centres = np.asarray(centres, dtype=float)
    big = max(float(np.max(np.abs(centres))) if len(centres) else 0.0, abs(float(bin_width)))
    if not (np.all(np.isfinite(centres)) and math.isfinite(big) and bin_width > 0):
        raise ValueError("fit_mixture_to_histogram needs finite bin centres and a finite positive bin width")
    if big > 2.0**64:
        scale = 2.0 ** math.ceil(math.log2(big))
        mu, sd, pi = fit_mixture_to_histogram(centres / scale, weights, bin_width=bin_width / scale,
                                              max_modes=max_modes, min_weight=min_weight, n_iter=n_iter)
        return mu * scale, sd * scale, pi
    w = np.clip(np.asarray(weights, dtype=float), 0, None)
    if w.sum() <= 0:
        w = np.ones_like(w)
    w = w / w.sum()
    k = int(min(max_modes, max(1, np.count_nonzero(w > 0))))
    cdf = np.cumsum(w)
    qs = (np.arange(k) + 0.5) / k
    mu = centres[np.minimum(np.searchsorted(cdf, qs), len(centres) - 1)].astype(float)
    span = centres.max() - centres.min() + bin_width
    sd = np.full(k, max(span / (2 * k), bin_width))
    pi = np.full(k, 1.0 / k)
    floor = bin_width / 2.0
    for _ in range(n_iter):
        logp = (-0.5 * ((centres[:, None] - mu[None, :]) / sd[None, :]) ** 2 - np.log(sd[None, :])
                + np.log(pi[None, :] + 1e-300))
        logp -= logp.max(axis=1, keepdims=True)
        resp = np.exp(logp)
        resp /= resp.sum(axis=1, keepdims=True)
        r = resp * w[:, None]
        nk = r.sum(axis=0) + 1e-12
        mu_new = (r * centres[:, None]).sum(axis=0) / nk
        var = (r * (centres[:, None] - mu_new[None, :]) ** 2).sum(axis=0) / nk + bin_width**2 / 12.0
        sd_new = np.maximum(np.sqrt(var), floor)
        pi_new = nk / nk.sum()
        converged = np.allclose(mu_new, mu, atol=1e-9 * span) and np.allclose(pi_new, pi, atol=1e-9)
        mu, sd, pi = mu_new, sd_new, pi_new
        if converged:
            break
    keep = pi >= min_weight
    if not keep.any():
        keep = pi == pi.max()
    mu, sd, pi = mu[keep], sd[keep], pi[keep] / pi[keep].sum()
    order = np.argsort(mu)
    return mu[order], sd[order], pi[order]
