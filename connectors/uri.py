"""Where data lives: one parser for every source and sink address, and its redaction.

A location is a plain path (`.csv`, `.tsv`, `.parquet`, `.jsonl`/`.ndjson`), a dataset of
such parts (a folder, or a glob such as `claims/*.parquet`; see `_dataset`), or a URI:
`sqlite:///relative.db`, `sqlite:////absolute.db`, `postgresql://[user[:password]@]host[:port]/db`
(also `postgres://` and SQLAlchemy's `postgresql+driver://`), `fhir:folder/`, `camt053:folder/`,
`banktx:export.csv`. Parsing is done once here so that every module sees the same kinds.

Redaction exists because locations reach model bundles, reports and logs, which are
shared beyond the people who may see the database's credentials: `redact` keeps only the
scheme, host, port and database (or the path), never a user name, password or query
parameter other than a short allowlist of harmless connection options.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from synthkit.errors import SourceError

Kind = Literal["csv", "parquet", "jsonl", "sqlite", "postgresql", "fhir", "camt053", "banktx"]

FILE_SUFFIXES: dict[str, Kind] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
}
_PREFIX_KINDS: dict[str, Kind] = {"fhir": "fhir", "camt053": "camt053", "banktx": "banktx"}
_SQL_SCHEMES = re.compile(r"^(postgres|postgresql)(\+[a-z0-9_]+)?$", re.IGNORECASE)
# connection options that carry no secret and help a reader of a report
_SAFE_PARAMS = {"sslmode", "connect_timeout", "application_name", "target_session_attrs"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """A parsed source or sink. `redacted` is the only form that may be shown or stored;
    `connect` (the libpq connection string with any password) stays out of `repr`."""

    kind: Kind
    redacted: str
    path: Path | None = None
    connect: str | None = field(default=None, repr=False)
    parts: tuple[Path, ...] = ()  # a dataset (folder or glob): its part files, sorted; `path` is the folder/glob

    @property
    def is_sql(self) -> bool:
        return self.kind in ("sqlite", "postgresql")

    @property
    def has_password(self) -> bool:
        return self.connect is not None and _password_in(self.connect)


def parse(uri: str | os.PathLike[str], *, sink: bool = False) -> Location:
    """Parse a path or URI into a Location; raise SourceError (with a redacted echo) if unknown.
    `sink`: a place to write one file or table (folders and globs are sources only)."""
    if isinstance(uri, os.PathLike):
        return _file(Path(uri), sink=sink)
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError("empty data location; give a file path or a URI (see `synthkit connectors`)")
    text = uri.strip()
    scheme, sep, rest = text.partition(":")
    low = scheme.lower()
    if sep and low == "sqlite":
        return _sqlite(text, rest)
    if sep and _SQL_SCHEMES.match(low):
        return _postgres(text)
    if sep and low in _PREFIX_KINDS and len(scheme) > 1:
        path = Path(rest[2:] if rest.startswith("//") else rest)
        return Location(kind=_PREFIX_KINDS[low], path=path, redacted=f"{low}:{path}")
    if sep and "://" in text:
        raise SourceError(f"{_strip_userinfo(text)!r}: unknown URI scheme {scheme!r}; "
                          "supported: sqlite:///, postgresql://, fhir:, camt053:, banktx: (see `synthkit connectors`)")
    return _file(Path(text), sink=sink)


def redact(uri: str | os.PathLike[str]) -> str:
    """The form of a location that may go into bundles, reports and logs (no credentials)."""
    if isinstance(uri, os.PathLike):
        return str(Path(uri))
    text = str(uri).strip()
    scheme, sep, _ = text.partition(":")
    if sep and _SQL_SCHEMES.match(scheme.lower()):
        try:
            return _postgres(text).redacted
        except SourceError:
            return "postgresql://<unparseable URI>"
    try:
        return parse(text).redacted
    except SourceError:
        pass
    return _strip_userinfo(text)


def _strip_userinfo(text: str) -> str:
    """Any other URL: drop user info (before '@') and the query string."""
    if "://" not in text:
        return text
    head, rest = text.split("://", 1)
    netloc, _, tail = rest.partition("/")
    return f"{head}://{netloc.rsplit('@', 1)[-1]}/{tail.split('?', 1)[0]}"


_GLOB_CHARS = re.compile(r"[*?\[]")


def _hidden(name: str) -> bool:
    """Names that Spark, pyarrow and synthkit's sharded output keep for bookkeeping
    (`_SUCCESS`, `_plan.json`, `.crc`, `.part-*.partial`): never data."""
    return name.startswith(("_", "."))


_HIVE_PART = re.compile(r"^[^=]+=.*$")  # a hive partition folder, `column=value`


def _partition_columns(names: list[str]) -> str:
    """What a refusal may say about sub-folders: the column names of hive partitions (the
    text before '='), never a folder's whole name. In a hive layout the name is
    `column=value` and the value is a private cell; a folder of another shape may be named
    after a person, so it is not named at all."""
    columns = sorted({n.split("=", 1)[0] for n in names if _HIVE_PART.match(n)})
    return f" (hive partitions by {', '.join(repr(c) for c in columns)})" if columns else ""


def _glob_root(text: str) -> Path:
    """The glob's literal root: its path up to the first component holding a glob character."""
    root: list[str] = []
    for part in Path(text).parts:
        if _GLOB_CHARS.search(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def _dataset(text: str, path: Path) -> Location:
    """A folder or a glob of part files of ONE kind (CSV, Parquet or JSON lines), read as one
    table. Hidden and bookkeeping file names (`_*`, `.*`) are skipped, as Spark and pyarrow
    do. A folder with sub-folders (hive partitions such as `year=2020/`) is refused, because
    their partition values would silently go missing from the rows; so is a glob that
    reaches, below its literal root, a folder named `k=v` (the same loss) or a bookkeeping
    folder `_*` / `.*` (Spark's uncommitted `_temporary/`: duplicated or partial rows). A
    refusal never names a sub-folder (`column=value` holds a private cell)."""
    import glob as globmod

    if path.is_dir():
        listed = _sharded_listing(text)
        if listed is not None:
            return Location(kind="parquet", path=path, redacted=text, parts=listed)
        entries = sorted(p for p in path.iterdir() if not _hidden(p.name))
        nested = [p.name for p in entries if p.is_dir()]
        if nested:
            raise SourceError(f"{text!r}: the folder holds sub-folders{_partition_columns(nested)}; nested "
                              "(hive-partitioned) datasets are not read: flatten it into one folder of part files "
                              "with the partition columns inside the rows")
        files = [p for p in entries if p.is_file()]
        what = "folder"
    else:
        files = sorted(Path(p) for p in globmod.glob(text, recursive=True)
                       if Path(p).is_file() and not _hidden(Path(p).name))
        root = _glob_root(text)
        below = [f.relative_to(root).parts[:-1] if f.is_relative_to(root) else f.parts[:-1] for f in files]
        folders = sorted({d for parts in below for d in parts if _hidden(d) or _HIVE_PART.match(d)})
        if folders:
            raise SourceError(f"{text!r}: the glob reaches files inside hive partition or bookkeeping folders "
                              f"below {str(root)!r}{_partition_columns(folders)} (a partition column would go "
                              "missing; a '_'/'.' folder such as Spark's _temporary holds uncommitted parts); "
                              "narrow the glob to the committed part files, e.g. 'folder/*.parquet'")
        what = "glob"
    if not files:
        raise SourceError(f"{text!r}: the {what} matches no data files; give a folder or a glob of .csv, .parquet "
                          "or .jsonl parts")
    kinds = {FILE_SUFFIXES.get(p.suffix.lower()) for p in files}
    if None in kinds or len(kinds) > 1:
        odd = next(p.name for p in files if FILE_SUFFIXES.get(p.suffix.lower()) != FILE_SUFFIXES.get(
            files[0].suffix.lower()) or FILE_SUFFIXES.get(p.suffix.lower()) is None)
        raise SourceError(f"{text!r}: the {what}'s parts must all be CSV, all Parquet or all JSON lines; "
                          f"{odd!r} is not like {files[0].name!r}: move other files out or narrow the glob")
    return Location(kind=kinds.pop(), path=path, redacted=text, parts=tuple(files))  # type: ignore[arg-type]


def _sharded_listing(text: str) -> tuple[Path, ...] | None:
    """A folder written by `synthkit generate --shards` is read as its `_SUCCESS` lists it
    (never a file of another run), every part's SHA-256 checked, and refused while
    incomplete, corrupt or tampered with: a killed run's complete parts would otherwise read
    as a plausible but short table. None: not such a folder. The one reader of that format
    is synthkit.sharded's, a torch-free core module (DESIGN §3)."""
    from synthkit.sharded import sharded_parts
    return sharded_parts(Path(text))


def _file(path: Path, *, sink: bool = False) -> Location:
    text = str(path)
    # an empty folder stays a path (the reader refuses it as "not a file", as before datasets)
    if not sink and ((path.is_dir() and any(not _hidden(p.name) for p in path.iterdir()))
                     or (_GLOB_CHARS.search(text) and not path.exists())):
        return _dataset(text, path)
    kind = FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise SourceError(f"{str(path)!r}: unsupported file type {path.suffix or '(none)'!r}; use "
                          ".csv/.tsv, .parquet, .jsonl/.ndjson, or a URI (see `synthkit connectors`)")
    return Location(kind=kind, path=path, redacted=str(path))


def _sqlite(text: str, rest: str) -> Location:
    # SQLAlchemy's convention: sqlite:///relative.db and sqlite:////absolute/path.db
    if not rest.startswith("///") or len(rest) <= 3:
        raise SourceError("a SQLite URI is sqlite:///relative/path.db or sqlite:////absolute/path.db")
    raw = rest[3:].split("?", 1)[0]
    path = Path(unquote(raw))
    return Location(kind="sqlite", path=path, redacted=f"sqlite:///{raw}")


def _postgres(text: str) -> Location:
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise SourceError("postgresql://<unparseable URI>: the URI is malformed; expected "
                          "postgresql://[user[:password]@]host[:port]/database") from None
    database = parts.path.lstrip("/")
    if not database:
        raise SourceError(f"{_pg_redacted(host, port, '', [])!r}: the URI names no database; "
                          "expected postgresql://[user@]host[:port]/database")
    params = parse_qsl(parts.query, keep_blank_values=True)
    safe = [(k, v) for k, v in params if k in _SAFE_PARAMS]
    # libpq understands postgresql:// and postgres:// only; drop a SQLAlchemy driver suffix
    connect = "postgresql:" + text.split(":", 1)[1]
    return Location(kind="postgresql", redacted=_pg_redacted(host, port, database, safe), connect=connect)


def _pg_redacted(host: str, port: int | None, database: str, params: list[tuple[str, str]]) -> str:
    netloc = host + (f":{port}" if port else "")
    query = ("?" + "&".join(f"{k}={v}" for k, v in params)) if params else ""
    return f"postgresql://{netloc}/{database}{query}"


def _password_in(connect: str) -> bool:
    parts = urlsplit(connect)
    return bool(parts.password) or any(k == "password" for k, _ in parse_qsl(parts.query))
