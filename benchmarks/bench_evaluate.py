"""Benchmark: evaluating a 50,000-row × 15-column table (train 40,000, holdout 10,000,
synthetic 40,000) must finish in under 2 minutes on a 2-core CPU. Writes the seconds per
section to benchmarks/results/evaluate.json (tests never assert wall-clock times).

The data is a seeded mixture with 8 numeric and 7 discrete columns (one sensitive, one
target); the synthetic table is independent draws from the same generator, the case
where every section does its full work (no early exits on copies).

    .venv/bin/python benchmarks/bench_evaluate.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

import reports
from synthkit.schema import Schema

N_TRAIN, N_HOLDOUT, N_SYNTHETIC = 40_000, 10_000, 40_000


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    comp = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    centres = np.random.default_rng(0).normal(size=(4, 8)) * 3  # the same clusters for every part
    num = centres[comp] + rng.normal(size=(n, 8))
    out = {f"num{i}": num[:, i] for i in range(6)}
    out["count0"] = np.clip(np.round(np.exp(num[:, 6] / 3)), 0, 200).astype(int)
    out["age"] = rng.integers(18, 95, size=n)
    out["region"] = np.array(["north", "south", "east", "west", "centre"])[(comp + rng.integers(0, 2, n)) % 5]
    out["sex"] = np.where(rng.random(n) < 0.5, "female", "male")
    out["plan"] = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    out["code"] = np.array([f"c{i:02d}" for i in range(30)])[rng.zipf(1.6, n) % 30]
    out["smoker"] = rng.random(n) < 0.2
    out["insured"] = rng.random(n) < 0.8
    out["outcome"] = (num[:, 0] + num[:, 1] + rng.normal(size=n) > 0)
    return pd.DataFrame(out)


SCHEMA = Schema.from_dict({
    "sensitive": ["sex"], "quasi_identifiers": ["age", "sex", "region"],
    "columns": {**{f"num{i}": "continuous" for i in range(6)}, "count0": {"kind": "integer", "bounds": [0, 200]},
                "age": {"kind": "integer", "bounds": [0, 120]},
                "region": {"kind": "categorical", "categories": ["north", "south", "east", "west", "centre"]},
                "sex": {"kind": "categorical", "categories": ["female", "male"]}, "plan": "categorical",
                "code": "categorical", "smoker": "boolean", "insured": "boolean", "outcome": "boolean"}})


def main() -> None:
    train, holdout, synthetic = table(N_TRAIN, 1), table(N_HOLDOUT, 2), table(N_SYNTHETIC, 3)
    start = time.perf_counter()
    report = reports.evaluate(real=train, synthetic=synthetic, holdout=holdout, schema=SCHEMA, target="outcome", seed=0)
    total = time.perf_counter() - start
    start = time.perf_counter()
    out_html = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_evaluate_report.html"
    reports.render_html(report, out_html)
    render_s = time.perf_counter() - start
    result = {
        "benchmark": "evaluate", "rows": {"train": N_TRAIN, "holdout": N_HOLDOUT, "synthetic": N_SYNTHETIC},
        "columns": train.shape[1], "total_seconds": round(total, 2), "limit_seconds": 120,
        "seconds_per_section": report.data["seconds_per_section"], "render_html_seconds": round(render_s, 2),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine()},
        "key_metrics": {m.id: m.value for m in report.metrics if m.id in (
            "fidelity.quality.overall", "fidelity.detection.auc", "privacy.dcr.train_closer_share",
            "privacy.membership_inference.auc", "diversity.prdc.coverage")},
    }
    path = Path(__file__).parent / "results" / "evaluate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
