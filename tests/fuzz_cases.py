"""Hostile and malformed inputs for every CLI entry and connector family (issue 16).

Shared by the fuzz tests (`tests/test_fuzz.py`, the small corpus, in-process) and the
benchmark (`benchmarks/bench_fuzz.py`, the large corpus, one subprocess per case with a
timeout and a memory cap). A case is a name (descriptive: never a data value), a family,
a builder that writes its files into a fresh folder and returns the CLI arguments, what is
expected ("error": a clean one-line refusal; "success": exit 0 with right output;
"either": one or the other), and checks for the output of a success and for side effects
that must never happen (a file created by a "read-only" source, a dropped table).

Every outcome falls in one class:
- clean_error: a synthkit error: exit code not 0, one line of output (a typer usage error
  counts as clean: its box is click's), no traceback;
- exception: a Python exception reached the user (a traceback, or the CLI's
  "internal error: <Type>" line, or an exception escaping the command);
- hang: the case ran past its time limit or ran out of its memory cap (bench only; the
  tests run the cases that could hang in a subprocess with a timeout);
- silent_wrong: exit 0 although the input should have been refused, or a success whose
  output is wrong (headers became data, rows missing, a forged manifest printed), or a
  forbidden side effect;
- success: a legitimate success;
and `unclear_error` for a refusal that is not one line (counted apart: not clean).
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import yaml

PLANTED = "FUZZPLANTEDCELL"  # planted in data files; no output may show it

CLASSES = ("clean_error", "exception", "hang", "silent_wrong", "success", "unclear_error")

Check = Callable[["Work", str], "str | None"]


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    build: Callable[["Work"], list[str]]
    expect: str  # "error" | "success" | "either"
    check: Check | None = None  # after exit 0: a problem with the output, or None
    side_check: Check | None = None  # after any outcome: a forbidden side effect, or None
    fits: bool = False  # may train a model (seconds)
    isolate: bool = False  # may hang, exhaust memory or overflow the C stack: run in a subprocess
    large_only: bool = False  # benchmark corpus only

    def passes(self, cls: str) -> bool:
        allowed = {"error": {"clean_error"}, "success": {"success"},
                   "either": {"clean_error", "success"}}[self.expect]
        return cls in allowed


# ------------------------------------------------------------------ the folder a case works in
def good_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "pid": [f"P{i:05d}" for i in range(n)],
        "age": rng.integers(18, 90, n),
        "bmi": rng.normal(27, 4, n).round(1),
        "sex": rng.choice(["f", "m"], n),
    })


def events_frame(n_entities: int = 80, length: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_entities * length
    return pd.DataFrame({
        "pid": np.repeat([f"P{i:04d}" for i in range(n_entities)], length),
        "t": np.tile(np.arange(length), n_entities),
        "lab": rng.normal(5, 1, n).round(2),
        "code": rng.choice(["a", "b", "c"], n),
        "grp": np.repeat(rng.choice(["u", "v"], n_entities), length),  # static per entity (a context column)
    })


class Bases:
    """Bundles fitted once per process (a corrupted copy of one is cheaper than a fit).

    `invoke(argv) -> (exit_code, output)` runs the CLI (in-process in the tests)."""

    def __init__(self, root: Path, invoke: Callable[[list[str]], tuple[int, str]]) -> None:
        self.root = root
        self.invoke = invoke
        self._done: dict[str, Path] = {}

    def _fit(self, key: str, argv: list[str]) -> Path:
        if key not in self._done:
            code, out = self.invoke(argv)
            if code != 0:
                raise RuntimeError(f"fitting the {key} base bundle failed: {out}")
            self._done[key] = Path(argv[argv.index("--out") + 1])
        return self._done[key]

    def table(self) -> Path:
        data = self.root / "base.csv"
        if not data.exists():
            good_frame().to_csv(data, index=False)
        return self._fit("table", ["fit", str(data), "--model", "dptvae", "--epsilon", "3", "--epochs", "1",
                                   "--batch-size", "20", "--device", "cpu", "--seed", "0",
                                   "--out", str(self.root / "base-table")])

    def sequence(self, context_column: bool = True) -> Path:
        key = "sequence" if context_column else "sequence-no-context"
        data = self.root / "base-events.csv"
        if not data.exists():
            events_frame().to_csv(data, index=False)
        return self._fit(key, ["fit", str(data), "--model", "dphmm", "--entity-key", "pid",
                               "--sequence-index", "t", "--max-length", "4", "--states", "2",
                               *(["--context-column", "grp"] if context_column else []),
                               "--no-privacy", "--epochs", "1", "--context-epochs", "1", "--batch-size", "20",
                               "--device", "cpu", "--seed", "0", "--out", str(self.root / f"base-{key}")])


@dataclass
class Work:
    dir: Path
    bases: Bases
    notes: dict = field(default_factory=dict)

    def p(self, name: str) -> Path:
        return self.dir / name

    def text(self, name: str, text: str, encoding: str = "utf-8") -> str:
        path = self.p(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode(encoding))
        return str(path)

    def raw(self, name: str, data: bytes) -> str:
        path = self.p(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(path)

    def good_csv(self, name: str = "good.csv", n: int = 300) -> str:
        path = self.p(name)
        good_frame(n).to_csv(path, index=False)
        return str(path)

    def bundle(self, kind: str = "table", name: str = "bundle") -> Path:
        src = {"table": self.bases.table, "sequence": self.bases.sequence,
               "sequence-no-context": lambda: self.bases.sequence(context_column=False)}[kind]()
        dst = self.p(name)
        shutil.copytree(src, dst)
        return dst


# ------------------------------------------------------------------ running and classifying
def _usage_error(code: int, output: str) -> bool:
    return code == 2 and ("Usage:" in output or "Try '" in output)


def classify(case: Case, work: Work, code: int | None, output: str, *, escaped: bool = False,
             timed_out: bool = False) -> tuple[str, str]:
    """(class, detail) of one outcome. `code` None: killed by a signal."""
    if timed_out:
        return "hang", "ran past its time limit"
    if "MemoryError" in output or code is None or (code is not None and code < 0) or code == 137:
        return "hang", "ran out of its memory cap or was killed"
    side = case.side_check(work, output) if case.side_check else None
    if PLANTED in output:
        side = "the output shows a planted private cell value"
    if escaped or "Traceback (most recent call last)" in output or "internal error:" in output:
        return "exception", _exception_line(output)
    if side:
        return "silent_wrong", side
    if code != 0:
        if _usage_error(code, output):
            return "clean_error", "usage error"
        lines = [ln for ln in output.splitlines() if ln.strip()]
        if len(lines) == 1:
            return "clean_error", lines[0][:300]
        return "unclear_error", f"{len(lines)} lines: " + " | ".join(ln[:120] for ln in lines[:4])
    if case.expect == "error":
        return "silent_wrong", "exit 0 although the input should be refused: " + output.strip()[:200]
    problem = case.check(work, output) if case.check else None
    if problem:
        return "silent_wrong", problem
    return "success", ""


def _exception_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    for ln in lines:
        if "internal error:" in ln:
            return ln.strip()[:300]
    frames = [ln.strip() for ln in lines if ln.strip().startswith("File \"")]
    last = lines[-1].strip() if lines else ""
    return (frames[-1] + " -> " if frames else "") + last[:300]


def subprocess_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNTHKIT_DEBUG"}
    env.update(SYNTHKIT_HOME=str(home), COLUMNS="400", TERM="dumb", NO_COLOR="1", PYTHONHASHSEED="0",
               SYNTHKIT_DEBUG_TRACE="")
    return env


def run_subprocess(argv: list[str], *, cwd: Path, timeout: float, memory_bytes: int | None,
                   env: dict[str, str], python: str = sys.executable) -> tuple[int | None, str, bool]:
    """Run `python -m synthkit.cli ARGV` with a timeout and an address-space cap.
    Returns (exit code or None when killed by a signal, stdout+stderr, timed_out)."""
    def limit() -> None:
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        os.setsid()

    proc = subprocess.Popen([python, "-m", "synthkit.cli", *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=limit)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        return None, out.decode("utf-8", "replace"), True
    code = proc.returncode
    return (None if code < 0 else code), out.decode("utf-8", "replace"), False


# ------------------------------------------------------------------ a fork server for isolated cases
def preload(repo: Path) -> None:
    """Import the CLI and what its commands import (torch included) from `repo`, running
    nothing, so that forked children inherit the imports: a case then costs its own work."""
    sys.path.insert(0, str(repo))
    for name in [m for m in sys.modules if m.split(".")[0] in ("synthkit", "connectors", "reports")]:
        del sys.modules[name]
    import synthkit.cli  # noqa: F401
    import torch  # noqa: F401
    for extra in ("synthkit.models", "synthkit.bundle", "connectors", "reports"):
        try:
            __import__(extra)
        except ImportError:
            pass
    loaded = str(sys.modules["synthkit"].__file__)
    if not loaded.startswith(str(repo)):
        raise SystemExit(f"synthkit was imported from {loaded}, not from {repo}")


def address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def run_child(argv: list[str], out_path: Path, repo: Path, cap: int) -> None:
    """In a forked child: a new session, output to a file, an address-space cap, then the
    CLI as `synthkit ARGV` (what `python -m synthkit.cli ARGV` runs)."""
    import traceback
    code = 1
    try:
        os.setsid()
        fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        os.chdir(repo)
        sys.argv = ["synthkit", *argv]
        from synthkit.cli import app
        try:
            app(argv, prog_name="synthkit")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def wait_child(pid: int, timeout: float) -> tuple[int | None, bool]:
    """(exit code or None when killed by a signal, timed out)."""
    import signal
    import time
    end = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return (os.WEXITSTATUS(status) if os.WIFEXITED(status) else None), False
        if time.monotonic() > end:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return None, True
        time.sleep(0.02)


def serve(repo: str, extra_bytes: str) -> None:
    """The fork server's loop (`python -c 'import fuzz_cases; fuzz_cases.serve(...)'`):
    one JSON request per line on stdin, one JSON answer per line on stdout."""
    preload(Path(repo))
    cap = address_space() + int(extra_bytes)
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints must not break the protocol
    answers.write('{"ready": true}\n')
    answers.flush()
    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(req["argv"], Path(req["out"]), Path(repo), cap)
        code, timed_out = wait_child(pid, req["timeout"])
        answers.write(json.dumps({"code": code, "timed_out": timed_out}) + "\n")
        answers.flush()


class ForkServer:
    """Runs isolated cases in children forked from one process that imported synthkit
    from `repo` (never ran a torch op, so forking is safe): each child gets a timeout and
    an address-space cap of the server's address space plus `extra_bytes`."""

    def __init__(self, repo: Path, env: dict[str, str], extra_bytes: int = 4 << 30) -> None:
        here = str(Path(__file__).resolve().parent)
        code = f"import sys; sys.path.insert(0, {here!r}); import fuzz_cases; fuzz_cases.serve({str(repo)!r}, '{extra_bytes}')"
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first.strip():
            raise RuntimeError("the fuzz fork server did not start")

    def run(self, argv: list[str], out_path: Path, timeout: float) -> tuple[int | None, str, bool]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "out": str(out_path), "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        output = out_path.read_text(errors="replace") if out_path.exists() else ""
        return answer["code"], output, answer["timed_out"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ------------------------------------------------------------------ checks
def schema_columns(work: Work, name: str = "schema.yaml") -> list[str] | None:
    path = work.p(name)
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list((data or {}).get("columns") or {})


def expect_columns(cols: list[str]) -> Check:
    def check(work: Work, output: str) -> str | None:
        got = schema_columns(work)
        if got is None:
            return "exit 0 but no schema was written"
        if got != cols:
            return f"schema has {len(got)} columns {got[:6]}, expected {cols}"
        return None
    return check


def schema_written(work: Work, output: str) -> str | None:
    return None if schema_columns(work) else "exit 0 but no schema (or an empty one) was written"


def bundle_written(work: Work, output: str) -> str | None:
    return None if (work.p("model") / "manifest.json").is_file() else "exit 0 but no bundle was written"


def rows_written(n: int, columns: list[str], name: str = "out.csv") -> Check:
    def check(work: Work, output: str) -> str | None:
        path = work.p(name)
        if not path.is_file():
            return "exit 0 but no output file"
        frame = pd.read_csv(path)
        if len(frame) != n:
            return f"{len(frame)} rows written, {n} asked for"
        if list(frame.columns) != columns:
            return f"columns {list(frame.columns)}, expected {columns}"
        return None
    return check


def report_written(work: Work, output: str) -> str | None:
    return None if (work.p("report") / "report.json").is_file() else "exit 0 but no report.json"


def no_file(name: str) -> Check:
    def check(work: Work, output: str) -> str | None:
        return f"a read created {name}" if work.p(name).exists() else None
    return check


def table_intact(db: str, table: str, n: int) -> Check:
    def check(work: Work, output: str) -> str | None:
        con = sqlite3.connect(work.p(db))
        try:
            got = con.execute(f'select count(*) from "{table}"').fetchone()[0]
        except sqlite3.Error:
            return f"table {table} is gone after a read"
        finally:
            con.close()
        return None if got == n else f"table {table} has {got} rows after a read, had {n}"
    return check


def not_in_output(marker: str, what: str) -> Check:
    def check(work: Work, output: str) -> str | None:
        return f"the output shows {what}" if marker in output else None
    return check


# ------------------------------------------------------------------ argument builders
FIT_DEFAULTS = {"--model": "dptvae", "--epsilon": "3", "--epochs": "1", "--batch-size": "20", "--device": "cpu",
                "--seed": "0"}


def fit_argv(work: Work, data: str, *extra: str, **over: str | None) -> list[str]:
    opts = dict(FIT_DEFAULTS)
    for key, value in over.items():
        opts["--" + key.replace("_", "-")] = value
    argv = ["fit", data]
    for key, value in opts.items():
        if value is None:
            continue
        argv += [key] if value == "" else [key, value]
    return argv + list(extra) + ["--out", str(work.p("model"))]


def infer_argv(work: Work, data: str, *extra: str) -> list[str]:
    return ["schema", "infer", data, *extra, "--out", str(work.p("schema.yaml"))]


def nested(depth: int, open_: str = "[", close: str = "]", inner: str = "1") -> str:
    return open_ * depth + inner + close * depth


ALIAS_BOMB = textwrap.dedent("""\
    a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
    """)


def schema_doc(columns: str, extra: str = "") -> str:
    return f"version: 1\n{extra}columns:\n{columns}"


GOOD_SCHEMA_COLUMNS = ("  pid: {kind: identifier, nullable: false}\n"
                       "  age: {kind: integer, nullable: false, bounds: [0, 120]}\n"
                       "  bmi: {kind: continuous, nullable: false, bounds: [10, 60]}\n"
                       "  sex: {kind: categorical, nullable: false, categories: [f, m]}\n")


# ------------------------------------------------------------------ FHIR, camt.053, bank exports
def fhir_bundle(resources: list[dict]) -> str:
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": r} for r in resources]})


def fhir_patients(n: int = 6) -> list[dict]:
    out: list[dict] = []
    for i in range(n):
        pid = f"p{i}"
        out.append({"resourceType": "Patient", "id": pid, "gender": "female" if i % 2 else "male",
                    "birthDate": f"19{50 + i}-05-17"})
        for j in range(3):
            out.append({"resourceType": "Encounter", "id": f"e{i}-{j}", "status": "finished",
                        "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{pid}"},
                        "period": {"start": f"2020-0{j + 1}-1{i}T10:00:00Z"}})
            out.append({"resourceType": "Observation", "id": f"o{i}-{j}", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                        "subject": {"reference": f"Patient/{pid}"},
                        "effectiveDateTime": f"2020-0{j + 1}-1{i}T10:00:00Z",
                        "valueQuantity": {"value": 70.0 + i + j, "unit": "/min"}})
    return out


