"""SQL sources partitioned by ranges of the unit key (issue 19), on SQLite and PostgreSQL.

- the partitions hold every row once (their union is the whole table), a key value lands
  in exactly one partition (a unit never straddles two), and the ranges hold equal numbers
  of distinct keys to within one (ntile);
- a NULL unit key is refused (by key_ranges, read_range and the bound), as the
  single-process fit refuses it: rows without a key are no unit, and bounded as one they
  would break the k-row bound; keys are units by value ("7" is not 7);
- so the map-reduce statistics bound each partition on its own and still count each unit
  once: the merged partials equal the whole table's;
- more partitions than keys gives that many partitions (some empty), so the number says
  nothing about the units; a --query source splits too;
- the bounds (key values) appear in no repr, no SQL text and no error.

Negative control: ranges of equal ROW counts over the sorted key (LIMIT/OFFSET paging, the
naive split) cut units in two: the same merge then counts more units than the table has.
Run once against the old code (b8ff9b4, before this file's commit): connectors had no
read_partitions, so every test here failed with AttributeError.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import connectors
from synthkit.errors import SourceError
from test_connectors_sql import db  # noqa: F401  (db is a fixture: SQLite, and PostgreSQL when a server is given)


def _units(n_units: int, *, text_keys: bool, seed: int = 0, n_null: int = 0) -> pd.DataFrame:
    """Made-up events: unit i has 1..8 rows; rows in random order; `n_null` rows without a key."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n_units)
    keys = np.repeat(np.arange(n_units), sizes)
    frame = pd.DataFrame({"unit": [f"U{k:05d}" for k in keys] if text_keys else keys.astype(float),
                          "v": rng.normal(size=len(keys)).round(3)})
    nulls = pd.DataFrame({"unit": [None] * n_null if text_keys else [np.nan] * n_null,
                          "v": rng.normal(size=n_null).round(3)})
    return pd.concat([frame, nulls], ignore_index=True).sample(frac=1.0, random_state=1).reset_index(drop=True)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["unit", "v"], na_position="first").reset_index(drop=True)


def _merged_counts(blocks: list[pd.DataFrame], k: int) -> tuple[int, int]:
    from synthkit.distributed.stats import UnitCount, block_partials, merge_all
    partials = [block_partials(b, [UnitCount(entity_key="unit")], entity_key="unit", k=k,
                               rng=np.random.default_rng(i)) for i, b in enumerate(blocks)]
    merged = merge_all(partials)[0]
    return merged.n_units, merged.n_rows


@pytest.mark.parametrize("text_keys", [True, False], ids=["text-key", "numeric-key"])
def test_partitions_hold_whole_units_and_every_row_once(db, text_keys):
    uri, name = db
    frame = _units(300, text_keys=text_keys)
    connectors.write(frame, uri, table=name)
    whole = connectors.read(uri, table=name)
    parts = list(connectors.read_partitions(uri, table=name, key="unit", partitions=4))
    assert len(parts) == 4
    pd.testing.assert_frame_equal(_sorted(pd.concat(parts, ignore_index=True)), _sorted(whole), check_dtype=False)
    keysets = [set(p["unit"].dropna()) for p in parts]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not keysets[i] & keysets[j]  # no unit straddles two partitions
    sizes = [len(s) for s in keysets]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 300  # ntile over distinct keys

    # each partition bounded on its own counts every unit once (k = 2 rows per unit)
    truth = _merged_counts([whole], k=2)
    assert truth[0] == 300
    assert _merged_counts(parts, k=2) == truth
    # negative control: equal row counts over the sorted key cut units in two
    ordered = _sorted(whole)
    naive = [ordered.iloc[rows] for rows in np.array_split(np.arange(len(ordered)), 4)]
    assert sum(len(b) for b in naive) == len(ordered)
    assert _merged_counts(naive, k=2)[0] > truth[0]


