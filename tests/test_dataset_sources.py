"""Dataset sources (issue 19): `synthkit fit DIR_OR_GLOB` reads a folder or a glob of CSV,
Parquet or JSON-lines parts as one table.

- every part's rows, once: the folder and the glob give the concatenation of the parts,
  bookkeeping names (`_SUCCESS`, `.xxx.partial` of a killed writer) skipped;
- parts are checked as single files are, and a part with another header, a mix of kinds,
  a nested (hive-partitioned) folder or an empty glob is one line naming the input;
- column types unify across parts (an integer column that is float in another part);
- the CLI fits from a folder (a sharded dataset written by `synthkit generate --shards`).

Negative control, run once against the old code (c1209e4, before this file's commit): a
folder or a glob was an "unsupported file type '(none)'", so every reading test failed at
its first read, and `fit FOLDER` exited 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import connectors
from synthkit.cli import app
from synthkit.errors import SourceError

runner = CliRunner()


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 90, n), "bmi": rng.normal(27, 4, n).round(1),
                         "sex": rng.choice(["female", "male"], n)})


@pytest.fixture
def parts(tmp_path) -> tuple[Path, pd.DataFrame]:
    """4 Parquet parts of one made-up table, with a sharded run's bookkeeping beside them."""
    folder = tmp_path / "claims"
    folder.mkdir()
    frames = [_frame(n, i) for i, n in enumerate((50, 70, 1, 30))]
    for i, f in enumerate(frames):
        f.to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    _frame(999, 9).to_parquet(folder / ".part-00004.parquet.ab12cd34.partial", index=False)  # a killed writer's
    (folder / "_SUCCESS").write_text("{}")
    return folder, pd.concat(frames, ignore_index=True)


def test_folder_and_glob_read_every_part_once(parts):
    folder, whole = parts
    pd.testing.assert_frame_equal(connectors.read(str(folder)), whole, check_dtype=False)
    pd.testing.assert_frame_equal(connectors.read(f"{folder}/part-*.parquet"), whole, check_dtype=False)
    assert len(connectors.read(f"{folder}/part-0000[01].parquet")) == 120
    assert connectors.read_columns(str(folder)) == ["age", "bmi", "sex"]
    assert connectors.describe(str(folder)) == {"kind": "parquet", "location": str(folder)}
    source = connectors.read_source(str(folder))
    assert list(source.tables) == ["claims"] and len(source.frame) == 151
    assert sum(len(b) for b in connectors.iter_batches(str(folder), batch_size=40)) == 151
    # the control: the hidden partial holds 999 rows that a naive listing would add
    naive = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*part*"))])
    assert len(naive) == 151 + 999


def test_csv_parts_unify_types(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "a.csv").write_text("id,x\n1,2\n2,3\n")
    (folder / "b.csv").write_text("id,x\n3,2.5\n4,\n")
    frame = connectors.read(str(folder))
    assert list(frame["id"]) == [1, 2, 3, 4]
    assert frame["x"].dtype == float and frame["x"].tolist()[:3] == [2.0, 3.0, 2.5] and np.isnan(frame["x"][3])


@pytest.mark.parametrize("case, needle", [
    ("header", "does not have the first part's columns (missing ['x']; extra ['y'])"),
    ("mixed", "must all be CSV, all Parquet or all JSON lines"),
    ("nested", "nested (hive-partitioned) datasets are not read"),
    ("empty", "matches no data files"),
])
def test_bad_datasets_are_one_line(tmp_path, case, needle):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.csv").write_text("id,x\n1,2\n")
    target = str(folder)
    if case == "header":
        (folder / "b.csv").write_text("id,y\n1,secret-value\n")
    elif case == "mixed":
        _frame(3, 0).to_parquet(folder / "b.parquet")
    elif case == "nested":
        (folder / "dx=secret-value").mkdir()  # hive layout: the folder's name holds a private cell
    else:
        target = str(folder / "*.parquet")
    with pytest.raises(SourceError) as err:
        connectors.read(target)
    message = str(err.value)
    assert needle in message and "\n" not in message and "secret-value" not in message
    assert target in message


def test_streaming_a_dataset_refuses_a_part_with_another_header(tmp_path):
    """`iter_batches` streams the parts one after another, and checks each part's header
    against the first part's as `read` does. Control (the code before, run once): the
    second part's batch came out with a column `y` where the first had `x`."""
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.csv").write_text("id,x\n1,2\n2,3\n")
    (folder / "b.csv").write_text("id,y\n1,secret-value\n")
    batches = connectors.iter_batches(str(folder), batch_size=1)
    assert list(next(batches).columns) == ["id", "x"]  # the first part streams
    with pytest.raises(SourceError) as err:
        list(batches)
    message = str(err.value)
    assert "part 'b.csv' does not have the first part's columns (missing ['x']; extra ['y'])" in message
    assert "secret-value" not in message and "\n" not in message and str(folder) in message


