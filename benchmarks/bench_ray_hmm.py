"""DPHMM fit: s/epoch of its DP-SGD loop with the local engine and on 1 and 2 Ray Train workers
(issue 19). Numbers go to benchmarks/results/ray_hmm.json; nothing is asserted. Run:

    .venv/bin/python benchmarks/bench_ray_hmm.py [--entities 10000] [--epochs 1] [--configs local ray1 ray2]

Each configuration runs in a fresh Python process on the same made-up panel (entities with
1-8 events: an integer visit index, a 4-label kind, a lab value; no context column), under
epsilon 3, with the model's defaults except epochs, 4 states, max_length 8 and one context
epoch (the context model is not what is measured). Per configuration it records:
- `loop_s`: the DP-SGD loop alone (local: `train`; Ray: rank 0's `train_worker`, timed
  inside the worker) and `s_per_epoch` = loop_s / epochs;
- `train_s`: the driver's whole step 5 (Ray: padding the entities into slots, the shards to
  the object store, Ray Train starting its workers, the loop, the weights back);
- `ray_init_s` (Ray, once per session) and `fit_s` (the whole fit).
Every process runs torch with one thread (each Ray worker does too).
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

OUT = Path(__file__).parent / "results" / "ray_hmm.json"

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
import numpy as np, pandas as pd, torch
from synthkit.ledger import PrivacyBudget
from synthkit.models import DPHMM
from synthkit.distributed import ray_engine
import synthkit.models.hmm.model as hmm_model

n, epochs, engine, workers = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
torch.set_num_threads(1)
rng = np.random.default_rng(0)
lengths = rng.integers(1, 9, n)
ids = np.repeat(np.arange(n), lengths)
frame = pd.DataFrame({"pid": [f"P{i:07d}" for i in ids],
                      "visit": np.concatenate([np.arange(k) for k in lengths]) + 2000,
                      "kind": rng.choice(["lab", "gp", "er", "ward"], len(ids), p=[.4, .3, .2, .1]),
                      "lab": rng.normal(5, 1.5, len(ids)).round(2)})
record = {"entities": n, "events": len(frame), "epochs": epochs, "engine": engine, "workers": workers}

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

for name in ("train", "train_on_ray"):
    original = getattr(hmm_model, name)
    def wrapped(*a, _original=original, **kw):
        t0 = time.perf_counter()
        _original(*a, **kw)
        record["train_s"] = time.perf_counter() - t0
    setattr(hmm_model, name, wrapped)

if engine == "ray":
    t0 = time.perf_counter()
    ray_engine.init_ray(None, num_cpus=4)
    record["ray_init_s"] = time.perf_counter() - t0
model = DPHMM(epochs=epochs, n_states=4, max_length=8, context_epochs=1, device="cpu")
t0 = time.perf_counter()
model.fit(frame, budget=PrivacyBudget(epsilon=3.0, delta=1e-8), roles={"entity_key": "pid", "sequence_index": "visit"},
          engine=engine, workers=workers)
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
    ap.add_argument("--entities", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    results = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHKIT_THREADS": "1"}
    for name in args.configs:
        engine, workers = CONFIGS[name]
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", CHILD, str(args.entities), str(args.epochs), engine,
                              str(workers)], capture_output=True, text=True, env=env)
        line = next((ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(run.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        res = json.loads(line.removeprefix("RESULT "))
        res["process_s"] = time.perf_counter() - t0
        res["load_avg_after"] = os.getloadavg()[0]
        results.append(res)
        print(json.dumps(res), flush=True)
    previous = json.loads(OUT.read_text()) if OUT.exists() else []
    previous.append({"label": args.label, "machine": platform.machine(), "cpus": os.cpu_count(),
                     "results": results})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(previous, indent=1) + "\n")


if __name__ == "__main__":
    main()
