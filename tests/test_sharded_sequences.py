"""Sharded generation of SEQUENCE bundles (DPHMM; issue 19, test 6 for sequences): a
dataset of events/part-XXXXX.parquet and context/part-XXXXX.parquet committed by one
_SUCCESS holds exactly N entities, entity keys (and context and event identifiers) unique
across shards, every entity's events in the shard of its context row, the distributions of
one-process `generate --entities`, the same bytes for the same seed and S with either engine;
a shard that fails mid-write leaves no _SUCCESS and a re-run completes without duplicates.

Negative control: 3c4aad5^ (df40585, before sequence shards) refuses every sharded run of a
sequence bundle ("supports table bundles only"), so every test here but the distribution
bracket fails there; the bracket (one-process draws only) passes on both. In-test controls:
the old numbering (each shard's sample_sequences from entity 1) collides across shards; a
shifted column and a shifted length fail the KS bracket; pyarrow reads the failed run's
folder as a short dataset, which is why the readers demand _SUCCESS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app
from test_hmm import clinic, context_schema, event_schema, small

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A small non-private DPHMM (made-up clinic data) with an event identifier (visit_id)
    and a context identifier (mrn) besides the entity key."""
    from synthkit.schema import Column, Schema

    events, patients = clinic(n=600, seed=3)
    events.insert(1, "visit_id", [f"V{i:07d}" for i in np.random.default_rng(1).permutation(len(events))])
    patients.insert(1, "mrn", [f"M{i:06d}" for i in range(len(patients))])
    es, cs = event_schema(), context_schema()
    es = Schema(columns=es.columns[:1] + (Column(name="visit_id", kind="identifier", nullable=False),) + es.columns[1:],
                entity_key="patient_id", sequence_index="visit_date")
    cs = Schema(columns=cs.columns[:1] + (Column(name="mrn", kind="identifier", nullable=False),) + cs.columns[1:],
                entity_key="patient_id")
    model = small(epochs=2, context_epochs=2).fit(events, schema=es, context=patients, context_schema=cs, budget=None)
    return model.save(tmp_path_factory.mktemp("seqshards") / "bundle")


# ------------------------------------------------------------------ distribution brackets
def _ks(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, side="right") / len(a)
                               - np.searchsorted(b, grid, side="right") / len(b))))


def _ks_limit(n: int, m: int) -> float:
    """Two-sample KS critical value at alpha = 0.001 (c = sqrt(-ln(alpha/2)/2) = 1.95)."""
    return float(np.sqrt(-np.log(0.0005) / 2) * np.sqrt((n + m) / (n * m)))


def _tvd_over(a: pd.Series, b: pd.Series) -> bool:
    """TVD above half the sum over categories of 4 standard errors of a difference of proportions."""
    pa_, pb = a.astype(str).value_counts(normalize=True), b.astype(str).value_counts(normalize=True)
    pa_, pb = pa_.align(pb, fill_value=0.0)
    p = ((pa_ * len(a) + pb * len(b)) / (len(a) + len(b))).to_numpy()
    limit = 0.5 * np.sum(4 * np.sqrt(p * (1 - p) * (1 / len(a) + 1 / len(b))))
    return 0.5 * float(np.abs(pa_ - pb).sum()) > limit


def _differ(ev_a, cx_a, ev_b, cx_b) -> list[str]:
    """The columns (and the events-per-entity length) whose distributions differ beyond the brackets."""
    bad = []
    numeric = [("lab", ev_a, ev_b), ("n_meds", ev_a, ev_b), ("birth_year", cx_a, cx_b)]
    lengths = (ev_a.groupby("patient_id").size().reindex(cx_a["patient_id"], fill_value=0),
               ev_b.groupby("patient_id").size().reindex(cx_b["patient_id"], fill_value=0))
    days = [pd.to_datetime(f["visit_date"]).astype("int64") / 86_400e9 for f in (ev_a, ev_b)]
    for name, x, y in [(c, a[c], b[c]) for c, a, b in numeric] + [("length", *lengths), ("visit_date", *days)]:
        x, y = pd.to_numeric(x).dropna().to_numpy(float), pd.to_numeric(y).dropna().to_numpy(float)
        if _ks(x, y) > _ks_limit(len(x), len(y)):
            bad.append(name)
    for name, a, b in (("kind", ev_a, ev_b), ("sex", cx_a, cx_b), ("site", cx_a, cx_b)):
        if _tvd_over(a[name], b[name]):
            bad.append(name)
    return bad


def test_distribution_bracket_catches_a_shift(bundle):
    """The bracket itself (one-process draws only; passes before and after the change):
    two independent draws agree; a shifted column and one event more per entity are caught."""
    from synthkit.bundle import load

    model = load(bundle)
    a, b = model.sample_tables(1500, seed=21), model.sample_tables(1500, seed=22)
    assert _differ(a.events, a.context, b.events, b.context) == []
    assert _differ(a.events.assign(lab=a.events["lab"] + 0.5), a.context, b.events, b.context) == ["lab"]
    first = a.events.groupby("patient_id").head(1)
    longer = pd.concat([a.events, first], ignore_index=True)
    assert "length" in _differ(longer, a.context, b.events, b.context)