def camt_entry(amount: str = "49.90", sign: str = "DBIT", booked: str = "2024-01-03") -> str:
    return (f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>{sign}</CdtDbtInd><Sts>BOOK</Sts>'
            f"<BookgDt><Dt>{booked}</Dt></BookgDt><ValDt><Dt>{booked}</Dt></ValDt>"
            "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>"
            "</Ntry>")


def camt_document(entries: list[str], iban: str = "DE89370400440532013000", prolog: str = "") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}\n'
            '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
            "<GrpHdr><MsgId>M1</MsgId><CreDtTm>2024-02-01T06:00:00</CreDtTm></GrpHdr>"
            f"<Stmt><Id>S1</Id><CreDtTm>2024-01-31T18:00:00</CreDtTm><Acct><Id><IBAN>{iban}</IBAN></Id>"
            "<Ccy>EUR</Ccy></Acct>"
            '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">1000.00</Amt>'
            "<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2024-01-01</Dt></Dt></Bal>"
            f"{''.join(entries)}</Stmt></BkToCstmrStmt></Document>")


def camt_ok_entries() -> list[str]:
    return [camt_entry(f"{10 + i}.50", "DBIT" if i % 2 else "CRDT", f"2024-01-{10 + i:02d}") for i in range(6)]


BANKTX_HEADER = "account,date,amount,dc,currency\n"


def banktx_rows(n: int = 12) -> str:
    return "".join(f"A{i % 3},2024-01-{1 + i:02d},{10 + i}.25,{'C' if i % 2 else 'D'},EUR\n" for i in range(n))


# ------------------------------------------------------------------ bundle tampering
def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reseal(bundle: Path) -> None:
    """Recompute the file hashes a bundle's manifest records (what a careful attacker would
    do after editing a file), where the manifest is still a JSON object with 'files'."""
    mf = bundle / "manifest.json"
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return
    if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict):
        for fname in manifest["files"]:
            if (bundle / fname).is_file():
                manifest["files"][fname] = _sha256(bundle / fname)
        mf.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    reseal_manifest_hash(bundle)


def reseal_manifest_hash(bundle: Path) -> None:
    """Rewrite manifest.sha256 (the manifest's own hash, where the bundle has one) to
    match the manifest as it is now."""
    side = bundle / "manifest.sha256"
    if side.is_file() and (bundle / "manifest.json").is_file():
        side.write_text(f"{_sha256(bundle / 'manifest.json')}  manifest.json\n", encoding="ascii")


def edit_manifest(bundle: Path, edit: Callable[[dict], object], *, reseal_files: bool = True) -> None:
    mf = bundle / "manifest.json"
    manifest = json.loads(mf.read_text(encoding="utf-8"))
    result = edit(manifest)
    if result is not None:
        manifest = result
    mf.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if reseal_files:
        reseal(bundle)


def _set(path: tuple[str, ...], value: object) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _drop(path: tuple[str, ...]) -> Callable[[dict], None]:
    def edit(m: dict) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    return edit


FORGED = "FORGED-GUARANTEE-MARKER"


def _forge_summary(m: dict) -> None:
    s = m["privacy"]["summary"]
    s["guarantee"] = f"(0.001, 1e-12)-differential privacy per person {FORGED}"
    s["target_epsilon"] = 0.001
    s["epsilon_spent"] = 0.001


def _replace_in_manifest(bundle: Path, old: str, new: str) -> None:
    mf = bundle / "manifest.json"
    text = mf.read_text(encoding="utf-8")
    if old not in text:
        raise ValueError(f"{old!r} is not in the base manifest")
    mf.write_text(text.replace(old, new, 1), encoding="utf-8")


def _weights_shape_mismatch(bundle: Path) -> None:
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(bundle / "weights.safetensors"))
    first = sorted(tensors)[0]
    tensors[first] = np.zeros((3, 7), dtype=np.float32)
    save_file(tensors, str(bundle / "weights.safetensors"))


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# (name, how to corrupt the copied bundle, expected for inspect / generate / evaluate, isolate)
BundleEdit = Callable[[Path], None]


