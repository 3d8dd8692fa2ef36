"""Sharded generation (issue 19, test 6): a Parquet dataset of S part files committed by
_SUCCESS has exactly N rows, surrogate keys unique across shards, the distribution of
single-process generation, the same bytes for the same seed and S, and a killed run leaves
nothing that looks complete; its re-run completes without duplicating rows.

Negative controls: the old numbering (every shard's keys from 1) collides; a shifted
column fails the KS bracket; pyarrow reads the killed run's folder as a short dataset,
which is why the reader demands _SUCCESS; a tampered part file is refused and rewritten.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A small non-private DPTVAE (3 epochs) with an identifier column (made-up data)."""
    rng = np.random.default_rng(0)
    n = 1200
    df = pd.DataFrame({
        "patient_id": [f"P{i:06d}" for i in rng.permutation(n)],
        "age": rng.integers(18, 90, n),
        "bmi": rng.normal(27, 4, n).round(1),
        "sex": rng.choice(["female", "male"], n),
        "smoker": rng.choice([True, False], n),
    })
    tmp = tmp_path_factory.mktemp("sharded")
    df.to_csv(tmp / "p.csv", index=False)
    out = tmp / "model"
    r = _run("fit", str(tmp / "p.csv"), "--model", "dptvae", "--no-privacy", "--epochs", "3", "--batch-size", "100",
             "--device", "cpu", "--seed", "0", "--out", str(out))
    assert r.exit_code == 0, r.output
    return out


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, side="right") / len(a)
                               - np.searchsorted(b, grid, side="right") / len(b))))


def _ks_limit(n: int, m: int) -> float:
    """Two-sample KS critical value at alpha = 0.001 (c = sqrt(-ln(alpha/2)/2) = 1.95)."""
    return float(np.sqrt(-np.log(0.0005) / 2) * np.sqrt((n + m) / (n * m)))


def _tvd_limit(p: np.ndarray, n: int, m: int) -> float:
    """Half the sum over categories of 4 standard errors of a difference of proportions."""
    return float(0.5 * np.sum(4 * np.sqrt(p * (1 - p) * (1 / n + 1 / m))))


