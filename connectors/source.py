"""Source: what a connector hands to synthkit — named tables, their schemas and table roles.

Domain sources (FHIR, camt.053, bank CSV exports) are relational: one entity table (the
privacy unit: patients, accounts) and event tables keyed by that entity and a time. The
sequence model wants ONE long events table (every event type stacked, with an
`event_type` column, ordered by entity and time) plus the context (entity) table, which
`Source.sequence_frames()` builds.

The schemas suggested here mark direct identifiers (names, resource ids, IBANs,
counterparties) as kind `identifier`, so they are never learned; categories are only
filled in where a public standard fixes them (FHIR required value sets, ISO 20022 code
lists), never from the data. Format facts follow the same rule: a column's time zone and
whether it holds dates (`time_unit: day`) come from the standard or the mapping.

Every column of a mapping is kept, even one no record fills: whether a column exists
must not depend on one record (its null share is learned under DP like any other), so a
source never drops a column for being empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import pandas as pd

from synthkit.schema import Column, Schema

EVENT_TYPE = "event_type"


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceFrames:
    """The inputs of a sequence model: `events` (long, one row per event) and `context`
    (one row per entity), with the roles and suggested schemas of both."""

    events: pd.DataFrame
    context: pd.DataFrame
    entity_key: str
    sequence_index: str
    events_schema: Schema
    context_schema: Schema


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Tables read from one source. `location` is redacted (no user, password or secret
    parameter) and is what may be written into bundles and reports."""

    kind: str
    location: str
    tables: dict[str, pd.DataFrame]
    schemas: dict[str, Schema] = field(default_factory=dict)
    entity_table: str | None = None
    events_tables: tuple[str, ...] = ()
    entity_key: str | None = None
    sequence_index: str | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The one table of a single-table source (CSV, Parquet, a SQL table or query)."""
        if len(self.tables) != 1:
            from synthkit.errors import SourceError
            raise SourceError(f"{self.location!r}: this {self.kind} source has {len(self.tables)} tables "
                              f"({sorted(self.tables)}); pick one from .tables or use .sequence_frames()")
        return next(iter(self.tables.values()))

    def describe(self) -> dict[str, object]:
        """What a bundle or report may record about the source: kind, redacted location,
        table names and row counts (counts of the private data are shown to the data
        owner running the tool, not written into released artifacts)."""
        return {"kind": self.kind, "location": self.location, "tables": sorted(self.tables),
                "entity_table": self.entity_table, "events_tables": list(self.events_tables),
                "entity_key": self.entity_key, "sequence_index": self.sequence_index}

    def context(self) -> pd.DataFrame:
        """The entity table (one row per entity)."""
        return self.tables[self._need_entity()]

    def events(self) -> pd.DataFrame:
        """All event tables stacked into one long table with an `event_type` column,
        sorted by entity and time (ties keep the order of `events_tables`)."""
        self._need_entity()
        return stack_events({name: self.tables[name] for name in self.events_tables},
                            entity_key=self.entity_key, sequence_index=self.sequence_index)  # type: ignore[arg-type]

    def sequence_frames(self) -> SequenceFrames:
        """Long events + context, and their suggested schemas, for a sequence model:
        `model.fit(sf.events, context=sf.context, entity_key=sf.entity_key, sequence_index=sf.sequence_index)`."""
        entity = self._need_entity()
        events = self.events()
        assert self.entity_key is not None and self.sequence_index is not None
        return SequenceFrames(events=events, context=self.tables[entity], entity_key=self.entity_key,
                              sequence_index=self.sequence_index,
                              events_schema=stacked_schema(self, events), context_schema=self.schemas[entity])

    def _need_entity(self) -> str:
        if self.entity_table is None or self.entity_key is None or self.sequence_index is None or not self.events_tables:
            from synthkit.errors import SourceError
            raise SourceError(f"{self.location!r}: a {self.kind} source has no entity and event tables; "
                              "use .frame (one table) or read a FHIR, camt.053 or bank transaction source")
        return self.entity_table


def stack_events(tables: Mapping[str, pd.DataFrame], *, entity_key: str, sequence_index: str) -> pd.DataFrame:
    """Stack event tables (same entity key and time column) into one long table."""
    parts = []
    for name, frame in tables.items():
        part = frame.copy()
        part.insert(0, EVENT_TYPE, name)
        parts.append(part)
    if not parts:
        raise ValueError("no event tables to stack")
    nonempty = [p for p in parts if len(p)] or parts[:1]
    long = pd.concat(nonempty, ignore_index=True, sort=False)
    front = [entity_key, sequence_index, EVENT_TYPE]
    long = long[front + [c for c in long.columns if c not in front]]
    long[EVENT_TYPE] = long[EVENT_TYPE].astype(str)
    order = {name: i for i, name in enumerate(tables)}
    long["__type_order"] = long[EVENT_TYPE].map(order)
    long = long.sort_values([entity_key, sequence_index, "__type_order"], kind="stable").drop(columns="__type_order")
    return long.reset_index(drop=True)


def stacked_schema(source: Source, events: pd.DataFrame) -> Schema:
    """The long table's schema: each column keeps its kind from the event tables (the
    first that has it); a column absent from some event types is nullable; `event_type`
    is categorical with the (public) list of event tables as categories."""
    kinds: dict[str, Column] = {}
    for name in source.events_tables:
        for col in source.schemas[name].columns:
            if col.name not in kinds:
                kinds[col.name] = col
    columns = []
    for name in events.columns:
        if name == EVENT_TYPE:
            columns.append(Column(name=EVENT_TYPE, kind="categorical", nullable=False,
                                  categories=tuple(source.events_tables)))
            continue
        col = kinds[name]
        nullable = col.nullable or any(name not in source.tables[t].columns for t in source.events_tables)
        columns.append(replace(col, nullable=nullable and name != source.entity_key))
    return Schema(columns=tuple(columns), entity_key=source.entity_key, sequence_index=source.sequence_index).validate()


def schema_of(frame: pd.DataFrame, kinds: Mapping[str, str], *, entity_key: str | None = None,
              sequence_index: str | None = None, categories: Mapping[str, tuple[str, ...]] | None = None,
              sensitive: tuple[str, ...] = (), quasi_identifiers: tuple[str, ...] = (),
              formats: Mapping[str, Mapping[str, str]] | None = None) -> Schema:
    """A schema from a fixed mapping's known kinds (the mapping, not the data, decides).
    `formats`: per column, the format facts the standard fixes (`timezone`, `time_unit`)."""
    categories = categories or {}
    formats = formats or {}
    columns = tuple(
        Column(name=name, kind=kinds[name], nullable=name != entity_key,  # type: ignore[arg-type]
               categories=categories.get(name), **formats.get(name, {}))
        for name in frame.columns
    )
    present = set(frame.columns)
    return Schema(columns=columns, entity_key=entity_key, sequence_index=sequence_index,
                  sensitive=tuple(s for s in sensitive if s in present),
                  quasi_identifiers=tuple(q for q in quasi_identifiers if q in present)).validate()
