"""Privacy units to ranks, then the contribution bound, rank by rank.

Entity-level DP-SGD clips ONE unit's contribution to C. A unit whose rows were split over
W ranks would be clipped W times, once per rank, and could move the update by W·C: the
accountant's sensitivity would be wrong. So rows are routed by their unit key first (every
row of a unit lands on the rank its key hashes to) and only then bounded to k rows per
unit; the bound is then exactly the single-process one, and it runs locally on each rank.

The key hash is pandas' `hash_array` (SipHash with a fixed key: the same on every process
and machine, unlike Python's salted `hash`), so a Ray shuffle by key and this function
route a unit to the same rank. The assignment is internal: it is never released.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synthkit.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class RankPartition:
    """Which rows each rank keeps (after the bound) and, per kept row, its local unit code."""

    world_size: int
    k: int
    # repr=False: which rows the bound kept and each unit's row count are private (reprs reach
    # Ray's task errors and logs)
    rows: tuple[np.ndarray, ...] = field(repr=False)        # per rank: indices of the kept input rows
    unit_codes: tuple[np.ndarray, ...] = field(repr=False)  # per rank: local unit code of each kept row

    def n_units(self, rank: int) -> int:
        codes = self.unit_codes[rank]
        return int(codes.max()) + 1 if len(codes) else 0


def _key_text(value: object) -> str:
    """A key's text for routing: keys EQUAL by value (7, 7.0, np.int64(7), True and 1) give
    one text, so a unit never straddles ranks or blocks; `str` alone gave "7" and "7.0", and a
    unit whose key was written both ways was bounded to k rows twice (2k) by the block bound,
    which tells units apart by value. Keys that differ by value but share a text (7 and "7")
    are routed together: harmless, the bound still tells them apart."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if (isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()
            and abs(value) < 2.0**63):  # the float column's rule in `rank_of_keys`, so both give one text
        return str(int(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def rank_of_keys(keys: pd.Series | np.ndarray, world_size: int) -> np.ndarray:
    """The rank of each row: a stable hash of its unit key's text (`_key_text`) modulo the
    world size."""
    series = pd.Series(keys)
    kind = series.dtype.kind
    if kind in "iu":
        values = series.astype(str).to_numpy(dtype=object)
    elif kind == "b":
        values = series.astype(np.int64).astype(str).to_numpy(dtype=object)
    elif kind == "f":
        x = series.to_numpy(dtype=float)
        whole = np.isfinite(x) & (np.mod(np.where(np.isfinite(x), x, 0.5), 1.0) == 0) & (np.abs(x) < 2.0**63)
        values = series.astype(str).to_numpy(dtype=object)
        values[whole] = x[whole].astype(np.int64).astype(str)
    elif pd.api.types.infer_dtype(series, skipna=False) == "string":  # text keys: no Python loop over rows
        values = series.astype(str).to_numpy(dtype=object)
    else:
        values = np.array([_key_text(v) for v in series.to_numpy(dtype=object)], dtype=object)
    return (pd.util.hash_array(values) % np.uint64(world_size)).astype(np.int64)


def partition_units(keys: pd.Series | np.ndarray | None, *, n_rows: int, world_size: int, k: int,
                    rng: np.random.Generator) -> RankPartition:
    """Route rows to ranks by unit key, then keep at most `k` rows per unit, uniformly at
    random (`rng` is a DP stream: the bound is a DP mechanism's subsample).

    `keys=None` means the row is the privacy unit (k must then be 1)."""
    if world_size < 1:
        raise ConfigError(f"workers must be at least 1, got {world_size}; use --workers 1 or more")
    if k < 1:
        raise ConfigError(f"max rows per entity must be at least 1, got {k}; use --max-rows-per-entity 1 or more")
    if keys is None:
        if k != 1:
            raise ConfigError("max rows per entity above 1 needs an entity key; set --entity-key or use k=1")
        keys = np.arange(n_rows)
    keys = pd.Series(keys).reset_index(drop=True)
    if len(keys) != n_rows:
        raise ConfigError("the entity key has not one value per row; pass one key per row")
    if keys.isna().any():  # many people without a key would be bounded as ONE unit (as table.py refuses)
        raise ConfigError("the entity key has missing values; every row needs its unit's key (drop those rows "
                          "or fill the key)")
    rank = rank_of_keys(keys, world_size)
    rows, codes = [], []
    for r in range(world_size):
        mine = np.flatnonzero(rank == r)
        # shuffle, then keep each unit's first k: a uniform subset of k rows per unit
        mine = mine[rng.permutation(len(mine))]
        # units told apart by the key's VALUE (7 and 7.0 one unit, 7 and "7" two), as the
        # single-process fit's factorize does; routing already put equal keys on one rank
        local_keys = keys.iloc[mine].reset_index(drop=True)
        kept = local_keys.groupby(local_keys, sort=False).cumcount().to_numpy() < k
        mine = mine[kept]
        unit_codes, _ = pd.factorize(keys.iloc[mine], sort=False)
        rows.append(mine)
        codes.append(unit_codes.astype(np.int64))
    return RankPartition(world_size=world_size, k=k, rows=tuple(rows), unit_codes=tuple(codes))
