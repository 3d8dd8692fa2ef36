"""Reversible transforms and the DP preprocessing mechanisms they use.

Exact tests (STYLE.md kind 1): hypothesis round trips without privacy, one contract test
over every column kind, and what is charged to the ledger. Recovery tests (kind 3) for
the DP mechanisms on seeded data, each with its margin derived in place.

The round trip of a numeric value is exact up to float32 precision, with one deliberate
exception (CTGAN's mode-specific normalisation, Xu et al. 2019 §4.2): a value x assigned
to mode m is encoded as α = clip((x − μ_m)/(4σ_m), −0.99, 0.99), so it comes back as
x clipped to the window μ_m ± 3.96σ_m (and to the bounds). The tests assert exactly that.
Error budget for a recovered value (derived, not guessed):
- α is stored as float32, |α| < 1: rounding error ≤ 2⁻²⁵, hence ≤ 4σ_m·2⁻²⁵ in x;
  we allow 4σ_m·2⁻²⁴;
- a handful of float64 operations at magnitude M = max(|low|, |high|): 16·2⁻⁵²·M;
- datetimes are seconds from nanoseconds and rounded back to whole nanoseconds: + 1 ns.
"""

from __future__ import annotations

import json
import math
import string
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from synthkit.errors import BudgetExceededError
from synthkit.ledger import GaussianEvent, PrivacyBudget, PrivacyLedger, ThresholdEvent
from synthkit.mechanisms import (
    GEOMETRIC_EDGES,
    PreprocessingPlan,
    fit_mixture_to_histogram,
    geometric_bounds,
    noisy_count,
    plan_preprocessing,
)
from synthkit.schema import Column, Schema
from synthkit.table import boolean_values
from synthkit.transforms import (
    FINE_BINS,
    NULL,
    OTHER,
    CategoricalTransform,
    DataTransformer,
    FitContext,
    NumericTransform,
    make_transform,
    value_order,
)

F32_ALPHA = 2.0**-24  # see the module docstring
F64 = 16 * 2.0**-52
NS = 1e-9
ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _plain_ctx(n_rows: int, *, seed: int = 0) -> FitContext:
    """A non-private fit context (explicit budget=None: nothing is charged, no noise)."""
    plan = PreprocessingPlan(sigma_units=1.0, sigma_rows=1.0, sigma_hist=1.0, threshold_delta=0.0, k=1,
                             n_histograms=1, n_discovery=0)
    return FitContext(ledger=PrivacyLedger(budget=None), plan=plan, rng=np.random.default_rng(seed),
                      n_rows_dp=float(n_rows))


def _private_ctx(transformer: DataTransformer | CategoricalTransform | NumericTransform, n_rows: int, *,
                 budget: PrivacyBudget, seed: int) -> tuple[FitContext, PrivacyLedger]:
    """The DP context the models build (models/base.py): plan from the budget, check it
    before data is touched, then a DP row count."""
    ledger = PrivacyLedger(budget=budget)
    plan = plan_preprocessing(budget=budget, k=1, n_histograms=transformer.n_histograms(),
                              n_discovery=transformer.n_discovery(), epsilon_share=0.5)
    ledger.check(plan.events(), what="preprocessing")
    rng = np.random.default_rng(seed)
    n_dp = noisy_count(n_rows, sigma=plan.sigma_units, sensitivity=1.0, name="count:units", ledger=ledger, rng=rng)
    return FitContext(ledger=ledger, plan=plan, rng=rng, n_rows_dp=n_dp), ledger