def _manifest_edit(edit: Callable[[dict], object], reseal_files: bool = True) -> BundleEdit:
    return lambda b: edit_manifest(b, edit, reseal_files=reseal_files)


TABLE_CORRUPTIONS: list[tuple[str, BundleEdit, bool, bool]] = [
    # name, corruption, isolate, large corpus only
    ("manifest-missing", lambda b: (b / "manifest.json").unlink(), False, False),
    ("manifest-truncated", lambda b: _truncate(b / "manifest.json"), False, False),
    ("manifest-binary", lambda b: (b / "manifest.json").write_bytes(bytes(range(256)) * 4), False, False),
    ("manifest-json-list", lambda b: (b / "manifest.json").write_text("[1, 2, 3]"), False, False),
    ("manifest-json-empty-object", lambda b: (b / "manifest.json").write_text("{}"), False, True),
    ("manifest-nan-literal", _manifest_edit(_set(("model", "hyperparameters", "lr"), float("nan"))), False, True),
    ("manifest-model-not-object", _manifest_edit(_set(("model",), 5)), False, False),
    ("manifest-class-foreign", _manifest_edit(_set(("model", "class"), "os.system")), False, False),
    ("manifest-class-not-string", _manifest_edit(_set(("model", "class"), ["DPTVAE"])), False, True),
    ("manifest-hyperparameters-not-object", _manifest_edit(_set(("model", "hyperparameters"), "x")), False, False),
    ("manifest-hyperparameter-wrong-type", _manifest_edit(_set(("model", "hyperparameters", "epochs"), "many")),
     False, False),
    ("manifest-hyperparameter-unknown", _manifest_edit(_set(("model", "hyperparameters", "bogus"), 1)), False, True),
    ("manifest-embedding-huge", _manifest_edit(_set(("model", "hyperparameters", "embedding_dim"), 10**9)),
     True, False),
    ("manifest-compress-dims-huge", _manifest_edit(_set(("model", "hyperparameters", "compress_dims"), [10**9])),
     True, True),
    ("manifest-int-5000-digits", lambda b: _replace_in_manifest(b, '"epochs": 1', '"epochs": 1' + "0" * 5000),
     False, False),
    ("manifest-deep-nesting", lambda b: (b / "manifest.json").write_text(
        '{"format": "synthkit-model-bundle", "format_version": 1, "model": ' + nested(100_000) + "}"), True, False),
    ("manifest-schema-columns-list", _manifest_edit(_set(("schema", "columns"), ["pid", "age"])), False, False),
    ("manifest-schema-missing", _manifest_edit(_drop(("schema",))), False, False),
    ("manifest-model-missing", _manifest_edit(_drop(("model",))), False, False),
    ("manifest-privacy-missing", _manifest_edit(_drop(("privacy",))), False, False),
    ("manifest-transformer-missing", _manifest_edit(_drop(("transformer",))), False, False),
    ("manifest-versions-missing", _manifest_edit(_drop(("versions",))), False, True),
    ("manifest-files-missing", _manifest_edit(_drop(("files",)), reseal_files=False), False, True),
    ("manifest-transformer-labels-not-list", _manifest_edit(_set(("transformer", "sex", "labels"), 5)), False, False),
    ("manifest-transformer-bounds-inverted", _manifest_edit(_set(("transformer", "bmi", "bounds"), [60.0, 10.0])),
     False, True),
    ("manifest-ledger-events-not-list", _manifest_edit(_set(("privacy", "ledger", "events"), "x")), False, False),
    ("manifest-summary-events-not-list", _manifest_edit(_set(("privacy", "summary", "events"), {"a": 1})),
     False, True),
    ("manifest-privacy-summary-forged", _manifest_edit(_forge_summary), False, False),
    ("manifest-format-version-future", _manifest_edit(_set(("format_version",), 99)), False, True),
    ("manifest-edited-hash-kept", lambda b: _replace_in_manifest(b, '"epochs": 1', '"epochs": 2'), False, False),
    ("manifest-hash-file-missing", lambda b: (b / "manifest.sha256").unlink(missing_ok=True), False, False),
    ("weights-missing", lambda b: (b / "weights.safetensors").unlink(), False, False),
    ("weights-tampered-hash-kept", lambda b: (b / "weights.safetensors").write_bytes(b"\0" * 64), False, False),
    ("weights-garbled-rehashed", lambda b: ((b / "weights.safetensors").write_bytes(os.urandom(0) + b"\x08" +
                                                                                    b"\xff" * 200), reseal(b)),
     False, False),
    ("weights-truncated-rehashed", lambda b: (_truncate(b / "weights.safetensors"), reseal(b)), False, False),
    ("weights-shape-mismatch-rehashed", lambda b: (_weights_shape_mismatch(b), reseal(b)), False, False),
]


def _bundle_cases() -> Iterable[Case]:
    for name, corrupt, isolate, large in TABLE_CORRUPTIONS:
        def prep(work: Work, corrupt: BundleEdit = corrupt, name: str = name) -> Path:
            b = work.bundle()
            corrupt(b)
            if not name.endswith("-hash-kept"):
                reseal_manifest_hash(b)  # what an attacker does; the hash check has its own cases
            return b

        forged = name == "manifest-privacy-summary-forged"
        yield Case(f"inspect-{name}", "bundle", lambda w, prep=prep: ["inspect", str(prep(w))], "error",
                   isolate=isolate, large_only=large,
                   side_check=not_in_output(FORGED, "a forged privacy guarantee") if forged else None)
        yield Case(f"generate-{name}", "bundle",
                   lambda w, prep=prep: ["generate", str(prep(w)), "--rows", "5", "--out", str(w.p("out.csv"))],
                   "error", isolate=isolate, large_only=large)
        yield Case(f"evaluate-{name}", "bundle",
                   lambda w, prep=prep: ["evaluate", str(prep(w)), "--real", w.good_csv("real.csv"),
                                         "--synthetic", _synthetic(w), "--out", str(w.p("report"))],
                   "error", isolate=isolate, large_only=large or name not in {
                       "weights-garbled-rehashed", "manifest-class-foreign", "weights-tampered-hash-kept",
                       "manifest-schema-columns-list", "manifest-transformer-labels-not-list"})
    yield Case("inspect-bundle-path-is-file", "bundle", lambda w: ["inspect", w.text("file", "x")], "error")
    yield Case("inspect-bundle-nonexistent", "bundle", lambda w: ["inspect", str(w.p("nope"))], "error")
    yield Case("inspect-bundle-control", "bundle", lambda w: ["inspect", str(w.bundle())], "success",
               check=lambda w, out: None if "DPTVAE" in out else "inspect does not name the model")
    yield Case("inspect-bundle-json-control", "bundle", lambda w: ["inspect", str(w.bundle()), "--json"], "success",
               check=lambda w, out: None if json.loads(out)["model"] == "DPTVAE" else "wrong model")

    # sequence bundles: the context model's path must stay inside the bundle
    def ctx_outside(work: Work, absolute: bool) -> Path:
        b = work.bundle("sequence")
        m = json.loads((b / "manifest.json").read_text())
        inner = b / m["sequence"]["context_bundle"]
        outside = work.p("elsewhere") / "ctx"
        shutil.copytree(inner, outside)
        rel = str(outside) if absolute else os.path.relpath(outside, b)
        edit_manifest(b, _set(("sequence", "context_bundle"), rel))
        return b

    for absolute in (False, True):
        kind = "absolute" if absolute else "parent"
        yield Case(f"inspect-sequence-context-bundle-{kind}-path", "bundle",
                   lambda w, a=absolute: ["inspect", str(ctx_outside(w, a))], "error", fits=True)
        yield Case(f"generate-sequence-context-bundle-{kind}-path", "bundle",
                   lambda w, a=absolute: ["generate", str(ctx_outside(w, a)), "--entities", "3",
                                          "--out", str(w.p("seq-out"))], "error", fits=True)
    yield Case("generate-sequence-control", "generate",
               lambda w: ["generate", str(w.bundle("sequence")), "--entities", "3", "--out", str(w.p("seq-out"))],
               "success", fits=True,
               check=lambda w, out: None if (w.p("seq-out") / "events.csv").is_file() else "no events.csv")
    yield Case("generate-sequence-no-context-columns-control", "generate",
               lambda w: ["generate", str(w.bundle("sequence-no-context")), "--entities", "3",
                          "--out", str(w.p("seq-out"))], "success", fits=True, large_only=True,
               check=lambda w, out: None if (w.p("seq-out") / "events.csv").is_file() else "no events.csv")
    yield Case("generate-sequence-with-rows", "generate",
               lambda w: ["generate", str(w.bundle("sequence")), "--rows", "3", "--out", str(w.p("seq-out"))],
               "error", fits=True)


def _synthetic(work: Work, frame: pd.DataFrame | None = None, name: str = "synthetic.csv") -> str:
    frame = good_frame(300, seed=1) if frame is None else frame
    path = work.p(name)
    frame.to_csv(path, index=False)
    return str(path)


