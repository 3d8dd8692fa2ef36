"""DPHMM sampling: drawn lengths kept inside the public window (fit_gaps), and declared
non-decreasing columns (trends). Exact checks on small arrays, then one tiny fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit import DPHMM, infer_schema
from synthkit.errors import ConfigError
from synthkit.models.hmm.sample import fit_gaps
from synthkit.models.hmm.trends import non_decreasing_events, project_non_decreasing
from synthkit.schema import Column
from synthkit.sequence import reconstruct_ticks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ====================================================================== lengths in a window
def _span(gaps: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    ticks = reconstruct_ticks(np.zeros(len(lengths)), gaps, lengths)
    return ticks[np.arange(len(lengths)), lengths - 1] - ticks[:, 0]


def test_fit_gaps_keeps_every_length_that_fits_a_discrete_window():
    # a 5-wave survey (room 4 ticks): drawn gaps of 1-3 ticks, lengths 1-5
    rng = np.random.default_rng(0)
    n, t = 2000, 5
    gaps = rng.integers(1, 4, size=(n, t)).astype(float)
    lengths = rng.integers(1, 6, size=n)
    out = fit_gaps(gaps, lengths, 4.0, discrete=True)
    inner = (np.arange(t)[None, :] < lengths[:, None]) & (np.arange(t)[None, :] > 0)
    assert (_span(out, lengths) <= 4).all()  # every drawn length now fits: nothing is cut
    assert (out[inner] >= 1).all() and (out == np.round(out)).all()  # whole ticks, strictly increasing
    fitted = _span(gaps, lengths) <= 4
    assert np.array_equal(out[fitted], gaps[fitted])  # sequences that fit keep their drawn gaps
    assert (out[~fitted][inner[~fitted]] <= gaps[~fitted][inner[~fitted]]).all()  # only shrunk
    # negative control: the drawn gaps overran for many of these (the old decoder cut them)
    assert (~fitted).mean() > 0.3


def test_fit_gaps_continuous_axis_and_what_cannot_fit():
    gaps = np.array([[0.0, 3.0, 1.0, 6.0], [0.0, 0.5, 0.5, 0.0], [0.0, 2.0, 2.0, 2.0]])
    lengths = np.array([4, 3, 4])
    out = fit_gaps(gaps, lengths, 5.0, discrete=False)
    np.testing.assert_allclose(out[0, 1:], [1.5, 0.5, 3.0])  # one factor (0.5) on every gap
    np.testing.assert_array_equal(out[1], gaps[1])
    np.testing.assert_allclose(out[2, 1:], [5 / 3] * 3)
    # discrete: 4 events need 3 ticks; a window of 2 cannot hold them, left to the cut
    out = fit_gaps(np.ones((1, 4)) * 2, np.array([4]), 2.0, discrete=True)
    np.testing.assert_array_equal(out, np.ones((1, 4)) * 2)
    # no bound: nothing to fit
    np.testing.assert_array_equal(fit_gaps(gaps, lengths, np.inf, discrete=False), gaps)


# ====================================================================== non-decreasing columns
def test_projection_is_non_decreasing_keeps_monotone_rows_and_nulls():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(0.5, 1.0, size=(500, 8)), axis=1)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = project_non_decreasing(x)
    assert np.array_equal(np.isnan(y), np.isnan(x))
    for row in y:
        v = row[~np.isnan(row)]
        assert (np.diff(v) >= 0).all()
    mono = np.sort(rng.normal(size=(50, 6)), axis=1)
    np.testing.assert_array_equal(project_non_decreasing(mono), mono)  # already monotone: unchanged
    # the level is kept (the forward max and the backward min pull in opposite directions)
    assert abs(np.nanmean(y) - np.nanmean(x)) < 0.05 * np.nanstd(x)
    assert (np.nanmin(x, axis=1) <= np.nanmin(y, axis=1)).all() and (np.nanmax(y, axis=1) <= np.nanmax(x, axis=1)).all()


def test_non_decreasing_events_keeps_dtypes_and_entities_apart():
    ev = pd.DataFrame({"k": ["a", "a", "a", "b", "b"], "age": [30, 29, 31, 50, 49],
                       "exp": pd.array([3, None, 2, 7, 8], dtype="Int64"), "w": [1.0, 0.5, 2.0, 3.0, 1.0]})
    out = non_decreasing_events(ev, key="k", columns={"age": True, "exp": True})
    assert out.dtypes.to_dict() == ev.dtypes.to_dict()
    assert out["age"].tolist() == [30, 30, 31, 50, 50]  # 29.5 → 30 and 49.5 → 50 (half to even)
    assert out["exp"].isna().tolist() == [False, True, False, False, False]
    assert out["w"].tolist() == ev["w"].tolist()  # not declared: untouched
    assert out.groupby("k")["age"].apply(lambda s: s.is_monotonic_increasing).all()


def _rising_panel(n: int = 150, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length, age0, y0 = rng.integers(3, 7), rng.integers(20, 60), rng.integers(2000, 2004)
        for j in range(length):
            rows.append({"pid": f"p{i}", "year": y0 + j, "age": age0 + j, "score": rng.normal()})
    return pd.DataFrame(rows)


def test_declared_non_decreasing_column_never_falls_in_a_fitted_model(tmp_path):
    real = _rising_panel()
    # a third of the people's last age dips by 3: the trends test (session 11, which makes a
    # column rising in >= 0.95 of the entities non-decreasing on its own) leaves it alone, so
    # the undeclared fit below stays the control of the declaration
    last = real.groupby("pid").tail(1).index
    dip = last[np.random.default_rng(7).random(len(last)) < 0.35]
    real.loc[dip, "age"] -= 3
    schema = infer_schema(real, entity_key="pid", sequence_index="year").with_column(
        Column(name="year", kind="integer", nullable=False, bounds=(2000, 2010)))

    models: list[DPHMM] = []

    def rises(s: pd.Series) -> bool:  # over the values present (a null is skipped, as trends does)
        return s.dropna().is_monotonic_increasing

    def share(non_decreasing: tuple[str, ...]) -> tuple[float, pd.DataFrame]:
        model = DPHMM(n_states=3, epochs=5, batch_size=32, context_epochs=5, context_batch_size=32, device="cpu",
                      seed=0, non_decreasing=non_decreasing).fit(real, schema=schema, budget=None)
        models.append(model)
        syn = model.sample(300, seed=1)
        ok = syn.groupby("pid")["age"].apply(rises)
        return float(ok.mean()), syn

    declared, syn = share(("age",))
    assert declared == 1.0 and pd.api.types.is_integer_dtype(syn["age"])
    # the declaration is a hyperparameter: it travels in the bundle and applies after loading
    model = models[-1]
    model.save(tmp_path / "m")
    loaded = DPHMM.load(tmp_path / "m")
    assert tuple(loaded.non_decreasing) == ("age",)
    pd.testing.assert_frame_equal(loaded.sample(300, seed=1), syn)
    assert syn["age"].between(real["age"].min() - 1, real["age"].max() + 1).mean() > 0.99
    undeclared, _ = share(())
    assert undeclared < 0.95  # negative control: the HMM alone lets a drawn age dip


def test_non_decreasing_must_name_numeric_event_columns():
    real = _rising_panel(20)
    schema = infer_schema(real, entity_key="pid", sequence_index="year")
    for bad, word in ((("agee",), "'agee' is not an event column"), (("pid",), "'pid' is not an event column")):
        with pytest.raises(ConfigError, match=word):
            DPHMM(epochs=1, context_epochs=1, device="cpu", non_decreasing=bad).fit(real, schema=schema, budget=None)
    with pytest.raises(ConfigError, match="list of column names"):
        DPHMM(epochs=1, context_epochs=1, device="cpu", non_decreasing="age").fit(real, schema=schema, budget=None)


def test_one_event_sequences_in_a_bounded_window():
    # every entity has one event (t_max = 1: no gap to fit); the window still holds them
    real = pd.DataFrame({"pid": [f"p{i}" for i in range(60)], "year": np.arange(60) % 5 + 2000,
                         "score": np.random.default_rng(0).normal(size=60)})
    schema = infer_schema(real, entity_key="pid", sequence_index="year").with_column(
        Column(name="year", kind="integer", nullable=False, bounds=(2000, 2004)))
    model = DPHMM(n_states=2, epochs=2, batch_size=16, context_epochs=2, context_batch_size=16, device="cpu",
                  seed=0, max_length=1).fit(real, schema=schema, budget=None)
    syn = model.sample(50, seed=1)
    assert syn.groupby("pid").size().eq(1).all() and syn["year"].between(2000, 2004).all()


# ====================================================================== lengths on their DP margin
def test_sampled_lengths_follow_the_released_length_margin():
    """The context model's draw of `__length__` can drift off the DP counts it released for
    it (rwm5yr: 8% length 0 in one fit). A context model made to drift (half its rows put
    on the length of least released share; every real entity has 5 events) gives lengths
    whose shares are those of the fit's DP length histogram (`length_margin_`); without it,
    within two noise standard deviations of the released counts (the ledger's sigma for
    them); before, the drift went straight into the output."""
    from synthkit import PrivacyBudget
    from synthkit.models.hmm import LENGTH
    from test_hmm_dynamics import _panel
    events, schema = _panel(n=900)
    model = DPHMM(n_states=2, epochs=1, batch_size=128, context_epochs=2, context_batch_size=128, device="cpu",
                  seed=0).fit(events, schema=schema, budget=PrivacyBudget(epsilon=3.0, delta=1e-6))
    t = model.context_model_.transformer_.transforms[LENGTH]
    released = pd.Series(t.counts_, index=t.labels_, dtype=float)
    released = released[[lab.isdigit() for lab in released.index]]
    sigma = model._length_sigma()
    assert sigma is not None and sigma > 0
    band = 2.0 * sigma / released.sum()
    released /= released.sum()
    assert released.get("5", 0.0) >= 0.5  # the DP margin (noisy at 900 entities): most have 5 events
    rare = str(released.idxmin())  # the drift goes onto the length of least released share
    assert 0.5 - released[rare] > band + 0.1  # the drift is far outside the band
    inner = model.context_model_.sample

    def drifting(n, *, seed=None, **kw):
        ctx = inner(n, seed=seed, **kw)
        ctx.loc[ctx.index % 2 == 0, LENGTH] = rare
        return ctx

    model.context_model_.sample = drifting
    n = 1200
    # the fit's own DP length histogram (length:max, test_hmm_length_margin.py): the shares are its own
    margin = pd.Series(model.length_margin_, index=[str(v) for v in range(1, len(model.length_margin_) + 1)])
    margin = margin[margin > 0] / margin.sum()
    out = model.sample(n, seed=0)
    shares = out.groupby("pid").size().astype(str).value_counts(normalize=True)
    gap = shares.sub(margin, fill_value=0.0).abs()
    assert (gap <= 2.0 / n).all(), gap.round(3).to_dict()
    model.length_margin_ = None  # without it (a public max_length, older bundles): the band
    out = model.sample(n, seed=0)
    shares = out.groupby("pid").size().astype(str).value_counts(normalize=True)
    gap = shares.sub(released, fill_value=0.0).abs()
    assert (gap <= band + 2.0 / n).all(), (gap.round(3).to_dict(), round(band, 3))