def _expected_numeric(t: NumericTransform, x: np.ndarray, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What inverse(transform(x)) must give for the non-null values, and its tolerance."""
    mode = np.argmax(block[:, 1:1 + t.n_modes], axis=1)
    mu, sd = t.means_[mode], t.stds_[mode]
    lo, hi = t.bounds_
    expected = np.clip(np.clip(x, mu - 3.96 * sd, mu + 3.96 * sd), lo, hi)
    tol = 4 * sd * F32_ALPHA + F64 * max(abs(lo), abs(hi))
    return expected, tol


def _check_numeric_round_trip(t: NumericTransform, x: np.ndarray, block: np.ndarray, back: np.ndarray,
                              *, extra_tol: float = 0.0) -> None:
    present = ~np.isnan(x)
    assert np.array_equal(np.isnan(back), ~present)  # nulls come back exactly where they were
    expected, tol = _expected_numeric(t, x, block)
    err = np.abs(back - expected)[present]
    assert np.all(err <= (tol + extra_tol)[present]), float(np.max(err - tol[present]))


# ------------------------------------------------------------------ round trips


_FLOATS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@ROUND_TRIP
@given(values=st.lists(_FLOATS, min_size=1, max_size=60), nulls=st.lists(st.booleans(), min_size=60, max_size=60),
       seed=st.integers(0, 2**32 - 1))
def test_continuous_round_trip(values: list[float], nulls: list[bool], seed: int) -> None:
    x = np.array(values, dtype=float)
    x[1:][np.array(nulls[:len(x) - 1], dtype=bool)] = np.nan  # the first value stays present
    t = NumericTransform(Column(name="amount", kind="continuous")).fit(pd.Series(x), _plain_ctx(len(x)))
    block = t.transform(pd.Series(x), np.random.default_rng(seed))
    back = t.inverse_transform(block).to_numpy(dtype=float)
    _check_numeric_round_trip(t, x, block, back)
    # everything inside its mode's window comes back (that is the round trip proper)
    expected, tol = _expected_numeric(t, x, block)
    inside = ~np.isnan(x) & (expected == x)
    assert np.all(np.abs(back - x)[inside] <= tol[inside])


@ROUND_TRIP
@given(values=st.lists(st.integers(-10**6, 10**6) | st.none(), min_size=1, max_size=60),
       first=st.integers(-10**6, 10**6), seed=st.integers(0, 2**32 - 1))
def test_integer_round_trip(values: list[int | None], first: int, seed: int) -> None:
    # |x| ≤ 1e6 keeps σ ≤ 2e6, so the float32 error 4σ·2⁻²⁵ < 0.25 and rounding is exact
    s = pd.Series([first, *values], dtype="Int64")
    t = NumericTransform(Column(name="n_items", kind="integer")).fit(s, _plain_ctx(len(s)))
    block = t.transform(s, np.random.default_rng(seed))
    back = t.inverse_transform(block)
    assert str(back.dtype) == "Int64"
    x = s.astype("float64").to_numpy()
    assert np.array_equal(back.isna().to_numpy(), np.isnan(x))
    expected, tol = _expected_numeric(t, x, block)
    present = ~np.isnan(x)
    assert np.all(tol[present] < 0.5)
    got = back.to_numpy(dtype=float, na_value=np.nan)
    inside = present & (expected == x)
    assert np.array_equal(got[inside], x[inside])  # integers inside their window: exact
    assert np.all(np.abs(got - expected)[present] <= 0.5 + tol[present])  # the rest: rounded edge


_DATETIMES = st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2200, 1, 1))


def _check_datetime_round_trip(s: pd.Series, kind_tz: str | None, seed: int) -> None:
    """The output's zone is the DECLARED one (`kind_tz`), never the input's."""
    t = NumericTransform(Column(name="admitted", kind="datetime", timezone=kind_tz)).fit(s, _plain_ctx(len(s)))
    block = t.transform(s, np.random.default_rng(seed))
    back = t.inverse_transform(block)
    if kind_tz is None:
        assert back.dt.tz is None
    else:
        assert str(back.dt.tz) == kind_tz
    x = t.floats(s)
    y = t.floats(back)
    _check_numeric_round_trip(t, x, block, y, extra_tol=NS)


@ROUND_TRIP
@given(values=st.lists(_DATETIMES | st.none(), max_size=40), first=_DATETIMES, seed=st.integers(0, 2**32 - 1))
def test_naive_datetime_round_trip(values: list[datetime | None], first: datetime, seed: int) -> None:
    s = pd.Series(pd.to_datetime([first, *values]))
    _check_datetime_round_trip(s, None, seed)


@ROUND_TRIP
@given(values=st.lists(_DATETIMES | st.none(), max_size=40), first=_DATETIMES,
       tz=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
       seed=st.integers(0, 2**32 - 1))
def test_tz_aware_datetime_round_trip(values: list[datetime | None], first: datetime, tz: str, seed: int) -> None:
    s = pd.Series(pd.to_datetime([first, *values])).dt.tz_localize("UTC").dt.tz_convert(tz)
    _check_datetime_round_trip(s, tz, seed)
    _check_datetime_round_trip(s, None, seed)  # undeclared: UTC instants, written without an offset


def test_datetime_strings_round_trip_within_a_microsecond_when_the_spread_is_small() -> None:
    # σ of a few seconds: the derived error 4σ·2⁻²⁴ + 16·2⁻⁵²·M is below 1 µs here
    base = pd.Timestamp("2023-03-14T09:26:53.589793")
    s = pd.Series([(base + pd.Timedelta(seconds=float(v))).isoformat() for v in np.linspace(0, 3, 50)] + [None])
    t = NumericTransform(Column(name="event_time", kind="datetime")).fit(s, _plain_ctx(len(s)))
    back = t.inverse_transform(t.transform(s, np.random.default_rng(0)))
    original = pd.to_datetime(s, format="mixed")
    diff = (back - original).abs()
    assert diff.isna().tolist() == original.isna().tolist()
    assert diff.max() <= pd.Timedelta(microseconds=1)


def test_datetimes_with_mixed_utc_offsets_round_trip_as_instants() -> None:
    # local times exported with their offset, across a DST change: one instant scale
    s = pd.Series(["2021-03-27T23:30:00+01:00", "2021-03-28T03:30:00+02:00", "2021-10-31T02:15:00+02:00",
                   "2021-10-31T02:15:00+01:00", None])
    t = NumericTransform(Column(name="event_time", kind="datetime", timezone="UTC")).fit(s, _plain_ctx(len(s)))
    block = t.transform(s, np.random.default_rng(0))
    back = t.inverse_transform(block)
    assert str(back.dt.tz) == "UTC"
    x = pd.to_datetime(s, utc=True, format="mixed").dt.tz_localize(None).astype("int64").to_numpy() / 1e9
    x[s.isna().to_numpy()] = np.nan
    np.testing.assert_array_equal(t.floats(s), x)  # the instants, not the wall-clock times
    _check_numeric_round_trip(t, x, block, t.floats(back), extra_tol=NS)


_LABELS = st.text(max_size=8).filter(lambda v: v not in (OTHER, NULL))


@ROUND_TRIP
@given(values=st.lists(_LABELS | st.none(), min_size=1, max_size=80), seed=st.integers(0, 2**32 - 1))
def test_categorical_round_trip_is_exact_including_nulls(values: list[str | None], seed: int) -> None:
    s = pd.Series(values, dtype=object)
    t = CategoricalTransform(Column(name="ward", kind="categorical")).fit(s, _plain_ctx(len(s)))
    back = t.inverse_transform(t.transform(s, np.random.default_rng(seed)))
    assert back.tolist() == values
    assert OTHER in t.labels_  # the explicit OTHER label always exists
    # NULL is released like a category: only for a column that holds a null (issue 17)
    assert (NULL in t.labels_) == (None in values)
    if None in values:
        assert t.counts_[t.labels_.index(NULL)] == values.count(None)


@ROUND_TRIP
@given(values=st.lists(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=3), min_size=1, max_size=80))
def test_categorical_with_public_categories_round_trips(values: list[str]) -> None:
    categories = tuple(sorted(set(values)) + ["never-seen"])
    column = Column(name="plan", kind="categorical", nullable=False, categories=categories)
    t = CategoricalTransform(column).fit(pd.Series(values), _plain_ctx(len(values)))
    assert t.labels_ == list(categories)  # public domain, declared order, no OTHER and no NULL
    back = t.inverse_transform(t.transform(pd.Series(values), np.random.default_rng(0)))
    assert back.tolist() == values


_BOOLEAN_SPELLINGS = {True: [True, "true", "Yes", "y", "1", 1, "T"], False: [False, "false", "NO", "n", "0", 0, "F"]}


@ROUND_TRIP
@given(truth=st.lists(st.booleans() | st.none(), min_size=1, max_size=60), data=st.data())
def test_boolean_round_trip_is_exact(truth: list[bool | None], data: st.DataObject) -> None:
    """Any accepted spelling comes back with the same truth value: as a boolean column by
    default, or spelled as the schema DECLARES (`true_false`) — whatever the data spells."""
    spelled = [None if v is None else data.draw(st.sampled_from(_BOOLEAN_SPELLINGS[v])) for v in truth]
    s = pd.Series(spelled, dtype=object)
    t = CategoricalTransform(Column(name="insured", kind="boolean")).fit(s, _plain_ctx(len(s)))
    back = t.inverse_transform(t.transform(s, np.random.default_rng(0)))
    pd.testing.assert_series_equal(back, pd.Series(truth, dtype="boolean"))
    assert t.state_dict()["tokens"] is None

    declared = CategoricalTransform(Column(name="insured", kind="boolean", true_false=("Y", "N")))
    back = declared.fit(s, _plain_ctx(len(s))).inverse_transform(declared.transform(s, np.random.default_rng(0)))
    assert back.tolist() == [None if v is None else ("Y" if v else "N") for v in truth]
    assert [None if v is pd.NA else bool(v) for v in boolean_values(back)] == truth

    typed = pd.Series(truth, dtype="boolean")
    t = CategoricalTransform(Column(name="insured", kind="boolean")).fit(typed, _plain_ctx(len(s)))
    back = t.inverse_transform(t.transform(typed, np.random.default_rng(0)))
    pd.testing.assert_series_equal(back, typed)


@st.composite
def _frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 40))

    def column(strategy: st.SearchStrategy, first: st.SearchStrategy) -> list:
        return [draw(first), *draw(st.lists(strategy | st.none(), min_size=n - 1, max_size=n - 1))]

    return pd.DataFrame({
        "record_id": [f"r{i}" for i in range(n)],
        "amount": pd.Series(column(_FLOATS, _FLOATS), dtype=float),
        "n_items": pd.Series(column(st.integers(-1000, 1000), st.integers(-1000, 1000)), dtype="Int64"),
        "ward": pd.Series(column(_LABELS, _LABELS), dtype=object),
        "insured": pd.Series(column(st.booleans(), st.booleans()), dtype="boolean"),
        "admitted": pd.to_datetime(pd.Series(column(_DATETIMES, _DATETIMES), dtype=object)),
    })


_FRAME_SCHEMA = Schema(columns=(
    Column(name="record_id", kind="identifier", nullable=False),
    Column(name="amount", kind="continuous"),
    Column(name="n_items", kind="integer"),
    Column(name="ward", kind="categorical"),
    Column(name="insured", kind="boolean"),
    Column(name="admitted", kind="datetime"),
)).validate()


@ROUND_TRIP
@given(frame=_frames(), seed=st.integers(0, 2**32 - 1))
def test_data_transformer_round_trip(frame: pd.DataFrame, seed: int) -> None:
    original = frame.copy(deep=True)
    dt = DataTransformer(_FRAME_SCHEMA).fit(frame, _plain_ctx(len(frame)))
    encoded = dt.transform(frame, np.random.default_rng(seed))
    assert encoded.shape == (len(frame), dt.width) and encoded.dtype == np.float32
    back = dt.inverse_transform(encoded)
    pd.testing.assert_frame_equal(frame, original)  # fit/transform never mutate the input
    assert list(back.columns) == ["amount", "n_items", "ward", "insured", "admitted"]  # identifiers: not learned
    slices = dt.column_slices()
    assert back["ward"].tolist() == [None if v is None else v for v in frame["ward"]]
    assert back["insured"].tolist() == frame["insured"].tolist()
    for name in ("amount", "n_items", "admitted"):
        t = dt.transforms[name]
        x, y = t.floats(frame[name]), t.floats(back[name])
        _check_numeric_round_trip(t, x, encoded[:, slices[name]], y,
                                  extra_tol=0.5 if name == "n_items" else NS)


# ------------------------------------------------------------------ one contract test


def _sample_column(kind: str, n: int, rng: np.random.Generator) -> tuple[Column, pd.Series]:
    null = rng.random(n) < 0.1
    null[0] = False
    if kind == "continuous":
        s = pd.Series(np.concatenate([rng.normal(20, 3, n // 2), rng.normal(60, 8, n - n // 2)]))
    elif kind == "integer":
        s = pd.Series(rng.poisson(12, n), dtype="Int64")
    elif kind == "categorical":
        s = pd.Series(rng.choice(["icu", "oncology", "cardiology", "maternity"], n, p=[0.1, 0.3, 0.4, 0.2]),
                      dtype=object)
    elif kind == "boolean":
        s = pd.Series(rng.random(n) < 0.3, dtype="boolean")
    else:
        start = pd.Timestamp("2022-01-01", tz="Europe/Paris")
        s = pd.Series(start + pd.to_timedelta(rng.integers(0, 365 * 24 * 3600, n), unit="s"))
    s[null] = None
    return Column(name=f"{kind}_col", kind=kind), s


@pytest.mark.parametrize("kind", ["continuous", "integer", "categorical", "boolean", "datetime"])
def test_column_transform_contract(kind: str) -> None:
    rng = np.random.default_rng(11)
    n = 300
    column, s = _sample_column(kind, n, rng)
    original = s.copy()
    t = make_transform(column)
    assert t.fit(s, _plain_ctx(n)) is t  # fit returns self
    pd.testing.assert_series_equal(s, original)

    block = t.transform(s, np.random.default_rng(5))
    assert block.shape == (n, sum(span.width for span in t.spans)) and block.dtype == np.float32
    start = 0
    for span in t.spans:  # the layout the networks read: tanh in [-1, 1], softmax spans one-hot
        part = block[:, start:start + span.width]
        if span.activation == "tanh":
            assert span.width == 1 and np.all(np.abs(part) <= 1)
        else:
            assert np.all(part.sum(axis=1) == 1) and np.all((part == 0) | (part == 1))
        start += span.width
    assert start == block.shape[1]

    back = t.inverse_transform(block)
    assert len(back) == n
    assert back.isna().tolist() == s.isna().tolist()

    state = json.loads(json.dumps(t.state_dict()))  # JSON is all a bundle holds: no pickle
    clone = make_transform(column)
    clone.load_state_dict(state)
    assert clone.spans == t.spans
    pd.testing.assert_series_equal(clone.inverse_transform(block), back)
    assert np.array_equal(clone.transform(s, np.random.default_rng(5)), block)


def test_data_transformer_contract() -> None:
    rng = np.random.default_rng(3)
    n = 200
    pairs = [_sample_column(kind, n, rng) for kind in ["continuous", "integer", "categorical", "boolean", "datetime"]]
    schema = Schema(columns=(Column(name="person", kind="identifier", nullable=False), *[c for c, _ in pairs]),
                    entity_key="person").validate()
    frame = pd.DataFrame({"person": [f"p{i}" for i in range(n)], **{c.name: s for c, s in pairs}})
    dt = DataTransformer(schema)
    assert dt.fit(frame, _plain_ctx(n)) is dt and dt.fitted
    encoded = dt.transform(frame, np.random.default_rng(1))
    assert encoded.shape == (n, dt.width) == (n, sum(s.width for s in dt.spans))
    slices = list(dt.column_slices().values())
    assert slices[0].start == 0 and slices[-1].stop == dt.width
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))  # contiguous, in schema order
    assert [name for name, _, _ in dt.discrete_columns()] == ["categorical_col", "boolean_col"]
    for _, _, freq in dt.discrete_columns():
        assert math.isclose(freq.sum(), 1.0)

    clone = DataTransformer(schema)
    clone.load_state_dict(json.loads(json.dumps(dt.state_dict())))
    assert clone.fitted and clone.spans == dt.spans
    pd.testing.assert_frame_equal(clone.inverse_transform(encoded), dt.inverse_transform(encoded))


# ------------------------------------------------------------------ under DP

BUDGET = PrivacyBudget(epsilon=1.0, delta=1e-6)


def test_public_categories_are_not_discovered() -> None:
    declared = Column(name="plan", kind="categorical", nullable=False, categories=("basic", "premium", "gold"))
    undeclared = Column(name="plan", kind="categorical", nullable=False)
    values = pd.Series(np.random.default_rng(0).choice(["basic", "premium"], 2000))

    t = CategoricalTransform(declared)
    assert t.n_discovery() == 0 and CategoricalTransform(Column(name="b", kind="boolean")).n_discovery() == 0
    ctx, ledger = _private_ctx(t, len(values), budget=BUDGET, seed=1)
    t.fit(values, ctx)
    assert not any(isinstance(e, ThresholdEvent) for e in ledger.events)
    assert [e.name for e in ledger.events] == ["count:units", "categories:plan"]
    assert t.labels_ == ["basic", "premium", "gold"]  # the declared set, even an unseen label

    u = CategoricalTransform(undeclared)  # the bracket: without the declaration, discovery is charged
    assert u.n_discovery() == 1
    ctx, ledger = _private_ctx(u, len(values), budget=BUDGET, seed=1)
    u.fit(values, ctx)
    assert [e.name for e in ledger.events if isinstance(e, ThresholdEvent)] == ["categories:plan:threshold"]
    assert ledger.epsilon_spent() <= BUDGET.epsilon


def test_a_category_of_one_row_is_folded_into_other_under_dp() -> None:
    rng = np.random.default_rng(2024)
    n = 5000
    values = np.array(["oncology"] * 2500 + ["cardiology"] * 1500 + ["icu"] * 999 + ["rare-ward"] * 1, dtype=object)
    values = pd.Series(rng.permutation(values))
    t = CategoricalTransform(Column(name="ward", kind="categorical", nullable=False))
    ctx, ledger = _private_ctx(t, n, budget=BUDGET, seed=7)
    t.fit(values, ctx)
    sigma, delta_t = ctx.plan.sigma_hist, ctx.plan.threshold_delta
    tau = 1 + sigma * norm.isf(delta_t)  # release threshold (k = 1)
    # the margins below are 5σ or more: the seeded draw is not a lucky one
    assert 999 - tau > 5 * sigma and tau - 1 > 5 * sigma
    assert t.labels_ == ["cardiology", "icu", "oncology", OTHER]
    for label, true in (("oncology", 2500), ("cardiology", 1500), ("icu", 999)):
        assert abs(t.counts_[t.labels_.index(label)] - true) <= 5 * sigma
    back = t.inverse_transform(t.transform(values, np.random.default_rng(0)))
    assert (back[values == "rare-ward"] == OTHER).all()
    assert back[values != "rare-ward"].tolist() == values[values != "rare-ward"].tolist()
    assert ledger.epsilon_spent() <= BUDGET.epsilon * (1 + 1e-9)


def test_dp_bounds_contain_the_bulk_of_the_data() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(50, 10, 20_000)
    plan = plan_preprocessing(budget=BUDGET, k=1, n_histograms=1, n_discovery=0, epsilon_share=0.5)
    ledger = PrivacyLedger(budget=BUDGET)
    lo, hi = geometric_bounds(x, sigma=plan.sigma_hist, sensitivity=1.0, name="bounds:glucose", ledger=ledger,
                              rng=rng, what="column 'glucose'")
    assert np.isfinite(lo) and np.isfinite(hi)
    p1, p99 = np.percentile(x, [1, 99])
    assert lo <= p1 and hi >= p99
    # and not absurdly wide: no empty bin clears the threshold (chance < 0.1% for the whole
    # grid), so the range stays inside [0, √2·max]: the grid edges grow by √2 per bin
    assert lo >= 0 and hi <= math.sqrt(2) * x.max()
    assert ledger.events == [GaussianEvent(name="bounds:glucose", sigma=plan.sigma_hist, sensitivity=1.0)]


def test_dp_bounds_without_privacy_are_the_exact_range_and_refuse_too_few_units() -> None:
    x = np.array([3.5, -2.0, 7.25])
    assert geometric_bounds(x, sigma=1.0, sensitivity=1.0, name="b", ledger=PrivacyLedger(budget=None),
                            rng=np.random.default_rng(0), what="column 'x'") == (-2.0, 7.25)
    with pytest.raises(BudgetExceededError, match="declare 'bounds'"):
        geometric_bounds(x, sigma=50.0, sensitivity=1.0, name="b", ledger=PrivacyLedger(budget=BUDGET),
                         rng=np.random.default_rng(0), what="column 'x'")


@pytest.mark.parametrize("kind", ["continuous", "datetime"])
def test_a_constant_column_gets_a_usable_range(kind: str) -> None:
    # regression: the exact (non-private) range of a constant column is empty, which
    # left the mixture with no mode and transform() failing
    s = pd.Series([42.0] * 10) if kind == "continuous" else pd.Series(pd.to_datetime(["2024-02-29"] * 10))
    t = NumericTransform(Column(name="c", kind=kind)).fit(s, _plain_ctx(len(s)))
    lo, hi = t.bounds_
    assert lo < hi and t.n_modes >= 1
    block = t.transform(s, np.random.default_rng(0))
    back = t.inverse_transform(block)
    _check_numeric_round_trip(t, t.floats(s), block, t.floats(back), extra_tol=NS)


def _two_mode_histogram(rng: np.random.Generator, *, sigma: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Expected bin counts of 5000 rows from 0.6·N(25, 5²) + 0.4·N(70, 6²) on [0, 100],
    plus DP noise N(0, σ²) clipped at 0, as NumericTransform.fit sees them."""
    edges = np.linspace(0, 100, FINE_BINS + 1)
    cdf = 0.6 * norm.cdf(edges, 25, 5) + 0.4 * norm.cdf(edges, 70, 6)
    counts = 5000 * np.diff(cdf) + rng.normal(0, sigma, FINE_BINS)
    return (edges[:-1] + edges[1:]) / 2, np.clip(counts, 0, None), 100 / FINE_BINS


def test_mixture_recovers_two_well_separated_modes() -> None:
    # the noise of an ε = 1 plan on 5000 rows (σ ≈ 15 per bin)
    sigma = plan_preprocessing(budget=BUDGET, k=1, n_histograms=1, n_discovery=0, epsilon_share=0.5).sigma_hist
    centres, counts, width = _two_mode_histogram(np.random.default_rng(9), sigma=sigma)
    means, stds, weights = fit_mixture_to_histogram(centres, counts, bin_width=width, max_modes=2)
    assert len(means) == 2
    # margin: one bin width for the means and stds (binning and the noise on ~20 bins
    # around each mode move them by well under a bin), 0.05 for the weights
    assert np.all(np.abs(means - [25, 70]) <= width)
    assert np.all(np.abs(stds - [5, 6]) <= width)
    assert np.all(np.abs(weights - [0.6, 0.4]) <= 0.05)


def test_mixture_with_spare_components_keeps_the_two_groups() -> None:
    sigma = plan_preprocessing(budget=BUDGET, k=1, n_histograms=1, n_discovery=0, epsilon_share=0.5).sigma_hist
    centres, counts, width = _two_mode_histogram(np.random.default_rng(10), sigma=sigma)
    means, stds, weights = fit_mixture_to_histogram(centres, counts, bin_width=width)  # up to 10 modes
    assert np.all(np.diff(means) >= 0) and math.isclose(weights.sum(), 1.0) and np.all(weights >= 0.005)
    left = means < 47.5  # components may split a mode; together they must still describe it
    assert abs(weights[left].sum() - 0.6) <= 0.05
    assert abs(np.average(means[left], weights=weights[left]) - 25) <= width
    assert abs(np.average(means[~left], weights=weights[~left]) - 70) <= width


def test_grid_is_data_independent() -> None:
    assert np.all(np.diff(GEOMETRIC_EDGES) > 0)
    assert GEOMETRIC_EDGES[0] == -GEOMETRIC_EDGES[-1]


def test_numeric_fit_under_dp_charges_the_planned_histograms() -> None:
    rng = np.random.default_rng(4)
    s = pd.Series(rng.normal(50, 10, 3000))
    with_bounds = NumericTransform(Column(name="glucose", kind="continuous", bounds=(0, 200)))
    without = NumericTransform(Column(name="glucose", kind="continuous"))
    assert (with_bounds.n_histograms(), without.n_histograms()) == (1, 2)
    for t, names in ((with_bounds, ["count:units", "histogram:glucose"]),
                     (without, ["count:units", "bounds:glucose", "histogram:glucose"])):
        ctx, ledger = _private_ctx(t, len(s), budget=BUDGET, seed=3)
        t.fit(s, ctx)
        assert [e.name for e in ledger.events] == names
        assert ledger.epsilon_spent() <= BUDGET.epsilon * (1 + 1e-9)
        lo, hi = t.bounds_
        assert lo <= np.percentile(s, 1) and hi >= np.percentile(s, 99)


def test_plain_context_charges_nothing() -> None:
    ctx = _plain_ctx(10)
    CategoricalTransform(Column(name="c", kind="categorical")).fit(pd.Series(list("aabbc") * 2), ctx)
    assert ctx.ledger.events == [] and not ctx.ledger.private


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False), max_size=300))
def test_value_order_is_the_stable_argsort(values: list[float]) -> None:
    # float32-representable values (so no two distinct ones collapse): the exact stable
    # order, ties (and -0.0 against 0.0, equal as floats) in index order
    x = np.array(values, dtype=np.float64)
    x[x == 0] = 0.0
    np.testing.assert_array_equal(value_order(x), np.argsort(x, kind="stable"))


