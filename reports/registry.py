"""The registry: an append-only audit trail of runs, gate decisions, reviews and releases.

Why append-only: an auditor must be able to reconstruct who ran what, what the gate said,
who approved it and which bytes left the building. Nothing is ever updated or deleted; a
run's status is the latest of its status events. The database enforces this too: every
table carries triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), so a
bug or a hand-written SQL statement cannot rewrite history.

Storage: SQLite in a local file by default (nothing to install; WAL mode and a busy
timeout so two jobs can write at once), PostgreSQL when given a URL (through SQLAlchemy
Core and psycopg 3). State transitions (claim a run, approve, release) run inside one
transaction that first locks the run (BEGIN IMMEDIATE on SQLite, SELECT ... FOR UPDATE on
PostgreSQL), and unique constraints back the two invariants that matter most: one run
per (idempotency key, attempt), and at most one release per run.

Tamper evidence, not only tamper resistance: triggers stop a careless statement, but
whoever owns the database file or server can drop them. So the events form a hash chain
(each row stores the SHA-256 of its own canonical content, which includes the previous
row's hash), every row of the other tables is bound to the chain by an event that
records its SHA-256, and every verdict carries the reviewer's Ed25519 signature
(reports/signing.py, checked by reports/release.py against public keys held OUTSIDE the
registry). `audit()` recomputes all of it; an INSERTed, edited, deleted or reordered row
shows up there even when the triggers were dropped. Appends to the chain are serialised
(BEGIN IMMEDIATE on SQLite, a transaction-level advisory lock on PostgreSQL), so two
writers can never both link to the same predecessor. Dropped triggers are never
recreated behind the user's back: the registry then refuses to write and `audit()` says
so, until an administrator has checked the trail and restores them (`restore_triggers`).

A registry written by an earlier synthkit has no chain. It is refused with one line
rather than chained from "now": blessing an unverifiable history with a fresh genesis
would let edits made before the upgrade pass as verified. Keep it read-only as an
archive and start a new registry.

Nothing from private data is stored here: only names, hashes of synthetic artefacts,
metric values from the report (aggregates) and reviewers' words.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import socket
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reports.signing import VERDICT_FORMAT, VERDICT_VERSION, sha256_json, sha256_text
from synthkit.errors import ConfigError, SynthkitError

logger = logging.getLogger(__name__)

RunStatus = Literal["running", "failed", "gate_rejected", "pending_review", "approved", "rejected", "released"]
RUN_STATUSES: tuple[str, ...] = ("running", "failed", "gate_rejected", "pending_review", "approved", "rejected",
                                 "released")
# Statuses after which a job with the same idempotency key is NOT run again.
SETTLED_STATUSES: tuple[str, ...] = ("gate_rejected", "pending_review", "approved", "rejected", "released")
Verdict = Literal["approve", "reject"]

ENV_URL = "SYNTHKIT_REGISTRY"
DEFAULT_NAME = "registry.db"
LEGACY_PATH = "synthkit-registry.db"  # the default before issue 17: a file in the current folder
GENESIS = "0" * 64   # the prev_hash of the first event of a registry


class RegistryError(SynthkitError):
    """The registry cannot be opened, or a record contradicts its history (e.g. a second
    release of the same run)."""


# ---------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    run_id: str
    job_name: str
    idempotency_key: str
    attempt: int
    run_by: str                 # who started the run (never allowed to approve it)
    owner: str | None           # who is accountable for the job spec (never allowed to approve it either)
    created_at: str
    spec: dict[str, Any]        # the validated job spec, credentials redacted


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    seq: int
    run_id: str
    at: str
    status: str | None          # a new run status, or None for an informational event
    step: str | None
    message: str | None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    run_id: str
    at: str
    policy_name: str
    policy_sha256: str
    passed: bool
    decision: dict[str, Any]    # GateDecision.to_dict()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewRecord:
    run_id: str
    at: str
    reviewer: str
    verdict: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRecord:
    run_id: str
    at: str
    path: str
    manifest_sha256: str
    files: dict[str, str]       # file name -> sha256
    released_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    run: RunRecord
    status: str
    updated_at: str


# ---------------------------------------------------------------------------- tables
_META = sa.MetaData()
T_RUNS = sa.Table(
    "synthkit_runs", _META,
    sa.Column("run_id", sa.String(160), primary_key=True),
    sa.Column("job_name", sa.String(100), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("run_by", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200)),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.UniqueConstraint("idempotency_key", "attempt", name="synthkit_runs_key_attempt"),
)
T_EVENTS = sa.Table(
    "synthkit_events", _META,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("run_id", sa.String(160), sa.ForeignKey("synthkit_runs.run_id"), nullable=False, index=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("status", sa.String(40)),
    sa.Column("step", sa.String(40)),
    sa.Column("message", sa.Text),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
T_DECISIONS = sa.Table(
    "synthkit_decisions", _META,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("run_id", sa.String(160), sa.ForeignKey("synthkit_runs.run_id"), nullable=False, index=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("policy_name", sa.String(200), nullable=False),
    sa.Column("policy_sha256", sa.String(64), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
)
T_REVIEWS = sa.Table(
    "synthkit_reviews", _META,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("run_id", sa.String(160), sa.ForeignKey("synthkit_runs.run_id"), nullable=False, index=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("verdict", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "reviewer", name="synthkit_reviews_once"),
)
T_RELEASES = sa.Table(
    "synthkit_releases", _META,
    sa.Column("run_id", sa.String(160), sa.ForeignKey("synthkit_runs.run_id"), primary_key=True),  # one per run
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("released_by", sa.String(200), nullable=False),
)
TABLES = (T_RUNS, T_EVENTS, T_DECISIONS, T_REVIEWS, T_RELEASES)


def event_content(*, run_id: str, at: str, status: str | None, step: str | None, message: str | None,
                  details: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """What an event's hash covers: every field but its own hash and its row number."""
    return {"run_id": run_id, "at": at, "status": status, "step": step, "message": message, "details": details,
            "prev_hash": prev_hash}