def _same_distribution(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    bad = []
    for col in ("age", "bmi"):
        x, y = a[col].dropna().to_numpy(float), b[col].dropna().to_numpy(float)
        if _ks(x, y) > _ks_limit(len(x), len(y)):
            bad.append(col)
    for col in ("sex", "smoker"):
        pa_, pb = a[col].astype(str).value_counts(normalize=True), b[col].astype(str).value_counts(normalize=True)
        pa_, pb = pa_.align(pb, fill_value=0.0)
        pooled = (pa_ * len(a) + pb * len(b)) / (len(a) + len(b))
        if 0.5 * float(np.abs(pa_ - pb).sum()) > _tvd_limit(pooled.to_numpy(), len(a), len(b)):
            bad.append(col)
    return bad


def test_rows_keys_and_distribution_match_single_process(bundle, tmp_path):
    from synthkit.bundle import load
    from synthkit.distributed.generate import generate_sharded, read_dataset, shard_tasks

    n, s = 8001, 4
    out = generate_sharded(bundle, n, s, tmp_path / "ds", seed=11)
    data = read_dataset(tmp_path / "ds")
    assert len(data) == n and out.manifest["total_rows"] == n
    assert out.manifest["rows_per_shard"] == [2001, 2000, 2000, 2000]
    assert data["patient_id"].is_unique
    assert set(data["patient_id"]) == {f"patient_id-{i:09d}" for i in range(1, n + 1)}

    model = load(bundle)
    single = model.sample(n, seed=12)  # another draw, one process
    assert _same_distribution(data, single) == []
    # the bracket can fail: a shifted column is caught
    shifted = single.assign(age=single["age"] + 3)
    assert _same_distribution(data, shifted) == ["age"]
    # negative control, the old numbering (keys from 1 in every shard) collides across shards
    old = pd.concat([model.sample(t.rows, seed=t.seed) for t in shard_tasks(n, s, 11)], ignore_index=True)
    assert not old["patient_id"].is_unique


def test_same_seed_same_bytes_and_shard_streams_differ(bundle, tmp_path):
    from synthkit.distributed.generate import generate_sharded, read_dataset

    a = generate_sharded(bundle, 3000, 3, tmp_path / "a", seed=5).manifest
    b = generate_sharded(bundle, 3000, 3, tmp_path / "b", seed=5).manifest
    c = generate_sharded(bundle, 3000, 3, tmp_path / "c", seed=6).manifest
    assert [f["sha256"] for f in a["files"]] == [f["sha256"] for f in b["files"]]
    assert (tmp_path / "a" / "part-00001.parquet").read_bytes() == (tmp_path / "b" / "part-00001.parquet").read_bytes()
    assert not set(f["sha256"] for f in a["files"]) & set(f["sha256"] for f in c["files"])
    # the shards' streams differ: no shard repeats another's values (keys aside)
    data = read_dataset(tmp_path / "a").drop(columns="patient_id")
    parts = [data.iloc[i * 1000:(i + 1) * 1000].reset_index(drop=True) for i in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.allclose(parts[i]["bmi"].to_numpy(float), parts[j]["bmi"].to_numpy(float), equal_nan=True)


KILLED_RUN = r"""
import sys
from synthkit.distributed.generate import generate_sharded
generate_sharded(sys.argv[1], int(sys.argv[2]), 4, sys.argv[3], seed=3, chunk_size=5000)
"""


def _wait_for(predicate, proc: subprocess.Popen, what: str) -> None:
    """Wait on STATE (no time assertion): poll until `predicate()` holds; a generous
    deadline only keeps a broken run from hanging CI."""
    deadline = time.monotonic() + 600
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the generating process ended (code {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within 600 s")
        time.sleep(0.02)


def test_killed_run_leaves_no_complete_output_and_rerun_completes(bundle, tmp_path):
    import pyarrow.dataset as ds

    from synthkit.distributed.generate import SUCCESS, generate_sharded, read_dataset
    from synthkit.errors import SourceError

    n, out = 200_000, tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(bundle), str(n), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def mid_write() -> bool:  # one shard complete and the next one's partial on disk
        names = os.listdir(out) if out.is_dir() else []
        return "part-00000.parquet" in names and any(x.endswith(".partial") for x in names)

    try:
        _wait_for(mid_write, proc, "complete shard and a partial")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / SUCCESS).exists()
    with pytest.raises(SourceError, match="incomplete sharded dataset") as err:
        read_dataset(out)
    assert str(out) in str(err.value) and "re-run" in str(err.value)
    # what a reader without the marker sees: a plausible but short dataset (why _SUCCESS exists)
    assert 0 < ds.dataset(str(out), format="parquet").count_rows() < n
    r = _run("generate", str(bundle), "--rows", str(n), "--shards", "4", "--out", str(out / "part-00000.parquet"))
    assert r.exit_code == 2 and "existing file" in r.output

    # the re-run (same plan) keeps the complete shard and rewrites the rest under the same names
    again = generate_sharded(bundle, n, 4, out, seed=3, chunk_size=5000)
    assert again.shards[0].kept and not any(s.kept for s in again.shards[1:])
    data = read_dataset(out)
    assert len(data) == n and data["patient_id"].is_unique
    assert sorted(p.name for p in out.iterdir()) == [SUCCESS] + [f"part-0000{i}.parquet" for i in range(4)]
    # and it equals a run that was never interrupted
    clean = generate_sharded(bundle, n, 4, tmp_path / "clean", seed=3, chunk_size=5000).manifest
    assert again.manifest == clean


def test_tampered_shard_is_refused_and_rewritten_on_resume(bundle, tmp_path):
    from synthkit.distributed.generate import PLAN, RECORDS, SUCCESS, generate_sharded, open_dataset
    from synthkit.errors import SourceError

    out = tmp_path / "t"
    first = generate_sharded(bundle, 2000, 2, out, seed=4).manifest
    part = out / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(SourceError, match="SHA-256"):
        open_dataset(out, verify=True)
    # a run cut before its commit: plan and records still there, marker gone
    (out / SUCCESS).unlink()
    plan = {"format": "synthkit-sharded-parquet", "format_version": 1, "total_rows": 2000, "shards": 2,
            "rows_per_shard": [1000, 1000], "chunk_size": 100_000, "bundle_manifest_sha256":
            first["bundle_manifest_sha256"], "seed": __import__("hashlib").sha256(b"synthkit-seed:4").hexdigest()}
    (out / PLAN).write_text(json.dumps(plan))
    (out / RECORDS).mkdir()
    for f in first["files"]:
        (out / RECORDS / f"{Path(f['name']).stem}.json").write_text(json.dumps(f))
    again = generate_sharded(bundle, 2000, 2, out, seed=4)
    assert [s.kept for s in again.shards] == [True, False]  # the tampered one is rewritten
    assert again.manifest == first
    # a different plan (other rows) clears the old part files instead of mixing them
    with pytest.raises(SourceError, match="already holds a complete dataset"):
        generate_sharded(bundle, 1500, 3, out, seed=4)
    (out / SUCCESS).unlink()
    third = generate_sharded(bundle, 1500, 3, out, seed=4)
    assert not any(s.kept for s in third.shards) and len(open_dataset(out).to_table()) == 1500


FAST = r"""
import contextlib, io, json, sys
from synthkit.cli import _run_app
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
        code = _run_app(json.loads(sys.argv[1]))
    except SystemExit as exit_:
        code = exit_.code
print(json.dumps({"code": code, "stderr": err.getvalue(), "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize("extra, needle", [
    (["--engine", "spark", "--shards", "2"], "--engine must be local or ray"),
    (["--shards", "0"], "--shards must be in"),
    (["--shards", "9", "--rows", "4"], "--shards 9 is more than --rows 4"),
    (["--ray-address", "auto", "--shards", "2"], "--ray-address applies to --engine ray"),
    (["--shards", "2", "--out-is-file"], "is an existing file"),
], ids=["engine", "shards-0", "shards-over-rows", "address-without-ray", "out-file"])
def test_option_errors_are_one_line_before_torch(bundle, tmp_path, extra, needle):
    taken = tmp_path / "taken.parquet"
    taken.write_bytes(b"x")
    out = str(taken) if "--out-is-file" in extra else str(tmp_path / "o")
    extra = [x for x in extra if x != "--out-is-file"]
    argv = ["generate", str(bundle), "--rows", "100", "--out", out, *extra]
    res = json.loads(subprocess.run([sys.executable, "-c", FAST, json.dumps(argv)], capture_output=True, text=True,
                                    check=True, cwd=REPO).stdout)
    lines = [ln for ln in res["stderr"].splitlines() if ln.strip()]
    assert res["code"] == 2 and len(lines) == 1 and needle in lines[0], res
    assert not res["torch"]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'synthkit[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=4, include_dashboard=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_cli_ray_engine_four_shards_matches_local(bundle, tmp_path, ray_local):
    from synthkit.distributed.generate import read_dataset, read_success

    r = _run("generate", str(bundle), "--rows", "4003", "--engine", "ray", "--shards", "4", "--seed", "7",
             "--out", str(tmp_path / "ray"))
    assert r.exit_code == 0, r.output
    r = _run("generate", str(bundle), "--rows", "4003", "--shards", "4", "--seed", "7", "--out", str(tmp_path / "loc"))
    assert r.exit_code == 0, r.output
    data = read_dataset(tmp_path / "ray")
    assert len(data) == 4003 and data["patient_id"].is_unique
    assert read_success(tmp_path / "ray") == read_success(tmp_path / "loc")  # same files, same SHA-256
    assert ray_local.is_initialized()  # an engine that found Ray running leaves it running


def test_a_failed_ray_shard_is_one_line_and_nothing_is_committed(bundle, tmp_path, ray_local):
    """A worker that cannot load the bundle (its weights file cut short): one ArtifactError
    line naming the shard and the cure, no _SUCCESS. The driver checked the intact bundle, so
    the worker's failure is reached through the engine itself."""
    import shutil

    import numpy as np

    from synthkit.bundle import load
    from synthkit.distributed.generate import SUCCESS, _probe_schema, _run_ray, shard_tasks
    from synthkit.errors import ArtifactError

    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    weights = broken / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    schema = _probe_schema(load(bundle), 100, np.random.SeedSequence(0))
    out = tmp_path / "out"
    (out / "_shards").mkdir(parents=True)
    with pytest.raises(ArtifactError) as err:
        _run_ray(broken, shard_tasks(200, 2, 0), out, schema, None, None, 0, 200)
    message = str(err.value)
    assert "shard " in message and "re-run the same command" in message and "\n" not in message
    assert not (out / SUCCESS).exists() and not list(out.glob("part-*.parquet"))
