"""DP two-way marginals along a tree of columns, and sampling conditioned on them.

Why: a table model trained by DP-SGD learns the margins first and the joint structure
last (its signal budget, √steps · batch / σ, is nearly fixed for a given ε), so on a few
thousand to a few hundred thousand units its rows keep the margins and lose what a
classifier needs: "married ⇒ more often high income", "Husband ⇒ Male", "no phone
service ⇒ no multiple lines". A contingency table of two columns is a cheap Gaussian
release instead (MST and AIM, McKenna et al. 2021/2022, build whole synthesizers on it).

What is measured. Every column is discretised from DP state alone: a categorical or
boolean column by its released label (OTHER and NULL included), a numeric or datetime
column by N_BINS quantile bins of its DP histogram (integer columns on whole values)
plus a null cell. Then, in two Gaussian releases charged to the ledger:
1. every pair's contingency table (P pairs: a row adds 1 to one cell of each, so L2
   sensitivity √P, k·√P for a unit of k rows), with SELECT_SHARE of the pair budget;
   without a declared target on coarse cells (a numeric column's cells in COARSE_BINS
   groups of equal DP mass, its exact-0 and null cells apart: `_coarse_groups`);
2. the pairs of a maximum spanning tree chosen from those noisy tables (free
   post-processing: the score is each table's distance from independence less what the
   noise alone would give), re-measured with the rest of the budget (sensitivity
   √(d − 1)); the two measurements of a tree pair are averaged by inverse variance.
A declared target is the tree's root.

Sampling (post-processing, no privacy cost). The network's raw outputs for a chunk are
kept; the root column is drawn as before (calibrated to its DP margin); then every other
column in tree order is drawn GIVEN its parent's cell:
- categorical: its logits get one offset per (parent cell, label), fitted so the mean
  softmax over the rows of each parent cell is the DP conditional P(child | parent) —
  the raking of `SpanSampler.fit_offsets`, per parent cell. Each row keeps the
  network's relative preferences, so what the network learned beyond the tree stays;
- numeric: its null flag the same way; its values are ranked within each parent cell
  and mapped onto the DP conditional distribution (bin shares from the table, the DP
  histogram inside each bin), so the column's margin is the DP one and its ordering
  within a parent cell is the network's. The bin shares are the table's conditional
  raked (`_fit_margins`) so that, over the parents' DP margins, a one-value cell (the
  exact-0 cell, an integer's value) and the null cell get the column's DP share. That
  share combines, by inverse variance, the column's DP histogram (and, for 0, its DP range
  histogram) and every DP pair table the column is in, over a row total that combines the
  DP row count with every table's total (`_combined_point_shares`); the root's one-value cells are mapped onto
  it too.
A deterministic relation in the data (a cell of the table near zero) stays near zero in
the output, which a reweighting of the network's own rows could not achieve: a weak
network rarely proposes rows that satisfy twenty such relations at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from synthkit.ledger import GaussianEvent, PrivacyLedger
from synthkit.transforms import CLEAR_SIGMAS as HIST_CLEAR_SIGMAS
from synthkit.transforms import CategoricalTransform, DataTransformer, NumericTransform, value_order, zero_bin

logger = logging.getLogger(__name__)

N_BINS = 8              # quantile bins per numeric column (fewer where the DP margin has spikes)
MAX_SELECT_COLUMNS = 40  # all pairs of up to 40 columns are measured for the tree selection
SELECT_SHARE = 1 / 3    # of the pair budget (zCDP) spent on measuring all pairs for the selection
COARSE_BINS = 3         # a numeric column's groups of ordinary cells in the selection tables
RAKE_ITERATIONS = 30
RAKE_ROWS = 16_384      # rows of a chunk the conditional offsets are fitted on
MIN_ROWS_PER_CELL = 5   # a second parent only while the three-way table has this many rows per cell
# a one-value cell where the DP histogram holds nothing gets a share when its combined
# measurement (`PairTree._combined_point_shares`) clears this many of its noise std
# (post-processing; an empty cell gets one in 2.3% of fits)
POINT_CELL_SIGMAS = 2.0
# a column's exact zeros are counted (`PairTree.fit`) when the DP estimate of its bin of 0
# (value histogram and range histogram combined) clears this many of its noise std
ZERO_SELECT_SIGMAS = 1.5
CLEAR_SIGMAS = 1.0      # a noisy cell below this many noise std counts as empty (clipping alone
                        # leaves an empty cell 0.40 std on average, 1 std 0.24; 2 std cost 0.05 TSTR on
                        # credit_data at eps 1, 1 std nothing measurable)


def n_select_pairs(n_columns: int) -> int:
    """Tables measured for the selection (known from the schema before any data)."""
    m = min(n_columns, MAX_SELECT_COLUMNS)
    return m * (m - 1) // 2


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    kind: str           # "categorical" | "numeric"
    n_cells: int
    edges: np.ndarray   # inner bin edges (numeric)
    nullable: bool


class PairTree:
    """Learned state: `edges_` (parent, child) in sampling order and `tables_` (their DP
    contingency tables, parent cells × child cells); the discretisation comes from DP
    state; `noise_std_` is the noise std of a combined table cell."""

    def __init__(self, transformer: DataTransformer, *, root: str | None = None) -> None:
        self.transformer = transformer
        self.root = root
        self.edges_: list[tuple[str, str]] | None = None
        self.tables_: dict[str, np.ndarray] | None = None
        self.pair_tables_: dict[str, np.ndarray] | None = None
        self.parents_: dict[str, list[str]] | None = None
        self.noise_std_: float | None = None
        self.point_shares_: dict[str, dict[str, list]] = {}  # `_combined_point_shares` ({} before it existed)
        self._cond: dict[str, np.ndarray] | None = None
        self._uncalibrated: dict[str, np.ndarray] = {}  # `conditionals` before `_calibrated` (sampling rakes them per chunk)

    # ------------------------------------------------------------- discretisation (DP state)
    def columns(self) -> list[_Column]:
        out = []
        for name, t in self.transformer.transforms.items():
            if isinstance(t, CategoricalTransform):
                out.append(_Column(name, "categorical", len(t.labels_), np.zeros(0), False))
            else:
                edges = _edges(t)
                out.append(_Column(name, "numeric", len(edges) + 1 + int(t.column.nullable), edges,
                                   t.column.nullable))
        return out

    def cells(self, col: _Column, v: np.ndarray) -> np.ndarray:
        if col.kind == "categorical":
            return np.asarray(v, dtype=np.int64)
        x = np.asarray(v, dtype=float)
        null = np.isnan(x)
        c = np.searchsorted(col.edges, np.where(null, 0.0, x), side="right")
        if col.nullable:
            c = np.where(null, len(col.edges) + 1, c)
        return c.astype(np.int64)

    def frame_values(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {name: (t.codes(frame[name]) if isinstance(t, CategoricalTransform) else t.floats(frame[name]))
                for name, t in self.transformer.transforms.items()}

    def _coarse_groups(self, col: _Column) -> np.ndarray:
        """The coarse cell of each of the column's cells, for the selection tables (DP state
        alone): a categorical column keeps its labels; a numeric column keeps its exact-0
        cell and its null cell apart (`_combined_point_shares` measures them, the zero spikes
        of issue 17), and its other cells go to COARSE_BINS groups of about equal DP mass (a
        cell to the group its mass's midpoint falls in). An integer column's other one-value
        cells (1, 2, 3 visits) are grouped too: kept apart they left a count column's table
        as fine, and as noisy per unit of dependence, as before."""
        if col.kind == "categorical":
            return np.arange(col.n_cells)
        n_present = len(col.edges) + 1
        t = self.transformer.transforms[col.name]
        if t.hist_ is None or float(np.sum(t.hist_)) <= 0 or t.bounds_ is None:
            return np.arange(col.n_cells)
        level, _ = _cell_levels(t, col)
        mid = (level[:-1] + level[1:]) / 2
        key = np.minimum((mid * COARSE_BINS).astype(np.int64), COARSE_BINS - 1)
        lo, hi = t.bounds_
        start = np.concatenate([[lo - 0.5], col.edges]) + 0.5 if t.column.kind == "integer" \
            else np.concatenate([[lo], col.edges])
        zero = _point_cells(t, col) & (start == 0.0)
        key = np.where(zero, COARSE_BINS + np.arange(n_present), key)
        if col.nullable:
            key = np.append(key, COARSE_BINS + n_present)
        return np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)

    # ------------------------------------------------------------- fit (DP)
    def fit(self, frame: pd.DataFrame, *, select_noise: float, noise: float, k: int, n_rows_dp: float,
            ledger: PrivacyLedger, rng: np.random.Generator, zero_noise: float = 0.0) -> PairTree:
        """Two Gaussian releases (see the module docstring); `select_noise` and `noise` are
        noise std / sensitivity of the selection and of the tree measurement. With
        `zero_noise` > 0 a third: the counts of exact zeros (`_release_zero_counts`)."""
        cols = self.columns()
        d = len(cols)
        select = list(combinations(range(min(d, MAX_SELECT_COLUMNS)), 2))
        tree_size = max(d - 1, 0)
        s1 = float(k) * np.sqrt(max(len(select), 1))
        s2 = float(k) * np.sqrt(max(tree_size, 1))
        ledger.charge(GaussianEvent(name="pair-marginals:select", sigma=select_noise * s1, sensitivity=s1))
        ledger.charge(GaussianEvent(name="pair-marginals:tree", sigma=noise * s2, sensitivity=s2))
        if d < 2:
            if zero_noise > 0:
                self._release_zero_counts(frame, cols, zero_noise=zero_noise, k=k, ledger=ledger, rng=rng)
            self.edges_, self.tables_, self.pair_tables_, self.parents_, self.noise_std_ = [], {}, {}, {}, 0.0
            return self
        values = self.frame_values(frame)
        cells = [self.cells(c, values[c.name]) for c in cols]
        private = ledger.private
        sigma1, sigma2 = (select_noise * s1, noise * s2) if private else (0.0, 0.0)

        # the selection measures each pair on coarse cells (`_coarse_groups`): a row still
        # adds 1 to one cell of each table, so the sensitivity (and the charge) is the same,
        # and a numeric pair's 3×3 cells carry σ1 each where its 9×9 cells, summed to 3×3,
        # carried 3σ1 (NMES1988 at ε = 3: σ1 ≈ 60 rows, visits–chronic's real dependence,
        # the 5th strongest of 171 pairs, scored 167th)
        # A declared target keeps the fine tables: on credit_data at ε = 1 (6 fixed draws) the
        # coarse selection lifted the kept strong associations from 0.50 to 0.70 but cost TSTR
        # 0.755 -> 0.708 in every draw (a target's relations as first parent did not explain it)
        groups = [self._coarse_groups(c) if self.root is None else np.arange(c.n_cells) for c in cols]
        n_groups = [int(g.max(initial=-1)) + 1 for g in groups]
        coarse = [g[c] for g, c in zip(groups, cells)]

        def table(a: int, b: int, sigma: float) -> np.ndarray:
            t = np.bincount(coarse[a] * n_groups[b] + coarse[b], minlength=n_groups[a] * n_groups[b]).astype(float)
            if sigma > 0:
                t = t + rng.normal(0.0, sigma, size=t.shape)
            return t.reshape(n_groups[a], n_groups[b])

        first = {(a, b): table(a, b, sigma1) for a, b in select}
        scores = {pair: _dependence_score(t, sigma1) for pair, t in first.items()}
        fine = [np.array_equal(g, np.arange(c.n_cells)) for g, c in zip(groups, cols)]  # coarse = its cells
        root = next((i for i, c in enumerate(cols) if c.name == self.root), 0)
        tree = _spanning_tree(d, scores, root)
        # a second parent (post-processing of the selection): the declared root (target)
        # when it is not the first parent, else the placed column most dependent on the
        # child; kept only when its joint cells stay few enough for the noise
        placed, parents = [root], {}
        n_dp = max(float(n_rows_dp), 1.0)
        for parent, child in tree:
            extra = [j for j in placed if j != parent]
            second_parent = None
            if self.root is not None and root != parent and root in extra:
                second_parent = root
            elif extra:
                j = max(extra, key=lambda j: scores.get((min(j, child), max(j, child)), 0.0))
                if scores.get((min(j, child), max(j, child)), 0.0) > 0:
                    second_parent = j
            if second_parent is not None and (cols[parent].n_cells * cols[second_parent].n_cells * cols[child].n_cells
                                              > n_dp / MIN_ROWS_PER_CELL):
                second_parent = None
            parents[child] = [parent] + ([second_parent] if second_parent is not None else [])
            placed.append(child)
        tables: dict[str, np.ndarray] = {}
        pair_tables: dict[str, np.ndarray] = {}
        for parent, child in tree:
            ps = parents[child]
            joint = cells[ps[0]] if len(ps) == 1 else cells[ps[0]] * cols[ps[1]].n_cells + cells[ps[1]]
            n_joint = cols[ps[0]].n_cells * (cols[ps[1]].n_cells if len(ps) > 1 else 1)
            t = np.bincount(joint * cols[child].n_cells + cells[child],
                            minlength=n_joint * cols[child].n_cells).astype(float)
            if sigma2 > 0:
                t = t + rng.normal(0.0, sigma2, size=t.shape)
            t = t.reshape(n_joint, cols[child].n_cells)
            tables[cols[child].name] = t
            # the (first parent, child) table: the three-way table summed over the second
            # parent, averaged with the selection's measurement by inverse variance
            summed = t.reshape(cols[ps[0]].n_cells, -1, cols[child].n_cells).sum(axis=1)
            var2 = (n_joint // cols[ps[0]].n_cells) * sigma2**2
            pair = (min(parent, child), max(parent, child))
            if pair in first and sigma1 > 0 and var2 > 0 and fine[parent] and fine[child]:
                t1 = first[pair] if pair == (parent, child) else first[pair].T
                summed = (t1 / sigma1**2 + summed / var2) / (1 / sigma1**2 + 1 / var2)
            pair_tables[cols[child].name] = summed
        # drawn after the tables, so their noise does not depend on whether zeros are counted
        zero_counts = self._release_zero_counts(frame, cols, zero_noise=zero_noise, k=k, ledger=ledger, rng=rng) \
            if zero_noise > 0 else {}
        self.edges_ = [(cols[p].name, cols[c].name) for p, c in tree]
        self.parents_ = {cols[c].name: [cols[p].name for p in ps] for c, ps in parents.items()}
        self.tables_ = tables
        self.pair_tables_ = pair_tables
        self.noise_std_ = float(sigma2)
        self._cond = None
        self.point_shares_ = {}
        if private and sigma1 > 0 and sigma2 > 0:
            n_total = _combined_total(n_dp, _count_sigma(ledger, k), first, sigma1, tables, sigma2)
            self.point_shares_ = self._combined_point_shares(cols, first, sigma1, tables, parents, sigma2, n_total,
                                                             zero_counts, groups)
        logger.info("pair marginals released: %d tables for the selection, %d conditional tables (noise %.2f)",
                    len(select), len(tree), self.noise_std_)
        return self

    def _release_zero_counts(self, frame: pd.DataFrame, cols: list[_Column], *, zero_noise: float, k: int,
                             ledger: PrivacyLedger, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
        """The count of exact zeros of every column in `_zero_columns` (chosen from DP state
        alone, so the choice is post-processing), released at once: one row moves each
        count by at most 1 (a unit by k), so the vector's L2 sensitivity is k·√m for m
        columns, and its noise std is zero_noise·k·√m per count. Charged as m events of
        sensitivity k with that noise (the same ρ as the one vector; one event, measuring
        nothing, when m = 0). Why: the pair tables measure a column's 0 cell only summed
        over the other column's cells (noise of ~8 cells per table), so at ε = 1 its share
        kept a std of 1-2 pp on 1,500 rows; a count of its own, for only the columns whose
        0 is a spike, is several times cheaper per unit of ρ. Returns {column: (noisy
        count, noise std)} for `_combined_point_shares` (fit time only, not saved)."""
        chosen = _zero_columns(self.transformer, cols) if ledger.private else []
        sigma = zero_noise * float(k) * np.sqrt(max(len(chosen), 1))
        if not chosen:
            ledger.charge(GaussianEvent(name="zeros", sigma=sigma, sensitivity=float(k)))
            return {}
        out = {}
        for name in chosen:
            t = self.transformer.transforms[name]
            label = getattr(t, "event_label", None) or name
            ledger.charge(GaussianEvent(name=f"zeros:{label}", sigma=sigma, sensitivity=float(k)))
            count = float(np.count_nonzero(t.floats(frame[name]) == 0.0))
            out[name] = (count + float(rng.normal(0.0, sigma)), sigma)
        logger.info("exact zeros counted for %d column(s) (noise %.1f per count)", len(chosen), sigma)
        return out

    def _combined_point_shares(self, cols: list[_Column], first: dict[tuple[int, int], np.ndarray], sigma1: float,
                               tables: dict[str, np.ndarray], parents: dict[int, list[int]], sigma2: float,
                               n_dp: float, zero_counts: dict[str, tuple[float, float]] | None = None,
                               groups: list[np.ndarray] | None = None) -> dict[str, dict[str, list]]:
        """The one-value cells (the exact 0, an integer's value) and the null cell of every
        numeric column, each measured several times: by the column's DP histogram (one bin,
        noise std σ_hist) and, summed over the other column's cells, by every DP pair table
        it is in — each selection table (variance n_other·σ1²) and each tree table (as child
        or parent: variance (cells summed)·σ2²). The noise draws are independent and their
        variances known from the plan, so the inverse-variance weighted mean of the raw noisy
        counts is the least-noisy unbiased combination (on NMES1988 at ε = 1 the 0 cell's
        std falls from σ_hist to about 0.7σ_hist). Post-processing of releases already made:
        no new reading of the data. Returns {column: {"cells": [...], "shares": [...]}}
        (shares of `n_dp`, the combined row total of `_combined_total`); `margin` uses them in
        place of the histogram's. `groups`: each column's coarse cell of each of its cells (the
        selection tables' cells, `_coarse_groups`); a span of cells that is not whole coarse
        cells is not measured by a selection table."""
        out: dict[str, dict[str, list]] = {}
        index = {c.name: i for i, c in enumerate(cols)}
        for i, col in enumerate(cols):
            t = self.transformer.transforms[col.name]
            sigma_h = float(getattr(t, "hist_sigma_", 0.0) or 0.0)
            if col.kind != "numeric" or sigma_h <= 0 or t.hist_ is None or float(np.sum(t.hist_)) <= 0 \
                    or t.empty_:
                continue
            m = self.margin(col)
            if m is None:
                continue
            n_present = len(col.edges) + 1
            point = _point_cells(t, col)
            bins = _one_bin_index(t, col)  # the histogram bin of each one-bin cell, else -1
            one_bin = bins >= 0
            # a one-value cell the cleared histogram holds nothing in is measured too (Tobacco
            # nkids2: 96% 0s, 60 rows of 1 cleared to nothing, so the 4% of 1s were lost); it
            # gets a share only where the combined count clears POINT_CELL_SIGMAS of its noise
            cells = [c for c in range(n_present) if point[c] and one_bin[c]]
            if col.nullable and t.nulls_released and m[-1] > 0:
                cells.append(col.n_cells - 1)
            if not cells:
                continue
            # the tables' cells that hold what the histogram's bin holds: a one-value cell at
            # an end of the DP range also holds, in the histogram, every value beyond it
            # (clipped onto it), which the tables put in the cells beyond (a 0/1 range of a
            # count column: the histogram's "1" holds every count >= 1)
            lo, hi = t.bounds_
            value = np.concatenate([[lo], col.edges + (0.5 if t.column.kind == "integer" else 0.0)])
            spans = [(c, c + 1) if c >= n_present else
                     (0 if value[c] <= lo else c, n_present if value[c] >= hi else c + 1) for c in cells]
            width = np.array([b - a for a, b in spans], dtype=float)

            def summed(tab: np.ndarray) -> np.ndarray:  # [column cells, ...] → the cells' spans
                flat = tab.reshape(tab.shape[0], -1)
                return np.array([flat[a:b].sum() for a, b in spans])

            # (estimate of each cell's count, its variance): the histogram first. A bin under
            # the histogram's clearing threshold was replaced by a share of the rest (or 0),
            # biased low: there its raw noisy count (unbiased, std σ_hist, kept by the fit) is
            # the measurement (Tobacco salcohol at ε = 1: 262 zeros, a raw count 2.4σ below
            # them, cleared to 0: 17.5 pp lost). A cleared bin keeps the cleared share (its
            # raw count, scaled to the DP total where the kept bins overshoot it)
            est = [m[cells] * n_dp]
            var = [np.full(len(cells), sigma_h**2)]
            raw = getattr(t, "hist_noisy_", None)
            if raw is not None and len(raw) == len(t.hist_):
                est[0] = np.array([raw[bins[c]] if c < n_present and bins[c] >= 0
                                   and raw[bins[c]] <= HIST_CLEAR_SIGMAS * sigma_h else e
                                   for c, e in zip(cells, est[0])], dtype=float)
            # the DP range histogram measured the exact 0 too (its bin of 0, an independent
            # draw with the range's smaller noise): [-½, ½) of an integer column, exactly the
            # 0s; [-2^-20, 2^-20) of a continuous one, the 0s and any value that close to 0.
            # Values clipped onto a cell of 0 at the end of the DP range are not in it (they
            # lie beyond the range, so few). On NMES1988 at ε = 1 the std of the 0 cell falls
            # from about 34 to 27 rows
            range_zero = getattr(t, "range_zero_", None)
            zb = zero_bin(t.edges_, integer=t.column.kind == "integer")
            at = [j for j, c in enumerate(cells) if c < n_present and bins[c] == zb] if zb is not None else []
            # the own count of the exact zeros (`_release_zero_counts`), one more independent draw
            for zero in (range_zero, (zero_counts or {}).get(col.name)):
                if zero is not None and zero[1] > 0 and at:
                    e_r, v_r = np.zeros(len(cells)), np.full(len(cells), np.inf)
                    e_r[at[0]], v_r[at[0]] = zero[0], zero[1] ** 2
                    est.append(e_r)
                    var.append(v_r)
            g = groups[i] if groups is not None else np.arange(col.n_cells)
            # the coarse cells each span is made of, where it is whole coarse cells
            whole = [np.unique(g[a:b]) for a, b in spans]
            whole = [u if np.isin(g, u).sum() == b - a else None for u, (a, b) in zip(whole, spans)]
            n_whole = np.array([len(u) if u is not None else 0 for u in whole], dtype=float)
            for (a, b), tab in first.items():
                if i in (a, b):
                    flat = tab if i == a else tab.T
                    other = flat.shape[1]
                    est.append(np.array([flat[u].sum() if u is not None else 0.0 for u in whole]))
                    var.append(np.where(n_whole > 0, n_whole * other * sigma1**2, np.inf))
            for child_name, tab in tables.items():
                child = index[child_name]
                shape = [cols[p].n_cells for p in parents[child]] + [cols[child].n_cells]
                axes = parents[child] + [child]
                if i not in axes:
                    continue
                est.append(summed(np.moveaxis(tab.reshape(shape), axes.index(i), 0)))
                var.append(width * (tab.size // col.n_cells) * sigma2**2)
            w = 1.0 / np.asarray(var)
            combined = (w * np.asarray(est)).sum(axis=0) / w.sum(axis=0)
            shares = np.clip(combined / n_dp, 0.0, 1.0)
            empty = np.array([c < n_present and m[c] <= 0 for c in cells])
            shares[empty & (combined <= POINT_CELL_SIGMAS / np.sqrt(w.sum(axis=0)))] = 0.0
            # the variances (of shares) let `margin` spread the sum's gap from 1 where the
            # noise is: the rest of the column is the histogram's other bins (one σ_hist each)
            n_rest = max(int(np.count_nonzero(np.asarray(t.hist_) > 0)) - sum(c < n_present for c in cells), 0)
            out[col.name] = {"cells": [int(c) for c in cells], "shares": [float(x) for x in shares],
                             "vars": [float(v) for v in 1.0 / w.sum(axis=0) / n_dp**2],
                             "rest_var": float(n_rest * sigma_h**2 / n_dp**2)}
        return out

    # ------------------------------------------------------------- conditionals (post-processing)
    def conditionals(self) -> dict[str, np.ndarray]:
        """P(child cell | parents' cell) per child: the DP table clipped at zero, each row
        shrunk, in proportion to the noise, towards P(child | first parent) from the pair
        table, itself shrunk towards the child's margin (a parent cell seen in few rows
        falls back to what is known more precisely)."""
        if self._cond is None:
            out, uncalibrated = {}, {}
            sigma = float(self.noise_std_ or 0.0)
            cols = {c.name: c for c in self.columns()}
            for _, child in self.edges_:
                t = _cleared(self.tables_[child], CLEAR_SIGMAS * sigma)
                pair = _cleared(self.pair_tables_[child], CLEAR_SIGMAS * sigma)
                margin = pair.sum(axis=0)
                transform = self.transformer.transforms[child]
                if isinstance(transform, CategoricalTransform) and transform.public_domain is not None:
                    # declared categories stay reachable: the floor the transform gave them
                    floor = transform.floor_
                    margin[:len(transform.public_domain)] = np.maximum(margin[:len(transform.public_domain)], floor)
                margin = margin / margin.sum() if margin.sum() > 0 else np.full(t.shape[1], 1 / t.shape[1])
                lam = max(sigma * np.sqrt(t.shape[1]), 1.0)
                cond_pair = (pair + lam * margin[None, :]) / (pair.sum(axis=1, keepdims=True) + lam + 1e-12)
                per_first = t.shape[0] // pair.shape[0]
                prior = np.repeat(cond_pair, per_first, axis=0)
                cond = (t + lam * prior) / (t.sum(axis=1, keepdims=True) + lam + 1e-12)
                if isinstance(transform, CategoricalTransform) and transform.public_domain is not None:
                    # every declared label keeps at least its floored DP share in every parent cell
                    n_declared = len(transform.public_domain)
                    share = floor / max(float(np.sum(transform.counts_)), 1.0)
                    cond[:, :n_declared] = np.maximum(cond[:, :n_declared], share)
                    cond = cond / cond.sum(axis=1, keepdims=True)
                if isinstance(transform, CategoricalTransform):
                    cond = _released_labels_only(cond, transform)
                if isinstance(transform, NumericTransform) and transform.column.nullable \
                        and not transform.nulls_released:
                    # the null label was not released (its DP count stayed below the release
                    # threshold): the table's null cell holds noise only, never drawn
                    cond = cond.copy()
                    cond[:, -1] = 0.0
                    total = cond.sum(axis=1, keepdims=True)
                    cond = np.where(total > 0, cond / np.where(total > 0, total, 1.0), 1.0 / (cond.shape[1] - 1))
                    cond[:, -1] = 0.0
                if isinstance(transform, NumericTransform):
                    uncalibrated[child] = cond
                    cond = self._calibrated(child, cond, cols)
                out[child] = cond
            self._cond = out
            self._uncalibrated = uncalibrated
        return self._cond

    def margin(self, col: _Column) -> np.ndarray | None:
        """The column's released DP margin over its cells (post-processing of DP state):
        DP label counts (declared labels at their floor), or the DP histogram's mass per
        cell (no share where it holds under half a row, as `_conditional_quantiles` maps
        it) times the DP present share, then the DP null share. None without a histogram."""
        t = self.transformer.transforms[col.name]
        if isinstance(t, CategoricalTransform):
            m = np.asarray(t.counts_, dtype=float).copy()
            if t.public_domain is not None:
                m[:len(t.public_domain)] = np.maximum(m[:len(t.public_domain)], t.floor_)
        else:
            if t.hist_ is None or float(np.sum(t.hist_)) <= 0:
                return None
            level, possible = _cell_levels(t, col)
            m = np.where(possible, np.diff(level), 0.0)
            m = m / m.sum() if m.sum() > 0 else np.diff(level)
            if col.nullable:
                share = float(t.null_share_ or 0.0) if t.nulls_released else 0.0
                m = np.append(m * (1.0 - share), share)
            combined = (self.point_shares_ or {}).get(col.name)
            if combined is not None and m.sum() > 0:
                # the one-value and null cells measured by the histogram AND the pair tables
                # (inverse-variance weighted, `_combined_point_shares`); the other cells share
                # the rest as the histogram says; the shares must sum to 1, so the gap is
                # spread over the cells in proportion to their noise variance (the least-
                # squares projection onto the constraint): all on the fixed cells when the
                # histogram holds nothing else (an integer column of 0s and 1s)
                m = m / m.sum()
                cells = np.asarray(combined["cells"], dtype=np.int64)
                fixed = np.zeros(len(m), dtype=bool)
                fixed[cells] = True
                shares = np.asarray(combined["shares"])
                known = (m[cells] > 0) | (shares > 0)  # `_combined_point_shares` cleared the others
                x = np.where(known, shares, 0.0)
                v = np.where(known, np.asarray(combined["vars"]), 0.0)
                free = float(m[~fixed].sum())
                v_rest = float(combined["rest_var"]) if free > 0 else 0.0
                total_v = float(v.sum()) + v_rest
                if total_v > 0:
                    gap = 1.0 - float(x.sum()) - free
                    x = np.clip(x + v / total_v * gap, 0.0, None)
                    rest = max(free + v_rest / total_v * gap, 0.0)
                    m = m * (rest / free) if free > 0 else np.zeros(len(m))
                    m[cells] = x
        return m / m.sum() if m.sum() > 0 else None

    def _calibrated(self, child: str, cond: np.ndarray, cols: dict[str, _Column],
                    w: np.ndarray | None = None) -> np.ndarray:
        """`cond` raked (iterative proportional fitting) so that the child's margin it
        implies, Σ_p w_p · cond[p, :] with w the parents' released DP margins, gives every
        one-value cell (the exact-0 cell, an integer's value) and the null cell the share
        of the column's DP margin; the other cells share the rest as the table says. Without
        it the child's cells followed the pair table's noisy, cleared and shrunk margin, so
        a spike drifted from the DP histogram by several points (issue 17). The histogram
        is the better measurement of a one-value cell (one bin, one noise draw); inside a
        wider histogram bin its mass is spread uniformly, so its share of a cell cut inside
        that bin (e.g. (0, 1e-4] of a budget share) is an interpolation, where the tables
        measured the cell itself. IPF keeps every odds ratio of w_p · cond[p, c], so the
        parent → child association stays. Post-processing of released state only.

        `w` (sampling): the parent cells' shares in the chunk being drawn, in place of the
        parents' DP margins. A parent that is itself a child does not always follow its DP
        margin in the rows (CreditCard at ε = 1, one fixed draw: `months`' cells 0.106 and
        0.114 in the margin, 0.056 and 0.196 in the rows), and its children's spikes moved
        with it (`active`: 16.6% zeros, 17.3% in the margin, 21.3% in the rows)."""
        t = self.transformer.transforms[child]
        target = self.margin(cols[child])
        margins = [self.margin(cols[p]) for p in self.parents_[child]]
        if target is None or any(m is None for m in margins) or len(target) != cond.shape[1]:
            return cond
        if w is None and len(margins) == 1:
            w = margins[0]
        elif w is None:
            # the two parents' joint: the tree table's parent margin fitted to both DP margins
            seen = _cleared(self.tables_[child], CLEAR_SIGMAS * float(self.noise_std_ or 0.0)).sum(axis=1)
            w = _fit_margins(seen.reshape(len(margins[0]), len(margins[1])), margins[0], margins[1]).ravel()
        if len(w) != cond.shape[0]:
            return cond
        fixed = np.zeros(len(target), dtype=bool)
        fixed[:len(cols[child].edges) + 1] = _point_cells(t, cols[child])
        fixed[len(cols[child].edges) + 1:] = True  # the null cell
        implied = np.where(target > 0, w @ cond, 0.0)  # no share where the DP margin has none
        rest = implied[~fixed].sum()
        if rest > 0:
            target = np.where(fixed, target, implied * max(1.0 - target[fixed].sum(), 0.0) / rest)
        joint = _fit_margins(w[:, None] * cond, w, target / target.sum())
        rows = joint.sum(axis=1, keepdims=True)
        return np.where(rows > 0, joint / np.where(rows > 0, rows, 1.0), cond)

    def sample(self, raw_t: torch.Tensor, values: dict[str, np.ndarray], *, generator: torch.Generator,
               state: dict[str, Any]) -> dict[str, np.ndarray]:
        """Redraw every non-root column of a chunk given its parent (module docstring).
        `raw_t`: the network's raw outputs [width, n] in span layout; `values`: the chunk
        as `DataTransformer.decode` gave it (the root and the numeric α/modes are kept);
        `state`: offsets carried from chunk to chunk (warm starts)."""
        cols = {c.name: c for c in self.columns()}
        rows = _span_rows(self.transformer)
        cond = self.conditionals()
        device = raw_t.device
        root = self.edges_[0][0] if self.edges_ else None
        if root in (self.point_shares_ or {}) and isinstance(self.transformer.transforms[root], NumericTransform):
            # the root is drawn calibrated to its DP histogram; its one-value cells move to
            # the combined measurement too (ranks kept: one parent cell holding every row)
            m = self.margin(cols[root])
            if m is not None:
                x = values[root]
                values[root] = _conditional_quantiles(self.transformer.transforms[root], cols[root], x,
                                                      np.zeros(len(x), dtype=np.int64),
                                                      m[None, :len(cols[root].edges) + 1])
        for _, child in self.edges_:
            ps = self.parents_[child]
            pc = self.cells(cols[ps[0]], values[ps[0]])
            if len(ps) > 1:
                pc = pc * cols[ps[1]].n_cells + self.cells(cols[ps[1]], values[ps[1]])
            t = self.transformer.transforms[child]
            p = cond[child]
            group = torch.from_numpy(pc).to(device)
            if isinstance(t, CategoricalTransform):
                logits = raw_t[rows[child]["labels"]]
                codes = _rake_and_draw(logits, group, p, generator, state, child)
                values[child] = codes
                continue
            col = cols[child]
            uncalibrated = getattr(self, "_uncalibrated", None) or {}
            if child in uncalibrated and len(pc):
                # raked to the chunk's own parent cells (post-processing of synthetic rows)
                p = self._calibrated(child, uncalibrated[child], cols,
                                     w=np.bincount(pc, minlength=p.shape[0]) / len(pc))
            present_cells = p[:, :len(col.edges) + 1]
            x = values[child].copy()
            if col.nullable and t.nulls_released:
                null_p = np.stack([present_cells.sum(axis=1), p[:, -1]], axis=1)
                null = _rake_and_draw(raw_t[rows[child]["null"]], group, null_p, generator, state,
                                      child + "/null").astype(bool)
                if np.isnan(x).any() or null.any():
                    x = _fill_present(x, ~null, t)
                    x[null] = np.nan
            values[child] = _conditional_quantiles(t, col, x, pc, present_cells)
        return values

    # ------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"root": self.root, "edges": [list(e) for e in self.edges_],
                "parents": {c: list(p) for c, p in self.parents_.items()},
                "tables": {c: t.tolist() for c, t in self.tables_.items()},
                "pair_tables": {c: t.tolist() for c, t in self.pair_tables_.items()}, "noise_std": self.noise_std_,
                "point_shares": self.point_shares_ or {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from synthkit.errors import ArtifactError
        try:
            self._load(state)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ArtifactError("the bundle's pair marginals are malformed (corrupt bundle)") from None
        placed = {self.edges_[0][0]} if self.edges_ else set()
        for parent, child in self.edges_:
            if child in placed or not set(self.parents_.get(child, [])) <= placed or parent != self.parents_[child][0] \
                    or not np.isfinite(self.tables_[child]).all():
                raise ArtifactError("the bundle's pair tree is not a tree drawn parents first (corrupt bundle)")
            placed.add(child)

    def _load(self, state: dict[str, Any]) -> None:
        from synthkit.errors import ArtifactError
        self.root = state.get("root")
        self.edges_ = [(str(p), str(c)) for p, c in state["edges"]]
        self.parents_ = {str(c): [str(x) for x in p] for c, p in state["parents"].items()}
        self.tables_ = {str(c): np.asarray(t, dtype=float) for c, t in state["tables"].items()}
        self.pair_tables_ = {str(c): np.asarray(t, dtype=float) for c, t in state["pair_tables"].items()}
        self.noise_std_ = float(state.get("noise_std") or 0.0)
        # bundles written before the combined one-value cells carry none: the histogram's shares
        self.point_shares_ = {str(c): {"cells": [int(i) for i in v["cells"]], "shares": [float(x) for x in v["shares"]],
                                       "vars": [float(x) for x in v["vars"]], "rest_var": float(v["rest_var"])}
                              for c, v in (state.get("point_shares") or {}).items()}
        self._cond = None
        cols = {c.name: c for c in self.columns()}
        for _, c in self.edges_:
            ps, t, pt = self.parents_.get(c, []), self.tables_.get(c), self.pair_tables_.get(c)
            ok = c in cols and 1 <= len(ps) <= 2 and all(p in cols for p in ps) and t is not None and pt is not None
            if ok:
                n_joint = int(np.prod([cols[p].n_cells for p in ps]))
                ok = t.shape == (n_joint, cols[c].n_cells) and pt.shape == (cols[ps[0]].n_cells, cols[c].n_cells)
            if not ok:
                raise ArtifactError("the bundle's pair marginals do not fit its transformer (corrupt bundle)")
        for c, v in self.point_shares_.items():
            if c not in cols or not len(v["cells"]) == len(v["shares"]) == len(v["vars"]) \
                    or not all(0 <= i < cols[c].n_cells for i in v["cells"]) \
                    or not all(np.isfinite(x) and 0.0 <= x <= 1.0 for x in v["shares"]) \
                    or not all(np.isfinite(x) and x >= 0.0 for x in [*v["vars"], v["rest_var"]]):
                raise ArtifactError("the bundle's pair marginals do not fit its transformer (corrupt bundle)")


# ------------------------------------------------------------------ helpers
def _edges(t: NumericTransform) -> np.ndarray:
    """Inner bin edges from the DP margin's quantiles at j/N_BINS (repeats merged: a spike
    holding several quantiles is one cell); integer columns on half-integers."""
    if t.hist_ is None or float(np.sum(t.hist_)) <= 0:
        return np.zeros(0)
    q = t.quantiles(np.arange(1, N_BINS) / N_BINS)
    if t.column.kind == "integer":
        q = np.floor(q) + 0.5
    # an exact spike (a zero-width bin of the DP histogram holding mass: 0 in a continuous
    # column) is a cell of its own, [p, next float above p): the tables then measure how
    # often the value is exactly p given each parent, and `_conditional_quantiles` maps
    # that cell onto the spike alone. Merged with the values above it, the cell's rows
    # were spread over its DP levels, so any gap between the table's share and the DP
    # margin's share of the merged cell moved rows onto or off the spike (+5 pp of zeros)
    if t.edges_ is not None:
        for j in np.flatnonzero((np.diff(t.edges_) == 0) & (np.asarray(t.hist_) > 0)):
            p = float(t.edges_[j])
            q = np.concatenate([q, [p, np.nextafter(p, np.inf)]])
        # likewise the 0 of an integer column, [-½, ½), whenever its DP histogram bin holds
        # mass: the quantiles gave it a cell of its own only where the noisy histogram put
        # more than 1/N_BINS there (AER/CreditCard `active` at ε = 1, 17% zeros cleared to
        # 7%: 0 and 1 shared a cell, and the tables could not correct the 0s' share).
        # From saved DP state only (`hist_`, `edges_`, `bounds_`): a loaded bundle gets the
        # same cells
        zb = zero_bin(t.edges_, integer=True) if t.column.kind == "integer" and t.bounds_ is not None else None
        if zb is not None and float(t.hist_[zb]) > 0:
            lo, hi = t.bounds_
            q = np.concatenate([q, [e for e in (-0.5, 0.5) if lo < e < hi]])
    return np.unique(q)


def _released_labels_only(cond: np.ndarray, transform: CategoricalTransform) -> np.ndarray:
    """`cond` with no mass on a label whose released DP count is 0 (an `__other__` that did
    not clear its own noise, `transforms.OTHER_CLEAR_SIGMAS`), rows renormalised. The pair
    tables are cleared at CLEAR_SIGMAS = 1 std only, so about one parent cell in six kept
    pure noise in such a label's column: session 11's trial found 2.4-3.6% `__other__` in
    two-label columns (DoctorVisits gender, flchain sex) whose margin released none.
    Post-processing of released state only."""
    released = np.asarray(transform.counts_, dtype=float) > 0
    if released.all() or not released.any() or len(released) != cond.shape[1]:
        return cond
    out = np.where(released[None, :], cond, 0.0)
    total = out.sum(axis=1, keepdims=True)
    fallback = released / released.sum()  # a parent cell that held only unreleased mass
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), fallback[None, :])


def _cleared(t: np.ndarray, threshold: float) -> np.ndarray:
    """Noisy counts with cells below `threshold` set to 0 (post-processing)."""
    return np.where(t >= threshold, t, 0.0) if threshold > 0 else np.clip(t, 0.0, None)


def _dependence_score(t: np.ndarray, sigma: float) -> float:
    """Total variation between a noisy table and the product of its margins, less what
    pure noise would give (E|N(0, σ²)| per cell): the selection's measure of how much a
    pair's dependence is worth a tree edge."""
    c = np.clip(t, 0.0, None)
    n = c.sum()
    if n <= 0:
        return 0.0
    joint = c / n
    product = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    return float(0.5 * np.abs(joint - product).sum() - 0.5 * t.size * sigma * np.sqrt(2 / np.pi) / n)


def _spanning_tree(d: int, scores: dict[tuple[int, int], float], root: int) -> list[tuple[int, int]]:
    """Maximum spanning tree (Prim) from `root`: (parent, child) in the order added, so a
    parent always comes before its children. Pairs without a score (beyond the measured
    columns) score 0."""
    inside = {root}
    best = {j: (scores.get((min(root, j), max(root, j)), 0.0), root) for j in range(d) if j != root}
    out = []
    while best:
        child = max(best, key=lambda j: (best[j][0], -j))
        _, parent = best.pop(child)
        out.append((parent, child))
        inside.add(child)
        for j in best:
            s = scores.get((min(child, j), max(child, j)), 0.0)
            if s > best[j][0]:
                best[j] = (s, child)
    return out


def _span_rows(transformer: DataTransformer) -> dict[str, dict[str, slice]]:
    """Rows of the raw output [width, n] per column: 'labels' (categorical), or 'alpha',
    'modes' and 'null' (numeric)."""
    out, at = {}, 0
    for name, t in transformer.transforms.items():
        spans = t.spans
        if isinstance(t, CategoricalTransform):
            out[name] = {"labels": slice(at, at + spans[0].width)}
        else:
            entry = {"alpha": slice(at, at + 1), "modes": slice(at + 1, at + 1 + spans[1].width)}
            if len(spans) > 2:
                start = at + 1 + spans[1].width
                entry["null"] = slice(start, start + 2)
            out[name] = entry
        at += sum(s.width for s in spans)
    return out


def _rake(logits: torch.Tensor, group: torch.Tensor, b: torch.Tensor, log_t: torch.Tensor,
          active: torch.Tensor) -> torch.Tensor:
    """Iterative proportional fitting of the offsets `b` [groups, labels] of the `active`
    groups: the mean of softmax(logits + b[group]) over each group's rows ([rows, labels]
    logits) moves to exp(log_t[group])."""
    counts = torch.bincount(group, minlength=b.shape[0]).to(torch.float32).clamp_min(1)[:, None]
    for _ in range(RAKE_ITERATIONS):
        prob = torch.softmax(logits + b[group], dim=1)
        mean = torch.zeros_like(b).index_add_(0, group, prob) / counts
        step = (log_t - torch.log(mean.clamp_min(1e-12))) * active[:, None]
        b = b + step
        if float(step.abs().max()) < 1e-3:
            break
    return b


def _rake_and_draw(logits: torch.Tensor, group: torch.Tensor, target: np.ndarray, generator: torch.Generator,
                   state: dict[str, Any], key: str) -> np.ndarray:
    """Draw one label per row from softmax(logits + B[group]) with B fitted so that the
    mean probability over each group's rows is target[group] (iterative proportional
    fitting on the first RAKE_ROWS rows, warm-started from the previous chunk's B)."""
    n_groups, width = target.shape
    log_t = torch.log(torch.as_tensor(np.clip(target, 1e-9, None), dtype=torch.float32, device=logits.device))
    b = state.get(key)
    if b is None or b.shape != (n_groups, width):
        b = torch.zeros(n_groups, width, device=logits.device)
    head = min(logits.shape[1], RAKE_ROWS)
    seen = torch.bincount(group[:head], minlength=n_groups) > 0
    b = _rake(logits[:, :head].t(), group[:head], b, log_t, seen)
    # parent cells the head never showed (rare ones, where rules live): raked on their own
    # rows of the whole chunk, so no row is drawn from the uncalibrated softmax
    late = (torch.bincount(group, minlength=n_groups) > 0) & ~seen
    if bool(late.any()):
        rows = torch.nonzero(late[group]).squeeze(1)
        b = _rake(logits[:, rows].t(), group[rows], b, log_t, late)
    state[key] = b
    prob = torch.softmax(logits.t() + b[group], dim=1)
    u = torch.rand(prob.shape[0], 1, generator=generator, device=logits.device)
    code = (torch.cumsum(prob, dim=1) < u * prob.sum(dim=1, keepdim=True)).sum(dim=1)
    return code.clamp_max(width - 1).cpu().numpy().astype(np.int64)


def _fill_present(x: np.ndarray, present: np.ndarray, t: NumericTransform) -> np.ndarray:
    """Rows that become present after a conditional null draw but had no value get one
    from the DP margin (their ranks are then set by `_conditional_quantiles`)."""
    out = x.copy()
    missing = present & np.isnan(out)
    if missing.any():
        out[missing] = t.quantiles(np.linspace(0.0, 1.0, int(missing.sum()) + 2)[1:-1])
    return out


def _cell_levels(t: NumericTransform, col: _Column) -> tuple[np.ndarray, np.ndarray]:
    """The DP CDF at the column's present cells' edges (0 … 1), and which cells may get a
    share: a cell where the DP margin holds less than half a row (e.g. [lo, 0) below a spike
    at 0, the DP lower bound sitting just under 0) can only hold table noise: rows drawn into
    it would all map onto one quantile (the spike, or a value below 0)."""
    lo, hi = t.bounds_
    bounds = np.concatenate([[lo], col.edges, [hi]]) if t.column.kind != "integer" else \
        np.concatenate([[lo - 0.5], col.edges, [hi + 0.5]])
    level = np.clip(t.cdf(bounds), 0.0, 1.0)  # DP CDF at the bin edges
    level[0], level[-1] = 0.0, 1.0
    return level, np.diff(level) * float(np.sum(t.hist_)) >= 0.5


def _zero_columns(transformer: DataTransformer, cols: list[_Column]) -> list[str]:
    """The numeric columns whose 0 is a one-bin cell of the discretisation (the histogram's
    bin of 0) and whose DP estimate of that bin — the value histogram's raw noisy count and
    the range histogram's, inverse-variance weighted — clears ZERO_SELECT_SIGMAS of its
    noise std. Post-processing of DP state (a column with no zeros passes in 7% of fits)."""
    out = []
    for col in cols:
        t = transformer.transforms[col.name]
        if col.kind != "numeric" or t.column.kind not in ("integer", "continuous") or t.empty_ \
                or t.hist_ is None or getattr(t, "hist_noisy_", None) is None or not t.hist_sigma_:
            continue
        zb = zero_bin(t.edges_, integer=t.column.kind == "integer")
        if zb is None or not (t.bounds_[0] <= 0.0 <= t.bounds_[1]):
            continue
        if zb not in set(_one_bin_index(t, col).tolist()):
            continue
        est, w = [float(t.hist_noisy_[zb])], [1.0 / t.hist_sigma_**2]
        range_zero = getattr(t, "range_zero_", None)
        if range_zero is not None and range_zero[1] > 0:
            est.append(float(range_zero[0]))
            w.append(1.0 / range_zero[1] ** 2)
        combined = float(np.dot(est, w) / np.sum(w))
        if combined >= ZERO_SELECT_SIGMAS / np.sqrt(np.sum(w)):
            out.append(col.name)
    return out


def _point_cells(t: NumericTransform, col: _Column) -> np.ndarray:
    """Which present cells hold one value: [p, next float above p) (an exact spike) or,
    in an integer column, a cell one unit wide (one whole value)."""
    lo, hi = t.bounds_
    if t.column.kind == "integer":
        bounds = np.concatenate([[lo - 0.5], col.edges, [hi + 0.5]])
        return np.diff(bounds) <= 1.0
    bounds = np.concatenate([[lo], col.edges, [hi]])
    return bounds[1:] <= np.nextafter(bounds[:-1], np.inf)


def _count_sigma(ledger: PrivacyLedger, k: int) -> float | None:
    """The noise std of the DP row count the fit used (`count:rows`, or `count:units` when a
    unit is one row), from the ledger's last such event; None when there is none."""
    name = "count:rows" if k > 1 else "count:units"
    return next((float(e.sigma) for e in reversed(ledger.events) if getattr(e, "name", None) == name), None)


def _combined_total(n_dp: float, sigma_n: float | None, first: dict[tuple[int, int], np.ndarray], sigma1: float,
                    tables: dict[str, np.ndarray], sigma2: float) -> float:
    """The number of rows, measured by the DP row count (std σ_n) and again by the total of
    every DP pair table (each row is in one cell of each: variance cells·σ²), inverse-variance
    weighted. A one-value cell's share is its combined count over this total: over the DP row
    count alone, its noise (σ_n ≈ 63 rows on NMES1988 at ε = 1) moved an 80% spike by 3.4 pp
    (std); with its 18 tree and 171 selection tables the total's std is about 17 rows.
    Post-processing."""
    if sigma_n is None or sigma_n <= 0:
        return n_dp
    est, prec = [n_dp], [1.0 / sigma_n**2]
    for tab, sigma in [*((t, sigma1) for t in first.values()), *((t, sigma2) for t in tables.values())]:
        if sigma > 0 and tab.size:
            est.append(float(tab.sum()))
            prec.append(1.0 / (tab.size * sigma**2))
    total = float(np.dot(est, prec) / np.sum(prec))
    return max(total, 1.0)


def _one_bin_index(t: NumericTransform, col: _Column) -> np.ndarray:
    """For each present cell that is exactly one bin of the column's DP histogram (so the
    histogram measured the cell with one noise draw, std σ_hist), that bin's index; -1 for
    the others. One bin: an integer cell [v - ½, v + ½) that is a one-value bin, or the
    exact-spike cell [p, next float) where the histogram has its zero-width bin at p."""
    lo, hi = t.bounds_
    e = np.asarray(t.edges_, dtype=float)
    if t.column.kind == "integer":
        bounds = np.concatenate([[lo - 0.5], col.edges, [hi + 0.5]])
        where = {(a, b): j for j, (a, b) in enumerate(zip(e[:-1].tolist(), e[1:].tolist()))}
        return np.array([where.get((float(a), float(b)), -1) for a, b in zip(bounds[:-1], bounds[1:])],
                        dtype=np.int64)
    bounds = np.concatenate([[lo], col.edges, [hi]])
    spikes = {a: j for j, (a, b) in enumerate(zip(e[:-1].tolist(), e[1:].tolist())) if a == b}
    return np.array([spikes.get(float(a), -1) if b <= np.nextafter(a, np.inf) else -1
                     for a, b in zip(bounds[:-1], bounds[1:])], dtype=np.int64)


def _fit_margins(joint: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Iterative proportional fitting (Deming & Stephan 1940) of a non-negative table to
    the row and column margins `rows`, `cols` (equal totals): rows and columns are scaled in
    turn, which leaves every odds ratio of the table unchanged. A cell line that is empty
    where its target is not gets a uniform trace first, so every target is reachable."""
    j = np.clip(np.asarray(joint, dtype=float), 0.0, None)
    trace = 1e-6 * max(float(j.sum()), 1e-12) / j.size
    j[:, (j.sum(axis=0) <= 0) & (cols > 0)] += trace
    j[(j.sum(axis=1) <= 0) & (rows > 0), :] += trace
    for _ in range(10 * RAKE_ITERATIONS):
        r = j.sum(axis=1)
        j *= np.where(r > 0, rows / np.where(r > 0, r, 1.0), 0.0)[:, None]
        c = j.sum(axis=0)
        j *= np.where(c > 0, cols / np.where(c > 0, c, 1.0), 0.0)[None, :]
        if float(np.abs(j.sum(axis=1) - rows).max()) < 1e-9:
            break
    return j


def _conditional_quantiles(t: NumericTransform, col: _Column, x: np.ndarray, parent_cells: np.ndarray,
                           present_p: np.ndarray) -> np.ndarray:
    """Within each parent cell, rank the present values and map rank (i + ½)/m onto the DP
    conditional distribution: bin shares `present_p[cell]` over the column's quantile
    bins, the DP histogram inside each bin (the bin's range of levels of the DP CDF)."""
    out = x.copy()
    present = ~np.isnan(x)
    if not present.any() or t.hist_ is None or float(np.sum(t.hist_)) <= 0:
        return out
    level, possible = _cell_levels(t, col)
    # a one-value cell is drawn onto its value, whatever the histogram holds inside it (a cell
    # the combined measurement gave a share where the cleared histogram had none)
    point = _point_cells(t, col)
    possible = possible | point
    lo, hi = t.bounds_
    point_value = (np.concatenate([[lo - 0.5], col.edges]) + 0.5 if t.column.kind == "integer"
                   else np.concatenate([[lo], col.edges]))
    idx = np.flatnonzero(present)
    # one sort by (parent cell, value) for the whole chunk: each cell's rows are then a
    # contiguous run in value order (a sort per cell cost a third of sampling time)
    by_value = value_order(x[idx])
    cells = parent_cells[idx][by_value]
    cells = cells.astype(np.int16) if cells.max(initial=0) < 2**15 else cells  # a radix sort for small keys
    order = idx[by_value[np.argsort(cells, kind="stable")]]
    sorted_cells = parent_cells[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    ends = np.r_[starts[1:], len(order)]
    levels = np.empty(len(order))
    drawn = np.empty(len(order), dtype=np.int64)  # the column cell of each row
    for begin, end in zip(starts, ends):
        share = np.where(possible, np.clip(present_p[sorted_cells[begin]], 0.0, None), 0.0)
        share = share / share.sum() if share.sum() > 0 else np.diff(level)
        cum = np.concatenate([[0.0], np.cumsum(share)])
        u = (np.arange(end - begin) + 0.5) / (end - begin)
        levels[begin:end] = np.interp(u, cum, level)  # piecewise linear: bin b's share ↦ its CDF range
        drawn[begin:end] = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, len(share) - 1)
    out[order] = t.quantiles(levels)
    if t.column.kind == "integer":
        out[present] = np.round(out[present])
    elif t.column.decimals is not None:
        out[present] = t.round_to_decimals(out[present])
    on_point = point[drawn]
    out[order[on_point]] = point_value[drawn[on_point]]
    return out


def tree_columns(edges: Iterable[tuple[str, str]]) -> set[str]:
    return {c for e in edges for c in e}
