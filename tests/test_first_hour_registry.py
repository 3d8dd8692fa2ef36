"""Issue 17, part E: one registry people find, and a stand-alone gate.

- Every command without --registry uses ONE default registry ($SYNTHKIT_REGISTRY, else
  $SYNTHKIT_HOME/registry.db, else the per-user data folder), whatever the current folder:
  before, each folder got its own ./synthkit-registry.db, so `releases list` run elsewhere
  than the job showed "0 run(s)".
- Read-only commands never create a registry file where none exists.
- Listings show full run ids; unique prefixes are accepted, ambiguous ones refused.
- `synthkit gate REPORT --policy P`: exit 0 pass, 3 rejected, 2 bad input, with the same
  decision the pipeline recorded for the same report and policy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reports.registry import Registry, default_registry
from synthkit.cli import app
from test_jobs import fake_steps, write_job  # noqa: F401  (fake_steps is a fixture)

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user with no registry configured: XDG data folder and HOME in tmp_path."""
    for name in ("SYNTHKIT_REGISTRY", "SYNTHKIT_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in ("jobs", "elsewhere"):
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path / "jobs")
    return tmp_path


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------- the default location
def test_default_location_order(tmp_path, monkeypatch):
    for name in ("SYNTHKIT_REGISTRY", "SYNTHKIT_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_registry() == str(tmp_path / "h" / ".local" / "share" / "synthkit" / "registry.db")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    assert default_registry() == str(tmp_path / "x" / "synthkit" / "registry.db")
    monkeypatch.setenv("SYNTHKIT_HOME", str(tmp_path / "s"))  # where reviewers' keys live too
    assert default_registry() == str(tmp_path / "s" / "registry.db")
    monkeypatch.setenv("SYNTHKIT_REGISTRY", "postgresql://u@db.internal/synthkit")
    assert default_registry() == "postgresql://u@db.internal/synthkit"


def test_a_run_without_registry_is_listed_from_another_folder(user, fake_steps):  # noqa: F811
    """The demo-less flow: `synthkit run` then `synthkit releases list`, neither with
    --registry, from different folders. Before: the run went to jobs/synthkit-registry.db
    and the list (from elsewhere/) created elsewhere/synthkit-registry.db and said 0 run(s)."""
    job = write_job(user / "jobs")
    r = _run("run", str(job))
    assert r.exit_code == 0, r.output
    run_id = r.output.split("run ", 1)[1].split(":", 1)[0]
    default = user / "xdg" / "synthkit" / "registry.db"
    assert default.is_file()
    said = " ".join(r.output.split())
    assert f"registry: {default}" in said  # the user is told where it is
    assert not (user / "jobs" / "synthkit-registry.db").exists()

    import os
    os.chdir(user / "elsewhere")
    listed = _run("releases", "list")
    assert listed.exit_code == 0, listed.output
    assert run_id in listed.output and "1 run(s)" in listed.output
    assert str(default) in " ".join(listed.output.split())
    assert not list((user / "elsewhere").iterdir())  # nothing created in the current folder
    shown = _run("releases", "show", run_id)
    assert shown.exit_code == 0 and "pending_review" in shown.output


def test_read_only_commands_on_a_missing_registry_create_nothing(user):
    """list, show, verify, audit and review on a registry that does not exist: one line naming
    where it looked and how to point at one, exit 2, and no file (before: an empty
    registry, with -wal and -shm, appeared)."""
    before = _files(user)
    default = user / "xdg" / "synthkit" / "registry.db"
    for args in (["releases", "list"], ["releases", "show", "some-run"], ["releases", "verify", "some-run"],
                 ["releases", "audit"], ["review"], ["releases", "list", "--registry", str(user / "typo.db")]):
        r = _run(*args)
        assert r.exit_code == 2, (args, r.output)
        text = " ".join(r.output.split())
        assert len(_lines(r.output)) == 1 or text.count("error:") == 1, r.output
        assert "no registry exists at" in text and "--registry" in text and "$SYNTHKIT_REGISTRY" in text
        assert str(user / "typo.db") in text if "--registry" in args else str(default) in text
    assert _files(user) == before
    assert not default.parent.exists()


PG_URL = os.environ.get("SYNTHKIT_TEST_POSTGRES_URL")


def _pg_engine():
    import sqlalchemy as sa
    return sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))


