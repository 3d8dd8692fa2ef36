"""Approval, rejection and the release bundle.

A release bundle is written ONLY when a run is approved (by enough distinct reviewers, or
by a policy that allows auto-release after every check passed). It is a folder named
after the run with:

    synthetic.csv|parquet   the synthetic data that was reviewed (byte for byte)
    report.json             the evaluation report (aggregates only)
    report.html             the same, rendered, when the renderer is available
    gate.json               the gate decision (one row per check)
    data_card.md / .json    what the data is, its source kind, privacy unit, epsilon and
                            delta, intended use, known limits from the report, approvals
    manifest.json           SHA-256 and size of every file above

The folder is assembled under a temporary name and renamed when complete, so a crash
leaves no partial release; the registry records the manifest's hash and every file's
hash, so `verify` detects a modified, missing or added file even if the manifest itself
was rewritten. What was reviewed is what is released: the staged synthetic data and
report are re-hashed against the hashes recorded when the job staged them, before the
approval is accepted and again before they are copied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.gate import GateDecision
from reports.model import Report
from reports.registry import Registry, RegistryError, RunRecord, now_utc
from reports.review import AccessDenied, Reviewer, four_eyes_problem
from synthkit.errors import ArtifactError

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


# ---------------------------------------------------------------------------- review actions
def approve(registry: Registry, run_id: str, *, reviewer: Reviewer, reason: str) -> str:
    """Record `reviewer`'s approval; write the release when enough reviewers approved.
    Returns the run's new status ("pending_review" while more approvals are needed,
    "released" once the bundle is written)."""
    reason = _check_reason(reason)
    run = registry.run(run_id)
    problem = four_eyes_problem(run, reviewer)
    if problem:
        raise AccessDenied(problem)
    decision = registry.decision(run_id)
    if decision is None or not decision.passed:
        raise AccessDenied(f"run {run_id!r} did not pass its release gate; it cannot be approved "
                           "(fix the job and run it again)")
    _check_staged(registry, run_id)  # the reviewed bytes are still the staged bytes
    needed = int(decision.decision.get("reviewers_required", 1))
    status = registry.add_review(run_id, reviewer=reviewer.name, verdict="approve", reason=reason,
                                 approvals_needed=needed)
    logger.info("run %s approved by %s (%d approval(s) needed)", run_id, reviewer.name, needed)
    if status != "approved":
        return status
    publish(registry, run_id, released_by=reviewer.name)
    return "released"


def reject(registry: Registry, run_id: str, *, reviewer: Reviewer, reason: str) -> str:
    """Record a rejection; the run is final (a new run is needed). Any configured reviewer
    may reject, including the job's owner withdrawing their own candidate."""
    reason = _check_reason(reason)
    status = registry.add_review(run_id, reviewer=reviewer.name, verdict="reject", reason=reason)
    logger.info("run %s rejected by %s", run_id, reviewer.name)
    return status


def auto_release(registry: Registry, run_id: str, *, policy_name: str) -> str:
    """Release without a person: only for a policy with auto_release whose gate passed."""
    decision = registry.decision(run_id)
    if decision is None or not decision.passed or not decision.decision.get("auto_release"):
        raise AccessDenied(f"run {run_id!r}: auto-release needs a passed gate under a policy that allows it")
    registry.add_event(run_id, status="approved", step="auto_release",
                       message=f"approved automatically by policy {policy_name!r}", expect=("pending_review",))
    publish(registry, run_id, released_by=AUTO_REVIEWER)
    return "released"


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise AccessDenied("give a reason (a sentence a later auditor can understand)")
    return reason


def _check_staged(registry: Registry, run_id: str) -> dict[str, Any]:
    staged = registry.artifacts(run_id)
    for key in ("synthetic", "report"):
        path = staged.get(key)
        if not path or not Path(path).is_file():
            raise ArtifactError(f"run {run_id!r}: the staged {key} file is missing; run the job again")
        if sha256_file(Path(path)) != staged.get(f"{key}_sha256"):
            raise ArtifactError(f"run {run_id!r}: the staged {key} file changed after the job wrote it; "
                                "what would be released is not what was evaluated. Run the job again")
    return staged


