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


def rank_of_keys(keys: pd.Series | np.ndarray, world_size: int) -> np.ndarray:
    """The rank of each row: a stable hash of its unit key modulo the world size."""
    values = pd.Series(keys).astype(str).to_numpy(dtype=object)  # 7 and "7" are one unit, as in a CSV
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
    rank = rank_of_keys(keys, world_size)
    rows, codes = [], []
    for r in range(world_size):
        mine = np.flatnonzero(rank == r)
        # shuffle, then keep each unit's first k: a uniform subset of k rows per unit
        mine = mine[rng.permutation(len(mine))]
        local_keys = keys.iloc[mine].astype(str)
        kept = local_keys.groupby(local_keys.to_numpy(), sort=False).cumcount().to_numpy() < k
        mine = mine[kept]
        unit_codes, _ = pd.factorize(keys.iloc[mine].astype(str), sort=False)
        rows.append(mine)
        codes.append(unit_codes.astype(np.int64))
    return RankPartition(world_size=world_size, k=k, rows=tuple(rows), unit_codes=tuple(codes))
