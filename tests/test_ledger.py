"""The privacy ledger and its accountant, checked against independent computations.

Independent references used here:
- Google's `dp_accounting` (a different code base from Opacus' analysis module, which the
  ledger uses) for Gaussian and Poisson-sampled Gaussian compositions;
- the closed-form RDP of the Gaussian mechanism, α·Δ²/(2σ²) (Mironov 2017, Prop. 7), with
  the RDP → (ε, δ) conversion of Balle et al. 2020, Thm. 21, written out in this file;
- the exact (ε, δ) curve of the Gaussian mechanism (Balle & Wang 2018, analytic Gaussian),
  which any sound RDP-based ε must be at or above;
- numerical quadrature of the Rényi divergence of the sampled Gaussian mixture, for the
  fractional orders where dp_accounting 0.6 gives up ("failed to converge": +inf).
"""

from __future__ import annotations

import json
import math

import dp_accounting
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize

from independent_accountant import independent_epsilon
from synthkit.errors import BudgetExceededError, ConfigError
from synthkit.ledger import (
    ORDERS,
    GaussianEvent,
    PrivacyBudget,
    PrivacyLedger,
    SampledGaussianEvent,
    ThresholdEvent,
    calibrate_noise_multiplier,
    compose_epsilon,
)
from synthkit.mechanisms import noisy_count, plan_preprocessing

DELTA = 1e-6




def balle_conversion(alpha: np.ndarray, rdp: np.ndarray, delta: float) -> np.ndarray:
    """Balle et al. 2020, Thm. 21: ε(α) = rdp(α) + log((α−1)/α) − (log δ + log α)/(α − 1)."""
    return rdp + np.log((alpha - 1) / alpha) - (np.log(delta) + np.log(alpha)) / (alpha - 1)


# ---------------------------------------------------------------- golden: one Gaussian
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 5.0, 20.0])
def test_single_gaussian_matches_closed_form_on_our_orders(sigma: float) -> None:
    ours = compose_epsilon([GaussianEvent(name="g", sigma=sigma, sensitivity=1.0)], 1e-5)
    alpha = np.asarray(ORDERS, dtype=float)
    golden = float(np.min(balle_conversion(alpha, alpha / (2 * sigma**2), 1e-5)))
    assert ours == pytest.approx(golden, rel=1e-12)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 5.0, 20.0])
def test_single_gaussian_is_sound_and_close_to_the_best_rdp_bound(sigma: float) -> None:
    delta = 1e-5
    ours = compose_epsilon([GaussianEvent(name="g", sigma=sigma, sensitivity=1.0)], delta)
    # Soundness: the exact privacy curve of the Gaussian (Balle & Wang 2018) is the
    # smallest ε any correct accountant may report.
    exact = dp_accounting.get_epsilon_gaussian(sigma, delta)
    assert ours >= exact
    # Tightness: the continuous minimum over α of the same bound is a lower limit for our
    # grid. The grid (step 0.05 below 5, step 1 from 5 to 63) loses at most where the optimum
    # falls mid-way between integer orders: 0.51% at σ=1 (α* = 5.43); we allow 1%.
    best = optimize.minimize_scalar(
        lambda a: float(balle_conversion(np.array([a]), np.array([a / (2 * sigma**2)]), delta)[0]),
        bounds=(1.0001, 2000.0), method="bounded", options={"xatol": 1e-9})
    assert best.fun <= ours <= best.fun * 1.01
    # And Google's dp_accounting, on the same orders, agrees to numerical precision.
    assert independent_epsilon([GaussianEvent(name="g", sigma=sigma, sensitivity=1.0)], delta,
                               orders=list(ORDERS)) == pytest.approx(ours, rel=1e-9)


def test_gaussian_sensitivity_and_count_scale_as_rdp_says() -> None:
    # Δ/σ is all that matters; c-fold composition equals one Gaussian with σ/√c.
    a = compose_epsilon([GaussianEvent(name="g", sigma=6.0, sensitivity=3.0, count=4)], DELTA)
    b = compose_epsilon([GaussianEvent(name="g", sigma=1.0, sensitivity=1.0)], DELTA)
    assert a == pytest.approx(b, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0.3, max_value=50.0), min_size=1, max_size=8))
def test_composing_gaussians_equals_one_gaussian_with_pooled_sigma(sigmas: list[float]) -> None:
    # RDP adds: Σ α/(2σ_i²) = α/(2σ²) with σ = (Σ σ_i⁻²)^(-1/2).
    events = [GaussianEvent(name=f"g{i}", sigma=s, sensitivity=1.0) for i, s in enumerate(sigmas)]
    pooled = sum(s**-2 for s in sigmas) ** -0.5
    assert compose_epsilon(events, DELTA) == pytest.approx(
        compose_epsilon([GaussianEvent(name="p", sigma=pooled, sensitivity=1.0)], DELTA), rel=1e-9)


