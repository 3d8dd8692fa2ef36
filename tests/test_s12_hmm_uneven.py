"""DPHMM on a small, uneven panel (issue 18, session 12): 300 patients with 1 to 16 visits,
a day index, three numeric lab columns on different scales (about 1, 200 and 1,000), no
declared bounds, eps = 3 (the public fallback cap of 20 events per patient, as pbcseq got).

Before (control a21f993): the event columns' DP range histograms counted events with
sensitivity k = 20, σ about 800 against about 2,000 visits, so every lab column was
generated empty, and the gaps' range was not learned either, so `day` was spread over noise
up to e^41.6 days. Now the ranges count entities (ranges.EntityRangeTransform: weight
1/√(bins touched) per entity, sensitivity 1, the same ρ), and a gap model with neither a
range nor a common gap samples one tick per event (sample.Decoder._ticks).

Negative control: a21f993 generates all three labs empty and `day` beyond the bound; the
main test fails there (`test_uneven_panel_keeps_its_labs_and_a_finite_index`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit import DPHMM, PrivacyBudget
from synthkit.noise import _fixed_for_tests
from synthkit.schema import Column, Schema

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LABS = ("crp", "platelet", "alk")
LAST_DAY = 5000  # the panel's follow-up: no visit after day 5000
# The index bound the test holds the sample to: the reach of 20 events (the fallback cap)
# at the widest gap the geometric grid gives a real gap of at most ~400 days, 2^12 days,
# well inside int64 and far under the e^41.6 the control reaches
DAY_BOUND = 20 * 2.0 ** 12


def panel(n: int = 300, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = int(rng.integers(1, 17))  # 1..16 visits, uneven
        gaps = rng.choice([90, 180, 365], size=k - 1, p=[0.3, 0.4, 0.3]) + rng.integers(-10, 11, size=k - 1)
        day = np.concatenate([[0], np.cumsum(gaps)])
        day = day[day <= LAST_DAY]
        level = rng.normal(0.0, 0.5)
        for d in day:
            rows.append({"pid": f"P{i:04d}", "day": int(d),
                         "crp": round(float(np.exp(level + rng.normal(0.0, 0.6))), 2),
                         "platelet": round(float(np.clip(230 + 60 * level + rng.normal(0, 30), 20, None)), 1),
                         "alk": round(float(np.exp(7.0 + 0.5 * level + rng.normal(0.0, 0.3))), 0)})
    return pd.DataFrame(rows)


def schema() -> Schema:
    return Schema(columns=(
        Column(name="pid", kind="identifier", nullable=False),
        Column(name="day", kind="integer", nullable=False),
        *(Column(name=c, kind="continuous", nullable=True) for c in LABS),
    ), entity_key="pid", sequence_index="day")


def test_panel_is_uneven_and_on_three_scales():
    real = panel()
    lengths = real.groupby("pid").size()
    assert lengths.min() == 1 and lengths.max() == 16 and real["pid"].nunique() == 300
    assert 1_800 <= len(real) <= 2_800  # pbcseq has 1,945 visits of 312 patients
    med = real[list(LABS)].median()
    assert 0.5 < med["crp"] < 2 and 150 < med["platelet"] < 300 and 700 < med["alk"] < 1_500


@pytest.fixture(scope="module")
def sampled() -> tuple[pd.DataFrame, pd.DataFrame]:
    real = panel()
    with _fixed_for_tests(1812):
        model = DPHMM(n_states=3, epochs=2, context_epochs=2, device="cpu", seed=0).fit(
            real, schema=schema(), budget=PrivacyBudget(epsilon=3.0, delta=1e-6))
    return real, model.sample(300, seed=1)


def test_uneven_panel_keeps_its_labs_and_a_finite_index(sampled):
    real, syn = sampled
    non_empty = [c for c in LABS if syn[c].notna().any()]
    assert len(non_empty) >= 2, non_empty  # control a21f993: [] (all three generated empty)
    for c in non_empty:
        x = pd.to_numeric(syn[c], errors="coerce").dropna()
        lo, hi = real[c].min(), real[c].max()
        # inside a bracket of the real range: the DP range is whole grid bins (ratio √2) and
        # may join windows of up to 8 of them, a factor 16 at most beyond the data
        assert x.min() >= min(0.0, lo) - hi and x.max() <= 16 * hi, (c, x.min(), x.max())
        # and on the column's own scale: the synthetic median within the real 5%-95% quantiles
        q05, q95 = real[c].quantile([0.05, 0.95])
        assert q05 <= x.median() <= q95, (c, x.median())
    day = pd.to_numeric(syn["day"], errors="coerce").to_numpy(dtype=float)
    assert np.isfinite(day).all() and (day >= 0).all()
    assert day.max() <= DAY_BOUND, day.max()  # control: ~1e15 and beyond


def test_presence_weights_have_norm_one_per_entity():
    """The range histogram's sensitivity: each entity's bin masses have L2 norm exactly 1,
    whatever its number of values and bins (so adding or removing one moves the histogram by
    at most 1); an entity with all its values in one bin weighs 1 there."""
    from synthkit.mechanisms import GEOMETRIC_EDGES
    from synthkit.models.hmm.ranges import presence_weights
    rng = np.random.default_rng(3)
    entity = np.repeat(np.arange(50), rng.integers(1, 17, size=50))
    values = np.exp(rng.normal(0.0, 2.0, size=len(entity)))
    w = presence_weights(values, entity, integer=False)
    idx = np.searchsorted(GEOMETRIC_EDGES, values, side="right")
    mass = pd.Series(w).groupby([entity, idx]).sum()
    norms = np.sqrt((mass ** 2).groupby(level=0).sum())
    np.testing.assert_allclose(norms.to_numpy(), 1.0)
    one = presence_weights(np.full(7, 3.0), np.zeros(7, dtype=int), integer=False)
    assert one.sum() == pytest.approx(1.0)
    # negative control: counting events (weight 1 each) gives such an entity a norm of 7
    assert np.sqrt((pd.Series(np.ones(7)).groupby(np.zeros(7)).sum() ** 2).sum()) == 7


def test_index_without_a_gap_range_or_common_gap_numbers_the_events():
    """Neither a DP gap range (public range used) nor a released common gap: the sampler's
    reach is one tick per event (layout.widest_gap, sample.released_reach), not e^41.6."""
    from synthkit.models.hmm.layout import widest_gap
    assert widest_gap({"labels": [], "transform": None, "range_public": True}) == 1.0
    assert widest_gap({"labels": [30.0, 365.0], "transform": None, "range_public": True}) == 365.0


def test_sampled_index_without_a_gap_range_or_common_gap_is_ordinal():
    """The decoder's gaps in that case: one tick each, so the index counts the events from
    their released start; the drawn log-gap scores (here +5 std, which on the public range
    meant about e^41.6 ticks) are not read. Control a21f993: it reads them through the gap
    model's standardiser (None here: the test fails there)."""
    from types import SimpleNamespace

    from synthkit.models.hmm.sample import Decoder
    fake = SimpleNamespace(layout={"gap": {"labels": [], "cat": 0, "gauss": 0}}, gap_range_public=True,
                           gap_score=None, axis=SimpleNamespace(discrete=True), window=None)
    lengths, start = np.array([1, 3, 4]), np.array([10.0, 20.0, 30.0])
    cat, z = np.zeros((3, 4, 1), dtype=np.int64), np.full((3, 4, 1), 5.0)
    ticks, mask, out = Decoder._ticks(fake, lengths, start, cat, z)
    assert out.tolist() == [1, 3, 4]
    assert ticks[mask].tolist() == [10, 20, 21, 22, 30, 31, 32, 33]
