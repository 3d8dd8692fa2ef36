"""synthkit review dashboard (Streamlit). Start it with `synthkit review`.

Configuration comes from the environment, set by `synthkit review`:
SYNTHKIT_REGISTRY (the registry URL or SQLite path; unset: the default registry every
command uses, reports.registry.default_registry) and SYNTHKIT_REVIEWERS (the reviewers
YAML). An anonymous visitor sees the sign-in form and nothing else; a signed-in reviewer
sees the queue, each release's gate result first, then fidelity, diversity, privacy,
bias and sequence pages, the privacy ledger in plain words and the data card, and can
approve (unless four-eyes forbids it) or reject with a reason. Every verdict is signed
with the reviewer's own Ed25519 key (their key file on this machine, or one they upload
for that signature); the registry's audit trail is checked on every release page.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import streamlit as st

from app import trail, views
from reports.gate import GateDecision
from reports.model import Report
from reports.registry import Registry, display_url
from reports.release import approve, data_card, reject, runner_display
from reports.review import ReviewerConfig, four_eyes_problem
from reports.signing import default_key_path, load_private_key
from synthkit.errors import SynthkitError


def main() -> None:
    st.set_page_config(page_title="synthkit review", page_icon=":lock:", layout="wide")
    st.title("synthkit release review")
    try:
        config = ReviewerConfig.load()
    except SynthkitError as err:
        st.error(str(err))
        return
    reviewer = views.signin_ui(config)
    if reviewer is None:
        return  # anonymous: nothing else is rendered

    registry = _registry(os.environ.get("SYNTHKIT_REGISTRY"))
    st.sidebar.markdown(f"Signed in as **{reviewer.label}**")
    if st.sidebar.button("Sign out", key="signout"):
        st.session_state.pop("reviewer", None)
        if views.oidc_configured() and getattr(st.user, "is_logged_in", False):
            st.logout()
        st.rerun()
    st.sidebar.caption(f"registry: {display_url(registry.url)}")

    views.trail_ui(registry.audit())  # first: when it fails, no record below can be trusted
    flash = st.session_state.pop("flash", None)
    if flash:
        st.success(flash)
    run_id = views.queue_ui(trail.run_statuses(registry, config))  # verified statuses, never the raw ones
    if run_id is None:
        st.info("Nothing to review. Pending releases appear here when `synthkit run` finishes a job.")
        return
    release_page(registry, run_id, reviewer, config)


@st.cache_resource(show_spinner=False)
def _registry(url: str | None) -> Registry:
    """One connection pool per registry URL (the registry holds no private data)."""
    return Registry(url)


def release_page(registry: Registry, run_id: str, reviewer: object, config: ReviewerConfig) -> None:
    run = registry.run(run_id)
    # the status replayed from verified events (app/trail.py): a forged "approved" or
    # "released" event neither shows nor acts as one, and does not hide the decision form
    checked = trail.run_status(registry, config, run_id)
    status = checked.status
    display = runner_display(registry, run_id)
    st.header(f"{run.job_name}")
    st.caption(f"run {run_id} · status **{status.replace('_', ' ')}** · run by {run.run_by}"
               + (f" ({display})" if display else "")
               + (f" · owner {run.owner}" if run.owner else "") + f" · created {run.created_at[:19]} UTC")
    views.unverified_ui(checked)

    record = registry.decision(run_id)
    decision = GateDecision.from_dict(record.decision) if record else None
    views.gate_ui(decision)

    staged = registry.artifacts(run_id)
    report = None
    # What the reviewer reads must be what the gate read and what the signature will
    # attest: the report's bytes are hashed as they are shown, a report whose hash is not
    # the staged one is not shown at all, and the hash shown is the one the verdict binds.
    seen_key = f"report_sha256_{run_id}"
    seen_before = st.session_state.get(seen_key)
    shown_sha: str | None = None
    changed: str | None = None
    if staged.get("report"):
        try:
            raw = Path(staged["report"]).read_bytes()
            shown_sha = hashlib.sha256(raw).hexdigest()
            if shown_sha != staged.get("report_sha256"):
                changed = ("The staged report changed after the job wrote it (its SHA-256 differs), so it is not "
                           "what the gate read; it is not shown and cannot be approved. Run the job again.")
                st.error(changed)
            else:
                report = Report.from_dict(json.loads(raw.decode("utf-8")))
        except (OSError, ValueError, SynthkitError):
            st.error("the report cannot be read; run the job again")
    st.session_state[seen_key] = shown_sha
    if report is not None:
        reviews = trail.verified_reviews(registry, run_id, checked.unverified)
        tabs = st.tabs(["Fidelity", "Diversity", "Privacy", "Bias", "Sequence", "Privacy ledger", "Data card",
                        "History"])
        with tabs[0]:
            views.fidelity_ui(report)
        with tabs[1]:
            views.diversity_ui(report)
        with tabs[2]:
            views.privacy_ui(report)
        with tabs[3]:
            views.bias_ui(report)
        with tabs[4]:
            views.sequence_ui(report)
        with tabs[5]:
            views.ledger_ui(report)
        with tabs[6]:
            if decision is not None:
                approvals = [{"reviewer": r.reviewer, "at": r.at, "reason": r.reason}
                             for r, ok in reviews if ok and r.verdict == "approve"]
                views.data_card_ui(data_card(report=report, decision=decision, run=run, staged=staged,
                                             approvals=approvals))
        with tabs[7]:
            views.history_ui(registry.events(run_id), reviews, unverified=checked.unverified)

    blocked = four_eyes_problem(run, reviewer, runner_display=display)  # type: ignore[arg-type]
    if blocked is None and (decision is None or not decision.passed):
        blocked = "The release gate rejected this run, so it cannot be approved."
    if blocked is None and (changed or report is None):
        blocked = changed or "The report cannot be read, so this run cannot be approved."
    key_path = default_key_path(reviewer.name)  # type: ignore[attr-defined]
    choice = views.decision_ui(run_id=run_id, status=status, blocked=blocked, key_hint=str(key_path))
    if choice is None:
        return
    verdict, reason, uploaded = choice
    try:
        key = load_private_key(key_path if uploaded is None else Path("the uploaded key"),
                               pem=uploaded)
        if verdict == "approve":
            new_status = approve(registry, run_id, reviewer=reviewer, reason=reason, key=key,  # type: ignore[arg-type]
                                 config=config, expect_report_sha256=seen_before or shown_sha)
        else:
            new_status = reject(registry, run_id, reviewer=reviewer, reason=reason, key=key,  # type: ignore[arg-type]
                                config=config)
    except SynthkitError as err:
        st.error(str(err))
        return
    st.session_state["flash"] = f"{run_id}: {new_status.replace('_', ' ')}"
    st.rerun()


main()
