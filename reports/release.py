"""Approval, rejection and the release bundle.

Two reports. The full evaluation report (report.json / report.html: exact train and
holdout counts, real-data marginals, DCR, exact-copy rate, membership-inference AUC, bias
figures, mode shares) and the gate decision with its observed values are computed on the
real data WITHOUT differential privacy. They stay INTERNAL: in the staged run and the
registry, for reviewers. They are never copied into the release folder.

A release bundle is written ONLY when a run is approved (by enough distinct reviewers, or
by a policy that allows auto-release after every check passed) AND that approval can be
proven: every verdict is an Ed25519 signature by the reviewer (reports/signing.py) over
the run, the verdict, the time and the hashes of what was judged, stored in the
registry's hash chain; `release_authority` checks the chain, each signature against the
reviewers file's public keys, four-eyes and roles, and recomputes the gate, so a row
INSERTed into the registry or a status edited by hand releases nothing. An auto-release
is recorded as such, and only a policy that allows it makes it valid. It is a folder
named after the run that holds public or DP facts only:

    synthetic.csv|parquet   the synthetic data that was reviewed (byte for byte)
    ledger.json             the DP ledger: budget, epsilon spent, unit, one row per mechanism
    schema.json             the model's schema (declared public facts), when the run staged
                            a model bundle
    data_card.md / .json    what the data is, the DP count of privacy units, epsilon and
                            delta, unit, policy, approvals (who, when, verdict), model class,
                            number of synthetic rows, hashes of the files above, and the
                            statement that the release decision read non-DP checks
    manifest.json           SHA-256 and size of every file above, the signed approvals
                            (signature, key id, chain event) and the chain head

Nothing in the folder is copied from a real-data metric: no exact count, no observed
value of a gate check, no reviewer's free-text reason (a reason may quote a figure from
the internal report; it stays in the registry).

The folder is assembled under a temporary name and renamed when complete, so a crash
leaves no partial release; the registry records the manifest's hash and every file's
hash, so `verify` detects a modified, missing or added file even if the manifest itself
was rewritten. What was reviewed is what is released: the staged synthetic data and
report are re-hashed against the hashes recorded when the job staged them, before the
approval is accepted and again before the release is written, and a staged model bundle
must be the one the report evaluated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reports.gate import GateDecision
from reports.model import Report
from reports.registry import Registry, RegistryError, RegistrySnapshot, RunRecord, now_utc
from reports.review import AccessDenied, Reviewer, ReviewerConfig, four_eyes_problem, identity_key
from reports.signing import key_id, public_key_line, sha256_json, sha256_text, sign, signature_valid
from synthkit.errors import ArtifactError, SynthkitError
from synthkit.partials import locked_partial
from synthkit.schema import Schema

logger = logging.getLogger(__name__)

RELEASE_FORMAT = "synthkit-release"
RELEASE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MIN_REASON = 5
AUTO_REVIEWER = "policy-auto-release"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    run_id: str
    path: str
    ok: bool
    problems: tuple[str, ...]
    n_files: int
    # not an integrity problem: e.g. a release written by an earlier synthkit that still
    # carries the internal report (real-data figures); say so, and let a person decide
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- review actions
def approve(registry: Registry, run_id: str, *, reviewer: Reviewer, reason: str, key: Ed25519PrivateKey,
            config: ReviewerConfig | None = None, expect_report_sha256: str | None = None) -> str:
    """Record `reviewer`'s SIGNED approval; write the release when enough reviewers approved.
    `key` is the reviewer's private key; its public half must be the one the reviewers file
    lists for them. Returns the run's new status ("pending_review" while more approvals are
    needed, "released" once the bundle is written)."""
    reason = _check_reason(reason)
    config = _config(config)
    run = registry.run(run_id)
    problem = four_eyes_problem(run, reviewer, runner_display=runner_display(registry, run_id))
    if problem:
        raise AccessDenied(problem)
    decision = registry.decision(run_id)
    if decision is None or not decision.passed:
        raise AccessDenied(f"run {run_id!r} did not pass its release gate; it cannot be approved "
                           "(fix the job and run it again)")
    _check_role(reviewer, decision.decision)
    gate = gate_problems(registry, run_id) + policy_name_problems(registry, run_id)
    if gate:
        raise AccessDenied(f"run {run_id!r} cannot be approved: {gate[0]}")
    signer = _signer(config, reviewer, key)
    attest = attestation(registry, run_id)  # the reviewed bytes are still the staged bytes
    if expect_report_sha256 is not None and attest.get("report_sha256") != expect_report_sha256:
        raise AccessDenied(f"run {run_id!r}: the staged report changed since it was shown to you; read it again "
                           "before approving")
    needed = int(decision.decision.get("reviewers_required", 1))
    status = registry.add_review(run_id, reviewer=reviewer.name, verdict="approve", reason=reason,
                                 approvals_needed=needed, attest=attest, sign=signer,
                                 ignore_events=forged_events(registry, run_id, config))
    logger.info("run %s approved by %s (%d approval(s) needed)", run_id, reviewer.name, needed)
    if status != "approved":
        return status
    publish(registry, run_id, released_by=reviewer.name, config=config)
    return "released"


def reject(registry: Registry, run_id: str, *, reviewer: Reviewer, reason: str, key: Ed25519PrivateKey,
           config: ReviewerConfig | None = None) -> str:
    """Record a SIGNED rejection; the run is final (a new run is needed). Any configured
    reviewer with a key may reject, including the job's owner withdrawing their own candidate."""
    reason = _check_reason(reason)
    config = _config(config)
    signer = _signer(config, reviewer, key)
    status = registry.add_review(run_id, reviewer=reviewer.name, verdict="reject", reason=reason,
                                 attest=attestation(registry, run_id, check_files=False), sign=signer,
                                 ignore_events=forged_events(registry, run_id, config))
    logger.info("run %s rejected by %s", run_id, reviewer.name)
    return status


def auto_release(registry: Registry, run_id: str, *, policy_name: str) -> str:
    """Release without a person: only for a policy with auto_release whose gate passed. The
    event says so and names the decision it rests on; `publish` and `verify` re-check it."""
    decision = registry.decision(run_id)
    if decision is None or not decision.passed or not decision.decision.get("auto_release"):
        raise AccessDenied(f"run {run_id!r}: auto-release needs a passed gate under a policy that allows it")
    named = policy_name_problems(registry, run_id)
    if named:
        raise AccessDenied(f"run {run_id!r} cannot be auto-released: {named[0]}")
    registry.add_event(run_id, status="approved", step="auto_release",
                       message=f"approved automatically by policy {policy_name!r}", expect=("pending_review",),
                       details={"policy": policy_name, "policy_sha256": decision.policy_sha256,
                                "decision_sha256": sha256_json(decision.decision)})
    publish(registry, run_id, released_by=AUTO_REVIEWER)
    return "released"


def forged_events(registry: Registry, run_id: str, config: ReviewerConfig | None) -> dict[int, str]:
    """The run's events that `trail_check` finds forged and that no reviewer's key vouches
    for (event number -> why): a review and `publish` pass over them (a forged "approved" or
    "released" event must not stop the genuine verdict), and `releases audit` and `verify`
    keep flagging them. A verdict whose signature verifies against the named reviewer's
    listed key and that sits where it was signed (run and previous hash) is a genuine
    verdict, however stale or ineligible: it is not passed over, and it blocks as before
    (fail closed; e.g. an approval of data re-staged since)."""
    flagged = trail_check(registry, config, run_id=run_id).forged.get(run_id, [])
    if not flagged:
        return {}
    events = {e.seq: e for e in registry.events(run_id)}
    out: dict[int, str] = {}
    for seq, why in flagged:
        e = events.get(seq)
        payload = e.details.get("payload") if e is not None else None
        signature = e.details.get("signature") if e is not None else None
        reviewer = config.find(str(payload.get("reviewer"))) if (
            config is not None and config.configured and isinstance(payload, dict)) else None
        genuine = (e is not None and e.step == "review" and isinstance(payload, dict) and isinstance(signature, str)
                   and payload.get("run_id") == run_id and payload.get("prev_hash") == e.prev_hash
                   and reviewer is not None and bool(reviewer.public_key)
                   and signature_valid(reviewer.public_key, payload, signature))
        # a rejection, forged or not, is never passed over: it can only block a release (the
        # safe side), while passing over a genuine one whose reviewer has since left the
        # reviewers file or rotated their key would release a rejected run (review R, s12)
        rejects = e is not None and (e.status == "rejected" or (
            isinstance(payload, dict) and str(payload.get("verdict", "")).lower().startswith("reject")))
        if not genuine and not rejects:
            out[seq] = why
    return out


