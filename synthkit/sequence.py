"""Sequence preprocessing: events grouped per entity, ordered, truncated, and turned back
into time indexes of the input's type.

The privacy unit of a sequence model is the ENTITY (patient, account): every quantity
here is computed per entity, and an entity's contribution is bounded by keeping at most
`max_length` of its events — the FIRST ones in time order, so that a sequence keeps its
beginning and its ordering rules (a terminal event is last). Nothing in this module is
released by itself; what the model keeps goes through DP mechanisms in the `models/hmm` package.

Time axis. The sequence index is an integer (years, visit numbers), a float (hours after
a dose) or a datetime. It is handled as float "ticks" in a unit: 1 for integers, the
index itself for floats, and for datetimes the column's DECLARED `time_unit` — `second`
(the canonical default) or `day` (dates; a time of day in the input is dropped) — and its
declared `timezone` for the output. Both are format facts of the schema, never read from
the rows: whether ANY event has a time of day, or another UTC offset, would otherwise
decide them, and one row would change the bundle outside the privacy ledger. DPHMM's
`time_unit` hyperparameter (public) overrides the schema's. Datetimes written as text are
read with the column's `format` (e.g. '%d.%m.%Y': never per value, so '05.03.2020' is
the 5th of March), and the synthetic index is written back in it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from synthkit.errors import ConfigError, DataValidationError
from synthkit.schema import TIME_UNITS, Column
from synthkit.table import datetime_values, numeric_values

logger = logging.getLogger(__name__)

TimeUnit = Literal["integer", "continuous", "day", "second"]
_NS_PER = {"day": 86_400 * 10**9, "second": 10**9}


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeAxis:
    """How a sequence index maps to float ticks and back, in the input's type."""

    kind: str          # schema kind of the index: integer, continuous or datetime
    unit: TimeUnit
    tz: str | None = None
    # how datetimes are written (the column's declared or DP-decided `format`), read with it.
    # A format fact of the schema the bundle already holds, so not part of `to_dict`.
    format: str | None = None

    @classmethod
    def for_column(cls, column: Column, *, time_unit: str | None = None) -> TimeAxis:
        """The axis of a declared index column: its kind, its `time_unit` (or `time_unit`
        given here, e.g. DPHMM's hyperparameter) and its `timezone`. No data is read."""
        kind = column.kind
        if kind == "integer":
            unit: TimeUnit = "integer"
        elif kind == "continuous":
            unit = "continuous"
        elif kind == "datetime":
            chosen = time_unit if time_unit is not None else column.unit
            if chosen not in TIME_UNITS:
                raise ConfigError(f"time_unit must be 'day' or 'second' for a datetime index, got {chosen!r}")
            unit = chosen  # type: ignore[assignment]
        else:
            raise ConfigError(f"sequence_index must be integer, continuous or datetime, got kind {kind!r}")
        return cls(kind=kind, unit=unit, tz=column.timezone if kind == "datetime" else None,
                   format=column.format if kind == "datetime" else None)

    @property
    def discrete(self) -> bool:
        """Ticks are whole numbers (integer index, or datetimes counted in days/seconds)."""
        return self.unit != "continuous"

    def to_ticks(self, s: pd.Series) -> np.ndarray:
        """Values of the index (text read in the axis' `format`) → float ticks (NaN: missing
        or not readable in that format)."""
        if self.kind == "datetime":
            d = _naive(datetime_values(s, self.format))
            ns = d.to_numpy(dtype="datetime64[ns]").astype("int64")
            if self.unit == "day":  # whole (UTC) days: a time of day is dropped
                ticks = (ns // _NS_PER["day"]).astype(float)
            else:
                ticks = ns.astype(float) / _NS_PER[self.unit]
            ticks[d.isna().to_numpy()] = np.nan
            return ticks
        return numeric_values(s).to_numpy(dtype=float)

    def bound_ticks(self, bounds: tuple[Any, Any] | list[Any]) -> np.ndarray:
        """The index's declared [low, high] as ticks. Declared datetime bounds are ISO (the
        schema's spelling, whatever the column's `format`), so they are read without it."""
        if self.kind == "datetime":
            return TimeAxis(kind=self.kind, unit=self.unit, tz=self.tz).to_ticks(pd.Series(list(bounds)))
        return np.asarray(bounds, dtype=float)

    def from_ticks(self, ticks: np.ndarray) -> pd.Series:
        """Ticks → a Series in the index's type: int64, float64 or datetime64[ns] (tz kept)."""
        ticks = np.asarray(ticks, dtype=float)
        if not np.isfinite(ticks).all():  # never a NaN -> int cast (it writes -2**63, issue 18)
            raise ValueError(f"{int((~np.isfinite(ticks)).sum())} generated index values are not finite numbers; "
                             "this is a bug in the sampler, please report it")
        if self.kind == "integer":
            return pd.Series(np.round(ticks).astype("int64"))
        if self.kind == "continuous":
            return pd.Series(ticks.astype("float64"))
        ns = np.round(ticks * _NS_PER[self.unit]).astype("int64").astype("datetime64[ns]")
        out = pd.Series(ns)
        if self.tz:
            out = out.dt.tz_localize("UTC").dt.tz_convert(self.tz)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "unit": self.unit, "tz": self.tz}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimeAxis:
        return cls(kind=data["kind"], unit=data["unit"], tz=data.get("tz"))


