"""A malicious runner attacks the release trail (issue 16).

The attacker can write the registry database (SQLite and PostgreSQL: drop triggers, edit,
delete, insert, recompute every chain hash) and the release folder, but holds no
reviewer's private key and cannot write the reviewers file. Each attack has its control
(the honest flow passes) and must end refused by `publish` or flagged by `verify`.
Attacks that only an outside anchor can catch (cutting the newest events) are documented
in the README instead."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reports import release as release_mod
from reports.gate import GateDecision
from reports.model import Report
from reports.registry import Registry, _record
from reports.release import sha256_file
from reports.review import AccessDenied, ReviewerConfig, ReviewerConfigError, four_eyes_problem, hash_password
from reports.signing import parse_public_key, public_key_line, signature_valid
from test_release import CONFIG, KEYS, PASSWORDS, approve, publish, reject, stage_run, verify
from test_release_trail import _drop_triggers, _forge_event, _rechain_from, _sql, _table, reg  # noqa: F401

REASON = "fidelity and leakage within policy"
POLICIES = Path(release_mod.__file__).parents[1] / "policies"


def _policy_file(tmp_path: Path, name: str, **release) -> Path:
    data = yaml.safe_load((POLICIES / "default.yaml").read_text())
    data.update(name=name, release={"auto_release": False, "reviewers_required": 1, **release})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _released(reg, tmp_path) -> str:
    run_id = stage_run(reg, tmp_path)
    assert approve(reg, run_id, reviewer=CONFIG.find("bob"), reason=REASON) == "released"
    assert verify(reg, run_id).ok  # control: the honest flow verifies
    return run_id


def _hide(reg) -> Registry:
    """After rewriting rows and recomputing the chain, the attacker restores the triggers
    (allowed: the audit is clean again) and the next command opens a normal registry."""
    again = Registry(reg.url, pg_schema=reg._schema)
    if again.missing_triggers:
        again.restore_triggers()
    return Registry(reg.url, pg_schema=reg._schema)


def _rewrite_release_row(reg, run_id: str, **changes) -> Registry:
    """Rewrite the release row and its chained event (the tail, after every signature)."""
    _drop_triggers(reg)
    rec = reg.release(run_id)
    row = dict(run_id=run_id, at=rec.at, path=rec.path, manifest_sha256=rec.manifest_sha256,
               files=rec.files, released_by=rec.released_by)
    row.update(changes)
    stored = {**row, "files": json.dumps(row["files"], sort_keys=True)}
    _sql(reg, f"UPDATE {_table(reg, 'synthkit_releases')} SET files = :files, manifest_sha256 = :manifest_sha256, "
              "path = :path WHERE run_id = :run_id", params=stored)
    event = next(e for e in reg.events(run_id) if e.step == "release")
    details = {"manifest_sha256": row["manifest_sha256"], **_record("release", run_id, stored)}
    _sql(reg, f"UPDATE {_table(reg, 'synthkit_events')} SET details = :d WHERE seq = :s",
         params={"d": json.dumps(details, sort_keys=True), "s": event.seq})
    _rechain_from(reg, event.seq)
    return _hide(reg)


def _reseal_folder(reg, run_id: str, folder: Path, extra: dict[str, Path] | None = None) -> Registry:
    """Recompute the data card, the manifest and the registry's hashes for whatever the
    folder now holds: everything an attacker without a key can recompute."""
    staged = reg.artifacts(run_id)
    authority, _ = release_mod._authority(reg, run_id, CONFIG)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in ("manifest.json", "data_card.json",
                                                                        "data_card.md"))
    hashes = dict(sorted({**{n: sha256_file(folder / n) for n in names},
                          **{n: sha256_file(p) for n, p in (extra or {}).items()}}.items()))
    card = release_mod.data_card(report=Report.load(staged["report"]),
                                 decision=GateDecision.from_dict(reg.decision(run_id).decision), run=reg.run(run_id),
                                 staged=staged, approvals=[dict(a) for a in authority.approvals], files=hashes)
    (folder / "data_card.json").write_text(json.dumps(card, indent=2))
    (folder / "data_card.md").write_text(release_mod.data_card_markdown(card))
    files = {**{p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != "manifest.json"},
             **{n: sha256_file(p) for n, p in (extra or {}).items()}}
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {n: {"sha256": d, "bytes": 0} for n, d in files.items()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return _rewrite_release_row(reg, run_id, files=files, manifest_sha256=sha256_file(folder / "manifest.json"))


# ---------------------------------------------------------------------------- replays
def test_an_approval_replayed_from_another_run_is_refused(reg, tmp_path):
    good = _released(reg, tmp_path)
    bad = stage_run(reg, tmp_path, key="bad")
    reject(reg, bad, reviewer=CONFIG.find("carol"), reason="pair trends too weak")
    signed = next(e for e in reg.events(good) if e.step == "review")
    _drop_triggers(reg)
    # delete the rejection, then replay bob's signed approval of the other run
    _sql(reg, f"DELETE FROM {_table(reg, 'synthkit_events')} WHERE run_id = :r AND step = 'review'",
         params={"r": bad})
    _sql(reg, f"DELETE FROM {_table(reg, 'synthkit_reviews')} WHERE run_id = :r", params={"r": bad})
    review = reg.reviews(good)[0]
    row = dict(run_id=bad, at=review.at, reviewer=review.reviewer, verdict=review.verdict, reason=review.reason)
    _sql(reg, f"INSERT INTO {_table(reg, 'synthkit_reviews')} (seq, run_id, at, reviewer, verdict, reason) "
              "VALUES (1000, :run_id, :at, :reviewer, :verdict, :reason)", params=row)
    details = {**signed.details, **_record("review", 1000, {"seq": 1000, **row})}
    _forge_event(reg, bad, status="approved", step="review", message=signed.message, details=details)
    assert not [p for p in Registry(reg.url, pg_schema=reg._schema).audit() if "trigger" not in p]
    again = _hide(reg)
    with pytest.raises(AccessDenied, match="cannot be released"):
        publish(again, bad, released_by="bob")
    assert verify(again, good).ok  # the other run is untouched


def test_an_earlier_approval_does_not_survive_restaged_data(reg, tmp_path):
    policy = _policy_file(tmp_path, "two", reviewers_required=2)
    run_id = stage_run(reg, tmp_path, policy=str(policy))
    assert approve(reg, run_id, reviewer=CONFIG.find("bob"), reason=REASON) == "pending_review"
    other = tmp_path / "other.csv"
    other.write_text("age,sex\n99,male\n")
    reg.add_event(run_id, step="staged", details={"synthetic": str(other), "synthetic_sha256": sha256_file(other)})
    with pytest.raises(AccessDenied, match="cannot be released"):
        approve(reg, run_id, reviewer=CONFIG.find("carol"), reason=REASON)
    assert not (tmp_path / "releases").exists()


def test_a_staged_event_after_a_verdict_cannot_redirect_the_release(reg, tmp_path):
    policy = _policy_file(tmp_path, "two", reviewers_required=2)
    run_id = stage_run(reg, tmp_path, policy=str(policy))
    assert approve(reg, run_id, reviewer=CONFIG.find("bob"), reason=REASON) == "pending_review"
    elsewhere = tmp_path / "public-share"
    reg.add_event(run_id, step="staged", details={"releases_dir": str(elsewhere)})
    with pytest.raises(AccessDenied, match="stages files after a verdict"):
        approve(reg, run_id, reviewer=CONFIG.find("carol"), reason=REASON)
    assert not elsewhere.exists()


# ---------------------------------------------------------------------------- chain rewrites
def test_a_deleted_rejection_with_the_chain_recomputed_breaks_later_signatures(reg, tmp_path):
    first = stage_run(reg, tmp_path, key="first")
    reject(reg, first, reviewer=CONFIG.find("carol"), reason="pair trends too weak")
    second = _released(reg, tmp_path)
    rejection = next(e for e in reg.events(first) if e.step == "review")
    _drop_triggers(reg)
    _sql(reg, f"DELETE FROM {_table(reg, 'synthkit_events')} WHERE seq = :s", params={"s": rejection.seq})
    _sql(reg, f"DELETE FROM {_table(reg, 'synthkit_reviews')} WHERE run_id = :r", params={"r": first})
    _rechain_from(reg, rejection.seq)
    again = Registry(reg.url, pg_schema=reg._schema)
    assert not [p for p in again.audit() if "trigger" not in p]  # the chain itself is consistent again...
    result = verify(again, second)
    assert not result.ok and any("signed verdict does not match" in p for p in result.problems)  # ...signatures not


def test_reordered_events_with_the_chain_recomputed_are_flagged(reg, tmp_path):
    run_id = _released(reg, tmp_path)
    events = reg.events(run_id)
    gate, review = next(e for e in events if e.step == "gate"), next(e for e in events if e.step == "review")
    _drop_triggers(reg)
    swap = {"at": review.at, "status": review.status, "step": review.step, "message": review.message,
            "details": json.dumps(review.details, sort_keys=True)}
    back = {"at": gate.at, "status": gate.status, "step": gate.step, "message": gate.message,
            "details": json.dumps(gate.details, sort_keys=True)}
    for seq, values in ((gate.seq, swap), (review.seq, back)):
        _sql(reg, f"UPDATE {_table(reg, 'synthkit_events')} SET at = :at, status = :status, step = :step, "
                  "message = :message, details = :details WHERE seq = :seq", params={**values, "seq": seq})
    _rechain_from(reg, gate.seq)
    result = verify(_reopen_any(reg), run_id)
    assert not result.ok


def _reopen_any(reg) -> Registry:
    return Registry(reg.url, pg_schema=reg._schema)


def test_an_auto_release_under_a_policy_that_allows_none_is_refused(reg, tmp_path):
    run_id = stage_run(reg, tmp_path)
    decision = reg.decision(run_id)
    _forge_event(reg, run_id, status="approved", step="auto_release", message="approved automatically",
                 details={"policy": "default", "policy_sha256": decision.policy_sha256,
                          "decision_sha256": release_mod.sha256_json(decision.decision)})
    with pytest.raises(AccessDenied, match="auto-release that the run's policy does not allow"):
        publish(reg, run_id, released_by="policy-auto-release")


def test_a_policy_file_claiming_a_shipped_name_is_flagged(reg, tmp_path):
    # a permissive policy that calls itself "default": reviewers would read "default"
    lax = _policy_file(tmp_path, "default", reviewers_required=1)
    data = yaml.safe_load(lax.read_text())
    data["checks"] = []
    lax.write_text(yaml.safe_dump(data))
    run_id = stage_run(reg, tmp_path, policy=str(lax))
    with pytest.raises(AccessDenied, match="shipped policy"):
        approve(reg, run_id, reviewer=CONFIG.find("bob"), reason=REASON)
    honest = stage_run(reg, tmp_path, key="honest")  # control: the shipped default by name
    assert approve(reg, honest, reviewer=CONFIG.find("bob"), reason=REASON) == "released"


def test_a_swapped_policy_file_is_flagged(reg, tmp_path):
    policy = _policy_file(tmp_path, "mine", reviewers_required=1)
    run_id = stage_run(reg, tmp_path, policy=str(policy))
    approve(reg, run_id, reviewer=CONFIG.find("bob"), reason=REASON)
    assert verify(reg, run_id).ok
    data = yaml.safe_load(policy.read_text())
    data["checks"] = []
    policy.write_text(yaml.safe_dump(data))
    result = verify(reg, run_id)
    assert not result.ok and any("policy" in p for p in result.problems)


# ---------------------------------------------------------------------------- the release folder
def test_an_added_file_with_every_hash_recomputed_is_flagged(reg, tmp_path):
    run_id = _released(reg, tmp_path)
    folder = tmp_path / "releases" / run_id
    (folder / "report.json").write_text((tmp_path / "work" / run_id / "report.json").read_text())
    again = _reseal_folder(reg, run_id, folder)
    result = verify(again, run_id)
    assert not result.ok and any("report.json" in p for p in result.problems), result.problems


def test_edited_data_with_every_hash_recomputed_is_flagged(reg, tmp_path):
    run_id = _released(reg, tmp_path)
    folder = tmp_path / "releases" / run_id
    (folder / "synthetic.csv").write_text("age,sex\n71,female\n")
    result = verify(_reseal_folder(reg, run_id, folder), run_id)
    assert not result.ok and any("approvers signed" in p for p in result.problems)


def test_a_symlink_in_the_release_folder_is_flagged(reg, tmp_path):
    run_id = _released(reg, tmp_path)
    folder = tmp_path / "releases" / run_id
    outside = tmp_path / "outside.csv"
    outside.write_bytes((folder / "synthetic.csv").read_bytes())  # same bytes today, anything tomorrow
    (folder / "synthetic.csv").unlink()
    (folder / "synthetic.csv").symlink_to(outside)
    result = verify(reg, run_id)
    assert not result.ok and any("symbolic link" in p for p in result.problems), result.problems


@pytest.mark.parametrize("name", ["../outside.csv", "/etc/hostname", "sub/synthetic.csv"])
def test_a_release_record_naming_files_outside_the_folder_is_flagged(reg, tmp_path, name):
    run_id = _released(reg, tmp_path)
    folder = tmp_path / "releases" / run_id
    target = Path(name) if name.startswith("/") else folder / name
    if not name.startswith("/"):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("age,sex\n1,male\n")
    again = _reseal_folder(reg, run_id, folder, {name: target})
    result = verify(again, run_id)
    assert not result.ok and any("outside the release folder" in p for p in result.problems), result.problems


def _edit_manifest_and_record(reg, tmp_path, edit) -> tuple[Registry, str]:
    """Release a run, edit its release manifest with `edit`, and rewrite the registry's
    record of the manifest's hash to match (what an attacker with write access can do)."""
    run_id = _released(reg, tmp_path)
    folder = tmp_path / "releases" / run_id
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return _rewrite_release_row(reg, run_id, manifest_sha256=sha256_file(folder / "manifest.json")), run_id


