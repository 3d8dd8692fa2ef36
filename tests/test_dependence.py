"""DP score correlations (synthkit.dependence): the release's sensitivity, and the sampling
calibration that keeps every margin and moves the dependence to the released one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri
from scipy.stats import spearmanr

from synthkit import DPTVAE, PrivacyBudget
from synthkit.dependence import DependenceCalibrator, nearest_correlation
from synthkit.ledger import PrivacyLedger
from synthkit.mechanisms import PreprocessingPlan, plan_preprocessing
from synthkit.schema import Column, Schema
from synthkit.transforms import DataTransformer, FitContext

RHO = 0.8
N = 20_000


def _copula_frame(n: int, seed: int) -> pd.DataFrame:
    """x, y: a Gaussian copula of correlation RHO with skewed and integer margins; g: a
    category whose odds rise with x; z: independent of everything."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = RHO * a + np.sqrt(1 - RHO**2) * rng.normal(size=n)
    g = np.where(a + rng.normal(size=n) > 0, "high", "low")
    return pd.DataFrame({"x": np.exp(a), "y": np.round(20 + 5 * b).astype(int), "g": g,
                         "z": rng.uniform(0, 1, n)})


SCHEMA = Schema(columns=(Column(name="x", kind="continuous", bounds=(0.0, 60.0)),
                         Column(name="y", kind="integer", bounds=(0, 40)),
                         Column(name="g", kind="categorical", categories=("high", "low")),
                         Column(name="z", kind="continuous", bounds=(0.0, 1.0)))).validate()


def _plain_fit(frame: pd.DataFrame) -> tuple[DataTransformer, DependenceCalibrator]:
    """Transforms and the dependence release without privacy (exact statistics)."""
    t = DataTransformer(SCHEMA)
    plan = PreprocessingPlan(sigma_units=1.0, sigma_rows=1.0, sigma_hist=1.0, threshold_delta=0.0, k=1,
                             n_histograms=t.n_histograms(), n_discovery=0)
    ledger = PrivacyLedger(budget=None)
    rng = np.random.default_rng(0)
    t.fit(frame, FitContext(ledger=ledger, plan=plan, rng=rng, n_rows_dp=float(len(frame))))
    dep = DependenceCalibrator(t).fit(frame, noise_multiplier=1.0, k=1, n_rows_dp=float(len(frame)),
                                      ledger=ledger, rng=rng)
    return t, dep