def event_hash(**content: Any) -> str:
    return sha256_json(event_content(**content))


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_registry() -> str:
    """Where the registry is when no --registry is given: ONE place for every command
    (demo, run, review, releases, release, the dashboard), so a run queued by one is seen
    by the others whatever the current folder.

    $SYNTHKIT_REGISTRY (a path or URL), else registry.db in $SYNTHKIT_HOME when that is
    set (where reviewers' keys live, reports/signing.py), else the per-user data folder:
    $XDG_DATA_HOME/synthkit/registry.db, else ~/.local/share/synthkit/registry.db."""
    env = os.environ.get(ENV_URL)
    if env:
        return env
    home = os.environ.get("SYNTHKIT_HOME")
    if home:
        return str(Path(home).expanduser() / DEFAULT_NAME)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data).expanduser() / "synthkit" / DEFAULT_NAME)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite registry URL (as `resolve_url` gives it), None for a server."""
    try:
        parsed = sa.make_url(url)
    except Exception:  # noqa: BLE001 - _engine_for says what is wrong with it
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def resolve_url(url: str | os.PathLike[str] | None) -> str:
    """`url` if given, else `default_registry()`. A plain path means a SQLite file;
    anything with '://' is a SQLAlchemy URL."""
    raw = os.fspath(url) if url is not None else default_registry()
    if "://" in raw:
        return raw
    return "sqlite:///" + str(Path(raw).expanduser().resolve())


def display_url(url: str) -> str:
    """The URL with its password hidden: what may appear in logs and messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown by its scheme only
        return url.split("://", 1)[0] + "://…"


