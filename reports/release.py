"""Approval, rejection and the release bundle.

Two reports. The full evaluation report (report.json / report.html: exact train and
holdout counts, real-data marginals, DCR, exact-copy rate, membership-inference AUC, bias
figures, mode shares) and the gate decision with its observed values are computed on the
real data WITHOUT differential privacy. They stay INTERNAL: in the staged run and the
registry, for reviewers. They are never copied into the release folder.

A release bundle is written ONLY when a run is approved (by enough distinct reviewers, or
by a policy that allows auto-release after every check passed). It is a folder named
after the run that holds public or DP facts only:

    synthetic.csv|parquet   the synthetic data that was reviewed (byte for byte)
    ledger.json             the DP ledger: budget, epsilon spent, unit, one row per mechanism
    schema.json             the model's schema (declared public facts), when the run staged
                            a model bundle
    data_card.md / .json    what the data is, the DP count of privacy units, epsilon and
                            delta, unit, policy, approvals (who, when, verdict), model class,
                            number of synthetic rows, hashes of the files above, and the
                            statement that the release decision read non-DP checks
    manifest.json           SHA-256 and size of every file above

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


def publish(registry: Registry, run_id: str, *, released_by: str) -> Path:
    """Write the release bundle of an approved run and record it (once). Only public or DP
    facts go in (module docstring); the full report stays in the staged run."""
    status = registry.status(run_id)
    if status == "released":
        raise RegistryError(f"run {run_id!r} has already been released")
    if status != "approved":
        raise AccessDenied(f"run {run_id!r} is {status!r}; only an approved run is released")
    run = registry.run(run_id)
    staged = _check_staged(registry, run_id)
    decision = registry.decision(run_id)
    assert decision is not None  # approved implies a passed decision
    report = Report.load(staged["report"])  # read in place: it is internal and is not copied
    bundle = staged_bundle(staged, report)
    releases_dir = Path(staged["releases_dir"])
    releases_dir.mkdir(parents=True, exist_ok=True)
    final = releases_dir / run_id
    if final.exists():
        raise ArtifactError(f"release folder {str(final)!r} already exists; it was not written by this release")
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", suffix=".partial", dir=releases_dir))
    try:
        synthetic = Path(staged["synthetic"])
        shutil.copyfile(synthetic, tmp / f"synthetic{synthetic.suffix}")
        _write_json(tmp / LEDGER, release_ledger(report.privacy))
        if bundle is not None:
            _write_json(tmp / SCHEMA, Schema.from_dict(bundle["schema"]).to_dict())
        reviews = [r for r in registry.reviews(run_id) if r.verdict == "approve"]
        approvals = [{"reviewer": r.reviewer, "at": r.at, "decision": "approve"} for r in reviews] or \
                    [{"reviewer": released_by, "at": now_utc(), "decision": "approve (automatic: the policy "
                                                                           "allows auto-release)"}]
        hashes = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        card = data_card(report=report, decision=GateDecision.from_dict(decision.decision), run=run,
                         staged=staged, approvals=approvals, files=hashes)
        _write_json(tmp / DATA_CARD_JSON, card)
        (tmp / DATA_CARD_MD).write_text(data_card_markdown(card), encoding="utf-8")
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"format": RELEASE_FORMAT, "format_version": RELEASE_FORMAT_VERSION, "run_id": run_id,
                    "job": run.job_name, "created_at": now_utc(), "policy": decision.policy_name,
                    "policy_sha256": decision.policy_sha256, "approvals": approvals,
                    "files": {name: {"sha256": digest, "bytes": (tmp / name).stat().st_size}
                              for name, digest in files.items()}}
        _write_json(tmp / MANIFEST, manifest)
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
    internal = sorted(set(rec.files) & set(INTERNAL_FILES))
    notes = ((f"this release, written by an earlier synthkit, holds internal files with non-DP statistics of the "
              f"real data: {internal}; consider withdrawing it and releasing again",) if internal else ())
    return VerifyResult(run_id=run_id, path=rec.path, ok=not problems, problems=tuple(problems),
                        n_files=len(rec.files) + 1, notes=notes)


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
