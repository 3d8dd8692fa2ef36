"""DPHMM: per-entity sequences (a patient's visits and labs, an account's transactions) from
a differentially private hidden Markov model whose start and transitions depend on the
entity's static context.

Generative story for one entity
-------------------------------
1. context row: the static attributes (sex, birth year, account type), the sequence length
   `__length__` (1..max_length) and the time of the first event `__start__`, drawn jointly
   by a DP table model (DPTVAE by default) — so length and start stay related to context;
2. hidden states s_1..s_T: s_1 ~ softmax(b_π + W_π c), s_t | s_{t−1} = i ~ softmax(B_i + W_A c),
   where c is the context row in the table model's DP encoding (the context shifts the
   start logits and the logit of every destination state);
3. per event, given its state: a categorical per categorical/boolean column, per small-range
   integer column and per null indicator; a Gaussian per continuous column in a DP-
   standardised space (mean and sd of the DP mixture of the core NumericTransform); and the
   gap to the previous event — a categorical over DP-released common gaps (a yearly panel's
   "1" comes out exact) plus OTHER, whose log-gap is Gaussian in its own standardised space.
   Emissions are autoregressive given the state (see HMMNet).

Privacy (unit = entity)
-----------------------
- Contribution bound: an entity keeps its first `max_length` events (public, or chosen by a
  DP quantile of the length histogram, sensitivity 1). Every event-level histogram then has
  L2 sensitivity max_length; entity counts and the length histogram have sensitivity 1.
- Kinds without a schema (under a budget): decided from noisy class counts
  (synthkit.dp_schema), first thing in the ledger, over one event per entity and the
  context's one row per entity (see `DPHMM._decide_kinds`); on top of the shares below.
- Preprocessing (`preprocessing_epsilon_share`): the core DP mechanisms — DP counts,
  DP category discovery (partition selection), DP bounds and histograms — for the event
  columns and the gaps, planned from the schema and the budget before any data is read.
- Context model: a table model fitted on ONE ROW PER ENTITY in the SAME ledger; it may
  spend up to a cumulative (preprocessing + context) share of ε, checked by the ledger.
- HMM: DP-SGD over Poisson-sampled ENTITIES. One entity's whole (truncated) sequence is one
  sample; its loss is the negative log-likelihood from the forward algorithm (log space,
  vectorised over a padded [batch, T] tensor with masks). Exact per-sample gradients come
  from Opacus' functorch path (`ft_compute_per_sample_gradient`, vmap of grad over the
  batch) on a module holding raw nn.Parameters; Opacus' DPOptimizer clips each entity's
  gradient to `max_grad_norm`, adds N(0, σ²C²) and divides by the expected batch size.
  σ is calibrated against the WHOLE ledger (everything spent before) before training, and
  each epoch is charged as a sampled-Gaussian event; the accountant composes all of it.
- Initialisation looks at no data: seeded random emissions, a public "sticky" prior on the
  transition bias. Everything in the bundle is public (schema, hyperparameters) or DP.
- Post-processing (free): sampling, terminal-event masking, time reconstruction.

Memory: events are kept ragged ([n_events, features], the size of the input); each step
gathers a padded [batch, T_batch] tensor, so working memory grows with the batch, not with
n_entities × max_length. Generation streams in chunks of entities.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, NamedTuple, Self

import numpy as np
import pandas as pd
import torch
from opacus.grad_sample.functorch import ft_compute_per_sample_gradient
from opacus.optimizers import DPOptimizer
from torch import nn

from synthkit._typing import DeviceOption
from synthkit.errors import ArtifactError, BudgetExceededError, ConfigError, DataValidationError
from synthkit.ledger import (
    GaussianEvent,
    PrivacyBudget,
    PrivacyLedger,
    SampledGaussianEvent,
    calibrate_noise_multiplier,
    compose_epsilon,
)
from synthkit.mechanisms import (PreprocessingPlan, noisy_count, noisy_histogram, plan_preprocessing, rho_for_epsilon,
                                 select_partitions, substreams)
from synthkit.models.base import Progress, Synthesizer, fit_streams, resolve_device, torch_generator
from synthkit.models.dpsgd import PoissonSampler, choose_batch_size, steps_per_epoch
from synthkit.schema import Column, Schema, infer_schema
from synthkit.sequence import GroupedEvents, TimeAxis, group_events, reconstruct_ticks
from synthkit.table import Table, datetime_values, numeric_values, render_datetimes
from synthkit.transforms import NULL, OTHER, CategoricalTransform, DataTransformer, FitContext, NumericTransform

logger = logging.getLogger(__name__)

LENGTH = "__length__"
START = "__start__"
GAP = "__gap__"
GAP_WHAT = "the gaps between events (--max-gap)"  # how messages name the internal GAP column
GAP_EVENT = "gaps"  # and its ledger events (bounds:gaps, histogram:gaps, next to gaps:common)
DEFAULT_MAX_BATCH = 256  # the largest batch of entities the HMM picks by itself (its default before it adapted)
MAX_CONTEXT_CATEGORIES = 64  # a length or integer start with at most this many public values is categorical
MAX_LENGTH_CAP = 1024  # public cap of the DP length histogram (longer sequences fall in the last bin)
CONTEXT_DIR = "context"
STREAMS = ("preprocess", "transform", "context", "init", "batching", "noise", "schema")  # append only: a
# stream's seed is its position in SeedSequence.spawn, so earlier streams never move
_LOG_2PI = math.log(2 * math.pi)


# ====================================================================== standardised space
class Standardiser:
    """z = (x − m)/s with m, s the mean and standard deviation of the DP mixture that the core
    NumericTransform fitted to a DP histogram (post-processing of DP state); values are
    clipped to the DP (or public) bounds, and `inverse` clips back into them.

    Why affine and not a normal-score (Φ⁻¹ of the DP CDF) map: a normal-score map squeezes
    the empty space between modes to nothing, so well-separated clusters become adjacent
    in z and the states' Gaussians overlap (transitions then come out biased). An affine
    map keeps the separation; skew and modes are left to the mixture over states.

    Integer columns are dequantised (x + U(−½, ½) before the map, rounding after): a spike
    such as "0 hospital visits" then covers an interval of z instead of a point, where a
    Gaussian would collapse onto it (an unbounded likelihood) instead of modelling dynamics."""

    def __init__(self, transform: NumericTransform) -> None:
        lo, hi = transform.bounds_
        self.integer = transform.column.kind == "integer"
        w, mu, sd = transform.weights_, transform.means_, transform.stds_
        self.mean = float(np.sum(w * mu))
        var = float(np.sum(w * (sd**2 + mu**2)) - self.mean**2)
        self.scale = math.sqrt(max(var, 1e-12)) if var > 0 else max(hi - lo, 1e-6)
        self.bounds = (lo - 0.5, hi + 0.5) if self.integer else (lo, hi)

    def forward(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if self.integer and rng is not None:
            x = np.round(x) + rng.uniform(-0.5, 0.5, size=np.shape(x))
        return (np.clip(x, *self.bounds) - self.mean) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(z) * self.scale + self.mean, *self.bounds)
        if self.integer:
            x = np.clip(np.round(x), self.bounds[0] + 0.5, self.bounds[1] - 0.5)
        return x


def _gaussian_of_epsilon(epsilon: float, delta: float) -> GaussianEvent:
    """The Gaussian that alone spends `epsilon` at `delta`: a stand-in for a whole share in
    dry runs and in targets that come on top of other events (bisection on zCDP ρ)."""
    lo = rho_for_epsilon(epsilon, delta)
    return GaussianEvent(name="share", sigma=1.0 / math.sqrt(2 * lo), sensitivity=1.0)


def _column_floats(column: Column, s: pd.Series) -> np.ndarray:
    """Numbers of a numeric column; datetimes as seconds since the epoch (UTC), as the core
    NumericTransform counts them."""
    if column.kind == "datetime":
        d = datetime_values(s, column.format)  # the declared (or DP-decided) format
        if getattr(d.dt, "tz", None) is not None:
            d = d.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = d.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
        ns[d.isna().to_numpy()] = np.nan
        return ns / 1e9
    return numeric_values(s).to_numpy(dtype=float)


# ====================================================================== the HMM module
class HMMNet(nn.Module):
    """The HMM as ONE module of raw parameters (no submodules, no buffers), so Opacus'
    functorch path computes exact per-sample gradients of the whole forward algorithm.

    Input: one float tensor x [B, 1 + T, W] (functorch hands a layer exactly one input):
    row 0 holds the context encoding c (first d_context entries); rows 1..T hold per event
    [categorical codes (C) | their validity (C) | standardised values (G) | their validity (G) |
    event present (1)]. Output: the per-entity negative log-likelihood [B].

    Emissions are autoregressive given the state (an AR-HMM; the forward algorithm stays
    exact because the previous event is observed): a categorical value repeats the entity's
    previous value with probability σ(λ_{s,c}), else it is drawn from the state's
    categorical; a standardised value has mean μ_{s,g} + φ_{s,g}·z_{t−1}. A plain HMM needs one
    state per combination of persistent attributes (married × employed × ...); this keeps
    within-entity persistence with few states."""

    def __init__(self, *, n_states: int, cat_sizes: list[int], n_gauss: int, d_context: int) -> None:
        super().__init__()
        k = n_states
        self.n_states, self.cat_sizes, self.n_gauss, self.d_context = k, list(cat_sizes), n_gauss, d_context
        self.cat_offsets = [int(v) for v in np.concatenate([[0], np.cumsum(cat_sizes)[:-1]])] if cat_sizes else []
        self.start_bias = nn.Parameter(torch.zeros(k))
        self.start_weight = nn.Parameter(torch.zeros(max(d_context, 1), k))
        self.trans_bias = nn.Parameter(torch.zeros(k, k))
        self.trans_weight = nn.Parameter(torch.zeros(max(d_context, 1), k))
        self.cat_logits = nn.Parameter(torch.zeros(k, max(sum(cat_sizes), 1)))
        self.gauss_mean = nn.Parameter(torch.zeros(k, max(n_gauss, 1)))
        self.gauss_log_std = nn.Parameter(torch.zeros(k, max(n_gauss, 1)))
        self.stay_logit = nn.Parameter(torch.zeros(k, max(len(cat_sizes), 1)))
        self.ar_coef = nn.Parameter(torch.zeros(k, max(n_gauss, 1)))

    @property
    def n_cat(self) -> int:
        return len(self.cat_sizes)

    @property
    def step_width(self) -> int:
        return 2 * self.n_cat + 2 * self.n_gauss + 1

    @property
    def width(self) -> int:
        return max(self.step_width, self.d_context, 1)

    def reset(self, generator: torch.Generator) -> None:
        """Data-independent init: the states' Gaussian means at the K quantiles of N(0, 1)
        — the standardised columns have mean 0 and sd 1 by construction (public) — in an
        independent random order per column; random categorical logits (break the symmetry
        between states); a public sticky prior on transitions (+2 on the diagonal); small
        context weights."""
        k = self.n_states
        with torch.no_grad():
            self.cat_logits.normal_(0.0, 0.5, generator=generator)
            quantiles = torch.special.ndtri((torch.arange(k, dtype=torch.float64) + 0.5) / k).float()
            for j in range(self.gauss_mean.shape[1]):
                order = torch.randperm(k, generator=generator, device=generator.device).cpu()
                self.gauss_mean[:, j] = quantiles[order].to(self.gauss_mean.device)
            self.gauss_mean.add_(0.1 * torch.randn(self.gauss_mean.shape, generator=generator,
                                                   device=generator.device).to(self.gauss_mean.device))
            self.gauss_log_std.zero_()
            self.trans_bias.copy_(2.0 * torch.eye(k, device=self.trans_bias.device))
            self.start_bias.zero_()
            self.start_weight.normal_(0.0, 0.01, generator=generator)
            self.trans_weight.normal_(0.0, 0.01, generator=generator)
            self.stay_logit.zero_()
            self.ar_coef.zero_()

    def log_start_trans(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = c[..., : self.d_context] if self.d_context else torch.zeros(*c.shape[:-1], 1, device=c.device)
        log_start = torch.log_softmax(self.start_bias + c @ self.start_weight, dim=-1)
        # context shifts the logit of each DESTINATION state (the same shift from every source):
        # d_context × K parameters instead of d_context × K², so less DP noise to carry
        log_trans = torch.log_softmax(self.trans_bias + (c @ self.trans_weight).unsqueeze(-2), dim=-1)
        return log_start, log_trans

    def cat_log_table(self) -> torch.Tensor:
        """[K, Σ n_c]: per-channel log-softmax, concatenated."""
        return torch.cat([torch.log_softmax(self.cat_logits[:, o:o + n], dim=-1)
                          for o, n in zip(self.cat_offsets, self.cat_sizes)], dim=-1)

    def gauss_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        # σ ≥ e^−2.5 ≈ 0.08 in a space whose marginal is N(0, 1): no collapse onto a point
        return self.gauss_mean[:, : self.n_gauss], self.gauss_log_std[:, : self.n_gauss].clamp(-2.5, 2.0)

    def emission_logp(self, steps: torch.Tensor) -> torch.Tensor:
        """[B, T, step_width] → [B, T, K] log-probability of each event under each state,
        given the entity's previous event (AR emissions, see the class docstring)."""
        c, g = self.n_cat, self.n_gauss
        out = torch.zeros(*steps.shape[:-1], self.n_states, device=steps.device, dtype=steps.dtype)
        prev = torch.cat([torch.zeros_like(steps[:, :1]), steps[:, :-1]], dim=1)
        if c:
            raw = steps[..., :c].long()
            codes = raw + torch.tensor(self.cat_offsets, device=steps.device)
            valid = steps[..., c:2 * c]
            lp = nn.functional.embedding(codes, self.cat_log_table().t())  # [B, T, C, K]
            has_prev = (prev[..., c:2 * c] > 0).unsqueeze(-1)
            same = (raw == prev[..., :c].long()).unsqueeze(-1)
            stay = self.stay_logit[:, :c].t()  # [C, K]
            log_stay, log_draw = nn.functional.logsigmoid(stay), nn.functional.logsigmoid(-stay)
            mixed = torch.where(same, torch.logaddexp(log_stay, log_draw + lp), log_draw + lp)
            lp = torch.where(has_prev, mixed, lp)
            out = out + (lp * valid.unsqueeze(-1)).sum(dim=-2)
        if g:
            z, valid = steps[..., 2 * c:2 * c + g], steps[..., 2 * c + g:2 * c + 2 * g]
            z_prev = (prev[..., 2 * c:2 * c + g] * prev[..., 2 * c + g:2 * c + 2 * g]).unsqueeze(-2)
            mean, log_std = self.gauss_params()
            mu = mean + self.ar_coef[:, :g] * z_prev  # [B, T, K, G]
            lp = (-0.5 * ((z.unsqueeze(-2) - mu) / log_std.exp()) ** 2 - log_std - 0.5 * _LOG_2PI)
            out = out + (lp * valid.unsqueeze(-2)).sum(dim=-1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_start, log_trans = self.log_start_trans(x[:, 0])
        steps = x[:, 1:, : self.step_width]
        n_steps = steps.shape[1]
        if n_steps == 0:
            return -torch.logsumexp(log_start, dim=-1)
        emit = self.emission_logp(steps)
        present = steps[..., -1]
        alpha = log_start + emit[:, 0] * present[:, :1]
        for t in range(1, n_steps):
            nxt = torch.logsumexp(alpha.unsqueeze(-1) + log_trans, dim=1) + emit[:, t]
            alpha = torch.where(present[:, t:t + 1] > 0, nxt, alpha)
        return -torch.logsumexp(alpha, dim=-1)


class _Batches:
    """Ragged encoded events on the device and a vectorised gather of padded batches."""

    def __init__(self, steps: np.ndarray, context: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                 width: int, device: torch.device) -> None:
        if len(steps) == 0:
            steps = np.zeros((1, steps.shape[1]), dtype=np.float32)
        self.steps = torch.from_numpy(np.ascontiguousarray(steps, dtype=np.float32)).to(device)
        self.context = torch.from_numpy(np.ascontiguousarray(context, dtype=np.float32)).to(device)
        self.offsets = torch.from_numpy(offsets.astype(np.int64)).to(device)
        self.lengths = torch.from_numpy(lengths.astype(np.int64)).to(device)
        self.width = width
        self.device = device

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        lens = self.lengths[idx]
        n_steps = int(lens.max()) if len(idx) else 0
        f = self.steps.shape[1]
        x = torch.zeros(len(idx), 1 + n_steps, self.width, device=self.device)
        x[:, 0, : self.context.shape[1]] = self.context[idx]
        if n_steps:
            ar = torch.arange(n_steps, device=self.device)
            mask = ar.unsqueeze(0) < lens.unsqueeze(1)
            rows = torch.where(mask, self.offsets[idx].unsqueeze(1) + ar, torch.zeros_like(ar))
            x[:, 1:, :f] = self.steps[rows] * mask.unsqueeze(-1)
            x[:, 1:, f] = mask.to(x.dtype)
        return x


class SequenceSample(NamedTuple):
    """One chunk of generated entities: the events table and the context table."""

    events: pd.DataFrame
    context: pd.DataFrame


# ====================================================================== the synthesizer
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
    else the signed geometric grid's top), stated in a log line and a ledger note.
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
                 max_gap: float | None = None, device: DeviceOption = "auto", seed: int | None = None) -> None:
        self.n_states = n_states
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_length = max_length
        self.length_quantile = length_quantile
        self.preprocessing_epsilon_share = preprocessing_epsilon_share
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
        if not (0 < self.preprocessing_epsilon_share < 1 and 0 < self.context_epsilon_share < 1
                and self.preprocessing_epsilon_share + self.context_epsilon_share < 1):
            problems.append("preprocessing_epsilon_share and context_epsilon_share must be in (0, 1) with a sum "
                            f"below 1 (the HMM needs the rest), got {self.preprocessing_epsilon_share!r} and "
                            f"{self.context_epsilon_share!r}")
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
        if problems:
            raise ConfigError("; ".join(problems))

    # ------------------------------------------------------------- fit
    def fit(self, table: Table | pd.DataFrame, *, budget: PrivacyBudget | None, schema: Schema | None = None,
            context: Table | pd.DataFrame | None = None, context_schema: Schema | None = None,
            progress: Progress | None = None, ledger: PrivacyLedger | None = None,
            roles: dict[str, Any] | None = None) -> Self:
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
        else is released (see `_decide_kinds`); without one, they are read from the rows."""
        self._check_params()
        device = resolve_device(self.device)
        auto_length = self.max_length is None
        plan_k = 2 if auto_length else int(self.max_length)
        if ledger is None:
            ledger = PrivacyLedger(budget=budget, unit="entity", max_rows_per_unit=plan_k)
        elif ledger.budget != budget:
            raise ConfigError("the shared ledger's budget differs from `budget`; pass the ledger's own budget")
        ledger.unit = "entity"
        seqs = fit_streams(STREAMS, self.seed, private=budget is not None)

        # ---- 0. column kinds: declared, or (under a budget, no schema) decided under DP first
        decided_events = isinstance(table, pd.DataFrame) and schema is None and budget is not None
        decided_context = isinstance(context, pd.DataFrame) and context_schema is None and budget is not None
        schema, context_schema, inference = self._decide_kinds(
            table, schema=schema, context=context, context_schema=context_schema, roles=roles, budget=budget,
            ledger=ledger, rng=np.random.default_rng(seqs["schema"]))
        if decided_events or decided_context:  # one odd cell never decides whether the fit runs
            from synthkit.table import DECIDED_NOTE, conform_to_decided
            table = conform_to_decided(table, schema) if decided_events else table
            context = conform_to_decided(context, context_schema) if decided_context else context
            ledger.notes.append(DECIDED_NOTE)
        if isinstance(table, Table):
            events = table if schema is None else Table.from_frame(table.frame, schema)
        else:
            events = Table.from_frame(table, schema)
        schema = events.schema.validate()
        roles, context_table = self._roles(schema, context, context_schema)
        key, index = schema.entity_key, schema.sequence_index
        index_col = schema.column(index)
        two_tables = context_table is not None
        min_length = 0 if two_tables else 1

        # ---- 1. plan the sequence preprocessing from the schema and the budget alone
        event_schema = Schema(columns=tuple(roles["events"]))
        transformer = DataTransformer(event_schema)
        may_have_gaps = auto_length or self.max_length > 1
        # gaps: common gaps, the log-gaps' histogram and (without a public --max-gap) their DP range
        n_gap_hist = 3 if self.max_gap is None else 2
        n_hist = transformer.n_histograms() + (1 if auto_length else 0) + (n_gap_hist if may_have_gaps else 0)
        n_disc = transformer.n_discovery() + (1 if may_have_gaps else 0)
        if budget is not None:
            plan = plan_preprocessing(budget=budget, k=plan_k, n_histograms=n_hist, n_discovery=n_disc,
                                      epsilon_share=self.preprocessing_epsilon_share)
            # the (preprocessing + context) share, on top of any schema inference (whose
            # cost the HMM's DP-SGD, calibrated to what the ledger has left, pays)
            context_target = budget.epsilon * self._shares()
            if inference:
                context_target = compose_epsilon(
                    [*inference, _gaussian_of_epsilon(context_target, budget.delta)], budget.delta)
            planned = ledger.epsilon_if(plan.events())
            if planned > context_target * (1 + 1e-9):
                raise BudgetExceededError(
                    f"sequence preprocessing needs epsilon={planned:.3f} but its share is {context_target:.3f}; "
                    "raise --epsilon or declare public bounds/categories in the schema")
            ledger.check([*plan.events(), SampledGaussianEvent(name="dp-sgd:hmm", sampling_rate=1e-4,
                                                               noise_multiplier=200.0, steps=1)],
                         what="sequence preprocessing")
            logger.info("sequence preprocessing planned: %d histograms, %d category discoveries", n_hist, n_disc)
        else:
            plan = PreprocessingPlan(sigma_units=1.0, sigma_rows=1.0, sigma_hist=1.0, threshold_delta=0.0,
                                     k=plan_k, n_histograms=n_hist, n_discovery=0)
            context_target = math.inf
            ledger.notes.append("trained with --no-privacy: no formal privacy guarantee")
            logger.warning("fitting WITHOUT differential privacy: no formal privacy guarantee")

        rng_pre = np.random.default_rng(seqs["preprocess"])
        # one stream per mechanism group, split off before any data-dependent draw
        rng_entities, rng_length, rng_events, rng_columns, rng_gaps = substreams(rng_pre, 5)
        rng_tr = np.random.default_rng(seqs["transform"])

        # ---- 2. group per entity; DP entity count; DP maximum length; truncate
        axis = TimeAxis.for_column(index_col, time_unit=self.time_unit)  # declared unit and zone, never the rows
        ctx_keys = context_table.frame[key] if two_tables else None
        grouped = group_events(events.frame, entity_key=key, axis=axis, index=index, max_length=None, keys=ctx_keys)
        n_dp = noisy_count(grouped.n_entities, sigma=plan.sigma_units, sensitivity=1.0, name="count:entities",
                           ledger=ledger, rng=rng_entities)
        if auto_length:
            length = self._dp_max_length(grouped.full_lengths, plan=plan, ledger=ledger, rng=rng_length)
        else:
            length = int(self.max_length)
        # unconditional: whether any entity was longer is itself a fact about the data
        ledger.notes.append(f"events beyond the first {length} of an entity, if any, were left out (contribution bound)")
        logger.info("contribution bound: only the first %d events of an entity are used (whether any entity had "
                    "more is private and not reported)", length)
        grouped = group_events(events.frame, entity_key=key, axis=axis, index=index, max_length=length, keys=ctx_keys)
        ledger.max_rows_per_unit = length
        plan = dataclasses.replace(plan, k=length, sigma_rows=length * plan.sigma_units,
                                   sigma_hist=length * plan.sigma_units)
        batch_size = choose_batch_size(self.batch_size, n_dp, unit="entity", cap=DEFAULT_MAX_BATCH)
        if self.batch_size is None:
            logger.info("batch size %d chosen from the DP count of entities (post-processing; --batch-size sets it)",
                        batch_size)
        self.batch_size_ = batch_size
        if budget is not None and budget.delta >= 1.0 / n_dp:
            raise ConfigError(f"delta={budget.delta:g} is not below 1/(number of entities); such a delta allows "
                              "releasing a whole record; use a delta well below 1/(number of units), e.g. 1e-8 for a million")
        n_events_dp = (noisy_count(len(grouped.events), sigma=plan.sigma_rows, sensitivity=float(length),
                                   name="count:events", ledger=ledger, rng=rng_events) if length > 1 else n_dp)

        # ---- 3. DP preprocessing of the event columns and of the gaps
        fctx = FitContext(ledger=ledger, plan=plan, rng=rng_columns, n_rows_dp=n_events_dp)
        transformer.fit(grouped.events, fctx)
        gap_state = (self._fit_gaps(grouped, axis, dataclasses.replace(fctx, rng=rng_gaps), index_col=index_col)
                     if length > 1 else None)
        layout = self._layout(roles, transformer, gap_state, axis=axis, length=length, min_length=min_length,
                              two_tables=two_tables, schema=schema)
        steps = self._encode_events(grouped, transformer, layout, rng_tr)

        # ---- 4. the context model, in the same ledger, up to its cumulative share
        numeric_context = any(c.kind in ("continuous", "integer", "datetime") for c in roles["context"])
        length_col, start_col = _length_start_columns(index_col, length=length, min_length=min_length,
                                                      nullable_start=two_tables, numeric_context=numeric_context)
        ctx_frame = self._context_frame(grouped, roles, context_table, index, axis=axis,
                                        length_col=length_col, start_col=start_col)
        ctx_schema = Schema(columns=(*roles["context"], length_col, start_col))
        ctx_model = self._make_context_model(seqs["context"])
        before = len(ledger.events)
        if budget is not None:
            view = PrivacyLedger(budget=PrivacyBudget(epsilon=min(context_target, budget.epsilon), delta=budget.delta),
                                 unit="entity", max_rows_per_unit=1, events=ledger.events, notes=ledger.notes)
        else:
            view = ledger
        ctx_model.fit(ctx_frame, budget=view.budget, schema=ctx_schema, ledger=view,
                      progress=(lambda stage, done, total: progress(f"context {stage}", done, total))
                      if progress else None)
        for i in range(before, len(ledger.events)):  # relabel only; the RDP of each event is unchanged
            ledger.events[i] = dataclasses.replace(ledger.events[i], name=f"context:{ledger.events[i].name}")
        ctx_model.ledger_ = ledger
        c_enc = ctx_model.transformer_.transform(ctx_frame, rng_tr)
        layout["d_context"] = int(c_enc.shape[1])

        # ---- 5. DP-SGD over entities: plan, calibrate against the whole ledger, train
        q = min(1.0, batch_size / n_dp)
        spe = steps_per_epoch(n_dp, batch_size)
        total_steps = self.epochs * spe
        if budget is not None:
            if self.noise_multiplier is not None:
                sigma = float(self.noise_multiplier)
                ledger.check([SampledGaussianEvent(name="dp-sgd:hmm", sampling_rate=q, noise_multiplier=sigma,
                                                   steps=total_steps)], what=f"training for {self.epochs} epochs")
            else:
                sigma = calibrate_noise_multiplier(ledger, name="dp-sgd:hmm", sampling_rate=q, steps=total_steps)
            logger.info("HMM DP-SGD planned: q=%.4f, %d steps, noise multiplier %.3f, clip %.3g",
                        q, total_steps, sigma, self.max_grad_norm)
        else:
            sigma = 0.0
        gens = {name: torch_generator(seqs[name], device) for name in ("init", "batching", "noise")}
        net = HMMNet(n_states=self.n_states, cat_sizes=layout["cat_sizes"], n_gauss=layout["n_gauss"],
                     d_context=layout["d_context"]).to(device)
        net.reset(gens["init"])
        batches = _Batches(steps, c_enc, grouped.offsets, grouped.lengths, net.width, device)

        def charge_epoch() -> None:
            ledger.charge(SampledGaussianEvent(name="dp-sgd:hmm", sampling_rate=q, noise_multiplier=sigma, steps=spe))

        self._train(net, batches, private=budget is not None, sigma=sigma, q=q, n_dp=n_dp, spe=spe,
                    charge_epoch=charge_epoch, gens=gens, progress=progress)
        if budget is not None:
            logger.info("privacy spent: epsilon=%.4f of %.4f (delta=%g)", ledger.epsilon_spent(),
                        budget.epsilon, budget.delta)
        ledger.notes[:] = list(dict.fromkeys(ledger.notes))
        self.schema_ = schema
        self.context_schema_ = roles["context_schema"]
        self.transformer_ = transformer
        self.layout_ = layout
        self.ledger_ = ledger
        self.context_model_ = ctx_model
        self.hmm_ = net.eval()
        self.device_ = device
        self.training_ = {"sampling_rate": q, "noise_multiplier": sigma, "steps": total_steps,
                          "steps_per_epoch": spe, "epochs": self.epochs, "device": str(device),
                          "max_length": length, "n_units_dp": round(n_dp) if budget is not None else None}
        self._prepare_sampling()
        return self

    # ------------------------------------------------------------- fit helpers
    def _roles(self, schema: Schema, context: Table | pd.DataFrame | None,
               context_schema: Schema | None) -> tuple[dict[str, Any], Table | None]:
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
        context_table = None
        if context is not None:
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
            context_table = Table.from_frame(frame, cs)
            ctx_cols = [c for c in cs.learned_columns]
            ctx_ids = [c.name for c in cs.identifier_columns if c.name != key]
            ctx_schema_out = cs
        else:
            ctx_cols = []
            for n in schema.context_columns:
                c = schema.column(n)
                if not c.is_learned or n in (key, index):
                    raise ConfigError(f"context column {n!r} cannot be the entity key, the sequence index or an "
                                      "identifier")
                ctx_cols.append(c)
            ctx_ids = []
            ctx_schema_out = Schema(columns=(schema.column(key), *ctx_cols), entity_key=key)
        ctx_names = {c.name for c in ctx_cols}
        for reserved in (LENGTH, START):
            if reserved in schema or reserved in ctx_names:
                raise ConfigError(f"column name {reserved!r} is reserved by DPHMM; rename the column")
        event_cols = [c for c in schema.learned_columns if c.name != index and c.name not in ctx_names]
        event_ids = [c.name for c in schema.identifier_columns if c.name != key]
        if self.terminal_column is not None:
            if self.terminal_column not in {c.name for c in event_cols}:
                raise ConfigError(f"terminal_column {self.terminal_column!r} must be a learned event column")
            if schema.column(self.terminal_column).kind not in ("categorical", "boolean", "integer"):
                raise ConfigError(f"terminal_column {self.terminal_column!r} must be categorical, boolean or integer")
        return {"events": event_cols, "event_ids": event_ids, "context": ctx_cols, "context_ids": ctx_ids,
                "context_schema": ctx_schema_out}, context_table

    def _shares(self) -> float:
        return self.preprocessing_epsilon_share + self.context_epsilon_share

    def _decide_kinds(self, table: Table | pd.DataFrame, *, schema: Schema | None,
                      context: Table | pd.DataFrame | None, context_schema: Schema | None,
                      roles: dict[str, Any] | None, budget: PrivacyBudget | None, ledger: PrivacyLedger,
                      rng: np.random.Generator) -> tuple[Schema | None, Schema | None, list[GaussianEvent]]:
        """The events and context schemas, and the DP events this charged.

        Under a budget, a DataFrame without its schema gets its kinds from synthkit.dp_schema:
        one Gaussian release of per-column class counts, charged to THIS ledger before any
        other mechanism runs (events: "schema-inference", context: "context:schema-inference").
        The privacy unit is the entity:

        - events: the counts see ONE event per entity, drawn uniformly at random (a public
          contribution bound, k = 1, fixed before the data is read: max_length may be
          chosen under DP later, and a kind is a share over the population, which one event
          per entity estimates as well as k events under k times the noise). So one entity
          moves each of the d columns' class and distinct counts by at most 1: L2
          sensitivity sqrt(2d);
        - context: one row per entity (a repeated key keeps one row at random): sensitivity
          sqrt(2d) likewise.

        Each release takes dp_schema.INFERENCE_SHARE of the zCDP ρ that the (preprocessing +
        context) share of ε allows. It comes ON TOP of those shares (the later checks allow
        the share plus the inference), so the context model keeps its room and the HMM's
        DP-SGD, calibrated to what the ledger has left, pays. The whole of it (inference
        plus the shares) is checked against the budget here, from the header and the
        hyperparameters alone, before a row is read.

        The roles are the user's declarations, never read from the rows; the sequence index
        gets an ordered kind (datetime, integer or continuous) from the same noisy counts.
        Without a budget (a development run) the kinds are read from the rows (`infer_schema`)."""
        from synthkit.dp_schema import EVENT, dp_infer_schema, inference_event
        from synthkit.schema import SchemaError
        roles = dict(roles or {})
        known = {"entity_key", "sequence_index", "context_columns", "sensitive", "identifiers", "targets"}
        if set(roles) - known:
            raise ConfigError(f"unknown roles {sorted(set(roles) - known)}; use {sorted(known)}")
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
        problems = []
        if key is None:
            problems.append("no entity_key is declared: a sequence model needs the entity (patient, account) as its "
                            "privacy unit; set entity_key (--entity-key)")
        if infer_events and index is None:
            problems.append("no sequence_index is declared: set the column that orders each entity's events "
                            "(--sequence-index)")
        if problems:
            raise ConfigError("; ".join(problems))
        names = [str(c) for c in table.columns] if infer_events else []
        ctx_names = [str(c) for c in context.columns] if infer_context else []
        if infer_events:
            for role, value in (("entity_key", key), ("sequence_index", index),
                                *(("context_columns", c) for c in context_columns)):
                if value not in names:
                    problems.append(f"{role} {value!r} is not a column of the events data")
        if infer_context and key not in ctx_names:
            problems.append(f"the entity key {key!r} is not a column of the context table")
        if problems:
            raise SchemaError(problems)

        share = PrivacyBudget(epsilon=budget.epsilon * self._shares(), delta=budget.delta)
        ident = set(roles.get("identifiers", ()))
        planned: list[GaussianEvent] = []
        if infer_events:
            decided = [n for n in names if n != key and n not in ident]
            planned.append(inference_event(share, k=1, n_columns=len(decided)))
        if infer_context:
            planned.append(dataclasses.replace(inference_event(share, k=1, n_columns=len(ctx_names) - 1),
                                               name=f"context:{EVENT}"))
        ledger.check([*planned, _gaussian_of_epsilon(share.epsilon, budget.delta)],
                     what="schema inference and the sequence preprocessing and context shares")

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
                                             entity_key=key)
            # relabel only (the event is the one planned above): the ledger tells the tables apart
            ledger.events[-1] = dataclasses.replace(ledger.events[-1], name=f"context:{EVENT}")
        what = " and ".join([*(["events"] if infer_events else []), *(["context"] if infer_context else [])])
        # the note depends on which schemas were given (public), never on the rows
        ledger.notes.append(f"{what} column kinds (no schema given) were decided under DP from one row per entity, "
                            "drawn at random (contribution bound of the schema inference)")
        return schema, context_schema, planned

    def _dp_max_length(self, lengths: np.ndarray, *, plan: PreprocessingPlan, ledger: PrivacyLedger,
                       rng: np.random.Generator) -> int:
        """DP choice of max_length: a noisy histogram of entity lengths over the public bins
        1..MAX_LENGTH_CAP (one entity = one count: sensitivity 1), bins that do not clear a
        Bonferroni threshold zeroed (post-processing), then the `length_quantile` quantile."""
        counts = np.bincount(np.clip(lengths, 1, MAX_LENGTH_CAP) - 1, minlength=MAX_LENGTH_CAP)[:MAX_LENGTH_CAP]
        counts[0] -= int(np.count_nonzero(lengths == 0))  # entities without events hold no length bin
        noisy = noisy_histogram(counts, sigma=plan.sigma_units, sensitivity=1.0, name="length:max",
                                ledger=ledger, rng=rng)
        if ledger.private:
            from scipy.stats import norm
            noisy = np.where(noisy > plan.sigma_units * float(norm.isf(1e-3 / MAX_LENGTH_CAP)), noisy, 0.0)
        noisy = np.clip(noisy, 0, None)
        if noisy.sum() <= 0:
            raise BudgetExceededError("too few entities to choose the number of events kept per entity under DP at "
                                      "this epsilon; set --max-length (public) or raise --epsilon")
        cdf = np.cumsum(noisy) / noisy.sum()
        chosen = int(np.searchsorted(cdf, self.length_quantile - 1e-12) + 1)
        logger.info("max_length chosen under DP: %d", chosen)
        return max(1, min(chosen, MAX_LENGTH_CAP))

    def _fit_gaps(self, grouped: GroupedEvents, axis: TimeAxis, ctx: FitContext, *,
                  index_col: Column) -> dict[str, Any]:
        """DP gap model: common gaps released by partition selection (an entity holds at most
        max_length − 1 gaps, inside the event-level sensitivity k), at most
        `max_gap_categories` of them, each holding ≥ 1% of the gaps (post-processing);
        and a DP-standardised space for the log of the other gaps."""
        rng_select, rng_log = substreams(ctx.rng, 2)
        gaps = grouped.gaps()
        gaps = gaps[~np.isnan(gaps)]
        positive = gaps[gaps > 0]
        keys = _gap_keys(positive, axis)
        values, counts = np.unique(keys, return_counts=True)
        raw = {_gap_label(v, axis): int(n) for v, n in zip(values, counts)}
        kept = select_partitions(raw, sigma=ctx.plan.sigma_hist, k=ctx.plan.k,
                                 threshold_delta=ctx.plan.threshold_delta, name="gaps:common",
                                 ledger=ctx.ledger, rng=rng_select)
        floor = 0.005 * max(ctx.n_rows_dp, 1.0)  # post-processing of a DP count
        ranked = sorted(((c, lab) for lab, c in kept.items() if c >= floor), reverse=True)[: self.max_gap_categories]
        labels = sorted((float(lab) for _, lab in ranked))
        from synthkit.mechanisms import RangeNotLearnedError
        public = _public_log_gap_bounds(axis, index_col)
        if self.max_gap is not None:  # a public range: nothing of it is learned from the gaps
            hi = float(np.log(self.max_gap))
            bounds = (min(public[0], hi - 1.0), hi)
            log_t = NumericTransform(Column(name=GAP, kind="continuous", nullable=False, bounds=bounds))
            log_t.what, log_t.event_label = GAP_WHAT, GAP_EVENT
            log_t.fit(pd.Series(np.log(positive)), dataclasses.replace(ctx, rng=rng_log))
            return {"labels": labels, "transform": log_t}
        log_t = NumericTransform(Column(name=GAP, kind="continuous", nullable=False))
        log_t.what, log_t.event_label = GAP_WHAT, GAP_EVENT  # messages and the ledger name the gaps, never the internal column
        try:
            log_t.fit(pd.Series(np.log(positive)), dataclasses.replace(ctx, rng=rng_log))
        except RangeNotLearnedError:
            # No bin of the DP range histogram of the log-gaps cleared the noise (few gaps
            # against the noise of max_length events per entity), or there is no gap at all.
            # The histogram then runs on a PUBLIC range instead (post-processing of that DP
            # release; the ledger is the same either way)
            logger.warning("the range of the gaps between events could not be learned under DP at this epsilon; a "
                           "public range is used; set --max-gap (the widest gap, in the unit of the sequence index) "
                           "or declare bounds for the sequence index to narrow it")
            ctx.ledger.notes.append("the range of the gaps between events could not be learned under DP; a public "
                                    "range was used (set --max-gap to give it)")
            log_t = NumericTransform(Column(name=GAP, kind="continuous", nullable=False, bounds=public))
            log_t.what, log_t.event_label = GAP_WHAT, GAP_EVENT
            log_t.fit(pd.Series(np.log(positive)), dataclasses.replace(ctx, rng=rng_log))
        return {"labels": labels, "transform": log_t}

    def _layout(self, roles: dict[str, Any], transformer: DataTransformer, gap: dict[str, Any] | None, *,
                axis: TimeAxis, length: int, min_length: int, two_tables: bool, schema: Schema) -> dict[str, Any]:
        """The emission channels, decided from DP state only (a NumericTransform whose DP
        integer range is small becomes a categorical over its values)."""
        cat_sizes: list[int] = []
        n_gauss = 0
        columns = []
        for col in roles["events"]:
            t = transformer.transforms[col.name]
            entry: dict[str, Any] = {"name": col.name, "kind": col.kind, "nullable": col.nullable}
            if isinstance(t, CategoricalTransform):
                entry.update(mode="categorical", cat=len(cat_sizes))
                cat_sizes.append(len(t.labels_))
            else:
                lo, hi = t.bounds_
                if col.kind == "integer" and hi - lo + 1 <= self.max_integer_categories:
                    entry.update(mode="integer", cat=len(cat_sizes), low=int(lo), high=int(hi))
                    cat_sizes.append(int(hi - lo + 1) + (1 if col.nullable else 0))
                else:
                    entry.update(mode="gaussian", gauss=n_gauss)
                    n_gauss += 1
                    if col.nullable:
                        entry["null_cat"] = len(cat_sizes)
                        cat_sizes.append(2)
            columns.append(entry)
        gap_entry = None
        if gap is not None:
            gap_entry = {"labels": gap["labels"], "cat": len(cat_sizes), "gauss": n_gauss,
                         "transform": gap["transform"].state_dict()}
            cat_sizes.append(len(gap["labels"]) + 1)
            n_gauss += 1
        return {"columns": columns, "cat_sizes": cat_sizes, "n_gauss": n_gauss, "gap": gap_entry,
                "axis": axis.to_dict(), "max_length": length, "min_length": min_length, "two_tables": two_tables,
                "entity_key": schema.entity_key, "sequence_index": schema.sequence_index,
                "context_columns": [c.name for c in roles["context"]], "event_ids": roles["event_ids"],
                "context_ids": roles["context_ids"]}

    def _encode_events(self, grouped: GroupedEvents, transformer: DataTransformer, layout: dict[str, Any],
                       rng: np.random.Generator) -> np.ndarray:
        """Ragged per-event features [n_events, 2C + 2G] (see HMMNet)."""
        n = len(grouped.events)
        c, g = len(layout["cat_sizes"]), layout["n_gauss"]
        out = np.zeros((n, 2 * c + 2 * g), dtype=np.float32)
        frame = grouped.events
        for entry in layout["columns"]:
            t = transformer.transforms[entry["name"]]
            s = frame[entry["name"]]
            if entry["mode"] == "categorical":
                codes = np.concatenate([t.transform(s.iloc[i:i + 100_000], rng).argmax(axis=1)
                                        for i in range(0, max(n, 1), 100_000)]) if n else np.zeros(0)
                out[:, entry["cat"]] = codes
                out[:, c + entry["cat"]] = 1.0
            elif entry["mode"] == "integer":
                x = numeric_values(s).to_numpy(dtype=float)
                codes = np.clip(np.round(np.nan_to_num(x, nan=entry["low"])), entry["low"], entry["high"]) - entry["low"]
                if entry["nullable"]:
                    codes = np.where(np.isnan(x), entry["high"] - entry["low"] + 1, codes)
                out[:, entry["cat"]] = codes
                out[:, c + entry["cat"]] = 1.0
            else:
                x = _column_floats(t.column, s)
                present = ~np.isnan(x)
                z = np.zeros(n)
                z[present] = Standardiser(t).forward(x[present], rng)
                out[:, 2 * c + entry["gauss"]] = z
                out[:, 2 * c + g + entry["gauss"]] = present
                if entry["nullable"]:
                    out[:, entry["null_cat"]] = ~present
                    out[:, c + entry["null_cat"]] = 1.0
        gap = layout["gap"]
        if gap is not None:
            axis = TimeAxis.from_dict(layout["axis"])
            gaps = grouped.gaps()
            later = ~np.isnan(gaps)
            labels = np.asarray(gap["labels"], dtype=float)
            keys = _gap_keys(np.where(later, gaps, 0.0), axis)
            if len(labels):
                pos = np.clip(np.searchsorted(labels, keys), 0, len(labels) - 1)
                hit = later & (gaps > 0) & (labels[pos] == keys)
            else:
                pos, hit = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
            code = np.where(hit, pos, len(labels))
            out[:, gap["cat"]] = np.where(later, code, 0)
            out[:, c + gap["cat"]] = later
            other = later & ~hit
            log_t = NumericTransform(Column(name=GAP, kind="continuous", nullable=False))
            log_t.load_state_dict(gap["transform"])
            z = np.zeros(n)
            if other.any():
                z[other] = Standardiser(log_t).forward(np.log(np.maximum(gaps[other], 1e-300)))
            out[:, 2 * c + gap["gauss"]] = z
            out[:, 2 * c + g + gap["gauss"]] = other
        return out

    @staticmethod
    def _context_frame(grouped: GroupedEvents, roles: dict[str, Any], context_table: Table | None,
                       index: str, *, axis: TimeAxis, length_col: Column, start_col: Column) -> pd.DataFrame:
        """One row per entity: context columns, the kept length and the first event's time."""
        first = grouped.first_rows()
        if start_col.kind == "categorical":
            ticks = grouped.ticks[np.maximum(first, 0)] if len(grouped.ticks) else np.zeros(grouped.n_entities)
            start = pd.Series([str(int(round(v))) if f >= 0 else None for v, f in zip(ticks, first)], dtype=object)
        else:
            start = grouped.events[index].iloc[np.maximum(first, 0)].reset_index(drop=True) if len(grouped.events) \
                else pd.Series([np.nan] * grouped.n_entities)
            start = start.where(pd.Series(first >= 0))
        names = [c.name for c in roles["context"]]
        if context_table is not None:
            base = context_table.frame[names].reset_index(drop=True)
        else:
            base = grouped.events[names].iloc[first].reset_index(drop=True)
        out = base.copy()
        out[LENGTH] = (grouped.lengths.astype(str).astype(object) if length_col.kind == "categorical"
                       else grouped.lengths.astype(np.int64))
        out[START] = start.reset_index(drop=True)
        return out

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

    def _train(self, net: HMMNet, batches: _Batches, *, private: bool, sigma: float, q: float, n_dp: float,
               spe: int, charge_epoch: Callable[[], None], gens: dict[str, torch.Generator],
               progress: Progress | None) -> None:
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        step = HMMDPStep(net, opt, private=private, noise_multiplier=sigma, max_grad_norm=self.max_grad_norm,
                         expected_batch_size=q * n_dp, generator=gens["noise"])
        sampler = PoissonSampler(len(batches.lengths), q, gens["batching"])
        total = self.epochs * spe
        for epoch in range(self.epochs):
            charge_epoch()
            for b in range(spe):
                step.step(batches.gather(sampler.draw()))
                if progress:
                    progress("train", epoch * spe + b + 1, total)
        step.close()

    # ------------------------------------------------------------- sample
    def _prepare_sampling(self) -> None:
        """Decoders derived from the DP state (post-processing), cached for sampling."""
        lay = self.layout_
        self._axis = TimeAxis.from_dict(lay["axis"])
        self._scores = {e["name"]: Standardiser(self.transformer_.transforms[e["name"]])
                        for e in lay["columns"] if e["mode"] == "gaussian"}
        self._gap_score = None
        if lay["gap"] is not None:
            log_t = NumericTransform(Column(name=GAP, kind="continuous", nullable=False))
            log_t.load_state_dict(lay["gap"]["transform"])
            self._gap_score = Standardiser(log_t)
        self._start_t = self.context_model_.transformer_.transforms[START]
        self._terminal = None
        if self.terminal_column is not None:
            entry = next(e for e in lay["columns"] if e["name"] == self.terminal_column)
            code = self._label_code(entry, self.terminal_value)
            if code is None:
                logger.info("the terminal value is not among the released labels of its column; nothing to enforce")
            else:
                self._terminal = (entry["cat"], code)

    def _draw_start(self, n: int, rng: np.random.Generator) -> np.ndarray:
        t = self._start_t
        if isinstance(t, CategoricalTransform):
            labels = [lab for lab in t.labels_ if lab not in (NULL, OTHER)]
            counts = np.array([c for lab, c in zip(t.labels_, t.counts_) if lab not in (NULL, OTHER)]) + 1e-9
            return rng.choice(np.asarray(labels, dtype=float), size=n, p=counts / counts.sum())
        x = Standardiser(t).inverse(rng.standard_normal(n))
        return self._axis.to_ticks(_floats_to_series(x, t.column, tz=t.tz_))

    def _label_code(self, entry: dict[str, Any], value: Any) -> int | None:
        if entry["mode"] == "categorical":
            t = self.transformer_.transforms[entry["name"]]
            v = str(value)
            if t.column.kind == "boolean":
                v = {"true": "True", "false": "False"}.get(v.lower(), v)
            return t.labels_.index(v) if v in t.labels_ else None
        if entry["mode"] == "integer":
            try:
                v = int(float(value))
            except (TypeError, ValueError):
                return None
            return v - entry["low"] if entry["low"] <= v <= entry["high"] else None
        return None

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
        lay = self.layout_
        s_ctx, s_enc, s_hmm, s_np = seq.spawn(4)
        ctx_seed = int(s_ctx.generate_state(1, dtype=np.uint32)[0])
        rng = np.random.default_rng(s_np)
        ctx = self.context_model_.sample(n, seed=ctx_seed).reset_index(drop=True)
        c_enc = self.context_model_.transformer_.transform(ctx, np.random.default_rng(s_enc))
        lengths = pd.to_numeric(ctx[LENGTH], errors="coerce").fillna(lay["min_length"]).to_numpy(dtype=float)
        lengths = np.clip(np.round(lengths), lay["min_length"], lay["max_length"]).astype(np.int64)
        start = self._axis.to_ticks(ctx[START])
        missing = np.isnan(start) & (lengths > 0)
        if missing.any():  # a start drawn from the DP marginal of __start__ (post-processing)
            start[missing] = self._draw_start(int(missing.sum()), rng)
        if self._axis.discrete:
            start = np.round(start)
        g = torch_generator(s_hmm, self.device_)
        with torch.no_grad():
            states, cat_codes, gauss_z = self._sample_hmm(torch.from_numpy(c_enc).to(self.device_), lengths, g)
        events, ctx_out = self._decode(ctx, lengths, start, cat_codes, gauss_z, entity_start, event_start)
        return SequenceSample(events, ctx_out)

    def _sample_hmm(self, c: torch.Tensor, lengths: np.ndarray,
                    g: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised over entities, sequential over time (AR emissions): states [n, T],
        categorical codes [n, T, C], standardised values [n, T, G]. The terminal value is
        forbidden before an entity's last event (post-processing)."""
        net, lay = self.hmm_, self.layout_
        n, t_max = len(lengths), int(lengths.max(initial=0))
        dev = c.device
        n_cat, n_g = net.n_cat, net.n_gauss
        cat = torch.zeros(n, t_max, n_cat, dtype=torch.long, device=dev)
        cat_valid = torch.zeros(n, t_max, n_cat, dtype=torch.bool, device=dev)
        z = torch.zeros(n, t_max, n_g, device=dev)
        z_valid = torch.zeros(n, t_max, n_g, dtype=torch.bool, device=dev)
        states = torch.zeros(n, t_max, dtype=torch.long, device=dev)
        if t_max == 0:
            return states.cpu().numpy(), cat.cpu().numpy(), z.cpu().numpy()
        log_start, log_trans = net.log_start_trans(c)
        trans = log_trans.exp()
        rows = torch.arange(n, device=dev)
        table = net.cat_log_table().exp() if n_cat else None
        stay = torch.sigmoid(net.stay_logit[:, :n_cat]) if n_cat else None
        mean, log_std = net.gauss_params()
        last = torch.from_numpy(lengths - 1).to(dev)
        gap = lay["gap"]
        gauss_gate: dict[int, tuple[int, int]] = {}  # gauss channel → (cat channel, code that enables it)
        for e in lay["columns"]:
            if e["mode"] == "gaussian" and e["nullable"]:
                gauss_gate[e["gauss"]] = (e["null_cat"], 0)
        if gap is not None:
            gauss_gate[gap["gauss"]] = (gap["cat"], len(gap["labels"]))
        for t in range(t_max):
            s_t = _draw(log_start.exp(), g) if t == 0 else _draw(trans[rows, states[:, t - 1]], g)
            states[:, t] = s_t
            for ch, (o, size) in enumerate(zip(net.cat_offsets, net.cat_sizes)):
                if gap is not None and ch == gap["cat"] and t == 0:
                    continue  # no gap before a first event
                p = table[:, o:o + size][s_t]
                if t > 0:
                    had = cat_valid[:, t - 1, ch].unsqueeze(-1)
                    lam = stay[s_t, ch].unsqueeze(-1)
                    onehot = nn.functional.one_hot(cat[:, t - 1, ch], size).to(p.dtype)
                    p = torch.where(had, lam * onehot + (1 - lam) * p, p)
                if self._terminal is not None and self._terminal[0] == ch:
                    p = p.clone()
                    p[:, self._terminal[1]] = torch.where(t < last, torch.zeros_like(p[:, 0]), p[:, self._terminal[1]])
                cat[:, t, ch] = _draw(p, g)
                cat_valid[:, t, ch] = True
            if n_g:
                prev = z[:, t - 1] * z_valid[:, t - 1] if t > 0 else torch.zeros(n, n_g, device=dev)
                mu = mean[s_t] + net.ar_coef[:, :n_g][s_t] * prev
                eps = torch.randn(n, n_g, generator=g, device=dev)
                z[:, t] = mu + log_std.exp()[s_t] * eps
                valid = torch.ones(n, n_g, dtype=torch.bool, device=dev)
                for j, (ch, code) in gauss_gate.items():
                    valid[:, j] = cat_valid[:, t, ch] & (cat[:, t, ch] == code)
                z_valid[:, t] = valid
        return states.cpu().numpy(), cat.cpu().numpy(), z.cpu().numpy()

    def _decode(self, ctx: pd.DataFrame, lengths: np.ndarray, start: np.ndarray, cat: np.ndarray, z: np.ndarray,
                entity_start: int, event_start: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        lay = self.layout_
        key, index = lay["entity_key"], lay["sequence_index"]
        n, t_max = len(lengths), cat.shape[1]
        mask = np.arange(t_max)[None, :] < lengths[:, None]
        ent = np.repeat(np.arange(n), lengths)
        keys = np.array([f"{key}-{i:09d}" for i in range(entity_start + 1, entity_start + n + 1)], dtype=object)
        # time: start, then gaps (common gaps exact; the others from the log-gap scores)
        gaps = np.zeros((n, t_max))
        gap = lay["gap"]
        if gap is not None and t_max:
            labels = np.asarray(gap["labels"], dtype=float)
            code = cat[:, :, gap["cat"]]
            other = code >= len(labels)
            gaps = labels[np.minimum(code, len(labels) - 1)] if len(labels) else np.zeros(code.shape)
            gaps = np.where(other, 0.0, gaps)
            if other.any():
                gaps[other] = np.exp(self._gap_score.inverse(z[:, :, gap["gauss"]][other]))
        if self._axis.discrete:
            gaps = np.maximum(np.round(gaps), 1.0)
        else:
            gaps = np.maximum(gaps, 0.0)
        ticks = reconstruct_ticks(np.nan_to_num(start), gaps, lengths) if t_max else np.zeros((n, 0))
        if not self._axis.discrete and t_max > 1:  # strictly increasing even where a float gap underflows
            for t in range(1, t_max):
                ticks[:, t] = np.maximum(ticks[:, t], np.nextafter(ticks[:, t - 1], np.inf))
        bounds = self.schema_.column(index).bounds
        if bounds is not None and t_max:
            # ordering rule: no event after the index's PUBLIC upper bound (end of follow-up).
            # A sequence that would run past it is moved earlier (not before the lower bound),
            # and what still does not fit is cut: the drawn start and length are not exactly
            # jointly consistent with a fixed observation window.
            lo, hi = self._axis.bound_ticks(bounds)
            last_tick = ticks[np.arange(n), np.maximum(lengths - 1, 0)]
            shift = np.clip(np.minimum(last_tick - hi, ticks[:, 0] - lo), 0.0, None)
            ticks = ticks - shift[:, None]
            mask = mask & (ticks <= hi + 1e-9)
            lengths = mask.sum(axis=1)
            ent = np.repeat(np.arange(n), lengths)
        # the index written in its format as the event columns' datetimes are (a US/EU date as
        # text, 'excel' as serial days); an ISO-written index keeps its datetime type (CSV
        # writes it as ISO text, which is read back as dates; Parquet keeps a timestamp)
        fmt = self.schema_.column(index).format
        written = self._axis.from_ticks(ticks[mask])
        if fmt is not None and fmt != "iso" and not fmt.startswith("%Y-%m-%d"):
            written = render_datetimes(written, fmt)
        cols: dict[str, Any] = {key: pd.Series(keys[ent], dtype=object), index: written}
        for entry in lay["columns"]:
            cols[entry["name"]] = self._decode_column(entry, cat[mask], z[mask])
        for name in lay["context_columns"]:
            if not lay["two_tables"]:
                cols[name] = ctx[name].iloc[ent].reset_index(drop=True)
        for name in lay["event_ids"]:
            cols[name] = [f"{name}-{i:09d}" for i in range(event_start + 1, event_start + len(ent) + 1)]
        events = pd.DataFrame({c: (cols[c].reset_index(drop=True) if isinstance(cols[c], pd.Series) else cols[c])
                               for c in self.schema_.names})
        context = pd.DataFrame({key: keys})
        for name in lay["context_columns"]:
            context[name] = ctx[name].reset_index(drop=True)
        for name in lay["context_ids"]:
            context[name] = [f"{name}-{i:09d}" for i in range(entity_start + 1, entity_start + n + 1)]
        return events, context[self.context_schema_.names]

    def _decode_column(self, entry: dict[str, Any], cat: np.ndarray, z: np.ndarray) -> pd.Series:
        t = self.transformer_.transforms[entry["name"]]
        m = len(cat)
        if entry["mode"] == "categorical":
            block = np.zeros((m, len(t.labels_)), dtype=np.float32)
            block[np.arange(m), cat[:, entry["cat"]]] = 1.0
            return t.inverse_transform(block).reset_index(drop=True)
        if entry["mode"] == "integer":
            code = cat[:, entry["cat"]]
            null = code > entry["high"] - entry["low"]
            vals = (np.minimum(code, entry["high"] - entry["low"]) + entry["low"]).astype("int64")
            if entry["nullable"]:
                arr = pd.array(vals, dtype="Int64")
                arr[null] = pd.NA
                return pd.Series(arr)
            return pd.Series(vals)
        x = self._scores[entry["name"]].inverse(z[:, entry["gauss"]])
        null = (cat[:, entry["null_cat"]] == 1) if entry["nullable"] else np.zeros(m, dtype=bool)
        return _floats_to_series(x, t.column, null=null, tz=t.tz_)

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
        return self._scores[column].inverse(mean[:, entry["gauss"]].detach().cpu().numpy())

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
        transformer's DP state gives (`_layout_channels`), the context model must be a
        table model of the declared kind whose encoding is `d_context` wide, and the
        weights' shapes must be the HMM's (meta-device build, then the safetensors header)."""
        from synthkit import manifest as mf
        from synthkit.bundle import _guard, checked_weights, load_bundle
        where = mf._where(path)
        extra = manifest["sequence"]
        layout = extra["layout"]
        with _guard(where, "sequence.layout"):
            schema = Schema.from_dict(manifest["schema"])
            event_cols = tuple(schema.column(e["name"]) for e in layout["columns"])
            transformer = DataTransformer(Schema(columns=event_cols))
            transformer.load_state_dict(manifest["transformer"])
            channels = self._layout_channels(event_cols, transformer, layout.get("gap"))
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
        ctx_dir = mf.resolve_inside(path, extra["context_bundle"], where=where, field="sequence.context_bundle")
        ctx_model = load_bundle(ctx_dir, table_only=True)
        if ctx_model.model_name != self.context_model:
            raise ArtifactError(f"bundle {where!r}: the context bundle holds a {type(ctx_model).__name__}, not the "
                                f"{self.context_model} its manifest names; {mf._FIX}")
        if ctx_model.transformer_.width != layout["d_context"] or START not in ctx_model.transformer_.transforms:
            raise ArtifactError(f"bundle {where!r}: manifest field sequence.layout.d_context does not fit the context "
                                f"bundle; {mf._FIX}")
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
            self.device_ = device
            self._prepare_sampling()

    def _layout_channels(self, event_cols: tuple[Column, ...], transformer: DataTransformer,
                         gap: dict[str, Any] | None) -> tuple[list[dict[str, Any]], list[int], int]:
        """(columns, cat_sizes, n_gauss) of the layout that `_layout` builds from this DP
        state: what a loaded layout must equal (kept beside `_layout`'s rules)."""
        cat_sizes: list[int] = []
        n_gauss = 0
        columns = []
        for col in event_cols:
            t = transformer.transforms[col.name]
            entry: dict[str, Any] = {"name": col.name, "kind": col.kind, "nullable": col.nullable}
            if isinstance(t, CategoricalTransform):
                entry.update(mode="categorical", cat=len(cat_sizes))
                cat_sizes.append(len(t.labels_))
            else:
                lo, hi = t.bounds_
                if col.kind == "integer" and hi - lo + 1 <= self.max_integer_categories:
                    entry.update(mode="integer", cat=len(cat_sizes), low=int(lo), high=int(hi))
                    cat_sizes.append(int(hi - lo + 1) + (1 if col.nullable else 0))
                else:
                    entry.update(mode="gaussian", gauss=n_gauss)
                    n_gauss += 1
                    if col.nullable:
                        entry["null_cat"] = len(cat_sizes)
                        cat_sizes.append(2)
            columns.append(entry)
        if gap is not None:
            if gap["cat"] != len(cat_sizes) or gap["gauss"] != n_gauss:
                raise ValueError("gap channels")
            cat_sizes.append(len(gap["labels"]) + 1)
            n_gauss += 1
        return columns, cat_sizes, n_gauss


# ====================================================================== the DP step
class HMMDPStep:
    """One (DP-)SGD step on the HMM. Private: Opacus' functorch per-sample gradients of the
    per-entity NLL (vmap of grad — exact, no hooks), then Opacus' DPOptimizer (per-entity
    clipping to C, N(0, σ²C²) noise, division by the expected batch size). An empty Poisson
    batch still takes a noise-only step, as the accountant assumes. Non-private: the same
    sampling and normalisation, plain gradients (so noise 0 + no clipping = plain SGD)."""

    def __init__(self, net: HMMNet, optimizer: torch.optim.Optimizer, *, private: bool, noise_multiplier: float,
                 max_grad_norm: float, expected_batch_size: float, generator: torch.Generator | None) -> None:
        self.net = net
        self.private = private
        self.expected_batch_size = max(1, int(round(expected_batch_size)))
        self.params = [p for p in net.parameters() if p.requires_grad]
        if private:
            self.optimizer: torch.optim.Optimizer = DPOptimizer(
                optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                expected_batch_size=self.expected_batch_size, loss_reduction="mean", generator=generator)
        else:
            self.optimizer = optimizer

    def per_sample_grads(self, x: torch.Tensor) -> dict[torch.Tensor, torch.Tensor]:
        if len(x) == 0:
            return {p: torch.zeros(0, *p.shape, device=p.device) for p in self.params}
        return ft_compute_per_sample_gradient(self.net, [x], torch.ones(len(x), device=x.device))

    def step(self, x: torch.Tensor) -> None:
        if self.private:
            grads = self.per_sample_grads(x)
            for p in self.params:
                p.grad_sample = grads[p].detach()
        elif len(x):
            (self.net(x).sum() / self.expected_batch_size).backward()
        else:
            for p in self.params:
                p.grad = torch.zeros_like(p)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def close(self) -> None:
        """Drop Opacus' cached functional copy and per-sample attributes from the module."""
        if hasattr(self.net, "ft_compute_sample_grad"):
            del self.net.ft_compute_sample_grad
        for p in self.params:
            for attr in ("grad_sample", "summed_grad", "_processed"):
                if hasattr(p, attr):
                    try:
                        delattr(p, attr)
                    except AttributeError:
                        pass


# ====================================================================== helpers
def _draw(probs: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One categorical draw per row of `probs` [n, k] (inverse CDF with a seeded generator)."""
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[0], 1, generator=g, device=probs.device) * cdf[:, -1:]
    return torch.clamp((cdf < u).sum(-1), max=probs.shape[-1] - 1)


def _public_log_gap_bounds(axis: TimeAxis, index_col: Column) -> tuple[float, float]:
    """A range for the log of the positive gaps from public facts only: on a discrete axis
    a gap is at least one tick (log 0); the widest gap is the index's declared span, else
    150 years for datetimes, else the top of the signed geometric grid."""
    from synthkit.mechanisms import GEOMETRIC_EDGES
    lo = 0.0 if axis.discrete else float(np.log(GEOMETRIC_EDGES[GEOMETRIC_EDGES > 0].min()))
    if index_col.bounds is not None:
        ends = axis.bound_ticks(index_col.bounds)  # declared bounds are ISO, whatever the index's format
        span = float(ends[1] - ends[0])
    elif axis.kind == "datetime":
        span = 150 * 365.25 * (86400.0 if axis.unit == "second" else 1.0)
    else:
        span = float(GEOMETRIC_EDGES.max())
    return lo, max(float(np.log(max(span, 1e-300))), lo + 1.0)


def _gap_keys(gaps: np.ndarray, axis: TimeAxis) -> np.ndarray:
    """Gap values as exact keys: whole ticks on a discrete axis, 6 significant digits otherwise."""
    if axis.discrete:
        return np.round(gaps)
    return np.array([float(f"{g:.6g}") for g in gaps]) if len(gaps) else np.zeros(0)


def _gap_label(value: float, axis: TimeAxis) -> str:
    return str(int(value)) if axis.discrete else repr(float(value))


def _length_start_columns(index_col: Column, *, length: int, min_length: int, nullable_start: bool,
                          numeric_context: bool = True) -> tuple[Column, Column]:
    """The context model's length and start columns. Both are often spikes at a bound (a
    balanced panel: every length is max_length, every start the first year); a PUBLIC
    value set of at most MAX_CONTEXT_CATEGORIES values is therefore modelled as a
    categorical (exact spikes), else as an integer/continuous/datetime column.

    `numeric_context=False`: the start stays numeric, because DPTVAE's ghost clipping fails
    on a table with no numeric column (its σ parameter then gets no gradient)."""
    if length - min_length + 1 <= MAX_CONTEXT_CATEGORIES:
        length_col = Column(name=LENGTH, kind="categorical", nullable=False,
                            categories=tuple(str(v) for v in range(min_length, length + 1)))
    else:
        length_col = Column(name=LENGTH, kind="integer", nullable=False, bounds=(min_length, length))
    b = index_col.bounds
    if (numeric_context and index_col.kind == "integer" and b is not None
            and float(b[1]) - float(b[0]) + 1 <= MAX_CONTEXT_CATEGORIES):
        lo, hi = int(math.ceil(float(b[0]))), int(math.floor(float(b[1])))
        start_col = Column(name=START, kind="categorical", nullable=nullable_start,
                           categories=tuple(str(v) for v in range(lo, hi + 1)))
    else:
        start_col = Column(name=START, kind=index_col.kind, nullable=nullable_start, bounds=b)
    return length_col, start_col


def _floats_to_series(x: np.ndarray, column: Column, *, null: np.ndarray | None = None,
                      tz: str | None = None) -> pd.Series:
    """Decoded numbers in the column's type: integers stay integers (Int64 when nullable)."""
    null = np.zeros(len(x), dtype=bool) if null is None else null
    if column.kind == "integer":
        vals = np.round(x).astype("int64")
        if column.nullable:
            arr = pd.array(vals, dtype="Int64")
            arr[null] = pd.NA
            return pd.Series(arr)
        return pd.Series(vals)
    if column.kind == "datetime":
        out = pd.Series(np.round(x * 1e9).astype("int64").astype("datetime64[ns]"))
        out[null] = pd.NaT
        if tz:
            out = out.dt.tz_localize("UTC").dt.tz_convert(tz)
        return out
    x = x.astype(float).copy()
    x[null] = np.nan
    return pd.Series(x)
