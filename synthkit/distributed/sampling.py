"""Per-rank Poisson sampling from independent streams.

Each rank includes each of ITS units independently with probability q. Units are
disjoint across ranks and the streams independent, so the union of the ranks' batches
includes every unit independently with probability q: exactly the Poisson sampling the
RDP analysis of the sampled Gaussian mechanism assumes, with the single-process q,
steps and σ. Nothing in the accountant changes with the number of workers.

The driver draws ONE seed sequence from synthkit.noise (OS entropy; fixed only inside a
test's `_fixed_for_tests`), never a recorded or user-given seed, and hands it to the
workers in memory. Each rank spawns its streams from it with `SeedSequence.spawn`:
batching streams (and the "train" streams of the VAE's reparameterisation draws) differ
per rank; the noise stream is used by rank 0 only, and so is the "generator" stream (DPCTGAN's
fakes and generator steps, drawn on rank 0 only).
"""

from __future__ import annotations

import numpy as np
import torch

from synthkit.models.base import torch_generator
from synthkit.models.dpsgd import PoissonSampler
from synthkit.noise import private_seed_sequence


def driver_seed_sequence() -> np.random.SeedSequence:
    """The one DP seed sequence of a distributed fit (OS entropy; never recorded)."""
    return private_seed_sequence()


def rank_streams(seed: np.random.SeedSequence, *, rank: int, world_size: int) -> dict[str, np.random.SeedSequence]:
    """This rank's DP streams. Rebuilt from the seed's entropy and spawn key, so the result
    does not depend on how many children the caller's copy has already spawned."""
    root = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key)
    # spawn(4): the first three children are those of spawn(3), so adding "generator" left the
    # other streams as they were
    batching_root, noise, train_root, generator = root.spawn(4)
    return {"batching": batching_root.spawn(world_size)[rank], "noise": noise,
            "train": train_root.spawn(world_size)[rank], "generator": generator}


def rank_sampler(seed: np.random.SeedSequence, *, rank: int, world_size: int, n_local_units: int,
                 sampling_rate: float, device: torch.device | str = "cpu") -> PoissonSampler:
    """The Poisson sampler of one rank over its own units."""
    stream = rank_streams(seed, rank=rank, world_size=world_size)["batching"]
    return PoissonSampler(n_local_units, sampling_rate, torch_generator(stream, torch.device(device)))
