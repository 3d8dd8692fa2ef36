"""Empirical privacy audit: canary membership attacks that give an ε LOWER bound.

A DP claim is a promise about the code, and code has bugs (exact category frequencies in a
conditional sampler, data-derived bounds, non-Poisson batches, gradients dropped...). The
audit measures instead of trusting: it plants crafted outlier rows ("canaries") in the
training data, trains, and tries to tell from the synthetic output ALONE which canaries were
planted. If the attack succeeds more often than (ε, δ)-DP allows, the claim is refuted at a
stated confidence. If the claim holds, the bound stays at or below it (with probability at
least the confidence level, whatever the attack).

Design, and why:

- One-run auditing, pooled over trials (Steinke, Nasr & Jagielski 2023, "Privacy auditing
  with one (1) training run", Thm 3.1 and their Algorithm for δ > 0). In every trial each
  of the m canaries is inserted independently with probability 1/2. The attack ranks all
  canaries by a score and guesses "in" for the top k₊ and "out" for the bottom k₋,
  abstaining on the rest. For an (ε, δ)-DP mechanism the number of correct guesses W out
  of r = k₊ + k₋ satisfies P[W ≥ v] ≤ P[Binomial(r, e^ε/(1+e^ε)) ≥ v] + 2Mδ·α(v) — for
  ANY attack, even with dependent canaries inside one run. The T trials together form one
  mechanism over M = T·m independent inclusion bits: flipping one bit changes the input of
  one trial by one privacy unit and the other trials not at all, so the combined mechanism
  is (ε, δ)-DP in each bit and the theorem applies to the pooled M guesses. The guesses may
  use every trial's output (scores are normalised per canary across trials): the theorem
  allows any function of the whole output, as long as it does not see the bits.
  We prefer this to the classic multi-run audit with Clopper–Pearson intervals on TPR/FPR
  (Jagielski et al. 2020; Nasr et al. 2021, 2023): that needs independent samples, so one
  canary per training run, i.e. thousands of trainings for a useful bound; treating the m
  canaries of one run as independent samples would make the Clopper–Pearson bound invalid.
- The ε lower bound is the largest ε the observed guesses reject at significance
  (1 − confidence)/G, maximised over a small fixed grid of G (k₊, k₋) choices (Bonferroni),
  so choosing the best guess count after seeing the scores stays valid. The largest bound
  the design can reach (all guesses right) is reported too: with few canaries even a
  perfect attack cannot show a large ε. When that maximum is at or below the claimed ε
  the audit could not have refuted the claim whatever the model does, so its verdict is
  "inconclusive", never "consistent" (and never a pass). The maximum depends only on the
  pooled canary count M = canaries per run x runs (all M guesses right, the grid's
  largest guess count), the confidence and δ: roughly ln(M / ln(G/(1 − confidence))), so
  each +1 of ε needs about e times as many pooled canaries, up to a ceiling set by the δ
  term of the p-value, which grows with M (about 8.2 at δ = 1e-6 and 95% confidence, see
  `pooled_canaries_needed`): a larger claim cannot be refuted by this design at all.
- Black-box attack on synthetic rows only (the threat model of a released dataset):
  score = number of synthetic rows that carry one of the canary's unique values (a
  category nobody else has, in every categorical column whose categories are learned, not
  declared) + (1 − Gower distance from the canary to its closest synthetic row). A unique
  category can only be generated if the model learned it from the canary; the distance
  term catches memorised tail values. Each canary's score is centred by its median
  over the reference run (trained without canaries) and all trials, which removes how
  typical a canary is anyway (in the spirit of LiRA's reference models, Carlini et al. 2022).
- Canaries: numeric values at the 1% or 99% quantile of the reference fit's synthetic
  output (the reference is a DP fit of the data without canaries: its output is public),
  random public categories and booleans (a rare combination), a unique category where
  categories are learned, never nulls. With an entity key a canary is a whole entity with
  `max_rows_per_entity` rows: the privacy unit.
- Sequences (DPHMM; unit = entity): a canary is one whole crafted entity of `max_length`
  events (start and gaps in the tails of the reference fit's output, tail numeric values,
  unique categories in the learned event and context columns, tail context values), and
  the attack compares per-entity summaries (see `SequenceFamily` for why not a step-aligned
  distance). What differs between model families (crafting, scoring) is a small strategy
  object (`TableFamily`, `SequenceFamily`); trials, statistics and reports are shared.

Privacy of the audit itself: each trial is a DP fit of the private data, and audit.json
holds only canary scores and counts derived from the fitted models (post-processing); the
trials compose (T + 1 fits in the worst case), so run audits on development data or treat
the result as internal. Canary values are not written to the output.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import html
import json
import logging
import math
import multiprocessing
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from synthkit.errors import ConfigError, DataValidationError
from synthkit.ledger import PrivacyBudget
from synthkit.schema import Column, Schema
from synthkit.table import Table, boolean_values, numeric_values, render_datetimes, utc_seconds

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
AUDIT_VERSION = 1
# (fraction of all canaries guessed "in", fraction guessed "out"): fixed before any score is
# seen; the bound is Bonferroni-corrected over these G choices.
GUESS_GRID: tuple[tuple[float, float], ...] = tuple(
    [(f, 0.0) for f in (0.05, 0.1, 0.2, 0.35, 0.5)] + [(f / 2, f / 2) for f in (0.1, 0.2, 0.4, 0.7, 1.0)])
ROC_FPRS: tuple[float, ...] = (0.01, 0.05, 0.1)
# The audit's verdicts (audit.json "result.verdict"). Only "consistent" counts as a pass;
# "inconclusive" means the design could not have refuted the claim (max_attainable <= claim).
Verdict = Literal["consistent", "inconclusive", "violation", "no_guarantee"]
VERDICT_LABELS: dict[str, str] = {
    "consistent": "no violation found",
    "inconclusive": "INCONCLUSIVE: this audit had no power to refute the claim",
    "violation": "CLAIM REFUTED",
    "no_guarantee": "no claim to check",
}
# the report's pass/fail of the claim: None where the audit says nothing either way
VERDICT_PASSED: dict[str, bool | None] = {"consistent": True, "violation": False, "inconclusive": None,
                                          "no_guarantee": None}
CANARY_TOKEN = "__synthkit_canary_{i:05d}__"


# ====================================================================== statistics
def one_run_p_value(*, n_canaries: int, n_guesses: int, n_correct: int, epsilon: float, delta: float) -> float:
    """P[W ≥ n_correct] bound under the null "(ε, δ)-DP" (Steinke et al. 2023, Thm 3.1 with
    their δ > 0 extension): P[Binomial(r, q) ≥ v] + 2·m·δ·max_i P[v−i ≤ Binomial(r, q) < v]/i,
    q = e^ε/(1+e^ε) the accuracy of ε-DP randomised response."""
    m, r, v = int(n_canaries), int(n_guesses), int(n_correct)
    if not (0 <= v <= r <= m):
        raise ConfigError(f"need 0 <= correct <= guesses <= canaries, got {v}, {r}, {m}")
    if r == 0:
        return 1.0
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(stats.binom.sf(v - 1, r, q))
    if delta <= 0 or v == 0:
        return min(beta, 1.0)
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[W = v−1], P[W = v−2], ..., P[W = 0]
    alpha = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1)))
    return min(beta + alpha * delta * 2 * m, 1.0)


@functools.lru_cache(maxsize=4096)
def one_run_epsilon(*, n_canaries: int, n_guesses: int, n_correct: int, delta: float, significance: float,
                    epsilon_max: float = 50.0) -> float:
    """The largest ε whose null "(ε, δ)-DP" the guesses reject at `significance`: the first
    crossing of p(ε) = significance scanning up from 0 (a coarse scan, then bisection inside
    the crossing cell, keeping p ≤ significance at the returned value), 0 if none."""
    def p(eps: float) -> float:
        return one_run_p_value(n_canaries=n_canaries, n_guesses=n_guesses, n_correct=n_correct,
                               epsilon=eps, delta=delta)

    if n_guesses == 0 or p(0.0) > significance:
        return 0.0
    lo, step = 0.0, 0.25
    while lo + step <= epsilon_max and p(lo + step) <= significance:
        lo += step
    hi = min(lo + step, epsilon_max)
    if p(hi) <= significance:
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        if p(mid) <= significance:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-5:
            break
    return lo


@dataclass(frozen=True, slots=True, kw_only=True)
class BoundResult:
    """The ε lower bound and the guess that achieved it."""

    epsilon_lower_bound: float
    confidence: float
    n_canaries: int
    n_included: int
    n_guesses: int
    n_correct: int
    guessed_in: int
    guessed_out: int
    n_grid: int
    max_attainable: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def _grid_counts(m: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for f_in, f_out in GUESS_GRID:
        k_in, k_out = int(round(f_in * m)), int(round(f_out * m))
        if f_in > 0:
            k_in = max(k_in, 1)
        if f_out > 0:
            k_out = max(k_out, 1)
        if k_in + k_out > m:
            k_out = max(m - k_in, 0)
        if (k_in, k_out) not in out and k_in + k_out > 0:
            out.append((k_in, k_out))
    return out


def epsilon_lower_bound(scores: np.ndarray, included: np.ndarray, *, delta: float, confidence: float = 0.95,
                        rng: np.random.Generator) -> BoundResult:
    """One-run ε lower bound from pooled canary scores (higher score = "more likely in").

    Ties are broken at random (`rng`), never by the membership bits. Valid at `confidence`
    for any scoring, provided the bits were drawn independently with probability 1/2 and the
    scores do not depend on them except through the trained models."""
    scores = np.asarray(scores, dtype=float)
    included = np.asarray(included, dtype=bool)
    if scores.shape != included.shape or scores.ndim != 1:
        raise ConfigError("scores and membership bits must be 1-D arrays of the same length")
    if not (0.5 <= confidence < 1):
        raise ConfigError(f"confidence must be in [0.5, 1), got {confidence!r}")
    m = len(scores)
    order = np.lexsort((rng.random(m), -scores))  # descending score, random among ties
    truth = included[order]
    grid = _grid_counts(m)
    significance = (1.0 - confidence) / max(len(grid), 1)
    rows = []  # (ε, p-value at ε=0, guesses, correct, guessed in, guessed out)
    max_attainable = 0.0
    for k_in, k_out in grid:
        correct = int(truth[:k_in].sum()) + int((~truth[m - k_out:]).sum() if k_out else 0)
        r = k_in + k_out
        eps = one_run_epsilon(n_canaries=m, n_guesses=r, n_correct=correct, delta=delta, significance=significance)
        p0 = one_run_p_value(n_canaries=m, n_guesses=r, n_correct=correct, epsilon=0.0, delta=delta)
        rows.append((eps, p0, r, correct, k_in, k_out))
        max_attainable = max(max_attainable, one_run_epsilon(n_canaries=m, n_guesses=r, n_correct=r, delta=delta,
                                                             significance=significance))
    # the largest ε; among equal ones (e.g. all 0) the guess least compatible with chance
    eps, _, r, correct, k_in, k_out = max(rows, key=lambda row: (row[0], -row[1]))
    return BoundResult(epsilon_lower_bound=float(eps), confidence=confidence, n_canaries=m,
                       n_included=int(included.sum()), n_guesses=r, n_correct=correct, guessed_in=k_in,
                       guessed_out=k_out, n_grid=len(grid), max_attainable=float(max_attainable))


def audit_verdict(*, epsilon_lower_bound: float, max_attainable: float | None,
                  claimed_epsilon: float | None) -> Verdict:
    """"violation" when the bound exceeds the claim; "inconclusive" when even a perfect attack
    could not have exceeded it (`max_attainable` <= claim; None = unknown); else "consistent"."""
    if claimed_epsilon is None:
        return "no_guarantee"
    if epsilon_lower_bound > claimed_epsilon:
        return "violation"
    if max_attainable is not None and max_attainable <= claimed_epsilon:
        return "inconclusive"
    return "consistent"


def _perfect_attack_bound(pooled: int, *, delta: float, confidence: float) -> float:
    """The bound of `pooled` canaries all guessed right at the grid's largest guess count (what
    `epsilon_lower_bound` reports as max_attainable, up to the negligible δ term of smaller counts)."""
    grid = _grid_counts(pooled)
    significance = (1.0 - confidence) / max(len(grid), 1)
    r = max(k_in + k_out for k_in, k_out in grid)
    return one_run_epsilon(n_canaries=pooled, n_guesses=r, n_correct=r, delta=delta, significance=significance)


POOLED_SEARCH_LIMIT = 5_000_000


@functools.lru_cache(maxsize=256)
def pooled_canaries_needed(epsilon: float, *, delta: float, confidence: float) -> int | None:
    """About the fewest pooled canaries M (canaries per run x runs) for which a perfect attack
    (all M guesses right) rejects "(ε, δ)-DP", i.e. max_attainable > `epsilon`; None when no
    M up to `POOLED_SEARCH_LIMIT` does.

    The p-value of M right guesses is q(ε)^M + 2Mδ·α: the first term falls with M, the δ
    term grows with it, so the attainable bound has a ceiling whatever M (about 8.2 at
    δ = 1e-6, 5.9 at 1e-5, 95% confidence). The δ = 0 closed form q^M <= (1 − confidence)/G
    gives the smallest candidate; we walk up by 25% while the p-value falls, then bisect
    (one O(M) p-value per step)."""
    eps = epsilon * (1 + 1e-6) + 1e-6  # strictly more than the claim

    def p_over_significance(m: int) -> float:
        grid = _grid_counts(m)
        r = max(k_in + k_out for k_in, k_out in grid)
        p = one_run_p_value(n_canaries=m, n_guesses=r, n_correct=r, epsilon=eps, delta=delta)
        return p / ((1.0 - confidence) / len(grid))

    lo = max(2, math.ceil(math.log(len(GUESS_GRID) / (1.0 - confidence)) / math.log1p(math.exp(-eps))))
    if lo > POOLED_SEARCH_LIMIT:
        return None
    hi, ratio = lo, p_over_significance(lo)
    while ratio > 1.0:
        nxt = max(hi + 1, math.ceil(hi * 1.25))
        nxt_ratio = p_over_significance(nxt) if nxt <= POOLED_SEARCH_LIMIT else math.inf
        if nxt_ratio >= ratio:  # past the ceiling: more canaries only make it worse
            return None
        lo, hi, ratio = hi, nxt, nxt_ratio
    while hi - lo > max(1, hi // 200):  # 0.5% is precise enough for advice
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if p_over_significance(mid) <= 1.0 else (mid, hi)
    return hi


def _explain(*, verdict: str, bound: dict[str, Any], claimed: float | None, delta: float,
             canaries_per_trial: int | None, trials: int | None) -> str:
    """The plain-language explanation of a verdict (audit.json "result.explanation")."""
    pct = f"{bound['confidence']:.0%}"
    lb, top, pooled = bound["epsilon_lower_bound"], bound.get("max_attainable"), bound["n_canaries"]
    runs = "" if trials is None else f" ({trials} training runs x {canaries_per_trial} canaries)"
    top_text = "" if top is None else f" (the most this design can show is {top:.2f})"
    head = (f"A membership attack on {pooled} planted canaries{runs} shows epsilon >= {lb:.2f} with {pct} "
            f"confidence{top_text}.")
    if verdict == "no_guarantee":
        return head + " The model was trained without differential privacy: it makes no claim to check."
    if verdict == "violation":
        return head + (f" That is ABOVE the claimed epsilon {claimed:.2f}: the privacy claim is "
                       "refuted; do not release data from this model and report the bug.")
    if verdict == "inconclusive" and claimed is not None:
        needed = pooled_canaries_needed(claimed, delta=delta, confidence=bound["confidence"])
        top_value = "unknown" if top is None else f"{top:.2f}"
        text = (f"inconclusive (no power to refute epsilon = {claimed:.2f}): the most this design can show is "
                f"{top_value}; ")
        if needed is None:
            text += (f"more canaries/trials cannot help: the bound pools every canary of every training run (now "
                     f"{pooled:,}), but no number of them (up to {POOLED_SEARCH_LIMIT:,}) lets even a perfect attack "
                     f"show more than epsilon = {claimed:.2f} at delta = {delta:g} and {pct} confidence (the delta "
                     "term of the bound grows with the pooled count): this audit design cannot check a claim this "
                     "large.")
        else:
            text += (f"use more canaries/trials: the bound pools every canary of every training run (now "
                     f"{pooled:,}), and even a perfect attack needs about {needed:,} of them to show more than "
                     f"epsilon = {claimed:.2f} at {pct} confidence")
            if canaries_per_trial and trials:
                text += (f" (e.g. --trials {math.ceil(needed / canaries_per_trial)} with --canaries "
                         f"{canaries_per_trial}, or --canaries {math.ceil(needed / trials)} with --trials {trials})")
            text += ("; each further +1 of epsilon needs roughly 2.7 times as many (a lower --confidence helps "
                     "little).")
        return text + (f" This audit showed epsilon >= {lb:.2f} ({pct} confidence, {pooled:,} pooled canaries): "
                       "it neither supports nor refutes the claim; do not count it as a pass.")
    return head + (f" That is at or below the claimed epsilon {claimed:.2f}: no violation found. "
                   "An audit can refute a claim, never prove it.")


def roc_curve(scores: np.ndarray, included: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the rule "score ≥ threshold", over every threshold (ties together)."""
    scores = np.asarray(scores, dtype=float)
    included = np.asarray(included, dtype=bool)
    n_pos, n_neg = int(included.sum()), int((~included).sum())
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], included[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(~y)[last_of_tie]
    tpr = np.r_[0.0, tp / max(n_pos, 1)]
    fpr = np.r_[0.0, fp / max(n_neg, 1)]
    return fpr, tpr


def roc_summary(scores: np.ndarray, included: np.ndarray, *, max_points: int = 200) -> dict[str, Any]:
    """AUC, TPR at low FPR (the regime that matters for privacy: Carlini et al. 2022), and a
    thinned curve for plotting. Descriptive only: the bound above is the statistical claim."""
    fpr, tpr = roc_curve(scores, included)
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    at = {}
    for target in ROC_FPRS:
        ok = fpr <= target + 1e-12
        at[f"{target:g}"] = float(tpr[ok].max()) if ok.any() else 0.0
    if len(fpr) > max_points:
        keep = np.unique(np.r_[np.linspace(0, len(fpr) - 1, max_points).round().astype(int)])
        fpr, tpr = fpr[keep], tpr[keep]
    return {"auc": auc, "tpr_at_fpr": at, "curve": [[round(float(a), 5), round(float(b), 5)] for a, b in zip(fpr, tpr)]}


# ====================================================================== canaries
@dataclass(frozen=True, slots=True, kw_only=True)
class CanarySpec:
    """How canaries look and how the attack measures distance. `placements` are the (low,
    high) values a numeric canary takes; `scales` the (low, high) that set the column's unit
    of distance; both in the units of `_numeric` (seconds for datetimes)."""

    placements: dict[str, tuple[float, float]]
    scales: dict[str, tuple[float, float]]
    discrete: tuple[str, ...]
    token_columns: tuple[str, ...]
    recipe: tuple[str, ...] = field(default=())


TAIL = 0.01  # numeric canaries sit at the 1% / 99% quantiles of the reference fit's output


def canary_spec(schema: Schema, *, reference: pd.DataFrame, learned_bounds: dict[str, tuple[float, float]]
                ) -> CanarySpec:
    """Canary placement from the schema and the reference fit alone (a DP release).

    Numeric values go to the 1% or 99% quantile of the reference model's synthetic column:
    far out in the tails, yet inside what the model can represent. A corner of the public
    bounds would be cleaner in theory, but DP preprocessing drops empty histogram bins, so
    the transform cannot encode a value far from every learned mode and a memorising
    network could never show it (tried: the attack then saw nothing). The distance unit is
    the same 1%–99% range (the public or DP bounds when that range is empty)."""
    placements: dict[str, tuple[float, float]] = {}
    scales: dict[str, tuple[float, float]] = {}
    discrete: list[str] = []
    tokens: list[str] = []
    recipe: list[str] = []
    for col in schema.learned_columns:
        if col.kind in ("categorical", "boolean"):
            discrete.append(col.name)
            if col.kind == "categorical" and col.categories is None:
                tokens.append(col.name)
                recipe.append(f"{col.name}: a category unique to the canary (categories are learned under DP)")
            else:
                recipe.append(f"{col.name}: a random value of the public domain")
            continue
        bounds = _public_bounds(col) or learned_bounds.get(col.name)
        if bounds is None:  # pragma: no cover - every numeric transform has bounds after fit
            raise ConfigError(f"column {col.name!r}: no bounds to place a canary at")
        values = _numeric(reference[col.name], col.kind, col.format)
        values = values[~np.isnan(values)]
        lo, hi = (float(np.quantile(values, TAIL)), float(np.quantile(values, 1 - TAIL))) if len(values) else bounds
        if col.kind == "integer":
            lo, hi = float(math.floor(lo)), float(math.ceil(hi))
        placements[col.name] = (lo, hi)
        scales[col.name] = (lo, hi) if hi > lo else bounds
        recipe.append(f"{col.name}: the 1% or 99% quantile of the reference fit's synthetic output")
    return CanarySpec(placements=placements, scales=scales, discrete=tuple(discrete), token_columns=tuple(tokens),
                      recipe=tuple(recipe))


def _public_bounds(col: Column) -> tuple[float, float] | None:
    if col.bounds is None:
        return None
    if col.kind == "datetime":
        return (pd.Timestamp(col.bounds[0]).value / 1e9, pd.Timestamp(col.bounds[1]).value / 1e9)
    return (float(col.bounds[0]), float(col.bounds[1]))


def craft_canaries(frame: pd.DataFrame, schema: Schema, spec: CanarySpec, *, n_canaries: int, rows_per_canary: int,
                   rng: np.random.Generator) -> pd.DataFrame:
    """`n_canaries` crafted privacy units (each `rows_per_canary` identical rows, with a
    `canary` index column first, dropped before training). Only the schema, the spec and the
    SPELLING of the data's booleans/datetime type are used, never a data value."""
    rows: list[dict[str, Any]] = []
    for i in range(n_canaries):
        row: dict[str, Any] = {}
        for col in schema.columns:
            name = col.name
            if not col.is_learned or name == schema.entity_key:
                row[name] = f"canary-{i:05d}"
            elif name in spec.token_columns:
                row[name] = CANARY_TOKEN.format(i=i)
            elif col.kind == "categorical":
                row[name] = col.categories[int(rng.integers(len(col.categories)))]  # type: ignore[index]
            elif col.kind == "boolean":
                row[name] = _boolean_spelling(frame[name], bool(rng.integers(2)))
            else:
                lo, hi = spec.placements[name]
                value = hi if rng.integers(2) else lo
                if col.kind == "integer":
                    row[name] = int(value)
                elif col.kind == "datetime":
                    ts = pd.Timestamp(int(value * 1e9))
                    tz = getattr(frame[name].dtype, "tz", None)
                    ts = ts.tz_localize("UTC").tz_convert(tz) if tz is not None else ts
                    # written as the column's values are (a US/EU date as text, read with its format)
                    row[name] = _written(pd.Series([ts]), col.format, frame[name])[0]
                else:
                    row[name] = float(value)
        for _ in range(rows_per_canary):
            rows.append({"canary": i, **row})
    out = pd.DataFrame(rows)
    for col in schema.columns:  # keep the data's dtypes where the canary fits them
        if pd.api.types.is_integer_dtype(frame[col.name].dtype) and pd.api.types.is_integer_dtype(out[col.name]):
            out[col.name] = out[col.name].astype(frame[col.name].dtype)
    return out


def _boolean_spelling(s: pd.Series, value: bool) -> Any:
    if pd.api.types.is_bool_dtype(s):
        return value
    from synthkit.table import _FALSE, _TRUE
    text = s.dropna().astype(str).str.strip().unique()[:50]
    for v in text:  # the data's own token for true/false (format, like the bundle's tokens)
        if v.lower() in (_TRUE if value else _FALSE):
            return v
    return value


def _written(d: pd.Series, fmt: str | None, like: pd.Series) -> np.ndarray:
    """Crafted datetimes in the spelling of the data's column: its declared `format` where
    the column holds text or numbers (a format fact, never a data value), else datetimes."""
    if pd.api.types.is_datetime64_any_dtype(like) or fmt is None or fmt == "iso":
        return d.to_numpy()
    return render_datetimes(d, fmt).to_numpy()


# ====================================================================== attack
def _numeric(s: pd.Series, kind: str, fmt: str | None = None) -> np.ndarray:
    """Numbers of a numeric column; datetimes (text read in the column's `format`) as UTC
    seconds."""
    if kind == "datetime":
        return utc_seconds(s, fmt)
    return numeric_values(s).to_numpy(dtype=float)


def _strings(s: pd.Series, kind: str) -> np.ndarray:
    if kind == "boolean":
        b = boolean_values(s)
        return np.array([None if v is pd.NA else ("True" if v else "False") for v in b], dtype=object)
    return np.array([None if pd.isna(v) else str(v) for v in s], dtype=object)


def attack_scores(synthetic: pd.DataFrame, canaries: pd.DataFrame, schema: Schema, spec: CanarySpec, *,
                  chunk: int = 8192) -> np.ndarray:
    """Score each canary against one synthetic dataset: (number of synthetic rows holding one
    of its unique tokens) + (1 − Gower distance to its closest synthetic row). Canaries is
    one row per canary. Gower: mean over learned columns of |Δ|/range (numeric, clipped to
    1; a null counts 1) or of a 0/1 mismatch (discrete)."""
    kinds = {c.name: c.kind for c in schema.learned_columns}
    fmts = {c.name: c.format for c in schema.learned_columns}
    m = len(canaries)
    n = len(synthetic)
    counts = np.zeros(m)
    for name in spec.token_columns:
        syn = pd.Series(_strings(synthetic[name], kinds[name]))
        vc = syn.value_counts()
        can = _strings(canaries[name], kinds[name])
        counts += np.array([float(vc.get(v, 0)) for v in can])
    if n == 0:
        return counts
    n_cols = len(kinds)
    best = np.full(m, np.inf)
    can_num = {name: _numeric(canaries[name], kinds[name], fmts[name]) for name in spec.scales}
    can_str = {name: _strings(canaries[name], kinds[name]) for name in spec.discrete}
    syn_num = {name: _numeric(synthetic[name], kinds[name], fmts[name]) for name in spec.scales}
    syn_str = {name: _strings(synthetic[name], kinds[name]) for name in spec.discrete}
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        dist = np.zeros((stop - start, m))
        for name, (lo, hi) in spec.scales.items():
            width = max(hi - lo, 1e-12)
            d = np.abs(syn_num[name][start:stop, None] - can_num[name][None, :]) / width
            dist += np.where(np.isnan(d), 1.0, np.minimum(d, 1.0))
        for name in spec.discrete:
            dist += (syn_str[name][start:stop, None] != can_str[name][None, :]).astype(float)
        best = np.minimum(best, dist.min(axis=0) / n_cols)
    return counts + (1.0 - best)


# ====================================================================== model families
TABLE_ATTACK = ("black-box on synthetic rows: count of rows holding a canary's unique category + "
                "(1 - Gower distance to the closest synthetic row), centred per canary by its median "
                "over a reference fit without canaries and all trials")
SEQUENCE_ATTACK = ("black-box on synthetic entities: count of entities holding a canary's unique category + "
                   "(1 - Gower distance between per-entity summaries (length, start, mean gap, per-column means "
                   "and shares, context) to the closest synthetic entity), centred per canary by its median over "
                   "a reference fit without canaries and all trials")


@dataclass(frozen=True, slots=True, kw_only=True)
class TableFamily:
    """Canaries and attack for the table models (DPCTGAN, DPTVAE): a canary is one crafted
    row, or with an entity key `rows_per_canary` identical rows (the privacy unit)."""

    rows_per_canary: int = 1
    unit_noun: str = "rows"
    attack: str = TABLE_ATTACK

    def n_units(self, frame: pd.DataFrame, schema: Schema) -> int:
        return len(frame)

    def spec(self, schema: Schema, *, reference: pd.DataFrame, model: Any) -> CanarySpec:
        return canary_spec(schema, reference=reference, learned_bounds=_learned_bounds(model))

    def craft(self, frame: pd.DataFrame, schema: Schema, spec: CanarySpec, *, n_canaries: int,
              rng: np.random.Generator) -> pd.DataFrame:
        return craft_canaries(frame, schema, spec, n_canaries=n_canaries, rows_per_canary=self.rows_per_canary,
                              rng=rng)

    def scores(self, synthetic: pd.DataFrame, canaries: pd.DataFrame, schema: Schema, spec: CanarySpec) -> np.ndarray:
        return attack_scores(synthetic, _one_per_canary(canaries), schema, spec)


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceCanarySpec:
    """How canary ENTITIES look (DPHMM). `events` and `context` are the table recipes of the
    event and the static context columns; the canary holds `length` events starting at one
    of `starts` (ticks of the sequence index) and spaced by `gap` ticks. `scales` give the
    distance unit of the summary features length, start and mean gap (in ticks)."""

    length: int
    starts: tuple[float, float]
    gap: float
    index_bounds: tuple[float, float] | None
    axis: dict[str, Any]
    events: CanarySpec
    context: CanarySpec
    scales: dict[str, tuple[float, float]]
    recipe: tuple[str, ...]

    @property
    def token_columns(self) -> tuple[str, ...]:
        return self.events.token_columns + self.context.token_columns


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceFamily:
    """Canary entities and the attack for the sequence model DPHMM (privacy unit: entity).

    A canary is one whole crafted entity: `max_length` events (the most one entity may
    contribute, so the strongest canary the contribution bound allows), its start and its
    gaps at the tails of the reference fit's synthetic output (public, DP), the same tail
    value of every numeric event column at each of its events, a category of its own in
    every event and context column whose categories are learned, random public values
    elsewhere, and tail context values.

    The attack sees the synthetic entities only. Score = number of synthetic entities that
    hold one of the canary's unique categories + (1 − distance to the closest synthetic
    entity). The distance is a Gower distance between per-ENTITY SUMMARIES — length, start,
    mean gap, per numeric event column the entity's mean, per discrete event column the
    share of its events that carry the canary's value, its context values — not a
    step-aligned one: an HMM, even a memorising one, regenerates a sequence through its
    states, so lengths and positions shift while the per-entity statistics stay; the canary
    is constant over its steps, so its summary loses nothing of it; and the cost is
    O(entities × canaries) instead of O(entities × canaries × length²) for an alignment.
    Context tables given separately (fit's --context) are not audited: context columns of
    the events table are."""

    entity_key: str
    sequence_index: str
    context_columns: tuple[str, ...]
    max_length: int | None = None  # None: the reference fit's DP-chosen max_length
    unit_noun: str = "entities"
    attack: str = SEQUENCE_ATTACK

    def n_units(self, frame: pd.DataFrame, schema: Schema) -> int:
        return int(frame[self.entity_key].nunique())

    def _schemas(self, schema: Schema) -> tuple[Schema, Schema]:
        ctx = set(self.context_columns)
        learned = [c for c in schema.learned_columns if c.name != self.sequence_index]
        return (Schema(columns=tuple(c for c in learned if c.name not in ctx)),
                Schema(columns=tuple(c for c in learned if c.name in ctx)))

    def spec(self, schema: Schema, *, reference: pd.DataFrame, model: Any) -> SequenceCanarySpec:
        """From the schema, the reference fit (its DP max length and bounds) and its synthetic
        output alone."""
        from synthkit.sequence import TimeAxis
        event_schema, context_schema = self._schemas(schema)
        bounds = _learned_bounds(model)
        length = int(self.max_length or model.layout_["max_length"])
        index_col = schema.column(self.sequence_index)
        # a format property of the index, like the data's; text read in the column's format
        axis = dataclasses.replace(TimeAxis.from_dict(model.layout_["axis"]), format=index_col.format)
        summary = _entity_frame(reference, key=self.entity_key, ticks=axis.to_ticks(reference[self.sequence_index]))
        starts = _tails(summary["start"].to_numpy())
        gaps = summary["gap"].to_numpy()
        gap = _tails(gaps[~np.isnan(gaps)])[1] if np.isfinite(gaps).any() else 1.0
        if axis.discrete:
            starts, gap = (float(math.floor(starts[0])), float(math.ceil(starts[1]))), float(max(round(gap), 1))
        gap = max(gap, 1e-9)
        index_bounds = None
        if index_col.bounds is not None:
            lo, hi = axis.bound_ticks(index_col.bounds)
            index_bounds = (float(lo), float(hi))
        first = reference.drop_duplicates(self.entity_key)
        events = canary_spec(event_schema, reference=reference, learned_bounds=bounds)
        context = canary_spec(context_schema, reference=first, learned_bounds=bounds)
        gap_scale = _tails(gaps[~np.isnan(gaps)]) if np.isfinite(gaps).any() else (0.0, gap)
        scales = {"length": (1.0, float(max(length, 2))), "start": starts if starts[1] > starts[0] else (0.0, 1.0),
                  "gap": gap_scale if gap_scale[1] > gap_scale[0] else (0.0, max(gap, 1.0))}
        recipe = (f"a whole entity of max_length={length} events (the contribution bound)",
                  f"{self.sequence_index}: starts at the 1% or 99% quantile of the reference fit's synthetic "
                  "starts, spaced by the 99% quantile of its gaps (kept inside public bounds)",
                  *(f"event {r}" for r in events.recipe), *(f"context {r}" for r in context.recipe))
        return SequenceCanarySpec(length=length, starts=starts, gap=float(gap), index_bounds=index_bounds,
                                  axis=axis.to_dict(), events=events, context=context, scales=scales, recipe=recipe)

    def craft(self, frame: pd.DataFrame, schema: Schema, spec: SequenceCanarySpec, *, n_canaries: int,
              rng: np.random.Generator) -> pd.DataFrame:
        """`n_canaries` crafted entities, `spec.length` events each, with a `canary` index
        column first (dropped before training). Only the schema, the spec and the data's
        spelling of booleans/datetimes are used, never a data value."""
        from synthkit.sequence import TimeAxis
        event_schema, context_schema = self._schemas(schema)
        ev = craft_canaries(frame, event_schema, spec.events, n_canaries=n_canaries, rows_per_canary=1, rng=rng)
        cx = craft_canaries(frame, context_schema, spec.context, n_canaries=n_canaries, rows_per_canary=1, rng=rng)
        axis = TimeAxis.from_dict(spec.axis)
        steps = np.arange(spec.length, dtype=float) * spec.gap
        starts = np.where(rng.integers(2, size=n_canaries) == 1, spec.starts[1], spec.starts[0])
        if spec.index_bounds is not None:  # the whole sequence inside the public window
            lo, hi = spec.index_bounds
            starts = np.maximum(np.minimum(starts, hi - steps[-1]), lo)
        ticks = starts[:, None] + steps[None, :]
        rep = np.repeat(np.arange(n_canaries), spec.length)
        cols: dict[str, Any] = {"canary": rep}
        for col in schema.columns:
            name = col.name
            if name == self.sequence_index:
                cols[name] = _written(axis.from_ticks(ticks.ravel()), col.format, frame[name])
            elif name in ev.columns and name != "canary":
                cols[name] = ev[name].to_numpy()[rep]
            elif name in cx.columns and name != "canary":
                cols[name] = cx[name].to_numpy()[rep]
            else:  # the entity key and other identifiers
                cols[name] = np.array([f"canary-{i:05d}" for i in rep], dtype=object)
        out = pd.DataFrame(cols)
        for col in schema.columns:
            if pd.api.types.is_integer_dtype(frame[col.name].dtype) and pd.api.types.is_integer_dtype(out[col.name]):
                out[col.name] = out[col.name].astype(frame[col.name].dtype)
        return out

    def scores(self, synthetic: pd.DataFrame, canaries: pd.DataFrame, schema: Schema, spec: SequenceCanarySpec, *,
               chunk: int = 8192) -> np.ndarray:
        """Score each canary entity against one synthetic dataset (see the class docstring)."""
        from synthkit.sequence import TimeAxis
        axis = dataclasses.replace(TimeAxis.from_dict(spec.axis), format=schema.column(self.sequence_index).format)
        kinds = {c.name: c.kind for c in schema.learned_columns}
        fmts = {c.name: c.format for c in schema.learned_columns}
        can = canaries.sort_values(["canary"], kind="stable").reset_index(drop=True)
        m = int(can["canary"].nunique())
        can_ent, _ = pd.factorize(can["canary"], sort=True)
        syn_ent, syn_keys = pd.factorize(synthetic[self.entity_key], sort=False)
        n = len(syn_keys)
        # unique tokens: synthetic entities holding canary i's token in any token column
        token_of = {CANARY_TOKEN.format(i=i): i for i in range(m)}
        pairs = set()
        for name in spec.token_columns:
            hit = pd.Series(_strings(synthetic[name], kinds[name])).map(token_of)
            ok = hit.notna().to_numpy()
            pairs.update(zip(syn_ent[ok].tolist(), hit[ok].astype(int).tolist()))
        counts = np.bincount(np.array([i for _, i in pairs], dtype=np.int64), minlength=m).astype(float)[:m]
        if n == 0:
            return counts
        syn_sum = _entity_frame(synthetic, key=self.entity_key, ticks=axis.to_ticks(synthetic[self.sequence_index]),
                                codes=(syn_ent, n))
        can_sum = _entity_frame(can, key="canary", ticks=axis.to_ticks(can[self.sequence_index]), codes=(can_ent, m))
        order = np.argsort(syn_ent, kind="stable")  # each entity's first row holds its (static) context
        syn_first = synthetic.iloc[order[np.searchsorted(syn_ent[order], np.arange(n))]].reset_index(drop=True)
        can_first = can.drop_duplicates("canary").reset_index(drop=True)
        # per-feature distances in [0, 1]; each is [n, m] within a chunk
        numeric: list[tuple[np.ndarray, np.ndarray, float]] = []
        for name, (lo, hi) in spec.scales.items():
            numeric.append((syn_sum[name].to_numpy(), can_sum[name].to_numpy(), max(hi - lo, 1e-12)))
        for name, (lo, hi) in spec.events.scales.items():
            x = pd.Series(_numeric(synthetic[name], kinds[name], fmts[name])).groupby(syn_ent).mean().reindex(range(n))
            c = pd.Series(_numeric(can[name], kinds[name], fmts[name])).groupby(can_ent).mean().reindex(range(m))
            numeric.append((x.to_numpy(), c.to_numpy(), max(hi - lo, 1e-12)))
        for name, (lo, hi) in spec.context.scales.items():
            numeric.append((_numeric(syn_first[name], kinds[name], fmts[name]),
                            _numeric(can_first[name], kinds[name], fmts[name]), max(hi - lo, 1e-12)))
        shares: list[np.ndarray] = []  # [n, m]: share of an entity's events carrying canary j's value
        lengths = np.bincount(syn_ent, minlength=n).astype(float)
        for name in spec.events.discrete:
            values = _strings(can_first[name], kinds[name])
            lookup = {v: j for j, v in enumerate(dict.fromkeys(values))}
            idx = pd.Series(_strings(synthetic[name], kinds[name])).map(lookup)
            ok = idx.notna().to_numpy()
            table = np.zeros((n, len(lookup)))
            np.add.at(table, (syn_ent[ok], idx[ok].astype(int).to_numpy()), 1.0)
            shares.append(table[:, [lookup[v] for v in values]] / np.maximum(lengths, 1.0)[:, None])
        discrete = [(_strings(syn_first[name], kinds[name]), _strings(can_first[name], kinds[name]))
                    for name in spec.context.discrete]
        n_features = len(numeric) + len(shares) + len(discrete)
        best = np.full(m, np.inf)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            dist = np.zeros((stop - start, m))
            for x, c, width in numeric:
                d = np.abs(x[start:stop, None] - c[None, :]) / width
                dist += np.where(np.isnan(d), 1.0, np.minimum(d, 1.0))
            for share in shares:
                dist += 1.0 - share[start:stop]
            for x, c in discrete:
                dist += (x[start:stop, None] != c[None, :]).astype(float)
            best = np.minimum(best, dist.min(axis=0) / max(n_features, 1))
        return counts + (1.0 - best)


def _tails(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return (0.0, 1.0)
    return (float(np.quantile(values, TAIL)), float(np.quantile(values, 1 - TAIL)))


def _entity_frame(events: pd.DataFrame, *, key: str, ticks: np.ndarray,
                  codes: tuple[np.ndarray, int] | None = None) -> pd.DataFrame:
    """Per entity (in the order of `codes`, or of first appearance): its length, first
    tick and mean gap ((last − first)/(length − 1); NaN for a single event)."""
    if codes is None:
        found, uniques = pd.factorize(events[key], sort=False)
        codes = (found, len(uniques))
    ent, n = codes
    t = pd.Series(ticks).groupby(ent)
    length = np.bincount(ent, minlength=n).astype(float)
    first = t.min().reindex(range(n)).to_numpy()
    last = t.max().reindex(range(n)).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(length > 1, (last - first) / np.maximum(length - 1, 1), np.nan)
    return pd.DataFrame({"length": length, "start": first, "gap": gap})


AuditFamily = TableFamily | SequenceFamily


def _family(cls: type, schema: Schema, params: dict[str, Any]) -> AuditFamily:
    """The canary recipe and attack for the model's family (tables or sequences)."""
    from synthkit.models.hmm import DPHMM
    if issubclass(cls, DPHMM):
        problems = []
        if schema.entity_key is None:
            problems.append("DPHMM audits need the entity key (--entity-key): a canary is a whole entity")
        if schema.sequence_index is None:
            problems.append("DPHMM audits need the sequence index (--sequence-index)")
        if problems:
            raise ConfigError("; ".join(problems))
        return SequenceFamily(entity_key=schema.entity_key, sequence_index=schema.sequence_index,  # type: ignore[arg-type]
                              context_columns=tuple(schema.context_columns), max_length=params.get("max_length"))
    k = int(params.get("max_rows_per_entity", 1)) if schema.entity_key else 1
    return TableFamily(rows_per_canary=k)


# ====================================================================== trials
@dataclass(frozen=True, slots=True, kw_only=True)
class TrialJob:
    index: int                 # -1 for the reference fit (no canaries)
    included: np.ndarray       # [m] bool
    model_seed: int | None
    sample_seed: int | None
    shuffle_seed: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialOutcome:
    index: int
    scores: np.ndarray
    epsilon_spent: float | None
    guarantee: str
    device: str
    seconds: float


_WORKER: dict[str, Any] = {}


def _init_worker(context: dict[str, Any], torch_threads: int | None) -> None:
    """Process-pool initializer: the shared inputs are sent once per worker, not per trial."""
    if torch_threads is not None:
        import torch
        torch.set_num_threads(torch_threads)
    _WORKER.clear()
    _WORKER.update(context)


def _fit_and_sample(job: TrialJob) -> tuple[Any, pd.DataFrame, float]:
    """Train on the data plus the job's included canaries; return the model and its sample."""
    ctx = _WORKER
    start = time.perf_counter()
    schema = Schema.from_dict(ctx["schema"])
    frame: pd.DataFrame = ctx["frame"]
    canaries: pd.DataFrame | None = ctx.get("canaries")
    if canaries is not None and job.included.any():
        chosen = canaries[canaries["canary"].isin(np.flatnonzero(job.included))].drop(columns=["canary"])
        train = pd.concat([frame, chosen], ignore_index=True)
        order = np.random.default_rng(job.shuffle_seed).permutation(len(train))
        train = train.iloc[order].reset_index(drop=True)
    else:
        train = frame
    budget = None if ctx["budget"] is None else PrivacyBudget(**ctx["budget"])
    model = ctx["model_class"](**{**ctx["params"], "seed": job.model_seed})
    model.fit(train, schema=schema, budget=budget)
    synthetic = model.sample(ctx["n_synthetic"], seed=job.sample_seed)
    return model, synthetic, start


def _outcome(job: TrialJob, model: Any, scores: np.ndarray, start: float) -> TrialOutcome:
    summary = model.privacy_summary()
    return TrialOutcome(index=job.index, scores=scores,
                        epsilon_spent=summary.get("epsilon_spent") if summary.get("private") else None,
                        guarantee=summary["guarantee"], device=str(model.device_),
                        seconds=time.perf_counter() - start)


def _learned_bounds(model: Any) -> dict[str, tuple[float, float]]:
    """The DP (or public) bounds of every numeric transform of a fitted model, including a
    sequence model's context model: DP state, public once released."""
    out: dict[str, tuple[float, float]] = {}
    for m in (getattr(model, "context_model_", None), model):
        if m is None:
            continue
        for name, t in m.transformer_.transforms.items():
            if getattr(t, "bounds_", None) is not None:
                out[name] = (float(t.bounds_[0]), float(t.bounds_[1]))
    return out


def _run_trial(job: TrialJob) -> TrialOutcome:
    """One trial (runs in a worker process when workers > 1): fit, sample, score every canary."""
    model, synthetic, start = _fit_and_sample(job)
    scores = _WORKER["family"].scores(synthetic, _WORKER["canaries"], Schema.from_dict(_WORKER["schema"]),
                                      _WORKER["spec"])
    return _outcome(job, model, scores, start)


def _one_per_canary(canaries: pd.DataFrame) -> pd.DataFrame:
    return canaries.drop_duplicates("canary").sort_values("canary").reset_index(drop=True)


def _resolve_model(model: str | type) -> type:
    from synthkit.models import BY_NAME, Synthesizer
    if isinstance(model, str):
        if model not in BY_NAME:
            raise ConfigError(f"unknown model {model!r}; choose one of {sorted(BY_NAME)}")
        return BY_NAME[model]
    if isinstance(model, type) and issubclass(model, Synthesizer):
        return model
    raise ConfigError(f"model must be a model name or a Synthesizer class, got {type(model).__name__}")


def _seed_int(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1, dtype=np.uint32)[0])


# ====================================================================== the audit
@dataclass(frozen=True, slots=True, kw_only=True)
class AuditResult:
    """Everything audit.json holds (see `to_dict`)."""

    model: str
    hyperparameters: dict[str, Any]
    private: bool
    target_epsilon: float | None
    claimed_epsilon: float | None
    delta: float
    guarantee: str
    unit: str
    n_canaries: int
    n_trials: int
    n_synthetic: int
    recipe: tuple[str, ...]
    bound: BoundResult
    roc: dict[str, Any]
    seconds: float
    seconds_per_trial: float
    workers: int
    device: str
    synthetic_unit: str = "rows"
    attack: str = TABLE_ATTACK

    @property
    def verdict(self) -> Verdict:
        return audit_verdict(epsilon_lower_bound=self.bound.epsilon_lower_bound,
                             max_attainable=self.bound.max_attainable, claimed_epsilon=self.claimed_epsilon)

    def explanation(self) -> str:
        return _explain(verdict=self.verdict, bound=self.bound.to_dict(), claimed=self.claimed_epsilon,
                        delta=self.delta, canaries_per_trial=self.n_canaries, trials=self.n_trials)

    def to_dict(self) -> dict[str, Any]:
        import synthkit
        return {
            "kind": "synthkit.privacy_audit",
            "version": AUDIT_VERSION,
            "model": self.model,
            "hyperparameters": _jsonable(self.hyperparameters),
            "privacy": {"private": self.private, "target_epsilon": self.target_epsilon,
                        "claimed_epsilon": self.claimed_epsilon, "delta": self.delta, "guarantee": self.guarantee,
                        "unit": self.unit},
            "design": {
                "method": "one-run auditing pooled over independent training runs (Steinke, Nasr & Jagielski 2023)",
                "canaries_per_trial": self.n_canaries, "trials": self.n_trials, "inclusion_probability": 0.5,
                "canary_recipe": list(self.recipe),
                "attack": self.attack,
                f"synthetic_{self.synthetic_unit}_per_trial": self.n_synthetic,
                "guess_grid": [list(g) for g in GUESS_GRID],
            },
            "result": {**self.bound.to_dict(), "verdict": self.verdict, "passed": VERDICT_PASSED[self.verdict],
                       "explanation": self.explanation()},
            "roc": self.roc,
            "timing": {"seconds": round(self.seconds, 3), "seconds_per_trial": round(self.seconds_per_trial, 3),
                       "workers": self.workers, "device": self.device},
            "versions": {"synthkit": synthkit.__version__, "python": platform.python_version()},
        }

    def save(self, out: str | Path, *, overwrite: bool = False) -> Path:
        """Write out/audit.json and out/audit.html, each atomically (temp file + rename)."""
        from synthkit.errors import ArtifactError
        out = Path(out)
        target = out / "audit.json"
        if target.exists() and not overwrite:
            raise ArtifactError(f"{str(target)!r} already exists; choose another --out or pass --overwrite")
        out.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        _atomic_write(target, json.dumps(data, indent=2, allow_nan=False))
        _atomic_write(out / "audit.html", render_html(data))
        return target


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_audit(
    frame: pd.DataFrame | Table,
    *,
    model: str | type,
    budget: PrivacyBudget | None,
    schema: Schema | None = None,
    delta: float | None = None,
    n_canaries: int = 64,
    n_trials: int = 200,
    model_params: dict[str, Any] | None = None,
    n_synthetic: int | None = None,
    confidence: float = 0.95,
    workers: int | None = 1,
    seed: int | None = None,
    progress: Progress | None = None,
) -> AuditResult:
    """Audit `model`'s DP claim on `frame` (see the module docstring for the method).

    `budget=None` audits a run without privacy (its bound is compared with nothing; `delta`
    then sets the δ of the bound). `model_params` are the model's hyperparameters (epochs,
    batch_size, device, sizes...); `seed` fixes the canaries, the trials' inclusions, the
    initialisations and the samples; under a budget each fit's DP noise is fresh OS entropy
    (synthkit.noise), as in a real release, so only a run without a budget repeats exactly. For DPHMM the
    schema names entity_key and sequence_index (and context_columns), and `n_synthetic`
    counts synthetic ENTITIES (default 10x the data's entities, 10,000 to 100,000). `workers` > 1
    runs trials in separate processes (one torch thread each); None picks the CPU count.
    """
    start = time.perf_counter()
    cls = _resolve_model(model)
    if isinstance(frame, Table):
        schema, frame = frame.schema, frame.frame
    if schema is None:
        from synthkit.schema import infer_schema
        schema = infer_schema(frame)
    schema = schema.validate()
    Table.from_frame(frame, schema)  # every problem listed before any training
    problems = []
    if not (isinstance(n_canaries, int) and n_canaries >= 2):
        problems.append(f"canaries must be an integer >= 2, got {n_canaries!r}")
    if not (isinstance(n_trials, int) and n_trials >= 1):
        problems.append(f"trials must be an integer >= 1, got {n_trials!r}")
    if not (0.5 <= confidence < 1):
        problems.append(f"confidence must be in [0.5, 1), got {confidence!r}")
    if workers is not None and not (isinstance(workers, int) and workers >= 1):
        problems.append(f"workers must be an integer >= 1, got {workers!r}")
    if n_synthetic is not None and not (isinstance(n_synthetic, int) and n_synthetic >= 1):
        problems.append(f"synthetic rows must be an integer >= 1, got {n_synthetic!r}")
    if budget is None and delta is None:
        problems.append("without a budget, give the delta at which to compute the bound (e.g. 1e-6)")
    if problems:
        raise ConfigError("; ".join(problems))
    if "canary" in frame.columns:
        raise DataValidationError(["the data has a column named 'canary', which the audit reserves; rename it"])
    delta = budget.delta if budget is not None else float(delta)  # type: ignore[arg-type]
    params = dict(model_params or {})
    params.pop("seed", None)
    family = _family(cls, schema, params)
    n_synthetic = n_synthetic or int(min(max(10 * family.n_units(frame, schema), 10_000), 100_000))

    root = np.random.SeedSequence(seed)
    s_canary, s_bits, s_trials, s_tie = root.spawn(4)
    rng_canary = np.random.default_rng(s_canary)
    bits = np.random.default_rng(s_bits).random((n_trials, n_canaries)) < 0.5
    trial_seqs = s_trials.spawn(n_trials + 1)

    def job(i: int, included: np.ndarray) -> TrialJob:
        a, b, c = trial_seqs[i + 1].spawn(3)
        fixed = seed is not None
        return TrialJob(index=i, included=included, model_seed=_seed_int(a) if fixed else None,
                        sample_seed=_seed_int(b) if fixed else None, shuffle_seed=_seed_int(c) if fixed else None)

    context: dict[str, Any] = {"schema": schema.to_dict(), "frame": frame, "model_class": cls, "params": params,
                               "budget": None if budget is None else {"epsilon": budget.epsilon, "delta": budget.delta},
                               "n_synthetic": n_synthetic, "family": family}
    # 1. reference fit without canaries: DP bounds for canary placement and a baseline score
    _init_worker(context, None)
    ref_job = job(-1, np.zeros(n_canaries, dtype=bool))
    ref_model, ref_sample, _ = _fit_and_sample(ref_job)
    spec = family.spec(schema, reference=ref_sample, model=ref_model)
    canaries = family.craft(frame, schema, spec, n_canaries=n_canaries, rng=rng_canary)
    context["canaries"] = canaries
    context["spec"] = spec
    _init_worker(context, None)
    ref_scores = family.scores(ref_sample, canaries, schema, spec)
    del ref_model, ref_sample  # the reference sample never leaves this function
    if progress:
        progress("trials", 0, n_trials)

    # 2. the trials, in parallel where asked
    jobs = [job(t, bits[t]) for t in range(n_trials)]
    n_workers = min(n_trials, os.cpu_count() or 1) if workers is None else min(workers, n_trials)
    outcomes: list[TrialOutcome] = []
    if n_workers <= 1:
        for j in jobs:
            outcomes.append(_run_trial(j))
            if progress:
                progress("trials", len(outcomes), n_trials)
    else:
        mp = multiprocessing.get_context("spawn")  # torch and fork do not mix
        with cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=mp, initializer=_init_worker,
                                    initargs=(context, 1)) as pool:
            for fut in cf.as_completed([pool.submit(_run_trial, j) for j in jobs]):
                outcomes.append(fut.result())
                if progress:
                    progress("trials", len(outcomes), n_trials)
    outcomes.sort(key=lambda o: o.index)

    # 3. scores → centred → bound and ROC
    raw = np.stack([o.scores for o in outcomes])                     # [T, m]
    baseline = np.median(np.vstack([ref_scores[None, :], raw]), axis=0)
    centred = (raw - baseline[None, :]).ravel()
    membership = bits.ravel()
    bound = epsilon_lower_bound(centred, membership, delta=delta, confidence=confidence,
                                rng=np.random.default_rng(s_tie))
    spent = [o.epsilon_spent for o in outcomes if o.epsilon_spent is not None]
    claimed = max(spent) if budget is not None and spent else None
    seconds = time.perf_counter() - start
    result = AuditResult(
        model=cls.model_name or cls.__name__, hyperparameters=params, private=budget is not None,
        target_epsilon=None if budget is None else budget.epsilon, claimed_epsilon=claimed, delta=delta,
        guarantee=outcomes[0].guarantee, unit="entity" if schema.entity_key else "row", n_canaries=n_canaries,
        n_trials=n_trials, n_synthetic=n_synthetic, synthetic_unit=family.unit_noun, attack=family.attack,
        recipe=spec.recipe, bound=bound,
        roc=roc_summary(centred, membership), seconds=seconds,
        seconds_per_trial=float(np.mean([o.seconds for o in outcomes])), workers=n_workers, device=outcomes[0].device)
    logger.info("audit of %s: epsilon lower bound %.3f (claimed %s), %d canaries in %d trials",
                result.model, bound.epsilon_lower_bound, claimed, bound.n_canaries, n_trials)
    return result