def test_more_partitions_than_keys_and_a_query_source(db):
    uri, name = db
    frame = pd.DataFrame({"unit": ["a", "a", "b", "c", "c", "c"], "v": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    connectors.write(frame, uri, table=name)
    parts = list(connectors.read_partitions(uri, table=name, key="unit", partitions=8))
    assert len(parts) == 8 and sum(len(p) > 0 for p in parts) == 3
    assert sorted(len(p) for p in parts if len(p)) == [1, 2, 3]  # whole units
    one = list(connectors.read_partitions(uri, table=name, key="unit", partitions=1))
    assert len(one) == 1 and len(one[0]) == 6
    query = f'SELECT unit, v FROM "{name}" WHERE v > 1.5'
    parts = list(connectors.read_partitions(uri, query=query, key="unit", partitions=2))
    assert sorted(pd.concat(parts)["v"].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert not set(parts[0]["unit"]) & set(parts[1]["unit"])


def test_bounds_stay_out_of_repr_sql_and_errors(db):
    from connectors import sql
    uri, name = db
    frame = pd.DataFrame({"unit": ["SECRET-ALICE", "SECRET-BOB", "SECRET-CAROL"], "v": [1.0, 2.0, 3.0]})
    connectors.write(frame, uri, table=name)
    loc = connectors.parse(uri)
    ranges = sql.key_ranges(loc, table=name, key="unit", partitions=3)
    assert "SECRET" not in repr(ranges) and "SECRET" in str(ranges.upper)  # kept, not shown
    for i in range(3):
        text, params = ranges.condition(i, placeholder=lambda j: "?")
        assert "SECRET" not in text
    with pytest.raises(SourceError) as err:
        list(connectors.read_partitions(uri, table=name, key="patient", partitions=2))
    assert "'patient' is not a column" in str(err.value) and "SECRET" not in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(SourceError, match="splits SQL sources"):
        connectors.read_partitions("x.parquet", key="unit", partitions=2)



@pytest.mark.parametrize("text_keys", [True, False], ids=["text-key", "numeric-key"])
def test_null_unit_keys_are_refused(db, text_keys):
    """Rows without a unit key are many people: counted as ONE unit of k rows (what the old
    code did: 301 units for 300 keys and 5 NULL rows, range 0 holding the NULLs together),
    one person's rows could change k kept rows. Refused in one line, like the single-process
    fit (synthkit.table), at every door: key_ranges, read_range (one partition) and the
    bound itself. Negative control: on the old code (b6d0168) all three returned."""
    from connectors import sql
    from synthkit.distributed.stats import bound_block
    from synthkit.errors import DataValidationError
    uri, name = db
    frame = _units(50, text_keys=text_keys, n_null=5)
    connectors.write(frame, uri, table=name)
    for partitions in (4, 1):  # 1: no ntile query runs, read_range refuses
        with pytest.raises(SourceError) as err:
            list(connectors.read_partitions(uri, table=name, key="unit", partitions=partitions))
        assert "entity_key column 'unit' has missing values" in str(err.value) and "\n" not in str(err.value)
    # read_range refuses what key_ranges did not see (a NULL key written after the split)
    loc = connectors.parse(uri)
    clean = frame.dropna()
    connectors.write(clean, uri, table=name, overwrite=True)
    ranges = sql.key_ranges(loc, table=name, key="unit", partitions=2)
    assert len(sql.read_range(loc, ranges, 0, table=name)) + len(sql.read_range(loc, ranges, 1, table=name)) \
        == len(clean)  # the control: no NULL, no refusal
    connectors.write(frame, uri, table=name, overwrite=True)
    with pytest.raises(SourceError, match="has missing values"):
        sql.read_range(loc, ranges, 0, table=name)
    with pytest.raises(DataValidationError, match="entity_key column 'unit' has missing values"):
        bound_block(frame, entity_key="unit", k=2, rng=np.random.default_rng(0))


def test_the_bound_tells_units_apart_by_value():
    """7 and "7" (and a text "None") are different units to the database, which may put
    them in different key ranges; the old bound (b6d0168: astype(str)) merged them into
    one unit of k rows (here 1 row kept for 2 units: the control), so a unit could be
    bounded in two partitions and count 2k rows. An integer 7 and a float 7.0 are equal
    values: one unit (astype(str) made them two)."""
    from synthkit.distributed.stats import UnitCount, block_partials
    mixed = pd.DataFrame({"unit": pd.Series([7, 7, "7", "7", "None", "None"], dtype=object), "v": range(6)})
    got = block_partials(mixed, [UnitCount(entity_key="unit")], entity_key="unit", k=1, rng=np.random.default_rng(0))
    assert (got[0].n_units, got[0].n_rows) == (3, 3)
    same = pd.DataFrame({"unit": pd.Series([7, 7.0, 7, 8], dtype=object), "v": range(4)})
    got = block_partials(same, [UnitCount(entity_key="unit")], entity_key="unit", k=1, rng=np.random.default_rng(0))
    assert (got[0].n_units, got[0].n_rows) == (2, 2)


class _FakeRay:
    """What `_gather_blocks` uses of Ray, in-process: a task's exception reaches the driver
    as Ray delivers it, PICKLED (checked once with a real Ray 2 session: `err.cause` of a
    DataValidationError came back as '(79 problems): t; h; e; ...', its `problems` intact)."""

    class TaskError(Exception):
        def __init__(self, cause: BaseException) -> None:
            super().__init__("task failed")
            self.cause = cause

    def remote(self, **_options):
        outer = self

        class _Task:
            def __init__(self, fn):
                self.fn = fn

            def remote(self, *args, **kwargs):
                import pickle
                try:
                    return ("ok", self.fn(*args, **kwargs))
                except Exception as err:  # noqa: BLE001 - delivered as Ray delivers it
                    return ("err", outer.TaskError(pickle.loads(pickle.dumps(err))))
        return _Task

    def wait(self, pending, num_returns=1):
        return pending[:num_returns], pending[num_returns:]

    def get(self, ref):
        kind, value = ref
        if kind == "err":
            raise value
        return value

    def cancel(self, ref, force=False):
        pass


def test_a_workers_list_taking_error_reaches_the_driver_intact():
    """A DataValidationError raised in a block's task (here the bound's NULL-key refusal)
    reaches the caller of ray_block_partials with its message and problems as raised.
    Negative control: the old `_gather_blocks` (b6d0168: type(cause)(str(cause))) gave
    'the data does not match its schema (N problems): t; h; e; ...'; so does a plain
    `raise cause`, since the unpickled cause is already garbled."""
    from synthkit.distributed.stats import UnitCount, _gather_blocks
    from synthkit.errors import DataValidationError
    with_null = pd.DataFrame({"unit": ["a", None, "b"], "v": [1.0, 2.0, 3.0]})
    clean = pd.DataFrame({"unit": ["c", "d"], "v": [1.0, 2.0]})
    stats = [UnitCount(entity_key="unit")]
    got = _gather_blocks(_FakeRay(), [lambda: clean, lambda: clean.assign(unit=["e", "f"])], stats,
                         entity_key="unit", k=1)
    assert got[0].n_units == 4  # the control: the fake carries partials like Ray
    with pytest.raises(DataValidationError) as err:
        _gather_blocks(_FakeRay(), [lambda: clean, lambda: with_null], stats, entity_key="unit", k=1)
    assert str(err.value) == "the data does not match its schema: entity_key column 'unit' has missing values"
    assert err.value.problems == ["entity_key column 'unit' has missing values"]
    assert err.value.__cause__ is None and err.value.__suppress_context__

    def refused():
        raise SourceError("'sqlite:///x.db': a one-line refusal")
    with pytest.raises(SourceError) as err:
        _gather_blocks(_FakeRay(), [refused], stats, entity_key="unit", k=1)
    assert str(err.value) == "'sqlite:///x.db': a one-line refusal"
