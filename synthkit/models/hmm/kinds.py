"""Column kinds and roles of a sequence fit: the events and context schemas (declared, or
decided under DP before anything else is released), and which columns are events, static
context or identifiers."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from synthkit.errors import ConfigError
from synthkit.ledger import GaussianEvent, PrivacyBudget, PrivacyLedger
from synthkit.mechanisms import substreams
from synthkit.models.hmm.context import LENGTH, START
from synthkit.models.hmm.preprocess import _gaussian_of_epsilon
from synthkit.schema import Column, Schema, SchemaError, infer_schema
from synthkit.table import Table

logger = logging.getLogger(__package__)  # the package's one logger

ROLES = {"entity_key", "sequence_index", "context_columns", "sensitive", "identifiers", "targets"}


# ====================================================================== roles
def split_roles(schema: Schema, context: Table | pd.DataFrame | None, context_schema: Schema | None, *,
                terminal_column: str | None) -> tuple[dict[str, Any], Table | None]:
    """The columns' roles (events, event identifiers, context, context identifiers, the
    context schema) and the context table, if one is given."""
    problems = []
    key, index = schema.entity_key, schema.sequence_index
    if key is None:
        problems.append("the schema names no entity_key: a sequence model needs the entity (patient, account) "
                        "as its privacy unit; set entity_key (--entity-key)")
    if index is None:
        problems.append("the schema names no sequence_index: set the column that orders each entity's events "
                        "(--sequence-index)")
    if problems:
        raise ConfigError("; ".join(problems))
    if index == key or schema.column(index).kind not in ("integer", "continuous", "datetime"):
        raise ConfigError(f"sequence_index {index!r} must be an integer, continuous or datetime column")
    ctx_cols, ctx_ids, ctx_schema_out, context_table = _context_roles(schema, context, context_schema)
    ctx_names = {c.name for c in ctx_cols}
    for reserved in (LENGTH, START):
        if reserved in schema or reserved in ctx_names:
            raise ConfigError(f"column name {reserved!r} is reserved by DPHMM; rename the column")
    event_cols = [c for c in schema.learned_columns if c.name != index and c.name not in ctx_names]
    event_ids = [c.name for c in schema.identifier_columns if c.name != key]
    if terminal_column is not None:
        if terminal_column not in {c.name for c in event_cols}:
            raise ConfigError(f"terminal_column {terminal_column!r} must be a learned event column")
        if schema.column(terminal_column).kind not in ("categorical", "boolean", "integer"):
            raise ConfigError(f"terminal_column {terminal_column!r} must be categorical, boolean or integer")
    return {"events": event_cols, "event_ids": event_ids, "context": ctx_cols, "context_ids": ctx_ids,
            "context_schema": ctx_schema_out}, context_table


def _context_roles(schema: Schema, context: Table | pd.DataFrame | None, context_schema: Schema | None,
                   ) -> tuple[list[Column], list[str], Schema, Table | None]:
    """(context columns, context identifiers, context schema, context table): from the
    context table when one is given, else from the events schema's `context_columns`."""
    key, index = schema.entity_key, schema.sequence_index
    if context is None:
        ctx_cols = []
        for n in schema.context_columns:
            c = schema.column(n)
            if not c.is_learned or n in (key, index):
                raise ConfigError(f"context column {n!r} cannot be the entity key, the sequence index or an "
                                  "identifier")
            ctx_cols.append(c)
        return ctx_cols, [], Schema(columns=(schema.column(key), *ctx_cols), entity_key=key), None
    if schema.context_columns:
        raise ConfigError("context columns are declared in the events schema AND a context table is given; "
                          "use one of the two forms")
    frame = context.frame if isinstance(context, Table) else context
    cs = context_schema if context_schema is not None else (
        context.schema if isinstance(context, Table) else infer_schema(frame, entity_key=key))
    if cs.entity_key is None:
        cs = dataclasses.replace(cs, entity_key=key)
    if cs.entity_key != key:
        raise ConfigError(f"the context schema's entity_key {cs.entity_key!r} differs from the events' {key!r}")
    context_table = Table.from_frame(frame, cs, require_learned=False)  # ids only: entities without attributes
    ctx_cols = [c for c in cs.learned_columns]
    ctx_ids = [c.name for c in cs.identifier_columns if c.name != key]
    return ctx_cols, ctx_ids, cs, context_table


