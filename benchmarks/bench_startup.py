"""How long a user waits for an argument, path or option error (issue 17). Numbers go to
benchmarks/results/startup.json; nothing is asserted. Run:

    .venv/bin/python benchmarks/bench_startup.py [--runs 5] [--source DIR] [--label after]

Each case runs the CLI in a fresh subprocess (what a user's shell does) and times it from
start to exit; the median of `--runs` runs is reported with the range, the exit code and
whether the process imported torch (`-X importtime` on one extra run). `--source DIR` puts
another checkout first on PYTHONPATH (e.g. `git archive <commit> | tar -x -C DIR`) to
measure the code before a change on the same machine in the same session; results are
merged into the JSON under `--label`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "startup.json"
ENTRY = "import sys; from synthkit.cli import main; sys.argv[0] = 'synthkit'; main()"


def cases(tmp: Path) -> dict[str, list[str]]:
    data = tmp / "small.csv"
    with data.open("w", newline="") as f:  # public, made-up numbers
        w = csv.writer(f)
        w.writerow(["id", "t", "x", "y"])
        for i in range(200):
            w.writerow([i // 4, i % 4, i * 0.5, "a" if i % 3 else "b"])
    taken = tmp / "taken"
    taken.mkdir(exist_ok=True)
    (taken / "manifest.json").write_text("{}")
    job = tmp / "bad.yaml"
    job.write_text("version: 1\nname: Bad Name\nsource: {uri: missing.csv}\nmodel: {name: dpctgn}\n")
    d = str(data)
    fit = ["fit", d, "--out", str(tmp / "m")]
    return {
        "fit missing.csv": ["fit", "missing.csv", "--epsilon", "1", "--out", str(tmp / "m")],
        "fit --epsilon 0": fit + ["--epsilon", "0"],
        "fit --delta 2": fit + ["--epsilon", "1", "--delta", "2"],
        "fit --model misspelled": fit + ["--epsilon", "1", "--model", "dpctgn"],
        "fit --entity-key unknown": fit + ["--epsilon", "1", "--entity-key", "nope"],
        "fit --target unknown": fit + ["--epsilon", "1", "--target", "nope"],
        "fit --sequence-index unknown": fit + ["--epsilon", "1", "--model", "dphmm", "--entity-key", "id",
                                               "--sequence-index", "nope"],
        "fit --out exists": ["fit", d, "--epsilon", "1", "--out", str(taken)],
        "fit --epochs 0": fit + ["--epsilon", "1", "--epochs", "0"],
        "fit --threads 0": fit + ["--epsilon", "1", "--threads", "0"],
        "generate missing bundle": ["generate", str(tmp / "nobundle"), "--rows", "10", "--out", str(tmp / "s.csv")],
        "evaluate missing bundle": ["evaluate", str(tmp / "nobundle"), "--real", d, "--synthetic", d,
                                    "--out", str(tmp / "rep")],
        "audit --epsilon 0": ["audit", d, "--epsilon", "0", "--out", str(tmp / "aud")],
        "audit --entity-key unknown": ["audit", d, "--epsilon", "1", "--entity-key", "nope", "--out",
                                       str(tmp / "aud")],
        "run missing.yaml": ["run", str(tmp / "missing.yaml")],
        "run invalid job": ["run", str(job)],
        "schema infer missing.csv": ["schema", "infer", "missing.csv", "--out", str(tmp / "s.yaml")],
        "schema infer --entity-key unknown": ["schema", "infer", d, "--entity-key", "nope",
                                              "--out", str(tmp / "s.yaml")],
    }


def run_once(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", ENTRY, *args], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return elapsed, proc.returncode, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def imports_torch(args: list[str], env: dict[str, str], cwd: Path) -> bool:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", ENTRY, *args], env=env, cwd=cwd,
                          capture_output=True, text=True)
    return any(line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == "torch"
               for line in proc.stderr.splitlines())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--source", type=Path, default=None, help="checkout to measure instead of this one")
    ap.add_argument("--label", default="after")
    ap.add_argument("--only", default=None, help="run only the cases whose name contains this")
    a = ap.parse_args()
    env = dict(os.environ, COLUMNS="200", SYNTHKIT_DEBUG="")
    env.pop("SYNTHKIT_DEBUG")
    root = (a.source or Path(__file__).resolve().parents[1]).resolve()
    env["PYTHONPATH"] = str(root)
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, args in cases(tmp).items():
            if a.only and a.only not in name:
                continue
            times, codes, last = [], set(), ""
            for _ in range(a.runs):
                elapsed, code, last = run_once(args, env, tmp)
                times.append(elapsed)
                codes.add(code)
            results[name] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                             "max_s": round(max(times), 3), "exit_codes": sorted(codes),
                             "imports_torch": imports_torch(args, env, tmp), "message": last[:300]}
            print(f"{name:36s} {results[name]['median_s']:6.2f} s  rc={sorted(codes)}  "
                  f"torch={results[name]['imports_torch']}  {last[:100]}", flush=True)
    doc = json.loads(OUT.read_text()) if OUT.exists() else {}
    doc[a.label] = {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": str(root),
                    "runs": a.runs, "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "cases": results}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT} [{a.label}]")


if __name__ == "__main__":
    main()
