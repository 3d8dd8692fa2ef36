"""Threads that fit the machine (issue 17, synthkit.threads): --threads on the commands,
$SYNTHKIT_THREADS, a job's `threads` key and a default of half the CPUs.

State, not time: a patched model `fit` records torch.get_num_threads() and the pool
variables at the moment the fit starts (torch is set to 3 threads first, so an option
that does not reach the fit leaves 3), and a fresh process reports the size of polars'
thread pool. Bad values are one line naming the option or variable. The wall-time effect
of the default (two concurrent fits) is measured in benchmarks/bench_threads.py.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import synthkit.jobs as jobs
from synthkit import threads as threads_mod
from synthkit.cli import app
from synthkit.errors import ConfigError
from synthkit.jobs import JobFailed, JobSpecError, load_job, run_job
from test_jobs import write_job

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
VARS = (*threads_mod._POOL_VARS, threads_mod.ENV)


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def clean(monkeypatch):
    """No thread variable set; torch's and the BLAS pools' sizes restored afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    blas = threadpool_limits(limits=None)  # records the pools' sizes to restore
    yield monkeypatch
    torch.set_num_threads(before)
    blas.restore_original_limits()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("threads") / "small.csv"
    with path.open("w", newline="") as f:  # made-up public numbers
        w = csv.writer(f)
        w.writerow(["x", "y"])
        for i in range(60):
            w.writerow([i * 0.5, "a" if i % 3 else "b"])
    return path


@pytest.fixture
def seen_in_fit(clean):
    """Replaces DPTVAE.fit by a recorder that stops the command with a ConfigError."""
    import torch

    from synthkit.models.tvae import DPTVAE

    seen: list[tuple[int, str | None, str | None]] = []

    def recorder(self, *args, **kwargs):
        seen.append((torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"),
                     os.environ.get("POLARS_MAX_THREADS")))
        raise ConfigError("stopped by the test once the fit started")

    clean.setattr(DPTVAE, "fit", recorder)
    return seen


def _fit_until_stopped(data: Path, out: Path, *extra: str) -> None:
    import torch
    torch.set_num_threads(3)  # what a fit would see if the setting never reached it
    r = _run("fit", data, "--model", "dptvae", "--no-privacy", "--epochs", "1", "--out", out, *extra)
    assert r.exit_code == 2 and "stopped by the test" in r.output, r.output


def test_threads_option_reaches_torch_inside_the_fit(seen_in_fit, data, tmp_path):
    _fit_until_stopped(data, tmp_path / "m", "--threads", "2")
    assert seen_in_fit == [(2, "2", "2")]


def test_the_environment_variable_and_the_default_reach_the_fit(seen_in_fit, clean, data, tmp_path):
    clean.setenv("SYNTHKIT_THREADS", "1")
    _fit_until_stopped(data, tmp_path / "m")
    assert seen_in_fit[-1] == (1, "1", "1")
    for name in VARS:  # nothing set: half the CPUs this process may use
        clean.delenv(name, raising=False)
    _fit_until_stopped(data, tmp_path / "m")
    half = max(1, threads_mod.available_cpus() // 2)
    assert seen_in_fit[-1] == (half, str(half), str(half))
    for name in VARS:  # an OMP_NUM_THREADS the scheduler set is respected
        clean.delenv(name, raising=False)
    clean.setenv("OMP_NUM_THREADS", "5")
    _fit_until_stopped(data, tmp_path / "m")
    assert seen_in_fit[-1] == (5, "5", "5")


@pytest.mark.parametrize("command", ["fit", "generate", "evaluate", "audit"])
@pytest.mark.parametrize("value", ["0", "5000"])
def test_a_bad_threads_option_is_one_line(clean, data, tmp_path, command, value):
    args = {"fit": ["fit", data, "--epsilon", "1", "--out", tmp_path / "m"],
            "generate": ["generate", tmp_path / "b", "--rows", "5", "--out", tmp_path / "s.csv"],
            "evaluate": ["evaluate", tmp_path / "b", "--real", data, "--synthetic", data, "--out", tmp_path / "r"],
            "audit": ["audit", data, "--epsilon", "1", "--out", tmp_path / "a"]}[command]
    r = _run(*args, "--threads", value)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith("error: --threads") and f"got {value}" in lines[0] and "1 to 1024" in lines[0]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["two", "0", "-1", "2.5"])
def test_a_bad_environment_variable_is_one_line(clean, data, tmp_path, value):
    clean.setenv("SYNTHKIT_THREADS", value)
    r = _run("fit", data, "--epsilon", "1", "--out", tmp_path / "m")
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: $SYNTHKIT_THREADS"), r.output


@pytest.mark.parametrize("value", [0, "two", True, 2.0])
def test_a_bad_threads_key_is_listed_with_the_other_problems(tmp_path, value):
    with pytest.raises(JobSpecError) as info:
        load_job(write_job(tmp_path, threads=value, seed=-1))
    problems = info.value.problems
    assert any(p.startswith("threads must be a whole number") for p in problems), problems
    assert any(p.startswith("seed must be") for p in problems), problems  # every problem at once


def _stop_job_fit(clean) -> list[int]:
    """Replace the job's fit by one that records torch's thread count and stops the job;
    torch is set to 3 first, so a setting that was missed shows as 3."""
    import torch
    seen: list[int] = []

    def fit(spec, train, schema, out):
        seen.append(torch.get_num_threads())
        raise ConfigError("stopped by the test")

    clean.setattr(jobs, "_fit", fit)
    torch.set_num_threads(3)
    return seen


def test_a_jobs_threads_key_reaches_torch(clean, tmp_path):
    path = write_job(tmp_path, threads=2)
    assert load_job(path).threads == 2 and load_job(write_job(tmp_path)).threads is None
    path = write_job(tmp_path, threads=2)
    seen = _stop_job_fit(clean)
    with pytest.raises(JobFailed):
        run_job(path, registry=str(tmp_path / "registry.db"))
    assert seen == [2]


def test_run_threads_option_overrides_the_jobs_key(clean, tmp_path):
    seen = _stop_job_fit(clean)
    path = write_job(tmp_path, threads=2)
    r = _run("run", path, "--registry", tmp_path / "registry.db", "--threads", "1")
    assert r.exit_code == 2 and seen == [1], r.output
    r = _run("run", path, "--registry", tmp_path / "registry.db", "--threads", "0")
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: --threads"), r.output


def test_polars_pool_follows_threads_set_before_it_loads(data, tmp_path):
    """Polars sizes its pool once, when imported: the CLI applies --threads first."""
    child = ("import sys, os; from synthkit.cli import _run_app; "
             "code = _run_app(sys.argv[1:]); import polars, json; "
             "print(json.dumps([code, polars.thread_pool_size(), os.environ.get('OMP_NUM_THREADS')]))")
    env = {k: v for k, v in os.environ.items() if k not in VARS}
    env["PYTHONPATH"] = str(REPO)
    argv = ["fit", str(data), "--epsilon", "1", "--entity-key", "nope", "--out", str(tmp_path / "m"),
            "--threads", "3"]  # the error comes after the header was read with polars
    proc = subprocess.run([sys.executable, "-c", child, *argv], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    code, pool, omp = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (code, pool, omp) == (2, 3, "3"), proc.stderr


def test_the_default_is_half_the_cpus_or_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpus = threads_mod.available_cpus()
    assert 1 <= cpus <= (os.cpu_count() or 1)
    assert threads_mod.default_threads() == max(1, cpus // 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert threads_mod.default_threads() == 7
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")  # not a number: ignored
    assert threads_mod.default_threads() == max(1, cpus // 2)