# ---------------------------------------------------------------- sampled Gaussian (DP-SGD)
SGD_CASES = [  # (q, noise multiplier, steps): DP-SGD settings from ε ≈ 0.2 to ε ≈ 20
    (0.004, 1.1, 14_000),
    (0.01, 1.1, 1_000),
    (0.1, 1.43, 33),
    (0.1, 0.8, 200),
    (0.25, 3.0, 40),
    (0.5, 10.0, 20),
]


@pytest.mark.parametrize(("q", "sigma", "steps"), SGD_CASES)
def test_sampled_gaussian_agrees_with_dp_accounting(q: float, sigma: float, steps: int) -> None:
    event = SampledGaussianEvent(name="dp-sgd", sampling_rate=q, noise_multiplier=sigma, steps=steps)
    ours = compose_epsilon([event], DELTA)
    theirs = independent_epsilon([event], DELTA)
    # The two accountants use different Rényi orders (ours adds 1.05..1.95 and 80..200;
    # dp_accounting's default grid has 5.1..10.9), and dp_accounting 0.6 drops fractional
    # orders whose series it fails to sum. Both are valid upper bounds; on these settings
    # the grids' minima differ by < 0.6% (measured worst case 0.49%, at q=0.1, σ=0.8).
    assert theirs == pytest.approx(ours, rel=0.01)


def _exact_sampled_gaussian_rdp(q: float, sigma: float, alpha: float) -> float:
    """RDP of the Poisson-sampled Gaussian at order α by quadrature of
    E_{z~N(0,σ²)}[((1−q) + q·exp((2z−1)/(2σ²)))^α] (Mironov, Talwar & Zhang 2019, §3)."""
    def integrand(z: float) -> float:
        log_ratio = np.logaddexp(math.log1p(-q), math.log(q) + (2 * z - 1) / (2 * sigma**2))
        return math.exp(-z * z / (2 * sigma**2) + alpha * log_ratio) / (sigma * math.sqrt(2 * math.pi))

    value, _ = integrate.quad(integrand, -60 * sigma, 60 * sigma + 60 * sigma**2, points=[0.0, 0.5],
                              limit=2000, epsabs=0.0, epsrel=1e-11)
    return math.log(value) / (alpha - 1)


@pytest.mark.parametrize(("q", "sigma"), [(0.1, 0.8), (0.25, 3.0), (0.5, 10.0)])
@pytest.mark.parametrize("alpha", [1.05, 1.5, 2.0, 2.5, 7.0])
def test_sampled_gaussian_rdp_matches_quadrature(q: float, sigma: float, alpha: float) -> None:
    # Fractional orders are where dp_accounting cannot serve as the reference; quadrature can.
    ours = SampledGaussianEvent(name="s", sampling_rate=q, noise_multiplier=sigma, steps=1).rdp(np.array([alpha]))[0]
    assert ours == pytest.approx(_exact_sampled_gaussian_rdp(q, sigma, alpha), rel=1e-6)


def test_epsilon_grows_with_steps_and_shrinks_with_noise() -> None:
    def eps(sigma: float, steps: int) -> float:
        return compose_epsilon([SampledGaussianEvent(name="s", sampling_rate=0.05, noise_multiplier=sigma,
                                                     steps=steps)], DELTA)
    assert eps(1.0, 100) < eps(1.0, 200) < eps(1.0, 400)
    assert eps(0.8, 200) > eps(1.0, 200) > eps(2.0, 200)
    assert eps(0.0, 10) == math.inf


# ---------------------------------------------------------------- thresholds and delta
def test_threshold_deltas_are_taken_off_delta_before_conversion() -> None:
    g = GaussianEvent(name="g", sigma=2.0, sensitivity=1.0)
    with_thresholds = compose_epsilon([g, ThresholdEvent(name="t1", delta=3e-7), ThresholdEvent(name="t2", delta=2e-7)],
                                      1e-6)
    assert with_thresholds == pytest.approx(compose_epsilon([g], 5e-7), rel=1e-12)
    assert with_thresholds > compose_epsilon([g], 1e-6)
    assert compose_epsilon([g, ThresholdEvent(name="t", delta=1e-6)], 1e-6) == math.inf
    assert compose_epsilon([ThresholdEvent(name="t", delta=1e-7)], 1e-6) == 0.0