@pytest.fixture
def empty_pg(monkeypatch):
    """A registry URL on an EMPTY PostgreSQL schema of its own (the role may not create
    databases; the URL's search_path makes the schema its whole world, as an empty
    database would be), and a function listing the tables in it. Dropped afterwards."""
    if not PG_URL:
        pytest.skip("set SYNTHKIT_TEST_POSTGRES_URL (e.g. $(bash scripts/postgres.sh)) to test PostgreSQL")
    import secrets

    import sqlalchemy as sa
    schema = f"t_{secrets.token_hex(4)}"
    engine = _pg_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"

    def tables() -> list[str]:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names(schema=schema))

    yield url, tables
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


def test_read_only_commands_on_an_empty_postgres_database_create_no_tables(user, empty_pg, monkeypatch):
    """Before: `releases list --registry postgresql://...` on an empty database created the
    registry's tables and triggers and said "0 run(s)". Now: one line saying there is no
    registry there, exit 2 as for a missing SQLite file, the password hidden, no DDL."""
    url, tables = empty_pg
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    for args in (["releases", "list", "--registry", url], ["releases", "show", "some-run", "--registry", url],
                 ["releases", "verify", "some-run", "--registry", url], ["releases", "audit", "--registry", url]):
        r = _run(*args)
        assert r.exit_code == 2, (args[:2], r.output)
        text = " ".join(r.output.split())
        assert len(_lines(r.output)) == 1 and text.startswith("error: no registry exists at postgresql"), r.output
        assert "--registry" in text and "$SYNTHKIT_REGISTRY" in text and password not in text
        assert tables() == [], args[:2]
    monkeypatch.setenv("SYNTHKIT_REGISTRY", url)  # the default registry, as a scheduler would set it
    r = _run("releases", "list")
    assert r.exit_code == 2 and "no registry exists at postgresql" in r.output and tables() == [], r.output

    # positive control: once a writer (a job) set it up, the same read-only command lists it
    Registry(url).close()
    assert "synthkit_events" in tables()
    r = _run("releases", "list", "--registry", url)
    assert r.exit_code == 0 and "0 run(s)" in " ".join(r.output.split()), r.output


def test_an_empty_sqlite_file_is_no_registry_either(user):
    """The same rule for SQLite: a file without the tables (touched by hand, or a typo that
    names another file) is not a registry, and a read-only command leaves it empty."""
    empty = user / "empty.db"
    empty.touch()
    r = _run("releases", "list", "--registry", str(empty))
    assert r.exit_code == 2 and len(_lines(r.output)) == 1 and "no registry exists at" in r.output, r.output
    import sqlite3
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


# ---------------------------------------------------------------------------- ids
def _registry_with_runs(path: Path, job_name: str, n: int) -> list[str]:
    reg = Registry(path)
    ids = []
    for i in range(n):
        run, created = reg.claim_run(job_name=job_name, idempotency_key=f"key-{i}", run_by="cron", owner="olivia",
                                     spec={"name": job_name})
        assert created
        reg.add_event(run.run_id, status="failed", step="fit", message="test")
        ids.append(run.run_id)
    reg.close()
    return ids


def test_listings_show_full_ids_on_a_narrow_terminal(user):
    """A long job name makes a long id; before, rich folded or elided it in an 80-column
    table, so the id could not be copied into `releases show`."""
    job = "nightly-claims-extract-for-the-regional-health-authority"
    ids = _registry_with_runs(user / "r.db", job, 2)
    r = _run("releases", "list", "--registry", str(user / "r.db"))
    assert r.exit_code == 0, r.output
    for run_id in ids:
        assert len(run_id) > 70
        assert run_id in r.output  # whole, on one line
        assert sum(run_id in line for line in r.output.splitlines()) == 1


def test_unique_prefixes_are_accepted_and_ambiguous_ones_refused(user):
    ids = _registry_with_runs(user / "r.db", "nightly", 2)
    reg = ["--registry", str(user / "r.db")]
    target = ids[0]
    r = _run("releases", "show", target[:-2], *reg, "--json")  # unique: all but the last 2 hex digits
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["run_id"] == target
    assert _run("releases", "show", target, *reg, "--json").exit_code == 0  # the full id still works

    amb = _run("releases", "show", "nightly-", *reg)
    assert amb.exit_code == 2
    text = " ".join(amb.output.split())
    assert "ambiguous" in text and "2 runs" in text and target not in text  # no list of ids dumped
    assert len(_lines(amb.output)) <= 2

    unknown = _run("releases", "verify", "weekly-", *reg)
    assert unknown.exit_code == 2 and "no run starts with 'weekly-'" in " ".join(unknown.output.split())
    # approve resolves the prefix too (and then stops at the missing reviewers, not at the id)
    appr = _run("release", "approve", target[:-2], "--reason", "ok", "--reviewer", "rita", *reg)
    assert appr.exit_code == 2 and "no run" not in appr.output and "reviewers" in appr.output
    amb2 = _run("release", "reject", "nightly", "--reason", "no", "--reviewer", "rita", *reg)
    assert amb2.exit_code == 2 and "ambiguous" in amb2.output


