"""Registry: append-only records on SQLite and on a REAL PostgreSQL server, idempotent
claims, locked status transitions, and two concurrent jobs that do not corrupt it.

PostgreSQL: start a throwaway server with `export SYNTHKIT_TEST_POSTGRES_URL=$(bash
scripts/postgres.sh)`; without the variable those cases are skipped with that message.
Each PostgreSQL test works in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import socket
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from reports.registry import Registry, RegistryError, display_url

PG_URL = os.environ.get("SYNTHKIT_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="set SYNTHKIT_TEST_POSTGRES_URL (e.g. $(bash scripts/postgres.sh)) to test PostgreSQL"))]


def _open(backend: str, tmp_path, schema: str | None = None) -> Registry:
    if backend == "sqlite":
        return Registry(tmp_path / "registry.db")
    return Registry(PG_URL, pg_schema=schema)


@pytest.fixture(params=BACKENDS)
def target(request, tmp_path):
    """(backend, schema) of a fresh registry; the PostgreSQL schema is dropped afterwards."""
    schema = f"t_{secrets.token_hex(4)}" if request.param == "postgresql" else None
    yield request.param, schema
    if schema:
        engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture
def reg(target, tmp_path):
    r = _open(target[0], tmp_path, target[1])
    yield r
    r.close()


def _claim(reg: Registry, key: str = "k1", **kw):
    return reg.claim_run(job_name="claims", idempotency_key=key, run_by=kw.get("run_by", "alice"),
                         owner=kw.get("owner", "olivia"), spec={"name": "claims"})


def test_claim_is_idempotent_and_failed_runs_are_retried(reg):
    run, created = _claim(reg)
    assert created and run.attempt == 1 and reg.status(run.run_id) == "running"
    again, created2 = _claim(reg)
    assert (again.run_id, created2) == (run.run_id, False)
    reg.add_event(run.run_id, status="failed", step="fit", message="boom")
    retry, created3 = _claim(reg)
    assert created3 and retry.attempt == 2 and retry.run_id != run.run_id
    reg.add_decision(retry.run_id, policy_name="default", policy_sha256="a" * 64, passed=True,
                     decision={"policy": "default", "epsilon": float("inf")}, status="pending_review", message="ok")
    settled, created4 = _claim(reg)
    assert (settled.run_id, created4) == (retry.run_id, False)
    assert reg.decision(retry.run_id).decision["epsilon"] == "inf"  # JSON has no infinity
    assert [s.status for s in reg.runs()] == ["pending_review", "failed"]
    assert [s.run.run_id for s in reg.runs(status="failed")] == [run.run_id]


def test_history_cannot_be_rewritten(reg, target):
    run, _ = _claim(reg)
    reg.add_event(run.run_id, step="fit", message="fitted")
    prefix = f'"{target[1]}".' if target[1] else ""
    statements = [f"UPDATE {prefix}synthkit_runs SET run_by = 'mallory'",
                  f"DELETE FROM {prefix}synthkit_events",
                  f"UPDATE {prefix}synthkit_events SET status = 'released'"]
    if target[0] == "postgresql":
        statements.append(f"TRUNCATE {prefix}synthkit_events CASCADE")
    for sql in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with reg._engine.begin() as conn:
                conn.exec_driver_sql(sql)
    assert reg.run(run.run_id).run_by == "alice"
    assert [e.message for e in reg.events(run.run_id)] == ["attempt 1 started", "fitted"]


def test_status_transitions_are_checked(reg):
    run, _ = _claim(reg)
    with pytest.raises(RegistryError, match="only a run pending review"):
        reg.add_review(run.run_id, reviewer="bob", verdict="approve", reason="looks fine")
    with pytest.raises(RegistryError, match="only an approved run"):
        reg.add_release(run.run_id, path="/x", manifest_sha256="0" * 64, files={}, released_by="bob")
    reg.add_decision(run.run_id, policy_name="healthcare", policy_sha256="a" * 64, passed=True, decision={},
                     status="pending_review", message="passed")
    with pytest.raises(RegistryError, match="belongs to a running job"):
        reg.add_decision(run.run_id, policy_name="x", policy_sha256="a" * 64, passed=True, decision={},
                         status="pending_review", message="again")
    assert reg.add_review(run.run_id, reviewer="bob", verdict="approve", reason="first", approvals_needed=2) \
        == "pending_review"
    with pytest.raises(RegistryError, match="already reviewed"):
        reg.add_review(run.run_id, reviewer="BOB", verdict="approve", reason="again", approvals_needed=2)
    assert reg.add_review(run.run_id, reviewer="carol", verdict="approve", reason="second",
                          approvals_needed=2) == "approved"
    reg.add_release(run.run_id, path="/r", manifest_sha256="1" * 64, files={"a": "2" * 64}, released_by="carol")
    with pytest.raises(RegistryError):
        reg.add_release(run.run_id, path="/r2", manifest_sha256="1" * 64, files={}, released_by="carol")
    assert reg.status(run.run_id) == "released"
    assert reg.release(run.run_id).files == {"a": "2" * 64}
    assert [r.reviewer for r in reg.reviews(run.run_id)] == ["bob", "carol"]


def _worker(backend: str, path: str, schema: str | None, worker: int, n_jobs: int, queue) -> None:
    """One 'job runner': claims runs and writes their whole history, opening the
    registry afresh for every job as a scheduled job does (opening must not lock)."""
    try:
        reg = Registry(path if backend == "sqlite" else PG_URL, pg_schema=schema)
        for i in range(n_jobs):
            reg.close()
            reg = Registry(path if backend == "sqlite" else PG_URL, pg_schema=schema)
            run, created = reg.claim_run(job_name=f"job{worker}", idempotency_key=f"w{worker}-{i}",
                                         run_by=f"runner{worker}", owner=None, spec={"i": i})
            assert created
            for step in ("read", "fit", "generate", "evaluate"):
                reg.add_event(run.run_id, step=step, message=f"{step} done")
            reg.add_decision(run.run_id, policy_name="default", policy_sha256="a" * 64, passed=i % 2 == 0,
                             decision={"i": i}, status="pending_review" if i % 2 == 0 else "gate_rejected",
                             message="gate")
        # and every worker races for the SAME job key: exactly one may win
        _, created = reg.claim_run(job_name="shared", idempotency_key="shared-key", run_by=f"runner{worker}",
                                   owner=None, spec={})
        queue.put(("ok", created))
    except Exception as err:  # noqa: BLE001 - reported to the parent
        queue.put(("error", repr(err)))


def test_concurrent_jobs_do_not_corrupt_the_registry(target, tmp_path):
    backend, schema = target
    path = str(tmp_path / "registry.db")
    _open(backend, tmp_path, schema).close()  # create the tables once, like a first job would
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    n_workers, n_jobs = 3, 15
    procs = [ctx.Process(target=_worker, args=(backend, path, schema, w, n_jobs, queue)) for w in range(n_workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(kind == "ok" for kind, _ in results), results
    assert sorted(created for _, created in results) == [False] * (n_workers - 1) + [True]
    reg = _open(backend, tmp_path, schema)
    runs = [s for s in reg.runs() if s.run.job_name != "shared"]
    assert len(runs) == n_workers * n_jobs
    for s in runs:
        events = reg.events(s.run.run_id)
        assert [e.step for e in events] == ["claim", "read", "fit", "generate", "evaluate", "gate"]
        assert s.status == ("pending_review" if s.run.spec["i"] % 2 == 0 else "gate_rejected")
    seqs = [e.seq for s in reg.runs() for e in reg.events(s.run.run_id)]
    assert len(seqs) == len(set(seqs))
    assert reg.audit() == []  # three writers at once, one unforked chain


def test_a_second_writer_waits_for_the_first_and_the_chain_does_not_fork(target, tmp_path):
    """Writer A holds its append open; writer B must wait for it (we wait until B is seen
    waiting: on PostgreSQL in pg_stat_activity, on SQLite at its BEGIN IMMEDIATE) and then
    link to A's event, never to A's predecessor. They write to different runs, so only the
    chain's own lock can order them."""
    backend, schema = target
    first = _open(backend, tmp_path, schema)
    second = _open(backend, tmp_path, schema)
    other, _ = _claim(first, key="other")
    run, _ = _claim(first)
    at_begin = threading.Event()
    if backend == "sqlite":
        @sa.event.listens_for(second._engine, "before_cursor_execute")
        def _seen(conn, cursor, statement, *args):  # noqa: ANN001 - SQLAlchemy's hook
            if statement == "BEGIN IMMEDIATE":
                at_begin.set()
    errors: list[BaseException] = []

    def writer_b() -> None:
        try:
            second.add_event(other.run_id, step="b", message="second writer")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    with first._tx(lock_run=run.run_id) as conn:
        a_hash = first._insert_event(conn, run.run_id, status=None, step="a", message="first writer", details=None)
        b = threading.Thread(target=writer_b, daemon=True)
        b.start()
        if backend == "sqlite":
            assert at_begin.wait(timeout=60), "writer B never reached its BEGIN IMMEDIATE"
        else:
            with first._engine.connect() as watch:
                for _ in range(6000):
                    waiting = watch.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND wait_event = 'advisory' AND datname = current_database()")).scalar()
                    if waiting:
                        break
                    threading.Event().wait(0.01)
                assert waiting, "writer B was never seen waiting for the chain lock"
        assert [e.step for e in first.events(other.run_id)] == ["claim"]  # B has written nothing yet
    b.join(timeout=60)
    assert not b.is_alive() and not errors, errors
    events = first.events()
    assert [e.step for e in events] == ["claim", "claim", "a", "b"]
    assert events[2].hash == a_hash and events[3].prev_hash == a_hash
    assert first.audit() == []
    first.close()
    second.close()