# ------------------------------------------------------------------ data files
def _data_cases() -> Iterable[Case]:
    cols = ["a", "b", "c"]
    rows = [f"{i},{i * 2},x{i % 3}" for i in range(50)]
    rows[7] = f"7,14,{PLANTED}"  # a private cell value that must never reach a message

    def csv(name: str, text: str, expect: str, check: Check | None = None, *extra: str, large: bool = False,
            isolate: bool = False, encoding: str = "utf-8") -> Case:
        return Case(name, "data", lambda w: infer_argv(w, w.text("data.csv", text, encoding), *extra), expect,
                    check=check, large_only=large, isolate=isolate)

    yield csv("csv-lf-control", "a,b,c\n" + "\n".join(rows) + "\n", "success", expect_columns(cols))
    yield csv("csv-crlf-endings", "a,b,c\r\n" + "\r\n".join(rows) + "\r\n", "success", expect_columns(cols))
    yield csv("csv-cr-only-endings", "a,b,c\r" + "\r".join(rows) + "\r", "either", expect_columns(cols))
    yield csv("csv-tab-separated-named-csv", "a\tb\tc\n" + "\n".join(r.replace(",", "\t") for r in rows) + "\n",
              "either", expect_columns(cols), large=True)
    yield Case("csv-binary-png", "data", lambda w: infer_argv(w, w.raw("data.csv", b"\x89PNG\r\n\x1a\n" +
                                                                       bytes(range(256)) * 8)), "error")
    yield Case("csv-nul-bytes", "data", lambda w: infer_argv(w, w.raw("data.csv", b"a,b\n" + b"\x00\x01,\x00\n" * 40)),
               "either", large_only=True)
    yield csv("csv-duplicate-header", "a,a,c\n" + "\n".join(rows) + "\n", "error")
    yield csv("csv-empty-header-name", "a,,c\n" + "\n".join(rows) + "\n", "error")
    yield csv("csv-numeric-header", "1,2,3\n" + "\n".join(rows) + "\n", "error")
    yield csv("csv-numeric-header-no-header-option", "1,2,3\n" + "\n".join(rows) + "\n", "success",
              lambda w, out: None if len(schema_columns(w) or []) == 3 else "not 3 columns", "--no-header")
    yield csv("csv-header-option-on-named-file", "a,b,c\n" + "\n".join(rows) + "\n", "success",
              expect_columns(cols), "--header")
    yield csv("csv-header-only", "a,b,c\n", "error")
    yield csv("csv-single-row", "a,b,c\n1,2,x\n", "error")
    yield csv("csv-all-null", "a,b,c\n" + ",,\n" * 50, "error")
    yield csv("csv-all-inf", "a,b,c\n" + "inf,-inf,inf\n" * 50, "error")
    yield csv("csv-empty-file", "", "error")
    yield csv("csv-only-newlines", "\n\n\n", "error", large=True)
    yield csv("csv-latin1-bytes", "a,b,name\n" + "".join(f"{i},{i},Jos\u00e9{i % 3}\n" for i in range(50)), "either",
              encoding="latin-1")
    yield csv("csv-latin1-with-encoding-option", "a,b,name\n" + "".join(f"{i},{i},Jos\u00e9{i % 3}\n" for i in range(50)),
              "success", expect_columns(["a", "b", "name"]), "--encoding", "latin-1", encoding="latin-1")
    yield csv("csv-ragged-rows", "a,b,c\n" + "\n".join(r + (",9,9" if i % 5 == 0 else "") for i, r in enumerate(rows)),
              "either", expect_columns(cols))
    yield csv("csv-unterminated-quote", "a,b,c\n" + "\n".join(rows[:10]) + '\n1,"2,x\n' + "\n".join(rows[10:]),
              "either", expect_columns(cols))
    yield csv("csv-values-1e308", "a,b,c\n" + "".join(f"{'1e308' if i % 2 else '-1e308'},{i},x\n" for i in range(50)),
              "either", expect_columns(cols))
    yield csv("csv-ints-near-int64-min", "a,b,c\n" + "".join(f"{-2**63 + i},{i},x\n" for i in range(50)), "either",
              expect_columns(cols))
    yield csv("csv-ints-1e30", "a,b,c\n" + "".join(f"{10**30 + i},{i},x\n" for i in range(50)), "either",
              expect_columns(cols))
    yield csv("csv-number-5000-digits", "a,b,c\n" + "".join(f"{'9' * 5000},{i},x\n" for i in range(20)), "either",
              expect_columns(cols), large=True)
    yield csv("csv-inf-nan-mixed", "a,b,c\n" + "".join(f"{['inf', 'nan', '1.5', '-inf'][i % 4]},{i},x\n"
                                                       for i in range(50)), "either", expect_columns(cols))
    yield csv("csv-10k-columns", ",".join(f"c{j}" for j in range(10_000)) + "\n" +
              "\n".join(",".join(str((i + j) % 7) for j in range(10_000)) for i in range(30)) + "\n", "either",
              lambda w, out: None if len(schema_columns(w) or []) == 10_000 else "columns lost", isolate=True)
    yield csv("csv-header-100k-chars-name", "a" * 100_000 + ",b\n" + "".join(f"{i},{i}\n" for i in range(30)),
              "either", large=True)
    # JSON lines and Parquet
    yield Case("jsonl-nested-objects", "data",
               lambda w: infer_argv(w, w.text("data.jsonl", "".join(json.dumps({"a": i, "b": {"x": i, "y": [i]}}) + "\n"
                                                                    for i in range(50)))), "either")
    yield Case("jsonl-deep-nesting", "data",
               lambda w: infer_argv(w, w.text("data.jsonl", '{"a": ' + nested(100_000) + "}\n" + '{"a": 1}\n' * 5)),
               "error", isolate=True)
    yield Case("jsonl-not-json", "data", lambda w: infer_argv(w, w.text("data.jsonl", "this is not json\n" * 20)),
               "error")
    yield Case("jsonl-top-level-arrays", "data", lambda w: infer_argv(w, w.text("data.jsonl", "[1, 2]\n" * 20)), "error")
    yield Case("jsonl-mixed-types", "data",
               lambda w: infer_argv(w, w.text("data.jsonl", "".join(json.dumps({"a": [i, "x", None, {}][i % 4]}) + "\n"
                                                                    for i in range(40)))), "either", large_only=True)
    yield Case("parquet-garbage", "data", lambda w: infer_argv(w, w.raw("data.parquet", b"PAR1" + os.urandom(0) +
                                                                        b"\x01" * 500 + b"PAR1")), "error")

    def truncated_parquet(w: Work) -> list[str]:
        path = w.p("data.parquet")
        good_frame(300).to_parquet(path)
        _truncate(path)
        return infer_argv(w, str(path))

    yield Case("parquet-truncated", "data", truncated_parquet, "error")

    def parquet(frame: pd.DataFrame) -> Callable[[Work], list[str]]:
        def build(w: Work) -> list[str]:
            path = w.p("data.parquet")
            frame.to_parquet(path)
            return infer_argv(w, str(path))
        return build

    yield Case("parquet-control", "data", parquet(good_frame(60)), "success",
               check=expect_columns(["pid", "age", "bmi", "sex"]))
    yield Case("parquet-struct-column", "data",
               parquet(good_frame(60).assign(nested=[{"x": i, "y": str(i)} for i in range(60)])), "either",
               check=schema_written)
    yield Case("parquet-binary-column", "data", parquet(good_frame(60).assign(img=[bytes([i]) * 5 for i in range(60)])),
               "either", check=schema_written)
    yield Case("parquet-list-column", "data", parquet(good_frame(60).assign(tags=[[i, i + 1] for i in range(60)])),
               "either", check=schema_written, large_only=True)
    yield Case("data-path-nonexistent", "data", lambda w: infer_argv(w, str(w.p("nope.csv"))), "error")

    def dir_named_csv(w: Work) -> list[str]:
        w.p("dir.csv").mkdir()
        return infer_argv(w, str(w.p("dir.csv")))

    yield Case("data-path-is-directory", "data", dir_named_csv, "error")
    yield Case("data-unknown-extension", "data", lambda w: infer_argv(w, w.text("data.xlsx", "a,b\n1,2\n")), "error")
    yield Case("schema-infer-out-unwritable", "data",
               lambda w: ["schema", "infer", w.good_csv(), "--out", str(w.p("file") / "schema.yaml")]
               if w.text("file", "x") else [], "error")
    yield Case("schema-infer-out-exists", "data",
               lambda w: ["schema", "infer", w.good_csv(), "--out", w.text("schema.yaml", "keep")], "error",
               side_check=lambda w, out: None if w.p("schema.yaml").read_text() == "keep" else "overwritten")


