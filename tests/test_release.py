"""Release: approval rules (configured reviewers only, four-eyes, gate must pass, enough
approvals), the bundle written only on approval and holding public or DP facts only (the
full report stays internal), hash verification that detects a modified, missing or added
file (even with a rewritten manifest), the data card, and the CLI actions that mirror the
dashboard."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reports.gate import GateDecision, evaluate_gate
from reports.model import Report
from reports.policy import load_policy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reports import release as release_mod
from reports.registry import Registry, RegistryError
from reports.release import data_card, data_card_markdown, sha256_file
from reports.review import AccessDenied, ReviewerConfig, hash_password, verify_password
from reports.signing import public_key_line
from synthkit.cli import app
from synthkit.errors import ArtifactError
from test_gate import COPY, GOOD_DP, NO_DP, make_report

runner = CliRunner()
PASSWORDS = {"bob": "bob-password-1", "carol": "carol-password-2", "alice": "alice-password-3"}
# Each reviewer's signing key (held by the reviewer; only the public half is configured).
KEYS = {n: Ed25519PrivateKey.generate() for n in PASSWORDS}
REVIEWERS = {"reviewers": [{"name": n, "password": hash_password(p), "public_key": public_key_line(KEYS[n])}
                           for n, p in PASSWORDS.items()]}
CONFIG = ReviewerConfig.from_dict(REVIEWERS)


def approve(reg, run_id, *, reviewer, reason, config=None):
    """The library's approve, signed with the reviewer's own key."""
    return release_mod.approve(reg, run_id, reviewer=reviewer, reason=reason, key=KEYS[reviewer.name],
                               config=config or CONFIG)


def reject(reg, run_id, *, reviewer, reason, config=None):
    return release_mod.reject(reg, run_id, reviewer=reviewer, reason=reason, key=KEYS[reviewer.name],
                              config=config or CONFIG)


def publish(reg, run_id, *, released_by, config=None):
    return release_mod.publish(reg, run_id, released_by=released_by, config=config or CONFIG)


def verify(reg, run_id, config=None):
    return release_mod.verify(reg, run_id, config or CONFIG)


def key_file(folder: Path, name: str) -> Path:
    """`name`'s private key as the file only they can read (mode 0600)."""
    path = folder / f"{name}.ed25519"
    path.write_bytes(KEYS[name].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def reviewers_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reviewers") / "reviewers.yaml"
    path.write_text(yaml.safe_dump(REVIEWERS))
    return path


@pytest.fixture(scope="module")
def config(reviewers_file) -> ReviewerConfig:
    return ReviewerConfig.load(reviewers_file)


SCHEMA = {"version": 1, "columns": {"age": {"kind": "integer", "nullable": True, "bounds": [0, 120]},
                                     "sex": {"kind": "categorical", "nullable": True,
                                             "categories": ["female", "male"]}}}
SPLIT_FINGERPRINT = "5eed" * 16  # the bundle's holdout record: a hash of the private table


def fake_bundle(report, *, n_units_dp: int = 3519) -> dict:
    """The parts of a model bundle manifest the release may read (schema, ledger, training
    record) and parts it must not (the seed, the split's fingerprint of the data)."""
    return {"format": "synthkit-model-bundle", "format_version": 1,
            "model": {"class": report.model.get("class"), "hyperparameters": {"epochs": 3, "seed": 0}},
            "schema": SCHEMA, "privacy": {"summary": report.privacy},
            "training": {"sampling_rate": 0.14, "noise_multiplier": 3.2, "steps": 160,
                         "n_units_dp": n_units_dp if report.privacy.get("private") else None},
            "seed": 0, "holdout": {"method": "random", "fraction": 0.2, "data_sha256": SPLIT_FINGERPRINT}}


def stage_run(reg: Registry, tmp_path: Path, *, report=None, policy: str = "default", run_by: str = "alice",
              owner: str | None = "olivia", key: str | None = None, bundle: dict | None = None) -> str:
    """What `synthkit run` leaves for review: staged files (synthetic data, the full report,
    the model bundle's manifest the report evaluated) + registry records."""
    report = report or make_report()
    run, _ = reg.claim_run(job_name="claims", idempotency_key=key or str(tmp_path) + policy + str(id(report)),
                           run_by=run_by, owner=owner, spec={"name": "claims"})
    staged = tmp_path / "work" / run.run_id
    (staged / "model").mkdir(parents=True)
    manifest = bundle if bundle is not None else fake_bundle(report)
    (staged / "model" / "manifest.json").write_text(json.dumps(manifest, indent=2))
    report = dataclasses.replace(report, model={**report.model, "training": manifest.get("training", {}),
                                                "manifest_sha256": sha256_file(staged / "model" / "manifest.json")})
    (staged / "synthetic.csv").write_text("age,sex\n71,female\n80,male\n")
    report.save(staged / "report.json")
    reg.add_event(run.run_id, step="staged", details={
        "synthetic": str(staged / "synthetic.csv"), "synthetic_sha256": sha256_file(staged / "synthetic.csv"),
        "report": str(staged / "report.json"), "report_sha256": sha256_file(staged / "report.json"),
        "model_dir": str(staged / "model"), "releases_dir": str(tmp_path / "releases"), "source_kind": "csv file",
        "intended_use": "testing the claims pipeline", "policy": policy})
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
    # public or DP facts only: the full report and the gate's observed values stay internal
    assert names == ["data_card.json", "data_card.md", "ledger.json", "manifest.json", "schema.json", "synthetic.csv"]
    assert (tmp_path / "work" / run_id / "report.json").is_file()  # the internal report stays staged
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
    folder = tmp_path / "releases" / run_id
    card = json.loads((folder / "data_card.json").read_text())
    assert card["privacy"]["unit"] == "row" and card["privacy"]["epsilon"] == pytest.approx(2.9999)
    assert card["privacy"]["delta"] == 1e-6 and card["privacy"]["private"] is True
    assert card["rows"] == {"n_synthetic": 4000, "n_units_dp": 3519, "n_units_dp_meaning": card["rows"]["n_units_dp_meaning"]}
    assert "differentially private count" in card["rows"]["n_units_dp_meaning"]
    assert card["policy"]["name"] == "default" and card["model"] == {"class": "DPTVAE"}
    assert card["source_kind"] == "csv file" and card["intended_use"] == "testing the claims pipeline"
    [approval] = card["approvals"]
    assert approval["reviewer"] == "bob" and approval["decision"] == "approve" and approval["at"]
    assert "reason" not in approval  # free text may quote the internal report; it stays in the registry
    assert card["files"] == {n: sha256_file(folder / n) for n in ("ledger.json", "schema.json", "synthetic.csv")}
    assert "noise blurs rare categories" in card["known_limits"][-1]
    assert any("non-DP checks on the real data" in x for x in card["known_limits"])
    # the release decision is a function of the private data, and the card says so
    rd = card["release_decision"]
    assert rd["dp"] is False and "privacy.membership_inference.auc" in rd["non_dp_checks_read"]
    assert "privacy.epsilon" not in rd["non_dp_checks_read"]
    for phrase in ("not differentially private", "function of the private data", "NOT covered by the",
                   "stays internal"):
        assert phrase in rd["statement"], phrase
    md = (folder / "data_card.md").read_text()
    for phrase in ("per row", "Known limits", "e^epsilon", "3519 (DP count of rows; noisy)",
                   "How the release was decided (not covered by the guarantee)", "function of the private data",
                   "bob at", "`synthetic.csv`"):
        assert phrase in md, phrase
    ledger = json.loads((folder / "ledger.json").read_text())
    assert ledger["epsilon_spent"] == pytest.approx(2.9999) and ledger["unit"] == "row"
    assert [e["name"] for e in ledger["events"]] == ["dp-sgd", "count:units"]
    assert json.loads((folder / "schema.json").read_text()) == SCHEMA


CANARY = "ZQX-canary-diagnosis-7781"  # a category held by one real row
N_TRAIN = 1237                       # the exact number of training rows
MIA_AUC = 0.5173                     # a gate row's observed value (computed on the real data)


def test_a_release_carries_no_real_data_fact(reg, tmp_path, config):
    """The evaluation's report holds a real-data canary (a rare category in the marginals, a
    rule's real share), exact counts and non-DP metric values; the bundle holds the seed and
    a hash of the private table. None of it may reach any byte of the release folder."""
    report = make_report({**GOOD_DP, "privacy.membership_inference.auc": (MIA_AUC, (0.49, 0.54))})
    shapes = dataclasses.replace(report.metric("fidelity.quality.column_shapes"),
                                 details={"diagnosis": {"real_shares": {CANARY: 1 / N_TRAIN, "flu": 0.4}}})
    report = dataclasses.replace(
        report, metrics=[shapes if m.id == shapes.id else m for m in report.metrics],
        data={**report.data, "n_train": N_TRAIN, "n_holdout": 311, "n_train_entities": N_TRAIN},
        charts={"marginals": {"diagnosis": {"kind": "categorical", "categories": [CANARY, "flu"],
                                            "real": [1 / N_TRAIN, 0.4], "synthetic": [0.0, 0.41]}}},
        validation={"success_rate": 1.0, "rules": [{"rule": "a <= b", "real_share": 1 / N_TRAIN}],
                    "note": f"{CANARY} breaks no rule"})
    run_id = stage_run(reg, tmp_path, report=report, bundle=fake_bundle(report, n_units_dp=1229))
    assert CANARY in (tmp_path / "work" / run_id / "report.json").read_text()  # planted where it belongs
    approve(reg, run_id, reviewer=config.find("bob"), reason=f"MIA {MIA_AUC} on {N_TRAIN} rows is fine")
    folder = tmp_path / "releases" / run_id
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    exact_count = re.compile(rb"(?<![\w.])%d(?![\w.])" % N_TRAIN)  # as a number, not inside a hash or a time
    for path in files:
        data = path.read_bytes()
        assert CANARY.encode() not in data, path.name
        assert not exact_count.search(data), path.name
        assert str(MIA_AUC).encode() not in data, path.name
        assert SPLIT_FINGERPRINT.encode() not in data, path.name
        assert b'"seed"' not in data, path.name
    assert {p.name for p in files} == {"synthetic.csv", "ledger.json", "schema.json", "data_card.json",
                                       "data_card.md", "manifest.json"}
    card = json.loads((folder / "data_card.json").read_text())
    assert card["rows"]["n_units_dp"] == 1229  # the DP count is what a recipient gets
    assert verify(reg, run_id).ok


def test_a_swapped_model_bundle_is_not_released(reg, tmp_path, config):
    run_id = stage_run(reg, tmp_path)
    manifest = tmp_path / "work" / run_id / "model" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"epochs": 3', '"epochs": 4'))
    with pytest.raises(ArtifactError, match="not the one the report evaluated"):
        approve(reg, run_id, reviewer=config.find("bob"), reason="looks fine")
    assert reg.status(run_id) == "pending_review" and not (tmp_path / "releases").exists()


def test_without_dp_the_card_has_no_count_and_says_so(reg, tmp_path):
    """The card the dashboard previews for a run trained without DP: no DP count exists,
    and an exact count is never a substitute."""
    run_id = stage_run(reg, tmp_path, report=make_report(privacy=NO_DP))
    staged = reg.artifacts(run_id)
    card = data_card(report=Report.load(staged["report"]), decision=GateDecision.from_dict(reg.decision(run_id).decision),
                     run=reg.run(run_id), staged=staged, approvals=[])
    assert card["rows"]["n_units_dp"] is None and card["privacy"]["epsilon"] is None
    assert card["known_limits"][0].startswith("No formal privacy guarantee")
    assert "3525" not in json.dumps(card) and "3525" not in data_card_markdown(card)  # make_report's n_train


@pytest.mark.parametrize("name", ["modified", "missing", "extra", "manifest rewritten"])
def test_verify_detects_tampering(reg, tmp_path, config, name, reviewers_file, monkeypatch):
    run_id = stage_run(reg, tmp_path)
    approve(reg, run_id, reviewer=config.find("bob"), reason="approved for the test")
    folder = tmp_path / "releases" / run_id
    if name == "modified":
        with open(folder / "synthetic.csv", "a") as f:
            f.write("99,male\n")
        expected = "synthetic.csv was modified"
    elif name == "missing":
        (folder / "ledger.json").unlink()
        expected = "ledger.json is missing"
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
    monkeypatch.setenv("SYNTHKIT_REVIEWERS", str(reviewers_file))
    r = runner.invoke(app, ["releases", "verify", run_id, "--registry", str(tmp_path / "registry.db")])
    assert r.exit_code == 4 and "does NOT verify" in r.output


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


def test_a_killed_publish_leaves_no_release_and_its_partial_is_removed(reg, tmp_path, config):
    """A publish killed mid-copy (SIGKILL: no cleanup) leaves a hidden, unlocked partial
    folder; the next publish of the run removes it and writes the one release folder."""
    run_id = stage_run(reg, tmp_path)
    releases = tmp_path / "releases"
    stale = releases / f".{run_id}.dead0001.partial"  # named as a partial of releases/RUN_ID; nobody holds its lock
    stale.mkdir(parents=True)
    (stale / "synthetic.csv").write_text("a,b\n1,2\n")
    approve(reg, run_id, reviewer=config.find("bob"), reason="approved")
    assert reg.status(run_id) == "released"
    assert sorted(p.name for p in releases.iterdir()) == [run_id]
    assert verify(reg, run_id).ok


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
    (tmp_path / "home" / "keys").mkdir(parents=True)
    for name in PASSWORDS:  # each reviewer's key where `synthkit reviewers key` puts it
        key_file(tmp_path / "home" / "keys", name)
    monkeypatch.setenv("SYNTHKIT_HOME", str(tmp_path / "home"))
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
    r = runner.invoke(app, ["releases", "verify", first, "--registry", db, "--reviewers", str(reviewers_file)])
    assert r.exit_code == 0 and "OK" in r.output, r.output
    r = runner.invoke(app, ["releases", "verify", first, "--registry", db])  # no public keys to check against
    assert r.exit_code == 4 and "no reviewers file to check" in r.output
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


def test_cli_reviewers_key_creates_a_private_key_once_and_prints_its_public_line(tmp_path, monkeypatch):
    from reports.signing import load_private_key, parse_public_key
    monkeypatch.setenv("SYNTHKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SYNTHKIT_REVIEWER_PASSWORD", "a-long-secret-pw")
    path = tmp_path / "reviewers.yaml"
    assert runner.invoke(app, ["reviewers", "add", "dora", "--file", str(path)]).exit_code == 0
    r = runner.invoke(app, ["reviewers", "key", "dora", "--file", str(path)])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("public_key: ")).split(" ", 1)[1]
    parse_public_key(line)
    key = tmp_path / "home" / "keys" / "dora.ed25519"
    assert key.stat().st_mode & 0o777 == 0o600 and (tmp_path / "home" / "keys").stat().st_mode & 0o077 == 0
    assert public_key_line(load_private_key(key)) == line
    assert ReviewerConfig.load(path).find("dora").public_key == line  # written into the reviewers file
    assert ReviewerConfig.load(path).find("dora").password.startswith("scrypt$")  # the password hash kept
    assert "PRIVATE" not in path.read_text()  # only the public half is in the reviewers file
    r = runner.invoke(app, ["reviewers", "key", "dora", "--file", str(path)])  # never overwritten
    assert r.exit_code == 2 and "already exists" in r.output and public_key_line(load_private_key(key)) == line
    r = runner.invoke(app, ["reviewers", "key", "nobody", "--file", str(path)])
    assert r.exit_code == 2 and "not in" in r.output
    key.chmod(0o644)
    with pytest.raises(Exception, match="can be read by other accounts"):
        load_private_key(key)
    with pytest.raises(Exception, match="'public_key' is invalid"):
        ReviewerConfig.from_dict({"reviewers": [{"name": "eve", "password": hash_password("long-password"),
                                                 "public_key": "ed25519:not-a-key"}]})
