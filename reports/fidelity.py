"""Fidelity: does the synthetic data look like the real data?

- quality: sdmetrics' Quality Report properties, computed with the same sdmetrics metrics
  the report uses — Column Shapes (KSComplement for numbers and dates, TVComplement for
  discrete columns) and Column Pair Trends over ALL pairs (CorrelationSimilarity for two
  numeric columns; ContingencySimilarity otherwise, numbers cut at the real train's
  deciles). sdmetrics 0.32's QualityReport leaves numeric–numeric pairs out (NaN), which
  would hide exactly the correlations a generator most often gets wrong, so the pairs are
  scored one by one here; the overall score is the mean of the two properties, as in
  sdmetrics.
- detection: a gradient-boosted classifier tries to tell real train rows from synthetic
  rows; cross-validated ROC AUC (0.5 = indistinguishable, 1 = trivially told apart).
- ML utility: train on synthetic, test on the real holdout (TSTR) beside train on real
  train, test on the same holdout (TRTR); ROC AUC for a binary target, macro F1 for a
  multi-class one, R² for a numeric one; once per declared target.
- association signs: the share of strong real associations (|Spearman/phi| >= 0.2 between
  features of two columns) whose direction the synthetic data keeps.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reports.encoding import NULL_TOKEN, is_numeric, ordinal
from synthkit.schema import Column

logger = logging.getLogger(__name__)

QUALITY_MAX_ROWS = 50_000
DETECTION_MAX_ROWS = 10_000


def _sample(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    return frame.iloc[np.sort(rng.choice(len(frame), size=n, replace=False))].reset_index(drop=True)


def column_shape(real: pd.Series, synthetic: pd.Series, *, numeric: bool) -> float | None:
    """sdmetrics KSComplement (numeric) or TVComplement (discrete) of one column."""
    from sdmetrics.single_column import KSComplement, TVComplement
    r, s = real.dropna(), synthetic.dropna()
    if numeric:
        if len(r) == 0 or len(s) == 0:
            return None
        with warnings.catch_warnings():
            # KSComplement reads only the KS statistic; scipy's note that the exact p-value
            # (unused) fell back to the asymptotic one is noise on the user's terminal
            warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful",
                                    category=RuntimeWarning)
            score = KSComplement.compute(r.astype(float), s.astype(float))
    else:
        score = TVComplement.compute(real.fillna("\x00null").astype(str), synthetic.fillna("\x00null").astype(str))
    return float(score) if np.isfinite(score) else None


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column]) -> dict[str, float | None]:
    return {c.name: column_shape(real[c.name], synthetic[c.name], numeric=is_numeric(c)) for c in columns}


def decile_bins(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numbers cut into 10 bins at the real data's deciles (labels only; the edges stay here)."""
    rb, sb = real.copy(), synthetic.copy()
    for col in columns:
        if is_numeric(col):
            x = real[col.name].to_numpy(dtype=float)
            ok = x[np.isfinite(x)]
            edges = np.unique(np.quantile(ok, np.linspace(0, 1, 11))) if len(ok) else np.array([0.0, 1.0])
            edges[0], edges[-1] = -np.inf, np.inf
            if len(edges) < 2:
                edges = np.array([-np.inf, np.inf])
            for frame, out in ((real, rb), (synthetic, sb)):
                v = frame[col.name].to_numpy(dtype=float)
                codes = np.searchsorted(edges[1:-1], v, side="right").astype(object)
                codes[~np.isfinite(v)] = "null"
                out[col.name] = pd.Series(codes, index=frame.index).astype(str)
        else:
            rb[col.name] = real[col.name].fillna("\x00null").astype(str)
            sb[col.name] = synthetic[col.name].fillna("\x00null").astype(str)
    return rb, sb


def pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column]) -> dict[tuple[str, str], float | None]:
    from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
    from sdmetrics.errors import ConstantInputError
    rb, sb = decile_bins(real, synthetic, columns)
    out: dict[tuple[str, str], float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, a in enumerate(columns):
            for b in columns[i + 1:]:
                key = (a.name, b.name)
                if is_numeric(a) and is_numeric(b):
                    pr, ps = real[[a.name, b.name]].dropna().astype(float), synthetic[[a.name, b.name]].dropna().astype(float)
                    if len(pr) < 3 or len(ps) < 3 or pr.std().min() == 0:
                        out[key] = None
                        continue
                    if ps.std().min() == 0:  # a constant synthetic column has no correlation at all
                        out[key] = 0.0
                        continue
                    try:
                        score = CorrelationSimilarity.compute(pr, ps)
                    except ConstantInputError:  # e.g. values near 1e308, whose spread overflows
                        out[key] = 0.0
                        continue
                else:
                    score = ContingencySimilarity.compute(rb[[a.name, b.name]], sb[[a.name, b.name]])
                out[key] = float(score) if np.isfinite(score) else None
    return out


def _mean(values: Any) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


@dataclass(frozen=True, slots=True)
class Quality:
    shapes: dict[str, float | None]
    pairs: dict[tuple[str, str], float | None]

    @property
    def shapes_score(self) -> float | None:
        return _mean(self.shapes.values())

    @property
    def pairs_score(self) -> float | None:
        return _mean(self.pairs.values())

    @property
    def overall(self) -> float | None:
        return _mean([self.shapes_score, self.pairs_score])


def quality(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column], *,
            rng: np.random.Generator) -> Quality:
    r, s = _sample(real, QUALITY_MAX_ROWS, rng), _sample(synthetic, QUALITY_MAX_ROWS, rng)
    return Quality(shapes=column_shapes(r, s, columns), pairs=pair_trends(r, s, columns))