# ---------------------------------------------------------------------------- the bundle
def publish(registry: Registry, run_id: str, *, released_by: str) -> Path:
    """Write the release bundle of an approved run and record it (once)."""
    status = registry.status(run_id)
    if status == "released":
        raise RegistryError(f"run {run_id!r} has already been released")
    if status != "approved":
        raise AccessDenied(f"run {run_id!r} is {status!r}; only an approved run is released")
    run = registry.run(run_id)
    staged = _check_staged(registry, run_id)
    decision = registry.decision(run_id)
    assert decision is not None  # approved implies a passed decision
    releases_dir = Path(staged["releases_dir"])
    releases_dir.mkdir(parents=True, exist_ok=True)
    final = releases_dir / run_id
    if final.exists():
        raise ArtifactError(f"release folder {str(final)!r} already exists; it was not written by this release")
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", suffix=".partial", dir=releases_dir))
    try:
        synthetic = Path(staged["synthetic"])
        shutil.copyfile(synthetic, tmp / f"synthetic{synthetic.suffix}")
        shutil.copyfile(staged["report"], tmp / "report.json")
        report = Report.load(tmp / "report.json")
        _try_render_html(report, tmp / "report.html")
        (tmp / "gate.json").write_text(json.dumps(decision.decision, indent=2), encoding="utf-8")
        reviews = [r for r in registry.reviews(run_id) if r.verdict == "approve"]
        approvals = [{"reviewer": r.reviewer, "at": r.at, "reason": r.reason} for r in reviews] or \
                    [{"reviewer": released_by, "at": now_utc(), "reason": "auto-release allowed by the policy"}]
        card = data_card(report=report, decision=GateDecision.from_dict(decision.decision), run=run,
                         staged=staged, approvals=approvals)
        (tmp / "data_card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
        (tmp / "data_card.md").write_text(data_card_markdown(card), encoding="utf-8")
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"format": RELEASE_FORMAT, "format_version": RELEASE_FORMAT_VERSION, "run_id": run_id,
                    "job": run.job_name, "created_at": now_utc(), "policy": decision.policy_name,
                    "policy_sha256": decision.policy_sha256, "approvals": approvals,
                    "files": {name: {"sha256": digest, "bytes": (tmp / name).stat().st_size}
                              for name, digest in files.items()}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        manifest_sha = sha256_file(tmp / MANIFEST)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        registry.add_release(run_id, path=str(final), manifest_sha256=manifest_sha, files=files,
                             released_by=released_by)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)  # ours: written just above, never recorded
        raise
    logger.info("run %s released to %s", run_id, final)
    return final


def _try_render_html(report: Report, path: Path) -> None:
    try:
        from reports import render_html
    except ImportError:
        return
    render_html(report, path)


def verify(registry: Registry, run_id: str) -> VerifyResult:
    """Re-hash a release folder against its manifest AND the registry's record."""
    rec = registry.release(run_id)
    if rec is None:
        raise RegistryError(f"run {run_id!r} has no release (status {registry.status(run_id)!r})")
    folder = Path(rec.path)
    problems: list[str] = []
    if not folder.is_dir():
        return VerifyResult(run_id=run_id, path=rec.path, ok=False, problems=("the release folder is missing",),
                            n_files=0)
    mf = folder / MANIFEST
    if not mf.is_file():
        problems.append("manifest.json is missing")
    elif sha256_file(mf) != rec.manifest_sha256:
        problems.append("manifest.json differs from the one recorded at release")
    present = {p.name for p in folder.iterdir()}
    for name, digest in sorted(rec.files.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} was modified (SHA-256 differs from the release record)")
    extra = sorted(present - set(rec.files) - {MANIFEST})
    if extra:
        problems.append(f"files not in the release: {extra}")
    return VerifyResult(run_id=run_id, path=rec.path, ok=not problems, problems=tuple(problems),
                        n_files=len(rec.files) + 1)


