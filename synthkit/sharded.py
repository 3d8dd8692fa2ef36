"""The sharded-dataset format that `synthkit generate --shards/--engine ray` writes, and its
one checked reader (torch-free; `synthkit.distributed.generate` writes and opens it,
`connectors` reads a folder of it through `sharded_parts`: DESIGN §3, connectors import
only schema/table types and this reader from synthkit).

A dataset is a folder or an object-storage prefix of `part-XXXXX.parquet` files plus
`_SUCCESS` (JSON: format, the files with their rows and SHA-256, the total), written last;
`_plan.json` and `_shards/` are a run's bookkeeping. Readers take exactly what `_SUCCESS`
lists, each part present and (when verified) with its recorded SHA-256.

A sequence bundle's (DPHMM) dataset holds two tables of S parts each,
`events/part-XXXXX.parquet` and `context/part-XXXXX.parquet` (shard i's entities: their
context rows and all their events), and one `_SUCCESS` at the top with `"kind": "sequence"`
and, per table, its files and total rows; readers take `table="events"` or `"context"`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from synthkit.errors import ConfigError, SourceError

FORMAT = "synthkit-sharded-parquet"
FORMAT_VERSION = 1
SUCCESS = "_SUCCESS"
PLAN = "_plan.json"
RECORDS = "_shards"
_PART = re.compile(r"^part-\d{5}\.parquet$")
SEQUENCE_TABLES: tuple[str, ...] = ("events", "context")  # a sequence dataset's two sub-folders
_SEQ_PART = re.compile(r"^(events|context)/part-\d{5}\.parquet$")


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


OBJECT_SCHEMES: tuple[str, ...] = ("s3", "gs", "gcs", "abfs", "abfss")
_SECRET_PARAM = re.compile(r"key|secret|token|password|sas|credential|sig", re.IGNORECASE)


def is_uri(out: str | Path) -> bool:
    """Whether `out` names object storage (a scheme and '://') rather than a local folder."""
    return isinstance(out, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", out) is not None


def display_uri(uri: str) -> str:
    """The form of an object-storage URI that may be shown: scheme, bucket/account and
    prefix; no user information, no query string."""
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        return "<unparseable URI>"
    user = parts.username if parts.scheme.lower() in ("abfs", "abfss") and parts.username else ""
    return f"{parts.scheme}://{user + '@' if user else ''}{host}{parts.path}"


def check_object_uri(uri: str, *, option: str = "--out") -> None:
    """One line for a scheme pyarrow.fs cannot write or credentials inside the URI (no
    import of pyarrow or torch)."""
    from urllib.parse import parse_qsl, urlsplit
    shown = display_uri(uri)
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in OBJECT_SCHEMES:
        raise ConfigError(f"{option} {shown!r}: unknown object-storage scheme {scheme!r}; use a local folder or "
                          f"one of {', '.join(s + '://' for s in OBJECT_SCHEMES)}")
    try:
        parts = urlsplit(uri)
        secret = parts.password is not None or any(_SECRET_PARAM.search(k) for k, _ in parse_qsl(parts.query))
    except ValueError:
        raise ConfigError(f"{option} {shown!r}: the URI is malformed; expected {scheme}://bucket/prefix") from None
    if secret:
        raise ConfigError(f"{option} {shown!r}: the URI carries a credential; put it in the environment "
                          "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, "
                          "AZURE_STORAGE_ACCOUNT_KEY) and give the URI without it")
    if not (parts.hostname or "").strip() or not parts.path.strip("/"):
        raise ConfigError(f"{option} {shown!r}: give a bucket and a prefix, {scheme}://bucket/prefix (the dataset's "
                          "files go under the prefix)")


def object_fs(uri: str, *, option: str = "--out") -> tuple[Any, str]:
    """(pyarrow FileSystem, root path without trailing '/') for an object-storage URI."""
    import pyarrow.fs as pafs
    check_object_uri(uri, option=option)
    try:
        fs, root = pafs.FileSystem.from_uri(uri)
    except Exception as err:  # ArrowInvalid, OSError: their text may echo the URI's query
        raise SourceError(f"{option} {display_uri(uri)!r}: cannot open this object storage "
                          f"({type(err).__name__}); check the URI and the credentials in the environment") from None
    return fs, root.rstrip("/")


def _obj_error(uri: str, what: str, err: BaseException) -> SourceError:
    return SourceError(f"{display_uri(uri)!r}: {what} failed ({type(err).__name__}); check the credentials in "
                       "the environment, that the bucket exists and is writable, and that TMPDIR has room for a shard")


def _obj_exists(fs: Any, path: str) -> bool:
    import pyarrow.fs as pafs
    return fs.get_file_info(path).type == pafs.FileType.File


def _obj_read(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def _obj_sha256(fs: Any, path: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while True:
            block = f.read(8 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _check_manifest(manifest: Any) -> bool:
    try:
        if manifest.get("format") != FORMAT:
            return False
        if manifest.get("kind") == "sequence":
            tables = manifest["tables"]
            ok = set(tables) == set(SEQUENCE_TABLES)
            for name in SEQUENCE_TABLES:
                files = tables[name]["files"]
                ok = ok and isinstance(files, list) and all(
                    _SEQ_PART.match(str(f["name"])) and str(f["name"]).startswith(f"{name}/") for f in files)
                ok = ok and sum(int(f["rows"]) for f in files) == int(tables[name]["total_rows"])
            return ok and int(tables["context"]["total_rows"]) == int(manifest["total_entities"])
        files = manifest["files"]
        return (isinstance(files, list) and all(_PART.match(str(f["name"])) for f in files)
                and sum(int(f["rows"]) for f in files) == int(manifest["total_rows"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def manifest_files(manifest: dict[str, Any], table: str | None, shown: str) -> list[dict[str, Any]]:
    """The files one table of a checked `_SUCCESS` manifest lists: a table dataset's (table
    None) or a sequence dataset's `events`/`context`; one line when `table` does not fit."""
    if manifest.get("kind") == "sequence":
        if table not in SEQUENCE_TABLES:
            raise ConfigError(f"{shown!r} is a sequence dataset (events and context tables): pass "
                              f"table='events' or table='context', got {table!r}")
        return list(manifest["tables"][table]["files"])
    if table is not None:
        raise ConfigError(f"{shown!r} is a table dataset (one table of part files): drop table={table!r}")
    return list(manifest["files"])


