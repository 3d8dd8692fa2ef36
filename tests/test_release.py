"""Release: approval rules (configured reviewers only, four-eyes, gate must pass, enough
approvals), the bundle written only on approval, hash verification that detects a
modified, missing or added file (even with a rewritten manifest), the data card, and the
CLI actions that mirror the dashboard."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reports.gate import evaluate_gate
from reports.policy import load_policy
from reports.registry import Registry, RegistryError
from reports.release import approve, publish, reject, sha256_file, verify
from reports.review import AccessDenied, ReviewerConfig, hash_password, verify_password
from synthkit.cli import app
from synthkit.errors import ArtifactError
from test_gate import COPY, make_report

runner = CliRunner()
PASSWORDS = {"bob": "bob-password-1", "carol": "carol-password-2", "alice": "alice-password-3"}


@pytest.fixture(scope="module")
def reviewers_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reviewers") / "reviewers.yaml"
    path.write_text(yaml.safe_dump({"reviewers": [{"name": n, "password": hash_password(p)}
                                                  for n, p in PASSWORDS.items()]}))
    return path


@pytest.fixture(scope="module")
def config(reviewers_file) -> ReviewerConfig:
    return ReviewerConfig.load(reviewers_file)


def stage_run(reg: Registry, tmp_path: Path, *, report=None, policy: str = "default", run_by: str = "alice",
              owner: str | None = "olivia", key: str | None = None) -> str:
    """What `synthkit run` leaves for review: staged files + registry records."""
    report = report or make_report()
    run, _ = reg.claim_run(job_name="claims", idempotency_key=key or str(tmp_path) + policy + str(id(report)),
                           run_by=run_by, owner=owner, spec={"name": "claims"})
    staged = tmp_path / "work" / run.run_id
    staged.mkdir(parents=True)
    (staged / "synthetic.csv").write_text("age,sex\n71,female\n80,male\n")
    report.save(staged / "report.json")
    reg.add_event(run.run_id, step="staged", details={
        "synthetic": str(staged / "synthetic.csv"), "synthetic_sha256": sha256_file(staged / "synthetic.csv"),
        "report": str(staged / "report.json"), "report_sha256": sha256_file(staged / "report.json"),
        "releases_dir": str(tmp_path / "releases"), "source_kind": "csv file",
        "intended_use": "testing the claims pipeline"})
    decision = evaluate_gate(report, load_policy(policy))
    reg.add_decision(run.run_id, policy_name=decision.policy, policy_sha256=decision.policy_sha256,
                     passed=decision.passed, decision=decision.to_dict(),
                     status="pending_review" if decision.passed else "gate_rejected", message=decision.summary())
    return run.run_id


@pytest.fixture
def reg(tmp_path) -> Registry:
    return Registry(tmp_path / "registry.db")


def test_approval_writes_a_verifiable_bundle(reg, tmp_path, config):
    run_id = stage_run(reg, tmp_path)
    assert not (tmp_path / "releases").exists()  # nothing is written before approval
    status = approve(reg, run_id, reviewer=config.authenticate("bob", PASSWORDS["bob"]),
                     reason="fidelity and leakage within policy")
    assert status == "released" and reg.status(run_id) == "released"
    folder = tmp_path / "releases" / run_id
    names = sorted(p.name for p in folder.iterdir())
    assert {"synthetic.csv", "report.json", "gate.json", "data_card.md", "data_card.json", "manifest.json"} <= set(names)
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
    rec = reg.release(run_id)
    assert rec.manifest_sha256 == sha256_file(folder / "manifest.json")
    assert rec.files == {n: e["sha256"] for n, e in manifest["files"].items()}
    assert (folder / "synthetic.csv").read_bytes() == (tmp_path / "work" / run_id / "synthetic.csv").read_bytes()
    assert verify(reg, run_id).ok
    assert not [p for p in (tmp_path / "releases").iterdir() if p.name.endswith(".partial")]


def test_data_card_states_privacy_use_and_limits(reg, tmp_path, config):
    run_id = stage_run(reg, tmp_path)
    approve(reg, run_id, reviewer=config.find("bob"), reason="ok for the test environment")
    card = json.loads((tmp_path / "releases" / run_id / "data_card.json").read_text())
    assert card["privacy"]["unit"] == "row" and card["privacy"]["epsilon"] == pytest.approx(2.9999)
    assert card["privacy"]["delta"] == 1e-6 and card["privacy"]["private"] is True
    assert card["source_kind"] == "csv file" and card["intended_use"] == "testing the claims pipeline"
    assert card["approvals"][0]["reviewer"] == "bob"
    assert any("bias.*" not in x and "could not be computed" not in x for x in card["known_limits"])
    assert "noise blurs rare categories" in card["known_limits"][-1]
    md = (tmp_path / "releases" / run_id / "data_card.md").read_text()
    assert "per row" in md and "Known limits" in md and "e^epsilon" in md


@pytest.mark.parametrize("name", ["modified", "missing", "extra", "manifest rewritten"])
def test_verify_detects_tampering(reg, tmp_path, config, name):
    run_id = stage_run(reg, tmp_path)
    approve(reg, run_id, reviewer=config.find("bob"), reason="approved for the test")
    folder = tmp_path / "releases" / run_id
    if name == "modified":
        with open(folder / "synthetic.csv", "a") as f:
            f.write("99,male\n")
        expected = "synthetic.csv was modified"
    elif name == "missing":
        (folder / "report.json").unlink()
        expected = "report.json is missing"
    elif name == "extra":
        (folder / "extra.csv").write_text("x\n1\n")
        expected = "files not in the release: ['extra.csv']"
    else:  # change data AND rewrite the manifest consistently: the registry still knows
        (folder / "synthetic.csv").write_text("age,sex\n1,x\n")
        m = json.loads((folder / "manifest.json").read_text())
        m["files"]["synthetic.csv"]["sha256"] = sha256_file(folder / "synthetic.csv")
        (folder / "manifest.json").write_text(json.dumps(m))
        expected = "manifest.json differs"
    result = verify(reg, run_id)
    assert not result.ok
    assert any(expected in p for p in result.problems), result.problems
    r = runner.invoke(app, ["releases", "verify", run_id, "--registry", str(tmp_path / "registry.db")])
    assert r.exit_code == 4 and "does NOT match" in r.output


def test_four_eyes_the_runner_and_owner_cannot_approve(reg, tmp_path, config):
    run_id = stage_run(reg, tmp_path, run_by="alice", owner="carol")
    for who in ("alice", "carol"):
        with pytest.raises(AccessDenied, match="four-eyes"):
            approve(reg, run_id, reviewer=config.find(who), reason="my own work is fine")
    assert reg.status(run_id) == "pending_review" and reg.reviews(run_id) == []
    assert approve(reg, run_id, reviewer=config.find("bob"), reason="independent review") == "released"


def test_no_approval_without_a_configured_reviewer(tmp_path):
    empty = ReviewerConfig.load(None)
    assert not empty.configured
    with pytest.raises(AccessDenied, match="no reviewers are configured"):
        empty.authenticate("bob", PASSWORDS["bob"])
    cfg = ReviewerConfig.from_dict({"reviewers": [{"name": "bob", "password": hash_password(PASSWORDS["bob"])}]})
    for name, pw in (("bob", "wrong-password"), ("mallory", PASSWORDS["bob"]), ("", "")):
        with pytest.raises(AccessDenied, match="unknown reviewer or wrong password"):
            cfg.authenticate(name, pw)
    with pytest.raises(Exception, match="never a plain password"):
        ReviewerConfig.from_dict({"reviewers": [{"name": "eve", "password": "hunter22"}]})


def test_passwords_are_salted_scrypt_hashes():
    a, b = hash_password("same-password"), hash_password("same-password")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert verify_password(a, "same-password") and not verify_password(a, "same-passwore")
    assert not verify_password("garbage", "same-password")


def test_a_gate_rejected_run_cannot_be_approved(reg, tmp_path, config):
    run_id = stage_run(reg, tmp_path, report=make_report(COPY))
    assert reg.status(run_id) == "gate_rejected"
    with pytest.raises(AccessDenied, match="did not pass its release gate"):
        approve(reg, run_id, reviewer=config.find("bob"), reason="I like it anyway")
    assert not (tmp_path / "releases").exists()


def test_two_approvals_for_healthcare_and_rejection_is_final(reg, tmp_path, config):
    from test_gate import dp_privacy
    report = make_report(privacy=dp_privacy(unit="entity", epsilon=2.0))
    run_id = stage_run(reg, tmp_path, report=report, policy="healthcare")
    assert approve(reg, run_id, reviewer=config.find("bob"), reason="data steward ok") == "pending_review"
    assert not (tmp_path / "releases").exists()
    with pytest.raises(RegistryError, match="already reviewed"):
        approve(reg, run_id, reviewer=config.find("bob"), reason="approving twice")
    assert approve(reg, run_id, reviewer=config.find("carol"), reason="privacy officer ok") == "released"
    assert verify(reg, run_id).ok

    other = stage_run(reg, tmp_path, key="second")
    assert reject(reg, other, reviewer=config.find("carol"), reason="pair trends too weak") == "rejected"
    with pytest.raises(RegistryError, match="only a run pending review"):
        approve(reg, other, reviewer=config.find("bob"), reason="overrule")
    assert not (tmp_path / "releases" / other).exists()
    with pytest.raises(AccessDenied, match="give a reason"):
        reject(reg, stage_run(reg, tmp_path, key="third"), reviewer=config.find("bob"), reason="  ")


def test_what_is_released_is_what_was_evaluated(reg, tmp_path, config):
    run_id = stage_run(reg, tmp_path)
    with open(tmp_path / "work" / run_id / "synthetic.csv", "a") as f:
        f.write("55,female\n")
    with pytest.raises(ArtifactError, match="changed after the job wrote it"):
        approve(reg, run_id, reviewer=config.find("bob"), reason="looks fine")
    assert reg.status(run_id) == "pending_review" and not (tmp_path / "releases").exists()


def test_publish_never_releases_twice(reg, tmp_path, config):
    run_id = stage_run(reg, tmp_path)
    approve(reg, run_id, reviewer=config.find("bob"), reason="approved")
    with pytest.raises(RegistryError, match="already been released"):
        publish(reg, run_id, released_by="bob")
    assert len(list((tmp_path / "releases").iterdir())) == 1


def test_cli_approve_reject_list_show_verify(reg, tmp_path, reviewers_file, monkeypatch):
    db = str(tmp_path / "registry.db")
    first, second = stage_run(reg, tmp_path, key="a"), stage_run(reg, tmp_path, key="b")
    common = ["--registry", db, "--reviewers", str(reviewers_file)]
    r = runner.invoke(app, ["release", "approve", first, "--reason", "fine", "--reviewer", "bob", *common])
    assert r.exit_code == 2 and "SYNTHKIT_REVIEWER_PASSWORD" in r.output  # no password given
    monkeypatch.setenv("SYNTHKIT_REVIEWER_PASSWORD", "not-bobs-password")
    r = runner.invoke(app, ["release", "approve", first, "--reason", "fine", "--reviewer", "bob", *common])
    assert r.exit_code == 2 and "wrong password" in r.output and reg.status(first) == "pending_review"
    monkeypatch.setenv("SYNTHKIT_REVIEWER_PASSWORD", PASSWORDS["alice"])
    r = runner.invoke(app, ["release", "approve", first, "--reason", "it is my own work", "--reviewer", "alice", *common])
    assert r.exit_code == 2 and "four-eyes" in r.output
    monkeypatch.setenv("SYNTHKIT_REVIEWER_PASSWORD", PASSWORDS["bob"])
    r = runner.invoke(app, ["release", "approve", first, "--reason", "fidelity ok", "--reviewer", "bob", *common])
    assert r.exit_code == 0 and "released to" in r.output, r.output
    r = runner.invoke(app, ["release", "reject", second, "--reason", "too few rows", "--reviewer", "bob", *common])
    assert r.exit_code == 0 and "rejected" in r.output
    r = runner.invoke(app, ["releases", "list", "--registry", db, "--json"])
    assert {x["run_id"]: x["status"] for x in json.loads(r.output)} == {first: "released", second: "rejected"}
    r = runner.invoke(app, ["releases", "show", first, "--registry", db, "--json"])
    info = json.loads(r.output)
    assert info["status"] == "released" and info["reviews"][0]["reviewer"] == "bob"
    assert info["decision"]["passed"] is True and info["release"]["files"]
    r = runner.invoke(app, ["releases", "show", first, "--registry", db])
    assert r.exit_code == 0 and "privacy.membership_inference.auc" in r.output
    r = runner.invoke(app, ["releases", "verify", first, "--registry", db])
    assert r.exit_code == 0 and "OK" in r.output
    r = runner.invoke(app, ["release", "approve", first, "--reason", "x", "--reviewer", "bob",
                            "--registry", db])  # no reviewers file configured
    assert r.exit_code == 2 and "no reviewers are configured" in r.output


def test_cli_reviewers_add_stores_only_a_hash(tmp_path, monkeypatch):
    path = tmp_path / "reviewers.yaml"
    monkeypatch.setenv("SYNTHKIT_REVIEWER_PASSWORD", "a-long-secret-pw")
    r = runner.invoke(app, ["reviewers", "add", "dora", "--file", str(path), "--display-name", "Dora (DPO)"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["reviewers", "add", "eve", "--file", str(path), "--no-password",
                            "--email", "eve@hospital.example"])
    assert r.exit_code == 0, r.output
    text = path.read_text()
    assert "a-long-secret-pw" not in text and "scrypt$" in text
    cfg = ReviewerConfig.load(path)
    assert cfg.authenticate("dora", "a-long-secret-pw").label == "Dora (DPO)"
    assert cfg.by_email("EVE@hospital.example").name == "eve"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
