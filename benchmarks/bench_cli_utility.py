"""Benchmark: utility of the user's exact path, the CLI with its defaults.

For each table (an 80/20 split, seed 0, written to CSV files in a temporary folder):

    synthkit fit train.csv --out BUNDLE --model M --epsilon E [--target T]
    synthkit generate BUNDLE --out syn.csv --rows <rows of train.csv>

with nothing else: no --schema, default epochs, batch size, threads and device. The CSV
files are read back with pandas (as a user scoring the output would) and scored:
- tstr / trtr: sklearn HistGradientBoostingClassifier trained on synthetic / real train
  rows, ROC AUC on the real holdout (bench_utility.auc);
- quality: sdmetrics QualityReport (all column pairs) overall score, with its two
  properties (column shapes, column pair trends), the worst shapes and pairs;
- dcr_share: sdmetrics DCROverfittingProtection's share of synthetic rows closer to a train
  row than to a holdout row (ideal 0.50). The metric's num_rows_subsample draws the same
  number of rows from synthetic, train and holdout (so 0.50 is the ideal even though train
  is 4x the holdout); --dcr-rows rows, --dcr-iterations draws averaged. That subsampling
  also hides copies (a copied train row is rarely in the 2,000 train rows drawn), so
- dcr_share_equal_reference: the same distance (sdmetrics' normalisation, numpy) with train
  subsampled to the holdout's size and the whole holdout kept, --dcr-rows synthetic rows;
  --controls measures both on a bootstrap copy of train and on independently shuffled
  columns (dcr_controls in the JSON);
- fit_s, generate_s (wall seconds of the two commands on this machine, whatever else runs);
- the kinds the fit decided per column (read from the bundle's manifest) and the fit's
  log lines that mention kinds (none at the default verbosity: the decided kinds are
  logged at INFO, shown with -v, which this benchmark does not pass); columns that came back empty; columns whose pandas dtype
  differs between the real and synthetic CSV (a real numeric column written back as text).

sdmetrics metadata: a column numeric in the real CSV with more than 10 distinct values is
"numerical", every other column "categorical" (Adult's six numeric columns, education-num
with 16 values included, are numerical by this rule; 0/1 flags and short ordinal codes are
categorical).

Writes benchmarks/results/cli_utility.json (tests never assert these numbers).

    nice -n 10 .venv/bin/python benchmarks/bench_cli_utility.py --runs tv16:dptvae:1:target,tv16:dpctgan:1:target
        run spec TABLE:MODEL:EPSILON:(target|notarget); EPSILON "none" fits with --no-privacy
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
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_utility import auc, load, split  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "cli_utility.json"
SYNTHKIT = str(Path(sys.executable).parent / "synthkit")
DEFAULT_RUNS = ("tv16:dptvae:1:target,tv16:dpctgan:1:target,tv16:dptvae:3:target,tv16:dptvae:1:notarget,"
                "gss:dptvae:1:target,tv16:dpctgan:3:target,tv16:dptvae:none:target")


def metadata(real: pd.DataFrame) -> dict:
    cols = {}
    for c in real.columns:
        numeric = pd.api.types.is_numeric_dtype(real[c]) and real[c].nunique() > 10
        cols[c] = {"sdtype": "numerical" if numeric else "categorical"}
    return {"columns": cols}


def align(syn: pd.DataFrame, real: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The synthetic frame with each column coerced to the real CSV's kind of dtype where the
    two differ (numeric vs text); returns the names that needed it (a finding in itself)."""
    syn = syn.copy()
    mismatched = []
    for c in real.columns:
        if c not in syn.columns:
            continue
        r_num, s_num = pd.api.types.is_numeric_dtype(real[c]), pd.api.types.is_numeric_dtype(syn[c])
        if r_num and not s_num:
            mismatched.append(c)
            text = syn[c].astype("string").str.strip().str.lower()
            syn[c] = pd.to_numeric(text.replace({"true": "1", "false": "0", "yes": "1", "no": "0"}),
                                   errors="coerce")
        elif s_num and not r_num:
            mismatched.append(c)
            syn[c] = syn[c].astype("string").astype(object)
        elif r_num and s_num and real[c].dtype.kind == "f" and syn[c].dtype.kind != "f":
            syn[c] = syn[c].astype(float)  # 1.0 written back as 1: the same value, not a mismatch
        elif not r_num and real[c].dtype == object and syn[c].dtype == bool:
            mismatched.append(c)
            syn[c] = syn[c].astype(str)
    return syn, mismatched


