"""Benchmark: the DPHMM calibration's run mover (synthkit.models.hmm.margins._move_runs) on
one 500k-row chunk, against the per-run loop it replaced (kept as the reference in
tests/test_hmm_move_runs.py). The chunk: entities of 1 to 8 events, codes persisting with
probability 0.8, a target margin drawn from a Dirichlet (many runs move). Seconds per
column (median of --repeats), written to benchmarks/results/hmm_margins.json under
"move_runs/<label>"; nothing is asserted. Run:
    SYNTHKIT_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_hmm_move_runs.py --label s8 [--rows 500000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from test_hmm_move_runs import _loop  # noqa: E402  (the loop before vectorisation, the reference)

from synthkit.models.hmm.margins import _move_runs, _targets  # noqa: E402

OUT = HERE / "results" / "hmm_margins.json"


def chunk(rows: int, n_codes: int, seed: int):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=rows // 4 + 1)
    lengths = lengths[np.cumsum(lengths) <= rows]
    m = int(lengths.sum())
    starts = np.zeros(m, dtype=bool)
    starts[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True
    fresh = rng.integers(0, n_codes, size=m)
    stay = (rng.random(m) < 0.8) & ~starts
    idx = np.where(stay, 0, np.arange(m))
    np.maximum.accumulate(idx, out=idx)  # a row that stays copies the last fresh row of its run
    codes = fresh[idx].astype(np.int64)
    target = _targets(rng.dirichlet(np.ones(n_codes)), m)
    have = np.bincount(codes, minlength=n_codes)
    return codes, np.clip(have - target, 0, None), np.clip(target - have, 0, None), starts


def timed(fn, args, seed: int) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn(*args, np.random.default_rng(seed))
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", default="current")
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--codes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    loop_s, vec_s, same = [], [], True
    for r in range(args.repeats):
        data = chunk(args.rows, args.codes, r)
        t_loop, a = timed(_loop, data, r)
        t_vec, b = timed(_move_runs, data, r)
        loop_s.append(t_loop)
        vec_s.append(t_vec)
        same &= bool(np.array_equal(a, b))
    entry = {"rows": args.rows, "codes": args.codes, "repeats": args.repeats,
             "loop_s": round(float(np.median(loop_s)), 4), "vectorised_s": round(float(np.median(vec_s)), 4),
             "speedup": round(float(np.median(loop_s) / np.median(vec_s)), 1), "same_rows_moved": same,
             "threads": os.environ.get("SYNTHKIT_THREADS"), "machine": platform.platform(),
             "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results[f"move_runs/{args.label}"] = entry
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(entry))


if __name__ == "__main__":
    main()
