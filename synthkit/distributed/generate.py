"""Sharded generation: one table bundle to a Parquet dataset of S part files (issue 19).

Layout of the output folder `out_dir`:

    part-00000.parquet ... part-<S-1>.parquet   the rows (row groups of at most chunk_size rows)
    _SUCCESS                                    the commit: JSON manifest written LAST
    _plan.json, _shards/part-XXXXX.json         bookkeeping while a run is under way

Why each piece:

- Seeds: one `SeedSequence(seed).spawn(S)`; shard i draws from child i only, so the same
  seed and the same S give the same bytes, whatever the engine or the order the shards run
  in, and the shards' streams are independent. `seed=None` takes OS entropy. Generation is
  post-processing of a DP model: no DP noise comes from this seed.
- Rows: shard i gets rows // S, plus one while i < rows % S. Surrogate keys (identifier
  columns) are numbered by GLOBAL row: shard i starts after the rows of shards 0..i-1, so
  the keys of a sharded run are the keys single-process generation gives (1..N), unique
  across shards.
- Memory per shard is bounded by one chunk (at most 100,000 rows): chunks stream into a
  `pyarrow.parquet.ParquetWriter`, one row group each.
- Atomic commit: a shard writes a hidden, locked partial (synthkit.partials) that is renamed
  to part-XXXXX.parquet only when complete and on disk; then it records its row count and
  SHA-256 in _shards/. `_SUCCESS` (shards, rows per shard, total, the bundle's manifest
  digest, each file's SHA-256) is written after every shard, last. A folder without it is
  incomplete: `open_dataset` and `read_dataset` refuse it, and Parquet readers that skip
  names starting with `_` or `.` (pyarrow, Spark) never see the bookkeeping or partials.
- Re-run after a failure (a killed worker, a lost node): the plan is written FIRST; a re-run
  with the same plan keeps every shard whose record exists and whose file still has the
  recorded SHA-256, and rewrites the others under the same names. A shard's rows exist
  under exactly one name, so nothing is duplicated. A different plan (rows, shards, seed,
  bundle) clears the folder's part files first.
- Engines: "local" runs the shards one after the other in this process (the reference);
  "ray" runs one Ray task per shard (num_cpus=1); the task function is the same. Ray is
  imported lazily; usage stats are off and no dashboard is started. Every worker loads the
  bundle from its path, so on a multi-node cluster the bundle and `out_dir` must be on
  storage all nodes see (NFS, a mounted bucket), or `out_dir` is an object-storage URI.
- Object storage (`s3://bucket/prefix`, `gs://`, `abfs://`/`abfss://`; pyarrow.fs from the
  URI, credentials and endpoint from the environment as the AWS/GCS/Azure SDKs read them,
  e.g. AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL): there is no rename, so a shard is written to a
  local temporary file (TMPDIR; one shard's bytes), hashed, and uploaded under its FINAL
  name. The upload (multipart for large files) becomes visible only when complete, so a
  killed writer leaves no object, only an unfinished multipart upload that the bucket's
  lifecycle rule (AbortIncompleteMultipartUpload) removes. Records, plan and `_SUCCESS` are
  single small PUTs, `_SUCCESS` last; readers refuse a prefix without it; resume compares
  each object's SHA-256 (read back) with its record, as on a local disk. Credentials in the
  URI (a password, a key or token parameter) are refused: the URI travels to Ray workers and
  into task listings. Two runs writing to one prefix at once are not detected (no lock on
  object storage).

Sequence bundles (DPHMM), the same contract with entities in place of rows:

    events/part-XXXXX.parquet    shard i's entities' events (all of them: an entity never
                                 straddles shards)
    context/part-XXXXX.parquet   shard i's entities' context rows, one each
    _SUCCESS                     kind "sequence": per table its files (rows, SHA-256) and total

- Entities split by `split_rows`; chunks of at most 10,000 entities (the one-process
  default) stream into the two writers, so memory is one chunk of entities and their events.
- Entity keys and context identifiers are numbered by GLOBAL entity index (shard i starts
  after the entities of shards 0..i-1), as one process numbers them. Event identifiers
  cannot be numbered by global event (a shard does not know how many events the shards
  before it drew): shard i numbers them from `key_start * max_length` (each entity draws at
  most the model's max_length events), so they are unique across shards and increase with
  the entity order, with a gap between shards; with one shard they are 1..E as one process.
- A shard's two files and its record are one unit: both are written as locked partials,
  renamed, then recorded; a shard without a record (killed between the renames) is rewritten
  whole on resume. Readers: `open_dataset(DIR, table="events")` / `read_dataset(DIR,
  table="context")`; `synthkit fit DIR/events --context DIR/context` reads through `_SUCCESS`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthkit.errors import ArtifactError, ConfigError, SourceError
from synthkit.sharded import (FORMAT, FORMAT_VERSION, PLAN, RECORDS, SEQUENCE_TABLES, SUCCESS, _PART, _SEQ_PART,
                              _listed, _obj_error, _obj_exists, _obj_read, _obj_sha256, display_uri, is_uri, object_fs,
                              part_name, read_success)

__all__ = ["FORMAT", "PLAN", "RECORDS", "SUCCESS", "check_object_out", "check_out_dir", "display_uri",
           "generate_sharded", "open_dataset", "read_dataset", "read_success", "shard_tasks"]

log = logging.getLogger(__name__)

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")

LOCK = ".synthkit-generate.lock"
MAX_SHARDS = 99_999  # part-XXXXX: five digits
MAX_CHUNK = 100_000
SEQUENCE_CHUNK = 10_000  # entities per chunk of a sequence shard (generate_data's one-process chunk)
MAX_ROWS = 1_000_000_000  # the most one `synthkit generate` writes (synthkit.cli.MAX_GENERATE)
_PROBE_ROWS = 2_000
_PROBE_ENTITIES = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardTask:
    """What one worker needs: no private value (the bundle is DP; the seed is generation's)."""
    index: int
    rows: int
    key_start: int
    seed: int
    chunk_size: int

    def __repr__(self) -> str:  # the seed stays out of Ray's task listings and logs
        return f"ShardTask(index={self.index}, rows={self.rows}, key_start={self.key_start})"


@dataclass(frozen=True, slots=True)
class SequenceSchemas:
    """The Arrow schemas of a sequence dataset's two tables (what a table shard's one
    `pa.Schema` is for a table dataset); its type tells the writers which kind to write."""
    events: Any
    context: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardResult:
    index: int
    name: str  # part-XXXXX.parquet (a sequence shard's two files have it under events/ and context/)
    rows: int  # rows (tables) or entities (sequences)
    sha256: str  # the (first) file's
    kept: bool  # True: a complete shard of an earlier run of the same plan, not rewritten
    seconds: float = 0.0
    peak_rss_bytes: int = 0  # the worker process's peak resident memory (getrusage)
    files: tuple[tuple[str, int, str], ...] = ()  # (name under the root, rows, SHA-256) of each file


def shard_files(index: int, schema: Any) -> dict[str, str]:
    """The shard's file names under the root, by table ('' for a table dataset's one file)."""
    if isinstance(schema, SequenceSchemas):
        return {t: f"{t}/{part_name(index)}" for t in SEQUENCE_TABLES}
    return {"": part_name(index)}


def _record(task: ShardTask, files: tuple[tuple[str, int, str], ...], schema: Any) -> dict[str, Any]:
    """What `_shards/part-XXXXX.json` says of a complete shard (a table shard's keeps its
    one-file form)."""
    if isinstance(schema, SequenceSchemas):
        return {"entities": task.rows, "files": [{"name": n, "rows": r, "sha256": h} for n, r, h in files]}
    name, rows, digest = files[0]
    return {"name": name, "rows": rows, "sha256": digest}


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardedOutput:
    out_dir: Path | str  # a folder, or an object-storage URI in its shown form (display_uri)
    manifest: dict[str, Any]
    shards: tuple[ShardResult, ...]


def split_rows(rows: int, shards: int) -> list[int]:
    """Shard i gets rows // shards, plus one while i < rows % shards."""
    base, extra = divmod(rows, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def shard_tasks(rows: int, shards: int, seed: int | None, *, chunk_size: int = MAX_CHUNK) -> list[ShardTask]:
    """The shards' rows, first surrogate key and seeds (children of ONE SeedSequence)."""
    counts = split_rows(rows, shards)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
    children = np.random.SeedSequence(seed).spawn(shards)
    seeds = [int(c.generate_state(1, dtype=np.uint64)[0]) for c in children]
    return [ShardTask(index=i, rows=counts[i], key_start=starts[i], seed=seeds[i], chunk_size=chunk_size)
            for i in range(shards)]


# ------------------------------------------------------------------ reading
# ------------------------------------------------------------------ object storage
def _obj_put(fs: Any, path: str, data: bytes) -> None:
    """One small object in one PUT: visible whole or not at all."""
    with fs.open_output_stream(path) as f:
        f.write(data)


def _obj_listing(fs: Any, root: str) -> list[str]:
    """Names (relative to root) of every object under the prefix."""
    import pyarrow.fs as pafs
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return sorted(i.path[len(root) + 1:] for i in infos if i.type == pafs.FileType.File)


def _obj_ours(name: str) -> bool:
    top = name.split("/", 1)[0]
    return (bool(_PART.match(name) or _SEQ_PART.match(name)) or name in (SUCCESS, PLAN)
            or (top == RECORDS and "/" in name))


def check_object_out(uri: str, *, overwrite: bool, option: str = "--out") -> None:
    """The object-storage twin of `check_out_dir`: a complete dataset needs overwrite, and a
    prefix holding objects that are not a sharded dataset's is refused."""
    import pyarrow.fs as pafs
    fs, root = object_fs(uri, option=option)
    try:
        bucket = fs.get_file_info(root.split("/", 1)[0]).type
        names = _obj_listing(fs, root)
    except Exception as err:
        raise _obj_error(uri, "listing the prefix", err) from None
    if bucket == pafs.FileType.NotFound:
        raise SourceError(f"{option} {display_uri(uri)!r}: the bucket (container) does not exist or these "
                          "credentials cannot see it; create it first or check the credentials in the environment")
    if SUCCESS in names and not overwrite:
        raise SourceError(f"{option} {display_uri(uri)!r} already holds a complete dataset; choose another prefix or "
                          "pass --overwrite")
    foreign = [n for n in names if not _obj_ours(n)]
    if foreign:
        raise SourceError(f"{option} {display_uri(uri)!r} holds {len(foreign)} objects that are not a sharded "
                          "synthkit dataset's; give a new or empty prefix")


def _obj_clear(fs: Any, root: str) -> None:
    """The commit marker FIRST (the prefix stops looking complete), then the rest of ours."""
    names = _obj_listing(fs, root)
    if SUCCESS in names:
        fs.delete_file(f"{root}/{SUCCESS}")
    for name in names:
        if name != SUCCESS and _obj_ours(name):
            fs.delete_file(f"{root}/{name}")


def write_shard_object(model: Any, task: ShardTask, uri: str, schema: Any) -> ShardResult:
    """Generate one shard into a local temporary file, hash it, upload it under its final
    name (visible only once the upload completes) and PUT its record. Memory: one chunk;
    local disk: one shard."""
    import tempfile

    import pyarrow.fs as pafs

    start = time.perf_counter()
    fs, root = object_fs(uri)
    names = shard_files(task.index, schema)
    with tempfile.TemporaryDirectory(prefix=".synthkit-shard-") as tmpdir:
        tmps = {k: Path(tmpdir) / f"{k or 'table'}-{part_name(task.index)}" for k in names}
        rows = _fill(model, task, tmps, schema)
        files = tuple((names[k], rows[k], _sha256(tmps[k])) for k in names)
        for k in names:
            try:
                pafs.copy_files(str(tmps[k]), f"{root}/{names[k]}", source_filesystem=pafs.LocalFileSystem(),
                                destination_filesystem=fs)
            except Exception as err:
                raise _obj_error(uri, f"uploading shard {task.index}", err) from None
    record = json.dumps(_record(task, files, schema), indent=1, sort_keys=True)
    _obj_put(fs, f"{root}/{RECORDS}/{Path(part_name(task.index)).stem}.json", record.encode())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return ShardResult(index=task.index, name=part_name(task.index), rows=task.rows, sha256=files[0][2], kept=False,
                       seconds=time.perf_counter() - start, peak_rss_bytes=int(peak), files=files)


def _kept_shards(fs: Any, root: str, tasks: list[ShardTask], *, sequence: bool = False) -> dict[int, ShardResult]:
    """Shards of an earlier run of the same plan that are complete: a record, and each of
    its part files (a sequence shard's two) with the recorded SHA-256 (read back; a folder's
    or a bucket's `fs`)."""
    kept: dict[int, ShardResult] = {}
    for task in tasks:
        name = part_name(task.index)
        record = f"{root}/{RECORDS}/{Path(name).stem}.json"
        if not _obj_exists(fs, record):
            continue
        try:
            rec = json.loads(_obj_read(fs, record))
            if sequence:
                ok = rec.get("entities") == task.rows
                listed = [(str(f["name"]), int(f["rows"]), str(f["sha256"])) for f in rec["files"]]
                ok = ok and [n for n, _, _ in listed] == [f"{t}/{name}" for t in SEQUENCE_TABLES]
            else:
                listed = [(name, int(rec["rows"]), str(rec["sha256"]))]
                ok = listed[0][1] == task.rows
        except (ValueError, KeyError, TypeError):
            continue
        if ok and all(_obj_exists(fs, f"{root}/{n}") and _obj_sha256(fs, f"{root}/{n}") == h for n, _, h in listed):
            kept[task.index] = ShardResult(index=task.index, name=name, rows=task.rows, sha256=listed[0][2],
                                           kept=True, files=tuple(listed))
    return kept


def open_dataset(path: str | Path, *, verify: bool = False, table: str | None = None) -> Any:
    """A `pyarrow.dataset.Dataset` over exactly the files `_SUCCESS` lists (never a partial
    or a file of another run). `verify`: check every file's SHA-256 first. `table`: a
    sequence dataset's "events" or "context" (None for a table dataset)."""
    import pyarrow.dataset as ds
    fs, root, names = _listed(path, verify=verify, table=table)
    return ds.dataset([f"{root}/{n}" for n in names], format="parquet", filesystem=fs)


def read_dataset(path: str | Path, *, verify: bool = True, table: str | None = None) -> Any:
    """The whole dataset (or a sequence dataset's `table`) as a pandas DataFrame (small
    outputs; stream with `open_dataset`)."""
    return open_dataset(path, verify=verify, table=table).to_table().to_pandas()


# ------------------------------------------------------------------ writing
def _sha256(path: Path) -> str:
    from synthkit.bundle import sha256_file
    return sha256_file(path)


def _write_json_atomic(dest: Path, data: dict[str, Any]) -> None:
    from synthkit.partials import staged_file
    with staged_file(dest) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def write_shard(model: Any, task: ShardTask, out_dir: Path, schema: Any) -> ShardResult:
    """Generate one shard into locked partials (a sequence shard: events and context),
    chunk by chunk, then rename them into place and record their rows and SHA-256. A killed
    writer leaves only partials (or a renamed file without a record), which the next write
    of the same shard replaces. Memory: one chunk."""
    from contextlib import ExitStack

    from synthkit.partials import locked_partial

    start = time.perf_counter()
    names = shard_files(task.index, schema)
    with ExitStack() as stack:
        tmps = {k: stack.enter_context(locked_partial(out_dir / n, folder=False)) for k, n in names.items()}
        rows = _fill(model, task, tmps, schema)
        files = []
        for k, n in names.items():
            with open(tmps[k], "rb") as f:  # the data is on disk before the name points at it
                os.fsync(f.fileno())
            files.append((n, rows[k], _sha256(tmps[k])))
        for k, n in names.items():
            os.replace(tmps[k], out_dir / n)
    stem = Path(part_name(task.index)).stem
    _write_json_atomic(out_dir / RECORDS / f"{stem}.json", _record(task, tuple(files), schema))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return ShardResult(index=task.index, name=part_name(task.index), rows=task.rows, sha256=files[0][2], kept=False,
                       seconds=time.perf_counter() - start, peak_rss_bytes=int(peak), files=tuple(files))


def _fill(model: Any, task: ShardTask, paths: dict[str, Path], schema: Any) -> dict[str, int]:
    """Write the shard's data into `paths` (keys of `shard_files`); the rows of each file."""
    if isinstance(schema, SequenceSchemas):
        return _write_sequences(model, task, paths["events"], paths["context"], schema)
    return {"": _write_parquet(model, task, paths[""], schema)}


def _sequence_chunks(model: Any, task: ShardTask) -> Any:
    """The shard's (events, context) chunks of at most `chunk_size` entities, drawn as
    `sample_sequences(task.rows, seed=task.seed)` draws them (one child SeedSequence per
    chunk), with the entities numbered from the shard's first GLOBAL entity and the event
    identifiers from `key_start * max_length` (module docstring).
    Calls the model's per-chunk sampler: sample_sequences has no offsets (a hook
    `sample_sequences(..., entity_start=, event_start=)` in synthkit.models.hmm would
    replace this loop)."""
    root = np.random.SeedSequence(task.seed)
    event_base = task.key_start * int(model.layout_["max_length"])
    done = n_events = 0
    while done < task.rows:
        want = int(min(task.chunk_size, task.rows - done))
        part = model._sample_chunk(want, root.spawn(1)[0], entity_start=task.key_start + done,
                                   event_start=event_base + n_events)
        done += want
        n_events += len(part.events)
        yield part


def _write_sequences(model: Any, task: ShardTask, events_path: Path, context_path: Path,
                     schemas: SequenceSchemas) -> dict[str, int]:
    """The shard's entities, chunk by chunk, into two Parquet files (one row group per
    chunk each): every entity's context row and all its events in this shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    n = n_events = 0
    cap = task.rows * int(model.layout_["max_length"])
    with pq.ParquetWriter(events_path, schemas.events) as ev, pq.ParquetWriter(context_path, schemas.context) as cx:
        for part in _sequence_chunks(model, task):
            ev.write_table(_conform(pa.Table.from_pandas(part.events, preserve_index=False), schemas.events,
                                    task.index))
            cx.write_table(_conform(pa.Table.from_pandas(part.context, preserve_index=False), schemas.context,
                                    task.index))
            n += len(part.context)
            n_events += len(part.events)
        if n_events == 0:
            ev.write_table(schemas.events.empty_table())
        if n == 0:
            cx.write_table(schemas.context.empty_table())
    if n != task.rows:
        raise ArtifactError(f"shard {task.index} generated {n} entities, {task.rows} were planned")
    if n_events > cap:  # the event identifiers' numbering assumes at most max_length events per entity
        raise ArtifactError(f"shard {task.index} drew more events than its entities' max_length allows; report this "
                            "as a bug")
    return {"events": n_events, "context": n}


def _write_parquet(model: Any, task: ShardTask, path: Path, schema: Any) -> int:
    """The shard's rows, chunk by chunk (one row group each), into the Parquet file `path`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        for chunk in model.sample_chunks(task.rows, seed=task.seed, chunk_size=task.chunk_size,
                                         key_start=task.key_start):
            writer.write_table(_conform(pa.Table.from_pandas(chunk, preserve_index=False), schema, task.index))
            n += len(chunk)
        if n == 0:
            writer.write_table(schema.empty_table())
    if n != task.rows:
        raise ArtifactError(f"shard {task.index} generated {n} rows, {task.rows} were planned")
    return n


def _conform(table: Any, schema: Any, index: int) -> Any:
    import pyarrow as pa
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError):
        bad = [f.name for f in schema if f.name in table.schema.names and table.schema.field(f.name).type != f.type]
        raise ArtifactError(f"shard {index}: a chunk changes the type of columns {bad} from the dataset's schema; "
                            "report this as a bug") from None


