"""Forged registry rows never read as approved or released (session 12, task F).

A trial forged a demo registry three ways with correct SHA-256 chain hashes (the chain has
no secret) but without a reviewer's private key: (1) an "approved" event with no
signature plus the review row it vouches for; (2) a release row and its "released" event
after a genuine signed approval; (3) an approval in alice's name signed with another
reviewer's key. Before the fix `releases list` showed "approved"/"released", `releases
audit` printed OK (exit 0) and the forged release row made the genuine `publish` answer
"has already been released".

Here the status every command shows is replayed from verified events only
(`reports.release.trail_check`): a forged event is listed (run and event number), not
counted; `audit` exits 4 naming the run and the event and never quoting a reason; a
forged release row does not block the genuine publish, which says what it found; and
without a reviewers file list/audit say "signatures not checked (pass --reviewers FILE)".

Negative control: this file run against a21f993 (the code before the fix, `git archive
a21f993 ...` with PYTHONPATH pointing at it) fails in every forgery test (audit exits 0,
list says approved/released, publish answers "has already been released").
The task F2 tests (the dashboard, jobs and the genuine review after a forgery; section at
the end) were run against a83a8d2 the same way: all five fail there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from reports import release as release_mod
from reports.registry import Registry, _dumps, _record, event_hash, now_utc
from reports.review import AccessDenied
from reports.signing import key_id, public_key_line, sign
from synthkit.cli import app
from test_release import CONFIG, KEYS, REVIEWERS, approve, publish, stage_run, verify
from test_release_trail import _table, reviewers_file  # noqa: F401 - the schema's table name; the reviewers file fixture

runner = CliRunner()
FORGED_REASON = "forged-reason-marker-7f3a"  # must never appear in any output


@pytest.fixture
def reg(tmp_path) -> Registry:
    r = Registry(tmp_path / "registry.db")
    yield r
    r.close()


def _insert_event(reg: Registry, run_id: str, *, status: str, step: str, message: str, details: dict) -> int:
    """What the trial's forge.py does: an event whose chain hash is correct."""
    prev = reg.head()
    at = now_utc()
    details = json.loads(_dumps(details))
    digest = event_hash(run_id=run_id, at=at, status=status, step=step, message=message, details=details,
                        prev_hash=prev)
    with reg._engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {_table(reg, 'synthkit_events')} (run_id, at, status, step, message, details, prev_hash, "
                             "hash) VALUES (:r, :at, :s, :st, :m, :d, :p, :h)"),
                     {"r": run_id, "at": at, "s": status, "st": step, "m": message, "d": _dumps(details),
                      "p": prev, "h": digest})
    return reg.events(run_id)[-1].seq


def _forge_chained_approval(reg: Registry, run_id: str) -> int:
    """forge.py 'chained': a review row by mallory and an unsigned 'approved' event vouching for it."""
    row = dict(run_id=run_id, at=now_utc(), reviewer="mallory", verdict="approve", reason=FORGED_REASON)
    with reg._engine.begin() as conn:
        seq = conn.execute(sa.text(f"INSERT INTO {_table(reg, 'synthkit_reviews')} (run_id, at, reviewer, verdict, reason) "
                                   "VALUES (:run_id, :at, :reviewer, :verdict, :reason) RETURNING seq"),
                           row).scalar_one()  # RETURNING: SQLite and PostgreSQL alike
    return _insert_event(reg, run_id, status="approved", step="review", message="approved by mallory (1 of 1 approvals)",
                         details=_record("review", seq, {"seq": seq, **row}))


def _forge_release_row(reg: Registry, run_id: str, tmp_path: Path) -> int:
    """forge.py 'release': a release row pointing at a folder that holds no release, chained."""
    row = dict(run_id=run_id, at=now_utc(), path=str(tmp_path / "fake_release"), manifest_sha256="0" * 64,
               files=_dumps({}), released_by="mallory")
    with reg._engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {_table(reg, 'synthkit_releases')} (run_id, at, path, manifest_sha256, files, released_by) "
                             "VALUES (:run_id, :at, :path, :manifest_sha256, :files, :released_by)"), row)
    return _insert_event(reg, run_id, status="released", step="release", message=f"released to {row['path']}",
                         details={"manifest_sha256": "0" * 64, **_record("release", run_id, row)})


