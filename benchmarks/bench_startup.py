"""How long a user waits for an argument, path or option error (issue 17). Numbers go to
benchmarks/results/startup.json; nothing is asserted. Run:

    .venv/bin/python benchmarks/bench_startup.py [--runs 5] [--source DIR] [--label after]
    .venv/bin/python benchmarks/bench_startup.py --runs 3 --baseline DIR   # interleaved before/after

Each case runs the CLI in a fresh subprocess (what a user's shell does, with `-X importtime`)
and times it from start to exit; the median of `--runs` runs is reported with the range,
the child's CPU time (user + system: what a loaded machine cannot inflate much), the exit
code, whether the process imported torch and which of pandas, polars and pyarrow it imported
(a column-name error on a CSV needs none of them: connectors.csvhead), numpy and pydantic
(typer converts values through pydantic unless synthkit.cli's standard-library conversion
does), and scipy (what the
bundle manifest's full validation loads through synthkit.transforms). `--bundle DIR` (a
table bundle) adds generate's --out errors (exists, .xlsx, /proc/nope) and evaluate
--target nope. `--source DIR` puts
another checkout first on PYTHONPATH (e.g. `git archive <commit> | tar -x -C DIR`) to
measure the code before a change on the same machine in the same session; results are
merged into the JSON under `--label`. `--baseline DIR` runs DIR and this checkout in turn for
every run of every case (labels "before" and "after", or `--baseline-label` and `--label`), so
both see the same load on a shared machine:

    .venv/bin/python benchmarks/bench_startup.py --runs 5 --only unknown --baseline DIR \
        --baseline-label before_header_only --label after_header_only
"""

from __future__ import annotations

import argparse
import csv
import resource
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


