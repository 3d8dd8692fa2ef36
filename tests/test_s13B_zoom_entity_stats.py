"""Map-reduce DP statistics = single-process ones for the two releases the single-process
preprocessing gained after synthkit.distributed.stats was written (issue 19, session 13):

(a) the two-look zoomed value histogram of a narrow column far from 0 (transforms.zoomed_histogram):
    `stats.release_numeric` runs the range histogram, then the first look and the second look
    as passes over the source (the second on edges chosen from the first look's DP output),
    charged as ONE `histogram:<column>` event;
(b) DPHMM's entity-weighted range histogram (models.hmm.ranges.EntityRangeTransform): weights
    k/sqrt(bins an entity touches), sensitivity k, `stats.EntityRangeHistogram`.

Each test gives both paths the same noise source (np.random.default_rng(seed), as
tests/test_distributed_stats.py does) and compares what is released: the edges, the raw
noisy counts, the post-processed counts, the final bounds, the ledger's events.

Negative control: on 3e68075 (before this change) every test here fails: `release_numeric`,
`frame_counter`, `ray_counter` and `EntityRangeHistogram` do not exist, and what the
map-reduce path released there for these columns differs from the single-process release (the
`before` assertions below: the year histogram kept the 64 wide bins of the DP range [~1449,
~2047] where the transform zooms to one bin per year; event-level range counts, not entity
weights).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthkit.distributed import stats as st
from synthkit.ledger import PrivacyBudget, PrivacyLedger
from synthkit.mechanisms import plan_preprocessing
from synthkit.schema import Column
from synthkit.transforms import FitContext, NumericTransform

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
YEAR = Column(name="year", kind="integer", nullable=True)
PRICE = Column(name="price", kind="continuous", nullable=False)
LAB = Column(name="lab", kind="continuous", nullable=True)
MAX_LEN = 6  # the sequences' k (DPHMM's max length): every entity keeps all its events here


def _plan(k: int = 1):
    return plan_preprocessing(budget=BUDGET, k=k, n_histograms=3, n_discovery=0, epsilon_share=0.3, n_bounds=1)


def _years(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"year": rng.integers(1995, 2004, n).astype(float),
                          "price": rng.normal(1000.0, 20.0, n)})
    frame.loc[::40, "year"] = np.nan  # a null cell
    return frame


def _events(n_entities: int = 400, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_entities), rng.integers(1, MAX_LEN + 1, n_entities))
    lab = np.exp(rng.normal(3.0, 1.5, len(codes)))
    lab[rng.random(len(codes)) < 0.05] = np.nan
    frame = pd.DataFrame({"pid": [f"p{c}" for c in codes], "lab": lab})
    order = rng.permutation(len(frame))  # rows of one entity scattered over the source
    return frame.iloc[order].reset_index(drop=True), codes[order]


def _counting(count):
    calls = []

    def wrapped(stats):
        calls.append([type(s).__name__ for s in stats])
        return count(stats)
    return wrapped, calls


def _assert_same_release(rel, nt: NumericTransform):
    np.testing.assert_array_equal(rel.edges, nt.edges_)
    np.testing.assert_array_equal(rel.noisy, nt.hist_noisy_)
    np.testing.assert_array_equal(rel.cleared, nt.hist_)
    assert rel.bounds == nt.bounds_ and rel.sigma == nt.hist_sigma_


def _reference(frame, column, plan, seed, n_rows_dp):
    ledger = PrivacyLedger(budget=BUDGET, unit="row", max_rows_per_unit=plan.k)
    nt = NumericTransform(column).fit(frame[column.name], FitContext(ledger=ledger, plan=plan,
                                                                     rng=np.random.default_rng(seed),
                                                                     n_rows_dp=n_rows_dp))
    return nt, ledger


def _map_reduce(frame, column, plan, seed, n_rows_dp, n_blocks):
    ledger = PrivacyLedger(budget=BUDGET, unit="row", max_rows_per_unit=plan.k)
    merged = st.merge_all(st.partials_of_frame(frame, [st.RangeHistogram(column=column)], entity_key=None, k=1,
                                               n_blocks=n_blocks, rng=np.random.default_rng(7)))[0]
    count, calls = _counting(st.frame_counter(frame, entity_key=None, k=1, n_blocks=n_blocks,
                                              rng=np.random.default_rng(8)))
    rel = st.release_numeric(column, merged, count, plan, ledger, np.random.default_rng(seed), n_rows_dp=n_rows_dp)
    return rel, ledger, calls, merged


# ------------------------------------------------------------------ (a) the two-look zoom
@pytest.mark.parametrize("n_blocks", [1, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zoomed_year_histogram_over_blocks_equals_the_transform(n_blocks, seed):
    """Years 1995-2003, 2,000 rows: the DP range is whole grid bins (hundreds of years wide);
    the transform zooms to one bin per year in two looks. The map-reduce release takes the
    same two looks as two passes (the second on the first look's cleared bins) and releases
    the same numbers, with the same one `histogram:year` event."""
    plan, frame = _plan(), _years()
    n_rows_dp = float(len(frame)) + 3.0  # a released DP count (any public number will do here)
    nt, sp = _reference(frame, YEAR, plan, seed, n_rows_dp)
    rel, mr, calls, merged = _map_reduce(frame, YEAR, plan, seed, n_rows_dp, n_blocks)
    _assert_same_release(rel, nt)
    assert mr.events == sp.events and [e.name for e in mr.events] == ["bounds:year", "histogram:year"]
    assert calls == [["EdgeHistogram"], ["EdgeHistogram"]]  # first look, then the zoomed second look
    assert 1994.5 <= rel.edges[0] and rel.edges[-1] <= 2003.5 and len(rel.edges) - 1 <= 9  # one bin per year
    assert rel.cleared.sum() == pytest.approx(n_rows_dp - rel.null, rel=0.05)

    # before: the map-reduce path released the plain histogram on the DP range (64 bins of ~9
    # years over the range's whole grid bins), not the transform's release
    before = PrivacyLedger(budget=BUDGET)
    lo, hi = st.RangeHistogram(column=YEAR).release(merged, plan, before, np.random.default_rng(seed))
    assert hi - lo > 100
    old = st.ValueHistogram(column=YEAR, bounds=(lo, hi))
    assert len(old.edges) != len(nt.edges_)


@pytest.mark.parametrize("seed", [0, 1])
def test_zoomed_continuous_band_equals_the_transform(seed):
    """A continuous N(1000, 20) column: the zoom's other branch (the two looks on the same
    edges, averaged, a margin around the cleared extent); the second look takes no new pass."""
    plan, frame = _plan(), _years()
    n_rows_dp = float(len(frame))
    nt, sp = _reference(frame, PRICE, plan, seed, n_rows_dp)
    rel, mr, calls, _ = _map_reduce(frame, PRICE, plan, seed, n_rows_dp, 3)
    _assert_same_release(rel, nt)
    assert mr.events == sp.events and len(mr.events) == 2
    assert 1 <= len(calls) <= 2
    assert 850 < rel.bounds[0] < 960 and 1040 < rel.bounds[1] < 1150  # narrowed around the data, not the grid bins


def _small_integers(which: str, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    values = {"stage": rng.choice([1.0, 2.0, 3.0, 4.0], n, p=[0.05, 0.25, 0.4, 0.3]),  # a 1-4 class (pbc stage)
              "visits": np.minimum(rng.poisson(4.0, n), 30).astype(float),  # a count with a zero
              "flag": np.zeros(n)}[which]  # one value: the transform's forced second value
    return pd.DataFrame({"year": values})


@pytest.mark.parametrize("which", ["stage", "visits", "flag"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_integer_ranges_padded_and_cut_as_the_transform(which, seed):
    """Integer columns whose DP range holds at most 256 values: the transform pads the range
    with neighbouring values and cuts the padded and outer values the two noisy histograms
    do not fill (issue 17). The map-reduce release mirrors it (one pass for the histogram)."""
    plan, frame = _plan(), _small_integers(which)
    n_rows_dp = float(len(frame))
    nt, sp = _reference(frame, YEAR, plan, seed, n_rows_dp)
    rel, mr, calls, _ = _map_reduce(frame, YEAR, plan, seed, n_rows_dp, 4)
    _assert_same_release(rel, nt)
    assert mr.events == sp.events and calls == [["ValueHistogram"]]


# ------------------------------------------------------------------ (b) DPHMM's entity-weighted ranges
@pytest.mark.parametrize("n_blocks", [1, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entity_weighted_range_over_blocks_equals_dphmm_transform(n_blocks, seed):
    """400 entities with 1-6 events each (k = 6), rows scattered: routed by entity, each block's
    entity weights k/sqrt(m) summed, one `bounds:lab` release at sensitivity k; then the value
    histogram on that range. Equal to EntityRangeTransform.fit on the whole table (the noisy
    range counts up to float summation order, the range and everything after exactly)."""
    from synthkit.models.hmm.ranges import EntityRangeTransform, presence_weights

    plan = _plan(k=MAX_LEN)
    frame, codes = _events()
    n_rows_dp = float(len(frame))
    sp = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=MAX_LEN)
    nt = EntityRangeTransform(LAB, entity=codes).fit(
        frame["lab"], FitContext(ledger=sp, plan=plan, rng=np.random.default_rng(seed), n_rows_dp=n_rows_dp))

    spec = st.EntityRangeHistogram(column=LAB, entity_key="pid", k=MAX_LEN)
    merged = st.merge_all(st.partials_of_frame(frame, [spec], entity_key="pid", k=MAX_LEN, n_blocks=n_blocks,
                                               rng=np.random.default_rng(3)))[0]
    x = frame["lab"].to_numpy()
    present = ~np.isnan(x)
    exact = np.bincount(np.searchsorted(spec.grid, x[present], side="right"),
                        weights=MAX_LEN * presence_weights(x[present], codes[present], integer=False),
                        minlength=len(spec.grid) + 1)
    np.testing.assert_allclose(merged.counts, exact, rtol=1e-12, atol=1e-9)

    mr = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=MAX_LEN)
    rng = np.random.default_rng(seed)  # one stream: the range's draws, then the histogram's, as in the transform
    r = spec.release(merged, plan, mr, rng)
    assert r is not None and nt.entity_range_ == "learned"
    hist = st.ValueHistogram(column=LAB, bounds=(r.lo, r.hi))
    rel = hist.release(st.frame_counter(frame, entity_key="pid", k=MAX_LEN, n_blocks=n_blocks,
                                        rng=np.random.default_rng(4))([hist])[0],
                       plan, mr, rng, n_rows_dp=n_rows_dp)
    assert (r.lo, r.hi) == nt.bounds_
    np.testing.assert_array_equal(rel.edges, nt.edges_)
    np.testing.assert_array_equal(rel.cleared, nt.hist_)
    assert mr.events == sp.events
    assert [(e.name, e.sensitivity) for e in mr.events] == [("bounds:lab", MAX_LEN), ("histogram:lab", MAX_LEN)]

    # before: the map-reduce range histogram counted events (weight 1 each, the same
    # sensitivity k), not entities' presence (weight k/sqrt(m)): other numbers entirely
    events = st.merge_all(st.partials_of_frame(frame, [st.RangeHistogram(column=LAB)], entity_key="pid", k=MAX_LEN,
                                               n_blocks=n_blocks, rng=np.random.default_rng(3)))[0]
    assert events.counts.sum() == present.sum()
    assert np.abs(events.counts - merged.counts).sum() > 0.5 * merged.counts.sum()


def test_entity_weights_need_whole_entities_per_block():
    """The weights are per entity: blocks cut by row position (an entity in several blocks)
    give it up to one norm-k vector per block. Routing by key (partials_of_frame) keeps the
    sum exact; this is the control that the routing is what makes it so."""
    plan = _plan(k=MAX_LEN)
    frame, _ = _events()
    spec = st.EntityRangeHistogram(column=LAB, entity_key="pid", k=plan.k)
    routed = st.merge_all(st.partials_of_frame(frame, [spec], entity_key="pid", k=MAX_LEN, n_blocks=4,
                                               rng=np.random.default_rng(0)))[0]
    which = np.arange(len(frame)) % 4
    cut = st.merge_all([st.block_partials(frame[which == b], [spec], entity_key="pid", k=MAX_LEN,
                                          rng=np.random.default_rng(b)) for b in range(4)])[0]
    assert cut.counts.sum() > routed.counts.sum() * 1.1


def test_entity_range_refuses_a_plan_with_another_k():
    plan = _plan(k=MAX_LEN)
    spec = st.EntityRangeHistogram(column=LAB, entity_key="pid", k=2)
    merged = spec.partial(_events()[0])
    with pytest.raises(st.ConfigError, match="k = 2"):
        spec.release(merged, plan, PrivacyLedger(budget=BUDGET), np.random.default_rng(0))


# ------------------------------------------------------------------ (b') DPHMM's bound: the first k events
def _long_events(n_entities: int = 300, seed: int = 2) -> pd.DataFrame:
    """Entities with 1-14 events (k = 6 keeps the first 6 by date), dates as ISO text,
    rows scattered over the source."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 15, n_entities)
    codes = np.repeat(np.arange(n_entities), lengths)
    day = np.concatenate([np.sort(rng.choice(3000, n, replace=False)) for n in lengths])
    lab = np.exp(rng.normal(3.0, 1.5, len(codes)) + 0.002 * day)  # later events larger: the bound matters
    frame = pd.DataFrame({"pid": [f"p{c}" for c in codes], "lab": lab,
                          "day": (pd.Timestamp("2010-01-01") + pd.to_timedelta(day, unit="D")).strftime("%Y-%m-%d")})
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def _dphmm_reference(frame, plan, seed):
    from synthkit.models.hmm.ranges import EntityRangeTransform
    from synthkit.sequence import TimeAxis, group_events

    axis = TimeAxis(kind="datetime", unit="day", format="%Y-%m-%d")
    grouped = group_events(frame, entity_key="pid", axis=axis, index="day", max_length=MAX_LEN)
    ledger = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=MAX_LEN)
    nt = EntityRangeTransform(LAB, entity=grouped.entity).fit(
        grouped.events["lab"], FitContext(ledger=ledger, plan=plan, rng=np.random.default_rng(seed),
                                          n_rows_dp=float(len(grouped.events))))
    return nt, ledger, grouped, st.SequenceOrder(index="day", axis=axis)