# ------------------------------------------------------------------ fit: data extremes, ε/δ, hyperparameters
def _fit_cases() -> Iterable[Case]:
    def fit_on(name: str, frame_text: Callable[[], str], expect: str = "either", *extra: str, large: bool = False,
               isolate: bool = False, **over: str | None) -> Case:
        return Case(name, "fit", lambda w: fit_argv(w, w.text("data.csv", frame_text()), *extra, **over), expect,
                    check=bundle_written, fits=True, large_only=large, isolate=isolate)

    n = 300
    rng = np.random.default_rng(3)
    base = good_frame(n)

    def with_col(values: Iterable[object]) -> Callable[[], str]:
        def text() -> str:
            f = base.copy()
            f["x"] = list(values)
            return f.to_csv(index=False)
        return text

    yield fit_on("fit-values-1e308", with_col(1e308 * (-1) ** i for i in range(n)), large=True)
    yield fit_on("fit-ints-near-int64-min", with_col(-2**63 + int(v) for v in rng.integers(0, 1000, n)), large=True)
    yield fit_on("fit-ints-1e30", with_col(10**30 + int(v) for v in rng.integers(0, 1000, n)), large=True)
    yield fit_on("fit-inf-nan-values", with_col(["inf", "nan", 1.5, "-inf", 2.5][i % 5] for i in range(n)), large=True)

    def extremes() -> str:  # the three above in one private fit (the tests' budget allows few fits)
        f = base.copy()
        f["huge"] = [1e308 * (-1) ** i for i in range(n)]
        f["low"] = [-2**63 + int(v) for v in rng.integers(0, 1000, n)]
        f["odd"] = [["inf", "nan", 1.5, "-inf", 2.5][i % 5] for i in range(n)]
        return f.to_csv(index=False)

    yield fit_on("fit-numeric-extremes-together", extremes)
    yield fit_on("fit-no-privacy-values-1e308", with_col(1e308 * (-1) ** i for i in range(n)), "either",
                 "--no-privacy", large=True, epsilon=None)
    yield fit_on("fit-duplicate-header", lambda: "a,a,sex\n" + "".join(f"{i},{i},{'fm'[i % 2]}\n" for i in range(n)),
                 "error")
    yield fit_on("fit-numeric-header", lambda: "1,2,3\n" + "".join(f"{i},{i},{'fm'[i % 2]}\n" for i in range(n)),
                 "error")
    yield Case("fit-10k-columns", "fit", lambda w: fit_argv(w, w.text("data.csv", ",".join(f"c{j}" for j in range(10_000))
                                                                   + "\n" + "\n".join(",".join(str((i * j) % 5)
                                                                                               for j in range(10_000))
                                                                                      for i in range(60)) + "\n")),
               "either", check=bundle_written, fits=True, isolate=True)
    yield Case("fit-jsonl-nested-objects", "fit",
               lambda w: fit_argv(w, w.text("data.jsonl", "".join(json.dumps({"a": i % 7, "b": {"x": i % 3}}) + "\n"
                                                                   for i in range(n))), "--no-privacy",
                                  epsilon=None), "either",
               check=bundle_written, fits=True)
    yield Case("fit-control", "fit", lambda w: fit_argv(w, w.good_csv()), "success", check=bundle_written, fits=True,
               large_only=True)  # the tests' base bundle is this fit

    def hyper(name: str, expect: str = "error", *extra: str, large: bool = False, isolate: bool = False,
              **over: str | None) -> Case:
        return Case(name, "hyperparameters", lambda w: fit_argv(w, w.good_csv(), *extra, **over), expect,
                    check=bundle_written, fits=True, large_only=large, isolate=isolate)

    yield hyper("epsilon-zero", epsilon="0")
    yield hyper("epsilon-negative", epsilon="-1")
    yield hyper("epsilon-nan", epsilon="nan")
    yield hyper("epsilon-inf", epsilon="inf")
    yield hyper("epsilon-overflowing-literal", epsilon="1e400")
    yield hyper("epsilon-not-a-number", epsilon="abc")
    yield hyper("epsilon-tiny", "either", epsilon="1e-300", large=True)
    yield hyper("delta-one", delta="1")
    yield hyper("delta-zero", delta="0")
    yield hyper("delta-negative", delta="-1")
    yield hyper("delta-nan", delta="nan")
    yield hyper("delta-above-one-over-n", delta="0.01", large=True)
    yield hyper("epochs-zero", epochs="0")
    yield hyper("epochs-negative", epochs="-1")
    yield hyper("epochs-float-literal", epochs="1e9")
    yield hyper("epochs-huge", "error", epochs="1000000000", isolate=True)
    yield hyper("batch-size-zero", batch_size="0")
    yield hyper("batch-size-negative", batch_size="-5")
    yield hyper("batch-size-above-rows", batch_size="1000000000")
    yield hyper("seed-negative", "either", "--no-privacy", seed="-1", epsilon=None)
    yield hyper("seed-negative-private", "either", seed="-1", large=True)
    yield hyper("seed-above-uint64", "either", seed=str(2**64 + 5), large=True)
    yield hyper("max-rows-per-entity-zero", "error", "--max-rows-per-entity", "0", "--entity-key", "pid")
    yield hyper("max-rows-per-entity-negative", "error", "--max-rows-per-entity", "-1", large=True)
    yield hyper("holdout-above-one", "error", "--holdout", "1.5")
    yield hyper("holdout-one", "error", "--holdout", "1.0", large=True)
    yield hyper("holdout-negative", "error", "--holdout", "-0.1")
    yield hyper("holdout-nan", "error", "--holdout", "nan")
    yield hyper("model-unknown", model="gpt")
    yield hyper("device-unknown", device="tpu")
    yield hyper("no-privacy-with-epsilon", "error", "--no-privacy")
    yield hyper("epsilon-missing", epsilon=None)
    yield hyper("entity-key-unknown-column", "error", "--entity-key", "nope")
    yield hyper("target-unknown-column", "error", "--target", "nope")
    yield hyper("dphmm-options-on-table-model", "error", "--states", "3")
    ev = events_frame(40).to_csv(index=False)

    def dphmm(name: str, *extra: str, expect: str = "error", isolate: bool = False, large: bool = False) -> Case:
        return Case(name, "hyperparameters",
                    lambda w: ["fit", w.text("events.csv", ev), "--model", "dphmm", "--entity-key", "pid",
                               "--sequence-index", "t", "--epsilon", "3", "--epochs", "1", "--context-epochs", "1", "--batch-size", "10",
                               "--device", "cpu", *extra, "--out", str(w.p("model"))], expect,
                    check=bundle_written, fits=True, isolate=isolate, large_only=large)

    yield dphmm("dphmm-states-zero", "--states", "0", "--max-length", "4")
    yield dphmm("dphmm-states-huge", "--states", "1000000", "--max-length", "4", isolate=True)
    yield dphmm("dphmm-max-length-negative", "--max-length", "-1")
    yield dphmm("dphmm-max-length-huge", "--max-length", "1000000000", isolate=True, large=True)
    yield dphmm("dphmm-sequence-index-unknown", "--max-length", "4", "--context-column", "nope")


# ------------------------------------------------------------------ schema.yaml
def _schema_cases() -> Iterable[Case]:
    def check_case(name: str, text: str | bytes, expect: str = "error", isolate: bool = False,
                   large: bool = False) -> Case:
        def build(w: Work) -> list[str]:
            path = w.raw("schema.yaml", text) if isinstance(text, bytes) else w.text("schema.yaml", text)
            return ["schema", "check", path]
        return Case(name, "schema", build, expect, isolate=isolate, large_only=large)

    col = "  x: {kind: continuous, nullable: false, bounds: %s}\n"
    cat = "  x: {kind: categorical, nullable: false, categories: %s}\n"
    yield check_case("schema-control", schema_doc(GOOD_SCHEMA_COLUMNS), "success")
    yield check_case("schema-alias-bomb-in-categories",
                     ALIAS_BOMB + "version: 1\ncolumns:\n  x: {kind: categorical, categories: *i}\n", isolate=True)
    yield check_case("schema-small-alias-allowed",
                     "cats: &c [f, m]\nversion: 1\ncolumns:\n  x: {kind: categorical, categories: *c}\n", "either",
                     large=True)
    yield check_case("schema-recursive-alias", "version: 1\ncolumns: &c\n  x: *c\n", isolate=True)
    yield check_case("schema-20mb-comment", "# " + "x" * 20_000_000 + "\n" + schema_doc(GOOD_SCHEMA_COLUMNS),
                     isolate=True)
    yield check_case("schema-bounds-inverted", schema_doc(col % "[5, 1]"))
    yield check_case("schema-bounds-empty-denormal", schema_doc(col % "[0, 1e-320]"))
    yield check_case("schema-bounds-equal", schema_doc(col % "[3, 3]"))
    yield check_case("schema-bounds-nan", schema_doc(col % "[.nan, 1]"))
    yield check_case("schema-bounds-inf", schema_doc(col % "[0, .inf]"))
    yield check_case("schema-bounds-strings", schema_doc(col % "[low, high]"))
    yield check_case("schema-bounds-three-values", schema_doc(col % "[0, 1, 2]"))
    yield check_case("schema-bounds-bool", schema_doc(col % "[false, true]"), large=True)
    yield check_case("schema-bounds-datetime-inverted",
                     schema_doc("  x: {kind: datetime, nullable: false, bounds: ['2024-01-01', '2020-01-01']}\n"))
    yield check_case("schema-bounds-datetime-garbage",
                     schema_doc("  x: {kind: datetime, nullable: false, bounds: [yesterday, tomorrow]}\n"))
    yield check_case("schema-bounds-int-on-integer-1e30", schema_doc(
        "  x: {kind: integer, nullable: false, bounds: [0, 1000000000000000000000000000000]}\n"), "either", large=True)
    yield check_case("schema-categories-nested", schema_doc(cat % "[[1, 2], {a: b}]"))
    yield check_case("schema-categories-null", schema_doc(cat % "[null, a]"))
    yield check_case("schema-categories-empty", schema_doc(cat % "[]"))
    yield check_case("schema-categories-duplicate", schema_doc(cat % "[a, a]"))
    yield check_case("schema-categories-not-list", schema_doc(cat % "abc"))
    yield check_case("schema-categories-mixed-scalars", schema_doc(cat % "[1, '1']"), large=True)
    yield check_case("schema-non-utf8", schema_doc(GOOD_SCHEMA_COLUMNS).encode("utf-8") + b"# \xff\xfe\xc3\x28\n")
    yield check_case("schema-utf16-bom", "\ufeff" + schema_doc(GOOD_SCHEMA_COLUMNS), "either", large=True)
    yield check_case("schema-python-object-tag", "version: 1\ncolumns:\n  x: !!python/object/apply:os.system [echo]\n")
    yield check_case("schema-python-name-tag", "version: 1\ncolumns: !!python/name:os.system\n")
    yield check_case("schema-deep-nesting", "version: 1\ncolumns:\n  x: " + nested(100_000) + "\n", isolate=True)
    yield check_case("schema-deep-nesting-mappings", "version: 1\ncolumns: " + nested(50_000, "{a: ", "}", "1") + "\n",
                     isolate=True)
    yield check_case("schema-top-level-list", "- a\n- b\n")
    yield check_case("schema-top-level-scalar", "42\n")
    yield check_case("schema-empty-file", "")
    yield check_case("schema-columns-list", "version: 1\ncolumns: [a, b]\n")
    yield check_case("schema-columns-empty", "version: 1\ncolumns: {}\n")
    yield check_case("schema-unknown-kind", schema_doc("  x: {kind: quaternion}\n"))
    yield check_case("schema-kind-not-string", schema_doc("  x: {kind: [continuous]}\n"))
    yield check_case("schema-column-name-not-string", schema_doc("  1: {kind: integer}\n  null: {kind: integer}\n"),
                     "either")
    yield check_case("schema-nullable-string", schema_doc("  x: {kind: integer, nullable: sometimes}\n"))
    yield check_case("schema-decimals-negative", schema_doc("  x: {kind: continuous, decimals: -3}\n"))
    yield check_case("schema-decimals-huge", schema_doc("  x: {kind: continuous, decimals: 100000}\n"))
    yield check_case("schema-version-wrong", "version: 99\ncolumns:\n" + GOOD_SCHEMA_COLUMNS)
    yield check_case("schema-entity-key-unknown", schema_doc(GOOD_SCHEMA_COLUMNS, "entity_key: nope\n"))
    yield check_case("schema-entity-key-list", schema_doc(GOOD_SCHEMA_COLUMNS, "entity_key: [pid]\n"))
    yield check_case("schema-sensitive-not-list", schema_doc(GOOD_SCHEMA_COLUMNS, "sensitive: 5\n"))
    yield check_case("schema-rules-garbage", schema_doc(GOOD_SCHEMA_COLUMNS, "rules: [{a: b}, 5]\n"))
    yield check_case("schema-huge-int-5000-digits", schema_doc(col % f"[0, {'9' * 5000}]"))

    def json_schema(w: Work) -> list[str]:
        return ["schema", "check", w.text("schema.json", '{"version": 1, "columns": ' + nested(100_000) + "}")]

    yield Case("schema-json-deep-nesting", "schema", json_schema, "error", isolate=True)
    yield Case("schema-check-nonexistent", "schema", lambda w: ["schema", "check", str(w.p("nope.yaml"))], "error")

    # the same documents handed to fit
    def fit_schema(name: str, columns: str, expect: str = "error", large: bool = False) -> Case:
        return Case(name, "schema",
                    lambda w: fit_argv(w, w.good_csv(), "--schema", w.text("schema.yaml", schema_doc(columns))),
                    expect, check=bundle_written, fits=True, large_only=large)

    ok = GOOD_SCHEMA_COLUMNS
    yield fit_schema("fit-schema-bounds-inverted", ok.replace("bounds: [10, 60]", "bounds: [60, 10]"))
    yield fit_schema("fit-schema-categories-nested", ok.replace("categories: [f, m]", "categories: [[f], {m: 1}]"))
    yield fit_schema("fit-schema-missing-data-column", ok + "  ghost: {kind: integer}\n")
    yield Case("fit-schema-categories-narrower-than-data", "schema",
               lambda w: fit_argv(w, w.good_csv(), "--schema", w.text("schema.yaml", schema_doc(
                   ok.replace("categories: [f, m]", "categories: [f]")))), "either", check=bundle_written, fits=True,
               side_check=lambda w, out: ("an error prints an exact count of private rows"
                                          if re.search(r"\b\d+ (values?|rows?)\b", out) and "error" in out else None))
    yield fit_schema("fit-schema-kind-mismatch", ok.replace("bmi: {kind: continuous, nullable: false, bounds: [10, 60]}",
                                                            "bmi: {kind: datetime, nullable: false}"), "either",
                     large=True)
    yield Case("fit-schema-alias-bomb", "schema",
               lambda w: fit_argv(w, w.good_csv(), "--schema", w.text(
                   "schema.yaml", ALIAS_BOMB + "version: 1\ncolumns:\n  sex: {kind: categorical, categories: *i}\n")),
               "error", isolate=True, fits=True)