def _engine_for(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except Exception:  # noqa: BLE001
        raise ConfigError(f"registry URL {display_url(url)!r} cannot be parsed; use a file path, "
                          "sqlite:///PATH or postgresql://USER@HOST/DB") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError("an in-memory SQLite registry would forget the audit trail; give a file path")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 60, "isolation_level": None})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")       # readers never block the writer
            cur.execute("PRAGMA busy_timeout=60000")     # a second job waits for the lock instead of failing
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")       # an audit trail survives a power cut
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # pysqlite's implicit transactions start late and deferred; a writing transaction
            # takes the write lock at BEGIN so a read-check-write sequence cannot interleave
            # with another job's. Reads stay deferred and never block (WAL).
            write = conn.get_execution_options().get("synthkit_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship with
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(f"registry backend {backend!r} is not supported; use SQLite (a file path) or PostgreSQL")


class Registry:
    """Append-only records of runs, decisions, reviews and releases.

    `Registry(None)` opens `default_registry()`; `pg_schema` puts
    the tables in a PostgreSQL schema of their own (tests use one per test).

    `create=False` (read-only commands: list, show, verify, audit, review) opens only a
    registry that exists: where its tables are not set up (an empty PostgreSQL database or
    schema, an empty SQLite file) it raises RegistryError saying there is no registry
    there, and runs no DDL; a read must not create an empty registry on a server."""

    def __init__(self, url: str | os.PathLike[str] | None = None, *, pg_schema: str | None = None,
                 create: bool = True) -> None:
        self.url = resolve_url(url)
        self._engine = _engine_for(self.url)
        self.backend = self._engine.dialect.name
        self._schema = pg_schema if self.backend == "postgresql" else None
        if self._schema is not None:
            self._engine = self._engine.execution_options(schema_translate_map={None: self._schema})
        try:
            self._create() if create else self._open_existing()
        except sa.exc.OperationalError as err:
            raise RegistryError(f"cannot open the registry at {display_url(self.url)} "
                                f"({type(err.orig).__name__}); check the path or URL and that the server runs") from None
        except sa.exc.DatabaseError:  # e.g. a file that is not an SQLite database
            raise RegistryError(f"{display_url(self.url)} is not a synthkit registry (the database cannot be read); "
                                "give the registry's path or URL (--registry or $SYNTHKIT_REGISTRY)") from None

    def __repr__(self) -> str:
        return f"Registry({display_url(self.url)!r})"

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------ schema
    def _create(self) -> None:
        """Create the tables and their append-only triggers on a fresh database.

        Opening a registry that is already set up runs no DDL and takes no table lock.
        This matters on PostgreSQL: CREATE OR REPLACE TRIGGER locks its table (SHARE ROW
        EXCLUSIVE) until commit, so a job opening the registry while another job's
        transaction was half-way through deadlocked with it (the DDL held events and
        waited for decisions; add_decision held decisions and waited for events).

        An existing registry is never altered here: one without the hash chain is refused
        (module docstring), and one whose triggers were dropped is opened read-only with
        `missing_triggers` set; writes refuse and `audit()` reports it."""
        self.missing_triggers: tuple[str, ...] = ()
        if self._is_set_up():
            self._check_chain_columns()
            return
        with self._engine.execution_options(synthkit_write=True).begin() as conn:
            if self.backend == "postgresql":
                # Two jobs opening a fresh database at once would race on CREATE TABLE.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('synthkit_registry_ddl'))"))
                if self._is_set_up(conn):
                    return self._check_chain_columns(conn)  # the job we waited for has just created everything
            existing = set(sa.inspect(conn).get_table_names(schema=self._schema))
            if T_EVENTS.name in existing:
                return self._open_without_triggers(conn)
            if self.backend == "postgresql" and self._schema:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            _META.create_all(conn, checkfirst=True)
            for table in TABLES:
                for stmt in self._append_only_ddl(table.name):
                    conn.exec_driver_sql(stmt)

    def _open_existing(self) -> None:
        """`_create` for a read-only command: the same checks, with a read connection and
        no DDL; no tables (nothing was ever run or queued there) is one clear error."""
        self.missing_triggers = ()
        if self._is_set_up():
            self._check_chain_columns()
            return
        with self._engine.connect() as conn:
            if T_EVENTS.name in set(sa.inspect(conn).get_table_names(schema=self._schema)):
                return self._open_without_triggers(conn)
        raise RegistryError(f"no registry exists at {display_url(self.url)}: nothing was run or queued there yet "
                            "(its tables are not set up); point at one with --registry PATH_OR_URL or "
                            "$SYNTHKIT_REGISTRY")

    def _open_without_triggers(self, conn: Connection) -> None:
        """A registry whose append-only triggers were dropped: opened read-only (see `_create`)."""
        self._check_chain_columns(conn)
        self.missing_triggers = tuple(sorted(self._expected_triggers() - self._found_triggers(conn)))
        logger.warning("registry %s: append-only trigger(s) %s are missing; opened read-only until an "
                       "administrator checks the trail and restores them", display_url(self.url),
                       ", ".join(self.missing_triggers))

    def _check_chain_columns(self, conn: Connection | None = None) -> None:
        with self._engine.connect() if conn is None else nullcontext(conn) as read:
            columns = {c["name"] for c in sa.inspect(read).get_columns(T_EVENTS.name, schema=self._schema)}
        if not {"prev_hash", "hash"} <= columns:
            raise RegistryError(
                f"the registry {display_url(self.url)} was written by an earlier synthkit without a hash chain, so "
                "its history cannot be verified; keep it read-only as an archive and start a new registry "
                "(--registry NEW_PATH or $SYNTHKIT_REGISTRY)")

    def restore_triggers(self) -> None:
        """Recreate dropped append-only triggers: an administrator's explicit act, allowed
        only when `audit()` finds nothing else wrong (else the edits made meanwhile would
        be sealed in)."""
        problems = [p for p in self.audit() if not p.startswith("append-only trigger")]
        if problems:
            raise RegistryError(f"the trail does not verify ({len(problems)} problem(s), first: {problems[0]}); "
                                "the triggers are not restored: keep this registry as evidence and start a new one")
        with self._engine.execution_options(synthkit_write=True).begin() as conn:
            for table in TABLES:
                for stmt in self._append_only_ddl(table.name):
                    conn.exec_driver_sql(stmt)
        logger.warning("registry %s: append-only triggers restored by an administrator", display_url(self.url))
        self.missing_triggers = ()

    def _expected_triggers(self) -> set[str]:
        return {t for table in TABLES for t in self._trigger_names(table.name)}

    def _found_triggers(self, conn: Connection | None = None) -> set[str]:
        if self.backend == "sqlite":
            query = sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            params: dict[str, Any] = {}
        else:
            query = sa.text("SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                            "JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE NOT t.tgisinternal AND n.nspname = COALESCE(:schema, current_schema())")
            params = {"schema": self._schema}
        with self._engine.connect() if conn is None else nullcontext(conn) as read:
            return {row[0] for row in read.execute(query, params)}

    def _trigger_names(self, name: str) -> list[str]:
        if self.backend == "sqlite":
            return [f"{name}_no_update", f"{name}_no_delete"]
        return [f"{name}_append_only", f"{name}_no_truncate"]

    def _is_set_up(self, conn: Connection | None = None) -> bool:
        """Whether every table exists with all its append-only triggers (a read of the
        catalogue, no lock). Triggers only exist on existing tables."""
        return self._expected_triggers() <= self._found_triggers(conn)

    def _append_only_ddl(self, name: str) -> list[str]:
        message = f"synthkit registry table {name} is append-only"
        if self.backend == "sqlite":
            return [f"CREATE TRIGGER IF NOT EXISTS {trigger} BEFORE {op} ON {name} "
                    f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
                    for trigger, op in zip(self._trigger_names(name), ("UPDATE", "DELETE"))]
        q = f'"{self._schema}".' if self._schema else ""
        row_trigger, truncate_trigger = self._trigger_names(name)
        return [
            f"CREATE OR REPLACE FUNCTION {q}synthkit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'synthkit registry tables are append-only (%%)', TG_TABLE_NAME; END $$",
            f"CREATE OR REPLACE TRIGGER {row_trigger} BEFORE UPDATE OR DELETE ON {q}{name} "
            f"FOR EACH ROW EXECUTE FUNCTION {q}synthkit_append_only()",
            f"CREATE OR REPLACE TRIGGER {truncate_trigger} BEFORE TRUNCATE ON {q}{name} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {q}synthkit_append_only()",
        ]

    @contextmanager
    def _tx(self, lock_run: str | None = None) -> Iterator[Connection]:
        """One transaction; with `lock_run`, the run's row is locked first so that a
        read-check-append sequence on that run is serialised across processes."""
        if self.missing_triggers:
            raise RegistryError(
                f"the registry {display_url(self.url)} has lost its append-only trigger(s) "
                f"{', '.join(self.missing_triggers)}, so its history may have been edited; nothing more is written "
                "until an administrator checks it (`synthkit releases audit`) and restores them "
                "(`synthkit releases restore-triggers`)")
        with self._engine.execution_options(synthkit_write=True).begin() as conn:
            if self.backend == "postgresql":
                # One appender at a time for the whole chain (SQLite's BEGIN IMMEDIATE does
                # the same): two writers must never link to the same predecessor. Taken
                # first, before any row lock, so every writer locks in the same order.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                             {"key": f"synthkit_chain:{self._schema or ''}"})
                if lock_run is not None:
                    conn.execute(sa.select(T_RUNS.c.run_id).where(T_RUNS.c.run_id == lock_run).with_for_update())
            yield conn

    # ------------------------------------------------------------------ runs
    def claim_run(self, *, job_name: str, idempotency_key: str, run_by: str, owner: str | None,
                  spec: dict[str, Any], run_by_display: str | None = None) -> tuple[RunRecord, bool]:
        """Start a run for `idempotency_key`, or return the one that already settled it.

        Returns (run, created). `created` is False when a run with this key is settled
        (pending review, released, rejected...) or still running elsewhere: a scheduler
        re-running a finished job must not produce a second release. A previous FAILED
        attempt is retried as a new attempt. Two processes claiming the same key at once
        collide on the unique (key, attempt) constraint; the loser gets the winner's run."""
        for _ in range(5):
            latest = self._latest_for_key(idempotency_key)
            if latest is not None:
                status = self.status(latest.run_id)
                if status == "running" and self._is_orphan(latest.run_id):
                    self.add_event(latest.run_id, status="failed", step="claim", expect=("running",),
                                   message="the process running this job ended without recording a result")
                    status = "failed"
                if status != "failed":
                    return latest, False
            attempt = 1 if latest is None else latest.attempt + 1
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            run = RunRecord(run_id=f"{job_name}-{stamp}-{secrets.token_hex(3)}", job_name=job_name,
                            idempotency_key=idempotency_key, attempt=attempt, run_by=run_by, owner=owner,
                            created_at=now_utc(), spec=spec)
            try:
                with self._tx() as conn:
                    row = dict(run_id=run.run_id, job_name=job_name, idempotency_key=idempotency_key, attempt=attempt,
                               run_by=run_by, owner=owner, created_at=run.created_at, spec=_dumps(spec))
                    conn.execute(T_RUNS.insert().values(**row))
                    details: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(),
                                               **_record("run", run.run_id, row)}
                    if run_by_display and run_by_display != run_by:
                        details["run_by_display"] = run_by_display  # a label only; run_by is the OS account
                    self._insert_event(conn, run.run_id, status="running", step="claim",
                                       message=f"attempt {attempt} started", details=details)
                return run, True
            except sa.exc.IntegrityError:
                continue  # another process took this attempt number: look again
        raise RegistryError(f"could not claim a run for job {job_name!r}: the registry keeps changing under us")

    def _is_orphan(self, run_id: str) -> bool:
        """A run marked running whose process, on this host, no longer exists (killed by
        the OOM killer or a scheduler timeout): it will never finish, so it must not block
        the job forever. Runs started on other hosts are left alone."""
        claim = next((e for e in reversed(self.events(run_id)) if e.step == "claim" and e.status == "running"), None)
        if claim is None or claim.details.get("host") != socket.gethostname():
            return False
        pid = claim.details.get("pid")
        if not isinstance(pid, int) or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _latest_for_key(self, key: str) -> RunRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(T_RUNS).where(T_RUNS.c.idempotency_key == key)
                               .order_by(T_RUNS.c.attempt.desc()).limit(1)).mappings().first()
        return None if row is None else _run_from_row(row)

    def run(self, run_id: str) -> RunRecord:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(T_RUNS).where(T_RUNS.c.run_id == run_id)).mappings().first()
        if row is None:
            raise RegistryError(f"no run {run_id!r} in the registry {display_url(self.url)}; "
                                "list them with `synthkit releases list`")
        return _run_from_row(row)

    def runs(self, *, status: str | None = None, job_name: str | None = None) -> list[RunSummary]:
        """Every run with its current status, newest first (optionally filtered)."""
        with self._engine.connect() as conn:
            runs = [_run_from_row(r) for r in conn.execute(
                sa.select(T_RUNS).order_by(T_RUNS.c.created_at.desc())).mappings()]
            latest: dict[str, tuple[str, str]] = {}
            for row in conn.execute(sa.select(T_EVENTS.c.run_id, T_EVENTS.c.status, T_EVENTS.c.at)
                                    .where(T_EVENTS.c.status.is_not(None)).order_by(T_EVENTS.c.seq)):
                latest[row.run_id] = (row.status, row.at)
        return _summaries(runs, latest, status=status, job_name=job_name)

    def snapshot(self, run_id: str | None = None) -> RegistrySnapshot:
        """Every row of the registry (or of one run), read at once in one read transaction:
        the read side of this class (`events`, `run`, `runs`, `decision`, `reviews`,
        `releases`, `artifacts`, `status`, `audit`) answered from memory. A command that
        looks at every run (`releases list`, `releases audit`, the dashboard's queue)
        reads the registry with a handful of queries instead of several per run, and
        sees one consistent state (a writer appending meanwhile is not half-seen)."""
        with self._engine.connect() as conn:
            if self.backend == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                def rows(table: sa.Table, *order: Any) -> list[dict[str, Any]]:
                    query = sa.select(table).order_by(*order)
                    if run_id is not None:
                        query = query.where(table.c.run_id == run_id)
                    return [dict(r) for r in conn.execute(query).mappings()]
                runs = rows(T_RUNS)  # as stored: the order `audit` reports problems in
                order = sa.select(T_RUNS.c.run_id).order_by(T_RUNS.c.created_at.desc())  # as `runs()` lists them
                newest_first = list(conn.execute(order if run_id is None else order.where(T_RUNS.c.run_id == run_id))
                                    .scalars())
                events = rows(T_EVENTS, T_EVENTS.c.seq)
                decisions = rows(T_DECISIONS, T_DECISIONS.c.seq)
                reviews = rows(T_REVIEWS, T_REVIEWS.c.seq)
                releases = rows(T_RELEASES)
                triggers = self._found_triggers(conn) if run_id is None else None
        return RegistrySnapshot(registry=self, run_id=run_id, runs=runs, newest_first=newest_first, events=events,
                                decisions=decisions, reviews=reviews, releases=releases, triggers=triggers)

    # ------------------------------------------------------------------ events
    def add_event(self, run_id: str, *, status: str | None = None, step: str | None = None,
                  message: str | None = None, details: dict[str, Any] | None = None,
                  expect: tuple[str, ...] | None = None) -> None:
        """Append an event; with `expect`, only if the run's current status is one of them
        (checked and written in one locked transaction)."""
        if status is not None and status not in RUN_STATUSES:
            raise ConfigError(f"unknown run status {status!r}; allowed: {RUN_STATUSES}")
        with self._tx(lock_run=run_id) as conn:
            if expect is not None:
                current = self._status(conn, run_id)
                if current not in expect:
                    raise RegistryError(f"run {run_id!r} is {current!r}, expected one of {list(expect)}")
            self._insert_event(conn, run_id, status=status, step=step, message=message, details=details)

    def _insert_event(self, conn: Connection, run_id: str, *, status: str | None, step: str | None,
                      message: str | None, details: dict[str, Any] | None,
                      make_details: Callable[[str], dict[str, Any]] | None = None) -> str:
        """Append one event to the chain (inside a writing transaction, which serialises
        appenders) and return its hash. `make_details(prev_hash)` builds details that
        must name their predecessor, e.g. a signed verdict."""
        prev = conn.execute(sa.select(T_EVENTS.c.hash).order_by(T_EVENTS.c.seq.desc()).limit(1)).scalar()
        prev = prev or GENESIS
        if make_details is not None:
            details = make_details(prev)
        stored = _dumps(details or {})
        at = now_utc()
        digest = event_hash(run_id=run_id, at=at, status=status, step=step, message=message,
                            details=json.loads(stored), prev_hash=prev)
        conn.execute(T_EVENTS.insert().values(run_id=run_id, at=at, status=status, step=step, message=message,
                                              details=stored, prev_hash=prev, hash=digest))
        return digest

    def events(self, run_id: str | None = None) -> list[EventRecord]:
        """The run's events in order (every event of the registry when `run_id` is None)."""
        query = sa.select(T_EVENTS).order_by(T_EVENTS.c.seq)
        if run_id is not None:
            query = query.where(T_EVENTS.c.run_id == run_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_event_from_row(r) for r in rows]

    def head(self) -> str:
        """The hash of the latest event: what a release manifest anchors."""
        with self._engine.connect() as conn:
            return conn.execute(sa.select(T_EVENTS.c.hash).order_by(T_EVENTS.c.seq.desc()).limit(1)).scalar() \
                or GENESIS

    def status(self, run_id: str) -> str:
        with self._engine.connect() as conn:
            return self._status(conn, run_id)

    def _status(self, conn: Connection, run_id: str, ignore: Collection[int] = ()) -> str:
        """The run's recorded status: the latest status event, leaving out the events
        `ignore` names (events reports/release.py found forged: a release row that does
        not verify must not make the genuine run look released)."""
        query = (sa.select(T_EVENTS.c.status).where(T_EVENTS.c.run_id == run_id)
                 .where(T_EVENTS.c.status.is_not(None)).order_by(T_EVENTS.c.seq.desc()).limit(1))
        if ignore:
            query = query.where(T_EVENTS.c.seq.not_in([int(s) for s in ignore]))
        row = conn.execute(query).first()
        if row is None:
            self.run(run_id)  # raises a clear error when the run does not exist
            return "running"
        return str(row[0])

    def artifacts(self, run_id: str) -> dict[str, Any]:
        """Merged `details` of the run's 'staged' events: paths and hashes of what the job
        produced for review."""
        out: dict[str, Any] = {}
        for e in self.events(run_id):
            if e.step == "staged":
                out.update(e.details)
        return out

    # ------------------------------------------------------------------ decisions
    def add_decision(self, run_id: str, *, policy_name: str, policy_sha256: str, passed: bool,
                     decision: dict[str, Any], status: str, message: str) -> None:
        """Record the gate's decision and the status it leads to, atomically."""
        with self._tx(lock_run=run_id) as conn:
            current = self._status(conn, run_id)
            if current != "running":
                raise RegistryError(f"run {run_id!r} is {current!r}; a gate decision belongs to a running job")
            row = dict(run_id=run_id, at=now_utc(), policy_name=policy_name, policy_sha256=policy_sha256,
                       passed=bool(passed), decision=_dumps(decision))
            seq = conn.execute(T_DECISIONS.insert().values(**row)).inserted_primary_key[0]
            self._insert_event(conn, run_id, status=status, step="gate", message=message,
                               details=_record("decision", int(seq), {"seq": int(seq), **row}))

    def decision(self, run_id: str) -> DecisionRecord | None:
        with self._engine.connect() as conn:
            r = conn.execute(sa.select(T_DECISIONS).where(T_DECISIONS.c.run_id == run_id)
                             .order_by(T_DECISIONS.c.seq.desc()).limit(1)).mappings().first()
        if r is None:
            return None
        return DecisionRecord(run_id=r["run_id"], at=r["at"], policy_name=r["policy_name"],
                              policy_sha256=r["policy_sha256"], passed=bool(r["passed"]),
                              decision=json.loads(r["decision"]))

    # ------------------------------------------------------------------ reviews
    def add_review(self, run_id: str, *, reviewer: str, verdict: Verdict, reason: str,
                   approvals_needed: int = 1, attest: dict[str, Any] | None = None,
                   sign: Callable[[dict[str, Any]], dict[str, str]] | None = None,
                   ignore_events: Collection[int] = ()) -> str:
        """Record a review and return the run's new status. The run must be pending review
        (checked under the run's lock); a reviewer reviews a run once; one rejection is
        final; the run becomes "approved" when `approvals_needed` distinct reviewers have
        approved. Counting happens inside the lock, so two reviewers approving at the
        same moment cannot both believe that more approvals are needed.

        `sign(payload)` signs the verdict where it lands in the chain: the payload (run,
        verdict, reviewer, time, SHA-256 of the reason, the `attest` hashes of what was
        judged, and the hash of the event it follows) is built under the lock and its
        signature stored in the review event. An unsigned review is stored as such and
        counts for nothing when publishing (reports/release.py).

        `ignore_events`: events the caller (reports/release.py `approve`/`reject`, from
        `trail_check`) found forged. They do not count for the status check, and the review
        rows they vouch for count neither as approvals nor as the reviewer's one review: a
        forged "approved"/"released" event or a forged review row must not stop the
        genuine review (the forged events stay in the trail and stay flagged)."""
        if verdict not in ("approve", "reject"):
            raise ConfigError(f"verdict must be 'approve' or 'reject', got {verdict!r}")
        ignore = {int(s) for s in ignore_events}
        with self._tx(lock_run=run_id) as conn:
            current = self._status(conn, run_id, ignore)
            if current != "pending_review":
                raise RegistryError(f"run {run_id!r} is {current!r}; only a run pending review can be reviewed")
            forged_rows: list[int] = []
            if ignore:
                for e in conn.execute(sa.select(T_EVENTS.c.seq, T_EVENTS.c.details)
                                      .where(T_EVENTS.c.run_id == run_id).where(T_EVENTS.c.step == "review")
                                      .where(T_EVENTS.c.seq.in_(sorted(ignore)))).mappings():
                    held = json.loads(e["details"]) if e["details"] else {}
                    if isinstance(held, dict) and held.get("record") == "review":
                        try:
                            forged_rows.append(int(held.get("record_key")))
                        except (TypeError, ValueError):
                            continue
            seen = conn.execute(sa.select(sa.func.count()).select_from(T_REVIEWS)
                                .where(T_REVIEWS.c.run_id == run_id)
                                .where(T_REVIEWS.c.seq.not_in(forged_rows or [-1]))
                                .where(sa.func.lower(T_REVIEWS.c.reviewer) == reviewer.lower())).scalar_one()
            if seen:
                raise RegistryError(f"{reviewer!r} has already reviewed run {run_id!r}")
            row = dict(run_id=run_id, at=now_utc(), reviewer=reviewer, verdict=verdict, reason=reason)
            try:
                seq = int(conn.execute(T_REVIEWS.insert().values(**row)).inserted_primary_key[0])
            except sa.exc.IntegrityError:
                raise RegistryError(f"{reviewer!r} has already reviewed run {run_id!r}") from None

            def review_details(prev: str) -> dict[str, Any]:
                payload = verdict_payload(run_id=run_id, verdict=verdict, reviewer=reviewer, at=row["at"],
                                          reason=reason, attest=attest or {}, prev_hash=prev)
                out: dict[str, Any] = {**_record("review", seq, {"seq": seq, **row}), "payload": payload}
                if sign is not None:
                    out.update(sign(payload))
                return out
            if verdict == "reject":
                new_status = "rejected"
            else:
                n = conn.execute(sa.select(sa.func.count(sa.distinct(sa.func.lower(T_REVIEWS.c.reviewer))))
                                 .where(T_REVIEWS.c.run_id == run_id)
                                 .where(T_REVIEWS.c.seq.not_in(forged_rows or [-1]))
                                 .where(T_REVIEWS.c.verdict == "approve")).scalar_one()
                new_status = "approved" if n >= approvals_needed else "pending_review"
                message = f"approved by {reviewer} ({n} of {approvals_needed} approvals)"
            self._insert_event(conn, run_id, status=new_status if new_status != "pending_review" else None,
                               step="review", message=message if verdict == "approve" else f"rejected by {reviewer}",
                               details=None, make_details=review_details)
        return new_status

    def reviews(self, run_id: str) -> list[ReviewRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(T_REVIEWS).where(T_REVIEWS.c.run_id == run_id)
                                .order_by(T_REVIEWS.c.seq)).mappings().all()
        return [ReviewRecord(run_id=r["run_id"], at=r["at"], reviewer=r["reviewer"], verdict=r["verdict"],
                             reason=r["reason"]) for r in rows]

    # ------------------------------------------------------------------ releases
    def add_release(self, run_id: str, *, path: str, manifest_sha256: str, files: dict[str, str],
                    released_by: str, ignore_events: Collection[int] = ()) -> ReleaseRecord:
        """Record a written release bundle (the run must be approved; one release per run).

        `ignore_events`: events the caller (reports/release.py `publish`) found forged. They
        do not count for the status check, and when the release table already holds a row
        for the run that only such an event vouches for (a forged release row: the table is
        append-only, so it stays), the genuine release is recorded whole in its chained
        event instead (record "release_event"), which `release()` prefers."""
        rec = ReleaseRecord(run_id=run_id, at=now_utc(), path=path, manifest_sha256=manifest_sha256,
                            files=dict(files), released_by=released_by)
        ignore = {int(s) for s in ignore_events}
        with self._tx(lock_run=run_id) as conn:
            current = self._status(conn, run_id, ignore)
            if current != "approved":
                raise RegistryError(f"run {run_id!r} is {current!r}; only an approved run can be released")
            row = dict(run_id=run_id, at=rec.at, path=path, manifest_sha256=manifest_sha256, files=_dumps(files),
                       released_by=released_by)
            existing = conn.execute(sa.select(sa.func.count()).select_from(T_RELEASES)
                                    .where(T_RELEASES.c.run_id == run_id)).scalar_one()
            if existing:
                vouching = [int(e["seq"]) for e in conn.execute(
                    sa.select(T_EVENTS.c.seq, T_EVENTS.c.details).where(T_EVENTS.c.run_id == run_id)
                    .where(T_EVENTS.c.step == "release")).mappings()
                    if json.loads(e["details"]).get("record") == "release"]
                if not vouching or not set(vouching) <= ignore:
                    raise RegistryError(f"run {run_id!r} has already been released")
                self._insert_event(conn, run_id, status="released", step="release",
                                   message=f"released to {path} (the release table's row for this run is "
                                           f"forged: event(s) {', '.join(f'#{s}' for s in sorted(vouching))})",
                                   details={"manifest_sha256": manifest_sha256, "record": "release_event",
                                            "release": json.loads(_dumps({**row, "files": dict(files)})),
                                            "supersedes_events": sorted(vouching)})
                return rec
            try:
                conn.execute(T_RELEASES.insert().values(**row))
            except sa.exc.IntegrityError:
                raise RegistryError(f"run {run_id!r} has already been released") from None
            self._insert_event(conn, run_id, status="released", step="release", message=f"released to {path}",
                               details={"manifest_sha256": manifest_sha256, **_record("release", run_id, row)})
        return rec

    def release(self, run_id: str) -> ReleaseRecord | None:
        """The run's release: the latest one recorded in a chained event (written when a
        forged row occupied the release table), else the release table's row."""
        records = self.releases(run_id)
        return records[-1][1] if records else None

    def releases(self, run_id: str) -> list[tuple[int | None, ReleaseRecord]]:
        """Every release recorded for the run with the event that records it (None when no
        event vouches for the table row): the table's row first, then event-held ones."""
        with self._engine.connect() as conn:
            r = conn.execute(sa.select(T_RELEASES).where(T_RELEASES.c.run_id == run_id)).mappings().first()
        return _releases_of(run_id, r, self.events(run_id))

    # ------------------------------------------------------------------ audit
    def audit(self) -> list[str]:
        """Everything that is wrong with the trail, as lines naming the row (empty: it
        verifies): missing triggers, an event whose content no longer matches its hash, a
        broken link (an inserted, deleted or reordered event), and a run, decision,
        review or release row that no chained event vouches for or that differs from
        what its event recorded. Signatures are checked by reports/release.py, which
        holds the reviewers' public keys."""
        return self.snapshot().audit()


