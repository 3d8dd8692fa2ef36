"""Privacy leakage: does the synthetic data reveal the people it was trained on?

Each attack compares what it achieves on TRAIN records (the model saw them) with what it
achieves on HOLDOUT records (it never did): generalisation helps both equally, leakage
helps only the first. Train is subsampled to the holdout's size wherever a share is
compared, so that 50% is the ideal whatever the split fraction.

- exact copies: synthetic rows identical to a train row (beside the rate of rows identical
  to a holdout row), and the excess of that rate over the TRAINING set's own leave-one-out
  copy rate (the share of train rows identical to another train row) or, when smaller, the
  holdout's copy rate: what a fresh draw from the population copies by coincidence (29% on
  a table of ten coarse columns, ~0 on a wide one); the smaller of two estimates, so
  neither an overlapping holdout nor duplicated training records excuse a copy;
- distance to closest record (DCR): the share of synthetic rows closer to train than to
  holdout (ideal 0.5; a memorising model approaches 1);
- membership inference: score each train/holdout record by minus its distance to the
  nearest synthetic row; ROC AUC of that score for "was in train" with a DeLong 95% CI
  (0.5: nothing to learn; 1: every member is exposed);
- singling out and attribute inference: the method of Giomi et al. 2023 (Anonymeter,
  PoPETs): the attack's success rate on train targets, the same attack on holdout
  targets (control) and a random-guess baseline, each with a Wilson 95% interval; the
  risk is (attack − control) / (1 − control), its error propagated from both rates.
  anonymeter's own package pins an old numpy, so the method is implemented here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from reports.encoding import Encoder, is_numeric, nearest, row_keys
from synthkit.schema import Column

Z95 = 1.959963984540054


# ------------------------------------------------------------------ copies and DCR
def exact_copy_rates(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                     columns: list[Column]) -> tuple[float, float]:
    """(share of synthetic rows equal to some train row, same for holdout)."""
    syn = row_keys(synthetic, columns)
    if len(syn) == 0:
        return 0.0, 0.0
    in_train = np.isin(syn, row_keys(train, columns))
    in_hold = np.isin(syn, row_keys(holdout, columns)) if len(holdout) else np.zeros(len(syn), bool)
    return float(in_train.mean()), float(in_hold.mean())


def holdout_copy_rate(train: pd.DataFrame, holdout: pd.DataFrame, columns: list[Column]) -> float | None:
    """Share of HOLDOUT rows identical to some train row (None without a holdout). Reported
    beside the base rate, never used as it: a holdout is whatever the user passed, and one
    that overlaps the training rows (or is a copy of them) would excuse every copy."""
    if len(holdout) == 0:
        return None
    return float(np.isin(row_keys(holdout, columns), row_keys(train, columns)).mean())


def duplicate_share(keys: np.ndarray) -> float:
    """Share of records whose key occurs at least twice among `keys`: the leave-one-out copy
    rate of the training records against the others (n - 1 of them). A fresh draw from the
    population equals one of n training records with probability sum_x p(x)(1 - (1 - p(x))^n),
    and a training record equals one of the other n - 1 with sum_x p(x)(1 - (1 - p(x))^(n-1)):
    the same coincidence rate, from the training set alone, so no holdout (and no overlap
    between a given holdout and train) changes it."""
    if len(keys) == 0:
        return 0.0
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return float((counts[inverse] >= 2).mean())


def train_copy_base_rate(train: pd.DataFrame, columns: list[Column]) -> float:
    """`duplicate_share` of the training rows, one of the two estimates `copy_base_rate`
    takes the smaller of (0 on a wide table without duplicated records)."""
    return duplicate_share(row_keys(train, columns))


def copy_base_rate(train_rate: float, holdout_rate: float | None) -> float:
    """The coincidence rate the synthetic copy rate is judged against: the smaller of the
    training records' leave-one-out copy rate and the holdout's copy rate, 0 without a
    holdout (every copy counts). Either estimate alone can be gamed: a holdout that overlaps
    train (or is train) sends the holdout rate to 1, and training records that occur twice
    (one person entered twice, on a wide table) send the leave-one-out rate up while a fresh
    draw would copy nothing (review R3: 15% doubled records, base 0.26, and a 20% verbatim
    copy passed). Neither attack moves the other estimate."""
    if holdout_rate is None:
        return 0.0
    return float(min(train_rate, holdout_rate))


def copy_excess(copy_rate: float, base_rate: float, *, n_synthetic: int,
                n_train: int) -> tuple[float, tuple[float, float]]:
    """(synthetic copy rate minus the training set's own leave-one-out copy rate b, a 95%
    interval). The gate reads the VALUE: a model that memorises a share s of rare rows
    raises it by about s(1 - b), and a lower interval end would hide s up to the sampling
    error (±0.07 on a coarse 200-row reference), so the interval is information only, the
    binomial error b(1-b)(1/n_train + 1/n_synthetic) of the two shares."""
    excess = float(copy_rate - base_rate)
    if n_train < 2 or n_synthetic < 1:
        return excess, (excess, excess)
    half = Z95 * math.sqrt(base_rate * (1 - base_rate) * (1 / n_train + 1 / n_synthetic))
    return excess, (excess - half, excess + half)


@dataclass(frozen=True, slots=True)
class DCR:
    train_closer_share: float
    raw_share: float
    median_train: float
    median_holdout: float
    distance_ratio: float  # median DCR to train / median DCR to holdout (1 ideal, → 0 memorised)
    train_distances: np.ndarray = field(repr=False)
    holdout_distances: np.ndarray = field(repr=False)


def dcr(train_x: np.ndarray, holdout_x: np.ndarray, synthetic_x: np.ndarray, *,
        train_sample: np.ndarray | None = None) -> DCR:
    """Share of synthetic rows closer to the (whole) train than to the holdout, put on the
    equal-size scale: with n_t train and n_h holdout rows, a synthetic row drawn from the
    population is closer to train with probability n_t/(n_t+n_h) (the nearest of n_t+n_h
    exchangeable points); dividing the observed odds by n_t/n_h gives the share an
    equal-size split would show, so 0.5 is ideal and a copy of train still scores 1.
    Ties (a synthetic row equally close to both, common with categorical data) count half.
    The distance ratio uses `train_sample` (train subsampled to the holdout's size), so
    both medians are over sets of the same size."""
    d_train = nearest(synthetic_x, train_x)[0][:, 0]
    d_hold = nearest(synthetic_x, holdout_x)[0][:, 0]
    tie = np.abs(d_train - d_hold) <= 1e-5
    raw = float(np.mean(np.where(tie, 0.5, (d_train < d_hold).astype(float))))
    size_odds = len(train_x) / len(holdout_x)
    if raw >= 1.0:
        share = 1.0
    else:
        odds = raw / (1.0 - raw) / size_odds
        share = odds / (1.0 + odds)
    d_sub = nearest(synthetic_x, train_sample)[0][:, 0] if train_sample is not None else d_train
    med_t, med_h = float(np.median(d_sub)), float(np.median(d_hold))
    ratio = med_t / med_h if med_h > 0 else (1.0 if med_t == 0 else math.inf)
    return DCR(train_closer_share=share, raw_share=raw, median_train=med_t, median_holdout=med_h,
               distance_ratio=ratio, train_distances=d_sub, holdout_distances=d_hold)


# ------------------------------------------------------------------ membership inference
def auc_delong(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """ROC AUC (ties count half) and its DeLong standard error, in O(n log n) with ranks."""
    m, n = len(pos), len(neg)
    allv = np.concatenate([pos, neg])
    ranks = stats.rankdata(allv)
    r_pos = stats.rankdata(pos)
    r_neg = stats.rankdata(neg)
    auc = (ranks[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (ranks[:m] - r_pos) / n          # per positive: share of negatives below it
    v01 = 1.0 - (ranks[m:] - r_neg) / m    # per negative: share of positives above it
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n
    return float(auc), float(math.sqrt(max(var, 0.0)))


def roc_points(pos: np.ndarray, neg: np.ndarray, n_points: int = 41) -> dict[str, list[float]]:
    """A coarse ROC curve (aggregates: rates at fixed thresholds) for the report's chart."""
    allv = np.concatenate([pos, neg])
    thresholds = np.unique(np.quantile(allv, np.linspace(0, 1, n_points)))[::-1]
    fpr = [0.0] + [float(np.mean(neg >= t)) for t in thresholds] + [1.0]
    tpr = [0.0] + [float(np.mean(pos >= t)) for t in thresholds] + [1.0]
    return {"fpr": fpr, "tpr": tpr}


@dataclass(frozen=True, slots=True)
class MIA:
    auc: float
    ci: tuple[float, float]
    n_members: int
    n_non_members: int
    roc: dict[str, list[float]]


def membership_inference(members_x: np.ndarray, non_members_x: np.ndarray, synthetic_x: np.ndarray) -> MIA:
    score_in = -nearest(members_x, synthetic_x)[0][:, 0]
    score_out = -nearest(non_members_x, synthetic_x)[0][:, 0]
    auc, se = auc_delong(score_in, score_out)
    ci = (max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se))
    return MIA(auc=auc, ci=ci, n_members=len(score_in), n_non_members=len(score_out),
               roc=roc_points(score_in, score_out))


