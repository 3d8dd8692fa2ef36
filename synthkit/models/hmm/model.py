"""DPHMM, the synthesizer: hyperparameters, the fit as named steps over the package's
modules (kinds, preprocess, layout, context, train), sampling in chunks (sample) and the
bundle (state (de)serialisation). The privacy reasoning of each step sits with its code;
the package docstring (synthkit.models.hmm) tells the whole story."""

from __future__ import annotations

import dataclasses
import math
import logging
from pathlib import Path
from typing import Any, ClassVar, Iterator, Self

import numpy as np
import pandas as pd
import torch

from synthkit._typing import DeviceOption
from synthkit.errors import ArtifactError, BudgetExceededError, ConfigError
from synthkit.ledger import GaussianEvent, PrivacyBudget, PrivacyLedger, SampledGaussianEvent
from synthkit.mechanisms import PreprocessingPlan, substreams
from synthkit.models.base import Progress, Synthesizer, fit_streams, resolve_device, torch_generator
from synthkit.models.dpsgd import steps_per_epoch
from synthkit.models.hmm.context import (LENGTH, MAX_CONTEXT_CATEGORIES, START, _length_start_columns, context_frame,
                                         fit_in_shared_ledger, lengths_on_histogram,
                                         lengths_on_margin)
from synthkit.models.hmm.kinds import decide_kinds, split_roles
from synthkit.models.hmm.layout import build_layout, encode_events, layout_channels, widest_gap
from synthkit.models.hmm.discovery import discover_categories, discovery_columns, plan_discovery
from synthkit.models.hmm.dynamics import blend_numbers, fit_dynamics, match_to_context
from synthkit.models.hmm.margins import calibrate_events, margin_sigma, release_margins, sensitivity_of
from synthkit.models.hmm.network import HMMNet
from synthkit.models.hmm.ranges import drop_unlearned_ranges, entity_ranges, within_released
from synthkit.models.hmm.preprocess import (bound_contributions, dp_event_count, fit_gaps,
                                            plan_sequence_preprocessing, release_common_starts,
                                            release_index_end, wants_common_starts)
from synthkit.models.hmm.sample import Decoder, SequenceSample, sample_hmm
from synthkit.models.hmm.trends import TREND_KINDS, check_non_decreasing, fit_trends, restored_trends
from synthkit.models.hmm.train import _Batches, noise_multiplier_for, train, train_on_ray
from synthkit.schema import Column, Schema
from synthkit.sequence import GroupedEvents, TimeAxis
from synthkit.table import Table, render_number_columns
from synthkit.transforms import DataTransformer, FitContext

logger = logging.getLogger(__package__)  # the package's one logger: log lines keep their name

CONTEXT_DIR = "context"
# The share of epsilon the event columns' DP margins take from DP-SGD. Measured at epsilon 3, 10
# epochs (benchmarks/bench_hmm_margins.py; mean sdmetrics shape of the event columns against the
# real panel): COUNT/rwm5yr (6,127 people) 0.939 without margins, 0.947 / 0.950 / 0.948 at shares
# 0.1 / 0.2 / 0.3; plm/Males (545 people, 8 events each, 2 draws) 0.623 without, 0.591 / 0.600 /
# 0.589 — there the sensitivity of 8 events per person leaves the margins coarse and its wage and
# code columns are limited by what preprocessing releases, not by the calibration.
MARGINS_EPSILON_SHARE = 0.2
# The share of epsilon the event columns' DP change rates take from DP-SGD (categorical: changed at
# least once; numeric: the mean step on the DP margin's ranks; synthkit.models.hmm.dynamics: the
# HMM's stay logits are matched to them after training).
DYNAMICS_EPSILON_SHARE = 0.03
# The share of epsilon the DP test of rising columns takes from DP-SGD (per undeclared integer or
# continuous event column, the entities whose values never fall and those that rise by the index
# gap; synthkit.models.hmm.trends). plm/Males at epsilon 3 (exper and wage: 5 counts): sigma about 30
# at 0.01, 21 at 0.02, against 270 entities with 2+ events.
TRENDS_EPSILON_SHARE = 0.02
STREAMS = ("preprocess", "transform", "context", "init", "batching", "noise", "schema", "margins", "dynamics",
           "match", "discovery", "trends")  # append only: a
# stream's seed is its position in SeedSequence.spawn, so earlier streams never move


