"""Helpers for quality tests: sdmetrics scores and the trivial DP baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sdmetrics.reports.single_table import QualityReport

from synthkit import PrivacyBudget, Schema
from synthkit.ledger import PrivacyLedger
from synthkit.mechanisms import plan_preprocessing
from synthkit.transforms import CategoricalTransform, DataTransformer, FitContext

_SDTYPE = {"continuous": "numerical", "integer": "numerical", "categorical": "categorical",
           "boolean": "boolean", "datetime": "datetime"}


def sdmetrics_scores(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict[str, float]:
    cols = [c for c in schema.learned_columns]
    meta = {"columns": {c.name: {"sdtype": _SDTYPE[c.kind]} for c in cols}}
    names = [c.name for c in cols]
    r, s = real[names].copy(), synthetic[names].copy()
    for c in cols:  # sdmetrics wants plain dtypes
        if c.kind in ("integer", "continuous"):
            r[c.name] = pd.to_numeric(r[c.name], errors="coerce").astype(float)
            s[c.name] = pd.to_numeric(s[c.name], errors="coerce").astype(float)
        elif c.kind in ("categorical", "boolean"):
            r[c.name] = r[c.name].astype(str)
            s[c.name] = s[c.name].astype(str)
    report = QualityReport()
    report.generate(r, s, meta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return {"shapes": float(props["Column Shapes"]), "pairs": pair_trends(r, s, cols)}


def pair_trends(r: pd.DataFrame, s: pd.DataFrame, cols) -> float:
    """Mean over ALL column pairs of sdmetrics' pair metrics: CorrelationSimilarity for two
    numeric columns, ContingencySimilarity otherwise (numeric columns cut into 10 bins at
    the real data's deciles). sdmetrics' QualityReport silently leaves numeric pairs out
    (NaN) in this version, so the pairs are scored one by one here."""
    from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
    numeric = {c.name for c in cols if c.kind in ("integer", "continuous")}
    rb, sb = r.copy(), s.copy()
    for name in numeric:
        edges = np.unique(np.nanquantile(r[name], np.linspace(0, 1, 11)))
        edges[0], edges[-1] = -np.inf, np.inf
        rb[name] = pd.cut(r[name], edges, duplicates="drop").astype(str)
        sb[name] = pd.cut(s[name], edges, duplicates="drop").astype(str)
    names = [c.name for c in cols]
    scores = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if a in numeric and b in numeric:
                pair_r, pair_s = r[[a, b]].dropna(), s[[a, b]].dropna()
                # a constant (or empty) synthetic column has no correlation at all, as in reports.fidelity
                score = (CorrelationSimilarity.compute(pair_r, pair_s)
                         if len(pair_s) > 2 and pair_s.std().min() > 0 else 0.0)
            else:
                score = ContingencySimilarity.compute(rb[[a, b]], sb[[a, b]])
            scores.append(0.0 if not np.isfinite(score) else float(score))
    return float(np.mean(scores))


def independent_dp_baseline(real: pd.DataFrame, schema: Schema, budget: PrivacyBudget, n: int,
                            seed: int) -> pd.DataFrame:
    """The trivial DP baseline: every column sampled independently from its DP histogram,
    with the WHOLE budget spent on those histograms (no pair can be learned). Numeric values
    come from the DP histogram itself (the same margins a model's samples are calibrated to)."""
    rng = np.random.default_rng(seed)
    t = DataTransformer(schema)
    plan = plan_preprocessing(budget=budget, k=1, n_histograms=t.n_histograms(), n_discovery=t.n_discovery(),
                              epsilon_share=0.999)
    ledger = PrivacyLedger(budget=budget)
    n_dp = len(real) + rng.normal(0, plan.sigma_units)
    t.fit(real, FitContext(ledger=ledger, plan=plan, rng=rng, n_rows_dp=n_dp))
    assert ledger.epsilon_spent() <= budget.epsilon
    out = {}
    for name, tr in t.transforms.items():
        if isinstance(tr, CategoricalTransform):
            p = np.asarray(tr.counts_) / np.sum(tr.counts_)
            block = np.eye(len(p), dtype=np.float32)[rng.choice(len(p), size=n, p=p)]
        else:
            mode = rng.choice(len(tr.weights_), size=n, p=tr.weights_)
            x = rng.normal(tr.means_[mode], tr.stds_[mode])
            alpha = np.clip((x - tr.means_[mode]) / (4 * tr.stds_[mode]), -1, 1)
            block = np.zeros((n, 1 + tr.n_modes + (2 if tr.column.nullable else 0)), dtype=np.float32)
            block[:, 0] = alpha
            block[np.arange(n), 1 + mode] = 1
            if tr.column.nullable:
                null = rng.random(n) < tr.null_share_
                block[:, 1 + tr.n_modes] = ~null
                block[:, 2 + tr.n_modes] = null
        decoded = tr.inverse_transform(block) if isinstance(tr, CategoricalTransform) else \
            tr.inverse_transform(block, calibrate=True)  # numeric values drawn from the DP histogram
        out[name] = decoded.reset_index(drop=True)
    return pd.DataFrame(out)
