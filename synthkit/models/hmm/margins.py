"""DP margins of the event columns, and the calibration of every sampled chunk onto them.

Why: the HMM learns the dynamics (states, persistence, AR emissions) but its emissions are
few Gaussians and per-state softmaxes trained by DP-SGD, so a column's margin comes out
smoothed: a spike at 0 with a long tail (weeks unemployed) collapses onto a few values,
rare integer codes vanish, 0/1 flags drift. The table models fix the same wall with a DP
histogram per column on data-independent edges and a rank calibration of each chunk; this
module gives DPHMM the same.

What is released (one Gaussian histogram per event column, charged to the fit's ledger as
`margin:<column>`), on cells decided from DP state only:
- a numeric or datetime column with a Gaussian channel: the bins of its NumericTransform
  (`histogram_edges` on its DP or public bounds — the table models' edges, with the exact
  0 bin of a continuous column and a unit bin per whole value of a small integer range)
  plus a null cell;
- a categorical or boolean column: its released labels (partition selection already chose
  them; OTHER and NULL included where released);
- a small-range integer column (an integer channel): one cell per whole value plus null.

The unit is the entity. An entity keeps at most k = max_length events (the contribution
bound of preprocess.py), each counted with weight 1 in its cell, so one entity moves a
histogram by a vector of sum ≤ k, L2 norm ≤ k (all k events in one cell): the Gaussian
mechanism runs with sensitivity k. The alternative — weight 1/ℓ per event for an entity of
ℓ events, sensitivity 1 — has the better signal-to-noise on paper (n/σ against
n·ℓ̄/(k·σ)), but it releases the ENTITY-averaged margin, not the events': on COUNT/rwm5yr
(ℓ̄ 3.2, k 5, ε 3, margins at 10%) its noise was 0.2% of a cell against 0.4% here, and its
bias 3 points on `married` (0.743 against the events' 0.774: people followed longer
marry more) and 2 on `outwork` — ten times the noise it saved. Where every entity has k
events (plm/Males) the two are the same release. So: weight 1, sensitivity k.

Calibration (post-processing, free): a chunk's numeric values are mapped rank for rank onto
the margin's quantiles — NumericTransform's own `quantile_levels` over this histogram, the
table models' calibration — so spikes come out exact and the order the HMM gave the values
(hence its dynamics) is kept; its null share and the counts of categorical and integer codes
are brought to the margin's by moving the fewest rows (a uniformly drawn subset of the
surplus labels' rows takes the missing labels). The table models rake logits instead
(`SpanSampler`), which needs the network's logits of every row; the HMM's draws are
sequential in sample.py, so the chunk's codes are rebalanced after decoding."""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from synthkit.ledger import GaussianEvent, PrivacyLedger
from synthkit.mechanisms import noisy_histogram, rho_for_epsilon
from synthkit.models.hmm.sample import integer_series
from synthkit.sequence import GroupedEvents
from synthkit.table import numeric_values
from synthkit.transforms import (OTHER, OTHER_CLEAR_SIGMAS, DataTransformer, NumericTransform, bin_index,
                                 clear_histogram, value_order, zero_bin)

logger = logging.getLogger(__package__)  # the package's one logger: log lines keep their name

PREFIX = "margin:"


def sensitivity_of(layout: dict[str, Any]) -> float:
    """The L2 sensitivity of one margin: the contribution bound k, the most events an entity
    keeps (public or DP: the layout's max_length, never the data's longest sequence)."""
    return float(max(int(layout["max_length"]), 1))


def column_cells(entry: dict[str, Any], t: Any, s: pd.Series) -> tuple[np.ndarray, int]:
    """(cell of every value, number of cells) of one event column, from DP state only; the
    null cell is the last one for numeric channels."""
    if entry["mode"] == "categorical":
        return t.codes(s), len(t.labels_)
    if entry["mode"] == "integer":
        x = numeric_values(s).to_numpy(dtype=float)
        width = entry["high"] - entry["low"] + 1
        codes = np.clip(np.round(np.nan_to_num(x, nan=entry["low"])), entry["low"], entry["high"]) - entry["low"]
        if entry["nullable"]:
            codes = np.where(np.isnan(x), width, codes)
        return codes.astype(np.int64), width + int(entry["nullable"])
    x = t.floats(s)
    n_bins = len(t.edges_) - 1
    cells = np.full(len(x), n_bins, dtype=np.int64)
    present = ~np.isnan(x)
    cells[present] = bin_index(t.edges_, np.clip(x[present], *t.bounds_))
    return cells, n_bins + 1