def test_a_manifest_listing_other_files_than_the_record_is_flagged(reg, tmp_path):
    again, run_id = _edit_manifest_and_record(
        reg, tmp_path, lambda m: m["files"].update({"../../real.csv": {"sha256": "0" * 64, "bytes": 1}}))
    result = verify(again, run_id)
    assert not result.ok and any("manifest" in p for p in result.problems), result.problems


def test_a_manifest_head_not_in_the_chain_is_flagged(reg, tmp_path):
    again, run_id = _edit_manifest_and_record(reg, tmp_path, lambda m: m.update(registry_head="ab" * 32))
    result = verify(again, run_id)
    assert not result.ok and any("registry_head" in p for p in result.problems), result.problems


def _swap_after_publishs_check(monkeypatch, swap) -> list[str]:
    """Let publish's own check of the staged files pass, then run `swap(staged)` (the
    attacker's edit in the window before the copy); returns the checked run ids."""
    real_check = release_mod._check_staged
    calls: list[str] = []

    def check_then_swap(registry, rid, **kwargs):
        staged = real_check(registry, rid, **kwargs)
        calls.append(rid)
        if len(calls) == 2:  # publish's own check passed; the attacker swaps the file now
            swap(staged)
        return staged

    monkeypatch.setattr(release_mod, "_check_staged", check_then_swap)
    return calls