# ------------------------------------------------------------------ generate and evaluate
def _generate_cases() -> Iterable[Case]:
    cols = ["pid", "age", "bmi", "sex"]

    def gen(name: str, *args: str, expect: str = "error", check: Check | None = None, isolate: bool = False,
            out: str | None = None, large: bool = False) -> Case:
        return Case(name, "generate",
                    lambda w: ["generate", str(w.bundle()), *args, "--out", out or str(w.p("out.csv"))],
                    expect, check=check, isolate=isolate, fits=True, large_only=large)

    yield gen("generate-rows-control", "--rows", "5", "--seed", "1", expect="success", check=rows_written(5, cols))
    yield gen("generate-rows-parquet-control", "--rows", "7", expect="success", out=None, large=True,
              check=rows_written(7, cols))
    yield gen("generate-rows-zero", "--rows", "0")
    yield gen("generate-rows-negative", "--rows", "-1")
    yield gen("generate-rows-float-literal", "--rows", "1e3")
    yield gen("generate-rows-beyond-int64", "--rows", "99999999999999999999999", isolate=True)
    yield gen("generate-rows-1e12", "--rows", "1000000000000", isolate=True)
    yield gen("generate-rows-missing")
    yield gen("generate-entities-on-table-bundle", "--entities", "3")
    yield gen("generate-seed-negative", "--rows", "5", "--seed", "-1", expect="either", check=rows_written(5, cols))
    yield gen("generate-seed-huge", "--rows", "5", "--seed", str(2**70), expect="either", check=rows_written(5, cols),
              large=True)
    yield Case("generate-out-unwritable", "generate",
               lambda w: ["generate", str(w.bundle()), "--rows", "5", "--out", str(w.p("file") / "out.csv")]
               if w.text("file", "x") else [], "error", fits=True)
    yield Case("generate-out-proc", "generate",
               lambda w: ["generate", str(w.bundle()), "--rows", "5", "--out", "/proc/synthkit-fuzz/out.csv"],
               "error", fits=True)
    yield Case("generate-out-unknown-extension", "generate",
               lambda w: ["generate", str(w.bundle()), "--rows", "5", "--out", str(w.p("out.xlsx"))], "error", fits=True)
    yield Case("generate-out-exists", "generate",
               lambda w: ["generate", str(w.bundle()), "--rows", "5", "--out", w.text("out.csv", "keep")], "error",
               fits=True, side_check=lambda w, o: None if w.p("out.csv").read_text() == "keep" else "overwritten")
    yield Case("generate-removes-stale-partial", "generate",
               lambda w: (w.text(".out.csv.k3v9x2qa.partial", "pid,age,bmi,sex\nP1,1,1.0,f\n"),
                          ["generate", str(w.bundle()), "--rows", "5", "--out", str(w.p("out.csv"))])[1], "success",
               fits=True, check=lambda w, o: (None if not w.p(".out.csv.k3v9x2qa.partial").exists()
                                              else "a stale .partial of a killed run is left in place"))
    yield Case("generate-leaves-no-partial", "generate",
               lambda w: ["generate", str(w.bundle()), "--rows", "5", "--out", str(w.p("out.csv"))], "success",
               fits=True, check=lambda w, o: (None if not [p for p in w.dir.iterdir() if "partial" in p.name]
                                              else "a .partial file is left next to the output"))

    def evaluate(name: str, real: Callable[[Work], str], synthetic: Callable[[Work], str], expect: str = "error",
                 large: bool = False) -> Case:
        return Case(name, "evaluate",
                    lambda w: ["evaluate", str(w.bundle()), "--real", real(w), "--synthetic", synthetic(w),
                               "--out", str(w.p("report"))], expect,
                    check=report_written, fits=True, large_only=large)

    good_real = lambda w: w.good_csv("real.csv")  # noqa: E731
    yield evaluate("evaluate-control", good_real, _synthetic, "success")
    yield evaluate("evaluate-real-one-row", lambda w: w.good_csv("real.csv", n=1), _synthetic)
    yield evaluate("evaluate-real-header-only", lambda w: w.text("real.csv", "pid,age,bmi,sex\n"), _synthetic)
    yield evaluate("evaluate-real-nonexistent", lambda w: str(w.p("nope.csv")), _synthetic)
    yield evaluate("evaluate-synthetic-with-inf", good_real,
                   lambda w: _synthetic(w, good_frame(300, 1).assign(bmi=[np.inf, -np.inf, 27.0] * 100)), "either")
    yield evaluate("evaluate-synthetic-all-nan-column", good_real,
                   lambda w: _synthetic(w, good_frame(300, 1).assign(bmi=np.nan)), "either", large=True)
    yield evaluate("evaluate-synthetic-five-rows", good_real, lambda w: _synthetic(w, good_frame(5, 1)), "either")
    yield evaluate("evaluate-synthetic-missing-column", good_real,
                   lambda w: _synthetic(w, good_frame(300, 1).drop(columns=["bmi"])))
    yield evaluate("evaluate-synthetic-header-only", good_real, lambda w: w.text("synthetic.csv", "pid,age,bmi,sex\n"))
    yield evaluate("evaluate-synthetic-values-1e308", good_real,
                   lambda w: _synthetic(w, good_frame(300, 1).assign(bmi=1e308)), "either", large=True)
    yield evaluate("evaluate-synthetic-wrong-types", good_real,
                   lambda w: _synthetic(w, good_frame(300, 1).assign(age="old")), "either")
    yield evaluate("evaluate-real-binary", lambda w: w.raw("real.csv", bytes(range(256)) * 8), _synthetic)


