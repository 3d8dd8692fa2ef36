"""Preprocessing statistics over a Parquet dataset larger than one would load at once:
Ray Data streaming (synthkit.distributed.stats.ray_partials) against a one-process
streaming reference (pyarrow batches -> the same partial sums), with rows/s and peak
memory (the driver, and each Ray worker process).

    .venv/bin/python benchmarks/bench_ray_stats.py --gb 2 --data /tmp/bench_ray_stats

Generates synthetic Parquet (no private data) under --data, measures, writes
benchmarks/results/bench_ray_stats.json and deletes the data unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthkit.distributed import stats as st  # noqa: E402
from synthkit.schema import Column  # noqa: E402

ROWS_PER_FILE = 2_000_000
HEALTH = np.array(["excellent", "good", "average", "poor", "unknown", "very rare"])


def generate(folder: Path, gb: float, seed: int = 0) -> tuple[int, int]:
    """Files of ROWS_PER_FILE rows until the folder holds `gb` GB; returns (rows, bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = size = 0
    i = 0
    while size < gb * 1e9:
        n = ROWS_PER_FILE
        income = np.round(rng.lognormal(2.0, 1.0, n), 4)
        income[rng.random(n) < 0.2] = 0.0
        table = pa.table({
            "visits": rng.poisson(3.0, n).astype(np.int64),
            "income": pa.array(income, mask=rng.random(n) < 0.05),
            "health": HEALTH[np.minimum(rng.geometric(0.45, n) - 1, len(HEALTH) - 1)],
            "pid": rng.integers(0, 10**12, n),
            "amount": rng.normal(100.0, 30.0, n),
        })
        path = folder / f"part-{i:05d}.parquet"
        pq.write_table(table, path)
        rows += n
        size += path.stat().st_size
        i += 1
    return rows, size


def statistics() -> list:
    return [st.UnitCount(), st.CategoryCounts(column=Column(name="health", kind="categorical")),
            st.ValueHistogram(column=Column(name="visits", kind="integer", bounds=(0, 40)), bounds=(0.0, 40.0)),
            st.ValueHistogram(column=Column(name="income", kind="continuous", bounds=(0.0, 1000.0)),
                              bounds=(0.0, 1000.0))]


COLUMNS = ["health", "visits", "income"]


class RSSSampler:
    """Peak RSS (VmRSS from /proc) of every Ray worker process, sampled every 0.2 s. A
    worker's RSS counts the object-store pages it maps, so it over-states private memory."""

    def __init__(self) -> None:
        self.peak_workers: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if not cmd.startswith(b"ray::"):
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1]) * 1024
                            self.peak_workers[int(pid)] = max(self.peak_workers.get(int(pid), 0), rss)
                except OSError:
                    continue
            time.sleep(0.2)

    def __enter__(self) -> RSSSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def one_process(folder: Path) -> dict:
    """The reference: stream record batches with pyarrow, partial sums per batch, merge."""
    stats = statistics()
    t0 = time.perf_counter()
    merged = None
    rng = np.random.default_rng(0)
    for batch in pds.dataset(folder, format="parquet").to_batches(columns=COLUMNS, batch_size=1_000_000):
        parts = st.block_partials(batch.to_pandas(), stats, entity_key=None, k=1, rng=rng)
        merged = parts if merged is None else [st.merge(a, b) for a, b in zip(merged, parts)]
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "rows": merged[0].n_rows, "merged": merged}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one-process":
        ref = one_process(Path(sys.argv[2]))
        print(json.dumps({"wall_s": ref["wall_s"], "rows": ref["rows"],
                          "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--data", type=Path, default=Path("/tmp/bench_ray_stats"))
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_ray_stats.json")
    args = ap.parse_args()
    out: dict = {"machine": f"{os.cpu_count()} cores, shared (load average {os.getloadavg()[0]:.1f} at start)",
                 "num_cpus": args.num_cpus}
    try:
        t0 = time.perf_counter()
        rows, size = generate(args.data, args.gb)
        out.update(rows=rows, parquet_bytes=size, in_memory_bytes_estimate=rows * (8 + 8 + 8 + 8 + 8 + 60),
                   generate_s=time.perf_counter() - t0)
        print(f"generated {rows:,} rows, {size / 1e9:.2f} GB of Parquet", flush=True)

        # the reference in its own process, so that its peak memory is its own
        import subprocess

        proc = subprocess.run([sys.executable, __file__, "--one-process", str(args.data)], check=True,
                              capture_output=True, text=True)
        out["one_process"] = json.loads(proc.stdout.strip().splitlines()[-1])
        out["one_process"]["rows_per_s"] = rows / out["one_process"]["wall_s"]
        print("one process:", out["one_process"], flush=True)

        t0 = time.perf_counter()
        st.init_ray(num_cpus=args.num_cpus)
        out["ray_init_s"] = time.perf_counter() - t0
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        with RSSSampler() as sampler:
            t0 = time.perf_counter()
            merged = st.ray_partials(str(args.data), statistics(), columns=COLUMNS)
            wall = time.perf_counter() - t0
        workers = sorted(sampler.peak_workers.values())
        out["ray"] = {"wall_s": wall, "rows_per_s": rows / wall,
                      "driver_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "driver_peak_rss_before_bytes": rss_before,
                      "worker_processes": len(workers), "worker_peak_rss_max_bytes": max(workers, default=0),
                      "worker_peak_rss_median_bytes": int(np.median(workers)) if workers else 0}
        print("ray:", out["ray"], flush=True)
        ref = one_process(args.data)["merged"]  # (after the Ray peak was read)
        same = all(np.array_equal(a.counts, b.counts) if isinstance(a, st.HistogramPartial) else a == b
                   for a, b in zip(merged, ref))
        out["ray_equals_one_process"] = bool(same)
        import ray

        ray.shutdown()
    finally:
        if not args.keep:
            shutil.rmtree(args.data, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