def test_staged_data_swapped_between_the_check_and_the_copy_is_not_released(reg, tmp_path, monkeypatch):
    run_id = stage_run(reg, tmp_path)
    calls = _swap_after_publishs_check(
        monkeypatch, lambda staged: Path(staged["synthetic"]).write_text("age,sex\n1,male\n"))
    with pytest.raises(Exception, match="changed"):
        approve(reg, run_id, reviewer=CONFIG.find("bob"), reason=REASON)
    assert len(calls) == 2
    assert not (tmp_path / "releases").exists() or not any((tmp_path / "releases").iterdir())


def test_a_report_swapped_after_the_check_is_not_read_into_the_release(reg, tmp_path, monkeypatch):
    run_id = stage_run(reg, tmp_path)

    def lower_the_spend(staged):
        path = Path(staged["report"])
        doc = json.loads(path.read_text())
        doc["privacy"]["epsilon_spent"] = 0.001
        path.write_text(json.dumps(doc))

    _swap_after_publishs_check(monkeypatch, lower_the_spend)
    with pytest.raises(Exception, match="changed"):
        approve(reg, run_id, reviewer=CONFIG.find("bob"), reason=REASON)
    assert not (tmp_path / "releases").exists() or not any((tmp_path / "releases").iterdir())


# ---------------------------------------------------------------------------- identities and keys
@pytest.mark.parametrize("owner", ["BOB", "Bob", "ｂｏｂ", "bob\u200b", "bob@example.org"])
def test_a_reviewer_cannot_approve_a_job_they_own_under_a_variant_of_their_name(owner):
    from reports.registry import RunRecord
    bob = ReviewerConfig.from_dict({"reviewers": [{"name": "bob", "password": hash_password("bob-password-1"),
                                                   "email": "Bob@Example.org"}]}).find("bob")
    run = RunRecord(run_id="r", job_name="j", idempotency_key="k", attempt=1, run_by="alice", owner=owner,
                    created_at="2026-01-01T00:00:00Z", spec={})
    assert four_eyes_problem(run, bob) is not None
    other = RunRecord(run_id="r", job_name="j", idempotency_key="k", attempt=1, run_by="alice", owner="olivia",
                      created_at="2026-01-01T00:00:00Z", spec={})
    assert four_eyes_problem(other, bob) is None  # control