# ====================================================================== kinds
def decide_kinds(table: Table | pd.DataFrame, *, schema: Schema | None, context: Table | pd.DataFrame | None,
                 context_schema: Schema | None, roles: dict[str, Any] | None, budget: PrivacyBudget | None,
                 ledger: PrivacyLedger, rng: np.random.Generator, shares: float,
                 non_decreasing: tuple[str, ...] = ()) -> tuple[Schema | None, Schema | None, list[GaussianEvent]]:
    """The events and context schemas, and the DP events this charged.

    Under a budget, a DataFrame without its schema gets its kinds from synthkit.dp_schema:
    one Gaussian release of per-column class counts, charged to THIS ledger before any
    other mechanism runs (events: "schema-inference", context: "context:schema-inference").
    The privacy unit is the entity:

    - events: the counts see ONE event per entity, drawn uniformly at random (a public
      contribution bound, k = 1, fixed before the data is read: max_length may be
      chosen under DP later, and a kind is a share over the population, which one event
      per entity estimates as well as k events under k times the noise). So one entity
      moves each of the d columns' class, one sub-class and the distinct count by at most 1: L2
      sensitivity sqrt(3d), as `dp_schema.inference_event` charges;
    - context: one row per entity (a repeated key keeps one row at random): sensitivity
      sqrt(3d) likewise.

    Each release takes dp_schema.INFERENCE_SHARE of the zCDP ρ that the (preprocessing +
    context) share of ε (`shares`) allows. It comes ON TOP of those shares (the later checks allow
    the share plus the inference), so the context model keeps its room and the HMM's
    DP-SGD, calibrated to what the ledger has left, pays. The whole of it (inference
    plus the shares) is checked against the budget here, from the header and the
    hyperparameters alone, before a row is read.

    The roles are the user's declarations, never read from the rows; the sequence index
    gets an ordered kind (datetime, integer or continuous) from the same noisy counts.
    Without a budget (a development run) the kinds are read from the rows (`infer_schema`).

    `non_decreasing` (public, --non-decreasing): a column declared to rise with time is a
    number, so an inferred kind other than integer or continuous becomes continuous
    (`declared_numeric`): on a small panel the noise decided a rising age was labels."""
    roles = dict(roles or {})
    if set(roles) - ROLES:
        raise ConfigError(f"unknown roles {sorted(set(roles) - ROLES)}; use {sorted(ROLES)}")
    infer_events = isinstance(table, pd.DataFrame) and schema is None
    infer_context = isinstance(context, pd.DataFrame) and context_schema is None
    context_columns = tuple(roles.pop("context_columns", ()) or ())
    if infer_events and budget is None and roles:  # a development run: kinds from the rows
        schema = infer_schema(table, **roles)
        if context_columns:
            schema = dataclasses.replace(schema, context_columns=context_columns).validate()
        return schema, context_schema, []
    if budget is None or not (infer_events or infer_context):
        return schema, context_schema, []

    key = roles.get("entity_key") if infer_events else schema.entity_key if schema is not None else (
        table.schema.entity_key if isinstance(table, Table) else None)
    index = roles.get("sequence_index") if infer_events else None
    names = [str(c) for c in table.columns] if infer_events else []
    ctx_names = [str(c) for c in context.columns] if infer_context else []
    _check_declared(key, index, names=names, ctx_names=ctx_names, context_columns=context_columns,
                    infer_events=infer_events, infer_context=infer_context)
    share = PrivacyBudget(epsilon=budget.epsilon * shares, delta=budget.delta)
    ident = set(roles.get("identifiers", ()))
    planned = _plan_inference(share, ledger, key=key, ident=ident, names=names, ctx_names=ctx_names,
                              infer_events=infer_events, infer_context=infer_context)
    schema, context_schema = _release_kinds(
        table, context, schema=schema, context_schema=context_schema, roles=roles, key=key, index=index, ident=ident,
        context_columns=context_columns, share=share, ledger=ledger, rng=rng, infer_events=infer_events,
        infer_context=infer_context)
    if infer_events:
        schema = declared_numeric(schema, non_decreasing)
    return schema, context_schema, planned


def declared_numeric(schema: Schema, names: tuple[str, ...] | list[str]) -> Schema:
    """`schema` with every named column (declared non-decreasing: public) that was inferred
    as neither integer nor continuous made continuous, nullable as inferred. Names that are
    not columns, or are the key or the index, are left to `check_non_decreasing`."""
    fixed = [n for n in names if n in schema.names and n not in (schema.entity_key, schema.sequence_index)
             and schema.column(n).kind not in ("integer", "continuous")]
    if not fixed:
        return schema
    logger.info("declared non-decreasing (--non-decreasing), so modelled as continuous numbers: %s",
                ", ".join(repr(n) for n in fixed))
    cols = tuple(Column(name=c.name, kind="continuous", nullable=c.nullable) if c.name in fixed else c
                 for c in schema.columns)
    return dataclasses.replace(schema, columns=cols).validate()