# ------------------------------------------------------------------ local shards
def _tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from synthkit.distributed.generate import read_dataset
    return read_dataset(out, table="events"), read_dataset(out, table="context")


def test_one_and_three_shards_keys_and_distribution_match_one_process(bundle, tmp_path):
    import pyarrow.parquet as pq

    from synthkit.bundle import load
    from synthkit.distributed.generate import generate_sharded, shard_tasks

    n = 1501
    one = generate_sharded(bundle, n, 1, tmp_path / "s1", seed=11).manifest
    three = generate_sharded(bundle, n, 3, tmp_path / "s3", seed=11, chunk_size=200).manifest
    assert one["total_entities"] == three["total_entities"] == n and one["kind"] == "sequence"
    assert three["entities_per_shard"] == [501, 500, 500]
    assert sorted(os.listdir(tmp_path / "s3")) == ["_SUCCESS", "context", "events"]
    ev, cx = _tables(tmp_path / "s3")
    assert len(cx) == n == len(_tables(tmp_path / "s1")[1])
    assert three["tables"]["events"]["total_rows"] == len(ev)
    # keys by global entity index: unique across shards, one process's keys 1..N
    assert cx["patient_id"].is_unique and cx["mrn"].is_unique and ev["visit_id"].is_unique
    assert list(cx["patient_id"]) == [f"patient_id-{i:09d}" for i in range(1, n + 1)]
    assert list(cx["mrn"]) == [f"mrn-{i:09d}" for i in range(1, n + 1)]
    # every entity's events in the shard of its context row
    seen: set[str] = set()
    for i in range(3):
        ev_i = pq.read_table(tmp_path / "s3" / "events" / f"part-0000{i}.parquet").to_pandas()
        cx_i = pq.read_table(tmp_path / "s3" / "context" / f"part-0000{i}.parquet").to_pandas()
        assert set(ev_i["patient_id"]) <= set(cx_i["patient_id"]) and not set(cx_i["patient_id"]) & seen
        seen |= set(cx_i["patient_id"])
    # event identifiers increase with the entity order (a gap between shards, module docstring)
    numbers = ev["visit_id"].str.rsplit("-", n=1).str[1].astype(int).to_numpy()
    assert (np.diff(numbers) > 0).all()
    one_ev = _tables(tmp_path / "s1")[0]  # one shard: event ids 1..E as one process
    assert list(one_ev["visit_id"]) == [f"visit_id-{i:09d}" for i in range(1, len(one_ev) + 1)]

    model = load(bundle)
    single = model.sample_tables(n, seed=12)  # another draw, one process (`generate --entities`)
    assert _differ(ev, cx, single.events, single.context) == []
    assert _differ(*_tables(tmp_path / "s1"), single.events, single.context) == []
    # negative control, the old numbering (each shard from entity 1) collides across shards
    old = pd.concat([model.sample_tables(t.rows, seed=t.seed).context for t in shard_tasks(n, 3, 11)])
    assert not old["patient_id"].is_unique


def test_failed_shard_leaves_no_success_and_rerun_completes_without_duplicates(bundle, tmp_path, monkeypatch):
    import pyarrow.dataset as ds

    import connectors
    import synthkit.distributed.generate as gen
    from synthkit.errors import SourceError

    n, out = 1200, tmp_path / "failed"
    real = gen._sequence_chunks

    def dies_mid_write(model, task):  # shard 1 raises after its first chunk reached the writers
        for k, part in enumerate(real(model, task)):
            if task.index == 1 and k == 1:
                raise RuntimeError("simulated worker death")
            yield part

    monkeypatch.setattr(gen, "_sequence_chunks", dies_mid_write)
    with pytest.raises(RuntimeError, match="simulated"):
        gen.generate_sharded(bundle, n, 3, out, seed=3, chunk_size=100)
    monkeypatch.setattr(gen, "_sequence_chunks", real)
    assert not (out / gen.SUCCESS).exists()
    assert (out / "events" / "part-00000.parquet").is_file() and not (out / "events" / "part-00001.parquet").exists()
    for table in ("events", "context"):
        with pytest.raises(SourceError, match="incomplete sharded dataset") as err:
            gen.read_dataset(out, table=table)
        assert "re-run" in str(err.value) and "\n" not in str(err.value)
        with pytest.raises(SourceError, match="incomplete sharded dataset"):
            gen.open_dataset(out, table=table)
        with pytest.raises(SourceError, match="incomplete sharded dataset"):
            connectors.read(str(out / table))  # `synthkit fit DIR/events` reads through DIR's marker
    # what a reader without the marker sees: a plausible but short table (why _SUCCESS exists)
    assert 0 < ds.dataset(str(out / "context"), format="parquet").count_rows() < n

    again = gen.generate_sharded(bundle, n, 3, out, seed=3, chunk_size=100)
    assert [s.kept for s in again.shards] == [True, False, False]
    ev, cx = _tables(out)
    assert len(cx) == n and cx["patient_id"].is_unique and ev["visit_id"].is_unique
    assert set(ev["patient_id"]) <= set(cx["patient_id"])
    assert sorted(os.listdir(out)) == ["_SUCCESS", "context", "events"]
    assert sorted(os.listdir(out / "events")) == [f"part-0000{i}.parquet" for i in range(3)]
    clean = gen.generate_sharded(bundle, n, 3, tmp_path / "clean", seed=3, chunk_size=100).manifest
    assert again.manifest == clean  # the same bytes as a run never interrupted
    # a complete sequence dataset read by connectors through its marker, table by table
    pd.testing.assert_frame_equal(connectors.read(str(out / "context")).reset_index(drop=True), cx,
                                  check_dtype=False)
    with pytest.raises(SourceError, match="sequence dataset"):
        connectors.read(str(out))
    with pytest.raises(Exception, match="table='events' or table='context'"):
        gen.read_dataset(out)