def margin_sigma(ledger: PrivacyLedger, *, n_columns: int, sensitivity: float, target: float,
                 prefix: str = PREFIX) -> float:
    """σ of each of `n_columns` histograms of L2 `sensitivity` such that the ledger, with them,
    spends `target` (cumulative ε; bisection on σ over the ledger's own accountant, a dry
    run that touches no data). Returns inf when the ledger has nothing left for them."""
    delta = ledger.budget.delta
    if ledger.epsilon_spent() >= target:
        return math.inf

    def spend(sigma: float) -> float:
        return ledger.epsilon_if([GaussianEvent(name=prefix, sigma=sigma, sensitivity=sensitivity)] * n_columns)

    lo_rho = rho_for_epsilon(max(target - ledger.epsilon_spent(), 1e-6), delta) / n_columns
    hi = sensitivity / math.sqrt(2 * lo_rho)  # ≥ the answer: zCDP composes no tighter than the ledger
    lo = hi
    while spend(lo) <= target and lo > 1e-6:
        lo /= 2
    while spend(hi) > target:
        hi *= 2
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if spend(mid) <= target else (mid, hi)
    return hi


def release_margins(grouped: GroupedEvents, transformer: DataTransformer, layout: dict[str, Any], *,
                    sigma: float, ledger: PrivacyLedger, rng: np.random.Generator) -> dict[str, list[float]]:
    """The DP margin of every event column: counts of the kept events (L2 sensitivity
    k = the contribution bound, `sensitivity_of`) plus Gaussian noise of std
    `sigma`, post-processed to non-negative counts (numeric bins by `clear_histogram`, a
    null cell that the transformer did not release zeroed, for integer codes too: their
    noisy null cell, clipped at 0, made 0.2-0.6% nulls in rwm5yr columns that have none)."""
    k = sensitivity_of(layout)
    out: dict[str, list[float]] = {}
    for entry in layout["columns"]:
        name = entry["name"]
        t = transformer.transforms[name]
        cells, n_cells = column_cells(entry, t, grouped.events[name])
        raw = np.bincount(cells, minlength=n_cells)[:n_cells].astype(float)
        noisy = noisy_histogram(raw, sigma=sigma, sensitivity=k, name=f"{PREFIX}{name}", ledger=ledger, rng=rng)
        if entry["mode"] == "categorical" and ledger.private and OTHER in t.labels_:
            # the folded remainder's cell keeps its rows only when it clears its own noise, as
            # the table models' `__other__` (transforms.OTHER_CLEAR_SIGMAS): a column that folds
            # nothing got 0.2-2% invented `__other__` events from this cell's clipped noise
            # (session 10's review R2)
            j = t.labels_.index(OTHER)
            rest = np.clip(np.delete(noisy, j), 0.0, None).sum()
            if noisy[j] <= OTHER_CLEAR_SIGMAS * sigma and rest > 0:
                noisy[j] = 0.0
        if entry["mode"] == "integer" and entry["nullable"] and not t.nulls_released:
            noisy[-1] = 0.0  # the null label did not clear its release threshold: no null is made
        if entry["mode"] == "gaussian":
            if not t.nulls_released:
                noisy[-1] = 0.0
            if ledger.private:
                present = noisy[:-1]
                # the bin of 0 kept from 1σ, as the table models' transforms keep it
                cleared = clear_histogram(present, np.diff(t.edges_), sigma=sigma, total=float(present.sum()),
                                          total_sigma=sigma * math.sqrt(len(present)),
                                          zero=zero_bin(t.edges_, integer=t.column.kind == "integer"))
                if cleared.sum() > 0:
                    noisy = np.concatenate([cleared, noisy[-1:]])
        out[name] = [float(c) for c in np.clip(noisy, 0.0, None)]
    return out