# ---------------------------------------------------------------- the ledger
def test_charge_refuses_before_the_mechanism_runs() -> None:
    ledger = PrivacyLedger(budget=PrivacyBudget(epsilon=1.0, delta=DELTA))
    noisy_count(100, sigma=20.0, sensitivity=1.0, name="ok", ledger=ledger, rng=np.random.default_rng(0))
    before = list(ledger.events)
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    with pytest.raises(BudgetExceededError, match="target"):
        noisy_count(100, sigma=0.1, sensitivity=1.0, name="too-much", ledger=ledger, rng=rng)
    assert ledger.events == before                 # nothing recorded
    assert rng.bit_generator.state == state         # and no noise drawn: the mechanism never ran
    assert ledger.epsilon_spent() <= 1.0


def test_ledger_never_overshoots_when_charged_until_refused() -> None:
    budget = PrivacyBudget(epsilon=2.0, delta=DELTA)
    ledger = PrivacyLedger(budget=budget)
    event = SampledGaussianEvent(name="dp-sgd", sampling_rate=0.1, noise_multiplier=2.0, steps=5)
    charged = 0
    with pytest.raises(BudgetExceededError):
        for _ in range(1000):
            ledger.charge(event)
            charged += 1
    assert charged == 8  # 8 x 5 steps cost eps 1.91; a 9th charge would pass 2.0
    assert ledger.epsilon_spent() <= budget.epsilon
    assert ledger.epsilon_if([event]) > budget.epsilon
    assert independent_epsilon(ledger.events, budget.delta) <= budget.epsilon * 1.01


