"""Diversity and mode collapse: does the synthetic data cover ALL of the real data?

A generator can score well on average fidelity while dropping rare categories, whole
clusters of patients, or repeating a few rows (mode collapse, common under DP noise).
- category / range coverage: sdmetrics CategoryCoverage and RangeCoverage per column;
- precision / recall / density / coverage (Naeem et al. 2020, "Reliable Fidelity and
  Diversity Metrics for Generative Models", eqs. 1–4) with k = 5 nearest neighbours in
  the normalised space of `reports.encoding`;
- mode coverage: the real train is clustered (k-means, in memory only); a mode counts as
  reached when it receives at least half of its real share of synthetic rows; the total
  variation between the real and synthetic cluster shares measures how far the mass moved;
- duplicate rate: the share of synthetic rows that repeat an earlier synthetic row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.encoding import is_numeric, nearest, row_keys
from synthkit.schema import Column

PRDC_MAX_ROWS = 5_000
PRDC_K = 5
MODE_REACHED_SHARE = 0.5


def coverages(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column]) -> dict[str, dict[str, float]]:
    from sdmetrics.single_column import CategoryCoverage, RangeCoverage
    cats: dict[str, float] = {}
    ranges: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for col in columns:
            r, s = real[col.name].dropna(), synthetic[col.name].dropna()
            if len(r) == 0:
                continue
            if is_numeric(col):
                if len(s) == 0:
                    ranges[col.name] = 0.0
                elif r.min() < r.max():
                    ranges[col.name] = float(RangeCoverage.compute(r.astype(float), s.astype(float)))
            else:
                cats[col.name] = float(CategoryCoverage.compute(r.astype(str), s.astype(str))) if len(s) else 0.0
    return {"category": cats, "range": ranges}


@dataclass(frozen=True, slots=True)
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float
    n_real: int
    n_synthetic: int


def prdc(real: np.ndarray, synthetic: np.ndarray, *, rng: np.random.Generator, k: int = PRDC_K,
         max_rows: int = PRDC_MAX_ROWS) -> PRDC:
    """Naeem et al. 2020 on at most `max_rows` rows per side (the usual practice: the
    estimates are stable well below that and the cost is quadratic)."""
    if len(real) > max_rows:
        real = real[rng.choice(len(real), size=max_rows, replace=False)]
    if len(synthetic) > max_rows:
        synthetic = synthetic[rng.choice(len(synthetic), size=max_rows, replace=False)]
    r_radius = nearest(real, real, k=k, exclude_self=True)[0][:, -1]
    s_radius = nearest(synthetic, synthetic, k=k, exclude_self=True)[0][:, -1]
    eps = 1e-6  # float32 distances between identical encoded rows are not exactly 0
    inside_real = np.zeros(len(synthetic), dtype=np.int64)   # number of real balls holding each fake
    covered = np.zeros(len(real), dtype=bool)                # real i has a fake inside its ball
    recalled = np.zeros(len(real), dtype=bool)               # real i inside some fake ball
    chunk = max(1, 8_000_000 // max(len(real), 1))
    r = real.astype(np.float32)
    r_sq = np.einsum("ij,ij->i", r, r)
    for start in range(0, len(synthetic), chunk):
        f = synthetic[start:start + chunk].astype(np.float32)
        d = np.sqrt(np.maximum(r_sq[None, :] - 2 * f @ r.T + np.einsum("ij,ij->i", f, f)[:, None], 0))
        in_ball = d <= r_radius[None, :] + eps
        inside_real[start:start + len(f)] = in_ball.sum(axis=1)
        covered |= in_ball.any(axis=0)
        recalled |= (d <= s_radius[start:start + len(f), None] + eps).any(axis=0)
    return PRDC(precision=float(np.mean(inside_real > 0)), recall=float(np.mean(recalled)),
                density=float(inside_real.sum() / (k * len(synthetic))), coverage=float(np.mean(covered)),
                n_real=len(real), n_synthetic=len(synthetic))


@dataclass(frozen=True, slots=True)
class Modes:
    real_share: np.ndarray
    synthetic_share: np.ndarray
    reached: np.ndarray

    @property
    def coverage(self) -> float:
        return float(np.mean(self.reached))

    @property
    def mass_distance(self) -> float:
        return float(0.5 * np.abs(self.real_share - self.synthetic_share).sum())


def modes(real: np.ndarray, synthetic: np.ndarray, *, rng: np.random.Generator, n_modes: int | None = None,
          fit_rows: int = 20_000) -> Modes:
    """Cluster the real train (the centres never leave this function) and compare how the
    real and synthetic rows spread over the clusters."""
    from sklearn.cluster import KMeans
    if n_modes is None:
        n_modes = int(np.clip(len(real) // 200, 2, 20))
    fit = real if len(real) <= fit_rows else real[rng.choice(len(real), size=fit_rows, replace=False)]
    km = KMeans(n_clusters=n_modes, n_init=3, random_state=int(rng.integers(2**31))).fit(fit)
    centres = km.cluster_centers_.astype(np.float32)
    r_lab = nearest(real, centres)[1][:, 0]
    s_lab = nearest(synthetic, centres)[1][:, 0]
    real_share = np.bincount(r_lab, minlength=n_modes) / len(real)
    syn_share = np.bincount(s_lab, minlength=n_modes) / max(len(synthetic), 1)
    keep = real_share > 0
    real_share, syn_share = real_share[keep], syn_share[keep]
    order = np.argsort(-real_share)
    real_share, syn_share = real_share[order], syn_share[order]
    return Modes(real_share=real_share, synthetic_share=syn_share,
                 reached=syn_share >= MODE_REACHED_SHARE * real_share)


def duplicate_rate(frame: pd.DataFrame, columns: list[Column]) -> float:
    if len(frame) == 0:
        return 0.0
    keys = row_keys(frame, columns)
    return float(1.0 - len(np.unique(keys)) / len(keys))
