"""--out and --target errors of generate, evaluate and fit come before the bundle's full
validation and before any data is read (issue 17). Checked on STATE, not time: each case
runs in one fresh process (tests/test_fast_errors.CHILD) and the test reads which heavy
modules are loaded; benchmarks/bench_startup.py --bundle measures the wall time.

The bundle here is a folder whose manifest.json is a JSON object of a table bundle: the
--out and --target checks need only its kind, so they must refuse before the manifest's
validation (which loads synthkit.transforms and scipy, 2-3 s on a busy machine, and would
call this folder damaged).

Negative control, run once against the code before (git archive db0fc38, PYTHONPATH set
to it): every generate and evaluate case below fails there (the bundle is validated first
and the error is the damaged manifest), and the two /proc cases pass os.access as root, so
`fit` read the data and spent the budget before failing, and generate said "0 bytes free".
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_fast_errors import CHILD, REPO

HEAVY = ("synthkit.transforms", "scipy", "pandas", "torch")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("out")
    data = tmp / "small.csv"
    with data.open("w", newline="") as f:  # made-up public numbers
        w = csv.writer(f)
        w.writerow(["id", "x"])
        w.writerows([i, i * 0.5] for i in range(20))
    bundle = tmp / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"format": "synthkit-model", "model": {"class": "DPCTGAN"}}))
    existing = tmp / "existing.csv"
    existing.write_text("x\n1\n")
    b, d = str(bundle), str(data)
    cases = {
        "generate existing": ["generate", b, "--rows", "5", "--out", str(existing)],
        "generate xlsx": ["generate", b, "--rows", "5", "--out", str(tmp / "x.xlsx")],
        "generate /proc": ["generate", b, "--rows", "5", "--out", "/proc/nope/x.csv"],
        "evaluate --target": ["evaluate", b, "--real", d, "--synthetic", d, "--target", "nope", "--out", str(tmp / "r")],
        "fit /proc": ["fit", d, "--epsilon", "1", "--out", "/proc/x/m"],
    }
    script = CHILD.replace('("torch", "opacus", "sklearn", "sdmetrics")', repr(HEAVY))
    # a PYTHONPATH given first (the negative control runs the code before this way)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p),
               COLUMNS="200")
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(list(cases.items()))], capture_output=True,
                          text=True, env=env, cwd=tmp, check=True)
    return {r["name"]: r for r in json.loads(proc.stdout.splitlines()[-1])}


EXPECTED = {
    "generate existing": ("--out", "already exists", "--overwrite"),
    "generate xlsx": ("--out", "unsupported file type '.xlsx'", ".csv"),
    "evaluate --target": ("--target 'nope' is not a column",),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_output_or_target_error_comes_before_the_bundle_is_validated(results, name):
    r = results[name]
    assert r["code"] == 2, r
    line = r["stderr"].strip()
    assert "\n" not in line and all(part in line for part in EXPECTED[name]), line
    assert r["loaded"] == [], r  # no synthkit.transforms, scipy, pandas or torch


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", ["generate /proc", "fit /proc"])
def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(results, name):
    r = results[name]
    assert r["code"] == 2, r
    line = r["stderr"].strip()
    assert "--out" in line and ("cannot be created or written" in line or "not writable" in line), line
    assert "bytes free" not in line
    assert "torch" not in r["loaded"] and "pandas" not in r["loaded"], r  # no data read, nothing spent


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_hostile_manifest_file_is_refused_in_one_line_not_read(tmp_path):
    """Review R3 (session 9): the raw-kind pre-read of `generate` opened manifest.json with no
    regular-file check and no size cap, before the full validation (which has both): a FIFO
    blocked generate forever, and a huge manifest was read whole into memory. Now the
    pre-read skips anything but a regular file of at most MAX_MANIFEST_BYTES, and the full
    validation refuses it in one line (exit 2). Negative control: on 2df589d the FIFO case
    blocks (this test's child is killed by the guard below and the test fails)."""
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "manifest.json")
    big = tmp_path / "big"
    big.mkdir()
    from synthkit.manifest import MAX_MANIFEST_BYTES
    with (big / "manifest.json").open("wb") as f:  # a sparse file: no disk used
        f.truncate(MAX_MANIFEST_BYTES + 10)
    cases = {name: ["generate", str(folder), "--rows", "5", "--out", str(tmp_path / f"{name}.csv")]
             for name, folder in (("fifo", fifo), ("big", big))}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p),
               COLUMNS="200")
    # the guard is a deadlock breaker for the negative control, not a timing assertion
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(list(cases.items()))], capture_output=True,
                          text=True, env=env, cwd=tmp_path, check=True, timeout=600)
    results = {r["name"]: r for r in json.loads(proc.stdout.splitlines()[-1])}
    for name, r in results.items():
        assert r["code"] == 2, (name, r)
        line = r["stderr"].strip()
        assert "\n" not in line and "manifest" in line, (name, line)
        assert not (tmp_path / f"{name}.csv").exists()