def _config(config: ReviewerConfig | None) -> ReviewerConfig:
    return config if config is not None else ReviewerConfig.load()


def _signer(config: ReviewerConfig, reviewer: Reviewer, key: Ed25519PrivateKey) -> Any:
    """The signing callback for the registry, after checking that `key` is the key the
    reviewers file lists for `reviewer` (else the verdict would never verify)."""
    listed = config.find(reviewer.name)
    if listed is None or not listed.public_key:
        raise AccessDenied(f"reviewer {reviewer.name} has no public_key in the reviewers file, so their verdict "
                           "could not be verified; run `synthkit reviewers key NAME --file reviewers.yaml` and "
                           "have the file's owner add the printed line")
    if public_key_line(key) != listed.public_key:
        raise AccessDenied(f"this signing key is not the one the reviewers file lists for {reviewer.name} "
                           f"(key {key_id(public_key_line(key))}, listed {key_id(listed.public_key)}); use your own key")
    kid = key_id(listed.public_key)
    return lambda payload: {"signature": sign(key, payload), "key_id": kid}


def _check_role(reviewer: Reviewer, decision: dict[str, Any]) -> None:
    role = decision.get("reviewer_role")
    if role and role not in reviewer.roles:
        raise AccessDenied(f"the policy requires a reviewer with role {role!r}; {reviewer.name} has "
                           f"{list(reviewer.roles) or 'none'}")


def runner_display(registry: Registry | RegistrySnapshot, run_id: str) -> str | None:
    """The display name the runner gave (SYNTHKIT_USER); a label, never an identity."""
    claim = next((e for e in registry.events(run_id) if e.step == "claim" and e.details.get("record") == "run"),
                 None)
    value = claim.details.get("run_by_display") if claim else None
    return value if isinstance(value, str) else None


def attestation(registry: Registry, run_id: str, *, check_files: bool = True) -> dict[str, Any]:
    """The SHA-256 of everything a verdict judges: the report, the synthetic data, the model
    bundle the report evaluated and the gate decision (with its policy). A signature over
    these binds the verdict to those exact bytes."""
    staged = _check_staged(registry, run_id) if check_files else registry.artifacts(run_id)
    decision = registry.decision(run_id)
    bundle = None
    if check_files:
        bundle = Report.load(staged["report"]).model.get("manifest_sha256")
    return {"report_sha256": staged.get("report_sha256"), "synthetic_sha256": staged.get("synthetic_sha256"),
            "bundle_manifest_sha256": bundle,
            "decision_sha256": sha256_json(decision.decision) if decision else None,
            "policy_sha256": decision.policy_sha256 if decision else None}


# ---------------------------------------------------------------------------- authority
@dataclass(frozen=True, slots=True, kw_only=True)
class Authority:
    """Why a run may be released: signed approvals, or the policy's auto-release."""
    kind: str                               # "review" | "auto_release"
    approvals: tuple[dict[str, Any], ...]   # as written into the manifest (with signatures)
    # the staged paths and hashes this authority judged: publish releases exactly these,
    # never a later re-read of the registry (a staged event appended meanwhile)
    staged: dict[str, Any] = field(default_factory=dict, compare=False)
    decision_sha256: str | None = None      # the gate decision this authority rests on


def release_authority(registry: Registry, run_id: str, config: ReviewerConfig | None = None) -> Authority:
    """The authority to release `run_id`, or AccessDenied with one line saying what is missing
    or broken: the whole trail must verify (`Registry.audit`), the gate must have passed and
    recompute to the same decision, every verdict event must be a valid signature by an
    eligible reviewer (or the policy's recorded auto-release), the latest verdict must be an
    approval, and enough distinct reviewers must have approved."""
    authority, problems = _authority(registry, run_id, config)
    if problems or authority is None:
        first = problems[0] if problems else "no signed approval"
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise AccessDenied(f"run {run_id!r} cannot be released: {first}{more}")
    return authority


def _authority(registry: Registry, run_id: str, config: ReviewerConfig | None,
               released: bool = False) -> tuple[Authority | None, list[str]]:
    problems = [f"registry: {p}" for p in registry.audit()]
    run = registry.run(run_id)
    decision = registry.decision(run_id)
    if decision is None or not decision.passed:
        return None, problems + ["its release gate did not pass"]
    problems += gate_problems(registry, run_id)
    events = registry.events(run_id)
    reviews = {(r.reviewer, r.at): r for r in registry.reviews(run_id)}
    display = runner_display(registry, run_id)
    needed = int(decision.decision.get("reviewers_required", 1))
    staged = registry.artifacts(run_id)
    decision_sha = sha256_json(decision.decision)
    cfg: ReviewerConfig | None = None
    # verdict events `trail_check` finds forged count for nothing and, like a forged release
    # row, do not block the genuine authority; they are named only when it is lacking
    checked = config if config is not None else _config(None)
    forged = forged_events(registry, run_id, checked) if checked.configured and not released else {}
    passed_over: list[str] = []
    verdicts: list[tuple[str, dict[str, Any]]] = []   # ("approve" | "reject" | "auto", approval entry)
    signers: set[str] = set()   # public keys of the approvals: one person listed twice is one approval
    judged = False
    for e in events:
        if e.step == "staged" and judged:
            problems.append(f"event #{e.seq} stages files after a verdict was given; a verdict judges what was "
                            "staged before it (re-staged data needs a new run)")
            continue
        if e.seq in forged:
            passed_over.append(f"event #{e.seq} {forged[e.seq]}")
            continue
        if e.step in ("review", "auto_release"):
            judged = True
        if e.step == "release" and e.status == "released" and e.details.get("record") in ("release", "release_event"):
            continue  # a release, not a verdict: `trail_check` and `verify` check release records
        if not (e.step in ("review", "auto_release") or e.status in ("approved", "rejected", "released")):
            continue
        where = f"event #{e.seq}"
        if e.step == "auto_release":
            ok = (e.status == "approved" and decision.decision.get("auto_release") is True
                  and e.details.get("decision_sha256") == decision_sha)
            if not ok:
                problems.append(f"{where} claims an auto-release that the run's policy does not allow")
                continue
            if cfg is None:
                cfg = _config(config)
            if cfg.configured and decision.policy_sha256 not in cfg.auto_release_policies:
                problems.append(f"{where} auto-releases under policy {decision.policy_name!r} (SHA-256 "
                                f"{decision.policy_sha256[:12]}…), which the reviewers file does not list under "
                                "auto_release_policies")
                continue
            verdicts.append(("auto", {"reviewer": AUTO_REVIEWER, "at": e.at, "event_hash": e.hash,
                                      "decision": f"approve (automatic: policy {decision.policy_name!r} allows "
                                                  "auto-release and every check passed)"}))
            continue
        payload, signature = e.details.get("payload"), e.details.get("signature")
        if e.step != "review" or not isinstance(payload, dict) or not signature:
            problems.append(f"{where} sets the run {e.status or 'reviewed'} without a signed verdict "
                            "(written by hand?)")
            continue
        if cfg is None:
            cfg = _config(config)
        if not cfg.configured:
            problems.append("no reviewers file to check the verdicts' signatures against; pass --reviewers or "
                            "set $SYNTHKIT_REVIEWERS")
            break
        name = str(payload.get("reviewer"))
        verdict = payload.get("verdict")
        reviewer = cfg.find(name)
        row = reviews.get((name, payload.get("at")))
        status_ok = e.status == "rejected" if verdict == "reject" else e.status in (None, "approved")
        if payload.get("run_id") != run_id or payload.get("prev_hash") != e.prev_hash or not status_ok or \
                verdict not in ("approve", "reject"):
            problems.append(f"{where}: the signed verdict does not match the event it is stored in")
            continue
        if reviewer is None or not reviewer.public_key:
            problems.append(f"{where}: {name} is not a reviewer with a public key in the reviewers file")
            continue
        if not signature_valid(reviewer.public_key, payload, signature):
            problems.append(f"{where}: the signature of {name}'s verdict does not verify")
            continue
        if row is None or row.verdict != verdict or sha256_text(row.reason) != payload.get("reason_sha256"):
            problems.append(f"{where}: the review row of {name} differs from the verdict {name} signed")
            continue
        if verdict == "reject":
            verdicts.append(("reject", {"reviewer": name}))
            continue
        blocked = four_eyes_problem(run, reviewer, runner_display=display)
        role = decision.decision.get("reviewer_role")
        attest = payload.get("attest") or {}
        if blocked:
            problems.append(f"{where}: {blocked}")
        elif role and role not in reviewer.roles:
            problems.append(f"{where}: {name} lacks the role {role!r} the policy requires")
        elif (attest.get("report_sha256") != staged.get("report_sha256")
              or attest.get("synthetic_sha256") != staged.get("synthetic_sha256")
              or attest.get("decision_sha256") != decision_sha):
            problems.append(f"{where}: {name} signed other report, data or gate decision hashes than the run's")
        else:
            signers.add(str(reviewer.public_key))
            verdicts.append(("approve", {"reviewer": name, "at": payload.get("at"), "decision": "approve",
                                         "event_hash": e.hash, "key_id": e.details.get("key_id"),
                                         "signature": signature, "attest": attest}))
    if any(kind == "reject" for kind, _ in verdicts):
        who = next(entry["reviewer"] for kind, entry in verdicts if kind == "reject")
        problems.append(f"it was rejected by {who} (a signed rejection is final)")
    if problems:
        return None, problems + passed_over
    autos = [entry for kind, entry in verdicts if kind == "auto"]
    approvals = [entry for kind, entry in verdicts if kind == "approve"]
    if autos and not approvals:
        return Authority(kind="auto_release", approvals=tuple(autos), staged=staged,
                         decision_sha256=decision_sha), []
    distinct = {identity_key(a["reviewer"]) for a in approvals}
    if len(signers) < len(distinct):
        distinct = signers
    if not approvals:
        return None, passed_over + ["it has no signed approval by an eligible reviewer"]
    if len(distinct) < needed:
        return None, passed_over + [f"it has {len(distinct)} signed approval(s) of the {needed} its policy requires"]
    for line in passed_over:
        logger.info("run %s: %s; it counts for nothing and the verified approvals stand", run_id, line)
    return Authority(kind="review", approvals=tuple(approvals), staged=staged, decision_sha256=decision_sha), []


