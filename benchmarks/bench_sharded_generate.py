"""Sharded generation to a Parquet dataset (issue 19): rows/s and peak memory per worker for
1, 2 and 4 shards, local engine (shards one after the other in one process) and Ray (one
task per shard, `ray.init(num_cpus=4)` in-process). Numbers go to
benchmarks/results/sharded_generate.json; nothing is asserted. Run:

    .venv/bin/python benchmarks/bench_sharded_generate.py [--rows 2000000] [--shards 1 2 4] \
        [--engines local ray] [--bundle DIR]

Each configuration runs in a fresh Python process, so the peak resident memory
(getrusage ru_maxrss) is that run's: for "local" the one process that wrote every shard; for
"ray" each worker's (a fresh Ray session per configuration, so no worker carries a peak from
an earlier configuration). Wall time is from the call to generate_sharded to its return
(bundle load, schema probe and, for Ray, starting Ray and its workers included); rows/s is
rows / wall. `--bundle` defaults to a 3-epoch non-private DPTVAE on a made-up 5-column
table with an identifier column (the model size, not its quality, matters here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "sharded_generate.json"

CHILD = r"""
import json, os, resource, shutil, sys, time
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
from synthkit.distributed.generate import generate_sharded
bundle, rows, shards, engine, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
t0 = time.perf_counter()
res = generate_sharded(bundle, rows, shards, out, seed=1, engine=engine)
wall = time.perf_counter() - t0
size = sum(os.path.getsize(os.path.join(out, f["name"])) for f in res.manifest["files"])
print(json.dumps({"wall_s": wall, "rows_per_s": rows / wall, "bytes": size,
                  "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "shards": [{"rows": s.rows, "seconds": s.seconds, "peak_rss_mb": s.peak_rss_bytes / 2**20}
                             for s in res.shards]}))
shutil.rmtree(out)
"""


def _bundle(tmp: Path) -> Path:
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(0)
    n = 1200
    pd.DataFrame({"patient_id": [f"P{i:06d}" for i in rng.permutation(n)], "age": rng.integers(18, 90, n),
                  "bmi": rng.normal(27, 4, n).round(1), "sex": rng.choice(["female", "male"], n),
                  "smoker": rng.choice([True, False], n)}).to_csv(tmp / "p.csv", index=False)
    subprocess.run([str(Path(sys.executable).parent / "synthkit"), "fit", str(tmp / "p.csv"), "--model", "dptvae",
                    "--no-privacy", "--epochs", "3", "--batch-size", "100", "--device", "cpu", "--seed", "0",
                    "--out", str(tmp / "model")], check=True, capture_output=True)
    return tmp / "model"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--engines", nargs="+", default=["local", "ray"])
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--label", default="default")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the child (Ray gives its workers 1)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        bundle = args.bundle or _bundle(tmp)
        runs = []
        env = dict(os.environ)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        for engine in args.engines:
            for s in args.shards:
                cpu0 = os.times()
                r = subprocess.run([sys.executable, "-c", CHILD, str(bundle), str(args.rows), str(s), engine,
                                    str(tmp / f"out-{engine}-{s}")], capture_output=True, text=True, env=env)
                cpu1 = os.times()
                if r.returncode != 0:
                    print(r.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"{engine} x{s} failed")
                rec = json.loads(r.stdout.strip().splitlines()[-1])
                rec.update(engine=engine, n_shards=s, rows=args.rows, omp_threads=args.threads,
                           child_cpu_s=(cpu1.children_user + cpu1.children_system)
                           - (cpu0.children_user + cpu0.children_system))
                runs.append(rec)
                print(f"{engine:5s} shards={s}: {rec['rows_per_s']:,.0f} rows/s, wall {rec['wall_s']:.1f}s, "
                      f"peak/worker {max(x['peak_rss_mb'] for x in rec['shards']):.0f} MB, "
                      f"{rec['bytes'] / 2**20:.0f} MB on disk", flush=True)
    load = os.getloadavg()
    result = {"label": args.label, "cpus": os.cpu_count(), "loadavg_at_end": load, "python": platform.python_version(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": runs}
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data[args.label] = result
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