def _signed_approval_without_publish(reg: Registry, run_id: str, name: str, *, key_of: str) -> str:
    """A verdict in `name`'s name signed with `key_of`'s key, recorded without publishing
    (as when the release write failed, or as forge_sig.py does with key_of != name)."""
    listed = public_key_line(KEYS[name])
    return reg.add_review(run_id, reviewer=name, verdict="approve", reason="fidelity and leakage within policy",
                          attest=release_mod.attestation(reg, run_id),
                          sign=lambda p: {"signature": sign(KEYS[key_of], p), "key_id": key_id(listed)})


def _cli(reg: Registry, *args: str):
    return runner.invoke(app, [*args, "--registry", reg.url])


def _listed(reg: Registry, run_id: str, *extra: str) -> dict:
    r = _cli(reg, "releases", "list", "--json", *extra)
    assert r.exit_code == 0, r.output
    return next(x for x in json.loads(r.output) if x["run_id"] == run_id)


def _said(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


# ---------------------------------------------------------------------------- (1) chained, unsigned approval
def test_a_chained_unsigned_approval_is_listed_as_forged_and_fails_the_audit(reg, tmp_path, reviewers_file):
    run_id = stage_run(reg, tmp_path)
    seq = _forge_chained_approval(reg, run_id)
    assert reg.audit() == []  # the chain and the row binding are consistent: only signatures tell
    for extra in ((), ("--reviewers", str(reviewers_file))):  # no key is needed to see a missing signature
        got = _listed(reg, run_id, *extra)
        assert got["status"] == "pending_review" and got["recorded_status"] == "approved"
        assert [u["event"] for u in got["unverified_events"]] == [seq]
    table = _said(_cli(reg, "releases", "list", "--reviewers", str(reviewers_file)))
    assert "FORGED" in table and f"#{seq}" in table
    shown = json.loads(_cli(reg, "releases", "show", run_id, "--json").output)
    assert shown["status"] == "pending_review" and [u["event"] for u in shown["unverified_events"]] == [seq]
    audit = _cli(reg, "releases", "audit", "--reviewers", str(reviewers_file))
    out = _said(audit)
    assert audit.exit_code == 4 and run_id in out and f"event #{seq}" in out and "without a signed verdict" in out
    assert FORGED_REASON not in audit.output and "OK" not in out
    with pytest.raises(AccessDenied, match="cannot be released"):
        publish(reg, run_id, released_by="bob")
    assert not (tmp_path / "releases").exists()
    # the genuine reviewer still decides: bob's signed approval counts, mallory's does not
    trail = release_mod.trail_check(reg, CONFIG, run_id=run_id)
    assert trail.statuses[run_id] == "pending_review" and [q for q, _ in trail.forged[run_id]] == [seq]


# ---------------------------------------------------------------------------- (3) alice's name, mallory's key
def test_c_verdict_signed_with_another_reviewers_key_is_not_approved(reg, tmp_path, reviewers_file, monkeypatch):
    run_id = stage_run(reg, tmp_path)
    assert _signed_approval_without_publish(reg, run_id, "bob", key_of="carol") == "approved"
    seq = reg.events(run_id)[-1].seq
    monkeypatch.setenv("SYNTHKIT_REVIEWERS", str(reviewers_file))  # found the way publish finds it
    got = _listed(reg, run_id)
    assert got["status"] == "pending_review" and got["signatures_checked"] is True
    assert [u["event"] for u in got["unverified_events"]] == [seq]
    audit = _cli(reg, "releases", "audit")
    assert audit.exit_code == 4 and f"event #{seq}" in _said(audit) and "does not verify" in _said(audit)
    # without the public keys the form is fine, and the commands say the keys were not checked
    monkeypatch.delenv("SYNTHKIT_REVIEWERS")
    unchecked = _listed(reg, run_id)
    assert unchecked["status"] == "approved" and unchecked["signatures_checked"] is False
    table = _said(_cli(reg, "releases", "list"))
    assert "approved (signatures not checked)" in table and "signatures not checked (pass --reviewers FILE)" in table
    plain = _cli(reg, "releases", "audit")
    assert plain.exit_code == 0 and "signatures not checked (pass --reviewers FILE)" in _said(plain)
    with pytest.raises(AccessDenied, match="does not verify"):
        publish(reg, run_id, released_by="bob")


# ---------------------------------------------------------------------------- (2) forged release row
def test_b_forged_release_row_neither_reads_as_released_nor_blocks_the_genuine_publish(reg, tmp_path,
                                                                                       reviewers_file):
    run_id = stage_run(reg, tmp_path)
    assert _signed_approval_without_publish(reg, run_id, "bob", key_of="bob") == "approved"
    seq = _forge_release_row(reg, run_id, tmp_path)
    assert reg.status(run_id) == "released" and reg.audit() == []  # what the raw trail says
    copy = Registry(tmp_path / "before-publish.db")
    with reg._engine.connect() as src, copy._engine.connect() as dst:
        src.connection.driver_connection.backup(dst.connection.driver_connection)
    # the genuine publish goes through and says what it found
    r = _cli(reg, "release", "publish", run_id, "--reviewers", str(reviewers_file))
    out = _said(r)
    assert r.exit_code == 0 and "released to" in out, r.output
    assert f"event #{seq} does not verify" in out and "release folder is missing" in out
    # before the genuine publish: listed as approved with the forged event, and the audit fails
    got = _listed(copy, run_id, "--reviewers", str(reviewers_file))
    assert got["status"] == "approved" and [u["event"] for u in got["unverified_events"]] == [seq]
    audit = _cli(copy, "releases", "audit", "--reviewers", str(reviewers_file))
    assert audit.exit_code == 4 and run_id in _said(audit) and f"event #{seq}" in _said(audit)
    copy.close()
    folder = tmp_path / "releases" / run_id
    assert (folder / "manifest.json").is_file() and reg.release(run_id).path == str(folder)
    result = verify(reg, run_id)
    assert result.ok, result.problems
    assert any(f"event #{seq}" in n for n in result.notes)
    got = _listed(reg, run_id, "--reviewers", str(reviewers_file))
    assert got["status"] == "released" and [u["event"] for u in got["unverified_events"]] == [seq]
    # once genuinely released, a second publish is refused and names the verified release
    r = _cli(reg, "release", "publish", run_id, "--reviewers", str(reviewers_file))
    assert r.exit_code != 0 and "already been released" in _said(r) and str(folder) in _said(r)
    assert FORGED_REASON not in r.output


# ---------------------------------------------------------------------------- the genuine path
def test_genuine_signed_release_verifies_and_audits_clean(reg, tmp_path, reviewers_file):
    run_id = stage_run(reg, tmp_path)
    approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy")
    trail = release_mod.trail_check(reg, CONFIG)
    assert trail.statuses[run_id] == "released" and trail.forged == {} and trail.signatures_checked
    got = _listed(reg, run_id, "--reviewers", str(reviewers_file))
    assert got["status"] == "released" and got["unverified_events"] == []
    table = _said(_cli(reg, "releases", "list", "--reviewers", str(reviewers_file)))
    assert "not checked" not in table and "FORGED" not in table and "released" in table
    audit = _cli(reg, "releases", "audit", "--reviewers", str(reviewers_file))
    assert audit.exit_code == 0 and "every verdict's signature verifies" in _said(audit)
    assert audit.output.strip().split("head ")[-1] == reg.head()
    assert verify(reg, run_id).ok
    with pytest.raises(Exception, match="already been released"):
        publish(reg, run_id, released_by="bob")


# ---------------------------------------------------------------------------- session 12, task F2
# Every reader of a run's status uses the verified trail: the dashboard (app/trail.py, the
# page itself), scheduled jobs (synthkit/jobs.py) and the review path (a forged approval
# plus a forged release must not stop the genuine signed verdict; the forged events stay
# flagged). Negative control: these tests run against a83a8d2 (before F2) fail: the
# dashboard queue has no pending run and quotes the forged reason, the job reports
# "released" with the forged folder, and alice's approval is refused ("is 'released'").
from test_app import _app, _sign_in, _texts, env  # noqa: E402,F401 - the dashboard's fixture and helpers
from test_release_trail import BACKENDS, registry_on  # noqa: E402 - SQLite, and PostgreSQL with its URL set


@pytest.fixture(params=BACKENDS)
def any_reg(request, tmp_path):
    """The registry on each backend: add_review/add_release's forged-event paths run on
    PostgreSQL too (export SYNTHKIT_TEST_POSTGRES_URL=$(bash scripts/postgres.sh))."""
    yield from registry_on(request.param, tmp_path)


def _forge_approval_and_release(reg: Registry, run_id: str, tmp_path: Path) -> tuple[int, int]:
    return _forge_chained_approval(reg, run_id), _forge_release_row(reg, run_id, tmp_path)


def test_f2_dashboard_data_shows_the_verified_status_and_the_forged_events(any_reg, tmp_path):
    reg = any_reg
    from app.trail import run_status, run_statuses, verified_reviews
    run_id = stage_run(reg, tmp_path, run_by="ravi")
    other = stage_run(reg, tmp_path, run_by="ravi", key="a second, untouched run")
    a, r = _forge_approval_and_release(reg, run_id, tmp_path)
    assert reg.status(run_id) == "released"  # what the raw trail says
    rows = {s.run.run_id: s for s in run_statuses(reg, CONFIG)}
    assert rows[run_id].status == "pending_review" and rows[run_id].recorded_status == "released"
    assert [q for q, _ in rows[run_id].unverified] == [a, r] and rows[run_id].signatures_checked
    assert rows[other].status == rows[other].recorded_status == "pending_review" and rows[other].unverified == ()
    shown = verified_reviews(reg, run_id, rows[run_id].unverified)
    assert [(rv.reviewer, ok) for rv, ok in shown] == [("mallory", False)]
    # the genuine review goes through the dashboard's data unchanged
    approve(reg, run_id, reviewer=CONFIG.find("alice"), reason="fidelity and leakage within policy")
    after = run_status(reg, CONFIG, run_id)
    assert after.status == "released" and [q for q, _ in after.unverified] == [a, r]
    assert sorted((rv.reviewer, ok) for rv, ok in verified_reviews(reg, run_id, after.unverified)) == \
        [("alice", True), ("mallory", False)]


def test_f2_dashboard_page_offers_the_review_of_a_forged_run_and_never_quotes_the_forgery(env):
    reg = env["reg"]
    run_id = stage_run(reg, env["tmp"], run_by="alice")
    a, r = _forge_approval_and_release(reg, run_id, env["tmp"])
    at = _sign_in(_app(), "bob")
    assert not at.exception, at.exception
    # the queue's "Pending review" filter reads the verified status: the run is waiting for bob
    assert at.sidebar.radio(key="queue_choice").value == run_id
    text = _texts(at)
    assert "status **pending review**" in text and "nothing to decide" not in text
    assert f"event #{a}" in text and f"event #{r}" in text and "do not verify" in text
    assert FORGED_REASON not in text and "reason not shown" in text
    history = at.dataframe[-1].value
    assert set(history.loc[history["event"].isin([a, r]), "verified"]) == {"FORGED / unverified"}
    at.text_area(key=f"reason_{run_id}").input("fidelity and leakage within the default policy")
    at.button(key=f"approve_{run_id}").click()
    at.run()
    assert not at.exception, at.exception
    assert f"{run_id}: released" in _texts(at)
    folder = env["tmp"] / "releases" / run_id
    assert (folder / "manifest.json").is_file() and verify(reg, run_id).ok


def test_f2_jobs_report_the_verified_status_and_release(any_reg, tmp_path, monkeypatch, reviewers_file):
    reg = any_reg
    from synthkit import jobs
    run_id = stage_run(reg, tmp_path, run_by="ravi")
    a, r = _forge_approval_and_release(reg, run_id, tmp_path)
    for env_file in (None, reviewers_file):  # the unsigned forgery shows without the public keys too
        if env_file is None:
            monkeypatch.delenv("SYNTHKIT_REVIEWERS", raising=False)
        else:
            monkeypatch.setenv("SYNTHKIT_REVIEWERS", str(env_file))
        result = jobs._result(reg, run_id, created=False)  # what `synthkit run` says of a settled run
        assert result.status == "pending_review" and result.release_path is None
        assert result.unverified_events == (a, r)
    approve(reg, run_id, reviewer=CONFIG.find("alice"), reason="fidelity and leakage within policy")
    result = jobs._result(reg, run_id, created=False)
    assert result.status == "released" and result.release_path == str(tmp_path / "releases" / run_id)
    assert result.unverified_events == (a, r)


def test_f2_forged_approval_and_release_do_not_stop_the_genuine_approval(any_reg, tmp_path, reviewers_file):
    reg = any_reg
    run_id = stage_run(reg, tmp_path, run_by="ravi")
    a, r = _forge_approval_and_release(reg, run_id, tmp_path)
    assert reg.status(run_id) == "released"
    assert approve(reg, run_id, reviewer=CONFIG.find("alice"), reason="fidelity and leakage within policy") \
        == "released"
    assert [(rv.reviewer, rv.verdict) for rv in reg.reviews(run_id)] == [("mallory", "approve"),
                                                                         ("alice", "approve")]
    folder = tmp_path / "releases" / run_id
    assert reg.release(run_id).path == str(folder)
    result = verify(reg, run_id)
    assert result.ok, result.problems
    assert any(f"event #{a}" in n and "forged" in n for n in result.notes)  # flagged, not counted
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [x["reviewer"] for x in manifest["approvals"]] == ["alice"]  # mallory's forged verdict counts for nothing
    trail = release_mod.trail_check(reg, CONFIG, run_id=run_id)
    assert trail.statuses[run_id] == "released" and [q for q, _ in trail.forged[run_id]] == [a, r]
    if reg._schema is None:  # the CLI opens a URL; the PostgreSQL case lives in a test schema
        audit = _cli(reg, "releases", "audit", "--reviewers", str(reviewers_file))
        out = _said(audit)
        assert audit.exit_code == 4 and f"event #{a}" in out and FORGED_REASON not in audit.output


def test_f2_forged_events_do_not_count_as_approvals_of_a_two_reviewer_policy(any_reg, tmp_path):
    """A forged review row must not be the second approval (healthcare: 2 reviewers)."""
    reg = any_reg
    from test_gate import dp_privacy, make_report  # a report the healthcare policy passes (test_release)
    run_id = stage_run(reg, tmp_path, run_by="ravi", policy="healthcare",
                       report=make_report(privacy=dp_privacy(unit="entity", epsilon=2.0)))
    assert reg.decision(run_id).passed and reg.decision(run_id).decision["reviewers_required"] == 2
    a = _forge_chained_approval(reg, run_id)
    assert approve(reg, run_id, reviewer=CONFIG.find("alice"), reason="fidelity and leakage within policy") \
        == "pending_review"
    assert not (tmp_path / "releases" / run_id).exists()
    assert approve(reg, run_id, reviewer=CONFIG.find("bob"), reason="fidelity and leakage within policy") \
        == "released"
    assert [q for q, _ in release_mod.trail_check(reg, CONFIG, run_id=run_id).forged[run_id]] == [a]


def test_r_a_signed_rejection_stays_final_after_its_reviewer_leaves_the_reviewers_file(tmp_path):
    """Review R (session 12): `forged_events` passed over any verdict whose reviewer was no
    longer listed with a key, so a run rejected by bob, after bob left the reviewers file,
    was approved by alice and released. A rejection is never passed over (it can only
    block). Control: the code of bdd780a (before the mend) releases the run here."""
    from reports.review import ReviewerConfig
    from test_release import reject
    reg = Registry(tmp_path / "registry.db")
    try:
        run_id = stage_run(reg, tmp_path, run_by="ravi")
        names = [r["name"] for r in REVIEWERS["reviewers"]]
        rejecter = [n for n in names if n not in ("alice", "ravi", "olivia")][0]
        reject(reg, run_id, reviewer=CONFIG.find(rejecter), reason="leakage too high for this data")
        without = ReviewerConfig.from_dict({"reviewers": [r for r in REVIEWERS["reviewers"] if r["name"] != rejecter]})
        with pytest.raises(Exception, match="rejected"):
            approve(reg, run_id, reviewer=without.find("alice"), reason="fidelity and leakage within policy",
                    config=without)
        assert not (tmp_path / "releases" / run_id).exists()
        assert reg.status(run_id) == "rejected"
    finally:
        reg.close()


def test_r_text_a_forger_wrote_is_shown_literally_on_the_dashboard():
    """Review R (session 12) F3: names, statuses and reasons of unverified events reached
    st.markdown/st.error unescaped (links and formatting injectable). Control: bdd780a has
    no escaping (`_plain` absent)."""
    from app.views import _plain
    shown = _plain("[approve here](http://evil.example) **urgent** `x` <b>")
    assert "](" not in shown.replace("\\]\\(", "") and "**" not in shown.replace("\\*\\*", "")
    assert shown.replace("\\", "") == "[approve here](http://evil.example) **urgent** `x` <b>"


def test_r_a_forged_pending_review_after_a_rejection_is_flagged_and_reopens_nothing(reg, tmp_path):
    """Review R (session 12) F4: any non-verdict event with a status set the replayed status,
    so a chained `pending_review` event after a signed rejection reopened the dashboard's
    review form and was not listed as forged. Now only the pipeline's own steps move a run
    (claim → running, gate → pending_review/gate_rejected, failure → failed). Control:
    the code before the mend (6a07819) replays it as pending_review with nothing flagged."""
    from test_release import reject
    run_id = stage_run(reg, tmp_path, run_by="ravi")
    assert reject(reg, run_id, reviewer=CONFIG.find("carol"), reason="pair trends too weak") == "rejected"
    seq = _insert_event(reg, run_id, status="pending_review", step="gate", message="gate passed again",
                        details={})
    checked = release_mod.trail_check(reg, CONFIG, run_id=run_id)
    assert checked.statuses[run_id] == "rejected"
    assert seq in [s for s, _why in checked.forged.get(run_id, [])]
    with pytest.raises(Exception, match="rejected|pending review"):
        approve(reg, run_id, reviewer=CONFIG.find("alice"), reason="fidelity and leakage within policy")
