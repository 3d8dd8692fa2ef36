"""`synthkit releases list` and `releases audit` on a registry of many runs: wall time, SQL
statements run and files read (hashed). Numbers go to benchmarks/results/releases_list.json
under a label; nothing is asserted. Run:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_releases_list.py --label after [--runs 200]

To measure other code (e.g. the commit before a change), extract it and point PYTHONPATH at
it while running THIS file: `git archive REV synthkit reports policies tests connectors app |
tar -x -C /tmp/old && PYTHONPATH=/tmp/old python benchmarks/bench_releases_list.py --label
before`. The registry is built once (`--work`, reused when it holds the asked number of
runs), so before and after read the same registry: a third of the runs released after a
signed approval (each release folder: synthetic data, ledger, schema, data card, manifest),
a third pending review, a third rejected by the gate. The runs are staged the way the tests
stage them (tests/test_release.py `stage_run`), with a small synthetic file and report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "releases_list.json"


def build(work: Path, n_runs: int) -> tuple[Path, Path]:
    """The registry and the reviewers file under `work` (built once per size)."""
    import yaml

    from reports.registry import Registry
    from test_gate import COPY, make_report
    from test_release import CONFIG, REVIEWERS, approve, stage_run

    reg_path, reviewers = work / "registry.db", work / "reviewers.yaml"
    done = work / f"built-{n_runs}"
    if done.is_file():
        return reg_path, reviewers
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    reviewers.write_text(yaml.safe_dump(REVIEWERS))
    reg = Registry(reg_path)
    t0 = time.perf_counter()
    for i in range(n_runs):
        kind = i % 3
        report = make_report(COPY) if kind == 2 else make_report()  # an exact copy fails the gate
        run_id = stage_run(reg, work, key=f"run-{i}", report=report, run_by="alice")
        if kind == 0:
            approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy")
        if (i + 1) % 50 == 0:
            print(f"built {i + 1}/{n_runs} runs ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    reg.close()
    done.write_text("ok")
    return reg_path, reviewers


class Counter:
    """Counts SQL statements (an engine event) and SHA-256 file reads (wrapping the
    hashing function reports.release calls) during one command."""

    def __init__(self) -> None:
        import sqlalchemy as sa
        from sqlalchemy import event

        import reports.release as rel
        self.sql = 0
        self.hashed = 0
        event.listen(sa.engine.Engine, "before_cursor_execute", self._on_sql)
        original = rel.sha256_file

        def counted(path):
            self.hashed += 1
            return original(path)
        rel.sha256_file = counted

    def _on_sql(self, *_args, **_kw) -> None:
        self.sql += 1

    def reset(self) -> None:
        self.sql = self.hashed = 0


def measure(reg_path: Path, reviewers: Path, repeats: int) -> dict:
    from typer.testing import CliRunner

    from synthkit.cli import app
    runner = CliRunner()
    counter = Counter()
    out: dict = {}
    for name, args in (("list", ["releases", "list", "--json"]), ("list_table", ["releases", "list"]),
                       ("audit", ["releases", "audit"])):
        times, outputs = [], set()
        for _ in range(repeats):
            counter.reset()
            t0 = time.perf_counter()
            r = runner.invoke(app, [*args, "--registry", str(reg_path), "--reviewers", str(reviewers)])
            times.append(time.perf_counter() - t0)
            outputs.add(r.output)
            if r.exit_code != 0:
                raise SystemExit(f"{name} failed (exit {r.exit_code}): {r.output[-2000:]}")
        out[name] = {"seconds_median": round(statistics.median(times), 3), "seconds": [round(t, 3) for t in times],
                     "sql_statements": counter.sql, "files_hashed": counter.hashed,
                     "output_sha256": __import__("hashlib").sha256("".join(sorted(outputs)).encode()).hexdigest(),
                     "distinct_outputs": len(outputs)}
        print(f"{name}: {out[name]['seconds_median']} s, {counter.sql} SQL statements, {counter.hashed} files "
              "hashed", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True, help="e.g. before / after")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/synthkit-bench-releases"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))  # the tests' staging helpers, from THIS checkout
    os.environ.pop("SYNTHKIT_REVIEWERS", None)
    reg_path, reviewers = build(args.work / str(args.runs), args.runs)
    import reports
    result = {"label": args.label, "code": str(Path(reports.__file__).resolve().parents[1]), "runs": args.runs,
              "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": platform.node(),
              "cpus": os.cpu_count(), **measure(reg_path, reviewers, args.repeats)}
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results[args.label] = result
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