# ---------------------------------------------------------------------------- data card
def data_card(*, report: Report, decision: GateDecision, run: RunRecord, staged: dict[str, Any],
              approvals: list[dict[str, Any]]) -> dict[str, Any]:
    """What a recipient needs to use the data responsibly; built from the report (never
    from the real data)."""
    p = report.privacy
    private = p.get("private") is True
    if private:
        privacy_text = (f"({_num(p.get('epsilon_spent'))}, {_num(p.get('target_delta'))})-differential privacy "
                        f"per {p.get('unit', 'row')}")
    else:
        privacy_text = "NO formal privacy guarantee (trained without differential privacy)"
    return {
        "title": f"Synthetic data from job {run.job_name!r}",
        "what_it_is": (f"Synthetic {report.data.get('kind', 'table')} data generated by "
                       f"{report.model.get('class', 'a synthkit model')}; no row is a real record, and no row "
                       "corresponds to a real person or account."),
        "run_id": run.run_id,
        "source_kind": staged.get("source_kind", "unknown"),
        "rows": {k: v for k, v in report.data.items() if k.startswith("n_")},
        "privacy": {"guarantee": privacy_text, "private": private, "unit": p.get("unit"),
                    "max_rows_per_unit": p.get("max_rows_per_unit"),
                    "epsilon": p.get("epsilon_spent") if private else None,
                    "delta": p.get("target_delta") if private else None,
                    "meaning": privacy_in_plain_words(p)},
        "intended_use": staged.get("intended_use") or DEFAULT_INTENDED_USE,
        "not_for": "decisions about individual people or accounts; re-identification attempts",
        "known_limits": known_limits(report, decision),
        "gate": {"policy": decision.policy, "policy_sha256": decision.policy_sha256, "summary": decision.summary()},
        "approvals": approvals,
        "model": {"class": report.model.get("class"), "bundle_sha256": report.model.get("bundle_sha256")},
        "report_created_at": report.created_at,
    }


DEFAULT_INTENDED_USE = "analysis, testing and software development inside the organisation"


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


def known_limits(report: Report, decision: GateDecision) -> list[str]:
    """Weak spots a user of the data should know, in plain words."""
    out: list[str] = []
    for c in decision.checks:
        if c.skipped:
            out.append(f"{c.metric}: not measured ({c.note})")
    for m in report.metrics:
        if m.value is None:
            out.append(f"{m.id}: could not be computed" + (f" ({m.note})" if m.note else ""))
    worst = sorted((m for m in report.metrics if m.value is not None and m.direction == "higher_is_better"
                    and m.section in ("fidelity", "diversity", "sequence") and 0 <= m.value <= 1),
                   key=lambda m: m.value)[:3]
    for m in worst:
        out.append(f"{m.id} = {m.value:.3f}: {m.explanation}")
    for m in report.metrics:
        if m.section == "bias" and m.value is not None and m.direction == "lower_is_better" and m.value > 0.05:
            out.append(f"{m.id} = {m.value:.3f}: some groups are represented or modelled less faithfully")
    out.append("Differential privacy noise blurs rare categories, small groups and extreme values first.")
    return out


def data_card_markdown(card: dict[str, Any]) -> str:
    pv = card["privacy"]
    lines = [f"# {card['title']}", "", card["what_it_is"], "",
             f"- **Run:** {card['run_id']}", f"- **Source kind:** {card['source_kind']}",
             "- **Rows:** " + ", ".join(f"{k} = {v}" for k, v in card["rows"].items()),
             f"- **Privacy:** {pv['guarantee']}", f"- **Privacy unit:** {pv['unit']}",
             f"- **Epsilon / delta:** {pv['epsilon']} / {pv['delta']}", "",
             "## What the guarantee means", "", pv["meaning"], "",
             "## Intended use", "", card["intended_use"], "", f"Not for: {card['not_for']}.", "",
             "## Known limits", ""]
    lines += [f"- {x}" for x in card["known_limits"]]
    lines += ["", "## Release gate", "", f"{card['gate']['summary']} (policy sha256 {card['gate']['policy_sha256'][:12]}…)",
              "", "## Approvals", ""]
    lines += [f"- {a['reviewer']} at {a['at']}: {a['reason']}" for a in card["approvals"]]
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
