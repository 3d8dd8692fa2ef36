"""Sharded generation of a SEQUENCE bundle (DPHMM) to object storage (issue 19), against
moto's S3 server on 127.0.0.1 (test_object_storage_generate's fixture): the same files
(SHA-256) as a local folder, events/ and context/ read back through `_SUCCESS`; a shard
that fails mid-write leaves no `_SUCCESS` (the readers refuse the prefix) and the re-run
keeps the complete shard and equals an uninterrupted run.

Negative control: df40585 (before sequence shards) refuses the sequence bundle ("supports
table bundles only"): both tests fail there.
"""

from __future__ import annotations

import pytest

from test_object_storage_generate import BUCKET, _keys, s3  # noqa: F401  (moto's S3 server, a module fixture)
from test_sharded_sequences import bundle  # noqa: F401  (a small non-private DPHMM bundle)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PARTS = [f"{t}/part-0000{i}.parquet" for t in ("context", "events") for i in range(2)]


def test_s3_sequences_equal_local_and_read_back(bundle, s3, tmp_path):  # noqa: F811
    from synthkit.distributed.generate import generate_sharded, read_dataset, read_success

    uri = f"s3://{BUCKET}/seq"
    out = generate_sharded(bundle, 801, 2, uri, seed=9)
    local = generate_sharded(bundle, 801, 2, tmp_path / "loc", seed=9)
    assert out.manifest == local.manifest and read_success(uri) == local.manifest
    assert _keys(s3, "seq") == ["_SUCCESS", *PARTS]
    for table in ("events", "context"):
        assert read_dataset(uri, table=table).equals(read_dataset(tmp_path / "loc", table=table))
    assert read_dataset(uri, table="context")["patient_id"].is_unique


def test_s3_failed_shard_leaves_no_success_and_rerun_equals_clean(bundle, s3, tmp_path, monkeypatch):  # noqa: F811
    import synthkit.distributed.generate as gen
    from synthkit.errors import SourceError

    uri, real = f"s3://{BUCKET}/seqfail", gen._sequence_chunks

    def dies(model, task):
        for k, part in enumerate(real(model, task)):
            if task.index == 1 and k == 1:
                raise RuntimeError("simulated worker death")
            yield part

    monkeypatch.setattr(gen, "_sequence_chunks", dies)
    with pytest.raises(RuntimeError, match="simulated"):
        gen.generate_sharded(bundle, 600, 2, uri, seed=5, chunk_size=100)
    monkeypatch.setattr(gen, "_sequence_chunks", real)
    names = _keys(s3, "seqfail")
    assert gen.SUCCESS not in names and "events/part-00000.parquet" in names
    assert "events/part-00001.parquet" not in names
    with pytest.raises(SourceError, match="incomplete sharded dataset"):
        gen.read_dataset(uri, table="events")
    again = gen.generate_sharded(bundle, 600, 2, uri, seed=5, chunk_size=100)
    assert [s.kept for s in again.shards] == [True, False]
    assert _keys(s3, "seqfail") == ["_SUCCESS", *PARTS]
    assert again.manifest == gen.generate_sharded(bundle, 600, 2, tmp_path / "clean", seed=5, chunk_size=100).manifest
