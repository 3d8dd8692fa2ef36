"""`train_worker(config)`: the function every rank runs (Ray Train's TorchTrainer, torchrun
or `synthkit.distributed.launch` start it the same way).

The driver decides q, the number of steps and σ from its DP count (and the ledger) and
puts them in the config; the workers only execute that plan, so the accountant sees the
single-process fit. The config carries the driver's DP seed sequence in memory (never
written anywhere); each rank derives its own streams from it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from synthkit.distributed.dpsgd import NOISE_RANK, DistributedDPStep, broadcast_parameters
from synthkit.distributed.sampling import rank_sampler, rank_streams
from synthkit.errors import ConfigError
from synthkit.models.base import init_linear_layers, torch_generator
from synthkit.models.dpsgd import PoissonSampler
from synthkit.models.tvae import VAE, _row_loss
from synthkit.transforms import Span

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shard:
    """One rank's units: [n_units, k, d] encoded rows and the [n_units, k] mask of real rows."""

    data: torch.Tensor = field(repr=False)  # private rows: never in a repr, log line or error
    mask: torch.Tensor = field(repr=False)

    def __repr__(self) -> str:
        return f"Shard(rows_per_unit={self.data.shape[1]}, width={self.data.shape[2]})"  # no unit count: private


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    # repr=False: a config ends up in Ray's task errors and logs; it must show no private row
    # (the shards) and never the DP seed (that would make the noise reproducible)
    shards: tuple[Shard, ...] = field(repr=False)  # one per rank (Ray: the rank's dataset shard)
    sampling_rate: float               # q, from the driver's DP count
    steps: int
    noise_multiplier: float            # σ, calibrated on the driver
    max_grad_norm: float
    expected_batch_size: float         # GLOBAL: q · n_units_dp
    dp_seed: np.random.SeedSequence = field(repr=False)  # from synthkit.noise on the driver; never recorded
    private: bool = True
    init_seed: int | None = None       # public: network initialisation only
    model: Literal["mlp", "tvae", "ctgan", "hmm"] = "mlp"
    hidden: int = 64
    spans: tuple[Span, ...] = ()       # tvae, ctgan: the transformer's public layout of the encoded row
    embedding_dim: int = 16            # tvae: latent width; ctgan: the generator's noise width
    loss_factor: float = 2.0           # tvae
    compress_dims: tuple[int, ...] = ()    # tvae: encoder widths (empty: one layer of `hidden`)
    decompress_dims: tuple[int, ...] = ()  # tvae: decoder widths (empty: one layer of `hidden`)
    # ctgan: the generator's and critic's widths, the generator's lr (`lr` is the critic's),
    # critic steps per generator step, fake groups per critic step (from the plan's expected
    # batch) and, per discrete column, its span and DP label frequencies (released on the driver);
    # both networks use CTGAN's Adam (synthkit.models.ctgan), whatever `optimizer` says
    generator_dims: tuple[int, ...] = ()
    critic_dims: tuple[int, ...] = ()
    generator_lr: float = 1e-3
    critic_steps: int = 1
    fake_groups: int = 1
    cond_columns: tuple[tuple[int, int, tuple[float, ...]], ...] = field(default=(), repr=False)
    # hmm: the HMMNet's shape (public: the layout's channel counts); the shards hold one entity
    # per slot ([n, 1 + T, W] as `_Batches.padded` builds them), every slot's mask marking its
    # context row and real events
    hmm_states: int = 0
    hmm_cat_sizes: tuple[int, ...] = ()
    hmm_gauss: int = 0
    hmm_context: int = 0
    lr: float = 1e-2
    optimizer: Literal["sgd", "adam"] = "sgd"  # "adam": DPTVAE's Adam(lr, weight_decay)
    weight_decay: float = 0.0
    # the driver's initial weights (DPTVAE._build; DPCTGAN's generator and critic as "generator.*"
    # and "critic.*"), loaded instead of the `init_seed` draw so that a distributed fit starts
    # where the single-process one does; public (a seeded init)
    initial_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    backend: Literal["gloo", "nccl"] = "gloo"
    collective_timeout_s: float = 300.0
    torch_threads: int | None = 1


