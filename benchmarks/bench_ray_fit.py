"""DPTVAE or DPCTGAN (`--model`) fit s/epoch with `--engine local` and `--engine ray` (1 and 2
Ray Train workers) on this machine (issue 19). Numbers go to benchmarks/results/ray_fit.json; nothing is
asserted. Run:

    .venv/bin/python benchmarks/bench_ray_fit.py [--rows 1000000] [--epochs 1] [--configs local ray1 ray2]
        [--model dptvae|dpctgan]

Each configuration runs in a fresh Python process on the same made-up table (3 continuous,
2 categorical columns, bounds and categories declared: public), under epsilon 3, with the
model's default batch size (500 here, so 2,000 DP-SGD steps per epoch on 1M rows). Per
configuration it records:
- `loop_s`: the DP-SGD loop alone (the driver's `_train` for local; for Ray, rank 0's
  `train_worker` timed inside the worker), and `s_per_epoch` = loop_s / epochs;
- `train_s`: the driver's whole `_train` (for Ray: shards to the object store, Ray Train
  starting its workers and process group, the loop, the checkpoint back);
- `ray_init_s`: starting Ray in-process (`ray.init(num_cpus=4)`), before the fit;
- `fit_s`: the whole fit (reading nothing: the frame is in memory; preprocessing, DP
  counts, pair tree, encoding and `_train`).
Overhead of Ray = train_s - loop_s (+ ray_init_s once per session). The driver runs torch
with --driver-threads (1: the local loop then uses one core, as each Ray worker does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "ray_fit.json"

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
import numpy as np, pandas as pd, torch
from synthkit.ledger import PrivacyBudget
from synthkit.models.ctgan import DPCTGAN
from synthkit.models.tvae import DPTVAE
from synthkit.schema import Schema
from synthkit.distributed import ray_engine

rows, epochs, engine, workers, threads = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                                          int(sys.argv[5]))
Model = {"dptvae": DPTVAE, "dpctgan": DPCTGAN}[sys.argv[6]]
torch.set_num_threads(threads)  # the driver's (and the local loop's); each Ray worker uses 1
rng = np.random.default_rng(0)
frame = pd.DataFrame({
    "age": rng.integers(18, 90, rows).astype(float), "amount": rng.gamma(2.0, 50.0, rows).clip(0, 2000),
    "score": rng.normal(0, 1, rows).clip(-5, 5), "kind": rng.choice(list("abcde"), rows, p=[.4, .3, .15, .1, .05]),
    "flag": rng.choice(["y", "n"], rows)})
schema = Schema.from_dict({"version": 1, "columns": {
    "age": {"kind": "continuous", "nullable": False, "bounds": [18, 90]},
    "amount": {"kind": "continuous", "nullable": False, "bounds": [0, 2000]},
    "score": {"kind": "continuous", "nullable": False, "bounds": [-5, 5]},
    "kind": {"kind": "categorical", "nullable": False, "categories": list("abcde")},
    "flag": {"kind": "categorical", "nullable": False, "categories": ["n", "y"]}}})
record = {"model": sys.argv[6], "rows": rows, "epochs": epochs, "engine": engine, "workers": workers, "torch_threads_driver": torch.get_num_threads()}

def timed(config):  # runs on the Ray workers (pickled by value from __main__)
    import time as _t, torch as _torch
    from synthkit.distributed.worker import train_worker
    t0 = _t.perf_counter()
    state = train_worker(config)
    state["__loop_s"] = _torch.tensor([_t.perf_counter() - t0], dtype=_torch.float64)
    return state

real = ray_engine.train_on_ray
def with_timer(plan, shards, **kw):
    state = real(plan, shards, train_fn=timed, **kw)
    record["loop_s"] = float(state.pop("__loop_s")[0])
    return state
ray_engine.train_on_ray = with_timer

original = Model._train
def timed_train(self, *a, **kw):
    t0 = time.perf_counter()
    original(self, *a, **kw)
    record["train_s"] = time.perf_counter() - t0
Model._train = timed_train

if engine == "ray":
    t0 = time.perf_counter()
    ray_engine.init_ray(None, num_cpus=4)
    record["ray_init_s"] = time.perf_counter() - t0
model = Model(epochs=epochs, device="cpu")
t0 = time.perf_counter()
model.fit(frame, schema=schema, budget=PrivacyBudget(epsilon=3.0, delta=1e-8), engine=engine, workers=workers)
record["fit_s"] = time.perf_counter() - t0
record.setdefault("loop_s", record["train_s"])
record["s_per_epoch"] = record["loop_s"] / epochs
record["steps"] = model.training_["steps"]
record["epsilon_spent"] = model.ledger_.epsilon_spent()
print("RESULT " + json.dumps(record))
"""

CONFIGS = {"local": ("local", 1), "ray1": ("ray", 1), "ray2": ("ray", 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--label", default="")
    ap.add_argument("--model", default="dptvae", choices=["dptvae", "dpctgan"])
    # 1 by default, as each Ray worker: on a loaded 2-core machine a 2-thread local loop was
    # 13x slower than 1 thread (100k rows, load ~11: 263 s vs 20 s per epoch), thread contention
    ap.add_argument("--driver-threads", type=int, default=1)
    args = ap.parse_args()
    results = []
    for name in args.configs:
        engine, workers = CONFIGS[name]
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", CHILD, str(args.rows), str(args.epochs), engine, str(workers),
                              str(args.driver_threads), args.model],
                             capture_output=True, text=True)
        line = next((ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(run.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        res = json.loads(line.removeprefix("RESULT "))
        res["process_s"] = time.perf_counter() - t0
        results.append(res)
        print(json.dumps(res), flush=True)
    previous = json.loads(OUT.read_text()) if OUT.exists() else []
    previous.append({"label": args.label, "machine": platform.machine(), "cpus": os.cpu_count(),
                     "load_avg_at_end": os.getloadavg()[0], "results": results})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(previous, indent=1) + "\n")


if __name__ == "__main__":
    main()