@pytest.mark.parametrize("account", ["bob", "Bob", "BOB", "ｂｏｂ"])
def test_the_runner_cannot_approve_their_own_run_under_a_variant_of_their_account(reg, tmp_path, account):
    run_id = stage_run(reg, tmp_path, run_by=account)
    with pytest.raises(AccessDenied, match="four-eyes"):
        approve(reg, run_id, reviewer=CONFIG.find("bob"), reason=REASON)
    assert approve(reg, run_id, reviewer=CONFIG.find("carol"), reason=REASON) == "released"  # control


@pytest.mark.parametrize("display", ["bob", "Bob", "ｂｏｂ", "b\u200bob"])
def test_a_display_name_only_ever_adds_to_who_is_excluded(display):
    from reports.registry import RunRecord
    run = RunRecord(run_id="r", job_name="j", idempotency_key="k", attempt=1, run_by="svc-batch", owner=None,
                    created_at="2026-01-01T00:00:00Z", spec={})
    assert four_eyes_problem(run, CONFIG.find("bob"), runner_display=display) is not None
    assert four_eyes_problem(run, CONFIG.find("carol"), runner_display=display) is None  # control


def test_one_key_listed_under_two_names_is_refused():
    key = public_key_line(KEYS["bob"])
    data = {"reviewers": [{"name": "bob", "password": hash_password(PASSWORDS["bob"]), "public_key": key},
                          {"name": "robert", "password": hash_password(PASSWORDS["bob"]), "public_key": key}]}
    with pytest.raises(ReviewerConfigError, match="same public_key"):
        ReviewerConfig.from_dict(data)
    with pytest.raises(ReviewerConfigError, match="listed twice"):
        ReviewerConfig.from_dict({"reviewers": [data["reviewers"][0], {**data["reviewers"][0], "name": "BOB"}]})


