"""Sharded generation to object storage (issue 19): `--out s3://bucket/prefix` keeps the
guarantees of a local folder against a real S3 API (moto's server on 127.0.0.1, started
here; no other network). Object storage has no rename, so each part is uploaded under its
final name once complete and `_SUCCESS` is PUT last.

- the same seed gives the same files (SHA-256) as a local run, and the reader reads them;
- a `kill -9` mid-write leaves no `_SUCCESS` and the reader refuses, while pyarrow reads a
  short dataset under the prefix (the control: why the reader demands `_SUCCESS`); the
  re-run keeps the complete parts and equals an uninterrupted run;
- a tampered object is refused by the verifying reader and rewritten on resume;
- credentials inside the URI and unknown schemes are one line.

Negative control, run once against the old code (b3d9f14, before this file's commit): all 8
tests failed. generate_sharded took "s3://..." for a local path, and the CLI refused every
URI with a line that echoed it whole, the password of "s3://KEY:SECRET@bucket/p" included.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app

pytest.importorskip("moto", reason="moto[server] is not installed (pip install -e '.[test]')")
boto3 = pytest.importorskip("boto3")

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
BUCKET = "synthkit-test"


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free loopback port; the AWS SDKs (pyarrow's too) find it and
    the fake credentials through the environment, as a user's job would."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 120  # wait on the server's state; the deadline only stops a hang
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto's S3 server did not start")
                time.sleep(0.05)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("s3")
    finally:
        proc.kill()
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _keys(client, prefix: str) -> list[str]:
    got = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
    # pyarrow may leave an empty "prefix/" directory marker: not an object of the dataset
    return sorted(o["Key"][len(prefix) + 1:] for o in got if not o["Key"].endswith("/"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A small non-private DPTVAE (2 epochs) with an identifier column (made-up data)."""
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"patient_id": [f"P{i:06d}" for i in rng.permutation(n)], "age": rng.integers(18, 90, n),
                       "bmi": rng.normal(27, 4, n).round(1), "sex": rng.choice(["female", "male"], n)})
    tmp = tmp_path_factory.mktemp("s3bundle")
    df.to_csv(tmp / "p.csv", index=False)
    r = _run("fit", str(tmp / "p.csv"), "--model", "dptvae", "--no-privacy", "--epochs", "2", "--batch-size", "100",
             "--device", "cpu", "--seed", "0", "--out", str(tmp / "model"))
    assert r.exit_code == 0, r.output
    return tmp / "model"


def test_s3_equals_local_and_reads_back(bundle, s3, tmp_path):
    from synthkit.distributed.generate import generate_sharded, read_dataset, read_success

    uri = f"s3://{BUCKET}/same"
    out = generate_sharded(bundle, 5003, 3, uri, seed=21)
    local = generate_sharded(bundle, 5003, 3, tmp_path / "loc", seed=21)
    assert out.manifest == local.manifest  # same part files, same SHA-256
    assert read_success(uri) == read_success(tmp_path / "loc")
    assert _keys(s3, "same") == ["_SUCCESS", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    data = read_dataset(uri)
    assert len(data) == 5003 and data["patient_id"].is_unique
    assert data.equals(read_dataset(tmp_path / "loc"))
    assert out.out_dir == uri


KILLED_RUN = r"""
import sys
from synthkit.distributed.generate import generate_sharded
generate_sharded(sys.argv[1], int(sys.argv[2]), 4, sys.argv[3], seed=3, chunk_size=5000)
"""


def test_killed_run_leaves_no_success_and_rerun_equals_clean(bundle, s3, tmp_path):
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from synthkit.distributed.generate import SUCCESS, generate_sharded, read_dataset
    from synthkit.errors import SourceError

    n, uri = 100_000, f"s3://{BUCKET}/killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(bundle), str(n), uri],
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:  # wait on STATE: the first part uploaded and recorded, the last not yet
        while True:
            names = _keys(s3, "killed")
            if "_shards/part-00000.json" in names and "part-00003.parquet" not in names:
                break
            assert proc.poll() is None, f"the generating process ended (code {proc.returncode}) too early"
            assert time.monotonic() < deadline, "no uploaded part within 600 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    names = _keys(s3, "killed")
    assert SUCCESS not in names and "part-00003.parquet" not in names
    with pytest.raises(SourceError, match="incomplete sharded dataset") as err:
        read_dataset(uri)
    assert "re-run" in str(err.value) and "\n" not in str(err.value)
    # the control: a reader without the marker sees a plausible but short dataset
    fs, root = pafs.FileSystem.from_uri(uri)
    parts = [f"{root}/{x}" for x in names if x.endswith(".parquet")]
    assert 0 < ds.dataset(parts, format="parquet", filesystem=fs).count_rows() < n

    again = generate_sharded(bundle, n, 4, uri, seed=3, chunk_size=5000)
    assert again.shards[0].kept and not again.shards[3].kept
    assert _keys(s3, "killed") == [SUCCESS] + [f"part-0000{i}.parquet" for i in range(4)]
    clean = generate_sharded(bundle, n, 4, tmp_path / "clean", seed=3, chunk_size=5000)
    assert again.manifest == clean.manifest
    data = read_dataset(uri)
    assert len(data) == n and data["patient_id"].is_unique


def test_tampered_object_is_refused_and_rewritten_on_resume(bundle, s3):
    import hashlib

    from synthkit.distributed.generate import PLAN, RECORDS, SUCCESS, generate_sharded, open_dataset
    from synthkit.errors import SourceError

    uri, prefix = f"s3://{BUCKET}/tampered", "tampered"
    first = generate_sharded(bundle, 2000, 2, uri, seed=4).manifest
    key = f"{prefix}/part-00001.parquet"
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=body[:-10] + b"0123456789")
    with pytest.raises(SourceError, match="SHA-256"):
        open_dataset(uri, verify=True)
    # a run cut before its commit: plan and records there, marker gone
    s3.delete_object(Bucket=BUCKET, Key=f"{prefix}/{SUCCESS}")
    plan = {"format": "synthkit-sharded-parquet", "format_version": 1, "total_rows": 2000, "shards": 2,
            "rows_per_shard": [1000, 1000], "chunk_size": 100_000,
            "bundle_manifest_sha256": first["bundle_manifest_sha256"],
            "seed": hashlib.sha256(b"synthkit-seed:4").hexdigest()}
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{PLAN}", Body=json.dumps(plan).encode())
    for f in first["files"]:
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{RECORDS}/{Path(f['name']).stem}.json",
                      Body=json.dumps(f).encode())
    again = generate_sharded(bundle, 2000, 2, uri, seed=4)
    assert [s.kept for s in again.shards] == [True, False]  # the tampered one is rewritten
    assert again.manifest == first
    assert len(open_dataset(uri, verify=True).to_table()) == 2000
    with pytest.raises(SourceError, match="already holds a complete dataset"):
        generate_sharded(bundle, 1500, 3, uri, seed=4)


