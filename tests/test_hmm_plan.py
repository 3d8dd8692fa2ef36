"""DPHMM's preprocessing plan gives its DP range histograms RANGE_WEIGHT times the ρ of
another histogram (synthkit.models.hmm.preprocess), the part above 1 on top of the
preprocessing share (the context's cumulative target rises by it; DP-SGD pays), and keeps
that weight when the noise is rescaled to the DP contribution bound. These tests set WEIGHT."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from synthkit import DPHMM, PrivacyBudget, Schema
from synthkit.ledger import PrivacyLedger
from synthkit.models.hmm import preprocess
from synthkit.models.hmm.preprocess import plan_sequence_preprocessing
from synthkit.schema import Column
from synthkit.transforms import DataTransformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
WEIGHT = 4.0
SCHEMA = Schema(columns=(
    Column(name="pid", kind="identifier", nullable=False),
    Column(name="year", kind="integer", nullable=False, bounds=(2000, 2003)),
    Column(name="visits", kind="integer", nullable=False),   # no bounds: a DP range
    Column(name="income", kind="continuous", nullable=False),  # no bounds: a DP range
    Column(name="flag", kind="boolean", nullable=False),
), entity_key="pid", sequence_index="year")


def _plan(weight: float):
    ledger = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=2)
    transformer = DataTransformer(Schema(columns=SCHEMA.columns[2:]))
    old = preprocess.RANGE_WEIGHT
    preprocess.RANGE_WEIGHT = weight
    try:
        plan, target = plan_sequence_preprocessing(transformer, budget=BUDGET, ledger=ledger, plan_k=2,
                                                   max_length=None, max_gap=None, epsilon_share=0.2, shares=0.5,
                                                   inference=[])
        return plan, ledger, target
    finally:
        preprocess.RANGE_WEIGHT = old


def test_range_histograms_get_the_weight_on_top_of_the_share():
    """Exact: 2 range histograms (the two columns; since session 13 the gaps' range is one of the
    histograms at σ_hist, GAP_RANGE_WEIGHTED False) at σ_hist/√RANGE_WEIGHT, the rest at
    σ_hist; with the ranges at σ_hist the plan spends exactly the preprocessing share (0.2·ε),
    so no other preprocessing σ pays for the weight (the same σ_hist as with weight 1); and
    the context's cumulative target is the (preprocessing + context) share composed with
    exactly the ranges' extra ρ. Negative control, run once: the plan of session 8 (weight
    inside the share) gave σ_hist 1.35 times weight 1's and failed the σ_hist equality."""
    from synthkit.ledger import GaussianEvent, compose_epsilon
    from synthkit.models.hmm.preprocess import _gaussian_of_epsilon
    plan, ledger, target = _plan(WEIGHT)
    assert plan.n_bounds == 2
    assert plan.sigma_range == pytest.approx(plan.sigma_hist / math.sqrt(WEIGHT), rel=1e-12)
    flat, _, flat_target = _plan(1.0)
    assert flat.sigma_range == pytest.approx(flat.sigma_hist, rel=1e-12)
    assert plan.sigma_hist == pytest.approx(flat.sigma_hist, rel=1e-12)
    assert flat_target == pytest.approx(0.5 * BUDGET.epsilon, rel=1e-12)
    assert ledger.epsilon_if(flat.events()) == pytest.approx(0.2 * BUDGET.epsilon, rel=1e-6)
    extra = GaussianEvent(name="x", sigma=plan.sigma_hist, sensitivity=float(plan.k), count=int(2 * (WEIGHT - 1)))
    assert target == pytest.approx(compose_epsilon([extra, _gaussian_of_epsilon(0.5 * BUDGET.epsilon, BUDGET.delta)],
                                                   BUDGET.delta), rel=1e-9)
    assert ledger.epsilon_if(plan.events()) <= target


def test_a_fit_charges_its_ranges_at_the_weighted_noise(monkeypatch):
    """A private fit with a DP maximum length (the plan is made for k = 2, then rescaled to
    the DP bound): every `bounds:*` event has σ = σ_hist/√WEIGHT of the `histogram:*`
    events, at the same sensitivity. Negative control, run once: without rescaling
    sigma_bounds with the bound (only sigma_hist), the ranges were charged at half that σ
    (planned for k = 2, sensitivity 4): less noise than the plan's ρ, a privacy bug."""
    monkeypatch.setattr(preprocess, "RANGE_WEIGHT", WEIGHT)
    rng = np.random.default_rng(0)
    n, t = 400, 4
    events = pd.DataFrame({
        "pid": np.repeat([f"P{i:04d}" for i in range(n)], t),
        "year": np.tile(np.arange(2000, 2000 + t), n),
        "visits": rng.poisson(2.0, n * t),
        "income": rng.lognormal(1.0, 0.5, n * t).round(2),
        "flag": rng.random(n * t) < 0.3,
    })
    model = DPHMM(n_states=2, epochs=1, batch_size=128, context_epochs=1, context_batch_size=128, device="cpu",
                  seed=0).fit(events, schema=SCHEMA, budget=BUDGET)
    ev = {e.name: e for e in model.ledger_.events}
    for column in ("visits", "income"):
        b, h = ev[f"bounds:{column}"], ev[f"histogram:{column}"]
        assert b.sensitivity == h.sensitivity == model.layout_["max_length"]
        assert b.sigma == pytest.approx(h.sigma / math.sqrt(WEIGHT), rel=1e-9)