# ------------------------------------------------------------------ Anonymeter-style risks
@dataclass(frozen=True, slots=True)
class Rate:
    value: float      # Wilson centre
    error: float      # Wilson half-width at 95%
    n_success: int
    n_total: int

    @property
    def ci(self) -> tuple[float, float]:
        return (max(0.0, self.value - self.error), min(1.0, self.value + self.error))


def wilson(n_success: int, n_total: int) -> Rate:
    if n_total == 0:
        return Rate(value=0.0, error=1.0, n_success=0, n_total=0)
    p = n_success / n_total
    z2 = Z95**2
    centre = (p + z2 / (2 * n_total)) / (1 + z2 / n_total)
    half = Z95 / (1 + z2 / n_total) * math.sqrt(p * (1 - p) / n_total + z2 / (4 * n_total**2))
    return Rate(value=centre, error=half, n_success=n_success, n_total=n_total)


@dataclass(frozen=True, slots=True)
class Risk:
    attack: Rate
    control: Rate
    baseline: Rate
    value: float
    ci: tuple[float, float]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def attack_beats_baseline(self) -> bool:
        return self.attack.value - self.attack.error > self.baseline.value + self.baseline.error

    def summary(self) -> dict[str, Any]:
        out = {"attack_rate": self.attack.value, "attack_ci": list(self.attack.ci),
               "control_rate": self.control.value, "control_ci": list(self.control.ci),
               "baseline_rate": self.baseline.value, "baseline_ci": list(self.baseline.ci),
               "n_attacks": self.attack.n_total, "attack_beats_baseline": self.attack_beats_baseline}
        out.update(self.details)
        return out


