"""Engine-neutral distributed DP-SGD: the core that Ray Train (or torchrun) launches.

- `partition`: privacy units to ranks (all rows of a unit on one rank), then the
  contribution bound of k rows per unit, per rank;
- `sampling`: one independent Poisson(q) stream per rank, so the union over ranks is
  Poisson(q) over all units and the accountant is the single-process one;
- `dpsgd`: a DP-SGD step in which every rank takes every step, the noise is added once
  (on rank 0) and the normalisation is the GLOBAL expected batch size;
- `worker`: `train_worker(config)`, the function a launcher runs on every rank;
- `launch`: a local launcher (torch.multiprocessing, "spawn") for tests and one machine.
- `ray_engine`: the Ray Train launcher (`TorchTrainer`, `--engine ray`); imported only when
  used, so this package never imports Ray.
- `generate`: sharded generation (the format and its one SHA-256 verified reader live in
  the torch-free `synthkit.sharded`, which `connectors` uses).

The names below load on first access (PEP 562), so that importing a light submodule
(`synthkit.distributed.generate`) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"DistributedDPStep": "dpsgd", "RankPartition": "partition", "partition_units": "partition",
         "driver_seed_sequence": "sampling", "rank_sampler": "sampling", "rank_streams": "sampling",
         "Shard": "worker", "WorkerConfig": "worker", "train_worker": "worker"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"synthkit.distributed.{_LAZY[name]}"), name)
    if name in ("stats", "generate", "ray_engine", "launch", "dpsgd", "worker", "sampling", "partition"):
        return importlib.import_module(f"synthkit.distributed.{name}")
    raise AttributeError(f"module 'synthkit.distributed' has no attribute {name!r}")