def _summaries(runs: list[RunRecord], latest: dict[str, tuple[str, str]], *, status: str | None,
               job_name: str | None) -> list[RunSummary]:
    out = []
    for r in runs:
        st, at = latest.get(r.run_id, ("running", r.created_at))
        if (status is None or st == status) and (job_name is None or r.job_name == job_name):
            out.append(RunSummary(run=r, status=st, updated_at=at))
    return out


def _releases_of(run_id: str, r: Any, run_events: list[EventRecord]) -> list[tuple[int | None, ReleaseRecord]]:
    """`Registry.releases` from the release table's row of the run (or None) and its events."""
    out: list[tuple[int | None, ReleaseRecord]] = []
    events = [e for e in run_events if e.step == "release"]
    if r is not None:
        seq = next((e.seq for e in events if e.details.get("record") == "release"), None)
        out.append((seq, ReleaseRecord(run_id=r["run_id"], at=r["at"], path=r["path"],
                                       manifest_sha256=r["manifest_sha256"], files=json.loads(r["files"]),
                                       released_by=r["released_by"])))
    for e in events:
        held = e.details.get("release")
        if e.details.get("record") == "release_event" and isinstance(held, dict):
            try:
                out.append((e.seq, ReleaseRecord(run_id=run_id, at=str(held["at"]), path=str(held["path"]),
                                                 manifest_sha256=str(held["manifest_sha256"]),
                                                 files=dict(held["files"]), released_by=str(held["released_by"]))))
            except (KeyError, TypeError, ValueError):
                continue  # malformed: audit in reports/release.py reports the event
    return out