def cases(tmp: Path, bundle: Path | None = None) -> dict[str, list[str]]:
    data = tmp / "small.csv"
    with data.open("w", newline="") as f:  # public, made-up numbers
        w = csv.writer(f)
        w.writerow(["id", "t", "x", "y"])
        for i in range(200):
            w.writerow([i // 4, i % 4, i * 0.5, "a" if i % 3 else "b"])
    taken = tmp / "taken"
    taken.mkdir(exist_ok=True)
    (taken / "manifest.json").write_text("{}")
    wide = tmp / "wide-latin1.csv"  # a larger file in another encoding: the whole read transcodes all of it
    with wide.open("w", newline="", encoding="latin-1") as f:
        w = csv.writer(f)
        w.writerow(["id", "größe", "x", "y"])
        for i in range(100_000):
            w.writerow([i, i % 200, i * 0.25, "ä" if i % 3 else "b"])
    import pandas as pd  # the bench's own process: writes the Parquet and JSON-lines copies

    frame = pd.read_csv(data)
    frame.to_parquet(tmp / "small.parquet", index=False)
    frame.to_json(tmp / "small.jsonl", orient="records", lines=True)
    job = tmp / "bad.yaml"
    job.write_text("version: 1\nname: Bad Name\nsource: {uri: missing.csv}\nmodel: {name: dpctgn}\n")
    d = str(data)
    fit = ["fit", d, "--out", str(tmp / "m")]
    return {
        "fit missing.csv": ["fit", "missing.csv", "--epsilon", "1", "--out", str(tmp / "m")],
        "fit --epsilon 0": fit + ["--epsilon", "0"],
        "fit --delta 2": fit + ["--epsilon", "1", "--delta", "2"],
        "fit --model misspelled": fit + ["--epsilon", "1", "--model", "dpctgn"],
        "fit unknown option": fit + ["--epsilon", "1", "--bogus"],
        "fit --entity-key unknown": fit + ["--epsilon", "1", "--entity-key", "nope"],
        "fit --target unknown": fit + ["--epsilon", "1", "--target", "nope"],
        "fit --target unknown (100k rows, latin-1)": ["fit", str(wide), "--encoding", "latin-1", "--out",
                                                      str(tmp / "m"), "--epsilon", "1", "--target", "groesse"],
        "fit --target unknown (parquet)": ["fit", str(tmp / "small.parquet"), "--out", str(tmp / "m"),
                                           "--epsilon", "1", "--target", "nope"],
        "fit --target unknown (jsonl)": ["fit", str(tmp / "small.jsonl"), "--out", str(tmp / "m"),
                                         "--epsilon", "1", "--target", "nope"],
        "fit --sequence-index unknown": fit + ["--epsilon", "1", "--model", "dphmm", "--entity-key", "id",
                                               "--sequence-index", "nope"],
        "fit --out exists": ["fit", d, "--epsilon", "1", "--out", str(taken)],
        "fit --epochs 0": fit + ["--epsilon", "1", "--epochs", "0"],
        "fit --threads 0": fit + ["--epsilon", "1", "--threads", "0"],
        "fit --holdout 1.5": fit + ["--epsilon", "1", "--holdout", "1.5"],
        "fit --holdout 1.5 (100k rows, latin-1)": ["fit", str(wide), "--encoding", "latin-1", "--out",
                                                   str(tmp / "m"), "--epsilon", "1", "--holdout", "1.5"],
        "fit --schema missing.yaml": fit + ["--epsilon", "1", "--schema", str(tmp / "missing.yaml")],
        "generate missing bundle": ["generate", str(tmp / "nobundle"), "--rows", "10", "--out", str(tmp / "s.csv")],
        "evaluate missing bundle": ["evaluate", str(tmp / "nobundle"), "--real", d, "--synthetic", d,
                                    "--out", str(tmp / "rep")],
        "audit --epsilon 0": ["audit", d, "--epsilon", "0", "--out", str(tmp / "aud")],
        "audit --entity-key unknown": ["audit", d, "--epsilon", "1", "--entity-key", "nope", "--out",
                                       str(tmp / "aud")],
        "run missing.yaml": ["run", str(tmp / "missing.yaml")],
        "run invalid job": ["run", str(job)],
        "fit --out /proc/x/m (folder cannot be made)": ["fit", d, "--epsilon", "1", "--out", "/proc/x/m"],
        **({} if bundle is None else bundle_cases(tmp, bundle, d)),
        "schema infer missing.csv": ["schema", "infer", "missing.csv", "--out", str(tmp / "s.yaml")],
        "schema infer --entity-key unknown": ["schema", "infer", d, "--entity-key", "nope",
                                              "--out", str(tmp / "s.yaml")],
    }


def bundle_cases(tmp: Path, bundle: Path, data: str) -> dict[str, list[str]]:
    """generate/evaluate errors that need a real bundle (--bundle: any table bundle whose
    schema has no column 'nope', e.g. one written by `synthkit fit small.csv`)."""
    existing = tmp / "existing.csv"
    existing.write_text("x\n1\n")
    b = str(bundle)
    return {
        "generate --out existing.csv": ["generate", b, "--rows", "10", "--out", str(existing)],
        "generate --out x.xlsx": ["generate", b, "--rows", "10", "--out", str(tmp / "x.xlsx")],
        "generate --out /proc/nope/x.csv": ["generate", b, "--rows", "10", "--out", "/proc/nope/x.csv"],
        "generate --entities (a table bundle)": ["generate", b, "--entities", "5", "--out", str(tmp / "seq")],
        "evaluate --target nope": ["evaluate", b, "--real", data, "--synthetic", data, "--target", "nope",
                                   "--out", str(tmp / "rep")],
    }


HEAVY = ("numpy", "pandas", "polars", "pyarrow", "pydantic", "scipy")


def run_once(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int, str, bool, list[str]]:
    """(wall s, CPU s, exit code, last stderr line, torch imported, which of HEAVY were imported)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", ENTRY, *args], env=env, cwd=cwd,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = proc.stderr.splitlines()
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in lines if ln.startswith("import time:")}
    said = [ln for ln in lines if ln.strip() and not ln.startswith("import time:")]
    return elapsed, cpu, proc.returncode, said[-1] if said else "", "torch" in imported, [m for m in HEAVY
                                                                                          if m in imported]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--source", type=Path, default=None, help="checkout to measure instead of this one")
    ap.add_argument("--label", default="after")
    ap.add_argument("--only", default=None, help="run only the cases whose name contains this")
    ap.add_argument("--baseline", type=Path, default=None, help="checkout to interleave with this one")
    ap.add_argument("--baseline-label", default="before", help="label of the --baseline runs")
    ap.add_argument("--bundle", type=Path, default=None,
                    help="a table model bundle: adds the generate/evaluate --out and --target cases")
    a = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    trees = ({a.baseline_label: a.baseline.resolve(), a.label: here} if a.baseline is not None
             else {a.label: (a.source or here).resolve()})
    envs = {}
    for label, root in trees.items():
        env = dict(os.environ, COLUMNS="200", PYTHONPATH=str(root))
        for name in ("SYNTHKIT_DEBUG", "SYNTHKIT_THREADS"):
            env.pop(name, None)
        envs[label] = env
    results: dict[str, dict[str, dict[str, object]]] = {label: {} for label in trees}
    loads = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, args in cases(tmp, a.bundle.resolve() if a.bundle else None).items():
            if a.only and a.only not in name:
                continue
            times: dict[str, list[float]] = {label: [] for label in trees}
            cpus: dict[str, list[float]] = {label: [] for label in trees}
            codes: dict[str, set[int]] = {label: set() for label in trees}
            torch: dict[str, bool] = {label: False for label in trees}
            heavy: dict[str, set[str]] = {label: set() for label in trees}
            last: dict[str, str] = {}
            for _ in range(a.runs):
                loads.append(os.getloadavg()[0])
                for label in trees:  # in turn, so that each sees the same load
                    elapsed, cpu, code, last[label], loaded, others = run_once(args, envs[label], tmp)
                    times[label].append(elapsed)
                    cpus[label].append(cpu)
                    codes[label].add(code)
                    torch[label] |= loaded
                    heavy[label] |= set(others)
            for label in trees:
                r = {"median_s": round(statistics.median(times[label]), 3), "min_s": round(min(times[label]), 3),
                     "max_s": round(max(times[label]), 3), "cpu_median_s": round(statistics.median(cpus[label]), 3),
                     "exit_codes": sorted(codes[label]), "imports_torch": torch[label],
                     "imports": sorted(heavy[label]), "message": last[label][:300]}
                results[label][name] = r
                print(f"{label:7s} {name:36s} {r['median_s']:6.2f} s  cpu {r['cpu_median_s']:5.2f} s  "
                      f"rc={r['exit_codes']}  torch={r['imports_torch']}  {','.join(r['imports']) or '-'}  "
                      f"{last[label][:80]}", flush=True)
    doc = json.loads(OUT.read_text()) if OUT.exists() else {}
    for label, root in trees.items():
        if a.only and label in doc:  # a partial rerun updates its cases only
            doc[label]["cases"].update(results[label])
            doc[label].setdefault("rerun", []).append(
                {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cases": sorted(results[label]),
                 "load_avg_1m_median": round(statistics.median(loads), 2) if loads else None})
            continue
        doc[label] = {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": str(root),
                      "runs": a.runs, "interleaved": a.baseline is not None, "cpus": os.cpu_count(),
                      "load_avg_1m_median": round(statistics.median(loads), 2) if loads else None,
                      "python": platform.python_version(), "cases": results[label]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT} {list(trees)}")


if __name__ == "__main__":
    main()