def _naive(d: pd.Series) -> pd.Series:
    if getattr(d.dt, "tz", None) is not None:
        return d.dt.tz_convert("UTC").dt.tz_localize(None)
    return d


@dataclass(slots=True, kw_only=True)
class GroupedEvents:
    """Events of every entity, ordered and truncated, stored RAGGED (no padding): memory is
    the size of the input, and padded batches are gathered on demand by the model.

    `events` holds the kept rows in entity order then time order; entity e owns rows
    offsets[e] : offsets[e] + lengths[e]. `keys` are the entities' keys, in the order of
    their codes (first appearance)."""

    events: pd.DataFrame
    ticks: np.ndarray        # [n_kept] float ticks of the index
    entity: np.ndarray       # [n_kept] entity code of each kept row
    position: np.ndarray     # [n_kept] 0-based position within its entity
    lengths: np.ndarray      # [n_entities] kept events per entity (0 when an entity has none)
    offsets: np.ndarray      # [n_entities] first kept row of each entity
    keys: pd.Series          # [n_entities]
    full_lengths: np.ndarray  # [n_entities] lengths before truncation (private; only for DP mechanisms)

    @property
    def n_entities(self) -> int:
        return len(self.lengths)

    def gaps(self) -> np.ndarray:
        """[n_kept] tick difference to the previous event of the same entity (NaN for a first)."""
        g = np.full(len(self.ticks), np.nan)
        later = self.position > 0
        g[later] = self.ticks[later] - self.ticks[np.flatnonzero(later) - 1]
        return g

    def first_rows(self) -> np.ndarray:
        """Row of each entity's first kept event (−1 for an entity without events)."""
        return np.where(self.lengths > 0, self.offsets, -1)


def group_events(frame: pd.DataFrame, *, entity_key: str, axis: TimeAxis, index: str, max_length: int | None,
                 keys: pd.Series | None = None) -> GroupedEvents:
    """Order each entity's events by the sequence index (ties keep the input order) and
    keep its first `max_length` (None: all; used only to learn a DP maximum first).

    `keys`: the entities (from a context table); events of other keys are ignored, and an
    entity without events gets length 0. Without `keys`, the entities are those of the
    events table. Vectorised: one factorize and one lexsort, no Python loop per entity."""
    ticks_all = axis.to_ticks(frame[index])
    if np.isnan(ticks_all).any():
        written = f" written in its format {axis.format!r}" if axis.format not in (None, "iso") else ""
        raise DataValidationError([f"sequence_index {index!r} has {int(np.isnan(ticks_all).sum())} missing or "
                                   f"unreadable values; every event needs a time{written}"])
    if keys is None:
        codes, uniques = pd.factorize(frame[entity_key], sort=False)
        key_series = pd.Series(uniques)
    else:
        key_series = pd.Series(keys).reset_index(drop=True)
        if key_series.duplicated().any():
            raise DataValidationError([f"the context table has duplicated values of the entity key {entity_key!r}; "
                                       "it must hold one row per entity"])
        lookup = pd.Index(key_series)
        codes = lookup.get_indexer(frame[entity_key])
        # unconditional: whether any event had no entity is a fact about the private data
        logger.info("events whose entity is not in the context table, if any, are ignored")
    n_entities = len(key_series)
    keep_rows = np.flatnonzero(codes >= 0)
    codes_k = codes[keep_rows]
    order = keep_rows[np.lexsort((keep_rows, ticks_all[keep_rows], codes_k))]
    ent = codes[order]
    starts = np.searchsorted(ent, np.arange(n_entities), side="left")
    full_lengths = np.bincount(ent, minlength=n_entities)
    pos = np.arange(len(ent)) - starts[ent]
    cap = max_length if max_length is not None else int(max(full_lengths.max(initial=0), 1))
    kept = pos < cap
    order, ent, pos = order[kept], ent[kept], pos[kept]
    lengths = np.minimum(full_lengths, cap)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    events = frame.iloc[order].reset_index(drop=True)
    if axis.kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(events[index]):
        # the index as datetimes read in its format: what is learned from it (an entity's
        # start) is then dates, not text another reader would read per value
        events[index] = datetime_values(events[index], axis.format)
    return GroupedEvents(events=events, ticks=ticks_all[order], entity=ent,
                         position=pos, lengths=lengths.astype(np.int64), offsets=offsets, keys=key_series,
                         full_lengths=full_lengths.astype(np.int64))


def reconstruct_ticks(start: np.ndarray, gaps: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[n, T] ticks: start, then start + cumulative gaps (gaps[:, 0] is ignored). With gaps
    > 0 the result is strictly increasing within every entity — the ordering rule."""
    g = gaps.copy()
    g[:, 0] = 0.0
    return start[:, None] + np.cumsum(g, axis=1)