def residual_risk(attack: Rate, control: Rate, baseline: Rate, details: dict[str, Any] | None = None) -> Risk:
    """(attack − control)/(1 − control) with first-order error propagation, clipped to [0, 1]."""
    denom = max(1.0 - control.value, 1e-12)
    value = (attack.value - control.value) / denom
    d_attack = 1.0 / denom
    d_control = abs((attack.value - 1.0) / denom**2)
    err = math.sqrt((attack.error * d_attack) ** 2 + (control.error * d_control) ** 2)
    clip = lambda v: float(min(1.0, max(0.0, v)))  # noqa: E731
    return Risk(attack=attack, control=control, baseline=baseline, value=clip(value),
                ci=(clip(value - err), clip(value + err)), details=details or {})


# singling out --------------------------------------------------------------------------
Predicate = list[tuple[str, str, Any]]  # (column, op, value) with op in "==", "<=", ">="


def _arrays(frame: pd.DataFrame, columns: list[Column]) -> dict[str, np.ndarray]:
    return {c.name: (frame[c.name].to_numpy(dtype=float) if is_numeric(c)
                     else frame[c.name].fillna("\x00null").astype(str).to_numpy()) for c in columns}


def _matches(arrays: dict[str, np.ndarray], n_rows: int, predicate: Predicate) -> np.ndarray:
    mask = np.ones(n_rows, dtype=bool)
    for col, op, value in predicate:
        a = arrays[col]
        if op == "==":
            if a.dtype.kind == "f":
                mask &= (np.isnan(a) if value is None or (isinstance(value, float) and np.isnan(value))
                         else a == float(value))
            else:
                mask &= a == ("\x00null" if value is None else str(value))
        elif op == "<=":
            mask &= a <= value
        else:
            mask &= a >= value
        if not mask.any():
            break
    return mask


