"""DP rank correlations between columns, and sampling calibrated to them.

Why: DP-SGD has a fixed signal budget. For a given ε the product √steps · batch / σ is
nearly constant whatever the batch size and step count (measured with our accountant:
about 2,200 at ε = 2.4 on 4,454 units), so on a few thousand units a network learns the
margins and little of the dependence between columns. A second-moment matrix of d
bounded scores is a far cheaper DP release: one Gaussian mechanism of d(d+1)/2 numbers
whose noise, divided by n, is about 0.02 per correlation at the same size. Sampling then
calibrates the model's rows to it, as it calibrates them to the DP margins.

The scores (one per numeric column, L − 1 per categorical column of L released labels):
- numeric: the normal score Φ⁻¹(F(x)) with F the column's DP histogram CDF (integers
  jittered inside their unit bin), 0 for a null;
- categorical: the label indicator standardised by the DP frequency p, (1[label] − p)/√(p(1−p)).
Both are fixed functions of one row given DP state (post-processing), so each row's
score vector v, clipped to ‖v‖ ≤ C = 1.2·√d, changes Σ vvᵀ by at most C² in Frobenius
norm (k·C² for a unit of k rows): the Gaussian mechanism on its upper triangle has that
L2 sensitivity. The correlation matrix is the noisy matrix over the DP row count,
projected onto correlation matrices (free post-processing).

Calibration of a generated chunk (Iman & Conover 1982, with one block kept fixed): the
categorical columns stay as generated; the numeric scores are regressed on the
categorical indicators, the residuals are whitened and recoloured, and the numeric
values of each column are permuted so their ranks follow the new scores. Margins are
unchanged (a permutation within each column) and the chunk's score correlations move to
the DP ones; whatever the model learned beyond second moments of ranks is the starting
point that the linear map keeps as far as it can.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from synthkit.ledger import GaussianEvent, PrivacyLedger
from synthkit.transforms import CategoricalTransform, DataTransformer, NumericTransform, value_order

logger = logging.getLogger(__name__)

CLIP_FACTOR = 1.2  # C = 1.2·√d: a row of d unit-variance scores has ‖v‖ ≈ √d
MIN_EIGENVALUE = 1e-3
MIN_FREQUENCY = 0.01  # labels rarer than this (by DP frequency) get no indicator
MIN_VARIANCE = 0.25


class DependenceCalibrator:
    """DP correlation matrix of the columns' scores (`fit`) and the chunk calibration
    (`apply`). Learned state: `correlation_` (DP) and the score layout (from DP state)."""

    def __init__(self, transformer: DataTransformer) -> None:
        self.transformer = transformer
        self.correlation_: np.ndarray | None = None

    # ------------------------------------------------------------- scores
    def layout(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """(column, 'categorical' | 'numeric', label indices with an indicator), in
        transformer order; from DP state only. A categorical column gets an indicator for
        every label of DP frequency >= MIN_FREQUENCY except the most frequent (the
        reference): a rare label's standardised indicator is mostly noise and clipping."""
        out: list[tuple[str, str, tuple[int, ...]]] = []
        for name, t in self.transformer.transforms.items():
            if isinstance(t, CategoricalTransform):
                freq = _frequencies(t)
                kept = [int(i) for i in np.flatnonzero(freq >= MIN_FREQUENCY) if i != int(np.argmax(freq))]
                if kept:
                    out.append((name, "categorical", tuple(kept)))
            elif t.hist_ is not None and float(np.sum(t.hist_)) > 0:
                out.append((name, "numeric", (0,)))
        return out

    @property
    def dimension(self) -> int:
        return sum(len(labels) for _, _, labels in self.layout())

    def values(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The layout's columns of `frame` as label indices (categorical) or floats."""
        out = {}
        for name, kind, _ in self.layout():
            t = self.transformer.transforms[name]
            out[name] = t.codes(frame[name]) if kind == "categorical" else t.floats(frame[name])
        return out

    def scores(self, frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """[n, d] scores of `frame`'s rows (see the module docstring)."""
        return self._scores(self.values(frame), {}, rng)

    def _scores(self, values: dict[str, np.ndarray], orders: dict[str, np.ndarray],
                rng: np.random.Generator, dtype: type = np.float64) -> np.ndarray:
        """Scores from per-column values; `orders` holds, for numeric columns calibrated to
        their DP margin (DataTransformer.decode), the present rows in order of value. Such
        a column's i-th of m values is the DP quantile at (i + ½)/m, whose DP CDF is that
        level exactly, so its normal score needs no CDF. Integers keep the CDF path: their
        ties are broken by the same jitter as in `fit`. A categorical column's block is a
        gather from a table with one row per label (its standardised indicators)."""
        out = np.empty((_n_rows(values), self.dimension), dtype=dtype)
        at = 0
        for name, kind, labels in self.layout():
            t = self.transformer.transforms[name]
            if kind == "categorical":
                index = np.asarray(labels)
                freq = _frequencies(t)
                p = np.clip(freq[index], MIN_FREQUENCY, 1 - MIN_FREQUENCY)
                onehot = np.arange(len(freq))[:, None] == index[None, :]
                table = ((onehot - p[None, :]) / np.sqrt(p * (1 - p))[None, :]).astype(dtype)
                out[:, at:at + len(index)] = table[values[name]]
                at += len(index)
                continue
            if name in orders and t.column.kind != "integer":
                out[:, at] = 0.0
                out[orders[name], at] = _rank_scores(len(orders[name]))
            else:
                out[:, at] = _normal_scores(t, values[name], rng)
            at += 1
        return out

    # ------------------------------------------------------------- fit (DP)
    @property
    def clip(self) -> float:
        """C: every row's score vector is scaled to norm <= C before it is summed."""
        return CLIP_FACTOR * float(np.sqrt(max(self.dimension, 1)))

    def moments(self, frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """Σ over rows of vvᵀ with each v clipped to norm C (before any noise): one row moves
        it by at most C² in Frobenius norm."""
        v = self.scores(frame, rng)
        norms = np.linalg.norm(v, axis=1)
        v = v * np.minimum(1.0, self.clip / np.maximum(norms, 1e-12))[:, None]
        return v.T @ v

    def fit(self, frame: pd.DataFrame, *, noise_multiplier: float, k: int, n_rows_dp: float,
            ledger: PrivacyLedger, rng: np.random.Generator) -> DependenceCalibrator:
        """Release the score correlation matrix with the Gaussian mechanism: noise
        N(0, (noise_multiplier·k·C²)²) on each entry of the upper triangle of Σ vvᵀ."""
        d = self.dimension
        sensitivity = float(k) * self.clip**2
        ledger.charge(GaussianEvent(name="dependence", sigma=noise_multiplier * sensitivity, sensitivity=sensitivity))
        if d < 2:
            self.correlation_ = None
            return self
        moments = self.moments(frame, rng)
        if ledger.private:
            noise = np.triu(rng.normal(0.0, noise_multiplier * sensitivity, size=(d, d)))
            moments = moments + noise + np.triu(noise, 1).T
        # normalised by the (noisy) diagonal, which undoes most of the shrinkage clipping
        # causes; the scores are standardised by DP state (variance about 1, rare labels
        # left out), so a diagonal below MIN_VARIANCE can only be noise and is floored
        second = moments / max(n_rows_dp, 1.0)
        diag = np.sqrt(np.clip(np.diag(second), MIN_VARIANCE, None))
        self.correlation_ = nearest_correlation(second / diag[:, None] / diag[None, :])
        logger.info("dependence released: %d scores, clip %.2f", d, self.clip)
        return self

    # ------------------------------------------------------------- sampling (post-processing)
    def apply(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Permute each numeric column of the chunk so its score correlations with the other
        columns follow `correlation_` (categorical columns are kept as generated)."""
        perms = self.permutations(self.values(frame), {}, rng)
        if not perms:
            return frame
        out = frame.copy()
        for name, perm in perms.items():
            out[name] = pd.Series(frame[name].array.take(perm), index=frame.index)
        return out

    def apply_values(self, values: dict[str, np.ndarray], orders: dict[str, np.ndarray],
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`apply` on the output of DataTransformer.decode (sampling's fast path)."""
        for name, perm in self.permutations(values, orders, rng).items():
            values[name] = values[name][perm]
        return values

    def permutations(self, values: dict[str, np.ndarray], orders: dict[str, np.ndarray],
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Per numeric column, the permutation p (new column = column[p]; nulls stay put)
        that gives the chunk the released score correlations."""
        if self.correlation_ is None or _n_rows(values) < self.dimension + 3:
            return {}
        layout = self.layout()
        s = self._scores(values, orders, rng, np.float32)  # float32: half the memory traffic; moments only
        is_cat = np.concatenate([np.full(len(labels), kind == "categorical") for _, kind, labels in layout])
        # the chunk's moments from one Gram matrix of the centred scores (the map below is
        # linear in them, so the chunk is read twice: here and to compute the new scores).
        # Centred before the float32 product: a label the chunk never shows is then a
        # column of exact zeros (the float64 mean of equal float32 values is exact).
        mean = s.mean(axis=0, dtype=np.float64)
        s -= mean.astype(s.dtype)
        cov = (s.T @ s).astype(np.float64) / len(s)
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        ok = sd > 1e-9  # a label the chunk never shows has no rank to move
        if not ok[~is_cat].any():
            return {}
        own = cov[np.ix_(ok, ok)] / sd[ok][:, None] / sd[ok][None, :]
        target = nearest_correlation(self.correlation_[np.ix_(ok, ok)])
        cat, num = is_cat[ok], ~is_cat[ok]
        try:
            m = _recolour_map(own, target, cat, num)
        except np.linalg.LinAlgError:
            logger.warning("dependence calibration skipped for a chunk: singular score matrix")
            return {}
        full = np.zeros((len(ok), m.shape[1]))
        full[ok] = m / sd[ok][:, None]  # the map acts on standardised scores (s − mean)/sd
        new = np.ascontiguousarray((s @ full.astype(s.dtype)).T)
        new_of = dict(zip(np.flatnonzero(ok & ~is_cat), new))  # score index → its new scores
        numeric = [name for name, kind, _ in layout if kind == "numeric"]
        perms = {}
        for name, index in zip(numeric, np.flatnonzero(~is_cat)):
            if index in new_of:
                perm = _permutation(values[name], orders.get(name), new_of[index])
                if perm is not None:
                    perms[name] = perm
        return perms

    # ------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"layout": [list(x) for x in self.layout()],
                "correlation": None if self.correlation_ is None else self.correlation_.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        corr = state.get("correlation")
        self.correlation_ = None if corr is None else np.asarray(corr, dtype=float)
        if self.correlation_ is not None and self.correlation_.shape != (self.dimension, self.dimension):
            from synthkit.errors import ArtifactError
            raise ArtifactError("the bundle's dependence state does not fit its transformer (corrupt bundle)")


def _n_rows(values: dict[str, np.ndarray]) -> int:
    return len(next(iter(values.values()))) if values else 0


def _frequencies(t: CategoricalTransform) -> np.ndarray:
    counts = np.clip(np.asarray(t.counts_, dtype=float), 0, None)
    return counts / counts.sum() if counts.sum() > 0 else np.full(len(counts), 1 / len(counts))


def _normal_scores(t: NumericTransform, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    present = ~np.isnan(x)
    lo, hi = t.bounds_
    xc = np.clip(np.where(present, x, lo), lo, hi)
    if t.column.kind == "integer":
        xc = np.round(xc) + rng.uniform(-0.5, 0.5, size=len(xc))
    return np.where(present, ndtri(np.clip(t.cdf(xc), 1e-4, 1 - 1e-4)), 0.0)


@functools.lru_cache(maxsize=4)
def _rank_scores(m: int) -> np.ndarray:
    """Normal scores of the levels (i + ½)/m (clipped as `_normal_scores` clips)."""
    out = ndtri(np.clip((np.arange(m) + 0.5) / m, 1e-4, 1 - 1e-4))
    out.setflags(write=False)
    return out


def nearest_correlation(m: np.ndarray) -> np.ndarray:
    """A symmetric matrix → a correlation matrix: unit diagonal scaling, eigenvalues
    clipped at MIN_EIGENVALUE, rescaled to a unit diagonal (post-processing)."""
    m = (m + m.T) / 2
    diag = np.sqrt(np.clip(np.diag(m), 1e-6, None))
    r = m / diag[:, None] / diag[None, :]
    w, q = np.linalg.eigh(r)
    r = (q * np.clip(w, MIN_EIGENVALUE, None)) @ q.T
    diag = np.sqrt(np.diag(r))
    r = r / diag[:, None] / diag[None, :]
    np.fill_diagonal(r, 1.0)
    return r


def _recolour_map(sigma: np.ndarray, target: np.ndarray, cat: np.ndarray, num: np.ndarray) -> np.ndarray:
    """M such that S·M are the new numeric scores of standardised scores S (correlation
    `sigma`): the categorical block c is fixed, the numeric block n is free.
    S_n' = S_c·B_t + E·K with B_t = Σ_cc⁻¹ R_cn (so Cov(S_c, S_n') = R_cn), E = S_n − S_c·B_own
    the chunk's own residual on S_c, and K = L_own⁻ᵀ·L_targetᵀ whitening E and recolouring
    it to R_nn − B_tᵀ Σ_cc B_t (L: Cholesky factors of the residual covariances). Linear in S,
    so M = [B_t − B_own·K ; K] stacked over (c, n)."""
    k = int(num.sum())
    if cat.any():
        scc = sigma[np.ix_(cat, cat)] + 1e-6 * np.eye(int(cat.sum()))
        b_own = np.linalg.solve(scc, sigma[np.ix_(cat, num)])
        b_target = np.linalg.solve(scc, target[np.ix_(cat, num)])
        res_own = sigma[np.ix_(num, num)] - b_own.T @ sigma[np.ix_(cat, num)]
        res_target = target[np.ix_(num, num)] - b_target.T @ scc @ b_target
    else:
        res_own, res_target = sigma[np.ix_(num, num)], target[np.ix_(num, num)]
    w, q = np.linalg.eigh((res_target + res_target.T) / 2)
    res_target = (q * np.clip(w, MIN_EIGENVALUE, None)) @ q.T
    l_own = np.linalg.cholesky((res_own + res_own.T) / 2 + 1e-6 * np.eye(k))
    l_target = np.linalg.cholesky(res_target)
    kmap = np.linalg.solve(l_own.T, l_target.T)  # L_own⁻ᵀ·L_targetᵀ
    out = np.zeros((len(sigma), k))
    out[num] = kmap
    if cat.any():
        out[cat] = b_target - b_own @ kmap
    return out


def _permutation(x: np.ndarray, order: np.ndarray | None, score: np.ndarray) -> np.ndarray | None:
    """p with x[p] holding x's present values re-assigned so their ranks follow `score`
    (nulls stay); `order`: the present rows in order of value, when already known."""
    present = np.flatnonzero(~np.isnan(x))
    if len(present) < 2:
        return None
    if order is None:
        order = present[np.argsort(x[present], kind="stable")]
    perm = np.arange(len(x))
    perm[present[value_order(score[present])]] = order
    return perm
