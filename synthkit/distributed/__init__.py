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
"""

from synthkit.distributed.dpsgd import DistributedDPStep
from synthkit.distributed.partition import RankPartition, partition_units
from synthkit.distributed.sampling import driver_seed_sequence, rank_sampler, rank_streams
from synthkit.distributed import stats  # DP preprocessing statistics as map-reduce (Ray imported lazily)
from synthkit.distributed.worker import Shard, WorkerConfig, train_worker

__all__ = ["DistributedDPStep", "RankPartition", "Shard", "WorkerConfig", "driver_seed_sequence", "partition_units",
           "rank_sampler", "rank_streams", "train_worker"]