@pytest.mark.parametrize("n_blocks", [1, 4])
def test_first_k_events_bound_gives_dphmms_entity_range(n_blocks):
    """Sequences longer than k: DPHMM keeps each entity's FIRST k events by the index
    (`group_events`). With `first_by=SequenceOrder(...)` the map-reduce bound keeps the same
    rows, so the entity weights, the range and the value histogram are DPHMM's. Control: the
    uniform k-row bound (without `first_by`) keeps other events and other weights."""
    plan, frame = _plan(k=MAX_LEN), _long_events()
    nt, sp, grouped, order = _dphmm_reference(frame, plan, 3)
    spec = st.EntityRangeHistogram(column=LAB, entity_key="pid", k=MAX_LEN)
    merged = st.merge_all(st.partials_of_frame(frame, [spec], entity_key="pid", k=MAX_LEN, n_blocks=n_blocks,
                                               rng=np.random.default_rng(0), first_by=order))[0]
    ref = spec.partial(grouped.events)  # one block: DPHMM's kept events
    np.testing.assert_allclose(merged.counts, ref.counts, rtol=1e-12, atol=1e-9)
    mr = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=MAX_LEN)
    rng = np.random.default_rng(3)
    r = spec.release(merged, plan, mr, rng)
    hist = st.ValueHistogram(column=LAB, bounds=(r.lo, r.hi))
    count = st.frame_counter(frame, entity_key="pid", k=MAX_LEN, n_blocks=n_blocks, rng=np.random.default_rng(1),
                             first_by=order)
    rel = hist.release(count([hist])[0], plan, mr, rng, n_rows_dp=float(len(grouped.events)))
    assert (r.lo, r.hi) == nt.bounds_ and mr.events == sp.events
    np.testing.assert_array_equal(rel.cleared, nt.hist_)

    uniform = st.merge_all(st.partials_of_frame(frame, [spec], entity_key="pid", k=MAX_LEN, n_blocks=n_blocks,
                                                rng=np.random.default_rng(0)))[0]
    assert np.abs(uniform.counts - ref.counts).sum() > 0.05 * ref.counts.sum()