def test_cli_writes_to_s3_and_refuses_a_second_run(bundle, s3):
    from synthkit.distributed.generate import read_dataset

    uri = f"s3://{BUCKET}/cli"
    r = _run("generate", str(bundle), "--rows", "3001", "--shards", "3", "--seed", "1", "--out", uri)
    assert r.exit_code == 0, r.output
    assert len(read_dataset(uri)) == 3001
    r = _run("generate", str(bundle), "--rows", "3001", "--shards", "3", "--seed", "1", "--out", uri)
    assert r.exit_code == 2 and "already holds a complete dataset" in r.output
    r = _run("generate", str(bundle), "--rows", "3001", "--shards", "3", "--seed", "1", "--out", uri, "--overwrite")
    assert r.exit_code == 0, r.output
    # a prefix holding someone else's objects is not cleared
    s3.put_object(Bucket=BUCKET, Key="other/notes.txt", Body=b"x")
    r = _run("generate", str(bundle), "--rows", "100", "--shards", "2", "--out", f"s3://{BUCKET}/other")
    assert r.exit_code == 2 and "not a sharded synthkit dataset" in r.output
    assert _keys(s3, "other") == ["notes.txt"]


def test_a_missing_bucket_is_one_line(bundle, s3):
    r = _run("generate", str(bundle), "--rows", "100", "--shards", "2", "--out", "s3://no-such-bucket-x/p")
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "the bucket (container) does not exist" in lines[0], r.output


@pytest.mark.parametrize("uri, needle", [
    ("s3://AKIAXXXX:hunter2@bucket/p", "carries a credential"),
    ("s3://bucket/p?secret_key=hunter2", "carries a credential"),
    ("ftp://host/p", "unknown object-storage scheme"),
    ("s3://bucket", "give a bucket and a prefix"),
], ids=["password", "secret-param", "scheme", "no-prefix"])
def test_uri_errors_are_one_line_without_the_secret(bundle, uri, needle):
    r = _run("generate", str(bundle), "--rows", "100", "--shards", "2", "--out", uri)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and needle in lines[0], r.output
    assert "hunter2" not in r.output and "AKIA" not in r.output


@pytest.mark.slow  # Ray's start and two workers importing torch: ~1 min on the loaded 2-core machine
def test_ray_engine_writes_the_same_objects(bundle, s3, tmp_path):
    """Ray workers build the filesystem from the URI and the environment themselves."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'synthkit[ray]')")
    from synthkit.distributed.generate import generate_sharded, read_success

    uri = f"s3://{BUCKET}/ray"
    out = generate_sharded(bundle, 2001, 2, uri, seed=8, engine="ray")  # starts and stops Ray in process
    assert out.manifest == generate_sharded(bundle, 2001, 2, tmp_path / "loc", seed=8).manifest
    assert read_success(uri) == out.manifest
    assert _keys(s3, "ray") == ["_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
