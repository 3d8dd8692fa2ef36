"""Hostile-input benchmark (issue 16): the large fuzz corpus of `tests/fuzz_cases.py`, each
case in its own process with a timeout (60 s) and an address-space cap (RLIMIT_AS: the
parent's address space plus 4 GiB), classified in the issue's classes:

    clean_error    a synthkit error: exit code not 0, one line, no traceback
    exception      a Python exception reached the user (traceback or "internal error: <Type>")
    hang           past the timeout, or out of the memory cap
    silent_wrong   exit 0 although the input must be refused, or a success with wrong output,
                   or a forbidden side effect (a file created by a read, a table dropped)
    success        a legitimate success
    unclear_error  a refusal of more than one line (not clean; counted apart)

Counts go to benchmarks/results/fuzz.json under a label (one entry per label, so runs
before and after a change sit side by side), with every case that did not end as
expected. Nothing is asserted. Run:

    .venv/bin/python benchmarks/bench_fuzz.py --label after                # this tree
    .venv/bin/python benchmarks/bench_fuzz.py --label before --repo /tmp/old  # a worktree of an older commit
    .venv/bin/python benchmarks/bench_fuzz.py --small --only 'csv-'          # a subset

The corpus lives in tests/fuzz_cases.py; `--repo` only changes which synthkit runs it.
Each case runs in a child forked from a parent that has imported synthkit (its CLI,
models, connectors, reports and torch) from `--repo` but run nothing: the child sets its
limits, points stdout/stderr at a file and runs the typer app as `synthkit ARGS` would
(`python -m synthkit.cli`), so a case costs its own work, not ~3-15 s of imports on a
loaded machine. `--spawn` runs a fresh `python -m synthkit.cli` per case instead.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))
import fuzz_cases as fc  # noqa: E402

OUT = Path(__file__).parent / "results" / "fuzz.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="current")
    ap.add_argument("--repo", type=Path, default=HERE, help="the synthkit tree to run (cwd of each subprocess)")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--memory-gib", type=float, default=4.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="the tests' small corpus only")
    ap.add_argument("--only", default=None, help="only cases whose name contains this")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--spawn", action="store_true", help="a fresh `python -m synthkit.cli` per case (slower)")
    ap.add_argument("--debug", action="store_true",
                    help="rerun the selected cases with SYNTHKIT_DEBUG=1 and print where each exception was raised")
    args = ap.parse_args()

    repo = args.repo.resolve()
    cases = fc.small_corpus() if args.small else fc.large_corpus()
    if args.only:
        cases = [c for c in cases if args.only in c.name]
    root = Path(tempfile.mkdtemp(prefix="synthkit-fuzz-"))
    home = root / "home"
    home.mkdir()
    env = fc.subprocess_env(home)
    env["PYTHONPATH"] = str(repo)
    mem = int(args.memory_gib * (1 << 30))
    if args.debug:
        _debug(cases, root, repo, env, args.timeout)
        return
    if not args.spawn:
        os.environ.update(env)
        fc.preload(repo)

    def invoke(argv: list[str]) -> tuple[int, str]:
        code, out, _ = fc.run_subprocess(argv, cwd=repo, timeout=600, memory_bytes=None, env=env)
        return (-1 if code is None else code), out

    bases = fc.Bases(root / "bases", invoke)
    (root / "bases").mkdir()
    start = time.perf_counter()
    if any(c.fits for c in cases):
        bases.table()
        bases.sequence()
    base_s = time.perf_counter() - start

    def prepare(i: int, case: fc.Case) -> tuple[fc.Work, list[str] | None, str]:
        work = fc.Work(root / f"{i:04d}", bases)
        work.dir.mkdir()
        try:
            return work, case.build(work), ""
        except Exception as err:  # a builder bug is the benchmark's, not the product's
            return work, None, f"{type(err).__name__}: {err}"[:300]

    def record(case: fc.Case, work: fc.Work, cls: str, detail: str, code: int | None, seconds: float) -> dict:
        shutil.rmtree(work.dir, ignore_errors=True)
        r = {"name": case.name, "family": case.family, "expect": case.expect, "class": cls,
             "ok": case.passes(cls), "detail": detail, "exit_code": code, "seconds": round(seconds, 2)}
        mark = "ok " if r["ok"] else "BAD"
        print(f"{mark} {cls:<13} {r['seconds']:6.1f}s {case.name}: {detail[:150]}", flush=True)
        return r

    results: list[dict] = []
    if args.spawn:
        def run(i_case: tuple[int, fc.Case]) -> dict:
            i, case = i_case
            t0 = time.perf_counter()
            work, argv, err = prepare(i, case)
            if argv is None:
                return record(case, work, "builder_error", err, None, 0.0)
            code, out, timed_out = fc.run_subprocess(argv, cwd=repo, timeout=args.timeout, memory_bytes=mem,
                                                     env=env)
            cls, detail = fc.classify(case, work, code, out, timed_out=timed_out)
            return record(case, work, cls, detail, code, time.perf_counter() - t0)

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(run, enumerate(cases)))
    else:
        cap = fc.address_space() + mem
        results = _run_forked(cases, prepare, record, repo=repo, env=env, cap=cap, timeout=args.timeout,
                              workers=args.workers)
    wall = time.perf_counter() - start
    shutil.rmtree(root, ignore_errors=True)

    counts = collections.Counter(r["class"] for r in results)
    by_family: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for r in results:
        by_family[r["family"]][r["class"]] = by_family[r["family"]].get(r["class"], 0) + 1
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    entry = {
        "label": args.label,
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit + (" + uncommitted changes" if dirty else ""),
        "corpus": "small" if args.small else "large", "only": args.only,
        "cases": len(results), "timeout_s": args.timeout, "memory_cap_gib": args.memory_gib,
        "runner": "subprocess per case" if args.spawn else "fork per case from a parent with synthkit imported",
        "wall_s": round(wall, 1), "base_bundles_s": round(base_s, 1),
        "counts": {k: counts.get(k, 0) for k in (*fc.CLASSES, "builder_error")},
        "not_as_expected": len([r for r in results if not r.get("ok")]),
        "by_family": dict(sorted(by_family.items())),
        "failing": [{k: r[k] for k in ("name", "family", "expect", "class", "detail")}
                    for r in results if not r.get("ok")],
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    print(json.dumps({k: entry[k] for k in ("label", "commit", "cases", "wall_s", "counts", "not_as_expected")},
                     indent=1))
    if args.no_write:
        return
    data = json.loads(OUT.read_text()) if OUT.exists() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if r["label"] != args.label] + [entry]
    OUT.write_text(json.dumps(data, indent=1) + "\n")


def _debug(cases: list[fc.Case], root: Path, repo: Path, env: dict[str, str], timeout: float) -> None:
    """Where each exception is raised: the innermost frames of the traceback under
    SYNTHKIT_DEBUG=1 (the case's argv, with its files under a temporary folder)."""
    env = dict(env, SYNTHKIT_DEBUG="1")
    bases = fc.Bases(root / "bases", lambda a: (lambda r: ((-1 if r[0] is None else r[0]), r[1]))(
        fc.run_subprocess(a, cwd=repo, timeout=600, memory_bytes=None, env=env)))
    (root / "bases").mkdir()
    for i, case in enumerate(cases):
        work = fc.Work(root / f"{i:04d}", bases)
        work.dir.mkdir()
        argv = case.build(work)
        code, out, timed_out = fc.run_subprocess(argv, cwd=repo, timeout=timeout, memory_bytes=None, env=env)
        frames = [ln.strip() for ln in out.splitlines() if ln.strip().startswith('File "')]
        ours = [f for f in frames if "/site-packages/" not in f and "/lib/python3" not in f]
        last = [ln for ln in out.splitlines() if ln.strip()][-1:] or [""]
        print(f"{case.name}: exit {code}{' (timed out)' if timed_out else ''}")
        for f in ours[-3:]:
            print("   ", f[:200])
        if frames and frames[-1] not in ours[-1:]:
            print("    ... innermost:", frames[-1][:200])
        print("   ", last[0][:300])
    shutil.rmtree(root, ignore_errors=True)


def _run_forked(cases: list[fc.Case], prepare, record, *, repo: Path, env: dict[str, str], cap: int,
                timeout: float, workers: int) -> list[dict]:
    pending = list(enumerate(cases))
    running: dict[int, tuple[fc.Case, fc.Work, float, Path]] = {}
    done: dict[str, dict] = {}
    while pending or running:
        while pending and len(running) < workers:
            i, case = pending.pop(0)
            t0 = time.perf_counter()
            work, argv, err = prepare(i, case)
            if argv is None:
                done[case.name] = record(case, work, "builder_error", err, None, 0.0)
                continue
            out_path = work.dir.parent / f"{i:04d}.out"
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                fc.run_child(argv, out_path, repo, cap)
            running[pid] = (case, work, t0, out_path)
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            now = time.perf_counter()
            for p, (case, work, t0, out_path) in list(running.items()):
                if now - t0 > timeout:
                    try:
                        os.killpg(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    os.waitpid(p, 0)
                    del running[p]
                    out = out_path.read_text(errors="replace") if out_path.exists() else ""
                    cls, detail = fc.classify(case, work, None, out, timed_out=True)
                    done[case.name] = record(case, work, cls, detail, None, now - t0)
            time.sleep(0.05)
            continue
        if pid not in running:
            continue
        case, work, t0, out_path = running.pop(pid)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        out = out_path.read_text(errors="replace") if out_path.exists() else ""
        cls, detail = fc.classify(case, work, code, out)
        done[case.name] = record(case, work, cls, detail, code, time.perf_counter() - t0)
    return [done[c.name] for c in cases]


if __name__ == "__main__":
    main()