# ------------------------------------------------------------------ SQL
def _sqlite(work: Work, name: str = "db.sqlite", rows: int = 60, blob: bool = False, table: str = "t") -> str:
    path = work.p(name)
    con = sqlite3.connect(path)
    quoted = '"' + table.replace('"', '""') + '"'
    con.execute(f'create table {quoted} (id integer, age integer, bmi real, sex text{", img blob" if blob else ""})')
    data = [(i, 20 + i % 50, 20.0 + i % 17, "fm"[i % 2]) + ((bytes([i % 256]) * 9,) if blob else ())
            for i in range(rows)]
    if data:
        con.executemany(f'insert into {quoted} values ({", ".join("?" * len(data[0]))})', data)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def _sql_cases() -> Iterable[Case]:
    def sql(name: str, build: Callable[[Work], list[str]], expect: str = "error", check: Check | None = None,
            side: Check | None = None, large: bool = False) -> Case:
        return Case(name, "sql", build, expect, check=check, side_check=side, large_only=large)

    yield sql("sql-table-control", lambda w: infer_argv(w, _sqlite(w), "--table", "t"), "success",
              expect_columns(["id", "age", "bmi", "sex"]))
    yield sql("sql-query-control", lambda w: infer_argv(w, _sqlite(w), "--query", "select age, sex from t"), "success",
              expect_columns(["age", "sex"]))
    yield sql("sql-missing-file", lambda w: infer_argv(w, f"sqlite:///{w.p('missing.db')}", "--table", "t"),
              side=no_file("missing.db"))
    yield sql("sql-attach-database-query",
              lambda w: infer_argv(w, _sqlite(w), "--query", f"ATTACH DATABASE '{w.p('attached.db')}' AS x"),
              side=no_file("attached.db"))
    yield sql("sql-attach-then-select",
              lambda w: infer_argv(w, _sqlite(w), "--query",
                                   f"ATTACH DATABASE '{w.p('attached.db')}' AS x; select * from t"),
              side=no_file("attached.db"), large=True)
    yield sql("sql-vacuum-into-query",
              lambda w: infer_argv(w, _sqlite(w), "--query", f"VACUUM INTO '{w.p('copy.db')}'"), side=no_file("copy.db"))
    yield sql("sql-delete-query", lambda w: infer_argv(w, _sqlite(w), "--query", "delete from t returning *"),
              side=table_intact("db.sqlite", "t", 60))
    yield sql("sql-drop-query", lambda w: infer_argv(w, _sqlite(w), "--query", "drop table t"),
              side=table_intact("db.sqlite", "t", 60))
    yield sql("sql-blob-column", lambda w: infer_argv(w, _sqlite(w, blob=True), "--table", "t"), "either",
              expect_columns(["id", "age", "bmi", "sex", "img"]))
    yield sql("sql-blob-query", lambda w: infer_argv(w, _sqlite(w, blob=True), "--query", "select img, age from t"),
              "either", expect_columns(["img", "age"]))
    yield sql("sql-injection-table-name", lambda w: infer_argv(w, _sqlite(w), "--table", "t; drop table t; --"),
              side=table_intact("db.sqlite", "t", 60))
    yield sql("sql-quoted-table-name", lambda w: infer_argv(w, _sqlite(w), "--table", 't" where 1=1 --'),
              side=table_intact("db.sqlite", "t", 60))
    yield sql("sql-odd-but-real-table-name", lambda w: infer_argv(w, _sqlite(w, table="we\"ird; name"),
                                                                  "--table", "we\"ird; name"), "success",
              expect_columns(["id", "age", "bmi", "sex"]), large=True)
    yield sql("sql-not-a-database", lambda w: infer_argv(w, "sqlite:///" + w.raw("db.sqlite", b"\x00garbage" * 100),
                                                         "--table", "t"))
    yield sql("sql-table-and-query", lambda w: infer_argv(w, _sqlite(w), "--table", "t", "--query", "select 1"))
    yield sql("sql-neither-table-nor-query", lambda w: infer_argv(w, _sqlite(w)))
    yield sql("sql-empty-table", lambda w: infer_argv(w, _sqlite(w, rows=0), "--table", "t"))
    yield sql("sql-query-syntax-error", lambda w: infer_argv(w, _sqlite(w), "--query", "selec nonsense"))
    yield sql("sql-multi-statement", lambda w: infer_argv(w, _sqlite(w), "--query", "select 1; select 2"), "either",
              large=True)
    yield sql("sql-huge-ints", lambda w: infer_argv(w, _sqlite(w), "--query",
                                                    "select 9223372036854775807 - id as big, age from t"), "either",
              expect_columns(["big", "age"]))
    yield sql("sql-int-text-mix", lambda w: infer_argv(w, _sqlite(w), "--query",
                                                       "select case when id % 2 then id else 'x' end as m from t"),
              "either", expect_columns(["m"]), large=True)
    yield sql("sql-uri-without-path", lambda w: infer_argv(w, "sqlite://", "--table", "t"))
    yield sql("sql-postgres-unreachable", lambda w: infer_argv(w, "postgresql://nobody@127.0.0.1:1/none", "--table", "t"),
              large=True)
    yield Case("fit-sql-blob-column", "sql", lambda w: fit_argv(w, _sqlite(w, blob=True, rows=300), "--table", "t",
                                                                "--no-privacy", epsilon=None),
               "either", check=bundle_written, fits=True)


# ------------------------------------------------------------------ FHIR, camt.053, bank exports
def _domain_cases() -> Iterable[Case]:
    def fhir(name: str, text: Callable[[], str], expect: str = "error", table: str = "patients",
             isolate: bool = False, large: bool = False, check: Check | None = None) -> Case:
        return Case(name, "fhir", lambda w: infer_argv(w, "fhir:" + w.text("bundle.json", text()), "--table", table),
                    expect, check=check or (schema_written if expect != "error" else None), isolate=isolate,
                    large_only=large)

    yield fhir("fhir-control", lambda: fhir_bundle(fhir_patients()), "success")
    yield fhir("fhir-control-observations", lambda: fhir_bundle(fhir_patients()), "success", table="observations")
    yield fhir("fhir-deep-nesting", lambda: '{"resourceType": "Bundle", "entry": ' + nested(100_000) + "}",
               isolate=True)
    yield fhir("fhir-deep-extension", lambda: fhir_bundle(fhir_patients(2))[:-2] + ', {"resource": '
               + nested(100_000, '{"extension": ', "}", '{"resourceType": "Patient", "id": "z"}') + "}]}", isolate=True)
    yield fhir("fhir-wrong-resource-types", lambda: fhir_bundle([{"resourceType": "Banana", "id": f"b{i}"}
                                                                 for i in range(5)]))
    yield fhir("fhir-resource-type-not-string", lambda: fhir_bundle([{"resourceType": 5, "id": "x"}]))
    yield fhir("fhir-entries-not-objects", lambda: json.dumps({"resourceType": "Bundle", "entry": [1, "x", None]}))
    yield fhir("fhir-not-json", lambda: "<xml/>")
    yield fhir("fhir-top-level-list", lambda: "[1, 2, 3]")
    yield fhir("fhir-patient-birthdate-garbage", lambda: fhir_bundle(
        [dict(r, birthDate="yesterday") if r["resourceType"] == "Patient" else r for r in fhir_patients()]), "either")
    yield fhir("fhir-observation-value-string", lambda: fhir_bundle(
        [dict(r, valueQuantity={"value": "high"}) if r["resourceType"] == "Observation" else r
         for r in fhir_patients()]), "either", table="observations")
    yield fhir("fhir-observation-value-1e308", lambda: fhir_bundle(
        [dict(r, valueQuantity={"value": 1e308, "unit": "/min"}) if r["resourceType"] == "Observation" else r
         for r in fhir_patients()]), "either", table="observations")
    yield fhir("fhir-subject-reference-garbage", lambda: fhir_bundle(
        [dict(r, subject={"reference": {"x": 1}}) if r["resourceType"] == "Encounter" else r
         for r in fhir_patients()]), "either", table="encounters", large=True)
    yield fhir("fhir-unknown-table", lambda: fhir_bundle(fhir_patients()), table="medications")
    yield Case("fhir-empty-folder", "fhir", lambda w: (w.p("fhir").mkdir(), infer_argv(w, f"fhir:{w.p('fhir')}",
                                                                                        "--table", "patients"))[1],
               "error")
    yield Case("fhir-ndjson-garbage-line", "fhir",
               lambda w: (w.p("fhir").mkdir(), w.text("fhir/Patient.ndjson", '{"resourceType": "Patient", "id": "a"}\n'
                                                      "not json\n"),
                          infer_argv(w, f"fhir:{w.p('fhir')}", "--table", "patients"))[2], "error")

    def camt(name: str, text: Callable[[], str], expect: str = "error", table: str = "transactions",
             isolate: bool = False, large: bool = False, side: Check | None = None) -> Case:
        return Case(name, "camt053", lambda w: infer_argv(w, "camt053:" + w.text("st.xml", text()), "--table", table),
                    expect, check=schema_written if expect != "error" else None, isolate=isolate, large_only=large,
                    side_check=side)

    secret = "FUZZ-XXE-MARKER"

    def xxe(w: Work) -> list[str]:
        target = w.text("secret.txt", secret)
        prolog = f'<!DOCTYPE d [<!ENTITY x SYSTEM "file://{target}">]>'
        doc = camt_document([camt_entry()], prolog=prolog).replace("<MsgId>M1</MsgId>", "<MsgId>&x;</MsgId>")
        return infer_argv(w, "camt053:" + w.text("st.xml", doc), "--table", "transactions")

    yield camt("camt-control", lambda: camt_document(camt_ok_entries()), "success")
    yield camt("camt-control-accounts", lambda: camt_document(camt_ok_entries()), "success", table="accounts")
    yield camt("camt-amount-5000-digits", lambda: camt_document([camt_entry("9" * 5000 + ".00")] + camt_ok_entries()))
    yield camt("camt-amount-exponent", lambda: camt_document([camt_entry("1E+308")] + camt_ok_entries()), "either",
               large=True)
    yield camt("camt-amount-garbage", lambda: camt_document([camt_entry("ten")] + camt_ok_entries()))
    yield camt("camt-amount-negative", lambda: camt_document([camt_entry("-5.00")] + camt_ok_entries()))
    yield camt("camt-date-garbage", lambda: camt_document([camt_entry(booked="2024-13-45")] + camt_ok_entries()))
    yield camt("camt-no-entries", lambda: camt_document([]))
    yield Case("camt-xxe-external-entity", "camt053", xxe, "error",
               side_check=not_in_output(secret, "a local file's content"))
    yield camt("camt-billion-laughs", lambda: camt_document(
        [camt_entry()], prolog='<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
        '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
        '<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>')
        .replace("<MsgId>M1</MsgId>", "<MsgId>&h;</MsgId>"), isolate=True)
    yield camt("camt-not-xml", lambda: "this is not xml")
    yield camt("camt-foreign-namespace", lambda: camt_document(camt_ok_entries()).replace("camt.053.001.02",
                                                                                          "camt.052.001.02"))
    yield camt("camt-deep-nesting", lambda: camt_document(camt_ok_entries()).replace(
        "<GrpHdr>", "<X>" * 100_000 + "</X>" * 100_000 + "<GrpHdr>"), isolate=True)
    yield camt("camt-truncated", lambda: camt_document(camt_ok_entries())[:-200])
    yield camt("camt-unknown-table", lambda: camt_document(camt_ok_entries()), table="loans")

    def bank(name: str, text: Callable[[], str] | bytes, expect: str = "error", large: bool = False) -> Case:
        def build(w: Work) -> list[str]:
            path = w.raw("export.csv", text) if isinstance(text, bytes) else w.text("export.csv", text())
            return infer_argv(w, "banktx:" + path, "--table", "transactions")
        return Case(name, "banktx", build, expect, check=schema_written if expect != "error" else None,
                    large_only=large)

    yield bank("banktx-control", lambda: BANKTX_HEADER + banktx_rows(), "success")
    yield bank("banktx-missing-columns", lambda: "when,value\n2024-01-01,1.0\n")
    yield bank("banktx-amount-text", lambda: BANKTX_HEADER + banktx_rows() + "A1,2024-02-01,lots,C,EUR\n")
    yield bank("banktx-amount-5000-digits", lambda: BANKTX_HEADER + banktx_rows() + f"A1,2024-02-01,{'9' * 5000},C,EUR\n")
    yield bank("banktx-amount-inf", lambda: BANKTX_HEADER + banktx_rows() + "A1,2024-02-01,inf,C,EUR\n")
    yield bank("banktx-dates-garbage", lambda: BANKTX_HEADER + banktx_rows() + "A1,someday,1.0,C,EUR\n")
    yield bank("banktx-empty-file", lambda: "")
    yield bank("banktx-header-only", lambda: BANKTX_HEADER)
    yield bank("banktx-binary", bytes(range(256)) * 8)
    yield bank("banktx-duplicate-header", lambda: "account,date,amount,amount,dc\n" + "A1,2024-01-01,1,2,C\n" * 10)
    yield bank("banktx-cr-only-endings", lambda: (BANKTX_HEADER + banktx_rows()).replace("\n", "\r"), "either",
               large=True)