def _store(path: str | Path) -> tuple[Any, str, str]:
    """(pyarrow FileSystem, root, the name errors show) of a sharded dataset: the bucket's
    for an object-storage URI, the local one for a folder, so that one reader serves both."""
    import pyarrow.fs as pafs
    if is_uri(path):
        fs, root = object_fs(str(path), option="dataset")
        return fs, root, display_uri(str(path))
    folder = Path(path)
    if not folder.is_dir():
        raise SourceError(f"{str(folder)!r} is not a sharded dataset folder; give the folder that "
                          "`synthkit generate --shards/--engine ray --out` wrote")
    return pafs.LocalFileSystem(), str(folder.absolute()), str(folder)


def read_success(path: str | Path) -> dict[str, Any]:
    """The `_SUCCESS` manifest of a complete sharded dataset (a folder or an object-storage
    URI); one clear error otherwise."""
    fs, root, shown = _store(path)
    try:
        present = _obj_exists(fs, f"{root}/{SUCCESS}")
        raw = _obj_read(fs, f"{root}/{SUCCESS}") if present else b""
    except Exception as err:
        if not is_uri(path):
            raise
        raise _obj_error(str(path), f"reading {SUCCESS}", err) from None
    if not present:
        raise SourceError(f"{shown!r} is an incomplete sharded dataset (no {SUCCESS}: its generate run did not "
                          "finish); re-run the same `synthkit generate` command to complete it")
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    if not _check_manifest(manifest):
        raise SourceError(f"{shown!r}: {SUCCESS} is not a synthkit sharded-dataset manifest (corrupt or from another "
                          "tool); re-run `synthkit generate` with --overwrite")
    return manifest  # type: ignore[return-value]


