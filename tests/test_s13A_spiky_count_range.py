"""A spiky count's DP range in DPHMM (issue 18, session 13 A): weeks unemployed, doctor
visits, hospital admissions are mostly 0 with a thin tail, and the tail decides what the
synthetic column can hold (the margins calibrate inside the DP range: a range cut at 1 turns
a 0-60 count into a 0/1 flag). The tail is a few dozen people per half-octave bin of the
range grid, so whether it clears depends on the range histogram's noise: the event columns'
ranges now get `preprocess.RANGE_WEIGHT` = 4 times a histogram's ρ (σ halved; the extra ρ is
on top of the preprocessing share, DP-SGD pays), the gaps' range keeps σ_hist.

Negative control, run once: on 3e68075 (RANGE_WEIGHT 1) `test_a_spiky_counts_tail_is_kept`
fails (the range tops over the same 10 noise draws: 1, 1, 1, 63, 22, 1, 5, 1, 22, 1, so 3
reach 22; now 45-90 in all 10) and `test_only_the_event_ranges_get_the_weight` fails
(RANGE_WEIGHT 1.0)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit.ledger import PrivacyBudget, PrivacyLedger
from synthkit.models.hmm import preprocess
from synthkit.models.hmm.ranges import EntityRangeTransform
from synthkit.schema import Column, Schema
from synthkit.transforms import DataTransformer, FitContext

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
N, K = 3000, 5  # people, yearly records each


def _panel() -> tuple[np.ndarray, np.ndarray]:
    """3,000 people x 5 years; 20% of them have one spell of 1-64 weeks (log-uniform), in
    one year; every other value is 0 (93% zeros among 15,000 events; the spell lengths:
    median 10, 95% quantile about 52)."""
    rng = np.random.default_rng(1)
    weeks = np.zeros(N * K)
    spell = rng.random(N) < 0.2
    year = rng.integers(0, K, N)
    length = np.round(np.exp(rng.uniform(0.0, np.log(64.0), N)))
    weeks[np.arange(N) * K + year] = np.where(spell, length, 0.0)
    return np.repeat(np.arange(N), K), weeks


def _plan(ledger: PrivacyLedger):
    """The default plan of a fit with 8 integer event columns and no public bounds."""
    cols = tuple(Column(name=f"c{i}", kind="integer", nullable=False) for i in range(8))
    plan, _ = preprocess.plan_sequence_preprocessing(
        DataTransformer(Schema(columns=cols)), budget=BUDGET, ledger=ledger, plan_k=K, max_length=K, max_gap=None,
        epsilon_share=0.2, shares=0.5, inference=[])
    return plan


def test_a_spiky_counts_tail_is_kept():
    """Over 10 fixed noise draws, the DP range of the weeks reaches 22 (past the median spell
    of 10, the bin holding 22-31 included) in at least 8. At weight 1 (σ 33.7 people per
    bin against a tail of ~40 people-weights per bin) it stopped at 1 in 6 of the 10 draws;
    at weight 4 (σ 16.8) the tail windows clear."""
    ids, weeks = _panel()
    tops = []
    for seed in range(10):
        ledger = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=K)
        plan = _plan(ledger)
        t = EntityRangeTransform(Column(name="weeks", kind="integer", nullable=False), entity=ids)
        t.fit(pd.Series(weeks), FitContext(ledger=ledger, plan=plan, rng=np.random.default_rng(seed),
                                           n_rows_dp=float(len(weeks))))
        assert t.bounds_[0] == 0.0  # the spike at 0 is inside
        tops.append(t.bounds_[1])
    assert sum(top >= 22 for top in tops) >= 8, tops


def test_only_the_event_ranges_get_the_weight():
    """The plan: the event columns' ranges at σ_hist/2, planned with their extra ρ; the gaps'
    range is run at σ_hist (GAP_RANGE_WEIGHTED False) and planned there, as one of the
    histograms (lead, s13: the plan had counted it at the weight, over the spend)."""
    ledger = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=K)
    plan = _plan(ledger)
    assert preprocess.RANGE_WEIGHT == 4.0 and preprocess.GAP_RANGE_WEIGHTED is False
    assert plan.sigma_range == pytest.approx(plan.sigma_hist / 2.0, rel=1e-12)
    assert plan.n_bounds == 8  # the 8 columns; the gaps' range is one of the histograms (plan = spend)
