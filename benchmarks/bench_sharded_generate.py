"""Sharded generation to a Parquet dataset (issue 19): rows/s and peak memory per worker for
1, 2 and 4 shards, local engine (shards one after the other in one process) and Ray (one
task per shard, `ray.init(num_cpus=4)` in-process). Numbers go to
benchmarks/results/sharded_generate.json; nothing is asserted. Run:

    .venv/bin/python benchmarks/bench_sharded_generate.py [--rows 2000000] [--shards 1 2 4] \
        [--engines local ray] [--bundle DIR]

`--out-uri s3://bucket/prefix` writes to object storage instead of a local folder (credentials
and endpoint from the environment); `--moto` starts moto's S3 server on 127.0.0.1 for the run
(an in-memory S3 API: it measures synthkit's side of the protocol, temporary file and upload,
not a cloud's bandwidth) and writes to s3://synthkit-bench/run.

Each configuration runs in a fresh Python process, so the peak resident memory
(getrusage ru_maxrss) is that run's: for "local" the one process that wrote every shard; for
"ray" each worker's (a fresh Ray session per configuration, so no worker carries a peak from
an earlier configuration). Wall time is from the call to generate_sharded to its return
(bundle load, schema probe and, for Ray, starting Ray and its workers included); rows/s is
rows / wall. `--bundle` defaults to a 3-epoch non-private DPTVAE on a made-up 5-column
table with an identifier column (the model size, not its quality, matters here).

`--sequences`: a sequence bundle (DPHMM; 2-epoch non-private, made-up visits with an event
and a context table); `--rows` then counts ENTITIES (entities/s; the events written are
recorded too), the dataset being events/ and context/ part files.
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
if engine == "single":  # the reference: one-process `synthkit generate` (no shards), one file (a folder for sequences)
    from pathlib import Path
    from synthkit.cli import generate_data
    seq = sys.argv[6] == "sequences"
    generate_data(model_dir=Path(bundle), out=out if seq else out + ".parquet", seed=1, overwrite=False,
                  fmt="parquet", **({"entities": rows} if seq else {"rows": rows}))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    paths = [os.path.join(out, f) for f in os.listdir(out)] if seq else [out + ".parquet"]
    events = len(__import__("pandas").read_parquet(os.path.join(out, "events.parquet"), columns=[])) if seq else None
    print(json.dumps({"wall_s": wall, "rows_per_s": rows / wall, "bytes": sum(os.path.getsize(x) for x in paths),
                      "events": events, "driver_peak_rss_mb": peak,
                      "shards": [{"rows": rows, "seconds": wall, "peak_rss_mb": peak}]}))
    shutil.rmtree(out) if seq else os.remove(out + ".parquet")
    sys.exit(0)
res = generate_sharded(bundle, rows, shards, out, seed=1, engine=engine)
wall = time.perf_counter() - t0
m = res.manifest
files = m["files"] if "files" in m else [f for t in m["tables"].values() for f in t["files"]]
if "://" in out:
    import pyarrow.fs as pafs
    fs, root = pafs.FileSystem.from_uri(out)
    size = sum(fs.get_file_info(f"{root}/{f['name']}").size for f in files)
else:
    size = sum(os.path.getsize(os.path.join(out, f["name"])) for f in files)
events = m["tables"]["events"]["total_rows"] if "tables" in m else None
print(json.dumps({"wall_s": wall, "rows_per_s": rows / wall, "bytes": size, "events": events,
                  "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "shards": [{"rows": s.rows, "seconds": s.seconds, "peak_rss_mb": s.peak_rss_bytes / 2**20}
                             for s in res.shards]}))
if "://" in out:
    fs.delete_dir_contents(root)
else:
    shutil.rmtree(out)
"""


def _moto(env: dict) -> subprocess.Popen:
    """moto's S3 server on a free loopback port, its bucket, and the environment to reach it."""
    import socket
    import urllib.request
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_EC2_METADATA_DISABLED="true")
    for _ in range(600):  # waits on the server's state; 60 s only stop a hang
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    else:
        proc.kill()
        raise SystemExit("moto's S3 server did not answer in 60 s")
    if proc.poll() is not None:
        raise SystemExit("moto's S3 server exited at start (is moto[server] installed?)")
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/synthkit-bench", method="PUT"))
    return proc


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