# ---------------------------------------------------------------------------- gate
PERMISSIVE = {"name": "permissive", "privacy": {"require_dp": False},
              "checks": [{"metric": "validation.success_rate", "min": 0.0}]}
STRICT = {"name": "strict", "privacy": {"require_dp": True, "max_epsilon": 0.5},
          "checks": [{"metric": "fidelity.quality.overall", "min": 0.9999}]}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One real job (a tiny DPTVAE at epsilon 3, one epoch): its report.json, the
    decision the pipeline recorded for it (policy `default`) and its log's messages
    (progress every epoch and section: the interval is injected as 0)."""
    import logging
    import os
    folder = tmp_path_factory.mktemp("real")
    job = write_job(folder)
    from synthkit.jobs import run_job
    db = str(folder / "registry.db")
    cwd = os.getcwd()
    os.chdir(folder)
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    log = logging.getLogger("synthkit.jobs")
    handler, level = Keep(level=logging.INFO), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNTHKIT_PROGRESS_INTERVAL", "0")
    try:
        result = run_job(job, registry=db, run_by="cron")
    finally:
        os.chdir(cwd)
        log.removeHandler(handler)
        log.setLevel(level)
        mp.undo()
    reg = Registry(db)
    decision = reg.decision(result.run_id).decision
    report_dir = folder / "work" / result.run_id
    (folder / "permissive.yaml").write_text(yaml.safe_dump(PERMISSIVE))
    (folder / "strict.yaml").write_text(yaml.safe_dump(STRICT))
    return {"dir": report_dir, "decision": decision, "folder": folder, "log": messages}


def test_gate_is_the_pipelines_decision(real_run):
    """The stand-alone gate gives exactly the decision `synthkit run` recorded."""
    r = _run("gate", str(real_run["dir"]), "--policy", "default", "--json")
    assert r.exit_code in (0, 3), r.output
    assert json.loads(r.output) == real_run["decision"]
    assert r.exit_code == (0 if real_run["decision"]["passed"] else 3)


def test_gate_exit_codes(real_run):
    folder, report = real_run["folder"], real_run["dir"]
    ok = _run("gate", str(report / "report.json"), "--policy", str(folder / "permissive.yaml"))
    assert ok.exit_code == 0, ok.output
    assert "gate PASSED by policy 'permissive'" in " ".join(ok.output.split())
    assert "validation.success_rate" in ok.output and "pass" in ok.output

    bad = _run("gate", str(report), "--policy", str(folder / "strict.yaml"))
    assert bad.exit_code == 3, bad.output  # the gate's own code, not 1 (crash) or 2 (bad input)
    said = " ".join(bad.output.split())
    assert "gate REJECTED by policy 'strict'" in said and "fidelity.quality.overall" in said and "FAIL" in said
    assert "epsilon" in said  # the privacy rows come first, one per check

    (folder / "not-json.json").write_text("{")
    (folder / "empty").mkdir(exist_ok=True)
    for args in (["gate", str(folder / "missing")], ["gate", str(folder / "not-json.json")],
                 ["gate", str(folder / "empty")], ["gate", str(report), "--policy", "no-such-policy"]):
        r = _run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert r.output.count("error:") == 1 and "Traceback" not in r.output, r.output


def test_a_real_run_logs_the_progress_of_fit_generate_and_evaluate(real_run):
    """`synthkit run` from a scheduler: its log shows each step's progress (before: the
    steps' callbacks were not passed, nothing between 'started' and 'finished')."""
    said = real_run["log"]
    fit = [m for m in said if m.startswith("fit: train")]
    assert fit and all("ε spent" in m and "epoch" in m for m in fit), said
    assert any(m.startswith("generate: rows 300/300") for m in said), said
    evaluate = [m for m in said if m.startswith("evaluate: ")]
    assert len(evaluate) >= 3 and any("stage done" in m for m in evaluate), said