# ---------------------------------------------------------------------------- verified status
@dataclass(frozen=True, slots=True, kw_only=True)
class TrailCheck:
    """Each run's status as its VERIFIED events give it, and the events that do not verify.

    A chained event proves only that it was written before the next one, not who wrote it:
    whoever can write the database can append an "approved" or "released" event with a
    correct hash. So the status every command shows is replayed from the events, counting a
    verdict only when it is a signed verdict that matches its event and review row (and,
    with a reviewers file, whose signature verifies against that reviewer's public key,
    by an eligible reviewer), and a release only when its release folder's manifest.json
    still hashes to the recorded SHA-256 after a verified approval. Everything else is
    listed in `forged` (event number and why; never a data value) and changes nothing.
    `signatures_checked` is False when no reviewers file was given: then the signatures'
    presence and form were checked but not their keys."""
    statuses: dict[str, str]
    forged: dict[str, list[tuple[int, str]]]
    signatures_checked: bool


def trail_check(registry: Registry | RegistrySnapshot, config: ReviewerConfig | None, *, run_id: str | None = None,
                hashes: FileHashes | None = None) -> TrailCheck:
    """`TrailCheck` of every run (or of `run_id`): see the class. The rows are read once
    (`Registry.snapshot`, unless a snapshot is given) and each release manifest is hashed
    once (`hashes`), however many runs there are."""
    checked = config is not None and config.configured
    view = registry.snapshot(run_id) if isinstance(registry, Registry) else registry
    hashes = hashes if hashes is not None else FileHashes()
    by_run: dict[str, list[Any]] = {}
    for e in view.events(run_id):
        by_run.setdefault(e.run_id, []).append(e)
    statuses: dict[str, str] = {}
    forged: dict[str, list[tuple[int, str]]] = {}
    for rid, events in by_run.items():
        statuses[rid], bad = _replay(view, rid, events, config if checked else None, hashes)
        if bad:
            forged[rid] = bad
    return TrailCheck(statuses=statuses, forged=forged, signatures_checked=checked)


def release_record_findings(registry: Registry | RegistrySnapshot, run_id: str, *,
                            hashes: FileHashes | None = None) -> list[tuple[int | None, Any, str | None]]:
    """Every release recorded for the run, with its recording event and why it does not
    verify (None: its folder's manifest.json hashes to the recorded SHA-256 and names the
    run). `verify` is the full check; this is what decides whether a run counts as
    released, so a forged release row neither reads as released nor blocks the real one.

    A release is its content, not its path: when the recorded folder is gone, a folder
    beside it or in the run's releases directory whose manifest.json hashes to the
    recorded SHA-256 (and names the run) IS the release, moved or renamed; the record is
    returned with that path (`relocated_release`). A manifest's hash covers every file's
    SHA-256, so `verify` still checks every byte there."""
    hashes = hashes if hashes is not None else FileHashes()
    out: list[tuple[int | None, Any, str | None]] = []
    for seq, rec in registry.releases(run_id):
        folder = Path(rec.path)
        problem: str | None = None
        if seq is not None and (folder.is_symlink() or not folder.is_dir()):
            moved = relocated_release(registry, run_id, rec, hashes=hashes)
            if moved is not None:
                rec, folder = dataclasses.replace(rec, path=str(moved)), moved
        mf = folder / MANIFEST
        if seq is None:
            problem = "no chained event records it"
        elif folder.is_symlink() or not folder.is_dir():
            problem = (f"its release folder is missing from {rec.path} and no folder beside it holds its manifest "
                       "(moved elsewhere or deleted?)")
        elif not mf.is_file() or mf.is_symlink():
            problem = "its release folder has no manifest.json"
        elif hashes(mf) != rec.manifest_sha256:
            problem = "its manifest.json does not hash to the recorded SHA-256"
        else:
            manifest = _read_json(mf)
            if not isinstance(manifest, dict) or manifest.get("run_id") != run_id:
                problem = "its manifest.json is not this run's"
        out.append((seq, rec, problem))
    return out


def relocated_release(registry: Registry | RegistrySnapshot, run_id: str, rec: Any, *,
                      hashes: FileHashes | None = None) -> Path | None:
    """Where the release `rec` lives now that its recorded folder is gone: the one folder,
    among the folders beside the recorded path and in the run's releases directory (one
    level, no symbolic links), whose manifest.json hashes to the recorded SHA-256 and
    names the run; None when there is none. Only a missing folder is looked for: a folder
    still at the recorded path is judged there, so an edited release cannot hide behind an
    intact copy elsewhere."""
    hashes = hashes if hashes is not None else FileHashes()
    roots: list[Path] = [Path(rec.path).parent]
    where = registry.artifacts(run_id).get("releases_dir")
    if where and Path(str(where)) not in roots:
        roots.append(Path(str(where)))
    for root in roots:
        try:
            children = sorted(root.iterdir()) if root.is_dir() and not root.is_symlink() else []
        except OSError:
            continue
        for child in children:
            mf = child / MANIFEST
            if child.is_symlink() or not child.is_dir() or mf.is_symlink() or not mf.is_file():
                continue
            if hashes(mf) == rec.manifest_sha256:
                manifest = _read_json(mf)
                if isinstance(manifest, dict) and manifest.get("run_id") == run_id:
                    return child
    return None