def test_value_order_sorts_float64_up_to_float32_resolution() -> None:
    x = np.random.default_rng(0).normal(0, 1e6, 100_000)
    order = value_order(x)
    assert sorted(order.tolist()) == list(range(len(x)))  # a permutation
    steps = np.diff(x[order])
    # out of order only between values that float32 cannot tell apart
    assert np.all(steps >= -np.spacing(np.abs(x[order][1:]).astype(np.float32)).astype(np.float64))


# ------------------------------------------------------------------ format facts
def test_a_date_column_comes_out_as_whole_dates_inside_its_bounds() -> None:
    """`time_unit: day` (declared): synthetic values are whole (UTC) dates, rounded inwards
    at the bounds (post-processing), with or without the calibration to the DP margin."""
    rng = np.random.default_rng(3)
    column = Column(name="born", kind="datetime", time_unit="day", bounds=("1950-01-01T12:00:00", "2000-01-01"))
    s = pd.Series(pd.Timestamp("1950-01-01") + pd.to_timedelta(rng.integers(1, 18_000, 500), unit="D")
                  + pd.to_timedelta(rng.integers(0, 86_400, 500), unit="s"))  # some times of day in the input
    t = NumericTransform(column).fit(s, _plain_ctx(len(s)))
    block = t.transform(s, np.random.default_rng(0))
    for calibrate in (False, True):
        back = t.inverse_transform(block, calibrate=calibrate)
        assert (back == back.dt.normalize()).all()
        assert back.min() >= pd.Timestamp("1950-01-02") and back.max() <= pd.Timestamp("2000-01-01")