# ------------------------------------------------------------------ jobs, policies, registry, reviewers, others
def _other_cases() -> Iterable[Case]:
    def c(name: str, build: Callable[[Work], list[str]], expect: str = "error", isolate: bool = False,
          large: bool = False, check: Check | None = None) -> Case:
        return Case(name, "other", build, expect, isolate=isolate, large_only=large, check=check)

    yield c("connectors-list", lambda w: ["connectors"], "success")
    yield c("run-job-alias-bomb", lambda w: ["run", w.text("job.yaml", ALIAS_BOMB + "version: 1\nname: *i\n")],
            isolate=True)
    yield c("run-job-deep-nesting", lambda w: ["run", w.text("job.yaml", "version: 1\nname: " + nested(100_000) + "\n")],
            isolate=True)
    yield c("run-job-20mb", lambda w: ["run", w.text("job.yaml", "# " + "x" * 20_000_000 + "\nversion: 1\n")],
            isolate=True, large=True)
    yield c("run-job-not-mapping", lambda w: ["run", w.text("job.yaml", "- 1\n- 2\n")])
    yield c("run-job-python-tag", lambda w: ["run", w.text("job.yaml", "version: !!python/object/apply:os.system [x]\n")])
    yield c("run-job-missing-file", lambda w: ["run", str(w.p("nope.yaml"))])
    yield c("run-job-non-utf8", lambda w: ["run", w.raw("job.yaml", b"version: 1\nname: \xff\xfe\n")])
    yield c("run-job-empty-fields", lambda w: ["run", w.text("job.yaml", "version: 1\nname:\nsource:\nmodel:\n")])
    yield c("policy-check-alias-bomb", lambda w: ["policy", "check", w.text("p.yaml", ALIAS_BOMB)], isolate=True)
    yield c("policy-check-garbage", lambda w: ["policy", "check", w.raw("p.yaml", bytes(range(256)))])
    yield c("policy-check-wrong-types", lambda w: ["policy", "check", w.text("p.yaml", "name: x\nthresholds: 5\n")])
    yield c("policy-check-shipped-control", lambda w: ["policy", "check", "default"], "success")
    yield c("releases-list-garbage-registry", lambda w: ["releases", "list", "--registry",
                                                         w.raw("reg.db", b"\x00garbage" * 200)])
    yield c("releases-list-fresh-registry", lambda w: ["releases", "list", "--registry", str(w.p("reg.db"))], "either")
    yield c("releases-show-unknown-run", lambda w: ["releases", "show", "R-nope", "--registry", str(w.p("reg.db"))])
    yield c("releases-verify-unknown-run", lambda w: ["releases", "verify", "R-nope", "--registry", str(w.p("reg.db"))])
    yield c("release-publish-unknown-run", lambda w: ["release", "publish", "R-nope", "--registry", str(w.p("reg.db"))])
    yield c("release-approve-unknown-reviewer", lambda w: ["release", "approve", "R-nope", "--registry",
                                                           str(w.p("reg.db")), "--reviewer", "nobody", "--reason", "x",
                                                           "--reviewers", w.text("rev.yaml", "reviewers: {}\n")])
    yield c("reviewers-add-unwritable", lambda w: ["reviewers", "add", "ann", "--no-password", "--file",
                                                   str(w.p("file") / "r.yaml")] if w.text("file", "x") else [])
    yield c("reviewers-add-garbage-file", lambda w: ["reviewers", "add", "ann", "--no-password", "--file",
                                                     w.raw("r.yaml", b"\xff\xfe: [\n")])
    yield c("review-port-privileged", lambda w: ["review", "--port", "80"])
    yield c("audit-epsilon-negative", lambda w: ["audit", w.good_csv(), "--out", str(w.p("audit")), "--epsilon", "-1",
                                                 "--trials", "1"])
    yield c("audit-trials-zero", lambda w: ["audit", w.good_csv(), "--out", str(w.p("audit")), "--epsilon", "1",
                                            "--trials", "0"])
    yield c("audit-canaries-huge", lambda w: ["audit", w.good_csv(), "--out", str(w.p("audit")), "--epsilon", "1",
                                              "--trials", "2", "--canaries", "1000000000"], isolate=True, large=True)
    yield c("demo-epsilon-negative", lambda w: ["demo", "--out", str(w.p("demo")), "--epsilon", "-1"], isolate=True)
    yield c("demo-rows-negative", lambda w: ["demo", "--out", str(w.p("demo")), "--rows", "-1"], isolate=True,
            large=True)
    yield c("unknown-command", lambda w: ["frobnicate"])


# ------------------------------------------------------------------ random inputs (large corpus)
def _random_cases(n_csv: int = 40, n_yaml: int = 40, seed: int = 16) -> Iterable[Case]:
    """Seeded random CSV bytes and YAML documents: any outcome but an exception is fine."""
    rng = random.Random(seed)
    alphabet = [b"a", b"b", b"1", b"-", b".", b"e", b",", b";", b"\n", b"\r", b'"', b" ", b"\x00", b"\xff",
                b"inf", b"nan", b"1e308", b"9223372036854775808", b"\t"]
    for i in range(n_csv):
        blob = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        yield Case(f"random-csv-bytes-{i:03d}", "random", lambda w, b=blob: infer_argv(w, w.raw("data.csv", b)),
                   "either", large_only=True)
    scalars = ["1", "-1", "1e400", ".nan", ".inf", "null", "~", "x", "[]", "{}", "true", "'s'", "*a", "&a 1",
               "!!binary aGVsbG8=", "2024-01-01", "[1, [2, [3]]]", "{kind: integer}", "{kind: categorical}"]
    keys = ["version", "columns", "kind", "bounds", "categories", "nullable", "entity_key", "rules", "decimals",
            "sensitive", "x", "y"]
    for i in range(n_yaml):
        def doc(depth: int) -> str:
            if depth > 3 or rng.random() < 0.3:
                return rng.choice(scalars)
            items = [f"{rng.choice(keys)}: {doc(depth + 1)}" for _ in range(rng.randint(0, 4))]
            return "{" + ", ".join(items) + "}"
        text = "version: 1\ncolumns: " + doc(0) + "\n" if rng.random() < 0.7 else doc(0) + "\n"
        yield Case(f"random-schema-yaml-{i:03d}", "random",
                   lambda w, t=text: ["schema", "check", w.text("schema.yaml", t)], "either", large_only=True)


def all_cases() -> list[Case]:
    cases = [*_data_cases(), *_fit_cases(), *_schema_cases(), *_generate_cases(), *_bundle_cases(), *_sql_cases(),
             *_domain_cases(), *_other_cases(), *_random_cases()]
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError("duplicate case names: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    return cases


# The cases that may hang run in a subprocess each (seconds apiece): the tests keep one or
# two per hazard (alias expansion, size, nesting, rows, hyperparameters, columns).
SMALL_ISOLATED = {
    "schema-alias-bomb-in-categories", "schema-recursive-alias", "schema-20mb-comment", "schema-deep-nesting",
    "schema-json-deep-nesting", "jsonl-deep-nesting", "fhir-deep-nesting", "camt-billion-laughs", "camt-deep-nesting",
    "inspect-manifest-deep-nesting", "generate-manifest-embedding-huge", "generate-rows-beyond-int64",
    "generate-rows-1e12", "epochs-huge", "dphmm-states-huge", "fit-10k-columns", "run-job-alias-bomb",
}


def small_corpus() -> list[Case]:
    return [c for c in all_cases() if not c.large_only and (not c.isolate or c.name in SMALL_ISOLATED)]


def large_corpus() -> list[Case]:
    return all_cases()