def same_release_elsewhere(registry: Registry, run_id: str,
                           found: list[tuple[int | None, Any, str | None]]) -> tuple[int, Any] | None:
    """A chained release of the run whose folder cannot be found but whose recorded files
    hold the synthetic data this run would release now (the SHA-256 the job staged and
    the approvers signed): the same release, moved where synthkit does not look or
    deleted. Publishing again would release the reviewed data a second time under a new
    manifest, as if new; `publish` refuses instead. A forged row that does not name that
    content (the forgeries of test_s12_forged_registry) still blocks nothing; one that
    copies it can only stop a publish (fail closed)."""
    want = registry.artifacts(run_id).get("synthetic_sha256")
    for seq, rec, problem in found:
        if seq is None or problem is None or not want:
            continue
        if any(name.startswith("synthetic") and digest == want for name, digest in rec.files.items()):
            return seq, rec
    return None


class FileHashes:
    """SHA-256 of files, each file read once for the lifetime of this object: one command
    (`releases list`, `releases audit`) that meets a file again (a manifest judged for the
    status and again for the audit) does not re-read it. Scoped to one command on
    purpose: a longer-lived cache would answer for a file edited since."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}
        self.reads = 0   # files actually read (benchmarks/bench_releases_list.py counts them)

    def __call__(self, path: Path) -> str:
        key = str(path)
        if key not in self._seen:
            self._seen[key] = sha256_file(path)
            self.reads += 1
        return self._seen[key]


def _replay(registry: Registry | RegistrySnapshot, run_id: str, events: list[Any],
            config: ReviewerConfig | None, hashes: FileHashes) -> tuple[str, list[tuple[int, str]]]:
    decision = registry.decision(run_id)
    needed = int(decision.decision.get("reviewers_required", 1)) if decision else 1
    releases = {seq: problem for seq, _rec, problem in release_record_findings(registry, run_id, hashes=hashes)
                if seq is not None}
    status, approvers, bad = "running", set(), []
    context: dict[str, Any] = {}
    for e in events:
        if e.step == "release" and e.status == "released":
            if e.seq not in releases:
                bad.append((e.seq, "sets the run released without a release record"))
            elif releases[e.seq] is not None:
                bad.append((e.seq, f"records a release that does not verify: {releases[e.seq]}"))
            elif status != "approved":
                bad.append((e.seq, f"records a release of a run that is {status} by its verified events"))
            else:
                status = "released"
            continue
        if e.step in ("review", "auto_release") or e.status in ("approved", "rejected", "released"):
            problem, kind, who = _verdict_problem(registry, run_id, e, config, decision, context)
            if problem is not None:
                bad.append((e.seq, problem))
            elif kind == "reject":
                status = "rejected" if status in ("pending_review", "approved") else status
            elif status == "pending_review":
                approvers.add(who)
                if kind == "auto" or len(approvers) >= needed:
                    status = "approved"
            continue
        if e.status is not None:
            if status in _STEPS_FROM.get(e.status, ()):
                status = e.status
            else:  # review R (s12) F4: a forged `pending_review` after a rejection reopened the review form
                bad.append((e.seq, f"sets the run {e.status} while it is {status}: a step the pipeline never takes"))
    return status, bad


# what a non-verdict event may move a run to, from which verified status: the claim starts it
# running, the gate moves a running run on, and a failure can stop any run not yet released
# (failing closed). Anything else (a run reopened for review after its rejection, or set
# running again) is listed as not verifying and counts for nothing.
_STEPS_FROM: dict[str, tuple[str, ...]] = {
    "running": ("running",),
    "pending_review": ("running",),
    "gate_rejected": ("running",),
    "failed": ("running", "pending_review", "gate_rejected", "approved", "rejected", "failed"),
}


def _verdict_problem(registry: Registry | RegistrySnapshot, run_id: str, e: Any, config: ReviewerConfig | None,
                     decision: Any, context: dict[str, Any]) -> tuple[str | None, str, str]:
    """(why the verdict event `e` does not verify or None, "approve" | "reject" | "auto",
    who: the approver's public key, or their name when no reviewers file is given)."""
    decision_sha = sha256_json(decision.decision) if decision is not None else None
    if e.step == "auto_release":
        if not (e.status == "approved" and decision is not None and decision.decision.get("auto_release") is True
                and e.details.get("decision_sha256") == decision_sha):
            return "claims an auto-release that the run's policy does not allow", "auto", ""
        if config is not None and decision.policy_sha256 not in config.auto_release_policies:
            return ("auto-releases under a policy the reviewers file does not list under auto_release_policies",
                    "auto", "")
        return None, "auto", AUTO_REVIEWER
    payload, signature = e.details.get("payload"), e.details.get("signature")
    if e.step != "review" or not isinstance(payload, dict) or not isinstance(signature, str) or not signature:
        return f"sets the run {e.status or 'reviewed'} without a signed verdict (written by hand?)", "", ""
    name, verdict = str(payload.get("reviewer")), payload.get("verdict")
    status_ok = e.status == "rejected" if verdict == "reject" else e.status in (None, "approved")
    if payload.get("run_id") != run_id or payload.get("prev_hash") != e.prev_hash or not status_ok or \
            verdict not in ("approve", "reject"):
        return "the signed verdict does not match the event it is stored in", "", ""
    if "reviews" not in context:
        context["reviews"] = {(r.reviewer, r.at): r for r in registry.reviews(run_id)}
    row = context["reviews"].get((name, payload.get("at")))
    if row is None or row.verdict != verdict or sha256_text(row.reason) != payload.get("reason_sha256"):
        return f"the review row of {name} differs from the verdict the event holds", "", ""
    if config is None:
        return None, str(verdict), identity_key(name)
    reviewer = config.find(name)
    if reviewer is None or not reviewer.public_key:
        return f"{name} is not a reviewer with a public key in the reviewers file", "", ""
    if not signature_valid(reviewer.public_key, payload, signature):
        return f"the signature of {name}'s verdict does not verify against {name}'s public key", "", ""
    if verdict == "reject":
        return None, "reject", str(reviewer.public_key)
    if "run" not in context:
        context["run"] = registry.run(run_id)
        context["display"] = runner_display(registry, run_id)
        context["staged"] = registry.artifacts(run_id)
    blocked = four_eyes_problem(context["run"], reviewer, runner_display=context["display"])
    role = decision.decision.get("reviewer_role") if decision is not None else None
    attest = payload.get("attest") or {}
    if blocked:
        return f"{name} may not approve this run: {blocked}", "", ""
    if role and role not in reviewer.roles:
        return f"{name} lacks the role {role!r} the policy requires", "", ""
    staged = context["staged"]
    if (attest.get("report_sha256") != staged.get("report_sha256")
            or attest.get("synthetic_sha256") != staged.get("synthetic_sha256")
            or attest.get("decision_sha256") != decision_sha):
        return f"{name} signed other report, data or gate decision hashes than the run's", "", ""
    return None, "approve", str(reviewer.public_key)


def gate_problems(registry: Registry, run_id: str) -> list[str]:
    """The stored gate decision recomputed from the staged report and the policy (the gate
    is a pure function, so an auditor gets the same rows): empty when they agree."""
    decision = registry.decision(run_id)
    staged = registry.artifacts(run_id)
    if decision is None:
        return ["no gate decision is recorded"]
    report_path = staged.get("report")
    if not report_path or not Path(report_path).is_file():
        return ["the staged report is missing, so the gate decision cannot be recomputed"]
    if sha256_file(Path(report_path)) != staged.get("report_sha256"):
        return ["the staged report changed after the job wrote it"]
    from reports.gate import evaluate_gate
    from reports.policy import load_policy
    try:
        policy = load_policy(staged.get("policy") or decision.policy_name)
    except SynthkitError:
        return [f"policy {decision.policy_name!r} can no longer be read, so the gate cannot be recomputed"]
    if policy.sha256 != decision.policy_sha256:
        return [f"policy {decision.policy_name!r} changed since the gate ran (SHA-256 differs); the decision "
                "cannot be recomputed"]
    again = evaluate_gate(Report.load(report_path), policy).to_dict()
    if sha256_json(again) != sha256_json(decision.decision):
        return ["the recorded gate decision differs from the one recomputed from the report and the policy"]
    return []


def policy_name_problems(registry: Registry, run_id: str) -> list[str]:
    """A policy file that calls itself by a shipped policy's name ("default", "healthcare",
    "finance") but is not that policy's text: a reviewer reading "default" would trust
    thresholds they never saw. Checked when a verdict is given (against the shipped
    policies of this synthkit), not in `verify`, so that a later upgrade of the shipped
    files does not turn old releases red."""
    from reports.policy import load_policy, shipped_policies
    decision = registry.decision(run_id)
    shipped = shipped_policies()
    if decision is None or decision.policy_name not in shipped:
        return []
    try:
        real = load_policy(shipped[decision.policy_name])
    except SynthkitError:
        return []
    if real.sha256 != decision.policy_sha256:
        return [f"its policy calls itself {decision.policy_name!r}, the name of a shipped policy, but is not the "
                "shipped policy's text (SHA-256 differs); give a custom policy a name of its own"]
    return []


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise AccessDenied("give a reason (a sentence a later auditor can understand)")
    return reason


def _check_staged(registry: Registry, run_id: str, *, staged: dict[str, Any] | None = None) -> dict[str, Any]:
    staged = registry.artifacts(run_id) if staged is None else staged
    for key in ("synthetic", "report"):
        path = staged.get(key)
        if not path or not Path(path).is_file():
            raise ArtifactError(f"run {run_id!r}: the staged {key} file is missing; run the job again")
        if sha256_file(Path(path)) != staged.get(f"{key}_sha256"):
            raise ArtifactError(f"run {run_id!r}: the staged {key} file changed after the job wrote it; "
                                "what would be released is not what was evaluated. Run the job again")
    staged_bundle(staged, Report.load(staged["report"]))  # a staged bundle must be the evaluated one
    return staged


# ---------------------------------------------------------------------------- the bundle
LEDGER = "ledger.json"
SCHEMA = "schema.json"
DATA_CARD_JSON = "data_card.json"
DATA_CARD_MD = "data_card.md"
# Files an earlier synthkit wrote into release folders: they carry real-data figures
# (the full report, the gate's observed values). `verify` points them out.
INTERNAL_FILES = ("report.json", "report.html", "gate.json")
BUNDLE_FORMAT = "synthkit-model-bundle"


def publish(registry: Registry, run_id: str, *, released_by: str, config: ReviewerConfig | None = None) -> Path:
    """Write the release bundle of an approved run and record it (once). Only public or DP
    facts go in (module docstring); the full report stays in the staged run.

    The registry's status is not trusted: the run is released only on `release_authority`
    (a trail that verifies, signed approvals by eligible reviewers that are the latest
    verdicts, or the policy's recorded auto-release). The manifest carries those
    approvals with their signatures and the chain head, so a recipient holding the
    reviewers' public keys can check them without the registry."""
    found = release_record_findings(registry, run_id)
    genuine = [(seq, rec) for seq, rec, problem in found if problem is None]
    if genuine:
        raise RegistryError(f"run {run_id!r} has already been released to {genuine[-1][1].path} (event "
                            f"#{genuine[-1][0]}; its manifest matches the release record)")
    same = same_release_elsewhere(registry, run_id, found)
    if same is not None:
        seq, rec = same
        raise RegistryError(f"run {run_id!r} has already been released (event #{seq}): that release holds the data "
                            f"this run would release (SHA-256 {registry.artifacts(run_id)['synthetic_sha256'][:12]}…), "
                            f"but its folder is no longer at {rec.path} nor beside it; a release is its content, so it "
                            f"is not published again: check a moved folder with `synthkit releases verify {run_id} "
                            "--folder PATH`, or run the job again for a new release")
    # the status is not read from the registry: `release_authority` replays the verdicts, and
    # events that do not verify (a forged approval, a forged release row) count for nothing
    authority = release_authority(registry, run_id, config)
    forged_releases = {seq for seq, _rec, _problem in found if seq is not None}
    for seq, _rec, problem in found:
        logger.info("run %s: the release recorded at event #%s does not verify (%s); it does not count as a "
                       "release and the genuine one is recorded next to it", run_id, seq, problem)
    run = registry.run(run_id)
    _check_staged(registry, run_id, staged=authority.staged)
    staged = authority.staged  # what was judged, not a later re-read of the registry
    decision = registry.decision(run_id)
    if decision is None or sha256_json(decision.decision) != authority.decision_sha256:
        raise AccessDenied(f"run {run_id!r}: its gate decision changed after it was judged; it cannot be released")
    # read once, hash what was read, parse those bytes: a report swapped after the check
    # above cannot reach the ledger or the data card
    report_bytes = Path(staged["report"]).read_bytes()
    if hashlib.sha256(report_bytes).hexdigest() != staged.get("report_sha256"):
        raise ArtifactError(f"run {run_id!r}: the staged report changed after the job wrote it; run the job again")
    try:
        report = Report.from_dict(json.loads(report_bytes.decode("utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ArtifactError(f"run {run_id!r}: the staged report is not valid JSON; run the job again") from None
    bundle = staged_bundle(staged, report)
    releases_dir = Path(staged["releases_dir"])
    releases_dir.mkdir(parents=True, exist_ok=True)
    final = releases_dir / run_id
    if final.exists():
        raise ArtifactError(f"release folder {str(final)!r} already exists; it was not written by this release")
    with locked_partial(final, folder=True) as tmp:  # a killed publish's partial is removed by the next one
        synthetic = Path(staged["synthetic"])
        copied = tmp / f"synthetic{synthetic.suffix}"
        shutil.copyfile(synthetic, copied)
        signed = {a.get("attest", {}).get("synthetic_sha256") for a in authority.approvals if a.get("attest")}
        if sha256_file(copied) not in ({staged.get("synthetic_sha256")} & (signed or {staged.get("synthetic_sha256")})):
            raise ArtifactError(f"run {run_id!r}: the staged synthetic file changed while it was being released; "
                                "what would be released is not what was approved. Run the job again")
        _write_json(tmp / LEDGER, release_ledger(report.privacy))
        if bundle is not None:
            _write_json(tmp / SCHEMA, Schema.from_dict(bundle["schema"]).to_dict())
        approvals = [dict(a) for a in authority.approvals]
        hashes = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        card = data_card(report=report, decision=GateDecision.from_dict(decision.decision), run=run,
                         staged=staged, approvals=approvals, files=hashes)
        _write_json(tmp / DATA_CARD_JSON, card)
        (tmp / DATA_CARD_MD).write_text(data_card_markdown(card), encoding="utf-8")
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"format": RELEASE_FORMAT, "format_version": RELEASE_FORMAT_VERSION, "run_id": run_id,
                    "job": run.job_name, "created_at": now_utc(), "policy": decision.policy_name,
                    "policy_sha256": decision.policy_sha256, "approvals": approvals,
                    "release_kind": authority.kind, "registry_head": registry.head(),
                    "files": {name: {"sha256": digest, "bytes": (tmp / name).stat().st_size}
                              for name, digest in files.items()}}
        _write_json(tmp / MANIFEST, manifest)
        manifest_sha = sha256_file(tmp / MANIFEST)
        tmp.rename(final)  # fails, never replaces, if a release folder appeared meanwhile
    try:
        registry.add_release(run_id, path=str(final), manifest_sha256=manifest_sha, files=files,
                             released_by=released_by,
                             ignore_events=forged_releases)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)  # ours: written just above, never recorded
        raise
    logger.info("run %s released to %s", run_id, final)
    return final


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, allow_nan=False), encoding="utf-8")


