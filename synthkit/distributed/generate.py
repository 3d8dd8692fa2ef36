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

Sequence bundles (DPHMM) are refused: their event identifiers are numbered by the events of
the entities before them, which a shard cannot know before the earlier shards ran.
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
from synthkit.sharded import (FORMAT, FORMAT_VERSION, PLAN, RECORDS, SUCCESS, _PART, _listed, _obj_error, _obj_exists,
                              _obj_read, _obj_sha256, display_uri, is_uri, object_fs, part_name, read_success)

__all__ = ["FORMAT", "PLAN", "RECORDS", "SUCCESS", "check_object_out", "check_out_dir", "display_uri",
           "generate_sharded", "open_dataset", "read_dataset", "read_success", "shard_tasks"]

log = logging.getLogger(__name__)

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")

LOCK = ".synthkit-generate.lock"
MAX_SHARDS = 99_999  # part-XXXXX: five digits
MAX_CHUNK = 100_000
MAX_ROWS = 1_000_000_000  # the most one `synthkit generate` writes (synthkit.cli.MAX_GENERATE)
_PROBE_ROWS = 2_000


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardResult:
    index: int
    name: str
    rows: int
    sha256: str
    kept: bool  # True: a complete shard of an earlier run of the same plan, not rewritten
    seconds: float = 0.0
    peak_rss_bytes: int = 0  # the worker process's peak resident memory (getrusage)


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
    return bool(_PART.match(name)) or name in (SUCCESS, PLAN) or (top == RECORDS and "/" in name)


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
    name = part_name(task.index)
    with tempfile.TemporaryDirectory(prefix=".synthkit-shard-") as tmpdir:
        tmp = Path(tmpdir) / name
        _write_parquet(model, task, tmp, schema)
        digest = _sha256(tmp)
        try:
            pafs.copy_files(str(tmp), f"{root}/{name}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=fs)
        except Exception as err:
            raise _obj_error(uri, f"uploading shard {task.index}", err) from None
    record = json.dumps({"name": name, "rows": task.rows, "sha256": digest}, indent=1, sort_keys=True)
    _obj_put(fs, f"{root}/{RECORDS}/{Path(name).stem}.json", record.encode())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return ShardResult(index=task.index, name=name, rows=task.rows, sha256=digest, kept=False,
                       seconds=time.perf_counter() - start, peak_rss_bytes=int(peak))


def _kept_shards(fs: Any, root: str, tasks: list[ShardTask]) -> dict[int, ShardResult]:
    """Shards of an earlier run of the same plan that are complete: a record, and a part
    file with the recorded rows' SHA-256 (read back; a folder's or a bucket's `fs`)."""
    kept: dict[int, ShardResult] = {}
    for task in tasks:
        name = part_name(task.index)
        record, part = f"{root}/{RECORDS}/{Path(name).stem}.json", f"{root}/{name}"
        if not (_obj_exists(fs, record) and _obj_exists(fs, part)):
            continue
        try:
            rec = json.loads(_obj_read(fs, record))
        except ValueError:
            continue
        if rec.get("rows") == task.rows and rec.get("sha256") == _obj_sha256(fs, part):
            kept[task.index] = ShardResult(index=task.index, name=name, rows=task.rows, sha256=rec["sha256"],
                                           kept=True)
    return kept


def open_dataset(path: str | Path, *, verify: bool = False) -> Any:
    """A `pyarrow.dataset.Dataset` over exactly the files `_SUCCESS` lists (never a partial
    or a file of another run). `verify`: check every file's SHA-256 first."""
    import pyarrow.dataset as ds
    fs, root, names = _listed(path, verify=verify)
    return ds.dataset([f"{root}/{n}" for n in names], format="parquet", filesystem=fs)


def read_dataset(path: str | Path, *, verify: bool = True) -> Any:
    """The whole dataset as a pandas DataFrame (small outputs; stream with `open_dataset`)."""
    return open_dataset(path, verify=verify).to_table().to_pandas()


# ------------------------------------------------------------------ writing
def _sha256(path: Path) -> str:
    from synthkit.bundle import sha256_file
    return sha256_file(path)


def _write_json_atomic(dest: Path, data: dict[str, Any]) -> None:
    from synthkit.partials import staged_file
    with staged_file(dest) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def write_shard(model: Any, task: ShardTask, out_dir: Path, schema: Any) -> ShardResult:
    """Generate one shard into a locked partial, chunk by chunk, then rename it into place
    and record its rows and SHA-256. A killed writer leaves only its partial, which the next
    write of the same shard removes (its lock is free). Memory: one chunk."""
    from synthkit.partials import locked_partial

    start = time.perf_counter()
    dest = out_dir / part_name(task.index)
    with locked_partial(dest, folder=False) as tmp:
        n = _write_parquet(model, task, tmp, schema)
        with open(tmp, "rb") as f:  # the data is on disk before the name points at it
            os.fsync(f.fileno())
        digest = _sha256(tmp)
        os.replace(tmp, dest)
    _write_json_atomic(out_dir / RECORDS / f"{dest.stem}.json", {"name": dest.name, "rows": n, "sha256": digest})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return ShardResult(index=task.index, name=dest.name, rows=n, sha256=digest, kept=False,
                       seconds=time.perf_counter() - start, peak_rss_bytes=int(peak))


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


def _probe_schema(model: Any, rows: int, seed_seq: np.random.SeedSequence) -> Any:
    """The Arrow schema every part file is written with, from a small draw on the driver
    (its own stream, not a shard's), so that the part files agree: a column that is all
    null in the probe is written as text."""
    import pyarrow as pa
    seed = int(seed_seq.generate_state(1, dtype=np.uint64)[0])
    frame = next(model.sample_chunks(min(rows, _PROBE_ROWS), seed=seed, chunk_size=_PROBE_ROWS), None)
    schema = pa.Table.from_pandas(frame, preserve_index=False).schema
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(pa.string()))
    return schema


