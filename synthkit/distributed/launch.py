"""Run `train_worker` on W local processes (torch.multiprocessing, "spawn"): the launcher
for tests and for one machine; Ray Train and torchrun call the same function.

Several configs can run one after the other in the same processes and process group
(spawning a rank imports torch and Opacus: seconds each). Each rank writes its weights
(safetensors) to a private temporary folder; the launcher returns them. A collective that waits for a rank that never comes fails after the
config's `collective_timeout_s` (gloo's timeout), so a desynchronised run ends with an
error instead of hanging.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from synthkit.distributed.worker import WorkerConfig, train_worker


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, configs: Sequence[WorkerConfig], world_size: int, port: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world_size)})
    try:
        for i, config in enumerate(configs):
            state = train_worker(config)
            save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, f"{i}.rank{rank}.safetensors"))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch_local(configs: Sequence[WorkerConfig], *, world_size: int) -> list[list[dict[str, torch.Tensor]]]:
    """Per config, every rank's final weights (identical across ranks when the run is correct)."""
    configs = list(configs)
    with tempfile.TemporaryDirectory(prefix="synthkit-dist-") as out:
        mp.start_processes(_entry, args=(configs, world_size, free_port(), out), nprocs=world_size, join=True,
                           start_method="spawn")
        return [[load_file(str(Path(out) / f"{i}.rank{r}.safetensors")) for r in range(world_size)]
                for i in range(len(configs))]