# ------------------------------------------------------------------ CLI
def test_cli_end_to_end(bundle, tmp_path):
    out = tmp_path / "cli"
    r = _run("generate", str(bundle), "--entities", "700", "--shards", "2", "--seed", "4", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "700 synthetic entities in 2 shards" in " ".join(r.output.split())
    ev, cx = _tables(out)
    assert len(cx) == 700 and cx["patient_id"].is_unique and set(ev["patient_id"]) <= set(cx["patient_id"])
    r = _run("generate", str(bundle), "--entities", "700", "--shards", "2", "--seed", "4", "--out", str(out))
    assert r.exit_code == 2 and "already holds a complete dataset" in r.output


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
    (["--rows", "100", "--shards", "2"], "give --entities (the number of entities), not --rows"),
    (["--shards", "2"], "give --entities: how many synthetic entities"),
    (["--entities", "3", "--shards", "5"], "--shards 5 is more than --entities 3; give at most one shard per entity"),
    (["--entities", "5", "--shards", "2", "--table", "t"], "--table applies to SQL sinks"),
], ids=["rows", "no-count", "shards-over-entities", "table"])
def test_bad_input_is_one_line_before_torch(bundle, tmp_path, extra, needle):
    argv = ["generate", str(bundle), "--out", str(tmp_path / "o"), *extra]
    res = json.loads(subprocess.run([sys.executable, "-c", FAST, json.dumps(argv)], capture_output=True, text=True,
                                    check=True, cwd=REPO).stdout)
    lines = [ln for ln in res["stderr"].splitlines() if ln.strip()]
    assert res["code"] == 2 and len(lines) == 1 and needle in lines[0], res
    assert not res["torch"]


# ------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'synthkit[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=4, include_dashboard=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_same_seed_same_bytes_local_and_ray(bundle, tmp_path, ray_local):
    from synthkit.distributed.generate import generate_sharded, read_success

    r = _run("generate", str(bundle), "--entities", "1001", "--engine", "ray", "--shards", "3", "--seed", "7",
             "--out", str(tmp_path / "ray"))
    assert r.exit_code == 0, r.output
    local = generate_sharded(bundle, 1001, 3, tmp_path / "loc", seed=7).manifest
    assert read_success(tmp_path / "ray") == local  # same files, same SHA-256
    for table in ("events", "context"):
        for i in range(3):
            name = f"{table}/part-0000{i}.parquet"
            assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "loc" / name).read_bytes()
    other = generate_sharded(bundle, 1001, 3, tmp_path / "other", seed=8).manifest
    digests = {f["sha256"] for t in ("events", "context") for f in local["tables"][t]["files"]}
    assert not digests & {f["sha256"] for t in ("events", "context") for f in other["tables"][t]["files"]}
    ev, cx = _tables(tmp_path / "ray")
    assert len(cx) == 1001 and cx["patient_id"].is_unique and ev["visit_id"].is_unique


def test_an_events_folder_beside_a_table_dataset_is_a_plain_folder(tmp_path):
    """Only a SEQUENCE dataset's marker makes connectors read DIR/events through DIR/_SUCCESS;
    a folder that happens to be called events beside a table dataset's marker is read as it is
    (control 2d990b6: ConfigError "is a table dataset: drop table='events'")."""
    import connectors
    from synthkit.sharded import FORMAT

    (tmp_path / "events").mkdir()
    pd.DataFrame({"a": [1, 2, 3]}).to_parquet(tmp_path / "events" / "x.parquet", index=False)
    (tmp_path / "_SUCCESS").write_text(json.dumps({"format": FORMAT, "format_version": 1, "shards": 0,
                                                   "total_rows": 0, "files": []}))
    assert connectors.read(str(tmp_path / "events"))["a"].tolist() == [1, 2, 3]