def test_a_registry_without_the_hash_chain_is_refused_in_one_line(tmp_path):
    old = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{old}")
    with engine.begin() as conn:  # the tables as an earlier synthkit wrote them
        conn.exec_driver_sql("CREATE TABLE synthkit_events (seq INTEGER PRIMARY KEY, run_id TEXT, at TEXT, "
                             "status TEXT, step TEXT, message TEXT, details TEXT)")
    engine.dispose()
    with pytest.raises(RegistryError, match="without a hash chain") as info:
        Registry(old)
    assert str(old) in str(info.value) and "start a new registry" in str(info.value)
    assert "\n" not in str(info.value)


def test_opening_a_set_up_registry_waits_for_no_other_job(target, tmp_path):
    """A job opening the registry while another job's transaction is open must not wait
    for it: the DDL used to run on every open, locked every table and, on PostgreSQL,
    deadlocked with a concurrent add_decision (seen in CI)."""
    backend, schema = target
    first = _open(backend, tmp_path, schema)
    run, _ = _claim(first)
    opened: list[Registry] = []
    with first._tx(lock_run=run.run_id) as conn:
        first._insert_event(conn, run.run_id, status=None, step="fit", message="half-way", details=None)
        opener = threading.Thread(target=lambda: opened.append(_open(backend, tmp_path, schema)), daemon=True)
        opener.start()
        opener.join(timeout=30)
        assert opened, "opening the registry waited for another job's open transaction"
    assert opened[0].status(run.run_id) == "running" and [e.step for e in opened[0].events(run.run_id)] == \
        ["claim", "fit"]
    opened[0].close()
    first.close()