# ====================================================================== calibration
def _targets(p: np.ndarray, m: int) -> np.ndarray:
    """Counts of m rows in proportion to p (largest remainders: they sum to m)."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, None)
    exact = p / p.sum() * m
    base = np.floor(exact).astype(np.int64)
    short = m - int(base.sum())
    if short > 0:
        base[np.argsort(-(exact - base), kind="stable")[:short]] += 1
    return base


def rebalance(codes: np.ndarray, p: np.ndarray, rng: np.random.Generator, *,
              starts: np.ndarray | None = None) -> np.ndarray:
    """Codes moved so their counts follow p, changing the fewest rows.

    `starts` (rows in entity order, time order within an entity; True where an entity's
    first event is): the rows are moved in whole RUNS of one code within one entity,
    preferring runs whose moving keeps the entity's transitions (see `_move_runs`). Without
    it a uniformly drawn subset of each over-represented code's rows takes the
    under-represented codes: right for one row per entity, but in a sequence every moved
    row breaks a run of its entity (two new transitions), which took rwm5yr's lag-1
    autocorrelation of married from 0.91 to 0.66 (bench_hmm_quality, eps 3)."""
    codes = np.asarray(codes, dtype=np.int64)
    m = len(codes)
    if m == 0 or float(np.sum(p)) <= 0:
        return codes
    target = _targets(p, m)
    have = np.bincount(codes, minlength=len(target))[:len(target)]
    surplus = np.clip(have - target, 0, None)
    if starts is not None:
        return _move_runs(codes, surplus, np.clip(target - have, 0, None), np.asarray(starts, dtype=bool), rng)
    moved = [rng.permutation(np.flatnonzero(codes == c))[:n] for c, n in enumerate(surplus) if n > 0]
    if not moved:
        return codes
    rows = rng.permutation(np.concatenate(moved))
    fill = np.repeat(np.arange(len(target)), np.clip(target - have, 0, None))
    out = codes.copy()
    out[rows[:len(fill)]] = fill[:len(rows)]
    return out


def _move_runs(codes: np.ndarray, surplus: np.ndarray, deficit: np.ndarray, starts: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """`rebalance` within sequences: the rows that move are whole runs (maximal stretches of
    one code within one entity). A run of code a flanked by its entity's neighbours (none at
    an entity's ends) turned into code c removes the transitions at the flanks that hold c
    and creates none, so the transitions the HMM drew are kept by moving first the runs
    with no flank holding c (a whole entity's run: its sequence changes level, its
    dynamics do not), then the others; ties in a uniformly drawn order. Where whole runs
    cannot give an exact count, the last rows of a run move (one new transition).

    The greedy is the one of a loop over the runs in that order (a whole run moves when it
    fits both what c still needs and what its own code may still give; then the tails of
    the runs left, each as much as fits), computed by cumulative sums: a pass accepts the
    longest prefix of the ordered runs that fits, the runs that can no longer fit are
    dropped, and the next pass goes on from there, which is what the loop did after each
    refusal (no per-run Python: on a 500k-row chunk of 10 codes, 0.79 s per column with
    the loop, 0.14 s with the passes; 3.05 s and 0.75 s on a busier machine;
    benchmarks/results/hmm_margins.json "move_runs/*"). A run whose tail already moved to
    another code is not moved whole again (the loop did: it overwrote that tail and the
    other code came out short of its target)."""
    m = len(codes)
    brk = starts.copy()
    brk[0] = True
    brk[1:] |= codes[1:] != codes[:-1]
    run_start = np.flatnonzero(brk)
    run_len = np.diff(np.append(run_start, m))
    run_code = codes[run_start]
    run_end = run_start + run_len  # one past
    left = np.where(starts[run_start], -1, codes[np.maximum(run_start - 1, 0)])
    ends_entity = np.append(starts[1:], True)[run_end - 1]
    right = np.where(ends_entity, -1, codes[np.minimum(run_end, m - 1)])
    n_codes = len(surplus)
    used = np.zeros(len(run_start), dtype=bool)
    left_rows = run_len.copy()  # rows of a run not yet moved (a partial move takes its tail)
    surplus = np.asarray(surplus, dtype=np.int64).copy()
    tie = rng.random(len(run_start))
    by_tie = np.argsort(tie, kind="stable")
    out = codes.copy()
    for c in rng.permutation(np.flatnonzero(deficit > 0)):
        need = int(deficit[c])
        flank_c = (left == c).astype(np.int8) + (right == c)
        order = by_tie[np.argsort(flank_c[by_tie], kind="stable")]  # by flanks holding c, then by tie
        move_lo = np.zeros(len(run_start), dtype=np.int64)  # rows [move_lo, move_hi) of a run go to c
        move_hi = np.zeros(len(run_start), dtype=np.int64)
        cand = order[~used[order] & (left_rows[order] == run_len[order])]  # whole runs
        while need > 0 and len(cand):
            cand = cand[run_len[cand] <= np.minimum(need, surplus[run_code[cand]])]
            if not len(cand):
                break
            lens, src = run_len[cand], run_code[cand]
            fits = (np.cumsum(lens) <= need) & (_cumsum_by(src, lens, n_codes) <= surplus[src])
            n_ok = len(cand) if fits.all() else int(np.argmin(fits))
            took = cand[:n_ok]
            used[took], move_hi[took] = True, run_len[took]
            surplus -= np.bincount(src[:n_ok], weights=lens[:n_ok], minlength=n_codes).astype(np.int64)
            need -= int(lens[:n_ok].sum())
            cand = cand[n_ok:]
        if need > 0:  # the rest: the tails of runs, each as much as fits
            cand = order[~used[order] & (surplus[run_code[order]] > 0)]
            rows, src = left_rows[cand], run_code[cand]
            by_code = np.clip(surplus[src] - (_cumsum_by(src, rows, n_codes) - rows), 0, rows)
            take = np.clip(need - (np.cumsum(by_code) - by_code), 0, by_code)
            move_lo[cand], move_hi[cand] = rows - take, rows
            left_rows[cand] -= take
            used[cand] |= left_rows[cand] == 0
            surplus -= np.bincount(src, weights=take, minlength=n_codes).astype(np.int64)
        moved = np.flatnonzero(move_hi > move_lo)
        n_rows = move_hi[moved] - move_lo[moved]
        first = np.repeat(run_start[moved] + move_lo[moved] - np.cumsum(n_rows) + n_rows, n_rows)
        out[first + np.arange(int(n_rows.sum()))] = c
    return out


def _cumsum_by(keys: np.ndarray, values: np.ndarray, n_keys: int) -> np.ndarray:
    """Running sum of `values` within each key, in the given order (inclusive)."""
    small = keys.astype(np.int16) if n_keys <= np.iinfo(np.int16).max else keys  # radix sort for small codes
    order = np.argsort(small, kind="stable")
    cum = np.cumsum(values[order])
    firsts = np.searchsorted(keys[order], np.arange(n_keys))
    before = np.concatenate([[0], cum])[firsts]  # the running sum where each key's block starts
    out = np.empty_like(cum)
    out[order] = cum - before[keys[order]]
    return out


def _calibrated_numbers(t: NumericTransform, counts: np.ndarray, s: pd.Series,
                        rng: np.random.Generator, *, starts: np.ndarray | None = None,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(values, null flags) of a numeric column mapped onto its margin: the null share
    rebalanced, then the present values rank for rank onto the margin's quantiles (a row
    that had no value takes a uniformly drawn rank)."""
    x = t.floats(s)
    null = np.isnan(x)
    flags = rebalance(null.astype(np.int64), np.array([counts[:-1].sum(), counts[-1]]), rng,
                      starts=starts).astype(bool)
    present = np.flatnonzero(~flags)
    if counts[:-1].sum() <= 0 or len(present) == 0:
        return x, flags
    margin = copy.copy(t)  # the transform's decoding, on this histogram
    margin.hist_, margin._levels = np.asarray(counts[:-1], dtype=float), None
    key = x[present]
    fresh = np.isnan(key)
    if fresh.any():  # its rank among the others, drawn uniformly
        known = np.sort(key[~fresh]) if (~fresh).any() else np.zeros(1)
        key[fresh] = known[rng.integers(0, len(known), size=int(fresh.sum()))]
    order = present[value_order(key)]
    out = np.full(len(x), np.nan)
    out[order] = margin.quantile_levels(len(order))
    out = t.round_like_column(out)
    out[flags] = np.nan
    return out, flags