def quality_report(real: pd.DataFrame, syn: pd.DataFrame, meta: dict) -> dict:
    """sdmetrics' QualityReport over ALL column pairs (its thresholds set to 0: since 0.2x the
    report scores only pairs whose real |correlation| > 0.5 or Cramer's V > 0.3 by default),
    and its default-threshold overall score next to it (quality_default_thresholds)."""
    from sdmetrics.reports.single_table import QualityReport  # the unified one wants multi-table metadata
    report = QualityReport()
    report.real_correlation_threshold = 0
    report.real_association_threshold = 0
    report.generate(real, syn, meta, verbose=False)
    shapes = report.get_details("Column Shapes").sort_values("Score")
    pairs = report.get_details("Column Pair Trends").sort_values("Score")
    props = report.get_properties().set_index("Property")["Score"]
    default = QualityReport()
    default.generate(real, syn, meta, verbose=False)
    d_props = default.get_properties().set_index("Property")["Score"]
    return {"quality": round(float(report.get_score()), 4),
            "column_shapes": round(float(props["Column Shapes"]), 4),
            "column_pair_trends": round(float(props["Column Pair Trends"]), 4),
            "n_pairs": int(pairs.Score.notna().sum()),
            "quality_default_thresholds": round(float(default.get_score()), 4),
            "column_pair_trends_default_thresholds": round(float(d_props["Column Pair Trends"]), 4),
            "worst_shapes": {r.Column: round(float(r.Score), 3) for r in shapes.head(6).itertuples()},
            "worst_pairs": {f"{r[1]}|{r[2]}": round(float(r.Score), 3)
                            for r in pairs[["Column 1", "Column 2", "Score"]].head(8).itertuples()}}


def dcr_share(train: pd.DataFrame, holdout: pd.DataFrame, syn: pd.DataFrame, meta: dict,
              rows: int, iterations: int) -> float:
    from sdmetrics.single_table import DCROverfittingProtection
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = DCROverfittingProtection.compute_breakdown(
            train, syn, holdout, meta, "t",
            num_rows_subsample=min(rows, len(holdout), len(syn)), num_iterations=iterations)
    return round(float(out["synthetic_data_percentages"]["closer_to_training"]), 4)


def _dcr(data: pd.DataFrame, ref: pd.DataFrame, meta: dict) -> np.ndarray:
    """Distance to the closest row of `ref` for each row of `data`, with sdmetrics'
    calculate_dcr normalisation (numerical: |difference| / the reference's range, capped at
    1, 1 when one side is missing, 0 when both are; categorical: 0 when equal, else 1; the
    mean over columns), vectorised with numpy instead of a pandas cross join."""
    cols = list(meta["columns"])
    best = np.full(len(data), np.inf)
    enc = []
    for c in cols:
        if meta["columns"][c]["sdtype"] == "numerical":
            a = pd.to_numeric(data[c], errors="coerce").to_numpy(float)
            b = pd.to_numeric(ref[c], errors="coerce").to_numpy(float)
            rng = np.nanmax(b) - np.nanmin(b)
            enc.append(("n", a, b, rng))
        else:
            codes = pd.factorize(pd.concat([data[c], ref[c]]).astype(str), use_na_sentinel=False)[0]
            enc.append(("c", codes[:len(data)], codes[len(data):], None))
    for start in range(0, len(data), 256):
        stop = min(start + 256, len(data))
        total = np.zeros((stop - start, len(ref)))
        for kind, a, b, rng in enc:
            x, y = a[start:stop, None], b[None, :]
            if kind == "c":
                total += x != y
            else:
                d = np.abs(x - y)
                d = (d > 0).astype(float) if rng == 0 else np.minimum(d / rng, 1.0)
                nx, ny = np.isnan(x), np.isnan(y)
                d = np.where(nx ^ ny, 1.0, np.where(nx & ny, 0.0, d))
                total += d
        best[start:stop] = total.min(axis=1) / len(cols)
    return best


