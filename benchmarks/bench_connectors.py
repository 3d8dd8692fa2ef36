"""Connector benchmarks (issue: connectors). Numbers go to benchmarks/results/connectors.json;
nothing is asserted. Run:

    export SYNTHKIT_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)   # optional: PostgreSQL rows
    .venv/bin/python benchmarks/bench_connectors.py [--rows 1000000] [--memory-limit-gib 3]

- throughput: rows per second writing (`connectors.write_chunks`, 100,000-row chunks, as
  `synthkit generate` does) and reading (`connectors.read`) 1,000,000 rows x 20 columns
  (10 float, 5 integer, 4 text, 1 datetime) for CSV, Parquet, SQLite and PostgreSQL.
- bounded memory: a child process limits its private memory (RLIMIT_DATA: heap and
  anonymous mappings) to the given size, then streams a CSV LARGER than that limit with
  `connectors.iter_batches`; it reports the rows seen, its peak anonymous resident memory
  (sampled per batch) and ru_maxrss (which also counts pages of the memory-mapped file,
  page cache the kernel can drop). RLIMIT_AS cannot be used: polars maps the whole file
  into the address space. (The limit includes the ~450 MB that importing synthkit costs.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import connectors  # noqa: E402

OUT = Path(__file__).parent / "results" / "connectors.json"
CHUNK = 100_000


def twenty_columns(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {f"x{i}": rng.normal(i, 1 + i, n) for i in range(10)}
    cols |= {f"k{i}": rng.poisson(3 + i, n) for i in range(5)}
    cols |= {f"c{i}": rng.choice([f"value_{j}" for j in range(3 + i)], n) for i in range(4)}
    cols["t"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s")
    return pd.DataFrame(cols)


def _chunks(frame: pd.DataFrame):
    for i in range(0, len(frame), CHUNK):
        yield frame.iloc[i:i + CHUNK]


def throughput(frame: pd.DataFrame, work: Path) -> dict:
    targets = {"csv": (str(work / "t.csv"), None), "parquet": (str(work / "t.parquet"), None),
               "sqlite": (f"sqlite:///{work / 't.db'}", "bench")}
    pg = os.environ.get("SYNTHKIT_TEST_POSTGRES_URL")
    if pg:
        targets["postgresql"] = (pg, "bench_connectors")
    out = {}
    n = len(frame)
    for kind, (uri, table) in targets.items():
        t0 = time.perf_counter()
        connectors.write_chunks(_chunks(frame), uri, table=table, overwrite=True)
        write_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = connectors.read(uri, table=table)
        read_s = time.perf_counter() - t0
        assert len(back) == n
        out[kind] = {"rows": n, "columns": frame.shape[1], "write_s": round(write_s, 3),
                     "write_rows_per_s": round(n / write_s), "read_s": round(read_s, 3),
                     "read_rows_per_s": round(n / read_s)}
        if kind in ("csv", "parquet"):
            out[kind]["file_mb"] = round(Path(uri).stat().st_size / 2**20, 1)
        print(kind, out[kind], flush=True)
    if pg:
        import adbc_driver_postgresql.dbapi as driver
        with driver.connect(pg) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_connectors")
            conn.commit()
    else:
        out["postgresql"] = {"skipped": "SYNTHKIT_TEST_POSTGRES_URL not set"}
    return out


_CHILD = r"""
import json, resource, sys, time
limit = int(sys.argv[2])
# RLIMIT_DATA bounds the process's private memory (heap and anonymous mappings); the CSV
# itself is memory-mapped read-only by polars, which is page cache, not process memory
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
import connectors

def anon_mib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")

t0 = time.perf_counter()
rows, total, peak_anon = 0, 0.0, anon_mib()
for batch in connectors.iter_batches(sys.argv[1], batch_size=100_000):
    rows += len(batch)
    total += float(batch["x0"].sum())
    peak_anon = max(peak_anon, anon_mib())
seconds = time.perf_counter() - t0
print(json.dumps({"rows": rows, "seconds": seconds, "peak_anon_rss_mib": peak_anon,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bounded_memory(frame: pd.DataFrame, work: Path, limit_gib: float) -> dict:
    limit = int(limit_gib * 2**30)
    one = work / "one.csv"
    connectors.write(frame, one, overwrite=True)
    header, _, body = one.read_bytes().partition(b"\n")
    big = work / "big.csv"
    copies = int(limit // len(body)) + 2
    with open(big, "wb") as f:
        f.write(header + b"\n")
        for _ in range(copies):
            f.write(body)
    size = big.stat().st_size
    result = subprocess.run([sys.executable, "-c", _CHILD, str(big), str(limit)], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else f"exit {result.returncode}",
                "limit_mib": limit / 2**20, "file_mib": size / 2**20}
    info = json.loads(result.stdout.strip().splitlines()[-1])
    out = {"data_limit_mib": round(limit / 2**20), "file_mib": round(size / 2**20),
           "rows": info["rows"], "seconds": round(info["seconds"], 2),
           "rows_per_s": round(info["rows"] / info["seconds"]),
           "peak_anon_rss_mib": round(info["peak_anon_rss_mib"]),
           "peak_rss_mib_including_mapped_file": round(info["peak_rss_mib"])}
    print("bounded memory", out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-limit-gib", type=float, default=1.5)
    args = parser.parse_args()
    frame = twenty_columns(args.rows)
    work = Path(tempfile.mkdtemp(prefix="synthkit-bench-"))
    try:
        results = {
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "throughput": throughput(frame, work),
            "bounded_memory_csv": bounded_memory(frame, work, args.memory_limit_gib),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["bench_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