def calibrate_events(events: pd.DataFrame, margins: dict[str, list[float]], layout: dict[str, Any],
                     transformer: DataTransformer, rng: np.random.Generator) -> pd.DataFrame:
    """A decoded chunk of events with every event column mapped onto its DP margin
    (post-processing; see the module docstring). Columns without a margin are left alone."""
    if not margins or events.empty:
        return events
    from synthkit.models.hmm.sample import _floats_to_series
    out = events.copy()
    # rows come in entity order, time order within an entity (Decoder.decode): codes move in
    # whole runs of an entity (`rebalance`), so the calibration keeps the HMM's transitions
    keys = out[layout["entity_key"]].to_numpy()
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    for entry in layout["columns"]:
        name = entry["name"]
        counts = margins.get(name)
        if counts is None:
            continue
        counts = np.asarray(counts, dtype=float)
        t = transformer.transforms[name]
        s = out[name].reset_index(drop=True)
        if entry["mode"] == "categorical":
            codes, _ = column_cells(entry, t, s)
            new = t.to_series(rebalance(codes, counts, rng, starts=starts))
        elif entry["mode"] == "integer":
            codes, _ = column_cells(entry, t, s)
            new = integer_series(rebalance(codes, counts, rng, starts=starts), entry)
        else:
            x, flags = _calibrated_numbers(t, counts, s, rng, starts=starts)
            new = _floats_to_series(np.where(flags, 0.0, x), t.column, null=flags, tz=t.tz_)
        out[name] = new.to_numpy() if not isinstance(new.dtype, pd.api.extensions.ExtensionDtype) else new.array
    return out
