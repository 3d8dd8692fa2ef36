"""The release trail cannot be forged (issue 16): every forgery the attack found is refused
by `publish` or flagged by `verify`, on SQLite and on a REAL PostgreSQL server.

The attacker here is strong: they can write the registry database directly, drop its
triggers, and they know the chain's recipe (it is open source), so they recompute hashes
after their edits. What they do not have is a reviewer's private key. Each test is a
negative control for the code before the chain and the signatures (it published or
verified OK there) and each ends with the check that a real flow still works.

PostgreSQL: `export SYNTHKIT_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)`; without it
those cases are skipped.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

import synthkit.jobs as jobs
from reports import release as release_mod
from reports.registry import GENESIS, Registry, _record, event_hash, verdict_payload
from reports.release import sha256_file
from reports.review import AccessDenied, ReviewerConfig, hash_password
from reports.signing import public_key_line, sha256_json
from synthkit.cli import app
from test_gate import dp_privacy, make_report
from test_jobs import fake_steps, write_job  # noqa: F401 - fake_steps is a fixture used below
from test_release import CONFIG, KEYS, PASSWORDS, REVIEWERS, approve, key_file, publish, reject, stage_run, verify

runner = CliRunner()
PG_URL = os.environ.get("SYNTHKIT_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="set SYNTHKIT_TEST_POSTGRES_URL (e.g. $(bash scripts/postgres.sh)) to test PostgreSQL"))]


@pytest.fixture(params=BACKENDS)
def reg(request, tmp_path):
    yield from registry_on(request.param, tmp_path)


def registry_on(backend: str, tmp_path):
    """A registry on `backend` for one test (SQLite file, or a fresh PostgreSQL schema dropped
    after it); a generator for fixtures to `yield from`."""
    if backend == "sqlite":
        r = Registry(tmp_path / "registry.db")
        yield r
        r.close()
        return
    schema = f"t_{secrets.token_hex(4)}"
    r = Registry(PG_URL, pg_schema=schema)
    yield r
    r.close()
    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


@pytest.fixture
def reviewers_file(tmp_path) -> Path:
    path = tmp_path / "reviewers.yaml"
    path.write_text(yaml.safe_dump(REVIEWERS))
    return path


def _reopen(reg: Registry) -> Registry:
    """The registry as the next command opens it."""
    return Registry(reg.url, pg_schema=reg._schema)


def _table(reg: Registry, name: str) -> str:
    return f'"{reg._schema}".{name}' if reg._schema else name


def _sql(reg: Registry, *statements: str, params: dict | None = None) -> None:
    with reg._engine.begin() as conn:
        for stmt in statements:
            conn.execute(sa.text(stmt), params or {})


def _drop_triggers(reg: Registry) -> None:
    """What the attacker did first: drop every append-only trigger."""
    stmts = []
    for table in ("synthkit_runs", "synthkit_events", "synthkit_decisions", "synthkit_reviews", "synthkit_releases"):
        for trigger in reg._trigger_names(table):
            stmts.append(f"DROP TRIGGER {trigger}" if reg.backend == "sqlite"
                         else f"DROP TRIGGER {trigger} ON {_table(reg, table)}")
    _sql(reg, *stmts)


def _forge_event(reg: Registry, run_id: str, *, status: str | None, step: str, message: str,
                 details: dict, chained: bool = True) -> None:
    """INSERT one event row by hand; `chained` computes its hashes the way synthkit does."""
    head = reg.head()
    at = "2026-12-06T12:00:00.000000Z"
    digest = event_hash(run_id=run_id, at=at, status=status, step=step, message=message, details=details,
                        prev_hash=head) if chained else "f" * 64
    _sql(reg, f"INSERT INTO {_table(reg, 'synthkit_events')} (run_id, at, status, step, message, details, prev_hash, "
              "hash) VALUES (:run_id, :at, :status, :step, :message, :details, :prev, :hash)",
         params={"run_id": run_id, "at": at, "status": status, "step": step, "message": message,
                 "details": json.dumps(details, sort_keys=True), "prev": head if chained else GENESIS,
                 "hash": digest})


def _rechain_from(reg: Registry, seq: int) -> None:
    """Recompute every event hash from row `seq` on (the attacker hiding an edit)."""
    events = reg.events()
    prev = next((e.hash for e in reversed(events) if e.seq < seq), GENESIS)
    for e in events:
        if e.seq < seq:
            continue
        digest = event_hash(run_id=e.run_id, at=e.at, status=e.status, step=e.step, message=e.message,
                            details=e.details, prev_hash=prev)
        _sql(reg, f"UPDATE {_table(reg, 'synthkit_events')} SET prev_hash = :p, hash = :h, details = :d "
                  "WHERE seq = :s", params={"p": prev, "h": digest, "d": json.dumps(e.details, sort_keys=True),
                                            "s": e.seq})
        prev = digest


def _cli(reg: Registry, *args: str):
    """The CLI on a SQLite registry (it has no PostgreSQL schema option; on PostgreSQL the
    same functions are exercised through the library)."""
    return runner.invoke(app, [*args, "--registry", reg.url])


# ---------------------------------------------------------------------------- (a) an INSERTed approval
@pytest.mark.parametrize("chained", [False, True], ids=["plain-insert", "insert-with-recomputed-chain"])
def test_a_inserted_approval_of_a_rejected_run_is_refused_and_flagged(reg, tmp_path, reviewers_file, chained,
                                                                      monkeypatch):
    run_id = stage_run(reg, tmp_path)
    assert reject(reg, run_id, reviewer=CONFIG.find("carol"), reason="pair trends too weak") == "rejected"
    _forge_event(reg, run_id, status="approved", step="review", message="approved by bob (1 of 1 approvals)",
                 details={}, chained=chained)
    assert reg.status(run_id) == "approved"  # the status alone now says approved...
    with pytest.raises(AccessDenied, match="cannot be released"):
        publish(reg, run_id, released_by="bob")  # ...but nothing is released on it
    assert not (tmp_path / "releases").exists()
    if reg.backend == "sqlite":
        r = _cli(reg, "release", "publish", run_id, "--reviewers", str(reviewers_file))
        assert r.exit_code != 0 and "cannot be released" in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1
        r = _cli(reg, "releases", "audit")
        # a plain INSERT breaks the chain; a recomputed chain holds an unsigned verdict, which
        # audit flags too (session 12: before, it printed OK for the chained forgery)
        assert r.exit_code == 4 and "Traceback" not in r.output
    # a forger's own tool that writes the release anyway is caught by verify
    monkeypatch.setattr(release_mod, "release_authority",
                        lambda *a, **k: release_mod.Authority(
                            kind="review", approvals=(), staged=reg.artifacts(run_id),
                            decision_sha256=sha256_json(reg.decision(run_id).decision)))
    release_mod.publish(reg, run_id, released_by="bob", config=CONFIG)
    result = verify(reg, run_id)
    assert not result.ok
    assert any("without a signed verdict" in p or "rejected by carol" in p for p in result.problems), result.problems


# ---------------------------------------------------------------------------- (b) dropped triggers, edits
@pytest.mark.parametrize("edit", ["decision", "review", "released_by", "event"])
def test_b_dropped_triggers_and_edited_rows_are_flagged(reg, tmp_path, edit):
    run_id = stage_run(reg, tmp_path)
    approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy")
    assert verify(reg, run_id).ok
    _drop_triggers(reg)
    if edit == "decision":
        _sql(reg, f"UPDATE {_table(reg, 'synthkit_decisions')} SET decision = :d",
             params={"d": json.dumps({"policy": "lenient", "passed": True, "checks": []})})
        expected = "decision row"
    elif edit == "review":
        _sql(reg, f"UPDATE {_table(reg, 'synthkit_reviews')} SET reason = 'reviewed carefully by the board'")
        expected = "review row"
    elif edit == "released_by":
        _sql(reg, f"UPDATE {_table(reg, 'synthkit_releases')} SET released_by = 'mallory'")
        expected = "release row"
    else:
        _sql(reg, f"UPDATE {_table(reg, 'synthkit_events')} SET message = 'approved by the board' "
                  "WHERE step = 'review'")
        expected = "was altered"
    again = _reopen(reg)
    result = verify(again, run_id)
    assert not result.ok
    assert any(expected in p for p in result.problems), result.problems
    assert any("append-only trigger(s) missing" in p for p in result.problems)
    # the triggers were NOT quietly recreated by opening the registry, and nothing is written
    assert again.missing_triggers
    with pytest.raises(Exception, match="lost its append-only trigger"):
        again.add_event(run_id, step="note", message="anything")
    with pytest.raises(Exception, match="does not verify"):
        again.restore_triggers()  # only a clean trail gets its triggers back


def test_b_restoring_triggers_is_explicit_and_needs_a_clean_trail(reg, tmp_path):
    run_id = stage_run(reg, tmp_path)
    _drop_triggers(reg)
    again = _reopen(reg)
    assert again.missing_triggers and again.audit() == [next(p for p in again.audit() if "trigger" in p)]
    again.restore_triggers()
    assert _reopen(reg).audit() == []
    _reopen(reg).add_event(run_id, step="note", message="writes work again")


# ---------------------------------------------------------------------------- (c) a swapped reviewer
def test_c_a_swapped_reviewer_on_a_signed_approval_is_refused(reg, tmp_path):
    report = make_report(privacy=dp_privacy(unit="entity", epsilon=2.0))
    run_id = stage_run(reg, tmp_path, report=report, policy="healthcare")  # two approvals needed
    assert approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="data steward ok") == "pending_review"
    bob = next(e for e in reg.events(run_id) if e.step == "review")
    # the attacker adds "carol's" approval: bob's signed verdict with the name swapped, a
    # review row to match, and a correctly chained event
    row = {"run_id": run_id, "at": "2026-12-06T12:00:00.000000Z", "reviewer": "carol", "verdict": "approve",
           "reason": "privacy officer ok"}
    _sql(reg, f"INSERT INTO {_table(reg, 'synthkit_reviews')} (run_id, at, reviewer, verdict, reason) "
              "VALUES (:run_id, :at, :reviewer, :verdict, :reason)", params=row)
    seq = max(r["seq"] for r in _rows(reg, "synthkit_reviews"))
    payload = verdict_payload(run_id=run_id, verdict="approve", reviewer="carol", at=row["at"], reason=row["reason"],
                              attest=bob.details["payload"]["attest"], prev_hash=reg.head())
    _forge_event(reg, run_id, status="approved", step="review", message="approved by carol (2 of 2 approvals)",
                 details={**_record("review", seq, {"seq": seq, **row}), "payload": payload,
                          "signature": bob.details["signature"], "key_id": bob.details["key_id"]})
    assert reg.audit() == []  # the chain and the rows are consistent: only the signature can tell
    with pytest.raises(AccessDenied, match="signature of carol's verdict does not verify"):
        publish(reg, run_id, released_by="carol")
    assert not (tmp_path / "releases").exists()


def test_c_a_key_that_is_not_the_reviewers_own_cannot_sign(reg, tmp_path):
    run_id = stage_run(reg, tmp_path)
    with pytest.raises(AccessDenied, match="not the one the reviewers file lists for bob"):
        release_mod.approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="signed with carol's key",
                            key=KEYS["carol"], config=CONFIG)
    assert reg.reviews(run_id) == [] and reg.status(run_id) == "pending_review"


def _rows(reg: Registry, table: str) -> list[dict]:
    with reg._engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {_table(reg, table)}")).mappings()]


# ---------------------------------------------------------------------------- (d) edited released files
@pytest.mark.parametrize("name", ["synthetic.csv", "data_card.json", "schema.json"])
def test_d_edited_files_with_their_hashes_recomputed_are_flagged(reg, tmp_path, reviewers_file, name):
    run_id = stage_run(reg, tmp_path)
    approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy")
    folder = tmp_path / "releases" / run_id
    if name == "synthetic.csv":
        (folder / name).write_text("age,sex\n71,female\n80,male\n33,male\n")
        expected = "not the synthetic data the approvers signed"
    elif name == "data_card.json":
        card = json.loads((folder / name).read_text())
        card["intended_use"] = "anything at all, including sharing outside the organisation"
        (folder / name).write_text(json.dumps(card))
        expected = "differs from the card recomputed"
    else:
        schema = json.loads((folder / name).read_text())
        schema["columns"]["age"]["bounds"] = [0, 200]
        (folder / name).write_text(json.dumps(schema))
        expected = "not the schema of the model bundle that was reviewed"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name]["sha256"] = sha256_file(folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    files = {name: entry["sha256"] for name, entry in manifest["files"].items()}
    _drop_triggers(reg)
    rel = _rows(reg, "synthkit_releases")[0]
    rel.update(files=json.dumps(files, sort_keys=True), manifest_sha256=sha256_file(folder / "manifest.json"))
    _sql(reg, f"UPDATE {_table(reg, 'synthkit_releases')} SET files = :f, manifest_sha256 = :m",
         params={"f": rel["files"], "m": rel["manifest_sha256"]})
    release_event = next(e for e in reg.events(run_id) if e.step == "release")
    details = {**release_event.details, "manifest_sha256": rel["manifest_sha256"], **_record("release", run_id, rel)}
    _sql(reg, f"UPDATE {_table(reg, 'synthkit_events')} SET details = :d WHERE seq = :s",
         params={"d": json.dumps(details, sort_keys=True), "s": release_event.seq})
    _rechain_from(reg, release_event.seq)
    _reopen(reg).restore_triggers()  # even with the triggers back and a consistent chain...
    result = verify(_reopen(reg), run_id)
    assert not result.ok  # ...the signature covers the hashes the released files derive from
    assert any(expected in p for p in result.problems), result.problems
    if reg.backend == "sqlite":
        r = _cli(reg, "releases", "verify", run_id, "--reviewers", str(reviewers_file))
        assert r.exit_code == 4 and expected in r.output.replace("\n", " ")


# ---------------------------------------------------------------------------- (e) a runner naming someone else
def test_e_a_runner_claiming_another_name_cannot_approve_their_own_run(reg, tmp_path, fake_steps, monkeypatch):
    me = jobs.runner_account()
    # the runner calls themselves "bob" in every way the environment allows
    for var in ("SYNTHKIT_USER", "USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "bob")
    result = jobs.run_job(write_job(tmp_path), registry=reg)
    assert result.status == "pending_review"
    run = reg.run(result.run_id)
    assert run.run_by == me  # the OS account, whatever the environment says
    my_key = Ed25519PrivateKey.generate()  # a reviewer's own key (one key per reviewer)
    config = ReviewerConfig.from_dict({"reviewers": [
        *REVIEWERS["reviewers"], {"name": me, "password": hash_password("my-own-password"),
                                  "public_key": public_key_line(my_key)}]})
    with pytest.raises(AccessDenied, match="four-eyes"):
        release_mod.approve(reg, result.run_id, reviewer=config.find(me), reason="looks fine to me",
                            key=my_key, config=config)
    with pytest.raises(AccessDenied, match="four-eyes"):  # nor as the "bob" they claimed to be
        release_mod.approve(reg, result.run_id, reviewer=config.find("bob"), reason="looks fine to me",
                            key=KEYS["bob"], config=config)
    assert reg.reviews(result.run_id) == [] and reg.status(result.run_id) == "pending_review"


# ---------------------------------------------------------------------------- (f) the real flow
def test_f_a_valid_signed_flow_publishes_and_verifies(reg, tmp_path, reviewers_file, monkeypatch):
    run_id = stage_run(reg, tmp_path, run_by="alice")
    assert approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy") \
        == "released"
    result = verify(reg, run_id)
    assert result.ok, result.problems
    assert reg.audit() == []
    manifest = json.loads((tmp_path / "releases" / run_id / "manifest.json").read_text())
    assert manifest["release_kind"] == "review" and [a["reviewer"] for a in manifest["approvals"]] == ["bob"]
    assert manifest["approvals"][0]["signature"] and manifest["approvals"][0]["event_hash"] in \
        {e.hash for e in reg.events(run_id)}
    card = json.loads((tmp_path / "releases" / run_id / "data_card.json").read_text())
    assert [a["reviewer"] for a in card["approvals"]] == ["bob"]
    if reg.backend == "sqlite":
        (tmp_path / "home" / "keys").mkdir(parents=True)
        key_file(tmp_path / "home" / "keys", "carol")
        monkeypatch.setenv("SYNTHKIT_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("SYNTHKIT_REVIEWER_PASSWORD", PASSWORDS["carol"])
        other = stage_run(reg, tmp_path, key="other")
        r = _cli(reg, "release", "approve", other, "--reason", "fine for testing", "--reviewer", "carol",
                 "--reviewers", str(reviewers_file))
        assert r.exit_code == 0 and "released to" in r.output, r.output
        for args in (("releases", "verify", run_id, "--reviewers", str(reviewers_file)),
                     ("releases", "verify", other, "--reviewers", str(reviewers_file)), ("releases", "audit")):
            r = _cli(reg, *args)
            assert r.exit_code == 0 and "OK" in r.output, r.output


def test_f_the_gate_is_recomputed_from_the_report_and_the_policy(reg, tmp_path):
    run_id = stage_run(reg, tmp_path)
    approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy")
    staged = reg.artifacts(run_id)
    report = json.loads(Path(staged["report"]).read_text())
    report["metrics"] = report["metrics"][:-1]  # a different report than the one the gate read
    Path(staged["report"]).write_text(json.dumps(report))
    result = verify(reg, run_id)
    assert not result.ok and any("staged report changed" in p for p in result.problems), result.problems


# ---------------------------------------------------------------------------- (g) auto-release
def test_g_auto_release_is_recorded_as_such_and_forged_auto_release_is_refused(reg, tmp_path):
    policy = yaml.safe_load((Path(jobs.__file__).parents[1] / "policies" / "default.yaml").read_text())
    policy.update(name="auto", release={"auto_release": True, "reviewers_required": 1})
    (tmp_path / "auto.yaml").write_text(yaml.safe_dump(policy))
    auto = stage_run(reg, tmp_path, policy=str(tmp_path / "auto.yaml"), key="auto")
    assert release_mod.auto_release(reg, auto, policy_name="auto") == "released"
    manifest = json.loads((tmp_path / "releases" / auto / "manifest.json").read_text())
    assert manifest["release_kind"] == "auto_release"
    assert "automatic" in manifest["approvals"][0]["decision"] and "'auto'" in manifest["approvals"][0]["decision"]
    assert release_mod.verify(reg, auto, ReviewerConfig()).ok  # needs no reviewer: none approved it

    manual = stage_run(reg, tmp_path, key="manual")  # the default policy allows no auto-release
    with pytest.raises(AccessDenied, match="auto-release needs"):
        release_mod.auto_release(reg, manual, policy_name="default")
    decision = reg.decision(manual)
    reg.add_event(manual, status="approved", step="auto_release", message="approved automatically",
                  details={"policy": "default", "policy_sha256": decision.policy_sha256,
                           "decision_sha256": sha256_json(decision.decision)})
    with pytest.raises(AccessDenied, match="auto-release that the run's policy does not allow"):
        publish(reg, manual, released_by="policy-auto-release")
    assert not (tmp_path / "releases" / manual).exists()