def test_a_run_whose_process_died_does_not_block_its_job(reg):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run, _ = _claim(reg)
    # forge what a killed runner leaves behind: a claim by a pid that no longer exists
    with reg._tx() as conn:
        reg._insert_event(conn, run.run_id, status="running", step="claim", message="attempt 1 started",
                          details={"host": socket.gethostname(), "pid": dead.pid})
    assert reg._is_orphan(run.run_id)
    retry, created = _claim(reg)
    assert created and retry.attempt == 2
    assert reg.status(run.run_id) == "failed"
    assert "ended without recording a result" in reg.events(run.run_id)[-1].message


def test_unknown_run_and_bad_urls_give_one_clear_line(tmp_path):
    reg = Registry(tmp_path / "r.db")
    with pytest.raises(RegistryError, match="no run 'nope'"):
        reg.run("nope")
    url = "postgresql://user:s3cret-pw@127.0.0.1:1/db"
    assert "s3cret" not in display_url(url)
    with pytest.raises(RegistryError) as info:
        Registry(url)
    assert "s3cret" not in str(info.value) and "cannot open the registry" in str(info.value)
    from synthkit.errors import ConfigError
    with pytest.raises(ConfigError, match="in-memory"):
        Registry("sqlite://")
    with pytest.raises(ConfigError, match="not supported"):
        Registry("mysql://u@h/db")


def test_default_location_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHKIT_REGISTRY", str(tmp_path / "env.db"))
    reg = Registry()
    _claim(reg)
    assert (tmp_path / "env.db").is_file() and reg.url.endswith("env.db")