def _listed(path: str | Path, *, verify: bool, table: str | None = None) -> tuple[Any, str, list[str]]:
    """(filesystem, root, names) of exactly the files `_SUCCESS` lists (of `table`, for a
    sequence dataset), each present and, with `verify`, with the SHA-256 `_SUCCESS` records:
    the one check every reader of a sharded dataset goes through (`open_dataset`, and
    `connectors` via `sharded_parts`)."""
    manifest = read_success(path)
    fs, root, shown = _store(path)
    names = []
    for f in manifest_files(manifest, table, shown):
        part = f"{root}/{f['name']}"
        if not _obj_exists(fs, part):
            raise SourceError(f"{shown!r}: {f['name']} listed in {SUCCESS} is missing; re-run "
                              "`synthkit generate` with --overwrite")
        if verify and _obj_sha256(fs, part) != f["sha256"]:
            raise SourceError(f"{shown!r}: {f['name']} does not match its SHA-256 in {SUCCESS} (modified or "
                              "corrupt); re-run `synthkit generate` with --overwrite")
        names.append(str(f["name"]))
    return fs, root, names


def _ours_marker(folder: Path) -> str | None:
    """'done': `folder` holds our `_SUCCESS`; 'running': only our `_plan.json` (a run not
    finished); None: neither (another tool's marker, e.g. Spark's empty `_SUCCESS`, or none)."""
    marker = folder / SUCCESS
    if marker.is_file():
        try:
            head = json.loads(marker.read_bytes())
        except (OSError, ValueError):
            return None
        return "done" if isinstance(head, dict) and head.get("format") == FORMAT else None
    return "running" if (folder / PLAN).is_file() else None


def _sequence_root(folder: Path) -> bool:
    """Whether `folder` holds our `_SUCCESS` or `_plan.json` of a SEQUENCE dataset (a folder
    named events/context beside a table dataset's marker is a plain folder)."""
    state = _ours_marker(folder)
    if state is None:
        return False
    try:
        head = json.loads((folder / (SUCCESS if state == "done" else PLAN)).read_bytes())
    except (OSError, ValueError):
        return state == "running"  # a plan being replaced: the reader refuses the run as incomplete
    return isinstance(head, dict) and head.get("kind") == "sequence"


def sharded_parts(folder: Path) -> tuple[Path, ...] | None:
    """The part files of a local folder written by `synthkit generate --shards`, as its
    `_SUCCESS` lists them, every SHA-256 checked; `connectors` reads such a folder through
    this (`synthkit fit DIR`). A sequence dataset's `DIR/events` or `DIR/context` is read
    the same way, through `DIR/_SUCCESS` (`synthkit fit DIR/events --context DIR/context`);
    `DIR` itself is refused in one line naming them. None: not such a folder (no `_SUCCESS`
    and no `_plan.json`, or another tool's marker: the caller reads the folder's files).
    Refused in one line: an incomplete run (a `_plan.json`, no `_SUCCESS`), a corrupt
    manifest, a listed part missing or whose bytes changed."""
    folder = Path(folder)
    table = None
    if _ours_marker(folder) is None:
        if folder.name not in SEQUENCE_TABLES or not _sequence_root(folder.parent):
            return None
        folder, table = folder.parent, folder.name
    manifest = read_success(folder)
    if manifest.get("kind") == "sequence" and table is None:
        raise SourceError(f"{str(folder)!r} is a sharded sequence dataset: read its events as "
                          f"{str(folder / 'events')!r} with --context {str(folder / 'context')!r}")
    _, _, names = _listed(folder, verify=True, table=table)
    return tuple(folder / n for n in names)
