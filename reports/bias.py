"""Bias: does the synthetic data treat small groups worse?

DP noise has the same absolute size for every group, so relative to a small group it is
large: a rare group is the first to be under-represented, distorted, or made useless for
modelling. For each sensitive attribute (schema `sensitive`) and each of its groups:
- representation: the group's share of synthetic rows beside its share of real train rows;
- subgroup fidelity: the column shapes score (sdmetrics KS/TV complements) of the group's
  synthetic rows against the group's real train rows;
- subgroup utility: the ML-utility score (TSTR and TRTR) on the group's holdout rows;
and the largest gap across groups. Groups with fewer than `MIN_GROUP_ROWS` real rows
are not scored one by one (their statistics would be about a handful of people); a
group's name is shown only when it is public (declared in the schema) or present in the
synthetic data (released under DP); otherwise it is called "unreleased group".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports.encoding import NULL_TOKEN, is_numeric
from reports.fidelity import Utility, column_shape, score
from synthkit.schema import Column

MIN_GROUP_ROWS = 20
MAX_GROUP_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class GroupStats:
    label: str
    real_share: float
    synthetic_share: float
    fidelity: float | None
    tstr: float | None = None
    trtr: float | None = None

    @property
    def utility_loss(self) -> float | None:
        if self.tstr is None or self.trtr is None:
            return None
        return self.trtr - self.tstr


@dataclass(frozen=True, slots=True)
class BiasResult:
    attribute: str
    groups: list[GroupStats]
    n_small_groups: int
    utility_score: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def representation_gap(self) -> float | None:
        if not self.groups:
            return None
        return max(abs(g.synthetic_share - g.real_share) for g in self.groups)

    @property
    def min_representation_ratio(self) -> float | None:
        if not self.groups:
            return None
        return min(g.synthetic_share / g.real_share for g in self.groups)

    @property
    def max_fidelity_gap(self) -> float | None:
        vals = [g.fidelity for g in self.groups if g.fidelity is not None]
        return (max(vals) - min(vals)) if len(vals) >= 2 else None

    @property
    def max_utility_gap(self) -> float | None:
        vals = [g.utility_loss for g in self.groups if g.utility_loss is not None]
        return (max(vals) - min(vals)) if len(vals) >= 2 else None

    def details(self) -> dict[str, Any]:
        return {"groups": [{"group": g.label, "real_share": g.real_share, "synthetic_share": g.synthetic_share,
                            "fidelity": g.fidelity, "tstr": g.tstr, "trtr": g.trtr} for g in self.groups],
                "n_groups_too_small_to_score": self.n_small_groups, "utility_score": self.utility_score}


def _labels(s: pd.Series) -> pd.Series:
    return s.fillna(NULL_TOKEN).astype(str)


def subgroup_bias(attribute: Column, train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                  columns: list[Column], *, utility: Utility | None, rng: np.random.Generator) -> BiasResult:
    public = set(attribute.categories or ()) | ({"True", "False"} if attribute.kind == "boolean" else set())
    real_lab, syn_lab = _labels(train[attribute.name]), _labels(synthetic[attribute.name])
    counts = real_lab.value_counts()
    syn_counts = syn_lab.value_counts()
    released = set(syn_counts.index) | public
    others = [c for c in columns if c.name != attribute.name]
    hold_lab = _labels(holdout[attribute.name]).to_numpy() if utility is not None else None
    groups: list[GroupStats] = []
    n_small = 0
    unreleased = 0
    for value, n in counts.items():
        if n < MIN_GROUP_ROWS:
            n_small += 1
            continue
        if value in released:
            label = "(missing)" if value == NULL_TOKEN else str(value)
        else:
            unreleased += 1
            label = f"unreleased group {unreleased}"
        r = train[real_lab.to_numpy() == value]
        s = synthetic[syn_lab.to_numpy() == value]
        if len(r) > MAX_GROUP_ROWS:
            r = r.iloc[rng.choice(len(r), MAX_GROUP_ROWS, replace=False)]
        if len(s) > MAX_GROUP_ROWS:
            s = s.iloc[rng.choice(len(s), MAX_GROUP_ROWS, replace=False)]
        if len(s) == 0:
            fid = 0.0  # the group is absent: nothing of it is reproduced
        else:
            scores = [column_shape(r[c.name], s[c.name], numeric=is_numeric(c)) for c in others]
            scores = [v for v in scores if v is not None]
            fid = float(np.mean(scores)) if scores else None
        tstr = trtr = None
        if utility is not None and utility.target != attribute.name:
            rows = hold_lab[utility.holdout_rows] == value
            if rows.sum() >= MIN_GROUP_ROWS:
                labels = sorted(set(utility.holdout_y)) if utility.task == "multiclass" else None
                tstr = score(utility.task, utility.holdout_y[rows], utility.tstr_pred[rows], labels)
                trtr = score(utility.task, utility.holdout_y[rows], utility.trtr_pred[rows], labels)
        groups.append(GroupStats(label=label, real_share=float(n / len(train)),
                                 synthetic_share=float(syn_counts.get(value, 0) / max(len(synthetic), 1)),
                                 fidelity=fid, tstr=tstr, trtr=trtr))
    return BiasResult(attribute=attribute.name, groups=groups, n_small_groups=n_small,
                      utility_score=utility.score_name if utility is not None else None)