class DPHMM(Synthesizer):
    """Differentially private HMM for per-entity sequences with a DP context model.

    Hyperparameters (all public): `n_states`; `max_length` (None: DP-chosen as the
    `length_quantile` of the entities' lengths); the budget shares of the sequence
    preprocessing and of the context model; `terminal_column`/`terminal_value` (an event
    after which an entity has no events, e.g. death); `time_unit` for a datetime index
    (overrides the index column's declared `time_unit`; else that, else "second" — never the rows);
    `max_gap` (public, `--max-gap`): the widest gap between two events of an entity, in the
    sequence index's unit (its time_unit for dates); set, the gaps' range is not learned under
    DP (one histogram less); unset, it is, and where it cannot be (too few gaps against the
    noise) a public range is used (the index's declared bounds, else 150 years for dates,
    else the signed geometric grid's top), stated in a log line and a ledger note;
    `non_decreasing` (public): event columns that never fall within an entity (age,
    experience, tenure), made so at sampling; the other integer and continuous event
    columns are tested under DP (TRENDS_EPSILON_SHARE of ε) for never falling and for
    rising by the index gap (see synthkit.models.hmm.trends);
    `margins_epsilon_share`: the share of ε spent on the event columns' DP margins (0: none,
    no calibration), taken from DP-SGD (synthkit.models.hmm.margins).
    """

    model_name: ClassVar[str] = "dphmm"

    def __init__(self, *, n_states: int = 8, epochs: int = 30, batch_size: int | None = None, lr: float = 0.1,
                 max_length: int | None = None, length_quantile: float = 0.99,
                 preprocessing_epsilon_share: float = 0.2, context_epsilon_share: float = 0.3,
                 max_grad_norm: float = 1.0, noise_multiplier: float | None = None,
                 context_model: str = "dptvae", context_epochs: int = 100, context_batch_size: int | None = None,
                 context_hidden: tuple[int, ...] = (64, 64), context_embedding_dim: int = 32,
                 terminal_column: str | None = None, terminal_value: str | None = None,
                 time_unit: str | None = None, max_gap_categories: int = 32, max_integer_categories: int = 8,
                 max_gap: float | None = None, non_decreasing: tuple[str, ...] = (),
                 margins_epsilon_share: float = MARGINS_EPSILON_SHARE, device: DeviceOption = "auto",
                 seed: int | None = None) -> None:
        self.n_states = n_states
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_length = max_length
        self.length_quantile = length_quantile
        self.preprocessing_epsilon_share = preprocessing_epsilon_share
        self.margins_epsilon_share = margins_epsilon_share
        self.context_epsilon_share = context_epsilon_share
        self.max_grad_norm = max_grad_norm
        self.noise_multiplier = noise_multiplier
        self.context_model = context_model
        self.context_epochs = context_epochs
        self.context_batch_size = context_batch_size
        self.context_hidden = context_hidden
        self.context_embedding_dim = context_embedding_dim
        self.terminal_column = terminal_column
        self.terminal_value = terminal_value
        self.time_unit = time_unit
        self.max_gap_categories = max_gap_categories
        self.max_integer_categories = max_integer_categories
        self.max_gap = max_gap
        self.non_decreasing = non_decreasing
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------- params
    def _check_params(self) -> None:
        problems = []

        def whole(name: str, low: int) -> None:
            v = getattr(self, name)
            if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low):
                problems.append(f"{name} must be an integer >= {low}, got {v!r}")

        for name, low in (("n_states", 1), ("epochs", 1), ("context_epochs", 1),
                          ("context_embedding_dim", 1), ("max_gap_categories", 0), ("max_integer_categories", 2)):
            whole(name, low)
        if self.max_length is not None:
            whole("max_length", 1)
        if self.context_batch_size is not None:
            whole("context_batch_size", 2)
        if self.batch_size is not None:  # None: adapts to the DP count of entities
            whole("batch_size", 2)
        if not (0 < self.length_quantile <= 1):
            problems.append(f"length_quantile must be in (0, 1], got {self.length_quantile!r}")
        if not (0 <= self.margins_epsilon_share < 1):
            problems.append(f"margins_epsilon_share must be in [0, 1) (0: no event margins), got "
                            f"{self.margins_epsilon_share!r}")
        elif not (0 < self.preprocessing_epsilon_share < 1 and 0 < self.context_epsilon_share < 1
                  and self._shares() + self._event_shares() < 1):
            problems.append("preprocessing_epsilon_share and context_epsilon_share must be in (0, 1) with a sum "
                            f"(margins_epsilon_share and, with margins, the change rates' {DYNAMICS_EPSILON_SHARE} "
                            f"and the rising-column test's {TRENDS_EPSILON_SHARE} included) below 1 (the HMM "
                            "needs the rest), got "
                            f"{self.preprocessing_epsilon_share!r}, {self.context_epsilon_share!r} and "
                            f"{self.margins_epsilon_share!r}")
        if not (self.max_grad_norm > 0):
            problems.append(f"max_grad_norm must be > 0, got {self.max_grad_norm!r}")
        if not (self.lr > 0):
            problems.append(f"lr must be > 0, got {self.lr!r}")
        if self.noise_multiplier is not None and not (self.noise_multiplier >= 0):
            problems.append(f"noise_multiplier must be >= 0, got {self.noise_multiplier!r}")
        if self.max_gap is not None and (isinstance(self.max_gap, bool) or not isinstance(self.max_gap, (int, float))
                                         or not (0 < self.max_gap < float("inf"))):
            problems.append(f"max_gap (--max-gap) must be a finite number > 0 in the sequence index's unit, "
                            f"got {self.max_gap!r}")
        if self.context_model not in ("dptvae", "dpctgan"):
            problems.append(f"context_model must be 'dptvae' or 'dpctgan', got {self.context_model!r}")
        if (self.terminal_column is None) != (self.terminal_value is None):
            problems.append("terminal_column and terminal_value go together; set both or neither")
        if isinstance(self.non_decreasing, str) or not all(isinstance(n, str) for n in self.non_decreasing):
            problems.append(f"non_decreasing must be a list of column names, got {self.non_decreasing!r}")
        if problems:
            raise ConfigError("; ".join(problems))

    # ------------------------------------------------------------- fit
    def fit(self, table: Table | pd.DataFrame, *, budget: PrivacyBudget | None, schema: Schema | None = None,
            context: Table | pd.DataFrame | None = None, context_schema: Schema | None = None,
            progress: Progress | None = None, ledger: PrivacyLedger | None = None,
            roles: dict[str, Any] | None = None, engine: str = "local", workers: int = 1,
            gpus_per_worker: float = 0, ray_address: str | None = None) -> Self:
        """Fit on an events table (one row per event) under `budget` (explicit `None` = no
        formal privacy guarantee). The schema names `entity_key` and `sequence_index`;
        static attributes come either from `schema.context_columns` (constant per entity;
        the value at the entity's first event is used) or from a separate `context` table
        with one row per entity, joined on the entity key. Neither frame is mutated.

        Without `schema` (events given as a DataFrame) `roles` carries the user's
        declarations (entity_key, sequence_index, context_columns, sensitive, identifiers,
        targets).
        Under a budget, the kinds of a schema-less events frame and of a schema-less
        `context` frame are then decided under DP in this fit's ledger, before anything
        else is released (see `_decide_kinds`); without one, they are read from the rows.

        `engine="ray"` runs step 5's DP-SGD on `workers` Ray Train workers, whole entities
        per worker (synthkit.distributed; the same plan, ledger and guarantee); everything
        before it stays in this process. Where it runs is not a hyperparameter."""
        self._check_params()
        from synthkit.jobs import checked_engine  # checked before any data is read, as DPTVAE.fit does
        self._engine = checked_engine(engine, workers, gpus_per_worker, ray_address, model=self.model_name)
        device = resolve_device(self.device)
        plan_k = 2 if self.max_length is None else int(self.max_length)
        ledger = self._fit_ledger(budget, ledger, plan_k=plan_k)
        from synthkit.progress import watch_ledger  # ε spent, read from THIS ledger (the context model's too)
        watch_ledger(progress, ledger, epochs={"train": self.epochs, "context train": self.context_epochs})
        seqs = fit_streams(STREAMS, self.seed, private=budget is not None)

        # ---- 0. column kinds: declared, or (under a budget, no schema) decided under DP first
        events, context, context_schema, inference = self._events_and_kinds(
            table, schema=schema, context=context, context_schema=context_schema, roles=roles, budget=budget,
            ledger=ledger, rng=np.random.default_rng(seqs["schema"]))
        schema = events.schema.validate()
        roles, context_table = split_roles(schema, context, context_schema, terminal_column=self.terminal_column)
        check_non_decreasing(self.non_decreasing, roles["events"])  # declared names and kinds, before any release
        index_col = schema.column(schema.sequence_index)

        # ---- 1. plan the sequence preprocessing from the schema and the budget alone
        transformer = DataTransformer(Schema(columns=tuple(roles["events"])))
        axis = TimeAxis.for_column(index_col, time_unit=self.time_unit)  # declared unit and zone, never the rows
        common_starts = wants_common_starts(index_col, axis)  # an integer index without declared bounds
        # undeclared categorical event columns: labels released with the entity as the unit
        # (synthkit.models.hmm.discovery); its ρ raises the context's target, DP-SGD pays
        discovery = plan_discovery(discovery_columns(transformer), budget)
        plan, context_target = plan_sequence_preprocessing(
            transformer, budget=budget, ledger=ledger, plan_k=plan_k, max_length=self.max_length,
            max_gap=self.max_gap, epsilon_share=self.preprocessing_epsilon_share, shares=self._shares(),
            inference=[*inference, *discovery], common_starts=common_starts)
        self._check_room(context_target, budget)  # before any row is read
        rng_pre = np.random.default_rng(seqs["preprocess"])
        # one stream per mechanism group, split off before any data-dependent draw
        rngs = substreams(rng_pre, 5)
        rng_tr = np.random.default_rng(seqs["transform"])

        # ---- 2. and 3. the contribution bound; DP preprocessing of the event columns and gaps
        grouped, layout, steps, n_dp, start_labels = self._fit_events(
            events.frame, context_table, roles, transformer, schema=schema, axis=axis, plan=plan, budget=budget,
            ledger=ledger, rngs=rngs, rng_tr=rng_tr, common_starts=common_starts,
            discovery=(discovery, np.random.default_rng(seqs["discovery"])))

        # ---- 4. the context model, in the same ledger, up to its cumulative share
        ctx_model, c_enc = self._fit_context(grouped, roles, context_table, index_col, axis=axis, layout=layout,
                                             seq=seqs["context"], budget=budget, ledger=ledger,
                                             context_target=context_target, rng=rng_tr, progress=progress,
                                             start_labels=start_labels, n_dp=n_dp)
        layout["d_context"] = int(c_enc.shape[1])
        # ---- 4b. the DP margins of the event columns (calibration targets at sampling)
        self.margins_ = self._fit_margins(grouped, transformer, layout, budget=budget, ledger=ledger,
                                          context_target=context_target,
                                          rng=np.random.default_rng(seqs["margins"]))
        # ---- 4c. the DP change rates of the event columns (persistence targets)
        dynamics = fit_dynamics(grouped, transformer, layout, self.margins_, budget=budget, ledger=ledger,
                                target=min(context_target + (self.margins_epsilon_share + DYNAMICS_EPSILON_SHARE)
                                           * (budget.epsilon if budget else 0.0), budget.epsilon if budget else 0.0),
                                rng=np.random.default_rng(seqs["dynamics"]))
        # ---- 4d. the DP test of rising columns (undeclared numeric event columns)
        self.trends_ = fit_trends(grouped, self._trend_candidates(roles["events"]), clock=axis.kind != "datetime",
                                  budget=budget, ledger=ledger,
                                  target=min(context_target + self._event_shares() * (budget.epsilon if budget else 0.0),
                                             budget.epsilon if budget else 0.0),
                                  rng=np.random.default_rng(seqs["trends"]))

        # ---- 5. DP-SGD over entities: plan, calibrate against the whole ledger, train
        net, training = self._fit_hmm(steps, c_enc, grouped, layout, n_dp=n_dp, budget=budget,
                                      ledger=ledger, seqs=seqs, device=device, progress=progress)
        # ---- 5b. the HMM's persistence matched to the DP change rates (post-processing)
        training["dynamics"] = {"changed": dynamics, **match_to_context(
            net, layout, self.margins_, dynamics, ctx_model, seq=seqs["match"], device=device)}
        if budget is not None:
            logger.info("privacy spent: epsilon=%.4f of %.4f (delta=%g)", ledger.epsilon_spent(),
                        budget.epsilon, budget.delta)
        ledger.notes[:] = list(dict.fromkeys(ledger.notes))
        self.schema_, self.context_schema_, self.transformer_ = schema, roles["context_schema"], transformer
        self.layout_, self.ledger_, self.context_model_ = layout, ledger, ctx_model
        self.hmm_, self.device_ = net.eval(), device
        self.training_ = {**training, "margins": self.margins_, "index_end": self.index_end_,
                          "length_margin": self.length_margin_, "trends": self.trends_ or None,
                          "unlearned_context": list(getattr(self, "unlearned_context_", [])),
                          "gap_range_public": bool(layout.get("gap") is not None and getattr(self, "gap_range_public_", False))}
        self._prepare_sampling()
        return self

    @staticmethod
    def _fit_ledger(budget: PrivacyBudget | None, ledger: PrivacyLedger | None, *, plan_k: int) -> PrivacyLedger:
        """The fit's ledger (a shared one must hold the same budget); the unit is the entity."""
        if ledger is None:
            ledger = PrivacyLedger(budget=budget, unit="entity", max_rows_per_unit=plan_k)
        elif ledger.budget != budget:
            raise ConfigError("the shared ledger's budget differs from `budget`; pass the ledger's own budget")
        ledger.unit = "entity"
        return ledger

    # ------------------------------------------------------------- fit steps
    def _events_and_kinds(self, table: Table | pd.DataFrame, *, schema: Schema | None,
                          context: Table | pd.DataFrame | None, context_schema: Schema | None,
                          roles: dict[str, Any] | None, budget: PrivacyBudget | None, ledger: PrivacyLedger,
                          rng: np.random.Generator,
                          ) -> tuple[Table, Table | pd.DataFrame | None, Schema | None, list[GaussianEvent]]:
        """Step 0: (events table, context, context schema, the DP events of the schema
        inference). Kinds declared, or (under a budget, no schema) decided under DP first."""
        decided_events = isinstance(table, pd.DataFrame) and schema is None and budget is not None
        decided_context = isinstance(context, pd.DataFrame) and context_schema is None and budget is not None
        schema, context_schema, inference = self._decide_kinds(
            table, schema=schema, context=context, context_schema=context_schema, roles=roles, budget=budget,
            ledger=ledger, rng=rng)
        if decided_events or decided_context:  # one odd cell never decides whether the fit runs
            from synthkit.table import DECIDED_NOTE, conform_to_decided
            table = conform_to_decided(table, schema) if decided_events else table
            context = conform_to_decided(context, context_schema) if decided_context else context
            ledger.notes.append(DECIDED_NOTE)
        if isinstance(table, Table):
            events = table if schema is None else Table.from_frame(table.frame, schema)
        else:
            events = Table.from_frame(table, schema)
        return events, context, context_schema, inference

    def _fit_events(self, frame: pd.DataFrame, context_table: Table | None, roles: dict[str, Any],
                    transformer: DataTransformer, *, schema: Schema, axis: TimeAxis, plan: PreprocessingPlan,
                    budget: PrivacyBudget | None, ledger: PrivacyLedger, rngs: list[np.random.Generator],
                    rng_tr: np.random.Generator, common_starts: bool = False,
                    discovery: tuple[list[GaussianEvent], np.random.Generator] = ([], None),
                    ) -> tuple[GroupedEvents, dict[str, Any], np.ndarray, float, list[int] | None]:
        """Steps 2 and 3: (the kept events per entity, the layout, the encoded events, the DP
        count of entities, the DP common starts or None). `rngs`: the entities', length's,
        events', columns' and gaps' streams (the starts' is spawned from the gaps')."""
        rng_entities, rng_length, rng_events, rng_columns, rng_gaps = rngs
        key, index_col = schema.entity_key, schema.column(schema.sequence_index)
        two_tables = context_table is not None
        # ---- 2. group per entity; DP entity count; DP maximum length; truncate
        bounded = bound_contributions(
            frame, key=key, index=index_col.name, axis=axis, keys=context_table.frame[key] if two_tables else None,
            budget=budget, ledger=ledger, plan=plan, max_length=self.max_length,
            length_quantile=self.length_quantile, batch_size=self.batch_size, rngs=(rng_entities, rng_length),
            index_col=index_col)
        self.batch_size_ = bounded.batch_size
        n_events_dp = dp_event_count(bounded, budget=budget, ledger=ledger, rng=rng_events)
        grouped, length = bounded.grouped, bounded.length
        # ---- 3. DP preprocessing of the event columns and of the gaps
        fctx = FitContext(ledger=ledger, plan=bounded.plan, rng=rng_columns, n_rows_dp=n_events_dp)
        discover_categories(transformer, grouped, discovery[0], k=length, threshold_delta=plan.threshold_delta,
                            ledger=ledger, rng=discovery[1])
        # the event columns' DP ranges with the entity as the unit (each entity's weights have L2 norm 1; ranges.py)
        entity_ranges(transformer, grouped.entity, ledger=ledger)
        transformer.fit(grouped.events, fctx)
        # a range guessed from noise alone is not kept: the column is generated empty (ranges.py)
        for name in drop_unlearned_ranges(transformer, n_rows_dp=n_events_dp, ledger=ledger):
            grouped.events[name] = np.nan
        gap_state = (fit_gaps(grouped, axis, dataclasses.replace(fctx, rng=rng_gaps), index_col=index_col,
                              max_gap=self.max_gap, max_gap_categories=self.max_gap_categories)
                     if length > 1 else None)
        self.gap_range_public_ = bool(gap_state is not None and gap_state.get("range_public"))
        start_labels = None
        self.index_end_ = None
        if common_starts:
            start_labels = release_common_starts(grouped, dataclasses.replace(fctx, rng=rng_gaps.spawn(1)[0]),
                                                 max_values=MAX_CONTEXT_CATEGORIES)
            if start_labels is None:
                logger.info("the first index values of the entities are too spread to release as common values; "
                            "declare bounds for the sequence index")
            # the last index an event may take (planned with the starts)
            self.index_end_ = release_index_end(grouped, dataclasses.replace(fctx, rng=rng_gaps.spawn(1)[0]),
                                                starts=start_labels, span=(length - 1) * widest_gap(gap_state))
            if self.index_end_ is None:
                logger.info("the last index value of the entities could not be released; synthetic events have "
                            "no end; declare bounds for the sequence index to set one")
        layout = build_layout(roles, transformer, gap_state, axis=axis, length=length,
                              min_length=0 if two_tables else 1, two_tables=two_tables, schema=schema,
                              max_integer_categories=self.max_integer_categories)
        # the DP length histogram (length:max, already charged) as the lengths' margin at sampling,
        # over min_length..max_length (with a context table from 0: preprocess.length_margin)
        self.length_margin_ = bounded.length_margin
        return grouped, layout, encode_events(grouped, transformer, layout, rng_tr), bounded.n_dp, start_labels

    def _fit_margins(self, grouped: GroupedEvents, transformer: DataTransformer, layout: dict[str, Any], *,
                     budget: PrivacyBudget | None, ledger: PrivacyLedger, context_target: float,
                     rng: np.random.Generator) -> dict[str, list[float]]:
        """Step 4b: one DP histogram per event column over the kept events (sensitivity k;
        see synthkit.models.hmm.margins), with σ such that the ledger's cumulative ε reaches the
        context's target plus `margins_epsilon_share`·ε; DP-SGD is calibrated to the rest."""
        # the terminal column is not calibrated at sampling (see `_sample_chunk`): no margin for it
        layout = {**layout, "columns": [e for e in layout["columns"] if e["name"] != self.terminal_column]}
        if self.margins_epsilon_share == 0 or not layout["columns"]:
            return {}
        sigma = 1.0
        if budget is not None:
            target = min(context_target + self.margins_epsilon_share * budget.epsilon, budget.epsilon)
            sigma = margin_sigma(ledger, n_columns=len(layout["columns"]), sensitivity=sensitivity_of(layout),
                                 target=target)
            if not np.isfinite(sigma):
                logger.warning("no budget left for the event margins; sampled events are not calibrated")
                return {}
            logger.info("event margins: %d DP histograms, sigma=%.3f (sensitivity %d events per entity)",
                        len(layout["columns"]), sigma, layout["max_length"])
        return release_margins(grouped, transformer, layout, sigma=sigma, ledger=ledger, rng=rng)

    def _trend_candidates(self, event_columns: list[Column]) -> list[str]:
        """The event columns the DP test of rising columns looks at: integer or continuous,
        not declared non-decreasing (a declared one skips the test)."""
        return [c.name for c in event_columns if c.kind in TREND_KINDS and c.name not in self.non_decreasing
                and c.name != self.terminal_column]

    def _shares(self) -> float:
        return self.preprocessing_epsilon_share + self.context_epsilon_share

    def _event_shares(self) -> float:
        """What the event margins, (with margins) the change rates and the test of rising
        columns add to the context's target (steps 4b, 4c, 4d; fit_dynamics releases nothing
        without margins)."""
        m = self.margins_epsilon_share
        return (m + DYNAMICS_EPSILON_SHARE if m > 0 else 0.0) + TRENDS_EPSILON_SHARE

    def _check_room(self, context_target: float, budget: PrivacyBudget | None) -> None:
        """The plan leaves DP-SGD some ε: the context's cumulative target (with the ranges'
        extra ρ and a DP kinds release) plus the margins' and change rates' shares stays
        below ε. From the schema and the budget alone, so a refusal comes before any row is
        read (the margins and change rates are capped at ε and would otherwise leave the HMM
        nothing, failing only after the rows were read and ε spent)."""
        if budget is None:
            return
        after = context_target + self._event_shares() * budget.epsilon
        if after >= budget.epsilon * (1 - 1e-9):
            raise BudgetExceededError(
                f"the DP preprocessing and context model reach epsilon={context_target:.3f} of {budget.epsilon:g} "
                f"and the event margins and change rates take {self._event_shares() * budget.epsilon:.3f} more: "
                "nothing is left for the HMM's DP-SGD; lower preprocessing_epsilon_share, context_epsilon_share "
                "or margins_epsilon_share, declare public bounds in the schema, or raise --epsilon")

    def _decide_kinds(self, table: Table | pd.DataFrame, *, schema: Schema | None,
                      context: Table | pd.DataFrame | None, context_schema: Schema | None,
                      roles: dict[str, Any] | None, budget: PrivacyBudget | None, ledger: PrivacyLedger,
                      rng: np.random.Generator) -> tuple[Schema | None, Schema | None, list[GaussianEvent]]:
        """The events and context schemas, and the DP events this charged (see
        `synthkit.models.hmm.kinds.decide_kinds`: one release per schema-less frame, one
        row per entity, on top of the (preprocessing + context) shares)."""
        return decide_kinds(table, schema=schema, context=context, context_schema=context_schema, roles=roles,
                            budget=budget, ledger=ledger, rng=rng, shares=self._shares(),
                            non_decreasing=tuple(self.non_decreasing))

    def _fit_context(self, grouped: GroupedEvents, roles: dict[str, Any], context_table: Table | None,
                     index_col: Column, *, axis: TimeAxis, layout: dict[str, Any], seq: np.random.SeedSequence,
                     budget: PrivacyBudget | None, ledger: PrivacyLedger, context_target: float,
                     rng: np.random.Generator, progress: Progress | None,
                     start_labels: list[int] | None = None, n_dp: float = 0.0) -> tuple[Synthesizer, np.ndarray]:
        """Step 4: the context model on one row per entity, in the same ledger up to its
        cumulative share; returns it and the rows' encoding (c in HMMNet)."""
        numeric_context = any(c.kind in ("continuous", "integer", "datetime") for c in roles["context"])
        length_col, start_col = _length_start_columns(index_col, length=layout["max_length"],
                                                      min_length=layout["min_length"],
                                                      nullable_start=layout["two_tables"],
                                                      numeric_context=numeric_context, start_labels=start_labels)
        ctx_frame = context_frame(grouped, roles, context_table, index_col.name, axis=axis,
                                  length_col=length_col, start_col=start_col)
        ctx_schema = Schema(columns=(*roles["context"], length_col, start_col))
        ctx_model = self._make_context_model(seq)
        fit_in_shared_ledger(ctx_model, ctx_frame, ctx_schema, budget=budget, ledger=ledger,
                             context_target=context_target, progress=progress)
        # a context range guessed from noise alone is not kept (ranges.py; `n_dp`: the DP count of entities)
        # (the context model's state is left as fitted, its pair model reads it; sampling empties them)
        dropped = drop_unlearned_ranges(ctx_model.transformer_, n_rows_dp=n_dp, ledger=ledger, prefix="context:",
                                        skip=(LENGTH, START), table="context", mark=False)
        self.unlearned_context_ = dropped
        if dropped:
            ctx_frame = ctx_frame.assign(**{name: np.nan for name in dropped})
        return ctx_model, ctx_model.transformer_.transform(ctx_frame, rng)

    def _make_context_model(self, seq: np.random.SeedSequence) -> Synthesizer:
        from synthkit.models.ctgan import DPCTGAN
        from synthkit.models.tvae import DPTVAE
        # a release run (seed None) passes no seed on, so none is recorded in the bundle
        seed = None if self.seed is None else int(seq.generate_state(1, dtype=np.uint32)[0])
        common = {"epochs": self.context_epochs, "batch_size": self.context_batch_size or self.batch_size,
                  "embedding_dim": self.context_embedding_dim, "device": self.device, "seed": seed,
                  # context rows keep the budget split DPHMM was validated with
                  "calibrate_dependence": False, "preprocessing_epsilon_share": 0.2}
        hidden = tuple(self.context_hidden)
        if self.context_model == "dpctgan":
            return DPCTGAN(generator_dim=hidden, critic_dim=hidden, **common)
        return DPTVAE(compress_dims=hidden, decompress_dims=hidden, **common)


    def _fit_hmm(self, steps: np.ndarray, c_enc: np.ndarray, grouped: GroupedEvents, layout: dict[str, Any], *,
                 n_dp: float, budget: PrivacyBudget | None, ledger: PrivacyLedger,
                 seqs: dict[str, np.random.SeedSequence], device: torch.device,
                 progress: Progress | None) -> tuple[HMMNet, dict[str, Any]]:
        """Step 5: DP-SGD over Poisson-sampled entities: plan, calibrate σ against the whole
        ledger, train; returns the network and the training facts for the bundle."""
        batch_size = self.batch_size_
        q = min(1.0, batch_size / n_dp)
        spe = steps_per_epoch(n_dp, batch_size)
        total_steps = self.epochs * spe
        if budget is not None:
            sigma = noise_multiplier_for(ledger, noise_multiplier=self.noise_multiplier, q=q, total_steps=total_steps,
                                         epochs=self.epochs, max_grad_norm=self.max_grad_norm)
        else:
            sigma = 0.0
        gens = {name: torch_generator(seqs[name], device) for name in ("init", "batching", "noise")}
        net = HMMNet(n_states=self.n_states, cat_sizes=layout["cat_sizes"], n_gauss=layout["n_gauss"],
                     d_context=layout["d_context"]).to(device)
        net.reset(gens["init"])
        batches = _Batches(steps, c_enc, grouped.offsets, grouped.lengths, net.width, device)

        def charge_epoch() -> None:
            ledger.charge(SampledGaussianEvent(name="dp-sgd:hmm", sampling_rate=q, noise_multiplier=sigma, steps=spe))

        where = {"engine": self._engine["engine"], "workers": self._engine["workers"]}
        if where["engine"] == "ray":  # the same plan on Ray Train workers (synthkit.distributed)
            train_on_ray(self, net, batches, lr=self.lr, max_grad_norm=self.max_grad_norm,
                         private=budget is not None, sigma=sigma, q=q, n_dp=n_dp, steps=total_steps,
                         charge_epoch=charge_epoch)
            where["gpus_per_worker"] = self._engine["gpus_per_worker"]
            ledger.notes.append(f"DP-SGD of the HMM ran on {where['workers']} Ray Train workers (whole entities "
                                "per worker, Poisson sampling per worker, noise added once per step): the same plan")
        else:
            train(net, batches, lr=self.lr, epochs=self.epochs, max_grad_norm=self.max_grad_norm,
                  private=budget is not None, sigma=sigma, q=q, n_dp=n_dp, spe=spe, charge_epoch=charge_epoch,
                  gens=gens, progress=progress)
        return net, {"sampling_rate": q, "noise_multiplier": sigma, "steps": total_steps, "steps_per_epoch": spe,
                     "epochs": self.epochs, "device": str(device), "max_length": layout["max_length"],
                     "n_units_dp": round(n_dp) if budget is not None else None, **where}

    # ------------------------------------------------------------- sample
    def _prepare_sampling(self) -> None:
        """Decoders derived from the DP state (post-processing), cached for sampling."""
        self._decoder = Decoder(layout=self.layout_, transformer=self.transformer_, schema=self.schema_,
                                context_schema=self.context_schema_,
                                start_transform=self.context_model_.transformer_.transforms[START],
                                terminal_column=self.terminal_column, terminal_value=self.terminal_value,
                                non_decreasing=(*self.non_decreasing, *self.trends_.get("non_decreasing", ())),
                                clock=tuple(self.trends_.get("clock", ())), index_end=self.index_end_,
                                gap_range_public=bool(self.training_.get("gap_range_public", False)))

    def sample(self, n_rows: int, *, seed: int | None = None, conditions: dict[str, Any] | None = None,
               chunk_size: int = 10_000) -> pd.DataFrame:
        """The events table of `n_rows` synthetic ENTITIES (their number of events is modelled)."""
        parts = [s.events for s in self.sample_sequences(n_rows, seed=seed, conditions=conditions,
                                                           chunk_size=chunk_size)]
        return pd.concat(parts, ignore_index=True) if parts else self._empty_frame()

    def sample_tables(self, n_entities: int, *, seed: int | None = None, chunk_size: int = 10_000) -> SequenceSample:
        """Events and context tables of `n_entities` synthetic entities."""
        parts = list(self.sample_sequences(n_entities, seed=seed, chunk_size=chunk_size))
        if not parts:
            return SequenceSample(self._empty_frame(), pd.DataFrame({c: pd.Series(dtype=object)
                                                                     for c in self.context_schema_.names}))
        return SequenceSample(pd.concat([p.events for p in parts], ignore_index=True),
                              pd.concat([p.context for p in parts], ignore_index=True))

    def sample_chunks(self, n_rows: int, *, seed: int | None = None, conditions: dict[str, Any] | None = None,
                      chunk_size: int = 10_000) -> Iterator[pd.DataFrame]:
        for part in self.sample_sequences(n_rows, seed=seed, conditions=conditions, chunk_size=chunk_size):
            yield part.events

    def sample_sequences(self, n_entities: int, *, seed: int | None = None,
                         conditions: dict[str, Any] | None = None,
                         chunk_size: int = 10_000) -> Iterator[SequenceSample]:
        """Stream (events, context) chunks of at most `chunk_size` entities; memory is bounded
        by one chunk. Reproducible for a given `seed` (and chunk size)."""
        self._check_fitted()
        if conditions:
            raise ConfigError("conditions are not supported by DPHMM; sample and filter the context table instead")
        if not (isinstance(n_entities, (int, np.integer)) and n_entities >= 0):
            raise ConfigError(f"the number of entities must be an integer >= 0, got {n_entities!r}")
        if not (isinstance(chunk_size, (int, np.integer)) and chunk_size >= 1):
            raise ConfigError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        root = np.random.SeedSequence(seed)
        done, n_events_done = 0, 0
        while done < n_entities:
            want = int(min(chunk_size, n_entities - done))
            chunk_seq = root.spawn(1)[0]
            part = self._sample_chunk(want, chunk_seq, entity_start=done, event_start=n_events_done)
            done += want
            n_events_done += len(part.events)
            yield part

    def _sample_chunk(self, n: int, seq: np.random.SeedSequence, *, entity_start: int,
                      event_start: int) -> SequenceSample:
        lay, dec = self.layout_, self._decoder
        s_ctx, s_enc, s_hmm, s_np = seq.spawn(4)
        ctx_seed = int(s_ctx.generate_state(1, dtype=np.uint32)[0])
        rng = np.random.default_rng(s_np)
        ctx = self.context_model_.sample(n, seed=ctx_seed).reset_index(drop=True)
        if getattr(self, "length_margin_", None):  # before encoding: the context model then sees the lengths drawn
            ctx = lengths_on_histogram(ctx, self.context_model_.transformer_.transforms[LENGTH],
                                       self.length_margin_, rng, min_length=lay["min_length"])
        else:
            ctx = lengths_on_margin(ctx, self.context_model_.transformer_.transforms[LENGTH], rng,
                                    sigma=self._length_sigma())
        c_enc = self.context_model_.transformer_.transform(ctx, np.random.default_rng(s_enc))
        lengths = pd.to_numeric(ctx[LENGTH], errors="coerce").fillna(lay["min_length"]).to_numpy(dtype=float)
        lengths = np.clip(np.round(lengths), lay["min_length"], lay["max_length"]).astype(np.int64)
        start = dec.axis.to_ticks(ctx[START])
        missing = np.isnan(start) & (lengths > 0)
        if missing.any():  # a start drawn from the DP marginal of __start__ (post-processing)
            start[missing] = dec.draw_start(int(missing.sum()), rng)
        if dec.axis.discrete:
            start = np.round(start)
        g = torch_generator(s_hmm, self.device_)
        with torch.no_grad():
            states, cat_codes, gauss_z = sample_hmm(self.hmm_, lay, torch.from_numpy(c_enc).to(self.device_), lengths,
                                                    g, terminal=dec.terminal)
        gauss_z = blend_numbers(gauss_z, lay, self.training_.get("dynamics"))  # matched persistence (dynamics.py)
        events, ctx_out = dec.decode(ctx, lengths, start, cat_codes, gauss_z, entity_start, event_start)
        # post-processing; the terminal column has no margin and keeps the HMM's codes: moving
        # rows onto its terminal value could put it before an entity's last event (the rule)
        events = calibrate_events(events, self.margins_, lay, self.transformer_, rng)
        events = dec.trends(events)  # rising columns (declared or DP-found); last: calibration cannot undo it
        # the last guard: every number inside its released range, empty columns all null (ranges.py)
        events = within_released(events, self.transformer_)
        ctx_out = within_released(ctx_out, self.context_model_.transformer_,
                                  empty=tuple(self.training_.get("unlearned_context") or ()))
        # numbers written as the input was ('$1,234.50': a public number format), as the table
        # models write them (review R, s13: DPHMM wrote plain floats)
        return SequenceSample(render_number_columns(events, self.schema_),
                              render_number_columns(ctx_out, self.context_schema_))

    def _length_sigma(self) -> float | None:
        """The noise std of the context model's DP counts of `__length__` (its ledger event;
        None without a budget: the counts are exact)."""
        if not self.ledger_.private:
            return None
        name = f"context:categories:{LENGTH}"
        return next((float(e.sigma) for e in self.ledger_.events if e.name == name and hasattr(e, "sigma")), None)

    def _empty_frame(self) -> pd.DataFrame:
        self._check_fitted()
        return pd.DataFrame({c: pd.Series(dtype=object) for c in self.schema_.names})

    # ------------------------------------------------------------- inspection (tests, reports)
    def transition_matrix(self, *, n_entities: int = 2000, seed: int = 0) -> np.ndarray:
        """[K, K] transition probabilities averaged over synthetic contexts (post-processing)."""
        self._check_fitted()
        ctx = self.context_model_.sample(n_entities, seed=seed)
        c = self.context_model_.transformer_.transform(ctx, np.random.default_rng(seed))
        with torch.no_grad():
            _, log_trans = self.hmm_.log_start_trans(torch.from_numpy(c).to(self.device_))
        return log_trans.exp().mean(0).cpu().numpy()

    def state_medians(self, column: str) -> np.ndarray:
        """[K] per-state median of a Gaussian-emission column, in data units."""
        self._check_fitted()
        entry = next((e for e in self.layout_["columns"] if e["name"] == column and e["mode"] == "gaussian"), None)
        if entry is None:
            raise ConfigError(f"column {column!r} has no Gaussian emission in this model")
        mean, _ = self.hmm_.gauss_params()
        return self._decoder.scores[column].inverse(mean[:, entry["gauss"]].detach().cpu().numpy())

    # ------------------------------------------------------------- bundle
    def _weights(self) -> dict[str, torch.Tensor]:
        return {f"hmm.{k}": v for k, v in self.hmm_.state_dict().items()}

    def _bundle_extra(self) -> dict[str, Any]:
        return {"layout": self.layout_, "context_schema": self.context_schema_.to_dict(),
                "context_bundle": CONTEXT_DIR}

    def _save_extra(self, folder: Path) -> dict[str, str]:
        """The context model as a nested table bundle (same format, its own hashes), holding
        the shared ledger; returns the hashes of its files for the outer manifest."""
        from synthkit.bundle import MANIFEST, WEIGHTS, save_bundle, sha256_file
        save_bundle(self.context_model_, folder / CONTEXT_DIR)
        return {f"{CONTEXT_DIR}/{name}": sha256_file(folder / CONTEXT_DIR / name) for name in (MANIFEST, WEIGHTS)}

    def _restore_bundle(self, path: Path, manifest: dict[str, Any], weights_path: Path,
                        device: torch.device) -> None:
        """Restore from a manifest that synthkit.bundle has validated (its files, the
        context's included, already match their SHA-256). What the typed manifest cannot
        see is checked here before anything is allocated: the layout must be the one the
        transformer's DP state gives (`layout_channels`), the context model must be a
        table model of the declared kind whose encoding is `d_context` wide, and the
        weights' shapes must be the HMM's (meta-device build, then the safetensors header)."""
        from synthkit import manifest as mf
        from synthkit.bundle import _guard, checked_weights
        where = mf._where(path)
        extra = manifest["sequence"]
        layout = extra["layout"]
        schema, transformer = self._restored_layout(where, manifest, layout)
        ctx_model = self._restored_context(path, where, extra, layout)
        meta = torch.device("meta")
        with _guard(where, "sequence.layout"), meta:
            probe = HMMNet(n_states=self.n_states, cat_sizes=layout["cat_sizes"], n_gauss=layout["n_gauss"],
                           d_context=layout["d_context"])
            expected = {f"hmm.{k}": v for k, v in probe.state_dict().items()}
        weights = checked_weights(weights_path, expected, where=where, device=device)
        with _guard(where, "sequence"):
            net = HMMNet(n_states=self.n_states, cat_sizes=layout["cat_sizes"], n_gauss=layout["n_gauss"],
                         d_context=layout["d_context"]).to(device)
            net.load_state_dict({k.removeprefix("hmm."): v for k, v in weights.items()})
            self.schema_ = schema
            self.context_schema_ = Schema.from_dict(extra["context_schema"], require_learned=False)
            self.transformer_ = transformer
            self.layout_ = layout
            self.ledger_ = PrivacyLedger.from_dict(manifest["privacy"]["ledger"])
            self.context_model_ = ctx_model
            self.hmm_ = net.eval()
            self.training_ = manifest.get("training", {})
            self.margins_ = dict(self.training_.get("margins") or {})  # bundles before them: none
            self.index_end_ = _index_end(self.training_.get("index_end"), where)  # bundles before it: none
            self.length_margin_ = _length_margin(self.training_.get("length_margin"), layout, where)
            self.trends_ = restored_trends(self.training_.get("trends"), [
                e["name"] for e in layout["columns"] if schema.column(e["name"]).kind in TREND_KINDS], where)
            self.device_ = device
            self._prepare_sampling()

    def _restored_layout(self, where: str, manifest: dict[str, Any],
                         layout: dict[str, Any]) -> tuple[Schema, DataTransformer]:
        """(schema, transformer) of a bundle whose layout is the one their DP state gives and
        whose terminal column is a categorical event column of it."""
        from synthkit import manifest as mf
        from synthkit.bundle import _guard
        with _guard(where, "sequence.layout"):
            schema = Schema.from_dict(manifest["schema"])
            event_cols = tuple(schema.column(e["name"]) for e in layout["columns"])
            transformer = DataTransformer(Schema(columns=event_cols))
            transformer.load_state_dict(manifest["transformer"])
            channels = layout_channels(event_cols, transformer, layout.get("gap"),
                                       max_integer_categories=self.max_integer_categories)
        if channels != ([dict(e) for e in layout["columns"]], list(layout["cat_sizes"]), layout["n_gauss"]):
            raise ArtifactError(f"bundle {where!r}: manifest field sequence.layout does not match the transformer's "
                                f"DP state; {mf._FIX}")
        names = [e["name"] for e in layout["columns"]]
        if self.terminal_column is not None and not any(
                e["name"] == self.terminal_column and e["mode"] != "gaussian" for e in layout["columns"]):
            raise ArtifactError(f"bundle {where!r}: manifest field model.hyperparameters.terminal_column names no "
                                f"categorical event column of the layout; {mf._FIX}")
        if len(set(names)) != len(names):
            raise ArtifactError(f"bundle {where!r}: manifest field sequence.layout.columns repeats a column; {mf._FIX}")
        return schema, transformer

    def _restored_context(self, path: Path, where: str, extra: dict[str, Any],
                          layout: dict[str, Any]) -> Synthesizer:
        """The nested context bundle: a table model of the declared kind whose encoding is
        `d_context` wide and holds the start column."""
        from synthkit import manifest as mf
        from synthkit.bundle import load_bundle
        ctx_dir = mf.resolve_inside(path, extra["context_bundle"], where=where, field="sequence.context_bundle")
        ctx_model = load_bundle(ctx_dir, table_only=True)
        if ctx_model.model_name != self.context_model:
            raise ArtifactError(f"bundle {where!r}: the context bundle holds a {type(ctx_model).__name__}, not the "
                                f"{self.context_model} its manifest names; {mf._FIX}")
        if ctx_model.transformer_.width != layout["d_context"] or START not in ctx_model.transformer_.transforms:
            raise ArtifactError(f"bundle {where!r}: manifest field sequence.layout.d_context does not fit the context "
                                f"bundle; {mf._FIX}")
        return ctx_model


def _length_margin(value: Any, layout: dict[str, Any], where: str) -> list[float] | None:
    """A bundle's DP length margin (`training.length_margin`, one count per length from the
    layout's min_length to its max_length): absent (bundles before it) or that many finite
    counts >= 0."""
    from synthkit import manifest as mf
    if value is None:
        return None
    n = int(layout["max_length"]) - int(layout["min_length"]) + 1
    if not (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 2**53
                    for v in value) and sum(value) > 0):
        # a fit writes counts of entities (at most 2**53, like `_index_end`) and a margin with
        # some mass, or none at all; anything else is forged (R2: 1e308 overflowed sampling)
        raise ArtifactError(f"bundle {where!r}: manifest field training.length_margin must be {n} counts "
                            f"from 0 to 2**53, not all 0 (one per length); {mf._FIX}")
    return [float(v) for v in value]


def _index_end(value: Any, where: str) -> int | None:
    """A bundle's DP last index value (`training.index_end`): a whole number or absent."""
    from synthkit import manifest as mf
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
        raise ArtifactError(f"bundle {where!r}: manifest field training.index_end must be a whole number; {mf._FIX}")
    return int(value)

