"""Run `train_worker` on W Ray Train workers (`ray.train.torch.TorchTrainer`).

Ray is an optional extra (`pip install synthkit[ray]`): it is imported here, inside the
functions, never when `synthkit` is imported, so a typo on the command line is refused
before Ray (or torch) loads.

What the driver hands to Ray, and why nothing private shows in Ray's logs, task errors or
dashboard:
- the plan (a `WorkerConfig` without its shards: q, steps, σ, the GLOBAL expected batch
  size, the DP seed sequence) and every rank's `Shard` go into Ray's object store with
  `ray.put`; `train_loop_config` holds only their ObjectRefs, so what Ray Train records
  or prints about the run's config is object ids. The config's and the shard's reprs hide
  the rows, the unit counts and the DP seed anyway (`synthkit.distributed.worker`);
- a worker that fails reaches the driver as ONE synthkit error: the worker's own message
  when it is a synthkit error (those never hold a private value, by the project's rule),
  else only the exception's type, because a foreign message (torch, gloo) may quote a
  shape or a value. Ray's worker stdout is not forwarded to the driver (`log_to_driver`
  False), there is no dashboard, and usage statistics are off (no network at run time).

The weights come back as a Ray Train checkpoint: rank 0 writes them (safetensors) and
reports them with `ray.train.report`; every rank calls `report` once (it is a barrier).
The checkpoint lives under `storage_path` (a private temporary folder by default, removed
after the run; on a multi-node cluster a shared path, e.g. `SYNTHKIT_RAY_STORAGE=s3://...`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from synthkit.distributed.ray_session import init_ray
from synthkit.distributed.worker import Shard, WorkerConfig, train_worker
from synthkit.errors import ConfigError, SynthkitError

logger = logging.getLogger(__name__)

WEIGHTS = "weights.safetensors"
STORAGE_ENV = "SYNTHKIT_RAY_STORAGE"


class RayWorkerError(SynthkitError):
    """A Ray Train worker failed; the message carries no private value."""


def _empty_like(shard: Shard) -> Shard:
    """A placeholder for another rank's shard: a rank reads only its own."""
    k, d = shard.data.shape[1], shard.data.shape[2]
    return Shard(data=torch.zeros(0, k, d), mask=torch.zeros(0, k))


def _ray_loop(loop_config: dict[str, Any]) -> None:
    """What every Ray Train worker runs: fetch the plan and this rank's shard from the
    object store, run the torch.distributed function, rank 0 reports the weights."""
    import ray
    import ray.train
    from safetensors.torch import save_file

    rank = ray.train.get_context().get_world_rank()
    plan: WorkerConfig = ray.get(loop_config["plan"])
    shard: Shard = ray.get(loop_config["shards"][rank])
    world = len(loop_config["shards"])
    shards = tuple(shard if r == rank else _empty_like(shard) for r in range(world))
    try:
        state = loop_config["train_fn"](replace(plan, shards=shards))
    except SynthkitError:
        raise  # its message is data-free by the project's rule
    except Exception as err:  # noqa: BLE001 - a foreign message may quote a cell: Ray would log it on disk
        raise RayWorkerError(f"the training function failed with {type(err).__name__} (its message is not shown: "
                             "it may hold data); rerun with --engine local to see where") from None
    with tempfile.TemporaryDirectory(prefix="synthkit-ray-") as out:
        checkpoint = None
        if rank == 0:
            save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, WEIGHTS))
            checkpoint = ray.train.Checkpoint.from_directory(out)
        ray.train.report({"steps": plan.steps}, checkpoint=checkpoint)


def _root_cause(err: BaseException) -> BaseException:
    """The worker's own exception inside Ray Train's wrappers (TrainingFailedError →
    WorkerGroupError → per-worker failures)."""
    failures = getattr(err, "worker_failures", None)
    if isinstance(failures, dict) and failures:
        first = failures[min(failures)]
        return _root_cause(first) if first is not err else first
    cause = getattr(err, "cause", None) or err.__cause__
    if isinstance(cause, BaseException) and cause is not err:
        return _root_cause(cause)
    return err


def _clean_error(err: BaseException) -> SynthkitError:
    cause = _root_cause(err)
    # a worker's synthkit error arrives as RayTaskError(ConfigError), a subclass of it: its
    # own message is data-free by the project's rule; Ray's wrapper text (a traceback) is not shown
    for base in type(cause).__mro__:
        if issubclass(base, SynthkitError) and base.__module__.startswith("synthkit"):
            message = str(SynthkitError.__str__(cause)) if cause.args else base.__name__
            return RayWorkerError(f"a Ray worker failed: {message.splitlines()[0]}")
    name = next((b.__name__ for b in type(cause).__mro__
                 if not b.__module__.startswith("ray.") and not b.__name__.startswith("RayTaskError")),
                type(cause).__name__)
    return RayWorkerError(f"a Ray worker failed with {name} (its message is not shown: it may hold data); "
                          "rerun with --engine local to see where, or read the workers' logs on the cluster")


def train_on_ray(plan: WorkerConfig, shards: Sequence[Shard], *, gpus_per_worker: float = 0,
                 address: str | None = None, storage_path: str | None = None,
                 train_fn: Callable[[WorkerConfig], dict[str, torch.Tensor]] = train_worker) -> dict[str, torch.Tensor]:
    """Run `train_fn` (a plain torch.distributed function; `train_worker` by default) on
    one Ray Train worker per shard and return rank 0's final weights.

    `plan` carries everything but the shards (its own `shards` are ignored); gloo on CPU,
    nccl with `gpus_per_worker` > 0 (one process per GPU)."""
    workers = len(shards)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}; use --workers 1 or more")
    if gpus_per_worker < 0:
        raise ConfigError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker}; use 0 for CPU workers")
    init_ray(address)
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from safetensors.torch import load_file

    backend = "nccl" if gpus_per_worker > 0 else "gloo"
    plan = replace(plan, shards=(), backend=backend)
    loop_config = {"plan": ray.put(plan), "shards": [ray.put(s) for s in shards], "train_fn": train_fn}
    resources = {"CPU": 1.0, **({"GPU": float(gpus_per_worker)} if gpus_per_worker > 0 else {})}
    storage = storage_path or os.environ.get(STORAGE_ENV)
    with tempfile.TemporaryDirectory(prefix="synthkit-ray-run-") as local:
        trainer = TorchTrainer(
            _ray_loop, train_loop_config=loop_config,
            torch_config=TorchConfig(backend=backend, timeout_s=int(plan.collective_timeout_s)),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0,
                                         resources_per_worker=resources),
            run_config=RunConfig(name=f"synthkit-fit-{uuid.uuid4().hex[:12]}", storage_path=storage or local,
                                 failure_config=FailureConfig(max_failures=0)))
        logger.info("Ray Train: %d %s workers (%s)", workers, "GPU" if gpus_per_worker > 0 else "CPU", backend)
        try:
            result = trainer.fit()
        except SynthkitError:
            raise
        except Exception as err:  # Ray Train's TrainingFailedError and friends
            raise _clean_error(err) from None
        error = getattr(result, "error", None)
        if error is not None:
            raise _clean_error(error) from None
        if result.checkpoint is None:
            raise RayWorkerError("the Ray workers returned no weights; rerun, or use --engine local")
        with result.checkpoint.as_directory() as folder:
            return load_file(str(Path(folder) / WEIGHTS))