# ====================================================================== report
def audit_section(data: dict[str, Any] | AuditResult | str | Path) -> dict[str, Any]:
    """The audit as a JSON-able report section: metrics with value, threshold, pass/fail and
    a plain explanation, the ROC curve points, and an inline SVG. Accepts an AuditResult,
    its dict, or the path of audit.json (so the report needs no torch)."""
    if isinstance(data, AuditResult):
        data = data.to_dict()
    elif isinstance(data, (str, Path)):
        data = json.loads(Path(data).read_text(encoding="utf-8"))
    res, roc, priv = data["result"], data["roc"], data["privacy"]
    claimed = priv["claimed_epsilon"]
    conf = res["confidence"]
    # Recomputed from the numbers, so an audit.json written before "inconclusive" existed
    # (which called an audit without power "consistent") is not read as a pass.
    verdict = audit_verdict(epsilon_lower_bound=res["epsilon_lower_bound"], max_attainable=res.get("max_attainable"),
                            claimed_epsilon=claimed)
    if verdict == "consistent" and res.get("verdict") == "inconclusive":
        verdict = "inconclusive"
    explanation = res["explanation"]
    if verdict != res.get("verdict"):
        design = data.get("design", {})
        explanation = _explain(verdict=verdict, bound=res, claimed=claimed, delta=priv["delta"],
                               canaries_per_trial=design.get("canaries_per_trial"), trials=design.get("trials"))
    metrics = [
        {"id": "privacy.audit.epsilon_lower_bound", "value": res["epsilon_lower_bound"], "threshold": claimed,
         # a pass only when the audit could have refuted the claim and did not
         "passed": VERDICT_PASSED[verdict],
         "explanation": explanation},
        {"id": "privacy.audit.auc", "value": roc["auc"], "threshold": None, "passed": None,
         "explanation": "Area under the attack's ROC curve over all planted canaries: 0.5 means the attacker "
                        "cannot tell planted canaries from absent ones; 1.0 means it always can."},
    ]
    for fpr, tpr in roc["tpr_at_fpr"].items():
        metrics.append({"id": f"privacy.audit.tpr_at_fpr_{fpr}", "value": tpr, "threshold": None, "passed": None,
                        "explanation": f"Share of planted canaries the attacker spots while wrongly accusing at most "
                                       f"{float(fpr):.0%} of absent ones."})
    return {
        "id": "privacy.audit",
        "title": "Empirical privacy audit",
        "model": data["model"],
        "claimed_epsilon": claimed,
        "delta": priv["delta"],
        "epsilon_lower_bound": res["epsilon_lower_bound"],
        "confidence": conf,
        "verdict": verdict,
        "max_attainable": res.get("max_attainable"),
        "explanation": explanation,
        "metrics": metrics,
        "roc_curve": roc["curve"],
        "design": data["design"],
        "svg": roc_svg(roc["curve"], claimed_epsilon=claimed, delta=priv["delta"]),
    }


def roc_svg(curve: Sequence[Sequence[float]], *, claimed_epsilon: float | None, delta: float,
            size: int = 320) -> str:
    """Inline SVG of the attack ROC, the chance diagonal and, for a DP claim, the (ε, δ)-DP
    frontier TPR ≤ min(e^ε·FPR + δ, 1 − e^−ε·(1 − δ − FPR)) the curve must stay under."""
    pad = 40
    inner = size - 2 * pad

    def xy(fpr: float, tpr: float) -> str:
        return f"{pad + fpr * inner:.1f},{pad + (1 - tpr) * inner:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
             'role="img" aria-label="attack ROC curve">',
             f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" stroke="#999"/>',
             f'<polyline points="{xy(0, 0)} {xy(1, 1)}" fill="none" stroke="#bbb" stroke-dasharray="4 3"/>']
    if claimed_epsilon is not None:
        e = math.exp(claimed_epsilon)
        xs = np.concatenate([np.linspace(0, 0.02, 50), np.linspace(0.02, 1, 100)])
        ys = np.minimum.reduce([e * xs + delta, 1 - (1 - delta - xs) / e, np.ones_like(xs)])
        pts = " ".join(xy(float(a), float(max(b, 0.0))) for a, b in zip(xs, ys))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#c62828" stroke-width="1.5" '
                     f'stroke-dasharray="6 3"><title>limit allowed by epsilon={claimed_epsilon:.2f}</title></polyline>')
    pts = " ".join(xy(float(a), float(b)) for a, b in curve)
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#1565c0" stroke-width="2"><title>attack ROC</title>'
                 '</polyline>')
    parts.append(f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="12">false positive rate</text>')
    parts.append(f'<text x="12" y="{size / 2}" text-anchor="middle" font-size="12" '
                 f'transform="rotate(-90 12 {size / 2})">true positive rate</text>')
    for v in (0, 0.5, 1):
        parts.append(f'<text x="{pad + v * inner:.1f}" y="{pad + inner + 14}" text-anchor="middle" '
                     f'font-size="10">{v:g}</text>')
        parts.append(f'<text x="{pad - 6}" y="{pad + (1 - v) * inner + 4:.1f}" text-anchor="end" '
                     f'font-size="10">{v:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_fragment(data: dict[str, Any] | AuditResult) -> str:
    """An HTML fragment (no <html>/<head>) for the evaluation report."""
    sec = audit_section(data)
    e = html.escape
    claimed = "none (trained without privacy)" if sec["claimed_epsilon"] is None else f"{sec['claimed_epsilon']:.3f}"

    def result_cell(m: dict[str, Any]) -> str:
        if m["passed"] is not None:
            return "pass" if m["passed"] else "FAIL"
        return "inconclusive" if m["id"] == "privacy.audit.epsilon_lower_bound" and \
            sec["verdict"] == "inconclusive" else ""

    rows = "".join(
        f"<tr><td>{e(m['id'])}</td><td>{_fmt(m['value'])}</td><td>{_fmt(m['threshold'])}</td>"
        f"<td>{result_cell(m)}</td><td>{e(m['explanation'])}</td></tr>"
        for m in sec["metrics"])
    verdict = VERDICT_LABELS[sec["verdict"]]
    top = "" if sec["max_attainable"] is None else \
        f" The most this design can show is {sec['max_attainable']:.3f}."
    return (f'<section id="privacy-audit"><h2>{e(sec["title"])}: {e(sec["model"])}</h2>'
            f"<p><strong>{e(verdict)}</strong>: empirical epsilon lower bound "
            f"<strong>{sec['epsilon_lower_bound']:.3f}</strong> ({sec['confidence']:.0%} confidence) versus claimed "
            f"epsilon {e(claimed)} at delta {sec['delta']:g}.{e(top)}</p>"
            + (f"<p>{e(sec['explanation'])}</p>" if sec["verdict"] == "inconclusive" else "") +
            f"{sec['svg']}"
            "<table><thead><tr><th>metric</th><th>value</th><th>threshold</th><th>result</th><th>meaning</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>"
            f"<p>Canaries: {e('; '.join(sec['design']['canary_recipe']))}.</p></section>")


def render_html(data: dict[str, Any] | AuditResult) -> str:
    """A standalone, self-contained audit.html (no external resources)."""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>synthkit privacy audit</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;"
            "vertical-align:top}</style></head><body>" + render_fragment(data) + "</body></html>")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))