def _check_declared(key: str | None, index: str | None, *, names: list[str], ctx_names: list[str],
                    context_columns: tuple[str, ...], infer_events: bool, infer_context: bool) -> None:
    """The declared roles name columns of the header (checked before a row is read)."""
    problems = []
    if key is None:
        problems.append("no entity_key is declared: a sequence model needs the entity (patient, account) as its "
                        "privacy unit; set entity_key (--entity-key)")
    if infer_events and index is None:
        problems.append("no sequence_index is declared: set the column that orders each entity's events "
                        "(--sequence-index)")
    if problems:
        raise ConfigError("; ".join(problems))
    if infer_events:
        for role, value in (("entity_key", key), ("sequence_index", index),
                            *(("context_columns", c) for c in context_columns)):
            if value not in names:
                problems.append(f"{role} {value!r} is not a column of the events data")
    if infer_context and key not in ctx_names:
        problems.append(f"the entity key {key!r} is not a column of the context table")
    if problems:
        raise SchemaError(problems)


def _plan_inference(share: PrivacyBudget, ledger: PrivacyLedger, *, key: str, ident: set[str], names: list[str],
                    ctx_names: list[str], infer_events: bool, infer_context: bool) -> list[GaussianEvent]:
    """The inference releases, checked with the (preprocessing + context) share against the
    budget from the header and the hyperparameters alone."""
    from synthkit.dp_schema import EVENT, inference_event
    planned: list[GaussianEvent] = []
    if infer_events:
        decided = [n for n in names if n != key and n not in ident]
        planned.append(inference_event(share, k=1, n_columns=len(decided)))
    if infer_context:
        planned.append(dataclasses.replace(inference_event(share, k=1, n_columns=len(ctx_names) - 1),
                                           name=f"context:{EVENT}"))
    ledger.check([*planned, _gaussian_of_epsilon(share.epsilon, share.delta)],
                 what="schema inference and the sequence preprocessing and context shares")
    return planned


def _release_kinds(table: Table | pd.DataFrame, context: Table | pd.DataFrame | None, *, schema: Schema | None,
                   context_schema: Schema | None, roles: dict[str, Any], key: str, index: str | None,
                   ident: set[str], context_columns: tuple[str, ...], share: PrivacyBudget, ledger: PrivacyLedger,
                   rng: np.random.Generator, infer_events: bool,
                   infer_context: bool) -> tuple[Schema | None, Schema | None]:
    """The DP releases: per table, one row per entity drawn at random, then its noisy class
    counts (synthkit.dp_schema), charged to the ledger."""
    from synthkit.dp_schema import EVENT, dp_infer_schema
    rng_events_bound, rng_events_noise, rng_context_bound, rng_context_noise = substreams(rng, 4)
    if infer_events:
        shuffled = table.iloc[rng_events_bound.permutation(len(table))]
        one_each = shuffled[~shuffled[key].duplicated().to_numpy()]
        inferred = dp_infer_schema(one_each, ledger=ledger, budget=share, k=1, rng=rng_events_noise,
                                   entity_key=key, sequence_index=index, sensitive=roles.get("sensitive", ()),
                                   identifiers=ident, targets=roles.get("targets", ()))
        schema = dataclasses.replace(inferred, context_columns=context_columns).validate()
    if infer_context:
        shuffled = context.iloc[rng_context_bound.permutation(len(context))]
        one_each = shuffled[~shuffled[key].duplicated().to_numpy()]
        context_schema = dp_infer_schema(one_each, ledger=ledger, budget=share, k=1, rng=rng_context_noise,
                                         entity_key=key, require_learned=False)
        # relabel only (the event is the one planned above): the ledger tells the tables apart
        ledger.events[-1] = dataclasses.replace(ledger.events[-1], name=f"context:{EVENT}")
    what = " and ".join([*(["events"] if infer_events else []), *(["context"] if infer_context else [])])
    # the note depends on which schemas were given (public), never on the rows
    ledger.notes.append(f"{what} column kinds (no schema given) were decided under DP from one row per entity, "
                        "drawn at random (contribution bound of the schema inference)")
    return schema, context_schema
