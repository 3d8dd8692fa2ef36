"""The Synthesizer contract and the DP fit pipeline every table model shares.

fit(table, budget):
 1. check hyperparameters, budget and schema; plan the preprocessing noise from the schema
    and the budget alone, and refuse an unaffordable plan — all before data is touched;
 2. bound each unit's contribution (at most k rows per entity);
 3. DP counts of units (and rows), DP categories/bounds/histograms (transforms);
 4. calibrate the DP-SGD noise multiplier so that everything composed stays within the
    target, refuse before training if impossible; train, charging each epoch to the ledger.

Randomness: one entry seed split by `SeedSequence.spawn` into named streams; no global
RNG is read or written (networks are initialised from a torch.Generator). Under a budget
every stream a DP mechanism draws from comes from OS entropy instead (synthkit.noise):
the seed then fixes only the initialisation.
"""

from __future__ import annotations

import dataclasses

import logging
import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from synthkit._typing import DeviceOption
from synthkit.dependence import DependenceCalibrator
from synthkit.marginals import PairTree
from synthkit.errors import ConfigError, NotFittedError
from synthkit.ledger import PrivacyBudget, PrivacyLedger, SampledGaussianEvent, calibrate_noise_multiplier
from synthkit.mechanisms import noisy_count, plan_preprocessing, substreams
from synthkit.noise import private_seed_sequence
from synthkit.models.dpsgd import PoissonSampler, choose_batch_size, steps_per_epoch
from synthkit.models.sampling import SpanSampler
from synthkit.schema import Schema
from synthkit.table import Table, render_number_columns
from synthkit.transforms import DataTransformer, FitContext

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
STREAMS = ("preprocess", "transform", "init", "batching", "noise", "train")
# share of the preprocessing budget (in zCDP terms) for the DP score correlations that
# sampling is calibrated to (synthkit.dependence); the counts and histograms share the rest
DEPENDENCE_SHARE = 0.5
# share of the preprocessing budget (zCDP) for the DP two-way marginals that sampling is
# calibrated to (synthkit.marginals)
PAIRS_SHARE = 0.7
# share of the pairs' budget for the pair tree's counts of exact zeros (synthkit.marginals:
# one vector release over the columns whose 0 is a spike, combined with every other
# measurement of the 0 cell); the selection and tree tables share the rest as before
PAIRS_ZERO_SHARE = 0.25
# the largest batch a table model picks by itself (the default before it adapted)
DEFAULT_MAX_BATCH = 500


def resolve_device(device: DeviceOption | str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available; use --device auto or cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


PUBLIC_STREAMS = frozenset({"init", "context"})  # no DP mechanism draws from these


def fit_streams(names: tuple[str, ...], seed: int | None, *, private: bool) -> dict[str, np.random.SeedSequence]:
    """Named seed sequences for one fit. Without a budget all come from `seed` (a
    reproducible development run); under one, every stream but initialisation comes from
    OS entropy (synthkit.noise), so no recorded or user-given value reproduces the noise."""
    seqs = dict(zip(names, np.random.SeedSequence(seed).spawn(len(names))))
    if private:
        secret = dict(zip(names, private_seed_sequence().spawn(len(names))))
        seqs = {n: (seqs[n] if n in PUBLIC_STREAMS else secret[n]) for n in names}
    return seqs


def torch_generator(seed_seq: np.random.SeedSequence, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed_seq.generate_state(1, dtype=np.uint64)[0] & ((1 << 63) - 1)))
    return g