class RegistrySnapshot:
    """The registry's rows read at once (`Registry.snapshot`), with the read side of
    `Registry` answered from memory: what `trail_check` replays for every run of `releases
    list` / `releases audit` without going back to the database per run. Read-only; a
    snapshot of one run (`run_id`) answers only for that run and cannot `audit` (the
    chain is the whole registry)."""

    def __init__(self, *, registry: Registry, run_id: str | None, runs: list[dict[str, Any]], newest_first: list[str],
                 events: list[dict[str, Any]], decisions: list[dict[str, Any]], reviews: list[dict[str, Any]],
                 releases: list[dict[str, Any]], triggers: set[str] | None) -> None:
        self.url = registry.url
        self.backend = registry.backend
        self._registry = registry
        self._only = run_id
        self._rows = {"run": runs, "decision": decisions, "review": reviews, "release": releases}
        self._triggers = triggers
        self._runs = {r["run_id"]: _run_from_row(r) for r in runs}
        self._order = newest_first
        self._events = [_event_from_row(r) for r in events]
        self._by_run: dict[str, list[EventRecord]] = {}
        for e in self._events:
            self._by_run.setdefault(e.run_id, []).append(e)
        self._decision: dict[str, dict[str, Any]] = {}
        for r in decisions:  # ordered by seq: the latest wins, as Registry.decision
            self._decision[r["run_id"]] = r
        self._reviews: dict[str, list[ReviewRecord]] = {}
        for r in reviews:
            self._reviews.setdefault(r["run_id"], []).append(
                ReviewRecord(run_id=r["run_id"], at=r["at"], reviewer=r["reviewer"], verdict=r["verdict"],
                             reason=r["reason"]))
        self._release_rows = {r["run_id"]: r for r in releases}

    def __repr__(self) -> str:
        return f"RegistrySnapshot({display_url(self.url)!r})"

    def _check(self, run_id: str) -> None:
        if self._only is not None and run_id != self._only:
            raise RegistryError(f"this snapshot holds run {self._only!r} only, not {run_id!r}")

    def run(self, run_id: str) -> RunRecord:
        self._check(run_id)
        if run_id not in self._runs:
            raise RegistryError(f"no run {run_id!r} in the registry {display_url(self.url)}; "
                                "list them with `synthkit releases list`")
        return self._runs[run_id]

    def runs(self, *, status: str | None = None, job_name: str | None = None) -> list[RunSummary]:
        latest: dict[str, tuple[str, str]] = {}
        for e in self._events:
            if e.status is not None:
                latest[e.run_id] = (e.status, e.at)
        return _summaries([self._runs[i] for i in self._order], latest, status=status, job_name=job_name)

    def events(self, run_id: str | None = None) -> list[EventRecord]:
        if run_id is None:
            return list(self._events)
        self._check(run_id)
        return list(self._by_run.get(run_id, []))

    def head(self) -> str:
        if self._only is not None:
            raise RegistryError("a snapshot of one run has no chain head; take a snapshot of the whole registry")
        return self._events[-1].hash if self._events else GENESIS

    def status(self, run_id: str) -> str:
        self.run(run_id)
        st = [e.status for e in self._by_run.get(run_id, []) if e.status is not None]
        return st[-1] if st else "running"

    def artifacts(self, run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for e in self.events(run_id):
            if e.step == "staged":
                out.update(e.details)
        return out

    def decision(self, run_id: str) -> DecisionRecord | None:
        self._check(run_id)
        r = self._decision.get(run_id)
        if r is None:
            return None
        return DecisionRecord(run_id=r["run_id"], at=r["at"], policy_name=r["policy_name"],
                              policy_sha256=r["policy_sha256"], passed=bool(r["passed"]),
                              decision=json.loads(r["decision"]))

    def reviews(self, run_id: str) -> list[ReviewRecord]:
        self._check(run_id)
        return list(self._reviews.get(run_id, []))

    def release(self, run_id: str) -> ReleaseRecord | None:
        records = self.releases(run_id)
        return records[-1][1] if records else None

    def releases(self, run_id: str) -> list[tuple[int | None, ReleaseRecord]]:
        self._check(run_id)
        return _releases_of(run_id, self._release_rows.get(run_id), self._by_run.get(run_id, []))

    def audit(self) -> list[str]:
        """`Registry.audit` over the rows read (see there)."""
        if self._only is not None or self._triggers is None:
            raise RegistryError("a snapshot of one run cannot audit the chain; take a snapshot of the whole registry")
        problems: list[str] = []
        missing = sorted(self._registry._expected_triggers() - self._triggers)
        if missing:
            problems.append(f"append-only trigger(s) missing: {', '.join(missing)} (dropped by hand?)")
        events = self._events
        tables = {
            "run": {r["run_id"]: dict(r) for r in self._rows["run"]},
            "decision": {int(r["seq"]): dict(r) for r in self._rows["decision"]},
            "review": {int(r["seq"]): dict(r) for r in self._rows["review"]},
            "release": {r["run_id"]: dict(r) for r in self._rows["release"]},
        }
        prev, prev_seq = GENESIS, None
        vouched: dict[tuple[str, Any], str] = {}
        for e in events:
            if e.hash != event_hash(run_id=e.run_id, at=e.at, status=e.status, step=e.step, message=e.message,
                                    details=e.details, prev_hash=e.prev_hash):
                problems.append(f"event #{e.seq} (run {e.run_id}) was altered: its content no longer matches its hash")
            if e.prev_hash != prev:
                after = f"event #{prev_seq}" if prev_seq is not None else "the start of the registry"
                problems.append(f"event #{e.seq} (run {e.run_id}) does not follow {after} in the hash chain "
                                "(an event was inserted, deleted or reordered)")
            prev, prev_seq = e.hash, e.seq
            kind, key = e.details.get("record"), e.details.get("record_key")
            if kind in tables:
                if (kind, key) in vouched:
                    problems.append(f"event #{e.seq} records the {kind} {key!r} a second time")
                vouched[(kind, key)] = str(e.details.get("record_sha256"))
        for kind, rows in tables.items():
            for key, row in rows.items():
                digest = vouched.pop((kind, key), None)
                if digest is None:
                    problems.append(f"{kind} row {key!r} has no event in the hash chain (inserted by hand?)")
                elif digest != _row_sha(kind, row):
                    problems.append(f"{kind} row {key!r} differs from what its chained event recorded (edited?)")
        for (kind, key) in vouched:
            problems.append(f"the {kind} {key!r} recorded in the hash chain is missing from its table (deleted?)")
        return problems


def verdict_payload(*, run_id: str, verdict: str, reviewer: str, at: str, reason: str, attest: dict[str, Any],
                    prev_hash: str) -> dict[str, Any]:
    """What a reviewer signs (reports/signing.py): the verdict bound to the run, the time,
    the exact reason, the hashes of what was judged and its place in the chain."""
    return {"format": VERDICT_FORMAT, "version": VERDICT_VERSION, "run_id": run_id, "verdict": verdict,
            "reviewer": reviewer, "at": at, "reason_sha256": sha256_text(reason), "attest": dict(attest),
            "prev_hash": prev_hash}


def _row_sha(kind: str, row: dict[str, Any]) -> str:
    """SHA-256 of a table row as stored (JSON text columns parsed, booleans as booleans)."""
    out = dict(row)
    for col in ("spec", "decision", "files"):
        if isinstance(out.get(col), str):
            out[col] = json.loads(out[col])
    if "passed" in out:
        out["passed"] = bool(out["passed"])
    if "seq" in out:
        out["seq"] = int(out["seq"])
    if "attempt" in out:
        out["attempt"] = int(out["attempt"])
    return sha256_json(out)


def _record(kind: str, key: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The details that bind a table row to the chained event written with it."""
    return {"record": kind, "record_key": key, "record_sha256": _row_sha(kind, row)}


def _event_from_row(r: Any) -> EventRecord:
    return EventRecord(seq=int(r["seq"]), run_id=r["run_id"], at=r["at"], status=r["status"], step=r["step"],
                       message=r["message"], details=json.loads(r["details"]), prev_hash=r["prev_hash"],
                       hash=r["hash"])


def _run_from_row(row: Any) -> RunRecord:
    return RunRecord(run_id=row["run_id"], job_name=row["job_name"], idempotency_key=row["idempotency_key"],
                     attempt=int(row["attempt"]), run_by=row["run_by"], owner=row["owner"],
                     created_at=row["created_at"], spec=json.loads(row["spec"]))


def _dumps(obj: Any) -> str:
    return json.dumps(jsonable(obj), sort_keys=True, allow_nan=False, default=str)


def jsonable(obj: Any) -> Any:
    """`obj` with non-finite floats spelled as strings ("inf", "nan"): JSON has no infinity,
    and a non-private run's epsilon is infinite."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj
