"""Sequence metrics for entity + events data (a patient's visits, an account's transactions).

Rows of one entity (schema `entity_key`) ordered by `sequence_index` form a history.
- length distribution: KS complement of the number of events per entity;
- inter-event times: KS complement of the gaps between consecutive events;
- per-step marginals: column shapes of the t-th event of each history, for the first steps;
- within-entity autocorrelation: lag-1 correlation of each numeric event column, real vs
  synthetic (mean absolute difference);
- transitions: TV complement of the (current → next) category pairs of each discrete
  event column;
- ordering rules: the share of synthetic histories whose rows are out of time order, have
  a missing time, or whose static context columns change within the history.

For the privacy attacks the unit is the entity: `entity_profiles` turns each history into
one row (length, context values, per-column summaries), and `history_keys` gives one hash
per whole history for exact copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reports.encoding import NULL_TOKEN, is_numeric, row_keys
from reports.fidelity import column_shape
from synthkit.schema import Column, Schema

MAX_STEPS = 10
MIN_ENTITIES_PER_STEP = 20


def _sorted(frame: pd.DataFrame, entities: pd.Series, index_col: str) -> pd.DataFrame:
    out = frame.copy()
    out["__entity"] = entities.to_numpy()
    out["__row"] = np.arange(len(out))
    return out.sort_values(["__entity", index_col, "__row"], kind="stable").reset_index(drop=True)


def _lag_pairs(sorted_frame: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    same = (sorted_frame["__entity"].to_numpy()[1:] == sorted_frame["__entity"].to_numpy()[:-1])
    v = sorted_frame[col].to_numpy()
    return v[:-1][same], v[1:][same]


@dataclass(frozen=True, slots=True)
class SequenceResult:
    length_similarity: float | None
    inter_event_time_similarity: float | None
    step_marginals: float | None
    autocorrelation_difference: float | None
    transition_similarity: float | None
    ordering_violations: float
    details: dict[str, Any]


def sequence_metrics(real: pd.DataFrame, real_entities: pd.Series, synthetic: pd.DataFrame,
                     synthetic_entities: pd.Series, schema: Schema, columns: list[Column]) -> SequenceResult:
    idx = schema.sequence_index
    assert idx is not None
    event_cols = [c for c in columns if c.name != idx and c.name not in schema.context_columns]
    r, s = _sorted(real, real_entities, idx), _sorted(synthetic, synthetic_entities, idx)
    details: dict[str, Any] = {}

    len_r = r.groupby("__entity", sort=False).size()
    len_s = s.groupby("__entity", sort=False).size()
    length = column_shape(len_r.astype(float), len_s.astype(float), numeric=True) if len(len_s) else 0.0

    gaps = []
    for frame in (r, s):
        a, b = _lag_pairs(frame, idx)
        gaps.append(pd.Series(b.astype(float) - a.astype(float)))
    gap_score = column_shape(gaps[0], gaps[1], numeric=True) if len(gaps[0]) and len(gaps[1]) else None

    r_step = r.groupby("__entity", sort=False).cumcount().to_numpy()
    s_step = s.groupby("__entity", sort=False).cumcount().to_numpy()
    per_step = []
    for t in range(MAX_STEPS):
        rt, st = r[r_step == t], s[s_step == t]
        if len(rt) < MIN_ENTITIES_PER_STEP:
            break
        if len(st) == 0:
            per_step.append(0.0)
            continue
        scores = [column_shape(rt[c.name], st[c.name], numeric=is_numeric(c)) for c in event_cols]
        scores = [v for v in scores if v is not None]
        if scores:
            per_step.append(float(np.mean(scores)))
    details["step_scores"] = per_step

    auto = {}
    for c in event_cols:
        if not is_numeric(c):
            continue
        corr = []
        for frame in (r, s):
            a, b = _lag_pairs(frame, c.name)
            a, b = a.astype(float), b.astype(float)
            ok = np.isfinite(a) & np.isfinite(b)
            corr.append(float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 and np.std(a[ok]) > 0 and np.std(b[ok]) > 0 else None)
        if corr[0] is not None:
            auto[c.name] = abs(corr[0] - (corr[1] if corr[1] is not None else 0.0))
    details["autocorrelation_difference_by_column"] = auto

    trans = {}
    for c in event_cols:
        if is_numeric(c):
            continue
        pairs = []
        for frame in (r, s):
            a, b = _lag_pairs(frame, c.name)
            pairs.append(pd.Series([f"{x}\x1f{y}" for x, y in zip(pd.Series(a).fillna(NULL_TOKEN), pd.Series(b).fillna(NULL_TOKEN))], dtype=object))
        if len(pairs[0]):
            trans[c.name] = column_shape(pairs[0], pairs[1], numeric=False) if len(pairs[1]) else 0.0
    details["transition_similarity_by_column"] = trans

    violations, context_changes = ordering_violations(synthetic, synthetic_entities, schema)
    details["context_change_share"] = context_changes
    details["n_steps_scored"] = len(per_step)
    return SequenceResult(
        length_similarity=length, inter_event_time_similarity=gap_score,
        step_marginals=float(np.mean(per_step)) if per_step else None,
        autocorrelation_difference=float(np.mean(list(auto.values()))) if auto else None,
        transition_similarity=float(np.mean(list(trans.values()))) if trans else None,
        ordering_violations=violations, details=details)


def ordering_violations(frame: pd.DataFrame, entities: pd.Series, schema: Schema) -> tuple[float, float]:
    """(share of histories out of time order or with a missing time, share of histories
    whose context columns change), judged in the order the rows are given."""
    idx = schema.sequence_index
    ent = entities.to_numpy()
    if len(frame) == 0:
        return 0.0, 0.0
    t = frame[idx].to_numpy(dtype=float)
    same = np.r_[False, ent[1:] == ent[:-1]]
    bad_row = ~np.isfinite(t)
    bad_row[1:] |= same[1:] & (t[1:] < t[:-1])
    # an entity whose rows are not contiguous is also out of order
    codes, uniq = pd.factorize(ent, sort=False)
    runs = np.r_[True, codes[1:] != codes[:-1]]
    runs_per_entity = np.bincount(codes[runs], minlength=len(uniq))
    bad_entity = np.bincount(codes[bad_row], minlength=len(uniq)) > 0
    bad_entity |= runs_per_entity > 1
    changed = np.zeros(len(uniq), dtype=bool)
    for name in schema.context_columns:
        nunique = pd.Series(frame[name].fillna(NULL_TOKEN).astype(str).to_numpy()).groupby(codes).nunique()
        changed |= (nunique.reindex(range(len(uniq)), fill_value=1).to_numpy() > 1)
    return float(bad_entity.mean()), float(changed.mean())


def history_keys(frame: pd.DataFrame, entities: pd.Series, schema: Schema, columns: list[Column]) -> np.ndarray:
    """One 64-bit hash per entity over its whole ordered history (for exact copies)."""
    idx = schema.sequence_index
    s = _sorted(frame, entities, idx) if idx else frame.assign(__entity=entities.to_numpy())
    rk = row_keys(s, columns)
    text = pd.Series(rk.astype(str)).groupby(s["__entity"].to_numpy(), sort=False).agg(" ".join)
    return pd.util.hash_pandas_object(text, index=False).to_numpy()


def entity_profiles(frame: pd.DataFrame, entities: pd.Series, schema: Schema,
                    columns: list[Column]) -> tuple[pd.DataFrame, list[Column]]:
    """One row per entity: number of events, context values, and for each event column
    its mean/min/max (numbers) or most frequent value and number of distinct values."""
    ent = entities.to_numpy()
    g = frame.assign(__entity=ent).groupby("__entity", sort=False)
    out: dict[str, Any] = {"n_events": g.size().astype(float)}
    cols = [Column(name="n_events", kind="integer")]
    for c in columns:
        if c.name in schema.context_columns:
            out[c.name] = g[c.name].first()
            cols.append(c)
        elif is_numeric(c):
            for stat in ("mean", "min", "max"):
                out[f"{c.name}.{stat}"] = g[c.name].agg(stat).astype(float)
                cols.append(Column(name=f"{c.name}.{stat}", kind="continuous"))
        else:
            filled = frame[c.name].fillna(NULL_TOKEN).astype(str)
            gg = filled.groupby(ent, sort=False)
            mode = gg.agg(lambda x: x.value_counts().index[0])
            out[f"{c.name}.mode"] = mode.where(mode != NULL_TOKEN, None)
            out[f"{c.name}.n_distinct"] = gg.nunique().astype(float)
            cols.extend([Column(name=f"{c.name}.mode", kind="categorical"),
                         Column(name=f"{c.name}.n_distinct", kind="integer")])
    profile = pd.DataFrame({k: pd.Series(v).reset_index(drop=True) for k, v in out.items()})
    return profile, cols