@pytest.mark.parametrize("n_slices", [3, 9])
def test_first_k_events_of_an_entity_cut_between_sorted_blocks(n_slices):
    """Ray's sorted blocks can cut an entity: each block sends its first k events of the edge
    entities and the driver keeps the first k of their union, DPHMM's first k."""
    plan, frame = _plan(k=MAX_LEN), _long_events(n_entities=60)
    _, _, grouped, order = _dphmm_reference(frame, plan, 0)
    spec = [st.UnitCount(entity_key="pid"), st.EntityRangeHistogram(column=LAB, entity_key="pid", k=MAX_LEN)]
    ordered = frame.sort_values("pid", kind="stable").reset_index(drop=True)
    blobs = [st._ray_map(ordered.iloc[idx], stats=spec, entity_key="pid", k=MAX_LEN, first_by=order)["partials"][0]
             for idx in np.array_split(np.arange(len(ordered)), n_slices)]
    got = st.merge_mapped(blobs, spec, entity_key="pid", k=MAX_LEN, first_by=order)
    assert (got[0].n_units, got[0].n_rows) == (60, len(grouped.events))
    np.testing.assert_allclose(got[1].counts, spec[1].partial(grouped.events).counts, rtol=1e-12, atol=1e-9)


# ------------------------------------------------------------------ on Ray Data
@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'synthkit[ray]')")
    st.init_ray(num_cpus=4)
    yield ray
    ray.shutdown()