def dcr_share_equal_reference(train: pd.DataFrame, holdout: pd.DataFrame, syn: pd.DataFrame, meta: dict,
                              rows: int, seed: int = 0) -> float:
    """Share of synthetic rows closer to a train row than to a holdout row, where train is
    subsampled to the holdout's size (so 0.50 is the ideal) and the whole holdout is kept;
    `rows` synthetic rows. Unlike num_rows_subsample, a copied train row is still found
    with probability len(holdout)/len(train) rather than rows/len(train)."""
    rng = np.random.default_rng(seed)
    t = train.iloc[rng.choice(len(train), size=min(len(holdout), len(train)), replace=False)]
    s = syn.iloc[rng.choice(len(syn), size=min(rows, len(syn)), replace=False)]
    return round(float(np.mean(_dcr(s, t, meta) < _dcr(s, holdout, meta))), 4)


def kinds_of(bundle: Path) -> dict[str, str]:
    """The kind the fit decided per column (the bundle's schema), booleans with the spelling
    they are written back in."""
    cols = json.loads((bundle / "manifest.json").read_text())["schema"]["columns"]
    return {name: c["kind"] + (f" {'/'.join(c['true_false'])}" if c.get("true_false") else "")
            for name, c in cols.items()}


def run_cli(args: list[str], log: Path) -> tuple[float, int]:
    """Runs one synthkit command; returns its wall seconds and exit code, and logs its CPU
    seconds (user + system; on a shared machine the wall time depends on the load)."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("a") as fh:
        rc = subprocess.run([SYNTHKIT, *args], stdout=fh, stderr=subprocess.STDOUT).returncode
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        fh.write(f"bench: {args[0]} cpu_s {cpu:.1f}\n")
    return time.perf_counter() - start, rc


def save(run: dict | None = None, control: tuple[str, dict] | None = None) -> None:
    keys = ("table", "model", "epsilon", "target_declared")
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs, controls = old.get("runs", []), old.get("dcr_controls", {})
    if run is not None:
        runs = [r for r in runs if any(r.get(k) != run[k] for k in keys)] + [run]
    if control is not None:
        controls[control[0]] = control[1]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores, shared",
                               "measured": time.strftime("%Y-%m-%d"), "dcr_controls": controls, "runs": runs},
                              indent=1))
    tmp.replace(RESULTS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=DEFAULT_RUNS)
    ap.add_argument("--dcr-rows", type=int, default=2000)
    ap.add_argument("--dcr-iterations", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="keep CSVs, bundles and logs in this folder")
    ap.add_argument("--no-score", action="store_true",
                    help="with --keep: only fit and generate (score later with --rescore)")
    ap.add_argument("--controls", action="store_true", help="also measure the DCR shares on two controls")
    ap.add_argument("--rescore", action="store_true",
                    help="with --keep: score a run's kept bundle and CSV again instead of fitting anew")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cli_utility_"))
    work.mkdir(parents=True, exist_ok=True)
    tables: dict[str, tuple] = {}
    for spec in args.runs.split(","):
        table, model, eps, declared = spec.split(":")
        if table not in tables:
            df, target, positive = load(table)
            train, holdout = split(df)
            train.to_csv(work / f"{table}_train.csv", index=False)
            holdout.to_csv(work / f"{table}_holdout.csv", index=False)
            train = pd.read_csv(work / f"{table}_train.csv")
            holdout = pd.read_csv(work / f"{table}_holdout.csv")
            tables[table] = (train, holdout, target, positive, metadata(train),
                             auc(train, holdout, target, positive))
            if args.controls:
                # the DCR measures on a positive control: a bootstrap copy of the train rows
                # (must read well above 0.50), and a negative one: train columns shuffled
                # independently (no row of train survives; about 0.50)
                meta, rng = tables[table][4], np.random.default_rng(1)
                copy = train.iloc[rng.choice(len(train), size=len(train))]
                shuffled = pd.DataFrame({c: train[c].to_numpy()[rng.permutation(len(train))] for c in train})
                save(control=(table, {
                    "copy_sdmetrics_subsample": dcr_share(train, holdout, copy, meta, args.dcr_rows, 1),
                    "copy_equal_reference": dcr_share_equal_reference(train, holdout, copy, meta, args.dcr_rows),
                    "shuffled_sdmetrics_subsample": dcr_share(train, holdout, shuffled, meta, args.dcr_rows, 1),
                    "shuffled_equal_reference": dcr_share_equal_reference(train, holdout, shuffled, meta,
                                                                          args.dcr_rows)}))
        train, holdout, target, positive, meta, trtr = tables[table]
        name = f"{table}_{model}_{eps}_{declared}"
        bundle, syn_csv, log = work / f"{name}.bundle", work / f"{name}.csv", work / f"{name}.log"
        timing = work / f"{name}.timing.json"
        fit = ["fit", str(work / f"{table}_train.csv"), "--out", str(bundle), "--model", model, "--overwrite"]
        fit += ["--no-privacy"] if eps == "none" else ["--epsilon", eps]
        fit += ["--target", target] if declared == "target" else []
        if args.rescore and timing.exists() and syn_csv.exists():
            fit_s, gen_s = json.loads(timing.read_text())
            rc = 0
        else:
            log.write_text("")
            fit_s, rc = run_cli(fit, log)
        run: dict = {"table": table, "n_train": len(train), "n_holdout": len(holdout), "model": model,
                     "epsilon": eps, "target_declared": declared == "target", "command": "synthkit " +
                     " ".join(fit).replace(str(work) + "/", ""), "fit_s": round(fit_s, 1), "trtr": round(trtr, 4)}
        if rc != 0:
            run["error"] = f"fit exit {rc}: " + log.read_text().strip().splitlines()[-1][:300]
            print(json.dumps(run), flush=True)
            save(run)
            continue
        if not (args.rescore and timing.exists() and syn_csv.exists()):
            gen_s, rc = run_cli(["generate", str(bundle), "--out", str(syn_csv), "--rows", str(len(train)),
                                 "--overwrite"], log)
            timing.write_text(json.dumps([fit_s, gen_s]))
        run["generate_s"] = round(gen_s, 1)
        if rc != 0:
            run["error"] = f"generate exit {rc}: " + log.read_text().strip().splitlines()[-1][:300]
            print(json.dumps(run), flush=True)
            save(run)
            continue
        if args.no_score:
            continue
        raw = pd.read_csv(syn_csv)
        syn, mismatched = align(raw, train)
        cpu = [ln.split()[-1] for ln in log.read_text().splitlines() if ln.startswith("bench: fit cpu_s")]
        run["fit_cpu_s"] = float(cpu[-1]) if cpu else None
        run["kinds"] = kinds_of(bundle)
        run["log_kind_lines"] = [ln.strip()[:400] for ln in log.read_text().splitlines() if "kind" in ln.lower()][:6]
        run["n_synthetic"] = len(syn)
        run["missing_columns"] = [c for c in train.columns if c not in syn.columns]
        run["empty_columns"] = [c for c in syn.columns if syn[c].isna().all()]
        run["dtype_mismatch"] = mismatched
        run["positive_share"] = {"train": round(float((train[target].astype(str) == positive).mean()), 4),
                                 "synthetic": round(float((syn[target].astype(str) == positive).mean()), 4)}
        run["tstr"] = round(auc(syn, holdout, target, positive), 4)
        run["ratio"] = round(run["tstr"] / trtr, 4)
        run.update(quality_report(train, syn[train.columns], meta))
        run["dcr_share"] = dcr_share(train, holdout, syn[train.columns], meta, args.dcr_rows, args.dcr_iterations)
        run["dcr_share_equal_reference"] = dcr_share_equal_reference(train, holdout, syn[train.columns], meta,
                                                                     args.dcr_rows)
        run["dcr_rows"], run["dcr_iterations"] = args.dcr_rows, args.dcr_iterations
        print(json.dumps(run), flush=True)
        save(run)


if __name__ == "__main__":
    main()