# ------------------------------------------------------------------ detection
def detection_auc(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column], *,
                  rng: np.random.Generator, folds: int = 3) -> tuple[float, tuple[float, float], int]:
    """Cross-validated ROC AUC of a classifier separating real train from synthetic rows
    (balanced samples). Returns (mean AUC, (min, max) over folds, rows used per side)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    n = min(len(real), len(synthetic), DETECTION_MAX_ROWS)
    r, s = _sample(real, n, rng), _sample(synthetic, n, rng)
    both = pd.concat([r, s], ignore_index=True)
    X, is_cat = ordinal(both, columns, reference=r)
    y = np.r_[np.zeros(len(r)), np.ones(len(s))]
    clf = HistGradientBoostingClassifier(max_iter=100, categorical_features=is_cat if is_cat.any() else None,
                                         random_state=int(rng.integers(2**31)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(rng.integers(2**31)))
    scores = cross_val_score(clf, X, y, cv=cv, scoring="roc_auc")
    return float(np.mean(scores)), (float(np.min(scores)), float(np.max(scores))), n


# ------------------------------------------------------------------ ML utility
@dataclass(frozen=True, slots=True)
class Utility:
    target: str
    task: str           # "binary" | "multiclass" | "regression"
    score_name: str
    tstr: float | None
    trtr: float | None
    tstr_pred: np.ndarray  # predictions/scores on the holdout rows (internal; never reported)
    trtr_pred: np.ndarray
    holdout_y: np.ndarray
    holdout_rows: np.ndarray  # positions in the holdout frame of the scored rows
    note: str | None = None


def _task(col: Column, y: pd.Series) -> str:
    if is_numeric(col):
        return "regression"
    return "binary" if y.dropna().nunique() <= 2 else "multiclass"


def score(task: str, y_true: np.ndarray, pred: np.ndarray, labels: list[str] | None = None) -> float | None:
    """The utility score on (a subset of) the holdout; None when undefined there."""
    from sklearn.metrics import f1_score, r2_score, roc_auc_score
    if len(y_true) < 2:
        return None
    if task == "binary":
        if len(np.unique(y_true)) < 2:
            return None
        return float(roc_auc_score(y_true, pred))
    if task == "multiclass":
        return float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0))
    if np.var(y_true) == 0:
        return None
    return float(r2_score(y_true, pred))


def ml_utility(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column],
               target: Column, *, rng: np.random.Generator, max_rows: int = 50_000) -> Utility:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    features = [c for c in columns if c.name != target.name]
    task = _task(target, train[target.name])
    tr = _sample(train[train[target.name].notna()], max_rows, rng)
    sy = _sample(synthetic[synthetic[target.name].notna()], max_rows, rng)
    keep = holdout[target.name].notna().to_numpy()
    ho = holdout[keep].reset_index(drop=True)
    X_ho, is_cat = ordinal(ho, features, reference=tr)
    preds = {}
    positive = None
    if task != "regression":
        classes = sorted(map(str, tr[target.name].dropna().astype(str).unique()))
        positive = classes[-1]
    y_ho_raw = ho[target.name]
    for name, fit_frame in (("trtr", tr), ("tstr", sy)):
        X, _ = ordinal(fit_frame, features, reference=tr)
        y = fit_frame[target.name]
        kwargs = dict(max_iter=100, categorical_features=is_cat if is_cat.any() else None,
                      random_state=int(rng.integers(2**31)))
        if task == "regression":
            model = HistGradientBoostingRegressor(**kwargs).fit(X, y.to_numpy(dtype=float))
            preds[name] = model.predict(X_ho)
        else:
            ys = y.astype(str).to_numpy()
            if len(np.unique(ys)) < 2:  # a collapsed target: the model can only predict one class
                const = ys[0] if len(ys) else ""
                preds[name] = (np.full(len(ho), 1.0 if const == positive else 0.0) if task == "binary"
                               else np.full(len(ho), const, dtype=object))
                continue
            model = HistGradientBoostingClassifier(**kwargs).fit(X, ys)
            if task == "binary":
                cls = list(model.classes_)
                proba = model.predict_proba(X_ho)
                preds[name] = proba[:, cls.index(positive)] if positive in cls else np.zeros(len(ho))
            else:
                preds[name] = model.predict(X_ho)
    if task == "regression":
        y_ho = y_ho_raw.to_numpy(dtype=float)
        labels, score_name = None, "R²"
    elif task == "binary":
        y_ho = (y_ho_raw.astype(str) == positive).to_numpy().astype(int)
        labels, score_name = None, "ROC AUC"
    else:
        y_ho = y_ho_raw.astype(str).to_numpy()
        labels, score_name = sorted(set(y_ho)), "macro F1"
    return Utility(target=target.name, task=task, score_name=score_name,
                   tstr=score(task, y_ho, preds["tstr"], labels), trtr=score(task, y_ho, preds["trtr"], labels),
                   tstr_pred=preds["tstr"], trtr_pred=preds["trtr"], holdout_y=y_ho, holdout_rows=np.flatnonzero(keep))


# ------------------------------------------------------------------ association signs
ASSOCIATION_MAX_ROWS = 50_000
STRONG_ASSOCIATION = 0.2          # |r| on the real train data that counts as a strong association
KEPT_MIN_ABS = 0.05               # a synthetic |r| at or below this is "vanished", not kept
LEVEL_SHARE = (0.05, 0.95)        # categorical levels with a real share in this range become indicators
MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class AssociationSigns:
    kept_share: float | None      # None when the real data has no strong association
    n_features: int
    n_strong: int
    n_kept: int
    n_flipped: int                # the synthetic r has the opposite sign (|r_syn| > KEPT_MIN_ABS)
    n_vanished: int               # the synthetic r is about zero (|r_syn| <= KEPT_MIN_ABS)
    worst: list[dict[str, Any]]   # not-kept associations, one per column pair, worst first

    def details(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "n_strong": self.n_strong, "n_kept": self.n_kept,
                "n_flipped": self.n_flipped, "n_vanished": self.n_vanished,
                "strong_if_abs_r_at_least": STRONG_ASSOCIATION, "kept_if_same_sign_and_abs_r_above": KEPT_MIN_ABS,
                "level_share_range": list(LEVEL_SHARE), "worst": self.worst}


def _association_features(real: pd.DataFrame, synthetic: pd.DataFrame,
                          columns: list[Column]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real features, synthetic features, owning column index of each feature).

    Numbers become their ranks within each dataset (so Pearson r is Spearman's rho; a
    missing value gets the mean rank and adds nothing). A discrete column becomes one
    one-vs-rest indicator per level whose REAL share lies in LEVEL_SHARE (null counts as a
    level); a column with two levels becomes one indicator (of the later label in sort order,
    so True for a boolean), as the other level is its mirror.
    Levels are chosen on the real train data and applied to both datasets; they stay here."""
    real_f, syn_f, owner = [], [], []
    for j, col in enumerate(columns):
        if is_numeric(col):
            for frame, out in ((real, real_f), (synthetic, syn_f)):
                ranks = frame[col.name].astype(float).rank(method="average").to_numpy(dtype=float)
                ranks[~np.isfinite(ranks)] = np.nanmean(ranks) if np.isfinite(ranks).any() else 0.0
                out.append(ranks)
            owner.append(j)
            continue
        r_vals = real[col.name].fillna(NULL_TOKEN).astype(str)
        s_vals = synthetic[col.name].fillna(NULL_TOKEN).astype(str)
        shares = r_vals.value_counts(normalize=True).sort_index()
        levels = [lv for lv, share in shares.items() if LEVEL_SHARE[0] <= share <= LEVEL_SHARE[1]]
        if len(shares) == 2:
            levels = levels[-1:]  # the later label: True of False/True, yes of no/yes
        for lv in levels:
            real_f.append((r_vals == lv).to_numpy(dtype=float))
            syn_f.append((s_vals == lv).to_numpy(dtype=float))
            owner.append(j)
    if not owner:
        return np.zeros((len(real), 0)), np.zeros((len(synthetic), 0)), np.zeros(0, dtype=int)
    return np.column_stack(real_f), np.column_stack(syn_f), np.asarray(owner, dtype=int)