@pytest.mark.parametrize("kind", ["continuous", "integer", "datetime"])
def test_a_numeric_column_without_values_is_released_empty_under_the_same_ledger(kind: str) -> None:
    """No DP range clears the noise for a column no row fills (kept by the connectors): it
    is released empty — all null — by post-processing, charging exactly what a filled
    column charges. A non-nullable one still refuses, naming the fix."""
    n = 400
    filled = pd.Series(np.random.default_rng(1).normal(100, 10, n))
    if kind == "datetime":
        filled = pd.Timestamp("2020-01-01") + pd.to_timedelta(filled.round(), unit="D")
    empty = pd.Series([None] * n, dtype=object)
    ledgers = {}
    for name, s in (("filled", filled), ("empty", empty)):
        t = NumericTransform(Column(name="lab", kind=kind))
        ctx, ledgers[name] = _private_ctx(t, n, budget=PrivacyBudget(epsilon=3.0, delta=1e-6), seed=0)
        t.fit(s, ctx)
        assert t.empty_ == (name == "empty")
    assert [e.name for e in ledgers["filled"].events] == [e.name for e in ledgers["empty"].events]
    assert ledgers["filled"].epsilon_spent() == ledgers["empty"].epsilon_spent()
    assert t.null_share_ == 1.0 and float(np.sum(t.hist_)) == 0.0
    back = t.inverse_transform(t.transform(empty, np.random.default_rng(0)))
    assert back.isna().all()
    loaded = NumericTransform(Column(name="lab", kind=kind))
    loaded.load_state_dict(json.loads(json.dumps(t.state_dict())))
    assert loaded.empty_ and loaded.to_series(np.zeros(3)).isna().all()

    strict = NumericTransform(Column(name="lab", kind=kind, nullable=False))
    ctx, _ = _private_ctx(strict, n, budget=PrivacyBudget(epsilon=3.0, delta=1e-6), seed=0)
    with pytest.raises(BudgetExceededError, match="declare 'bounds'"):
        strict.fit(empty, ctx)