def _ours(p: Path) -> bool:
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


def check_request(*, rows: Any, shards: Any, engine: Any, chunk_size: Any = MAX_CHUNK) -> None:
    """Argument checks (no import of torch, pyarrow or ray): one line each."""
    for option, value, hi in (("--rows", rows, MAX_ROWS), ("--shards", shards, MAX_SHARDS),
                              ("chunk_size", chunk_size, MAX_CHUNK)):
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 1 <= value <= hi):
            raise ConfigError(f"{option} must be an integer in 1..{hi:,}, got {value!r}")
    if shards > rows:
        raise ConfigError(f"--shards {shards} is more than --rows {rows}; give at most one shard per row")
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
                     chunk_size: int = MAX_CHUNK,
                     progress: Callable[[str, int, int], Any] | None = None) -> ShardedOutput:
    """Write `rows` synthetic rows of a table bundle as `shards` Parquet files under
    `out_dir` (a folder, or an object-storage URI given as a str), committed by `_SUCCESS`
    (module docstring). `progress(stage, done, total)` hears the rows of the shards
    finished so far (kept shards of an earlier run count)."""
    from synthkit.manifest import read_manifest

    check_request(rows=rows, shards=shards, engine=engine, chunk_size=chunk_size)
    if ray_address is not None and engine != "ray":
        raise ConfigError("--ray-address applies to --engine ray; add --engine ray or drop --ray-address")
    bundle = Path(bundle)
    manifest, bundle_digest = read_manifest(bundle)
    if "sequence" in manifest:
        raise ConfigError("sharded generation (--shards > 1 or --engine ray) supports table bundles only; for a "
                          "sequence model (dphmm) drop --shards/--engine and use --entities with one process")
    tasks = shard_tasks(rows, shards, seed, chunk_size=chunk_size)
    plan = {"format": FORMAT, "format_version": FORMAT_VERSION, "total_rows": rows, "shards": shards,
            "rows_per_shard": [t.rows for t in tasks], "chunk_size": chunk_size,
            "bundle_manifest_sha256": bundle_digest,
            # a fingerprint, not the seed: equal plans resume; None (OS entropy) always does,
            # since shards drawn from fresh entropy are independent draws of the same model
            "seed": None if seed is None else hashlib.sha256(f"synthkit-seed:{seed}".encode()).hexdigest()}

    def run(kept: dict[int, ShardResult], write: Callable[[Any, ShardTask], ShardResult], target: str
            ) -> tuple[ShardResult, ...]:
        todo = [t for t in tasks if t.index not in kept]
        results = dict(kept)
        if todo:
            from synthkit.bundle import load  # torch: after every check above
            model = load(bundle)
            schema = _probe_schema(model, rows, np.random.SeedSequence(seed).spawn(shards + 1)[shards])
            done_rows = sum(r.rows for r in kept.values())
            if engine == "local":
                for task in todo:
                    results[task.index] = write(model, task, schema)
                    done_rows += task.rows
                    if progress is not None:
                        progress("rows", done_rows, rows)
            else:
                del model
                for res in _run_ray(bundle, todo, target, schema, ray_address, progress, done_rows, rows):
                    results[res.index] = res
        return tuple(results[i] for i in range(shards))

    def success(ordered: tuple[ShardResult, ...]) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "shards": shards, "total_rows": rows,
                "rows_per_shard": [r.rows for r in ordered], "bundle_manifest_sha256": bundle_digest,
                "files": [{"name": r.name, "rows": r.rows, "sha256": r.sha256} for r in ordered]}

    if is_uri(out_dir):
        try:
            return _generate_objects(str(out_dir), tasks, plan, run, success, overwrite=overwrite)
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
            kept = _kept_shards(pafs.LocalFileSystem(), str(out_dir.absolute()), tasks)
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
                      overwrite: bool) -> ShardedOutput:
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
        kept = _kept_shards(fs, root, tasks)
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
             progress: Callable[[str, int, int], Any] | None, done_rows: int, total: int) -> list[ShardResult]:
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
                progress("rows", done_rows, total)
        return results
    finally:
        if started:
            ray.shutdown()


def result_rows(out: ShardedOutput) -> list[dict[str, Any]]:
    """Per-shard numbers (rows, seconds, peak memory, kept) for benchmarks and logs."""
    return [asdict(r) for r in out.shards]