def _independent(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every column shuffled on its own: the margins kept, every dependence destroyed."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})


def test_one_row_moves_the_released_moments_by_at_most_the_stated_sensitivity() -> None:
    frame = _copula_frame(2_000, seed=1)
    _, dep = _plain_fit(frame)
    outlier = pd.DataFrame({"x": [60.0], "y": [40], "g": ["high"], "z": [1.0]})  # far out in every score
    rng = np.random.default_rng(3)
    with_row = dep.moments(pd.concat([frame, outlier], ignore_index=True), rng)
    without = dep.moments(frame, np.random.default_rng(3))
    # integer jitter draws differ between the two calls only through the added last row
    change = np.linalg.norm(with_row - without)
    assert change <= dep.clip**2 + 1e-9
    assert dep.clip == pytest.approx(1.2 * np.sqrt(dep.dimension))


def test_the_release_is_one_gaussian_charged_at_that_sensitivity() -> None:
    frame = _copula_frame(2_000, seed=1)
    budget = PrivacyBudget(epsilon=3.0, delta=1e-6)
    t = DataTransformer(SCHEMA)
    plan = plan_preprocessing(budget=budget, k=2, n_histograms=t.n_histograms(), n_discovery=0,
                              epsilon_share=0.5, dependence_share=0.5)
    ledger = PrivacyLedger(budget=budget, unit="entity", max_rows_per_unit=2)
    ledger.check(plan.events(), what="preprocessing")
    rng = np.random.default_rng(0)
    t.fit(frame, FitContext(ledger=ledger, plan=plan, rng=rng, n_rows_dp=2_000.0))
    dep = DependenceCalibrator(t).fit(frame, noise_multiplier=plan.dependence_noise, k=2, n_rows_dp=2_000.0,
                                      ledger=ledger, rng=rng)
    events = [e for e in ledger.to_dict()["events"] if e["name"] == "dependence"]
    assert len(events) == 1
    assert events[0]["sensitivity"] == pytest.approx(2 * dep.clip**2)  # k rows per unit
    assert events[0]["sigma"] == pytest.approx(plan.dependence_noise * 2 * dep.clip**2)
    assert ledger.epsilon_spent() <= 0.5 * budget.epsilon + 1e-9  # the plan's share, never more


def test_calibration_keeps_every_margin_and_recovers_the_dependence() -> None:
    real = _copula_frame(N, seed=1)
    _, dep = _plain_fit(real)
    flat = _independent(real, seed=2)
    out = dep.apply(flat, np.random.default_rng(4))
    for c in real.columns:  # a permutation within each column: margins identical, nulls in place
        assert np.array_equal(np.sort(out[c].to_numpy()), np.sort(flat[c].to_numpy()))
    assert out["g"].equals(flat["g"])  # categorical columns are kept as generated
    # the chunk's score correlations become the released ones (the map is exact up to the
    # chunk's own sampling: 1e-2 at n = 20,000)
    after = np.corrcoef(dep.scores(out, np.random.default_rng(5)), rowvar=False)
    assert np.abs(after - dep.correlation_).max() < 0.01
    # the release itself is biased towards 0 by clipping (rows beyond C are scaled down;
    # normalising by the clipped diagonal undoes most of it): within 0.05 of the real scores'
    truth_scores = np.corrcoef(dep.scores(real, np.random.default_rng(5)), rowvar=False)
    assert np.abs(dep.correlation_ - truth_scores).max() < 0.05
    # so x and y come out rank-correlated as in the real data: Spearman of a Gaussian copula
    # is (6/π)·asin(ρ/2) = 0.786, less the clipping bias above, with a standard error 0.003
    truth = 6 / np.pi * np.arcsin(RHO / 2)
    assert abs(spearmanr(flat["x"], flat["y"])[0]) < 0.03
    assert spearmanr(out["x"], out["y"])[0] == pytest.approx(truth, abs=0.06)
    # the category-numeric link: the mean normal score of x among "high" rows minus among
    # "low" rows (0 once shuffled) comes back to the real gap, less the same bias
    def gap(f: pd.DataFrame) -> float:
        score = ndtri((f["x"].rank().to_numpy() - 0.5) / len(f))
        high = (f["g"] == "high").to_numpy()
        return float(score[high].mean() - score[~high].mean())
    assert abs(gap(flat)) < 0.05
    assert gap(out) == pytest.approx(gap(real), rel=0.1)
    # an independent column stays (nearly) independent
    assert abs(spearmanr(out["z"], out["x"])[0]) < 0.03


def test_a_label_the_chunk_never_shows_is_left_out_of_the_map(caplog) -> None:
    """A chunk in which a released label never occurs has a constant indicator: it must be
    recognised as such (the float32 moments are centred first, so its column is exactly
    zero) and left out, and the numeric columns still get the released correlations."""
    real = _copula_frame(N, seed=1)
    _, dep = _plain_fit(real)
    flat = _independent(real, seed=2)
    flat["g"] = "low"
    with caplog.at_level("WARNING", logger="synthkit.dependence"):
        out = dep.apply(flat, np.random.default_rng(4))
    assert not caplog.records
    numeric = [i for i, (_, kind, _) in enumerate(dep.layout()) if kind == "numeric"]
    after = np.corrcoef(dep.scores(out, np.random.default_rng(5))[:, numeric], rowvar=False)
    assert np.abs(after - dep.correlation_[np.ix_(numeric, numeric)]).max() < 0.01


def test_the_sampling_fast_path_computes_what_the_frame_path_computes() -> None:
    """Sampling calibrates decoded arrays (rank normal scores for calibrated continuous
    columns, permutations applied to floats) instead of a frame: the same scores up to
    rounding, and the same output."""
    import torch

    from synthkit.models.sampling import SpanSampler
    real = _copula_frame(N, seed=1)
    t, dep = _plain_fit(real)
    raw_t = torch.randn(t.width, 5_000, generator=torch.Generator().manual_seed(0))
    alpha, codes = SpanSampler(t.spans, None, torch.device("cpu")).sample(raw_t, None, torch.Generator().manual_seed(1))
    values, orders = t.decode(alpha.numpy(), codes.numpy(), calibrate=True)
    assert set(orders) == {"x", "y", "z"}  # numeric columns, calibrated to their DP margins
    frame = t.to_frame(values)
    fast = dep._scores(values, orders, np.random.default_rng(2))
    reference = dep.scores(frame, np.random.default_rng(2))
    np.testing.assert_allclose(fast, reference, atol=1e-6)
    by_frame = dep.apply(frame, np.random.default_rng(3))
    by_arrays = t.to_frame(dep.apply_values(dict(values), orders, np.random.default_rng(3)))
    pd.testing.assert_frame_equal(by_arrays, by_frame)
    assert not by_frame["x"].equals(frame["x"])  # the calibration did move values


def test_nearest_correlation_is_a_valid_correlation_matrix() -> None:
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 6))
    r = nearest_correlation(m)
    assert np.allclose(r, r.T)
    assert np.allclose(np.diag(r), 1.0)
    assert np.linalg.eigvalsh(r).min() > 0


@pytest.mark.parametrize("calibrate", [True, False])
def test_models_release_the_dependence_only_when_asked(calibrate: bool, tmp_path) -> None:
    real = _copula_frame(3_000, seed=5)
    model = DPTVAE(epochs=2, batch_size=500, seed=0, device="cpu", calibrate_dependence=calibrate)
    model.fit(real, schema=SCHEMA, budget=PrivacyBudget(epsilon=3.0, delta=1e-6))
    names = [e["name"] for e in model.ledger_.to_dict()["events"]]
    assert ("dependence" in names) is calibrate
    assert (model.dependence_ is not None) is calibrate
    model.save(tmp_path / "m")
    again = DPTVAE.load(tmp_path / "m")
    pd.testing.assert_frame_equal(model.sample(500, seed=3), again.sample(500, seed=3))
    if calibrate:  # with the DP dependence, x and y come out correlated even after 2 epochs
        pair = model.sample(3_000, seed=4)[["x", "y"]].dropna().astype(float)
        assert spearmanr(pair["x"], pair["y"])[0] > 0.5