def _singles_out(frame: pd.DataFrame, columns: list[Column], predicates: list[Predicate]) -> int:
    arrays = _arrays(frame, columns)
    return sum(int(_matches(arrays, len(frame), p).sum() == 1) for p in predicates)


def _multivariate_predicates(synthetic: pd.DataFrame, columns: list[Column], n: int, n_cols: int,
                             rng: np.random.Generator) -> list[Predicate]:
    """Anonymeter's multivariate queries: a synthetic record's values on a few random
    columns; a number becomes `<= v` below the synthetic median and `>= v` above it (the
    tail side, where a value is most identifying); a category becomes `== v`."""
    medians = {c.name: float(np.nanmedian(synthetic[c.name].to_numpy(dtype=float)))
               for c in columns if is_numeric(c) and synthetic[c.name].notna().any()}
    out: list[Predicate] = []
    rows = rng.integers(0, len(synthetic), size=n)
    for i in rows:
        chosen = rng.choice(len(columns), size=min(n_cols, len(columns)), replace=False)
        pred: Predicate = []
        for j in chosen:
            col = columns[j]
            v = synthetic[col.name].iat[int(i)]
            if is_numeric(col):
                if v is None or not np.isfinite(v) or col.name not in medians:
                    continue
                pred.append((col.name, "<=" if v <= medians[col.name] else ">=", float(v)))
            else:
                pred.append((col.name, "==", v))
        if pred:
            out.append(pred)
    return out


def _random_predicates(synthetic: pd.DataFrame, columns: list[Column], n: int, n_cols: int,
                       rng: np.random.Generator) -> list[Predicate]:
    """The baseline: the same shape of query with values drawn at random (uniform within
    the synthetic range, or a random synthetic category) — no information from any record."""
    out: list[Predicate] = []
    for _ in range(n):
        chosen = rng.choice(len(columns), size=min(n_cols, len(columns)), replace=False)
        pred: Predicate = []
        for j in chosen:
            col = columns[j]
            s = synthetic[col.name].dropna()
            if len(s) == 0:
                continue
            if is_numeric(col):
                x = _finite(s)
                if len(x) == 0:
                    continue
                v = _uniform_between(rng, float(x.min()), float(x.max()))
                med = float(np.median(x))
                pred.append((col.name, "<=" if v <= med else ">=", v))
            else:
                uniq = s.unique()
                pred.append((col.name, "==", uniq[int(rng.integers(len(uniq)))]))
        if pred:
            out.append(pred)
    return out


