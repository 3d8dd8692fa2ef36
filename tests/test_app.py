"""Review dashboard with Streamlit's AppTest: anonymous visitors see nothing, sign-in with
configured reviewers only, the gate result first, four-eyes, approve and reject with a
reason, and the dashboard's dependency arrows (no torch, no connectors)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from reports.registry import Registry
from test_gate import COPY, make_report
from test_release import PASSWORDS, REVIEWERS, key_file, stage_run

SCRIPT = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")


@pytest.fixture
def env(tmp_path, monkeypatch):
    reviewers = tmp_path / "reviewers.yaml"
    reviewers.write_text(yaml.safe_dump(REVIEWERS))  # password hashes and public keys
    db = tmp_path / "registry.db"
    monkeypatch.setenv("SYNTHKIT_REGISTRY", str(db))
    monkeypatch.setenv("SYNTHKIT_REVIEWERS", str(reviewers))
    (tmp_path / "home" / "keys").mkdir(parents=True)
    for name in ("bob", "carol"):  # these reviewers keep their signing keys on this machine
        key_file(tmp_path / "home" / "keys", name)
    monkeypatch.setenv("SYNTHKIT_HOME", str(tmp_path / "home"))
    reg = Registry(db)
    return {"reg": reg, "tmp": tmp_path, "reviewers": reviewers}


def _app() -> AppTest:
    at = AppTest.from_file(SCRIPT, default_timeout=60)
    at.run()
    return at


def _texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.error] + [e.value for e in at.info] + \
            [e.value for e in at.success] + [e.value for e in at.warning] + [e.value for e in at.caption] + \
            [e.value for e in at.subheader] + [e.value for e in at.header]
    return "\n".join(str(p) for p in parts)


def _sign_in(at: AppTest, name: str) -> AppTest:
    at.text_input(key="signin_name").input(name)
    at.text_input(key="signin_password").input(PASSWORDS.get(name, "wrong-password"))
    at.button[0].click()
    at.run()
    return at


def test_no_reviewers_configured_shows_nothing(env, monkeypatch):
    run_id = stage_run(env["reg"], env["tmp"])
    monkeypatch.delenv("SYNTHKIT_REVIEWERS")
    at = _app()
    assert not at.exception
    assert "No reviewers are configured" in at.error[0].value
    assert run_id not in _texts(at) and len(at.button) == 0 and len(at.text_input) == 0


def test_anonymous_and_wrong_password_see_only_the_sign_in(env):
    run_id = stage_run(env["reg"], env["tmp"])
    at = _app()
    assert [t.label for t in at.text_input] == ["Reviewer name", "Password"]
    assert run_id not in _texts(at) and len(at.sidebar.radio) == 0 and len(at.dataframe) == 0
    at = _sign_in(at, "mallory")
    assert "unknown reviewer or wrong password" in at.error[0].value
    assert run_id not in _texts(at) and len(at.dataframe) == 0


def test_reviewer_sees_gate_first_and_approves(env):
    reg = env["reg"]
    run_id = stage_run(reg, env["tmp"], run_by="alice")
    at = _sign_in(_app(), "bob")
    assert not at.exception, at.exception
    assert "Signed in as **bob**" in _texts(at)
    assert at.sidebar.radio(key="queue_choice").value == run_id
    # the gate's result is the first thing on the release page, one row per check
    assert at.subheader[0].value == "Release gate"
    assert "gate PASSED by policy 'default'" in at.success[0].value
    gate_rows = at.dataframe[0].value
    assert list(gate_rows.columns[:4]) == ["check", "observed", "threshold", "result"]
    assert "privacy.membership_inference.auc" in set(gate_rows["check"])
    assert [t.label for t in at.tabs] == ["Fidelity", "Diversity", "Privacy", "Bias", "Sequence", "Privacy ledger",
                                          "Data card", "History"]
    assert "per row" in _texts(at)  # the ledger in plain words
    at.text_area(key=f"reason_{run_id}").input("fidelity and leakage within the default policy")
    at.button(key=f"approve_{run_id}").click()
    at.run()
    assert not at.exception, at.exception
    assert reg.status(run_id) == "released"
    assert reg.reviews(run_id)[0].reviewer == "bob"
    assert f"{run_id}: released" in _texts(at)


def test_four_eyes_blocks_the_runner_and_a_failed_gate(env):
    reg = env["reg"]
    own = stage_run(reg, env["tmp"], run_by="alice", key="own")
    at = _sign_in(_app(), "alice")
    at.sidebar.radio(key="queue_choice").set_value(own).run()
    assert at.button(key=f"approve_{own}").disabled
    assert "four-eyes" in _texts(at)
    assert reg.status(own) == "pending_review"

    rejected = stage_run(reg, env["tmp"], report=make_report(COPY), key="copy")
    at.sidebar.radio(key="queue_filter").set_value("All runs").run()
    at.sidebar.radio(key="queue_choice").set_value(rejected).run()
    assert "gate REJECTED" in at.error[0].value
    assert "nothing to decide" in _texts(at) and not any(b.key == f"approve_{rejected}" for b in at.button)


def test_reject_with_a_reason(env):
    reg = env["reg"]
    run_id = stage_run(reg, env["tmp"], run_by="alice")
    at = _sign_in(_app(), "carol")
    at.button(key=f"reject_{run_id}").click()
    at.run()
    assert "give a reason" in _texts(at) and reg.status(run_id) == "pending_review"
    at.text_area(key=f"reason_{run_id}").input("pair trends too weak for the study")
    at.button(key=f"reject_{run_id}").click()
    at.run()
    assert reg.status(run_id) == "rejected" and reg.reviews(run_id)[0].reason == "pair trends too weak for the study"
    assert not (env["tmp"] / "releases").exists()


def test_a_verdict_needs_the_reviewers_own_key_and_a_broken_trail_is_shown(env):
    reg = env["reg"]
    run_id = stage_run(reg, env["tmp"], run_by="carol", owner=None)
    at = _sign_in(_app(), "alice")  # alice's key is not on this machine and she uploaded none
    at.text_area(key=f"reason_{run_id}").input("fidelity and leakage within the policy")
    at.button(key=f"approve_{run_id}").click()
    at.run()
    assert not at.exception, at.exception
    assert "no signing key" in _texts(at) and reg.status(run_id) == "pending_review" and not reg.reviews(run_id)
    assert "audit trail does not verify" not in _texts(at)
    with reg._engine.begin() as conn:  # an event slipped into the chain by hand
        conn.exec_driver_sql("INSERT INTO synthkit_events (run_id, at, status, step, message, details, prev_hash, "
                             f"hash) VALUES ('{run_id}', '2026-01-01T00:00:00Z', 'approved', 'review', 'ok', '{{}}', "
                             f"'{'0' * 64}', '{'1' * 64}')")
    at.sidebar.radio(key="queue_filter").set_value("All runs").run()
    assert "audit trail does not verify" in at.error[0].value and "event #" in at.error[0].value


def test_sign_out_returns_to_the_form(env):
    stage_run(env["reg"], env["tmp"])
    at = _sign_in(_app(), "bob")
    at.sidebar.button(key="signout").click()
    at.run()
    assert [t.label for t in at.text_input] == ["Reviewer name", "Password"] and len(at.dataframe) == 0


def test_dashboard_imports_no_connectors_and_names_no_torch():
    """DESIGN.md arrows: app -> reports, synthkit types; never torch, opacus or connectors.
    (torch still arrives through synthkit/__init__.py's eager imports: see the report.)"""
    import ast
    root = Path(SCRIPT).parents[1]
    files = [*sorted((root / "app").glob("*.py")),
             *(root / "reports" / f for f in ("gate.py", "policy.py", "registry.py", "release.py", "review.py"))]
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("torch", "opacus", "connectors"), (f.name, name)
    code = ("import sys, app.views, reports.release, reports.registry, reports.review, reports.gate; "
            "sys.exit(1 if 'connectors' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