def _correlations(x: np.ndarray) -> np.ndarray:
    """Pearson r between the columns of x; a constant column correlates 0 with everything
    (a synthetic column that never varies keeps no association)."""
    if len(x) < 3:
        return np.zeros((x.shape[1], x.shape[1]))
    z = x - x.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", z, z))
    ok = norm > 0
    z[:, ok] /= norm[ok]
    z[:, ~ok] = 0.0
    return z.T @ z


def association_signs(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column], *,
                      rng: np.random.Generator) -> AssociationSigns:
    """Does the synthetic data keep the SIGN of every strong association of the real data?

    An analyst's first conclusions are directions ("older patients have more visits",
    "smokers are more often admitted"); a generator under DP noise can keep a pair-trend
    score high while reversing one of them. Every pair of features from different columns
    (see `_association_features`) with |r_real| >= STRONG_ASSOCIATION is a strong
    association; it is kept when the synthetic r has the same sign and |r_syn| >
    KEPT_MIN_ABS, flipped when it has the other sign, vanished otherwise. Rows are capped
    at ASSOCIATION_MAX_ROWS per side by a seeded subsample. The listed worst cases name
    columns and rounded correlations only, never a category label."""
    r, s = _sample(real, ASSOCIATION_MAX_ROWS, rng), _sample(synthetic, ASSOCIATION_MAX_ROWS, rng)
    fr, fs, owner = _association_features(r, s, columns)
    corr_r, corr_s = _correlations(fr), _correlations(fs)
    upper = np.triu(owner[:, None] != owner[None, :], k=1)
    i, j = np.nonzero(upper & (np.abs(corr_r) >= STRONG_ASSOCIATION))
    rr, rs = corr_r[i, j], corr_s[i, j]
    agree = np.sign(rr) * rs                      # > 0: same direction, < 0: reversed
    kept = agree > KEPT_MIN_ABS
    flipped = agree < -KEPT_MIN_ABS
    n_strong = len(i)
    worst: dict[tuple[str, str], dict[str, Any]] = {}
    for k in np.argsort(agree, kind="stable"):
        if kept[k] or len(worst) >= MAX_LISTED:
            break                                 # sorted: every later one is kept, or the list is full
        a, b = columns[owner[i[k]]].name, columns[owner[j[k]]].name
        key = (a, b)
        if key not in worst:
            worst[key] = {"columns": [a, b], "r_real": round(float(rr[k]), 2), "r_synthetic": round(float(rs[k]), 2),
                          "status": "flipped" if flipped[k] else "vanished"}
    return AssociationSigns(kept_share=float(kept.mean()) if n_strong else None, n_features=len(owner),
                            n_strong=n_strong, n_kept=int(kept.sum()), n_flipped=int(flipped.sum()),
                            n_vanished=int(n_strong - kept.sum() - flipped.sum()), worst=list(worst.values()))