def _shard_in_worker(bundle: str, task: ShardTask, out_dir: str, schema: Any) -> ShardResult:
    """The Ray task: load the bundle (every check of synthkit.bundle) and write one shard."""
    from synthkit.bundle import load
    if is_uri(out_dir):
        return write_shard_object(load(bundle), task, out_dir, schema)
    return write_shard(load(bundle), task, Path(out_dir), schema)


def _probe_schema(model: Any, rows: int, seed_seq: np.random.SeedSequence, *, sequence: bool = False) -> Any:
    """The Arrow schema every part file is written with, from a small draw on the driver
    (its own stream, not a shard's), so that the part files agree: a column that is all
    null in the probe is written as text. A sequence model: `SequenceSchemas` of a draw of
    at most 500 entities."""
    seed = int(seed_seq.generate_state(1, dtype=np.uint64)[0])
    if sequence:
        n = min(rows, _PROBE_ENTITIES)
        part = next(model.sample_sequences(n, seed=seed, chunk_size=n))
        return SequenceSchemas(_arrow_schema(part.events), _arrow_schema(part.context))
    return _arrow_schema(next(model.sample_chunks(min(rows, _PROBE_ROWS), seed=seed, chunk_size=_PROBE_ROWS)))


def _arrow_schema(frame: Any) -> Any:
    import pyarrow as pa
    schema = pa.Table.from_pandas(frame, preserve_index=False).schema
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(pa.string()))
    return schema