def staged_bundle(staged: dict[str, Any], report: Report) -> dict[str, Any] | None:
    """The manifest of the model bundle the job staged, or None when the run staged none.
    A staged bundle must be the one the report evaluated (same manifest SHA-256): what is
    released is what was reviewed."""
    model_dir = staged.get("model_dir")
    path = Path(model_dir) / "manifest.json" if model_dir else None
    if path is None or not path.is_file():
        return None
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ArtifactError(f"the staged model bundle's manifest {str(path)!r} is not valid JSON; "
                            "run the job again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        logger.info("staged model folder %s holds no synthkit bundle; the release goes without a schema", model_dir)
        return None
    if hashlib.sha256(raw).hexdigest() != report.model.get("manifest_sha256"):
        raise ArtifactError(f"the staged model bundle {str(model_dir)!r} is not the one the report evaluated "
                            "(its manifest SHA-256 differs); run the job again")
    return manifest


_LEDGER_KEYS = ("private", "guarantee", "target_epsilon", "target_delta", "epsilon_spent", "unit",
                "max_rows_per_unit", "accountant", "events", "notes")
_EVENT_KEYS = ("name", "kind", "epsilon_alone", "delta_alone", "details")


def release_ledger(privacy: dict[str, Any]) -> dict[str, Any]:
    """The DP ledger as released: the report's privacy section (the bundle's ledger summary)
    restricted to the ledger's own fields. Every value is a budget, a mechanism parameter
    (noise scale, sensitivity, sampling rate from a DP count, steps) or the composed total,
    so nothing else a later report adds to that section can ride along."""
    out: dict[str, Any] = {"format": "synthkit-privacy-ledger"}
    for key in _LEDGER_KEYS:
        if key not in privacy:
            continue
        if key == "events":
            out[key] = [{k: e[k] for k in _EVENT_KEYS if k in e} for e in privacy[key] if isinstance(e, dict)]
        else:
            out[key] = privacy[key]
    return out


def verify(registry: Registry, run_id: str, config: ReviewerConfig | None = None, *,
           folder: str | Path | None = None) -> VerifyResult:
    """Re-check a release end to end: the release folder against its manifest AND the
    registry's record; the registry's whole hash chain and every row it vouches for; every
    verdict's signature against the reviewers file (`config`, else $SYNTHKIT_REVIEWERS);
    the released synthetic data against the hash the approvers signed; the ledger against
    the staged report; and the gate decision recomputed from the report and the policy.

    A release is its content: `folder` checks the release where it was moved to (every
    file against the recorded hashes, as at the recorded path); without it, a release
    whose recorded folder is gone is looked for beside it (`relocated_release`)."""
    rec = registry.release(run_id)
    if rec is None:
        raise RegistryError(f"run {run_id!r} has no release (status {registry.status(run_id)!r})")
    moved: tuple[str, ...] = ()
    given = folder is not None
    if folder is not None:
        folder = Path(folder)
        if folder.absolute() != Path(rec.path).absolute():
            moved = (f"checked at {folder}, not at the recorded {rec.path}: the release is identified by its "
                     "manifest's and files' SHA-256, not by its path",)
    else:
        folder = Path(rec.path)
        if folder.is_symlink() or not folder.is_dir():
            found = relocated_release(registry, run_id, rec)
            if found is not None:
                folder = found
                moved = (f"the release folder was moved from {rec.path} to {found}; it is recognised by its "
                         "manifest's SHA-256",)
    problems: list[str] = []
    authority, trail = _authority(registry, run_id, config)
    problems += trail
    if folder.is_symlink():
        problems.append("the release folder is a symbolic link; a release is a real folder")
    if not folder.is_dir():
        return VerifyResult(run_id=run_id, path=str(folder), ok=False,
                            problems=tuple([f"no release folder at {folder} (--folder): give the folder the release "
                                            "was moved to" if given else
                                            "the release folder is missing (moved elsewhere? check it there with "
                                            "--folder PATH)", *problems]), n_files=0, notes=moved)
    mf = folder / MANIFEST
    manifest: dict[str, Any] = {}
    if not mf.is_file():
        problems.append("manifest.json is missing")
    else:
        if sha256_file(mf) != rec.manifest_sha256:
            problems.append("manifest.json differs from the one recorded at release")
        try:
            manifest = json.loads(mf.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            problems.append("manifest.json is not valid JSON")
    present = {p.name for p in folder.iterdir()}
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            problems.append(f"{entry.name} is a symbolic link; a release holds the files themselves")
        elif not entry.is_file():
            problems.append(f"{entry.name} is not a regular file")
    problems += _name_problems(rec.files, registry.artifacts(run_id))
    for name, digest in sorted(rec.files.items()):
        path = folder / name
        if not _plain_name(name):
            continue  # reported above; never read a path outside the folder
        if path.is_symlink():
            continue
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} was modified (SHA-256 differs from the release record)")
    extra = sorted(present - set(rec.files) - {MANIFEST})
    if extra:
        problems.append(f"files not in the release: {extra}")
    problems += _content_problems(registry, run_id, folder, rec.files, authority, manifest)
    problems += _manifest_problems(registry, run_id, rec.files, manifest, manifest_sha256=rec.manifest_sha256)
    others = [(seq, why) for seq, other, why in release_record_findings(registry, run_id)
              if other != rec and why is not None]
    notes = tuple(f"event #{seq} records another release of this run that does not verify ({why}); it is "
                  "forged or broken and was not counted" for seq, why in others)
    if authority is not None:  # verdict events passed over by the release's authority: forged, flagged here
        cfg = config if config is not None else _config(None)
        seen = {seq for seq, _why in others}
        notes += tuple(f"event #{seq} {why}; it is forged and was not counted (run `synthkit releases audit`)"
                       for seq, why in (forged_events(registry, run_id, cfg) if cfg.configured else {}).items()
                       if seq not in seen and not why.startswith("records a release"))
    internal = sorted(set(rec.files) & set(INTERNAL_FILES))
    notes += ((f"this release, written by an earlier synthkit, holds internal files with non-DP statistics of the "
               f"real data: {internal}; consider withdrawing it and releasing again",) if internal else ())
    return VerifyResult(run_id=run_id, path=str(folder), ok=not problems, problems=tuple(problems),
                        n_files=len(rec.files) + 1, notes=moved + notes)


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _name_problems(files: dict[str, str], staged: dict[str, Any]) -> list[str]:
    """The files a release may hold are the ones `publish` writes, by name: the synthetic
    data (with the staged file's suffix), the ledger, the schema, the data card, the
    manifest. A record that lists anything else (the internal report, a real-data extract,
    a path outside the folder) was not written by `publish`, whatever its hashes say."""
    suffix = Path(str(staged.get("synthetic") or "synthetic.csv")).suffix
    allowed = {f"synthetic{suffix}", LEDGER, SCHEMA, DATA_CARD_JSON, DATA_CARD_MD}
    problems = []
    for name in sorted(files):
        if not _plain_name(name):
            problems.append(f"the release record names {name!r}, a path outside the release folder")
        elif name not in allowed:
            problems.append(f"{name} is not a file that a release holds (allowed: {sorted(allowed | {MANIFEST})})")
    for name in (f"synthetic{suffix}", LEDGER, DATA_CARD_JSON, DATA_CARD_MD):
        if name not in files:
            problems.append(f"the release record lacks {name}")
    return problems


def _manifest_problems(registry: Registry, run_id: str, files: dict[str, str], manifest: dict[str, Any], *,
                       manifest_sha256: str | None = None) -> list[str]:
    """The manifest travels with the data: its file list must be the registry's record,
    and its `registry_head` (the chain head when the release was written) must be an event
    of this registry between the run's last verdict and its release event. A recipient who
    keeps the manifest can later show that the registry still holds that event."""
    if not manifest:
        return []
    problems: list[str] = []
    listed = manifest.get("files")
    got = {n: v.get("sha256") for n, v in listed.items() if isinstance(v, dict)} if isinstance(listed, dict) else None
    if got != files:
        problems.append("the manifest's file list differs from the release record")
    chain = registry.events()
    position = {e.hash: i for i, e in enumerate(chain)}
    head = manifest.get("registry_head")
    releases = [i for i, e in enumerate(chain) if e.run_id == run_id and e.step == "release"
                and e.status == "released"]
    mine = [i for i in releases if manifest_sha256 is None or chain[i].details.get("manifest_sha256") == manifest_sha256]
    released = (mine or releases or [None])[0]
    verdicts = [i for i, e in enumerate(chain) if e.run_id == run_id and e.step in ("review", "auto_release")]
    if head not in position or (released is not None and position[head] >= released) or \
            (verdicts and position[head] < max(verdicts)):
        problems.append("the manifest's registry_head is not the chain head at release (between the run's last "
                        "verdict and its release event)")
    return problems


def _derived_problems(registry: Registry, run_id: str, folder: Path, files: dict[str, str],
                      authority: Authority | None) -> list[str]:
    """schema.json and the data card are functions of what was signed and staged (the model
    bundle the report evaluated, the report, the decision, the approvals and the file
    hashes): recompute them and compare, so an edited card with recomputed hashes shows."""
    staged = registry.artifacts(run_id)
    report_path = staged.get("report")
    if authority is None or not report_path or not Path(report_path).is_file() or \
            sha256_file(Path(report_path)) != staged.get("report_sha256"):
        return []  # already reported: nothing trustworthy to recompute from
    problems: list[str] = []
    report = Report.load(report_path)
    try:
        bundle = staged_bundle(staged, report)
    except ArtifactError:
        return ["the staged model bundle is not the one the report evaluated"]
    signed = {a.get("attest", {}).get("bundle_manifest_sha256") for a in authority.approvals if a.get("attest")}
    if signed - {report.model.get("manifest_sha256")}:
        problems.append("the model bundle the approvers signed is not the one the report evaluated")
    if (folder / SCHEMA).is_file() or bundle is not None:
        want = Schema.from_dict(bundle["schema"]).to_dict() if bundle is not None else None
        got = _read_json(folder / SCHEMA)
        if want is None or sha256_json(got) != sha256_json(want):
            problems.append(f"{SCHEMA} is not the schema of the model bundle that was reviewed")
    decision = registry.decision(run_id)
    card_path = folder / DATA_CARD_JSON
    if decision is not None and card_path.is_file():
        hashes = {n: d for n, d in sorted(files.items()) if n not in (DATA_CARD_JSON, DATA_CARD_MD)}
        want_card = data_card(report=report, decision=GateDecision.from_dict(decision.decision),
                              run=registry.run(run_id), staged=staged, approvals=[dict(a) for a in authority.approvals],
                              files=hashes)
        if sha256_json(_read_json(card_path)) != sha256_json(want_card):
            problems.append(f"{DATA_CARD_JSON} differs from the card recomputed from the reviewed run")
        md = folder / DATA_CARD_MD
        if md.is_file() and md.read_text(encoding="utf-8") != data_card_markdown(want_card):
            problems.append(f"{DATA_CARD_MD} differs from the card recomputed from the reviewed run")
    return problems


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _content_problems(registry: Registry, run_id: str, folder: Path, files: dict[str, str],
                      authority: Authority | None, manifest: dict[str, Any]) -> list[str]:
    """What the released files say against what was signed and staged: hashes that were
    recomputed after an edit still differ from the ones the approvers signed."""
    problems: list[str] = []
    staged = registry.artifacts(run_id)
    data = [n for n in files if n.startswith("synthetic")]
    signed = {a.get("attest", {}).get("synthetic_sha256") for a in (authority.approvals if authority else ())
              if a.get("attest")}
    expected = signed or {staged.get("synthetic_sha256")}
    for name in data:
        path = folder / name
        if path.is_file() and (len(expected) != 1 or sha256_file(path) not in expected):
            problems.append(f"{name} is not the synthetic data the approvers signed (SHA-256 differs)")
    if not data:
        problems.append("the release holds no synthetic data file")
    report_path = staged.get("report")
    if report_path and Path(report_path).is_file() and (folder / LEDGER).is_file():
        if sha256_file(Path(report_path)) == staged.get("report_sha256"):
            try:
                shipped = json.loads((folder / LEDGER).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                shipped = None
            if sha256_json(shipped) != sha256_json(release_ledger(Report.load(report_path).privacy)):
                problems.append(f"{LEDGER} differs from the ledger of the report that was reviewed")
    problems += _derived_problems(registry, run_id, folder, files, authority)
    if manifest:
        run, decision = registry.run(run_id), registry.decision(run_id)
        for key, want in (("run_id", run_id), ("job", run.job_name),
                          ("policy", decision.policy_name if decision else None),
                          ("policy_sha256", decision.policy_sha256 if decision else None)):
            if manifest.get(key) != want:
                problems.append(f"the manifest's {key} differs from the registry's")
    if manifest and authority is not None:
        chained = {e.hash for e in registry.events(run_id)}
        listed = [a.get("event_hash") for a in manifest.get("approvals", []) if isinstance(a, dict)]
        if not listed or any(h not in chained for h in listed):
            problems.append("the manifest's approvals do not match the signed verdicts in the registry")
        if manifest.get("release_kind") != authority.kind:
            problems.append(f"the manifest says the release was {manifest.get('release_kind')!r}, the registry "
                            f"says {authority.kind!r}")
    return problems


# ---------------------------------------------------------------------------- data card
DATA_CARD_FORMAT = "synthkit-data-card"
DATA_CARD_FORMAT_VERSION = 2
DEFAULT_INTENDED_USE = "analysis, testing and software development inside the organisation"
# The gate rows that read the ledger (DP facts); every other row reads a metric computed
# on the real data without DP.
_LEDGER_CHECKS = ("privacy.differential_privacy", "privacy.unit", "privacy.epsilon", "privacy.delta")

RELEASE_DECISION_TEXT = (
    "The decision to release this data was not differentially private. The release gate and the "
    "reviewers read checks computed on the real (private) data without DP noise: membership "
    "inference, distance to the closest real record, exact copies of training rows, fidelity, "
    "diversity and utility against the real table, and bias per group. Whether this data was "
    "released is therefore itself a function of the private data, and is NOT covered by the "
    "(epsilon, delta) guarantee: publishing it reveals that those checks met the policy's "
    "thresholds. That is accepted for a release that people reviewed. The measured figures are "
    "in the full evaluation report, which stays internal (in the registry, for reviewers) and is "
    "not part of this release.")


def data_card(*, report: Report, decision: GateDecision, run: RunRecord, staged: dict[str, Any],
              approvals: list[dict[str, Any]], files: dict[str, str] | None = None) -> dict[str, Any]:
    """What a recipient needs to use the data responsibly, made of public or DP facts only:
    the ledger (budget, unit, epsilon spent), the DP count of privacy units, the number of
    synthetic rows (the output itself), the policy's name, who approved and when, the model
    class, and the hashes of the released `files`. Never an exact count of the real data,
    a real-data metric value, a gate row's observed value or a reviewer's free-text reason:
    those are in the internal report and the registry."""
    p = report.privacy
    private = p.get("private") is True
    if private:
        privacy_text = (f"({_num(p.get('epsilon_spent'))}, {_num(p.get('target_delta'))})-differential privacy "
                        f"per {p.get('unit', 'row')}")
    else:
        privacy_text = "NO formal privacy guarantee (trained without differential privacy)"
    unit = p.get("unit") or report.data.get("unit") or "row"
    training = report.model.get("training") or {}
    n_units_dp = training.get("n_units_dp") if private else None
    rows: dict[str, Any] = {
        "n_synthetic": report.data.get("n_synthetic"),
        "n_units_dp": n_units_dp if isinstance(n_units_dp, (int, float)) and not isinstance(n_units_dp, bool) else None,
        "n_units_dp_meaning": (f"a differentially private count of the {_unit_plural(unit)} in the training part "
                               "(noisy; charged to the ledger as count:units)") if private else
                              "not released: without differential privacy there is no DP count, and exact counts "
                              "of the real data are never released",
    }
    if report.data.get("n_synthetic_entities") is not None:
        rows["n_synthetic_entities"] = report.data["n_synthetic_entities"]
    non_dp = sorted({c.metric for c in decision.checks if c.metric not in _LEDGER_CHECKS})
    return {
        "format": DATA_CARD_FORMAT,
        "format_version": DATA_CARD_FORMAT_VERSION,
        "title": f"Synthetic data from job {run.job_name!r}",
        "what_it_is": (f"Synthetic {report.data.get('kind', 'table')} data generated by "
                       f"{report.model.get('class') or 'a synthkit model'}; no row is a real record, and no row "
                       "corresponds to a real person or account."),
        "run_id": run.run_id,
        "source_kind": staged.get("source_kind", "unknown"),
        "rows": rows,
        "privacy": {"guarantee": privacy_text, "private": private, "unit": unit,
                    "max_rows_per_unit": p.get("max_rows_per_unit"),
                    "epsilon": p.get("epsilon_spent") if private else None,
                    "delta": p.get("target_delta") if private else None,
                    "target_epsilon": p.get("target_epsilon") if private else None,
                    "meaning": privacy_in_plain_words(p), "ledger": LEDGER},
        "policy": {"name": decision.policy, "sha256": decision.policy_sha256},
        "release_decision": {"dp": False, "statement": RELEASE_DECISION_TEXT, "non_dp_checks_read": non_dp,
                             "full_report": "internal (registry and staged run, for reviewers); not released"},
        "intended_use": staged.get("intended_use") or DEFAULT_INTENDED_USE,
        "not_for": "decisions about individual people or accounts; re-identification attempts",
        "known_limits": known_limits(report),
        "approvals": [{"reviewer": a.get("reviewer"), "at": a.get("at"), "decision": a.get("decision", "approve")}
                      for a in approvals],
        "model": {"class": report.model.get("class")},
        "files": dict(files or {}),
    }


def _unit_plural(unit: str) -> str:
    return "entities (people or accounts)" if unit == "entity" else "rows"


def _num(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def privacy_in_plain_words(p: dict[str, Any]) -> str:
    """The ledger in plain words: what the guarantee means for one person."""
    if p.get("private") is not True:
        return ("This data was generated by a model trained without differential privacy. Nothing formally "
                "limits what it reveals about the people in the training data.")
    unit = "person or account (all of their rows together)" if p.get("unit") == "entity" else "row of the table"
    eps = p.get("epsilon_spent")
    factor = ""
    if isinstance(eps, (int, float)) and eps < 50:
        factor = f" (a factor of at most {math.exp(eps):.3g})"
    return (f"Whether or not any single {unit} was in the training data changes the probability of any "
            f"result by at most e^epsilon{factor}, except with probability delta = {_num(p.get('target_delta'))}. "
            f"The budget was spent by {len(p.get('events', []))} recorded mechanism(s), composed by one accountant.")


def known_limits(report: Report) -> list[str]:
    """Weak spots a user of the data should know, stated without any real-data figure
    (metric values are computed on the real data without DP; they stay in the internal
    report). Only public facts decide which lines appear: the guarantee, the unit, the
    model class and the data kind."""
    p = report.privacy
    out: list[str] = []
    if p.get("private") is not True:
        out.append("No formal privacy guarantee: the model was trained without differential privacy.")
    out.append("The release decision read non-DP checks on the real data (membership inference, distance to "
               "closest record, exact copies, fidelity against the real table, bias): see the release decision "
               "statement. Their measured values are in the internal evaluation report, not in this release.")
    if p.get("unit") == "entity" and report.data.get("kind", "table") == "table":
        out.append("A table model treats each row of a multi-row entity independently when sampling; relations "
                   "between the rows of one person or account are not reproduced.")
    out.append("Differential privacy noise blurs rare categories, small groups and extreme values first; a "
               "category too rare to clear the DP threshold appears only as '__other__'.")
    return out


def data_card_markdown(card: dict[str, Any]) -> str:
    pv, rows, rd = card["privacy"], card["rows"], card["release_decision"]
    dp_count = (f"{rows['n_units_dp']} (DP count of {_unit_plural(pv['unit'])}; noisy)"
                if rows.get("n_units_dp") is not None else "not released")
    lines = [f"# {card['title']}", "", card["what_it_is"], "",
             f"- **Run:** {card['run_id']}", f"- **Source kind:** {card['source_kind']}",
             f"- **Model:** {card['model']['class']}",
             f"- **Synthetic rows:** {rows.get('n_synthetic')}"
             + (f" ({rows['n_synthetic_entities']} synthetic entities)" if rows.get("n_synthetic_entities") else ""),
             f"- **Training units:** {dp_count}",
             f"- **Privacy:** {pv['guarantee']}", f"- **Privacy unit:** {pv['unit']}",
             f"- **Epsilon / delta:** {pv['epsilon']} / {pv['delta']}",
             f"- **Policy:** {card['policy']['name']} (sha256 {card['policy']['sha256'][:12]}…)", "",
             "## What the guarantee means", "", pv["meaning"], f"The full ledger is in `{pv['ledger']}`.", "",
             "## How the release was decided (not covered by the guarantee)", "", rd["statement"], ""]
    if rd["non_dp_checks_read"]:
        lines += ["Non-DP checks the gate read: " + ", ".join(f"`{m}`" for m in rd["non_dp_checks_read"]) + ".", ""]
    lines += ["## Intended use", "", card["intended_use"], "", f"Not for: {card['not_for']}.", "",
              "## Known limits", ""]
    lines += [f"- {x}" for x in card["known_limits"]]
    lines += ["", "## Approvals", ""]
    lines += [f"- {a['reviewer']} at {a['at']}: {a['decision']}" for a in card["approvals"]]
    if card["files"]:
        lines += ["", "## Files (SHA-256)", ""]
        lines += [f"- `{name}`: {digest}" for name, digest in card["files"].items()]
    return "\n".join(lines) + "\n"


def ledger_in_plain_words(p: dict[str, Any]) -> list[str]:
    """One sentence per recorded DP mechanism, then the composed total: the privacy
    ledger as a reviewer who is not a DP expert can read it."""
    if p.get("private") is not True:
        return ["No privacy mechanism was recorded: the model was trained without differential privacy."]
    unit = "people or accounts" if p.get("unit") == "entity" else "rows"
    out = []
    for e in p.get("events", []):
        d = e.get("details", {})
        alone = e.get("epsilon_alone")
        alone_txt = f" (epsilon {alone:.3g} on its own)" if isinstance(alone, (int, float)) else ""
        if e.get("kind") == "sampled_gaussian":
            out.append(f"{e['name']}: {d.get('steps')} training steps, each on a random "
                       f"{100 * float(d.get('sampling_rate', 0)):.2g}% of the {unit}, with each one's influence "
                       f"clipped and blurred by noise {float(d.get('noise_multiplier', 0)):.3g} times the clipping "
                       f"bound{alone_txt}.")
        elif e.get("kind") == "gaussian":
            out.append(f"{e['name']}: {d.get('count', 1)} noisy statistic(s) (Gaussian noise of standard deviation "
                       f"{float(d.get('sigma', 0)):.3g} for a sensitivity of {d.get('sensitivity')}){alone_txt}.")
        elif e.get("kind") == "threshold":
            out.append(f"{e['name']}: a category is released only if its noisy count clears a threshold, so a "
                       f"category held by one of the {unit} appears with probability at most "
                       f"{float(d.get('delta', 0)):.2g} (added to delta).")
        else:
            out.append(f"{e.get('name')}: {e.get('kind')}{alone_txt}.")
    out.append(f"Together (composed by one accountant, not simply added): epsilon {_num(p.get('epsilon_spent'))} "
               f"of the target {_num(p.get('target_epsilon'))}, delta {_num(p.get('target_delta'))}, per "
               f"{'person or account' if p.get('unit') == 'entity' else 'row'}.")
    return out