def init_linear_layers(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear init (Kaiming-uniform), drawn from `generator`."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                bound = 1 / math.sqrt(m.in_features) if m.in_features > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, generator=generator)


class Synthesizer:
    """Base of DPCTGAN and DPTVAE. Subclasses implement the networks; this class owns the
    privacy pipeline, sampling, and the bundle format."""

    model_name: ClassVar[str] = ""

    def __init__(self, *, epochs: int, batch_size: int | None, max_rows_per_entity: int = 1,
                 preprocessing_epsilon_share: float = 0.8, max_grad_norm: float = 1.0,
                 noise_multiplier: float | None = None, calibrate_marginals: bool = True,
                 calibrate_dependence: bool = False, calibrate_pairs: bool = True, device: DeviceOption = "auto",
                 seed: int | None = None) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_rows_per_entity = max_rows_per_entity
        self.preprocessing_epsilon_share = preprocessing_epsilon_share
        self.max_grad_norm = max_grad_norm
        self.noise_multiplier = noise_multiplier
        self.calibrate_marginals = calibrate_marginals
        self.calibrate_dependence = calibrate_dependence
        self.calibrate_pairs = calibrate_pairs
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------- hooks
    def _build(self, transformer: DataTransformer, device: torch.device, generator: torch.Generator) -> None:
        raise NotImplementedError

    def _train(self, data: torch.Tensor, mask: torch.Tensor, *, private: bool, sampler: PoissonSampler,
               noise_multiplier: float,
               expected_batch_size: float, n_steps_per_epoch: int, charge_epoch: Callable[[], None],
               generators: dict[str, torch.Generator], progress: Progress | None) -> None:
        raise NotImplementedError

    def _raw_pass(self, generator: torch.Generator) -> Callable[[int], torch.Tensor]:
        """The sampling network as a function of a block's row count: raw outputs (no
        activation) transposed, [width, n] in span layout (sampling.linear_transposed
        computes the final layer that way). Built once per `sample_chunks` call, so what
        a pass derives from the weights is derived once."""
        raise NotImplementedError

    def _weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------- params
    def get_params(self) -> dict[str, Any]:
        import inspect
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        params = {n: getattr(self, n) for n in names}
        # a batch size left to adapt is recorded as the one the fit chose (a function of
        # the DP unit count), so the bundle's hyperparameters say what was trained
        if params.get("batch_size") is None and getattr(self, "batch_size_", None) is not None:
            params["batch_size"] = self.batch_size_
        return params

    def _check_params(self) -> None:
        problems = []
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            problems.append(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and self.batch_size >= 2):
            problems.append(f"batch_size must be an integer >= 2 (or None: adapt to the table), got {self.batch_size!r}")
        if not (isinstance(self.max_rows_per_entity, int) and self.max_rows_per_entity >= 1):
            problems.append(f"max_rows_per_entity must be an integer >= 1, got {self.max_rows_per_entity!r}")
        if not (0 < self.preprocessing_epsilon_share < 1):
            problems.append(f"preprocessing_epsilon_share must be in (0, 1), got {self.preprocessing_epsilon_share!r}")
        if not (self.max_grad_norm > 0):
            problems.append(f"max_grad_norm must be > 0, got {self.max_grad_norm!r}")
        if not isinstance(self.calibrate_marginals, bool):
            problems.append(f"calibrate_marginals must be True or False, got {self.calibrate_marginals!r}")
        if not isinstance(self.calibrate_dependence, bool):
            problems.append(f"calibrate_dependence must be True or False, got {self.calibrate_dependence!r}")
        if not isinstance(self.calibrate_pairs, bool):
            problems.append(f"calibrate_pairs must be True or False, got {self.calibrate_pairs!r}")
        if self.noise_multiplier is not None and not (self.noise_multiplier >= 0):
            problems.append(f"noise_multiplier must be >= 0, got {self.noise_multiplier!r}")
        if problems:
            raise ConfigError("; ".join(problems))

    # ------------------------------------------------------------- fit
    def fit(self, table: Table | pd.DataFrame, *, budget: PrivacyBudget | None,
            schema: Schema | None = None, progress: Progress | None = None,
            ledger: PrivacyLedger | None = None, roles: dict[str, Any] | None = None) -> Self:
        """Fit under `budget` (explicit `None` = no formal privacy guarantee).

        Without a `schema`, a private fit decides the column kinds under DP, charged to its
        own ledger (synthkit.dp_schema); `roles` then carries the user's declarations
        (entity_key, sequence_index, targets, sensitive, identifiers). A fit without a
        budget infers the kinds from the rows (`infer_schema`).

        `ledger`: an existing ledger to charge instead of a fresh one, so that a composite
        model (DPHMM: context table model + sequence model) spends ONE budget composed by
        one accountant; its budget must be `budget`, and its unit and contribution bound
        are kept (one context row per entity is one unit)."""
        self._check_params()
        device = resolve_device(self.device)
        roles = dict(roles or {})
        infer_dp = isinstance(table, pd.DataFrame) and schema is None and budget is not None
        if infer_dp:
            from synthkit.table import DECIDED_NOTE, conform_to_decided
            ledger = self._infer_schema_dp(table, budget=budget, roles=roles, ledger=ledger)
            schema = self.inferred_schema_
            table = conform_to_decided(table, schema)  # one odd cell never decides whether the fit runs
            ledger.notes.append(DECIDED_NOTE)
        elif schema is None and roles and isinstance(table, pd.DataFrame):
            from synthkit.schema import infer_schema
            schema = infer_schema(table, **roles)
        if isinstance(table, pd.DataFrame):
            table = Table.from_frame(table, schema)
        elif schema is not None:
            table = Table.from_frame(table.frame, schema)
        schema = table.schema.validate()
        entity = schema.entity_key is not None
        k = self.max_rows_per_entity if entity else 1
        if ledger is None:
            ledger = PrivacyLedger(budget=budget, unit="entity" if entity else "row", max_rows_per_unit=k)
        elif ledger.budget != budget:
            raise ConfigError("the shared ledger's budget differs from `budget`; pass the ledger's own budget")
        from synthkit.progress import watch_ledger
        watch_ledger(progress, ledger, epochs={"train": self.epochs})  # ε spent is read from THIS ledger
        transformer = DataTransformer(schema)

        # 1. the preprocessing plan, from the schema and the budget alone
        plan = None
        def make_plan(target_rows: float | None = None) -> Any:
            return plan_preprocessing(budget=budget, k=k, n_histograms=transformer.n_histograms(),
                                      n_discovery=transformer.n_discovery(), n_bounds=transformer.n_bounds(),
                                      n_targets=transformer.n_targets(), target_rows=target_rows,
                                      epsilon_share=self.preprocessing_epsilon_share,
                                      dependence_share=DEPENDENCE_SHARE if self.calibrate_dependence else 0.0,
                                      pairs_share=self._pairs_share() if len(transformer.transforms) >= 2 else 0.0,
                                      pairs_zero_share=PAIRS_ZERO_SHARE)

        if budget is not None:
            plan = make_plan()
            ledger.check(plan.events(), what="preprocessing")
            logger.info("preprocessing planned: %d histograms, %d category discoveries, sigma=%.2f",
                        plan.n_histograms, plan.n_discovery, plan.sigma_hist)
        else:
            from synthkit.mechanisms import PreprocessingPlan
            plan = PreprocessingPlan(sigma_units=1.0, sigma_rows=1.0, sigma_hist=1.0, threshold_delta=0.0, k=k,
                                     n_histograms=transformer.n_histograms(), n_discovery=0,
                                     dependence_noise=1.0, n_dependence=int(self.calibrate_dependence),
                                     pairs_select_noise=1.0, pairs_noise=1.0,
                                     n_pairs=int(self.calibrate_pairs and len(transformer.transforms) >= 2))
            ledger.notes.append("trained with --no-privacy: no formal privacy guarantee")
            logger.warning("fitting WITHOUT differential privacy: no formal privacy guarantee")

        seqs = fit_streams(STREAMS, self.seed, private=budget is not None)
        rng_pre = np.random.default_rng(seqs["preprocess"])
        rng_tr = np.random.default_rng(seqs["transform"])
        # one stream per mechanism group, split off before any data-dependent draw
        rng_bound, rng_counts, rng_columns, rng_dependence, rng_pairs = substreams(rng_pre, 5)

        # 2. contribution bounding: at most k rows per unit (uniformly at random)
        frame = table.frame
        if entity:
            order = rng_bound.permutation(len(frame))
            shuffled = frame.iloc[order]
            rank = shuffled.groupby(schema.entity_key, sort=False).cumcount().to_numpy()
            frame = shuffled[rank < k]
            # unconditional: whether any entity exceeded k is itself a fact about the data
            ledger.notes.append(f"rows beyond {k} per entity, if any, were left out at random (contribution bound)")
            logger.info("contribution bound: at most %d rows per entity are used; any extra rows were left out at "
                        "random (whether there were any is private and not reported)", k)
            unit_codes, _ = pd.factorize(frame[schema.entity_key], sort=False)
            n_units = int(unit_codes.max()) + 1
        else:
            unit_codes = np.arange(len(frame))
            n_units = len(frame)

        # 3. DP counts and DP preprocessing
        n_units_dp = noisy_count(n_units, sigma=plan.sigma_units, sensitivity=1.0, name="count:units",
                                 ledger=ledger, rng=rng_counts)
        n_rows_dp = (noisy_count(len(frame), sigma=plan.sigma_rows, sensitivity=float(k), name="count:rows",
                                 ledger=ledger, rng=rng_counts) if k > 1 else n_units_dp)
        # the 4-sigma floor on private counts (dpsgd.MIN_UNIT_SIGMAS), except for a DPHMM's context
        # model: its entities were judged on DPHMM's own count, and this one has a far smaller share
        floor_sigma = plan.sigma_units if ledger.private and not getattr(self, "units_judged_", False) else 0.0
        batch_size = choose_batch_size(self.batch_size, n_units_dp, unit=ledger.unit, cap=DEFAULT_MAX_BATCH,
                                       sigma=floor_sigma)
        if self.batch_size is None:
            logger.info("batch size %d chosen from the DP count of %ss (post-processing; --batch-size sets it)",
                        batch_size, ledger.unit)
        if budget is not None and budget.delta >= 1.0 / n_units_dp:
            raise ConfigError(
                f"delta={budget.delta:g} is not below 1/(number of {ledger.unit}s); such a delta allows "
                "releasing a whole record; use a delta well below 1/(number of units), e.g. 1e-8 for a million")
        if budget is not None and plan.n_targets:
            # the targets' weight from the DP row count (post-processing; the same total ρ as the
            # plan checked above: their extra ρ only moves between them and the pair marginals)
            # the counts above were drawn at the first plan's noise: the second keeps it, so
            # later estimates of their noise (`__other__`'s, clear_histogram's) stay right
            # (session 11's review R: up to 1.14x too small where the histograms paid the targets)
            plan = dataclasses.replace(make_plan(target_rows=n_rows_dp), sigma_units=plan.sigma_units,
                                       sigma_rows=plan.sigma_rows)
        transformer.fit(frame, FitContext(ledger=ledger, plan=plan, rng=rng_columns, n_rows_dp=n_rows_dp))
        dependence = None
        if plan.n_dependence:
            dependence = DependenceCalibrator(transformer).fit(
                frame, noise_multiplier=plan.dependence_noise, k=k, n_rows_dp=n_rows_dp, ledger=ledger, rng=rng_dependence)
        pairs = None
        if plan.n_pairs:
            targets = [t for t in getattr(schema, "targets", ()) if t in transformer.transforms]
            pairs = PairTree(transformer, root=targets[0] if targets else None).fit(
                frame, select_noise=plan.pairs_select_noise, noise=plan.pairs_noise, k=k, n_rows_dp=n_rows_dp,
                ledger=ledger, rng=rng_pairs, zero_noise=plan.pairs_zero_noise)
        encoded = transformer.transform(frame, rng_tr)
        data, mask = _group_units(encoded, unit_codes, n_units, k, device)

        # 4. DP-SGD plan: sampling rate and steps from DP counts; noise calibrated to the rest
        q = min(1.0, batch_size / n_units_dp)
        spe = steps_per_epoch(n_units_dp, batch_size) * self._steps_per_batch()
        total_steps = self.epochs * spe
        if budget is not None:
            if self.noise_multiplier is not None:
                sigma = float(self.noise_multiplier)
                ledger.check([SampledGaussianEvent(name="dp-sgd", sampling_rate=q, noise_multiplier=sigma,
                                                   steps=total_steps)], what=f"training for {self.epochs} epochs")
            else:
                sigma = calibrate_noise_multiplier(ledger, name="dp-sgd", sampling_rate=q, steps=total_steps)
            logger.info("DP-SGD planned: q=%.4f, %d steps, noise multiplier %.3f, clip %.3g",
                        q, total_steps, sigma, self.max_grad_norm)
        else:
            sigma = 0.0

        torch_gens = {name: torch_generator(seqs[name], device) for name in ("init", "batching", "noise", "train")}
        self._build(transformer, device, torch_gens["init"])
        sampler = PoissonSampler(n_units, q, torch_gens["batching"])

        def charge_epoch() -> None:
            ledger.charge(SampledGaussianEvent(name="dp-sgd", sampling_rate=q, noise_multiplier=sigma, steps=spe))

        self._train(data, mask, private=budget is not None, sampler=sampler, noise_multiplier=sigma, expected_batch_size=q * n_units_dp,
                    n_steps_per_epoch=spe, charge_epoch=charge_epoch, generators=torch_gens, progress=progress)
        if budget is not None:
            logger.info("privacy spent: epsilon=%.4f of %.4f (delta=%g)", ledger.epsilon_spent(),
                        budget.epsilon, budget.delta)
        self.schema_ = schema
        self.transformer_ = transformer
        self.dependence_ = dependence
        self.pairs_ = pairs
        self.ledger_ = ledger
        self.batch_size_ = batch_size
        self.training_ = {"sampling_rate": q, "noise_multiplier": sigma, "steps": total_steps,
                          "steps_per_epoch": spe, "epochs": self.epochs, "device": str(device),
                          "n_units_dp": round(n_units_dp) if budget is not None else None}
        self.device_ = device
        return self

    def _fit_on_engine(self, table: Any, *, budget: PrivacyBudget | None, engine: str, workers: int,
                       gpus_per_worker: float, ray_address: str | None, ray_note: str, **kwargs: Any) -> Self:
        """`fit` with the place its DP-SGD loop runs (DPTVAE.fit and DPCTGAN.fit): the engine
        options are checked as `synthkit fit --engine` and a job's engine are, before any data
        is read; `_train` reads `_engine` to run on Ray; the bundle's training record and, on
        Ray, the ledger's `ray_note` say where it ran (public). Where the loop runs is not a
        hyperparameter: the bundle loads and samples the same either way."""
        from synthkit.jobs import checked_engine
        self._engine = checked_engine(engine, workers, gpus_per_worker, ray_address, model=self.model_name)
        Synthesizer.fit(self, table, budget=budget, **kwargs)
        self.training_["engine"] = engine
        self.training_["workers"] = workers
        if engine == "ray":
            self.training_["gpus_per_worker"] = gpus_per_worker
            self.ledger_.notes.append(ray_note)
        return self

    def _train_on_ray(self, data: torch.Tensor, mask: torch.Tensor, *, private: bool,
                      charge_epoch: Callable[[], None], **plan: Any) -> dict[str, torch.Tensor]:
        """What every model's `_train_ray` shares (DPTVAE, DPCTGAN): the DP streams' seed
        sequence (batching, noise and the models' own DP draws) from OS entropy under a
        budget, never from the fit's seed; the grouped units split whole over the workers
        (`worker.unit_shards`); every epoch charged before the workers start (the plan was
        checked against the budget); the workers' weights back. `plan`: the model's
        `WorkerConfig` fields (the shared DP plan q, steps, σ, clip, expected batch included)."""
        from synthkit.distributed import WorkerConfig, driver_seed_sequence
        from synthkit.distributed.ray_engine import train_on_ray
        from synthkit.distributed.worker import unit_shards

        dp_seed = driver_seed_sequence() if private else np.random.SeedSequence(self.seed).spawn(1)[0]
        shards = unit_shards(data, mask, world_size=self._engine["workers"], seed=dp_seed)
        config = WorkerConfig(shards=(), dp_seed=dp_seed, private=private, **plan)
        for _ in range(self.epochs):
            charge_epoch()
        return train_on_ray(config, shards, gpus_per_worker=self._engine["gpus_per_worker"],
                            address=self._engine["ray_address"])

    def _infer_schema_dp(self, frame: pd.DataFrame, *, budget: PrivacyBudget, roles: dict[str, Any],
                         ledger: PrivacyLedger | None) -> PrivacyLedger:
        """Column kinds from noisy counts (synthkit.dp_schema), checked against the budget
        before a row is read and charged to the fit's ledger; sets `inferred_schema_`."""
        from synthkit.dp_schema import dp_infer_schema, inference_event, inference_targets, target_kind_event
        from synthkit.schema import SchemaError
        known = {"entity_key", "sequence_index", "sensitive", "identifiers", "targets"}
        if set(roles) - known:
            raise ConfigError(f"unknown roles {sorted(set(roles) - known)}; use {sorted(known)}")
        key = roles.get("entity_key")
        names = [str(c) for c in frame.columns]
        for role in ("entity_key", "sequence_index"):
            if roles.get(role) is not None and roles[role] not in names:
                raise SchemaError([f"{role} {roles[role]!r} is not a column of the data"])
        k = self.max_rows_per_entity if key else 1
        if ledger is None:
            ledger = PrivacyLedger(budget=budget, unit="entity" if key else "row", max_rows_per_unit=k)
        decided = [n for n in names if n != key and n not in set(roles.get("identifiers", ()))]
        # a declared target's kind gets its own release (dp_schema.decide_target_kind, issue 17)
        targets = inference_targets(decided, roles.get("targets", ()), sequence_index=roles.get("sequence_index"))
        planned = [inference_event(budget, k=k, n_columns=len(decided))]
        if targets:
            planned.append(target_kind_event(budget, k=k, n_targets=len(targets)))
        ledger.check(planned, what="schema inference")
        rng = np.random.default_rng(private_seed_sequence())
        bounded = frame
        if key:  # the counts see at most k rows per entity, as every other mechanism does
            order = rng.permutation(len(frame))
            shuffled = frame.iloc[order]
            bounded = shuffled[shuffled.groupby(key, sort=False).cumcount().to_numpy() < k]
        self.inferred_schema_ = dp_infer_schema(bounded, ledger=ledger, budget=budget, k=k, rng=rng,
                                                decide_targets=True, **roles)
        return ledger

    def _pairs_share(self) -> float:
        if not self.calibrate_pairs:
            return 0.0
        return PAIRS_SHARE * (1.0 - DEPENDENCE_SHARE) if self.calibrate_dependence else PAIRS_SHARE

    def _span_targets(self) -> list[np.ndarray | None] | None:
        """DP marginal frequencies per encoded span, when sampling calibrates to them."""
        return self.transformer_.span_targets() if self.calibrate_marginals else None

    def _steps_per_batch(self) -> int:
        """DP-SGD steps per batch (CTGAN: critic steps); every one is charged."""
        return 1

    # ------------------------------------------------------------- sample
    def _check_fitted(self) -> None:
        if not hasattr(self, "transformer_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or load a bundle first")

    def sample(self, n_rows: int, *, seed: int | None = None, conditions: dict[str, Any] | None = None,
               chunk_size: int = 100_000) -> pd.DataFrame:
        """`n_rows` synthetic rows; reproducible for a given `seed`. `conditions` fixes
        discrete columns to given values (rejection sampling, bounded tries)."""
        return pd.concat(list(self.sample_chunks(n_rows, seed=seed, conditions=conditions, chunk_size=chunk_size)),
                         ignore_index=True) if n_rows > 0 else self._empty_frame()

    def sample_chunks(self, n_rows: int, *, seed: int | None = None, conditions: dict[str, Any] | None = None,
                      chunk_size: int = 100_000, key_start: int = 0):
        """Stream synthetic rows in chunks so output size is bounded by disk, not memory.
        `key_start`: surrogate keys are numbered from key_start + 1 (a shard of a sharded
        generation starts at the rows of the shards before it, so keys are unique across
        shards: synthkit.distributed.generate)."""
        self._check_fitted()
        if not (isinstance(n_rows, (int, np.integer)) and n_rows >= 0):
            raise ConfigError(f"n_rows must be an integer >= 0, got {n_rows!r}")
        if not (isinstance(key_start, (int, np.integer)) and key_start >= 0):
            raise ConfigError(f"key_start must be an integer >= 0, got {key_start!r}")
        conditions = self._check_conditions(conditions)
        g = torch_generator(np.random.SeedSequence(seed), self.device_)
        rng_dependence = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        dependence = getattr(self, "dependence_", None)
        pairs = getattr(self, "pairs_", None)
        pair_state: dict[str, Any] = {}
        from synthkit.rules import enforce, parse_rule
        rules = tuple(parse_rule(r) for r in getattr(self.schema_, "rules", ()))
        kinds = {c.name: c.kind for c in self.schema_.columns}
        sampler = SpanSampler(self.transformer_.spans, self._span_targets(), self.device_)
        raw_pass = self._raw_pass(g)
        offsets = None
        produced = 0
        attempts = 0
        while produced < n_rows:
            want = min(chunk_size, n_rows - produced)
            with torch.no_grad():
                n_draw = want if not conditions else max(want * 4, 1024)
                encoded, offsets = sampler.sample_rows(n_draw, raw_pass, g, offsets, keep_raw=pairs is not None)
            values, orders = self.transformer_.decode(encoded.alpha, encoded.codes, calibrate=self.calibrate_marginals)
            if pairs is not None:
                with torch.no_grad():
                    values = pairs.sample(encoded.raw, values, generator=g, state=pair_state)
                orders = {}
            if dependence is not None:
                values = dependence.apply_values(values, orders, rng_dependence)
            frame = self.transformer_.to_frame(values)
            if rules:
                frame = enforce(frame, rules, kinds, {c.name: c.format for c in self.schema_.columns})
            if conditions:
                keep = np.ones(len(frame), dtype=bool)
                for col, value in conditions.items():
                    keep &= (frame[col].astype(str) == str(value)).to_numpy()
                frame = frame[keep].head(want).reset_index(drop=True)
                attempts += 1
                if attempts > 200 and produced + len(frame) < n_rows:
                    raise ConfigError("the conditions are too rare in the model to sample the requested rows")
            frame = self._add_identifiers(frame, start=key_start + produced)
            frame = render_number_columns(frame, self.schema_)  # '$1,234.50' as the input wrote it
            produced += len(frame)
            if len(frame):
                yield frame

    def _check_conditions(self, conditions: dict[str, Any] | None) -> dict[str, Any]:
        if not conditions:
            return {}
        problems = []
        for col, value in conditions.items():
            if col not in self.transformer_.transforms:
                problems.append(f"condition on unknown or unlearned column {col!r}")
                continue
            labels = getattr(self.transformer_.transforms[col], "labels_", None)
            if labels is None:
                problems.append(f"condition on column {col!r}: only categorical/boolean columns can be conditioned")
            elif str(value) not in labels:
                problems.append(f"condition on column {col!r}: the value is not among the model's released labels")
        if problems:
            raise ConfigError("; ".join(problems))
        return dict(conditions)

    def _add_identifiers(self, frame: pd.DataFrame, *, start: int) -> pd.DataFrame:
        """Fresh surrogate keys for identifier columns and the entity key (never learned)."""
        n = len(frame)
        for col in self.schema_.identifier_columns:
            frame[col.name] = [f"{col.name}-{i:09d}" for i in range(start + 1, start + n + 1)]
        return frame[self.schema_.names]

    def _empty_frame(self) -> pd.DataFrame:
        self._check_fitted()
        return pd.DataFrame({c: pd.Series(dtype=object) for c in self.schema_.names})

    # ------------------------------------------------------------- bundle
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        from synthkit.bundle import save_bundle
        self._check_fitted()
        return save_bundle(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> Synthesizer:
        from synthkit.bundle import load_bundle
        model = load_bundle(path)
        if cls is not Synthesizer and not isinstance(model, cls):
            from synthkit.errors import ArtifactError
            raise ArtifactError(f"the bundle holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def privacy_summary(self) -> dict[str, Any]:
        self._check_fitted()
        return self.ledger_.summary()


def _group_units(encoded: np.ndarray, unit_codes: np.ndarray, n_units: int, k: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_rows, d] → [n_units, k, d] plus a [n_units, k] mask of real rows."""
    d = encoded.shape[1]
    order = np.argsort(unit_codes, kind="stable")
    codes = unit_codes[order]
    slot = np.arange(len(codes)) - np.searchsorted(codes, codes, side="left")
    data = np.zeros((n_units, k, d), dtype=np.float32)
    mask = np.zeros((n_units, k), dtype=np.float32)
    data[codes, slot] = encoded[order]
    mask[codes, slot] = 1.0
    return torch.from_numpy(data).to(device), torch.from_numpy(mask).to(device)