def test_repeated_charges_do_not_recompute_past_events(monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: every charge used to recompute the sampled-Gaussian RDP of every earlier
    # epoch, so accounting was quadratic in epochs (hours for the default 300 epochs).
    from opacus.accountants.analysis import rdp as opacus_rdp

    calls = {"n": 0}
    real = opacus_rdp.compute_rdp

    def counting(**kwargs):
        calls["n"] += 1
        return real(**kwargs)

    monkeypatch.setattr(opacus_rdp, "compute_rdp", counting)
    ledger = PrivacyLedger(budget=PrivacyBudget(epsilon=50.0, delta=DELTA))
    event = SampledGaussianEvent(name="dp-sgd", sampling_rate=0.0123, noise_multiplier=1.234, steps=7)
    for _ in range(40):
        ledger.charge(event)
    assert len(ledger.events) == 40
    assert calls["n"] <= 1
    assert ledger.epsilon_spent() == pytest.approx(
        compose_epsilon([SampledGaussianEvent(name="dp-sgd", sampling_rate=0.0123, noise_multiplier=1.234,
                                              steps=280)], DELTA), rel=1e-9)


def test_non_private_ledger_records_nothing_and_says_so() -> None:
    ledger = PrivacyLedger(budget=None)
    ledger.charge(GaussianEvent(name="g", sigma=0.001, sensitivity=1.0))
    assert ledger.events == []
    assert ledger.epsilon_spent() == math.inf
    summary = ledger.summary()
    assert summary["private"] is False
    assert "no formal privacy guarantee" in summary["guarantee"]


def test_ledger_round_trips_through_json() -> None:
    ledger = PrivacyLedger(budget=PrivacyBudget(epsilon=3.0, delta=DELTA), unit="entity", max_rows_per_unit=4)
    ledger.charge(GaussianEvent(name="count:units", sigma=10.0, sensitivity=1.0))
    ledger.charge(ThresholdEvent(name="categories:x:threshold", delta=1e-8))
    ledger.charge(SampledGaussianEvent(name="dp-sgd", sampling_rate=0.05, noise_multiplier=1.5, steps=20))
    back = PrivacyLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert back.events == ledger.events
    assert (back.unit, back.max_rows_per_unit, back.budget) == ("entity", 4, ledger.budget)
    assert back.epsilon_spent() == ledger.epsilon_spent()


def test_summary_merges_epochs_without_changing_the_spend() -> None:
    ledger = PrivacyLedger(budget=PrivacyBudget(epsilon=10.0, delta=DELTA))
    ledger.charge(GaussianEvent(name="count:units", sigma=10.0, sensitivity=1.0))
    for _ in range(5):
        ledger.charge(SampledGaussianEvent(name="dp-sgd", sampling_rate=0.05, noise_multiplier=1.2, steps=30))
    summary = ledger.summary()
    rows = {r["name"]: r for r in summary["events"]}
    assert rows["dp-sgd"]["details"]["steps"] == 150
    assert rows["dp-sgd"]["epsilon_alone"] == pytest.approx(
        compose_epsilon([SampledGaussianEvent(name="x", sampling_rate=0.05, noise_multiplier=1.2, steps=150)], DELTA))
    assert summary["epsilon_spent"] == pytest.approx(ledger.epsilon_spent())
    assert summary["epsilon_spent"] <= summary["target_epsilon"]


@pytest.mark.parametrize(("epsilon", "delta"), [(0.0, 1e-6), (-1.0, 1e-6), (math.inf, 1e-6), (math.nan, 1e-6),
                                                (1.0, 0.0), (1.0, 1.0), (1.0, 0.05)])
def test_budget_rejects_meaningless_values(epsilon: float, delta: float) -> None:
    with pytest.raises(ConfigError):
        PrivacyBudget(epsilon=epsilon, delta=delta)


# ---------------------------------------------------------------- calibration
def _ledger_after_preprocessing(epsilon: float) -> PrivacyLedger:
    budget = PrivacyBudget(epsilon=epsilon, delta=DELTA)
    ledger = PrivacyLedger(budget=budget)
    plan = plan_preprocessing(budget=budget, k=1, n_histograms=12, n_discovery=3, epsilon_share=0.2)
    for e in plan.events():
        ledger.charge(e)
    return ledger


@pytest.mark.parametrize(("epsilon", "q", "steps"), [(1.0, 0.01, 2000), (3.0, 0.1, 33), (8.0, 0.05, 600)])
def test_calibrated_noise_fits_the_budget_tightly_and_independently(epsilon: float, q: float, steps: int) -> None:
    ledger = _ledger_after_preprocessing(epsilon)
    sigma = calibrate_noise_multiplier(ledger, name="dp-sgd", sampling_rate=q, steps=steps)
    event = SampledGaussianEvent(name="dp-sgd", sampling_rate=q, noise_multiplier=sigma, steps=steps)
    assert ledger.epsilon_if([event]) <= epsilon
    # minimal: the search stops at hi/lo < 1 + 1e-4 with eps(lo) > target, so noise
    # smaller by that factor must overshoot (otherwise the model gets needless noise)
    smaller = SampledGaussianEvent(name="dp-sgd", sampling_rate=q, noise_multiplier=sigma / (1 + 1e-4), steps=steps)
    assert ledger.epsilon_if([smaller]) > epsilon
    # independent recomputation of everything (preprocessing + DP-SGD, thresholds off δ):
    # within the 1% order-grid tolerance of test_sampled_gaussian_agrees_with_dp_accounting
    assert independent_epsilon([*ledger.events, event], DELTA) <= epsilon * 1.01


def test_calibration_refuses_when_even_maximal_noise_does_not_fit() -> None:
    ledger = _ledger_after_preprocessing(0.05)
    with pytest.raises(BudgetExceededError, match="does not fit"):
        calibrate_noise_multiplier(ledger, name="dp-sgd", sampling_rate=0.5, steps=200_000)
    assert all(not isinstance(e, SampledGaussianEvent) for e in ledger.events)


@pytest.mark.parametrize("k", [1, 5])
def test_preprocessing_plan_spends_its_share_and_sizes_noise_by_sensitivity(k: int) -> None:
    budget = PrivacyBudget(epsilon=2.0, delta=DELTA)
    plan = plan_preprocessing(budget=budget, k=k, n_histograms=10, n_discovery=2, epsilon_share=0.25)
    spent = compose_epsilon(plan.events(), budget.delta)
    assert 0.25 * 2.0 * (1 - 1e-4) <= spent <= 0.25 * 2.0
    assert plan.sigma_hist == pytest.approx(k * plan.sigma_units)      # same σ/Δ for every Gaussian
    assert plan.threshold_delta * plan.n_discovery == pytest.approx(0.1 * budget.delta)
    assert independent_epsilon(plan.events(), budget.delta) == pytest.approx(spent, rel=0.01)


def test_preprocessing_plan_refuses_a_share_no_noise_can_meet() -> None:
    # 20% of ε = 0.01 is below the accountant's floor for any Gaussian at δ = 1e-6 (≈ 0.006,
    # set by the largest Rényi order): the plan must refuse, not silently overspend its share.
    with pytest.raises(BudgetExceededError, match="preprocessing"):
        plan_preprocessing(budget=PrivacyBudget(epsilon=0.01, delta=DELTA), k=1, n_histograms=3, n_discovery=1,
                           epsilon_share=0.2)
    plan = plan_preprocessing(budget=PrivacyBudget(epsilon=0.05, delta=DELTA), k=1, n_histograms=3, n_discovery=1,
                              epsilon_share=0.2)
    assert compose_epsilon(plan.events(), DELTA) <= 0.2 * 0.05