def test_one_email_under_two_names_is_refused():
    a = {"name": "bob", "email": "bob@example.org", "public_key": public_key_line(KEYS["bob"])}
    b = {"name": "carol", "email": "BOB@example.org", "public_key": public_key_line(KEYS["carol"])}
    with pytest.raises(ReviewerConfigError, match="e-mail address of 'bob'"):
        ReviewerConfig.from_dict({"reviewers": [a, b]})
    ReviewerConfig.from_dict({"reviewers": [a, {**b, "email": "carol@example.org"}]})  # control


def test_one_key_under_two_names_counts_as_one_approval(reg, tmp_path):
    """Even a reviewers file written before the check above cannot give one person two votes."""
    policy = _policy_file(tmp_path, "two", reviewers_required=2)
    run_id = stage_run(reg, tmp_path, policy=str(policy))
    key = public_key_line(KEYS["bob"])
    twice = ReviewerConfig(reviewers=(CONFIG.find("bob"), CONFIG.find("bob").__class__(
        name="robert", password=CONFIG.find("bob").password, public_key=key)))
    assert release_mod.approve(reg, run_id, reviewer=twice.reviewers[0], reason=REASON, key=KEYS["bob"],
                               config=twice) == "pending_review"
    with pytest.raises(AccessDenied, match="cannot be released"):
        release_mod.approve(reg, run_id, reviewer=twice.reviewers[1], reason=REASON, key=KEYS["bob"], config=twice)