def _ours(p: Path) -> bool:
    if p.name in SEQUENCE_TABLES and p.is_dir() and not p.is_symlink():  # a sequence dataset's, if it holds only parts
        return all(_PART.match(c.name) or (c.name.startswith(".part-") and c.name.endswith(".partial"))
                   for c in p.iterdir())
    return (bool(_PART.match(p.name)) or p.name in (SUCCESS, PLAN, RECORDS, LOCK)
            or (p.name.startswith(".part-") and p.name.endswith(".partial"))
            or (p.name.startswith(f".{SUCCESS}.") or p.name.startswith(f".{PLAN}.")))


def _clear(out_dir: Path) -> None:
    """Remove a previous run's files: the commit marker FIRST (the folder stops looking
    complete before any part file goes), then part files, records and partials."""
    (out_dir / SUCCESS).unlink(missing_ok=True)
    for p in sorted(out_dir.iterdir()):
        if p.name == LOCK or not _ours(p):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def check_request(*, rows: Any, shards: Any, engine: Any, chunk_size: Any = MAX_CHUNK, option: str = "--rows") -> None:
    """Argument checks (no import of torch, pyarrow or ray): one line each. `option`:
    --entities for a sequence bundle."""
    for opt, value, hi in ((option, rows, MAX_ROWS), ("--shards", shards, MAX_SHARDS),
                           ("chunk_size", chunk_size, MAX_CHUNK)):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 1 <= value <= hi):
            raise ConfigError(f"{opt} must be an integer in 1..{hi:,}, got {value!r}")
    if shards > rows:
        unit = "entity" if option == "--entities" else "row"
        raise ConfigError(f"--shards {shards} is more than {option} {rows}; give at most one shard per {unit}")
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def check_out_dir(out_dir: Path, *, overwrite: bool, option: str = "--out") -> None:
    """Refuse a file, a complete dataset (without overwrite) and a folder holding other
    files; an incomplete dataset of an earlier run is fine (the run resumes it)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SourceError(f"{option} {str(out_dir)!r} is an existing file; sharded generation writes a folder of "
                          "Parquet files: give a new or empty folder")
    if not out_dir.is_dir():
        return
    if (out_dir / SUCCESS).exists() and not overwrite:
        raise SourceError(f"{option} {str(out_dir)!r} already holds a complete dataset; choose another folder or "
                          "pass --overwrite")
    foreign = [p for p in out_dir.iterdir() if not _ours(p)]
    if foreign:
        raise SourceError(f"{option} {str(out_dir)!r} holds {len(foreign)} files that are not a sharded synthkit "
                          "dataset's; give a new or empty folder")


def generate_sharded(bundle: str | Path, rows: int, shards: int, out_dir: str | Path, seed: int | None = None, *,
                     engine: Engine = "local", ray_address: str | None = None, overwrite: bool = False,
                     chunk_size: int | None = None,
                     progress: Callable[[str, int, int], Any] | None = None) -> ShardedOutput:
    """Write `rows` synthetic rows of a table bundle (for a sequence bundle, DPHMM: `rows`
    ENTITIES with their events) as `shards` Parquet files (a sequence bundle: `shards` under
    events/ and under context/) under `out_dir` (a folder, or an object-storage URI given as
    a str), committed by `_SUCCESS` (module docstring). `chunk_size`: rows (default 100,000)
    or entities (default 10,000) per chunk. `progress(stage, done, total)` hears the rows
    (entities) of the shards finished so far (kept shards of an earlier run count)."""
    from synthkit.manifest import read_manifest

    bundle = Path(bundle)
    manifest, bundle_digest = read_manifest(bundle)
    sequence = "sequence" in manifest
    unit = "entities" if sequence else "rows"
    if chunk_size is None:
        chunk_size = SEQUENCE_CHUNK if sequence else MAX_CHUNK
    check_request(rows=rows, shards=shards, engine=engine, chunk_size=chunk_size,
                  option="--entities" if sequence else "--rows")
    if ray_address is not None and engine != "ray":
        raise ConfigError("--ray-address applies to --engine ray; add --engine ray or drop --ray-address")
    tasks = shard_tasks(rows, shards, seed, chunk_size=chunk_size)
    plan = {"format": FORMAT, "format_version": FORMAT_VERSION, "total_rows": rows, "shards": shards,
            "rows_per_shard": [t.rows for t in tasks], "chunk_size": chunk_size,
            "bundle_manifest_sha256": bundle_digest,
            # a fingerprint, not the seed: equal plans resume; None (OS entropy) always does,
            # since shards drawn from fresh entropy are independent draws of the same model
            "seed": None if seed is None else hashlib.sha256(f"synthkit-seed:{seed}".encode()).hexdigest()}
    if sequence:  # an entity count, and a plan no table run equals
        plan = {**plan, "kind": "sequence"}

    def run(kept: dict[int, ShardResult], write: Callable[[Any, ShardTask], ShardResult], target: str
            ) -> tuple[ShardResult, ...]:
        todo = [t for t in tasks if t.index not in kept]
        results = dict(kept)
        if todo:
            from synthkit.bundle import load  # torch: after every check above
            model = load(bundle)
            schema = _probe_schema(model, rows, np.random.SeedSequence(seed).spawn(shards + 1)[shards],
                                   sequence=sequence)
            done_rows = sum(r.rows for r in kept.values())
            if engine == "local":
                for task in todo:
                    results[task.index] = write(model, task, schema)
                    done_rows += task.rows
                    if progress is not None:
                        progress(unit, done_rows, rows)
            else:
                del model
                for res in _run_ray(bundle, todo, target, schema, ray_address, progress, done_rows, rows, unit=unit):
                    results[res.index] = res
        return tuple(results[i] for i in range(shards))

    def success(ordered: tuple[ShardResult, ...]) -> dict[str, Any]:
        head = {"format": FORMAT, "format_version": FORMAT_VERSION, "shards": shards,
                "bundle_manifest_sha256": bundle_digest}
        if not sequence:
            return {**head, "total_rows": rows, "rows_per_shard": [r.rows for r in ordered],
                    "files": [{"name": r.name, "rows": r.rows, "sha256": r.sha256} for r in ordered]}
        tables = {}
        for i, table in enumerate(SEQUENCE_TABLES):
            files = [{"name": r.files[i][0], "rows": r.files[i][1], "sha256": r.files[i][2]} for r in ordered]
            tables[table] = {"total_rows": sum(f["rows"] for f in files), "files": files}
        return {**head, "kind": "sequence", "total_entities": rows, "entities_per_shard": [r.rows for r in ordered],
                "tables": tables}

    if is_uri(out_dir):
        try:
            return _generate_objects(str(out_dir), tasks, plan, run, success, overwrite=overwrite, sequence=sequence)
        except OSError as err:  # pyarrow's S3/GCS/Azure errors: one line, the URI shown without secrets
            raise _obj_error(str(out_dir), "writing the dataset", err) from None

    import pyarrow.fs as pafs
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite=overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _folder_lock(out_dir):
        if overwrite:
            _clear(out_dir)
        kept = {}
        if _read_plan(out_dir) == plan:
            kept = _kept_shards(pafs.LocalFileSystem(), str(out_dir.absolute()), tasks, sequence=sequence)
            log.info("resuming a sharded generation: %d of %d shards complete are kept", len(kept), shards)
        else:
            _clear(out_dir)
            _write_json_atomic(out_dir / PLAN, plan)
        (out_dir / RECORDS).mkdir(exist_ok=True)
        ordered = run(kept, lambda model, task, schema: write_shard(model, task, out_dir, schema),
                      str(out_dir.resolve()))
        done = success(ordered)
        _write_json_atomic(out_dir / SUCCESS, done)  # the commit: last
        (out_dir / PLAN).unlink(missing_ok=True)
        shutil.rmtree(out_dir / RECORDS, ignore_errors=True)
    return ShardedOutput(out_dir=out_dir, manifest=done, shards=ordered)


def _generate_objects(uri: str, tasks: list[ShardTask], plan: dict[str, Any],
                      run: Callable[..., tuple[ShardResult, ...]], success: Callable[..., dict[str, Any]], *,
                      overwrite: bool, sequence: bool = False) -> ShardedOutput:
    """generate_sharded's object-storage branch: the plan PUT first, parts uploaded under
    their final names, `_SUCCESS` PUT last, then the bookkeeping deleted."""
    check_object_out(uri, overwrite=overwrite)
    fs, root = object_fs(uri)
    if overwrite:
        _obj_clear(fs, root)
    try:
        old = json.loads(_obj_read(fs, f"{root}/{PLAN}")) if _obj_exists(fs, f"{root}/{PLAN}") else None
    except ValueError:
        old = None
    kept: dict[int, ShardResult] = {}
    if old == plan:
        kept = _kept_shards(fs, root, tasks, sequence=sequence)
        log.info("resuming a sharded generation: %d of %d shards complete are kept", len(kept), len(tasks))
    else:
        _obj_clear(fs, root)
        _obj_put(fs, f"{root}/{PLAN}", json.dumps(plan, indent=1, sort_keys=True).encode())
    ordered = run(kept, lambda model, task, schema: write_shard_object(model, task, uri, schema), uri)
    done = success(ordered)
    _obj_put(fs, f"{root}/{SUCCESS}", json.dumps(done, indent=1, sort_keys=True).encode())  # the commit: last
    for name in _obj_listing(fs, root):
        if name == PLAN or name.startswith(f"{RECORDS}/"):
            fs.delete_file(f"{root}/{name}")
    return ShardedOutput(out_dir=display_uri(uri), manifest=done, shards=ordered)


def _read_plan(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / PLAN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class _folder_lock:
    """An exclusive lock on the output folder for the run: two runs into one folder would
    clear each other's shards. The kernel drops it when the process dies."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK
        self.fd = -1

    def __enter__(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = -1
            raise SourceError(f"--out {str(self.path.parent)!r} is being written by another synthkit generate; wait "
                              "for it or choose another folder") from None

    def __exit__(self, *exc: Any) -> None:
        if self.fd >= 0:
            if exc[0] is None:
                self.path.unlink(missing_ok=True)
            os.close(self.fd)


def _run_ray(bundle: Path, tasks: list[ShardTask], out_dir: str | Path, schema: Any, address: str | None,
             progress: Callable[[str, int, int], Any] | None, done_rows: int, total: int, *,
             unit: str = "rows") -> list[ShardResult]:
    """One Ray task per shard (num_cpus=1). Ray is started in this process (4 CPUs, no
    dashboard, usage stats off) when no cluster is connected and no address given, and shut
    down again at the end; a task's failure is one line naming the shard and the cure."""
    from synthkit.distributed.ray_session import import_ray, init_ray

    ray = import_ray()
    started = init_ray(address)
    try:
        # a retried task rewrites its shard under the same name: no duplicate rows
        remote = ray.remote(num_cpus=1, max_retries=1)(_shard_in_worker)
        target = str(out_dir) if is_uri(str(out_dir)) else str(Path(out_dir).resolve())
        pending = {remote.remote(str(bundle.resolve()), t, target, schema): t for t in tasks}
        results: list[ShardResult] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                res = ray.get(ready[0])
            except Exception as err:  # RayTaskError, WorkerCrashedError, ...: no message text passed on
                for ref in pending:
                    ray.cancel(ref, force=True)
                cause = type(getattr(err, "cause", None) or err).__name__
                raise ArtifactError(f"shard {task.index} failed on its Ray worker ({cause}); the folder has no "
                                    f"{SUCCESS}: re-run the same command to complete it (complete shards are kept)"
                                    ) from None
            results.append(res)
            done_rows += res.rows
            if progress is not None:
                progress(unit, done_rows, total)
        return results
    finally:
        if started:
            ray.shutdown()


def result_rows(out: ShardedOutput) -> list[dict[str, Any]]:
    """Per-shard numbers (rows, seconds, peak memory, kept) for benchmarks and logs."""
    return [asdict(r) for r in out.shards]