def _write(frame: pd.DataFrame, folder, n_files: int) -> None:
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), n_files)):
        frame.iloc[part].to_parquet(folder / f"part-{i:03d}.parquet", index=False)


@pytest.mark.slow  # three Ray Data passes and a sort shuffle: 3 min on the shared 2-core machine at load 10
def test_ray_zoom_and_entity_ranges_equal_single_process(ray_session, tmp_path):
    """(a) over a 4-file Parquet dataset with ray_partials: pass 1 (unit count, range
    histogram), then the two looks as two more Ray Data passes; (b) the entity-weighted range
    over a 3-file dataset of sequences longer than k, sorted by entity key on Ray and bounded
    to each entity's first k events (`SequenceOrder` pickled to the workers). Both equal the
    single-process release (NumericTransform.fit; DPHMM's group_events + EntityRangeTransform)."""
    plan, frame = _plan(), _years()
    _write(frame, tmp_path / "years", 4)
    count_p, range_p = st.ray_partials(str(tmp_path / "years"), [st.UnitCount(), st.RangeHistogram(column=YEAR)])
    mr = PrivacyLedger(budget=BUDGET, unit="row", max_rows_per_unit=1)
    _, n_rows_dp = st.UnitCount().release(count_p, plan, mr, np.random.default_rng(5))
    count, calls = _counting(st.ray_counter(str(tmp_path / "years")))
    rel = st.release_numeric(YEAR, range_p, count, plan, mr, np.random.default_rng(6), n_rows_dp=n_rows_dp)
    sp = PrivacyLedger(budget=BUDGET, unit="row", max_rows_per_unit=1)
    st.noisy_count(len(frame), sigma=plan.sigma_units, sensitivity=1.0, name="count:units", ledger=sp,
                   rng=np.random.default_rng(5))
    nt = NumericTransform(YEAR).fit(frame["year"], FitContext(ledger=sp, plan=plan, rng=np.random.default_rng(6),
                                                              n_rows_dp=n_rows_dp))
    _assert_same_release(rel, nt)
    assert mr.events == sp.events and len(calls) == 2 and len(rel.edges) - 1 <= 9

    plan6 = _plan(k=MAX_LEN)
    events = _long_events()
    nt6, sp6, grouped, order = _dphmm_reference(events, plan6, 9)
    _write(events, tmp_path / "events", 3)
    spec = st.EntityRangeHistogram(column=LAB, entity_key="pid", k=MAX_LEN)
    merged = st.ray_partials(str(tmp_path / "events"), [spec], entity_key="pid", k=MAX_LEN, partitions=2,
                             first_by=order)[0]
    np.testing.assert_allclose(merged.counts, spec.partial(grouped.events).counts, rtol=1e-12, atol=1e-9)
    mr6 = PrivacyLedger(budget=BUDGET, unit="entity", max_rows_per_unit=MAX_LEN)
    r = spec.release(merged, plan6, mr6, np.random.default_rng(9))
    assert (r.lo, r.hi) == nt6.bounds_ and mr6.events[0] == sp6.events[0]