SMALL_ORDER = [bytes([1]) + bytes(31), bytes(32), bytes(31) + b"\x80",
               bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
               bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
               bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")]


@pytest.mark.parametrize("raw", SMALL_ORDER, ids=range(len(SMALL_ORDER)))
def test_a_small_order_public_key_is_refused(raw):
    line = "ed25519:" + base64.b64encode(raw).decode()
    with pytest.raises(ValueError):
        parse_public_key(line)
    # what such a key would allow: one signature that "verifies" for every payload
    assert not signature_valid(line, {"any": "payload"}, base64.b64encode(bytes([1]) + bytes(63)).decode())


def test_a_real_key_still_parses():
    parse_public_key(public_key_line(Ed25519PrivateKey.generate()))  # control


@pytest.mark.parametrize("bad", ["ed25519:" + base64.b64encode(bytes(31) + b"\x01").decode()[:-4],
                                 "rsa:AAAA", "ed25519:" + base64.b64encode(b"x" * 33).decode(),
                                 "ed25519:" + base64.b64encode(b"x" * 32).decode() + "\n"])
def test_a_wrong_key_type_or_length_is_refused(bad):
    with pytest.raises(ValueError):
        parse_public_key(bad)


def test_a_malleated_signature_does_not_verify(reg, tmp_path):
    run_id = _released(reg, tmp_path)
    event = next(e for e in reg.events(run_id) if e.step == "review")
    sig = base64.b64decode(event.details["signature"])
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little") + order
    malleated = base64.b64encode(sig[:32] + s.to_bytes(32, "little")).decode()
    public = CONFIG.find("bob").public_key
    assert signature_valid(public, event.details["payload"], event.details["signature"])  # control
    assert not signature_valid(public, event.details["payload"], malleated)


# ---------------------------------------------------------------------------- auto-release
def _auto_run(reg, tmp_path) -> tuple[str, str]:
    """What a runner can do without tampering at all: name their own policy that allows
    auto-release (or rewrite a fresh run's decision to one, recomputing the chain)."""
    policy = _policy_file(tmp_path, "mine", auto_release=True)
    run_id = stage_run(reg, tmp_path, policy=str(policy), key="auto")
    return run_id, reg.decision(run_id).policy_sha256


def test_an_auto_release_under_a_policy_the_reviewers_file_does_not_list_is_refused(reg, tmp_path):
    run_id, digest = _auto_run(reg, tmp_path)
    reg.add_event(run_id, status="approved", step="auto_release", message="approved automatically",
                  details={"policy": "mine", "policy_sha256": digest,
                           "decision_sha256": release_mod.sha256_json(reg.decision(run_id).decision)})
    with pytest.raises(AccessDenied, match="auto_release_policies"):
        release_mod.publish(reg, run_id, released_by="policy-auto-release", config=CONFIG)
    assert not (tmp_path / "releases").exists()


def test_an_auto_release_the_reviewers_file_allows_publishes_and_verifies(reg, tmp_path, monkeypatch):
    run_id, digest = _auto_run(reg, tmp_path)  # control
    allowed = ReviewerConfig.from_dict({**CONFIG.to_dict(), "auto_release_policies": [digest]})
    monkeypatch.setattr(release_mod, "_config", lambda config: allowed if config is None else config)
    assert release_mod.auto_release(reg, run_id, policy_name="mine") == "released"
    assert release_mod.verify(reg, run_id, allowed).ok
    result = release_mod.verify(reg, run_id, CONFIG)  # an auditor whose file allows no auto-release
    assert not result.ok and any("auto_release_policies" in p for p in result.problems)


def test_auto_release_policies_must_be_hashes():
    with pytest.raises(ReviewerConfigError, match="auto_release_policies"):
        ReviewerConfig.from_dict({**CONFIG.to_dict(), "auto_release_policies": ["mine"]})


# ---------------------------------------------------------------------------- truncation
def test_cutting_the_newest_events_is_seen_only_against_a_kept_head(tmp_path):
    """Cutting the tail (here a signed rejection) leaves a consistent chain: no signature
    comes after it. The documented mitigation is a head kept outside the registry."""
    from typer.testing import CliRunner
    from synthkit.cli import app
    cli = CliRunner()
    db = Registry(tmp_path / "registry.db")
    run_id = stage_run(db, tmp_path)
    reject(db, run_id, reviewer=CONFIG.find("carol"), reason="pair trends too weak")
    out = cli.invoke(app, ["releases", "audit", "--registry", db.url])
    assert out.exit_code == 0, out.output
    kept = out.output.split("head ")[-1].strip()
    _drop_triggers(db)
    _sql(db, "DELETE FROM synthkit_events WHERE step = 'review'", "DELETE FROM synthkit_reviews")
    _hide(db)
    assert cli.invoke(app, ["releases", "audit", "--registry", db.url]).exit_code == 0  # the cut alone passes
    out = cli.invoke(app, ["releases", "audit", "--registry", db.url, "--expect-head", kept])
    assert out.exit_code == 4 and "expected head" in out.output


# ---------------------------------------------------------------------------- the dashboard
def test_the_dashboard_does_not_show_or_approve_an_edited_report(tmp_path, monkeypatch):
    from test_app import _app, _sign_in, _texts, env  # noqa: F401
    e = env.__wrapped__(tmp_path, monkeypatch)
    run_id = stage_run(e["reg"], tmp_path, run_by="alice")
    path = Path(e["reg"].artifacts(run_id)["report"])
    doc = json.loads(path.read_text())
    doc["data"]["n_synthetic"] = 12345  # what the reviewer would read is not what the gate read
    path.write_text(json.dumps(doc))
    at = _sign_in(_app(), "bob")
    assert not at.exception, at.exception
    assert "changed after the job wrote it" in _texts(at)
    assert len(at.tabs) == 0 and at.button(key=f"approve_{run_id}").disabled
    assert e["reg"].status(run_id) == "pending_review"


def test_the_dashboard_binds_the_verdict_to_the_report_that_was_shown(tmp_path, monkeypatch):
    from test_app import _app, _sign_in, _texts, env  # noqa: F401
    e = env.__wrapped__(tmp_path, monkeypatch)
    reg = e["reg"]
    run_id = stage_run(reg, tmp_path, run_by="alice")
    at = _sign_in(_app(), "bob")
    assert len(at.tabs) == 8  # control: the staged report is shown
    # the runner re-stages another report (same figures, other bytes) while bob reads
    staged = reg.artifacts(run_id)
    other = tmp_path / "other-report.json"
    other.write_text(json.dumps(json.loads(Path(staged["report"]).read_text()), indent=4))
    reg.add_event(run_id, step="staged", details={"report": str(other), "report_sha256": sha256_file(other)})
    at.text_area(key=f"reason_{run_id}").input(REASON)
    at.button(key=f"approve_{run_id}").click()
    at.run()
    assert not at.exception, at.exception
    assert "changed since it was shown" in _texts(at)
    assert reg.status(run_id) == "pending_review" and reg.reviews(run_id) == []