class AutoencoderMLP(nn.Module):
    """A small MLP that reconstructs its input: enough to exercise a DP-SGD step end to end."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(config: WorkerConfig, d: int) -> nn.Module:
    """The network, initialised from the public `init_seed` (every rank builds the same one;
    rank 0's is broadcast anyway)."""
    init = torch_generator(np.random.SeedSequence(config.init_seed), torch.device("cpu"))
    if config.model == "mlp":
        model: nn.Module = AutoencoderMLP(d, config.hidden)
        init_linear_layers(model, init)
        return model
    if config.model == "tvae":
        if sum(s.width for s in config.spans) != d:
            raise ConfigError(f"the spans cover {sum(s.width for s in config.spans)} encoded columns and the data "
                              f"has {d}; pass the transformer's spans with its encoded data")
        n_tanh = sum(1 for s in config.spans if s.activation == "tanh")
        model = VAE(d, config.embedding_dim, config.compress_dims or (config.hidden,),
                    config.decompress_dims or (config.hidden,), n_tanh)
        init_linear_layers(model, init)
        nn.init.constant_(model.log_sigma.weight, -2.3)  # as DPTVAE._build
        if config.initial_state is not None:
            model.load_state_dict(config.initial_state)
        return model
    raise ConfigError(f"distributed model must be 'mlp', 'tvae' or 'ctgan', got {config.model!r}")


def make_optimizer(config: WorkerConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (the core's tests) or DPTVAE's Adam(lr, weight_decay): the same optimizer as the
    single-process fit, fed the same released (noised, ÷ global B) gradient on every rank."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")


def per_unit_loss(model: nn.Module, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """MLP: Σ over a unit's real rows of the squared reconstruction error: one loss per
    unit, so clipping bounds the whole unit's contribution."""
    return (((model(x) - x) ** 2).sum(dim=-1) * m).sum(dim=1)


def tvae_unit_loss(model: nn.Module, x: torch.Tensor, m: torch.Tensor, eps: torch.Tensor,
                   config: WorkerConfig) -> torch.Tensor:
    """DPTVAE's per-unit loss: Σ over the unit's real rows of the negative ELBO."""
    recon, mu, logvar, log_sigma = model(x, eps)
    per_row = _row_loss(x, recon, mu, logvar, log_sigma, list(config.spans), config.loss_factor)
    return (per_row * m).sum(dim=1)


def _ensure_process_group(config: WorkerConfig) -> None:
    if dist.is_initialized():  # Ray Train initialises it before calling the function
        return
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE") if v not in os.environ]
    if missing:
        raise ConfigError(f"train_worker needs a process group or the variables {', '.join(missing)}; "
                          "start it with torchrun, Ray Train or synthkit.distributed.launch")
    dist.init_process_group(config.backend, init_method="env://",
                            timeout=timedelta(seconds=config.collective_timeout_s))


def train_worker(config: WorkerConfig) -> dict[str, torch.Tensor]:
    """Run the DP-SGD plan on this rank; returns rank 0's weights (identical on every rank)."""
    _ensure_process_group(config)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    rank, world = dist.get_rank(), dist.get_world_size()
    if len(config.shards) != world:
        raise ConfigError(f"the config holds {len(config.shards)} shards for {world} workers; "
                          "partition the units into one shard per worker")
    if not 0.0 < config.sampling_rate <= 1.0 or config.steps < 0 or config.expected_batch_size <= 0:
        raise ConfigError(f"the DP-SGD plan needs 0 < q <= 1, steps >= 0 and a positive expected batch size, got "
                          f"q={config.sampling_rate:g}, steps={config.steps}, batch={config.expected_batch_size:g}; "
                          "take them from the driver's plan")
    if config.backend == "nccl":  # one GPU per rank: torchrun sets LOCAL_RANK, Ray Train one visible device
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    shard = config.shards[rank]
    data, mask = shard.data.to(device), shard.mask.to(device)
    streams = rank_streams(config.dp_seed, rank=rank, world_size=world)
    noise_gen = torch_generator(streams["noise"], device) if rank == NOISE_RANK else None
    train_gen = torch_generator(streams["train"], device)
    sampler = rank_sampler(config.dp_seed, rank=rank, world_size=world, n_local_units=data.shape[0],
                           sampling_rate=config.sampling_rate, device=device)
    if config.model == "hmm":
        return _train_hmm(config, data, mask, sampler=sampler, noise_gen=noise_gen)
    if config.model == "ctgan":
        gen_gen = torch_generator(streams["generator"], device) if rank == GENERATOR_RANK else None
        return _train_ctgan(config, data, mask, sampler=sampler, noise_gen=noise_gen, train_gen=train_gen,
                            gen_gen=gen_gen)
    model = build_model(config, data.shape[-1]).to(device)
    broadcast_parameters(model, src=0)
    step = DistributedDPStep(model, make_optimizer(config, model), private=config.private,
                             noise_multiplier=config.noise_multiplier, max_grad_norm=config.max_grad_norm,
                             expected_batch_size=config.expected_batch_size, noise_generator=noise_gen)
    logger.info("distributed DP-SGD: rank %d of %d, %d steps", rank, world, config.steps)
    model.train()
    for _ in range(config.steps):
        idx = sampler.draw()
        if len(idx) == 0:  # an empty local batch: no forward pass, but the rank takes the step
            step.step(data.new_zeros(0))
        elif config.model == "tvae":
            x = data[idx]
            eps = torch.randn(*x.shape[:-1], config.embedding_dim, generator=train_gen, device=device)
            step.step(tvae_unit_loss(step.module, x, mask[idx], eps, config))
        else:
            step.step(per_unit_loss(step.module, data[idx], mask[idx]))
    step.close()
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# the rank that draws the fakes and trains the generator (post-processing; any fixed rank works)
GENERATOR_RANK = NOISE_RANK


def _train_ctgan(config: WorkerConfig, data: torch.Tensor, mask: torch.Tensor, *, sampler: PoissonSampler,
                 noise_gen: torch.Generator | None, train_gen: torch.Generator,
                 gen_gen: torch.Generator | None) -> dict[str, torch.Tensor]:
    """DPCTGAN's loop (`DPCTGAN._train`) on this rank.

    The critic sees private rows: every rank takes its DP step over its own Poisson batch
    (real units only), every step; the released update is (Σ clipped real units + Σ clipped
    fake groups + noise on rank 0) ÷ (global expected batch + fake groups), exactly the
    single-process statistic, because rank `GENERATOR_RANK` alone adds the step's fake
    groups, drawn as in one process. The generator never sees a row: it trains on that rank
    through the critic's DP weights (post-processing, no charge) and is broadcast at the
    end, so every rank returns the same generator. Conditional vectors of real rows draw
    their column from the rank's "train" stream; fakes and the generator step draw from the
    "generator" stream, both DP streams of the driver's seed sequence."""
    from synthkit.models.ctgan import (Critic, Generator, GeneratorParts, Conditioner, critic_optimizer,
                                       critic_unit_loss, fake_rows, generator_optimizer, generator_step)

    device, rank = data.device, dist.get_rank()
    k, width = data.shape[1], data.shape[-1]
    if sum(s.width for s in config.spans) != width:
        raise ConfigError(f"the spans cover {sum(s.width for s in config.spans)} encoded columns and the data "
                          f"has {width}; pass the transformer's spans with its encoded data")
    if config.initial_state is None or config.critic_steps < 1 or config.fake_groups < 1:
        raise ConfigError("a ctgan plan needs the driver's initial weights, critic_steps >= 1 and fake_groups >= 1; "
                          "build it with DPCTGAN.fit(engine='ray')")
    cond = Conditioner(config.cond_columns, device)
    generator = Generator(config.embedding_dim, cond.width, config.generator_dims, width).to(device)
    critic = Critic(width + cond.width, config.critic_dims).to(device)
    for prefix, net in (("generator.", generator), ("critic.", critic)):
        net.load_state_dict({name.removeprefix(prefix): v for name, v in config.initial_state.items()
                             if name.startswith(prefix)})
        broadcast_parameters(net, src=0)
    parts = GeneratorParts(generator=generator, cond=cond, spans=list(config.spans),
                           embedding_dim=config.embedding_dim)
    g_opt = generator_optimizer(generator, config.generator_lr)
    step = DistributedDPStep(critic, critic_optimizer(critic, config.lr), private=config.private,
                             noise_multiplier=config.noise_multiplier, max_grad_norm=config.max_grad_norm,
                             expected_batch_size=config.expected_batch_size + config.fake_groups,
                             noise_generator=noise_gen)
    logger.info("distributed DP-SGD (ctgan critic): rank %d, %d steps", rank, config.steps)
    generator.train()
    n_fake = config.fake_groups * k
    for t in range(config.steps):
        idx = sampler.draw()
        real = data[idx]
        real_in = torch.cat([real, cond.for_real(real, train_gen)], dim=-1)
        fake = None
        if rank == GENERATOR_RANK:
            with torch.no_grad():
                fake = fake_rows(parts, n_fake, gen_gen).view(config.fake_groups, k, -1)
        if fake is None and len(idx) == 0:  # an empty local batch: no forward pass, but the rank takes the step
            step.step(data.new_zeros(0))
        else:
            step.step(critic_unit_loss(step.module, real_in, mask[idx], fake))
        if rank == GENERATOR_RANK and (t + 1) % config.critic_steps == 0:
            generator_step(parts, step, g_opt, n_fake, gen_gen)
    step.close()
    broadcast_parameters(generator, src=GENERATOR_RANK)  # every rank ends with the trained generator
    return {**{f"generator.{n}": v.detach().cpu().clone() for n, v in generator.state_dict().items()},
            **{f"critic.{n}": v.detach().cpu().clone() for n, v in critic.state_dict().items()}}


def _train_hmm(config: WorkerConfig, data: torch.Tensor, mask: torch.Tensor, *, sampler: PoissonSampler,
               noise_gen: torch.Generator | None) -> dict[str, torch.Tensor]:
    """DPHMM's loop (`synthkit.models.hmm.train.train`) on this rank: the driver's initial
    weights (broadcast from rank 0), the plan's optimizer (DPHMM: Adam(lr)), every step a
    Poisson batch of this rank's whole entities (possibly empty), cut to its longest
    sequence as one process cuts it, through `DistributedHMMStep` (per-entity functorch
    gradients clipped here, summed over ranks, noise once on rank 0, ÷ the global expected
    batch)."""
    from synthkit.distributed.dpsgd import DistributedHMMStep
    from synthkit.models.hmm.network import HMMNet
    from synthkit.models.hmm.train import trim

    if config.initial_state is None or config.hmm_states < 1:
        raise ConfigError("an hmm plan needs the driver's initial weights and hmm_states >= 1; build it with "
                          "DPHMM.fit(engine='ray')")
    net = HMMNet(n_states=config.hmm_states, cat_sizes=list(config.hmm_cat_sizes), n_gauss=config.hmm_gauss,
                 d_context=config.hmm_context).to(data.device)
    if data.shape[-1] != net.width:
        raise ConfigError(f"the shards' events are {data.shape[-1]} wide and the network reads {net.width}; build "
                          "the shards with _Batches.padded of the same layout")
    net.load_state_dict(config.initial_state)
    broadcast_parameters(net, src=0)
    step = DistributedHMMStep(net, make_optimizer(config, net), private=config.private,
                              noise_multiplier=config.noise_multiplier, max_grad_norm=config.max_grad_norm,
                              expected_batch_size=config.expected_batch_size, generator=noise_gen)
    logger.info("distributed DP-SGD (hmm): rank %d, %d steps", dist.get_rank(), config.steps)
    for _ in range(config.steps):
        idx = sampler.draw()
        step.step(trim(data[idx], mask[idx]))
    step.close()
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def unit_shards(data: torch.Tensor, mask: torch.Tensor, *, world_size: int,
                seed: np.random.SeedSequence) -> list[Shard]:
    """A fit's grouped units ([n_units, k, d], one unit per slot) split over `world_size`
    ranks by `partition_units` (k=1 per slot): every unit's rows stay in one slot, hence on
    one rank. `seed` is the fit's DP seed sequence (the order within a rank is shuffled)."""
    from synthkit.distributed.partition import partition_units

    n_units = data.shape[0]
    part = partition_units(np.arange(n_units), n_rows=n_units, world_size=world_size, k=1,
                           rng=np.random.default_rng(seed.spawn(1)[0]))
    cpu_data, cpu_mask = data.cpu(), mask.cpu()
    return [Shard(data=cpu_data[torch.from_numpy(rows)], mask=cpu_mask[torch.from_numpy(rows)])
            for rows in part.rows]
