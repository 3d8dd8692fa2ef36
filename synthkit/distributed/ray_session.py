"""Start or join Ray once, the same way for every synthkit engine (fit, statistics,
sharded generation): offline and quiet.

- usage statistics off (forced: a user's `RAY_USAGE_STATS_ENABLED=1` does not turn them on
  here), no metrics export, no dashboard, workers' output not forwarded to the driver (a
  foreign library's message may quote a cell);
- in process with `num_cpus` when no address is given, else the cluster at `address`;
- a Ray session that is already running is used as it is (its settings are the caller's).

Ray is imported here only, lazily: importing synthkit never imports it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from synthkit.errors import ConfigError

logger = logging.getLogger(__name__)

# an in-process Ray (no address) gets this many CPUs: the test and CI setting (2 Ray Train
# workers plus its controller on a 2-core machine); a cluster brings its own resources
LOCAL_NUM_CPUS = 4


def import_ray() -> Any:
    """Import Ray, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray, which is not installed; pip install 'synthkit[ray]' "
                          "(or use --engine local)") from None
    return ray


def init_ray(address: str | None = None, *, num_cpus: int = LOCAL_NUM_CPUS) -> bool:
    """Connect to `address` (`ray://host:10001` or `auto`), or start Ray in this process with
    `num_cpus`. Returns True when this call started or joined Ray (the caller may shut it
    down), False when a session was already running."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # Ray reads it at init: never send usage stats
    # no metrics export: nothing leaves the machine (and Ray's metrics thread crashed worker
    # processes, SIGABRT/SIGSEGV in absl::Mutex, on a loaded 2-core host)
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    ray = import_ray()
    if ray.is_initialized():
        logger.info("using the Ray session already running (its dashboard and log settings are its own)")
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
                              "logging_level": logging.WARNING}
    if address is None:
        ray.init(num_cpus=num_cpus, **kwargs)
    else:
        ray.init(address=address, **kwargs)
    logger.info("Ray started (%s)", "in process" if address is None else "connected to a cluster")
    return True
