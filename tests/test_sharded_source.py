"""`synthkit fit DIR` on a folder written by `synthkit generate --shards` (issue 19): the
source reader (connectors) goes through the one verified reader of that format
(synthkit.sharded, torch-free: `_SUCCESS` parsed and checked, every listed part present
with its recorded SHA-256). A killed run, a tampered part or a missing part is refused in
one line naming the folder, the part and the fix (re-run generate); a complete run reads
every row once; another tool's folder (Spark's empty `_SUCCESS`) is still read as a folder.

Negative control, run once against the code before this file's commit (connectors/uri.py's
own `_SUCCESS` reader, which checked names and existence only): a part with one cell changed
was read silently (DID NOT RAISE); a cut part failed only as "cannot be read as parquet",
naming neither the dataset nor the fix; a `_SUCCESS` whose total did not match its files was
read. 4 of 6 failed there (the complete read and Spark's marker, the controls, passed).
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

import connectors
from synthkit.cli import app
from synthkit.errors import SourceError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
FIT = ["--model", "dptvae", "--no-privacy", "--epochs", "1", "--batch-size", "100", "--device", "cpu", "--seed", "0"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A small non-private DPTVAE (made-up data) to generate sharded folders from."""
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"age": rng.integers(18, 90, n), "bmi": rng.normal(27, 4, n).round(1),
                       "sex": rng.choice(["female", "male"], n)})
    tmp = tmp_path_factory.mktemp("sharded_source")
    df.to_csv(tmp / "p.csv", index=False)
    r = runner.invoke(app, ["fit", str(tmp / "p.csv"), *FIT, "--out", str(tmp / "model")])
    assert r.exit_code == 0, r.output
    return tmp / "model"


@pytest.fixture(scope="module")
def complete(bundle, tmp_path_factory) -> Path:
    from synthkit.distributed.generate import generate_sharded
    out = tmp_path_factory.mktemp("complete") / "ds"
    generate_sharded(bundle, 900, 3, out, seed=2)
    return out


def _copy(folder: Path, dest: Path) -> Path:
    import shutil
    shutil.copytree(folder, dest)
    return dest


def _one_line_fit(folder: Path, tmp_path: Path) -> str:
    r = runner.invoke(app, ["fit", str(folder), *FIT, "--out", str(tmp_path / "m")])
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output
    assert not (tmp_path / "m").exists()
    return r.output


def test_a_complete_run_reads_every_row_once(complete):
    from synthkit.distributed.generate import read_dataset
    frame = connectors.read(str(complete))
    assert len(frame) == 900
    pd.testing.assert_frame_equal(frame, read_dataset(complete), check_dtype=False)


@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_tampered_part_is_refused_naming_folder_part_and_fix(complete, tmp_path, where):
    """The bytes of one listed part change but it still parses as Parquet with the same
    rows (the tail) or it is cut (the middle): both refused by SHA-256."""
    folder = _copy(complete, tmp_path / "ds")
    part = folder / "part-00001.parquet"
    data = part.read_bytes()
    if where == "end":
        import pyarrow.parquet as pq
        table = pq.read_table(part)
        frame = table.to_pandas()
        frame.loc[0, "age"] = frame.loc[0, "age"] + 1  # one cell: a plausible, silent change
        frame.to_parquet(part, index=False)
        assert part.read_bytes() != data
    else:
        part.write_bytes(data[: len(data) // 2] + data[len(data) // 2 + 1:])
    with pytest.raises(SourceError) as err:
        connectors.read(str(folder))
    message = str(err.value)
    assert str(folder) in message and "part-00001.parquet" in message and "SHA-256" in message
    assert "re-run `synthkit generate`" in message and "\n" not in message
    out = _one_line_fit(folder, tmp_path)
    assert "part-00001.parquet" in out and "SHA-256" in out


def test_a_missing_part_or_a_bad_manifest_is_refused(complete, tmp_path):
    folder = _copy(complete, tmp_path / "ds")
    (folder / "part-00002.parquet").unlink()
    with pytest.raises(SourceError, match=r"part-00002\.parquet listed in _SUCCESS is missing; re-run"):
        connectors.read(str(folder))
    folder = _copy(complete, tmp_path / "ds2")
    manifest = json.loads((folder / "_SUCCESS").read_text())
    manifest["total_rows"] += 1  # the files no longer add up to the committed total
    (folder / "_SUCCESS").write_text(json.dumps(manifest))
    with pytest.raises(SourceError, match="not a synthkit sharded-dataset manifest"):
        connectors.read(str(folder))


def test_another_tools_marker_is_still_a_plain_folder(complete, tmp_path):
    """The control: Spark's empty `_SUCCESS` is not synthkit's; its folder's files are read."""
    folder = _copy(complete, tmp_path / "ds")
    (folder / "_SUCCESS").write_text("")
    assert len(connectors.read(str(folder))) == 900


KILLED_RUN = r"""
import sys
from synthkit.distributed.generate import generate_sharded
generate_sharded(sys.argv[1], int(sys.argv[2]), 4, sys.argv[3], seed=3, chunk_size=2000)
"""


def test_a_killed_run_is_refused_and_its_rerun_is_read(bundle, tmp_path):
    """kill -9 while the second shard is being written: one complete part, one partial, no
    `_SUCCESS`. `connectors.read` and `fit` refuse it (no short table), and the re-run of the
    same generate command completes it and reads whole."""
    from synthkit.distributed.generate import generate_sharded
    n, out = 80_000, tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(bundle), str(n), str(out)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def mid_write() -> bool:
        names = os.listdir(out) if out.is_dir() else []
        return "part-00000.parquet" in names and any(x.endswith(".partial") for x in names)

    deadline = time.monotonic() + 600  # only keeps a broken run from hanging CI: we wait on state
    try:
        while not mid_write():
            if proc.poll() is not None:
                pytest.fail(f"the generating process ended (code {proc.returncode}) before it was mid-write")
            if time.monotonic() > deadline:
                pytest.fail("no complete shard and partial within 600 s")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(SourceError, match="incomplete sharded dataset") as err:
        connectors.read(str(out))
    assert str(out) in str(err.value) and "re-run the same `synthkit generate`" in str(err.value)
    assert "incomplete sharded dataset" in _one_line_fit(out, tmp_path)
    generate_sharded(bundle, n, 4, out, seed=3, chunk_size=2000)
    assert len(connectors.read(str(out))) == n


READ_ONLY = """
import sys
import connectors
frame = connectors.read(sys.argv[1])
loaded = sorted(m for m in ("torch", "synthkit.distributed", "synthkit.distributed.generate") if m in sys.modules)
print(len(frame), ",".join(loaded) or "-")
"""


def test_connectors_read_the_format_through_the_core_module_only(complete):
    """(F3 of review R1; DESIGN §3: connectors import only schema/table types from synthkit.) A
    fresh interpreter reads the sharded folder with `connectors` and loads neither torch nor
    synthkit.distributed: the format and its verified reader live in `synthkit.sharded`.
    Negative control, run once on the code before the move (connectors/uri.py importing
    synthkit.distributed.generate): it printed 'synthkit.distributed,synthkit.distributed.generate'."""
    r = subprocess.run([sys.executable, "-c", READ_ONLY, str(complete)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["900", "-"], r.stdout
