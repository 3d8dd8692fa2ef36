"""How many CPU threads one synthkit process uses: torch, numpy's BLAS, OpenMP and polars.

Why a default below the core count: torch, BLAS and polars each size their thread pool to
every core of the host. Two jobs on one machine (a scheduler, CI, a colleague) then run
twice as many busy threads as cores, and each slows down far more than twice (issue 17:
a 3-epoch fit took 8.3 s alone and 88 s beside one other 2-thread torch job on 2 cores).
So the default is half the CPUs this process may use (its affinity mask and, in a
container, the cgroup CPU quota), at least 1; an OMP_NUM_THREADS already set by the user
or the scheduler is respected. Order: the command's --threads (or a job's `threads`
key), else $SYNTHKIT_THREADS, else $OMP_NUM_THREADS, else the default.

What is covered: the limit is written into the environment (OMP_NUM_THREADS,
MKL_NUM_THREADS, OPENBLAS_NUM_THREADS, VECLIB_MAXIMUM_THREADS, NUMEXPR_NUM_THREADS,
POLARS_MAX_THREADS), which child processes inherit and which numpy, pyarrow, scikit-learn
and polars read when they load; torch gets `torch.set_num_threads`, and BLAS/OpenMP pools
already loaded are limited through threadpoolctl. Polars sizes its pool once, when it is
first imported: the CLI applies the limit before that, a Python caller must set
$SYNTHKIT_THREADS or POLARS_MAX_THREADS before importing polars.
"""

from __future__ import annotations

import math
import os
import sys

from synthkit.errors import ConfigError

ENV = "SYNTHKIT_THREADS"
MAX_THREADS = 1024
_POOL_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
              "NUMEXPR_NUM_THREADS", "POLARS_MAX_THREADS")


def available_cpus() -> int:
    """CPUs this process may run on: the affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max", encoding="ascii").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def default_threads() -> int:
    """$OMP_NUM_THREADS when set to a whole number >= 1, else half the available CPUs (at least 1)."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and 1 <= int(omp) <= MAX_THREADS:
        return int(omp)
    return max(1, available_cpus() // 2)


def check_threads(value: object, where: str) -> int:
    """`value` as a thread count, or one ConfigError line naming `where` (an option, a key)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THREADS:
        shown = repr(value) if isinstance(value, (int, float)) else f"a {type(value).__name__}"
        raise ConfigError(f"{where} must be a whole number of threads from 1 to {MAX_THREADS}, got {shown}; "
                          f"give e.g. 1 or 2 (default: half the CPUs, {default_threads()} here)")
    return value


def resolve_threads(value: int | None, *, where: str = "--threads") -> tuple[int, bool]:
    """(threads, explicit): `value` if given, else $SYNTHKIT_THREADS, else the default."""
    if value is not None:
        return check_threads(value, where), True
    raw = os.environ.get(ENV)
    if raw is not None and raw.strip():
        text = raw.strip()
        if not text.isdigit():
            raise ConfigError(f"${ENV} must be a whole number of threads from 1 to {MAX_THREADS}, got "
                              f"{text[:20]!r}; set it to e.g. 1 or 2, or unset it for the default")
        return check_threads(int(text), f"${ENV}"), True
    return default_threads(), False


def apply_threads(n: int, *, explicit: bool = True) -> None:
    """Limit this process (and the processes it starts) to `n` threads; see the module
    docstring for what is covered. `explicit` False (the default count): thread variables
    the user already set are kept."""
    for name in _POOL_VARS:
        if explicit or not os.environ.get(name):
            os.environ[name] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "numpy" in sys.modules:  # BLAS/OpenMP pools loaded before the limit was known
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - scikit-learn brings it
            return
        threadpool_limits(limits=n)


def use_threads(value: int | None, *, where: str = "--threads") -> int:
    """Resolve and apply in one call (what each command does first); returns the count."""
    n, explicit = resolve_threads(value, where=where)
    apply_threads(n, explicit=explicit)
    return n