def _sequence_bundle(tmp: Path) -> Path:
    """A 2-epoch non-private DPHMM on made-up visits (1-8 per patient) and a patient table."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(0)
    n = 600
    pd.DataFrame({"patient_id": [f"P{i:05d}" for i in range(n)], "sex": rng.choice(["female", "male"], n),
                  "birth_year": rng.integers(1930, 2000, n)}).to_csv(tmp / "patients.csv", index=False)
    rows = []
    for i in range(n):
        day = pd.Timestamp("2015-01-01") + pd.Timedelta(days=int(rng.integers(0, 700)))
        for j in range(int(rng.integers(1, 9))):
            day += pd.Timedelta(days=int(rng.choice([7, 30, 90])) if j else 0)
            rows.append((f"P{i:05d}", day.date(), rng.choice(["gp", "lab", "ward"]), round(rng.normal(6, 1), 2)))
    pd.DataFrame(rows, columns=["patient_id", "visit_date", "kind", "lab"]).to_csv(tmp / "visits.csv", index=False)
    subprocess.run([str(Path(sys.executable).parent / "synthkit"), "fit", str(tmp / "visits.csv"), "--model", "dphmm",
                    "--entity-key", "patient_id", "--sequence-index", "visit_date", "--context",
                    str(tmp / "patients.csv"), "--no-privacy", "--epochs", "2", "--max-length", "8", "--states", "4",
                    "--batch-size", "100", "--device", "cpu", "--seed", "0", "--out", str(tmp / "seqmodel")],
                   check=True, capture_output=True)
    return tmp / "seqmodel"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--engines", nargs="+", default=["local", "ray"],
                    help="local, ray, and single (one-process `synthkit generate`, no shards: the reference)")
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--label", default="default")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the child (Ray gives its workers 1)")
    ap.add_argument("--out-uri", help="an object-storage prefix to write to instead of a local folder")
    ap.add_argument("--moto", action="store_true", help="start moto's S3 server on 127.0.0.1 and write there")
    ap.add_argument("--sequences", action="store_true", help="a sequence bundle (DPHMM): --rows counts entities")
    args = ap.parse_args()
    moto = None
    if args.moto:
        moto = _moto(os.environ)  # the children inherit the endpoint and credentials
        args.out_uri = "s3://synthkit-bench/run"
    try:
        _measure(args)
    finally:
        if moto is not None:
            moto.kill()


def _measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        bundle = args.bundle or (_sequence_bundle(tmp) if args.sequences else _bundle(tmp))
        runs = []
        env = dict(os.environ)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        for engine in args.engines:
            for s in ([1] if engine == "single" else args.shards):
                cpu0 = os.times()
                out = f"{args.out_uri.rstrip('/')}/out-{engine}-{s}" if args.out_uri else str(tmp / f"out-{engine}-{s}")
                kind = "sequences" if args.sequences else "tables"
                argv = [sys.executable, "-c", CHILD, str(bundle), str(args.rows), str(s), engine, out, kind]
                r = subprocess.run(argv, capture_output=True, text=True, env=env)
                cpu1 = os.times()
                if r.returncode != 0:
                    print(r.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(f"{engine} x{s} failed")
                rec = json.loads(r.stdout.strip().splitlines()[-1])
                rec.update(engine=engine, n_shards=s, rows=args.rows, omp_threads=args.threads,
                           unit="entities" if args.sequences else "rows",
                           target="moto-s3" if args.moto else ("object-storage" if args.out_uri else "local-folder"),
                           child_cpu_s=(cpu1.children_user + cpu1.children_system)
                           - (cpu0.children_user + cpu0.children_system))
                runs.append(rec)
                unit = "entities" if args.sequences else "rows"
                print(f"{engine:5s} shards={s}: {rec['rows_per_s']:,.0f} {unit}/s, wall {rec['wall_s']:.1f}s, "
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