def _univariate_predicates(synthetic: pd.DataFrame, columns: list[Column], n: int,
                           rng: np.random.Generator) -> list[Predicate]:
    """Anonymeter's univariate queries: a value that occurs once in the synthetic data
    (`== v`), and for numbers the synthetic extremes (`<= min`, `>= max`)."""
    pool: list[Predicate] = []
    for col in columns:
        s = synthetic[col.name].dropna()
        if len(s) == 0:
            continue
        counts = s.value_counts()
        rare = counts.index[counts.to_numpy() == 1]
        if len(rare) > n:
            rare = rare[rng.choice(len(rare), size=n, replace=False)]
        pool.extend([[(col.name, "==", float(v) if is_numeric(col) else v)] for v in rare])
        if is_numeric(col):
            x = _finite(s)
            if len(x):
                pool.append([(col.name, "<=", float(x.min()))])
                pool.append([(col.name, ">=", float(x.max()))])
    if len(pool) > n:
        pool = [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
    return pool


def _finite(s: pd.Series) -> np.ndarray:
    """The finite values of a numeric column: ±inf has no place on a range to draw from
    (`synthkit evaluate` refuses files holding it; a library caller may pass it)."""
    x = s.to_numpy(dtype=float)
    return x[np.isfinite(x)]


def _uniform_between(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A uniform draw in [lo, hi] that stays finite for any finite ends (hi − lo overflows
    beyond ±9e307, and numpy's uniform then refuses the range)."""
    if not hi > lo:
        return lo
    u = float(rng.random())
    return min(max(lo * (1.0 - u) + hi * u, lo), hi)


def _random_univariate(synthetic: pd.DataFrame, columns: list[Column], n: int,
                       rng: np.random.Generator) -> list[Predicate]:
    out: list[Predicate] = []
    for _ in range(n):
        col = columns[int(rng.integers(len(columns)))]
        s = synthetic[col.name].dropna()
        if len(s) == 0:
            continue
        if is_numeric(col):
            x = _finite(s)
            if len(x) == 0:
                continue
            v = _uniform_between(rng, float(x.min()), float(x.max()))
            if col.kind == "integer":
                v = float(np.round(v))
            out.append([(col.name, "==", v)])
        else:
            uniq = s.unique()
            out.append([(col.name, "==", uniq[int(rng.integers(len(uniq)))])])
    return out


def singling_out(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column], *,
                 rng: np.random.Generator, n_attacks: int = 500, n_cols: int = 3) -> Risk:
    """Both of Anonymeter's singling-out attacks; the riskier one is returned (the other's
    rates are in its details). `train` and `holdout` must have equal sizes (the caller
    subsamples), so a predicate is equally likely to single out one record in either by
    chance."""
    risks = {}
    for mode, preds, base in (
        ("univariate", _univariate_predicates(synthetic, columns, n_attacks, rng),
         _random_univariate(synthetic, columns, n_attacks, rng)),
        ("multivariate", _multivariate_predicates(synthetic, columns, n_attacks, n_cols, rng),
         _random_predicates(synthetic, columns, n_attacks, n_cols, rng)),
    ):
        if not preds:
            continue
        attack = wilson(_singles_out(train, columns, preds), len(preds))
        control = wilson(_singles_out(holdout, columns, preds), len(preds))
        baseline = wilson(_singles_out(train, columns, base), len(base))
        risks[mode] = residual_risk(attack, control, baseline, {"mode": mode})
    worst = max(risks, key=lambda k: (risks[k].value, risks[k].attack.value))
    other = {k: {kk: vv for kk, vv in v.summary().items()} for k, v in risks.items() if k != worst}
    r = risks[worst]
    return Risk(attack=r.attack, control=r.control, baseline=r.baseline, value=r.value, ci=r.ci,
                details={"mode": worst, "n_columns_multivariate": n_cols, "other_modes": other})


# attribute inference -------------------------------------------------------------------
def _guess_ok(col: Column, guess: np.ndarray, truth: np.ndarray, tolerance: float = 0.05) -> np.ndarray:
    if is_numeric(col):
        g, t = guess.astype(float), truth.astype(float)
        return (np.abs(g - t) <= tolerance * np.abs(t)) | (g == t)
    g = np.where(pd.isna(guess), "\x00null", guess.astype(object)).astype(str)
    t = np.where(pd.isna(truth), "\x00null", truth.astype(object)).astype(str)
    return g == t


def attribute_inference(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, encoder: Encoder,
                        secret: Column, aux: list[Column], *, rng: np.random.Generator,
                        n_attacks: int = 1000) -> Risk:
    """The attacker knows a target's `aux` columns, finds the closest synthetic record on
    them, and guesses its `secret`; a number is guessed right within 5% (Anonymeter's
    default tolerance)."""
    aux_names = [c.name for c in aux]
    syn_aux = encoder.transform(synthetic, aux_names)
    syn_secret = synthetic[secret.name].to_numpy()

    def rate(targets: pd.DataFrame) -> Rate:
        t = targets if len(targets) <= n_attacks else targets.iloc[rng.choice(len(targets), n_attacks, replace=False)]
        idx = nearest(encoder.transform(t, aux_names), syn_aux)[1][:, 0]
        ok = _guess_ok(secret, syn_secret[idx], t[secret.name].to_numpy())
        return wilson(int(ok.sum()), len(ok))

    attack = rate(train)
    control = rate(holdout)
    t = train if len(train) <= n_attacks else train.iloc[rng.choice(len(train), n_attacks, replace=False)]
    guesses = syn_secret[rng.integers(0, len(synthetic), size=len(t))]
    ok = _guess_ok(secret, guesses, t[secret.name].to_numpy())
    baseline = wilson(int(ok.sum()), len(ok))
    return residual_risk(attack, control, baseline, {"secret": secret.name, "n_aux_columns": len(aux)})