def test_a_nested_folder_refusal_names_no_partition_value(tmp_path):
    """Only the partition column (the text before '=') is named; a folder of another shape
    (it may be named after a person) is not named at all. Negative control: the old code
    (b6d0168) named the first sub-folder, 'dx=secret-value', in the message."""
    folder = tmp_path / "d"
    (folder / "dx=secret-value").mkdir(parents=True)
    (folder / "a.csv").write_text("id,x\n1,2\n")
    with pytest.raises(SourceError) as err:
        connectors.read(str(folder))
    assert "hive partitions by 'dx'" in str(err.value) and "secret-value" not in str(err.value)
    (folder / "dx=secret-value").rmdir()
    (folder / "alice-secret").mkdir()
    with pytest.raises(SourceError) as err:
        connectors.read(str(folder))
    assert "sub-folders;" in str(err.value) and "secret" not in str(err.value)


@pytest.mark.parametrize("nested", ["_temporary/0", "dx=secret-value", "plain/dx=secret-value"])
def test_a_glob_never_reads_into_partition_or_bookkeeping_folders(parts, nested):
    """`ds/**/*.parquet` would read Spark's uncommitted `_temporary/0/part-*` (rows twice) or
    a hive partition's parts (its partition column silently lost). Refused in one line
    that names the input and the fix but no folder value. Negative control: the old code
    (b6d0168) read 151 + 999 rows in each case (only the file name was checked)."""
    folder, whole = parts
    (folder / nested).mkdir(parents=True)
    _frame(999, 8).to_parquet(folder / nested / "part-00000.parquet", index=False)
    target = f"{folder}/**/*.parquet"
    with pytest.raises(SourceError) as err:
        connectors.read(target)
    message = str(err.value)
    assert "narrow the glob" in message and target in message and "\n" not in message
    assert "secret-value" not in message
    # the controls: a glob of the committed parts, and nested plain folders, are read
    pd.testing.assert_frame_equal(connectors.read(f"{folder}/*.parquet"), whole, check_dtype=False)
    (folder / "more" / "plain").mkdir(parents=True)
    _frame(5, 7).to_parquet(folder / "more" / "plain" / "part-9.parquet", index=False)
    assert len(connectors.read(f"{folder}/more/**/*.parquet")) == 5


def test_a_synthkit_sharded_folder_is_read_as_its_success_lists_it(parts):
    """A killed `synthkit generate` run (_plan.json, no _SUCCESS) is refused instead of read
    as a short table; a committed one reads only the files its _SUCCESS lists."""
    import json
    folder, whole = parts
    (folder / "_SUCCESS").unlink()
    (folder / "_plan.json").write_text("{}")
    with pytest.raises(SourceError, match="incomplete sharded dataset"):
        connectors.read(str(folder))
    # the control: the same files without the marker of an unfinished run are read (nothing else refuses them)
    (folder / "_plan.json").unlink()
    assert len(connectors.read(str(folder))) == len(whole)
    from synthkit.bundle import sha256_file

    def commit(files: list[dict]) -> None:  # a manifest as generate writes it (rows, total, SHA-256)
        (folder / "_SUCCESS").write_text(json.dumps({"format": "synthkit-sharded-parquet", "files": files,
                                                     "total_rows": sum(f["rows"] for f in files)}))

    listed = [{"name": f"part-{i:05d}.parquet", "rows": n, "sha256": sha256_file(folder / f"part-{i:05d}.parquet")}
              for i, n in enumerate((50, 70, 1))]
    commit(listed)
    assert len(connectors.read(str(folder))) == 50 + 70 + 1  # part-00003 is not in this run's list
    commit([*listed, {"name": "part-00007.parquet", "rows": 0, "sha256": ""}])
    with pytest.raises(SourceError, match="part-00007.parquet listed in _SUCCESS is missing"):
        connectors.read(str(folder))


def test_a_sink_path_is_never_a_dataset(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(SourceError, match="unsupported file type"):
        connectors.write(_frame(3, 0), str(tmp_path / "out"))


def test_cli_fits_from_a_sharded_dataset_folder(tmp_path):
    _frame(400, 1).to_csv(tmp_path / "p.csv", index=False)
    common = ["--model", "dptvae", "--no-privacy", "--epochs", "1", "--batch-size", "100", "--device", "cpu",
              "--seed", "0"]
    r = runner.invoke(app, ["fit", str(tmp_path / "p.csv"), *common, "--out", str(tmp_path / "m1")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["generate", str(tmp_path / "m1"), "--rows", "900", "--shards", "3", "--seed", "2",
                            "--out", str(tmp_path / "ds")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["fit", str(tmp_path / "ds"), *common, "--out", str(tmp_path / "m2")])
    assert r.exit_code == 0, r.output
    from synthkit.bundle import read_manifest
    assert read_manifest(tmp_path / "m2")["source"]["location"] == str(tmp_path / "ds")
    # a misspelled column is still refused from the first part's header, before any row is read
    r = runner.invoke(app, ["fit", str(tmp_path / "ds"), *common, "--entity-key", "agee", "--out",
                            str(tmp_path / "m3")])
    assert r.exit_code == 2 and "agee" in r.output
