"""Page pieces of the review dashboard. Each function only renders what `reports` computed
(report, gate decision, registry records); the rules — who may sign in, four-eyes,
approve/reject, the data card — live in `reports.review` and `reports.release`.

Aggregates only: everything drawn here comes from the report's metrics and chart data,
which the evaluation built from scores, shares and suppressed histograms. No view reads
the real data, and none shows synthetic rows either.
"""

from __future__ import annotations

import re
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from reports.gate import GateDecision
from reports.model import Metric, Report
from reports.release import ledger_in_plain_words, privacy_in_plain_words
from reports.review import AccessDenied, Reviewer, ReviewerConfig

SECTION_TITLES = {"fidelity": "Fidelity", "diversity": "Diversity", "privacy": "Privacy leakage",
                  "bias": "Bias", "sequence": "Sequences", "validation": "Validation"}
MAX_SIGNIN_FAILURES = 5


# ---------------------------------------------------------------------------- sign-in
def oidc_configured() -> bool:
    """Streamlit's login (st.login) works only when .streamlit/secrets.toml has [auth]."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def signin_ui(config: ReviewerConfig) -> Reviewer | None:
    """The signed-in reviewer, or None after rendering the sign-in form. An anonymous
    visitor sees this form and nothing else."""
    if not config.configured:
        st.error("No reviewers are configured, so nothing can be reviewed here. An administrator adds "
                 "reviewers with `synthkit reviewers add NAME --file reviewers.yaml` and starts the dashboard "
                 "with `--reviewers reviewers.yaml`.")
        return None
    name = st.session_state.get("reviewer")
    if name:
        reviewer = config.find(name)
        if reviewer is not None:
            return reviewer
        st.session_state.pop("reviewer", None)  # removed from the file since sign-in
    if oidc_configured():
        if getattr(st.user, "is_logged_in", False):
            try:
                return config.by_email(getattr(st.user, "email", None))
            except AccessDenied as err:
                st.error(str(err))
                st.button("Sign out", on_click=st.logout, key="oidc_logout")
                return None
        st.button("Sign in with your organisation's account", on_click=st.login, key="oidc_login")
        st.caption("or with a reviewer password:")
    failures = st.session_state.get("signin_failures", 0)
    if failures >= MAX_SIGNIN_FAILURES:
        st.error("Too many failed sign-in attempts in this session. Close the tab and try again later.")
        return None
    with st.form("signin"):
        st.subheader("Reviewer sign-in")
        user = st.text_input("Reviewer name", key="signin_name")
        password = st.text_input("Password", type="password", key="signin_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        try:
            reviewer = config.authenticate(user, password)
        except AccessDenied as err:
            st.session_state["signin_failures"] = failures + 1
            st.error(str(err))
            return None
        st.session_state["reviewer"] = reviewer.name
        st.session_state.pop("signin_failures", None)
        st.rerun()
    return None


# ---------------------------------------------------------------------------- queue
def queue_ui(runs: list[Any]) -> str | None:
    """Sidebar: which runs to show; returns the chosen run id."""
    show = st.sidebar.radio("Show", ["Pending review", "All runs"], key="queue_filter", horizontal=True)
    shown = [r for r in runs if show == "All runs" or r.status == "pending_review"]
    if not shown:
        st.sidebar.info("No release is waiting for review." if show == "Pending review" else "No runs yet.")
        return None
    labels = {r.run.run_id: f"{r.run.job_name} · {r.run.created_at[:16].replace('T', ' ')} · "
                            f"{r.status.replace('_', ' ')} · {r.run.run_id[-6:]}" for r in shown}
    return st.sidebar.radio("Releases", list(labels), format_func=labels.get, key="queue_choice")


# ---------------------------------------------------------------------------- gate
def gate_ui(decision: GateDecision | None) -> None:
    st.subheader("Release gate")
    if decision is None:
        st.warning("No gate decision was recorded for this run (it failed before the gate).")
        return
    (st.success if decision.passed else st.error)(decision.summary())
    rows = [{"check": c.metric, "observed": _fmt(c.observed), "threshold": c.threshold,
             "result": "not applicable" if c.skipped else ("pass" if c.passed else "FAIL"),
             "note": c.note or "", "why": c.why or ""} for c in decision.checks]
    st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "—"}[v]
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ---------------------------------------------------------------------------- sections
def metrics_table(metrics: list[Metric]) -> None:
    if not metrics:
        st.info("No metric of this kind in the report.")
        return
    rows = [{"metric": m.id, "value": _fmt(m.value),
             "95% CI": f"{m.ci[0]:.3g} – {m.ci[1]:.3g}" if m.ci else "",
             "better": {"higher_is_better": "higher", "lower_is_better": "lower",
                        "closer_to_target": f"closer to {m.target:g}" if m.target is not None else "closer"}[m.direction],
             "what it means": m.explanation, "note": m.note or ""} for m in metrics]
    st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)


def fidelity_ui(report: Report) -> None:
    metrics_table(report.section("fidelity"))
    charts = report.charts
    if "column_shapes" in charts:
        st.markdown("**Column shapes** (1 = the column's distribution is identical)")
        cs = charts["column_shapes"]
        st.bar_chart(pd.DataFrame({"column": cs["columns"], "score": cs["scores"]}), x="column", y="score")
    if "pair_trends" in charts:
        pt = charts["pair_trends"]
        cells = [{"a": a, "b": b, "score": v} for a, row in zip(pt["columns"], pt["matrix"])
                 for b, v in zip(pt["columns"], row) if v is not None]
        if cells:
            st.markdown("**Column pair trends** (1 = the relation between two columns is kept)")
            st.altair_chart(alt.Chart(pd.DataFrame(cells)).mark_rect().encode(
                x=alt.X("a:N", title=None), y=alt.Y("b:N", title=None),
                color=alt.Color("score:Q", scale=alt.Scale(domain=[0, 1])), tooltip=["a", "b", "score"]),
                use_container_width=True)
    marginals = charts.get("marginals") or {}
    if marginals:
        col = st.selectbox("Distribution of a column (real vs synthetic; small real counts are suppressed)",
                           list(marginals), key="marginal_column")
        st.bar_chart(marginal_frame(marginals[col]), x="bin", y=["real", "synthetic"], stack=False)


def marginal_frame(chart: dict[str, Any]) -> pd.DataFrame:
    if chart.get("kind") == "numeric":
        e = chart["edges"]
        bins = [f"{e[i]:.3g}–{e[i + 1]:.3g}" for i in range(len(e) - 1)]
    else:
        bins = [str(c) for c in chart["categories"]]
    return pd.DataFrame({"bin": bins, "real": chart["real"], "synthetic": chart["synthetic"]})


def diversity_ui(report: Report) -> None:
    metrics_table(report.section("diversity"))
    modes = report.charts.get("modes")
    if modes and modes.get("real_share"):
        st.markdown("**Clusters of the real data and their share of synthetic rows** (mode collapse shows as "
                    "clusters with a real share but almost no synthetic share)")
        st.bar_chart(pd.DataFrame({"cluster": [f"#{i + 1}" for i in range(len(modes["real_share"]))],
                                   "real": modes["real_share"], "synthetic": modes["synthetic_share"]}),
                     x="cluster", y=["real", "synthetic"], stack=False)


def privacy_ui(report: Report) -> None:
    metrics_table(report.section("privacy"))
    dcr = report.charts.get("dcr")
    if dcr:
        st.markdown("**Distance from synthetic records to the closest real record**: training vs unseen holdout "
                    "people (the two curves should overlap; a train peak near 0 means memorisation)")
        e = dcr["edges"]
        st.line_chart(pd.DataFrame({"distance": [(e[i] + e[i + 1]) / 2 for i in range(len(e) - 1)],
                                    "train": dcr["train"], "holdout": dcr["holdout"]}), x="distance",
                      y=["train", "holdout"])
    roc = report.charts.get("membership_roc")
    if roc and roc.get("fpr"):
        st.markdown("**Membership-inference attack ROC** (the diagonal is guessing)")
        st.line_chart(pd.DataFrame({"false positive rate": roc["fpr"], "true positive rate": roc["tpr"]}),
                      x="false positive rate", y="true positive rate")


def bias_ui(report: Report) -> None:
    metrics_table(report.section("bias"))
    for attribute, groups in (report.charts.get("bias") or {}).items():
        if not groups:
            continue
        st.markdown(f"**{attribute}**: share of each group in real and synthetic data")
        frame = pd.DataFrame(groups)
        st.bar_chart(frame, x="group", y=["real_share", "synthetic_share"], stack=False)


def sequence_ui(report: Report) -> None:
    if report.data.get("kind") != "sequence":
        st.info("This is a table, not per-entity sequences: no sequence metrics.")
        return
    metrics_table(report.section("sequence"))
    steps = (report.charts.get("sequence_steps") or {}).get("scores")
    if steps:
        st.markdown("**Fidelity of the 1st, 2nd, ... event of each history**")
        st.line_chart(pd.DataFrame({"step": list(range(1, len(steps) + 1)), "score": steps}), x="step", y="score")


def ledger_ui(report: Report) -> None:
    p = report.privacy
    (st.success if p.get("private") is True else st.error)(p.get("guarantee", "unknown guarantee"))
    st.write(privacy_in_plain_words(p))
    for line in ledger_in_plain_words(p):
        st.markdown(f"- {line}")


def data_card_ui(card: dict[str, Any]) -> None:
    from reports.release import data_card_markdown
    st.markdown(data_card_markdown(card))


def history_ui(events: list[Any], reviews: list[tuple[Any, bool]], *,
               unverified: tuple[tuple[int, str], ...] = ()) -> None:
    """The run's events (those that do not verify marked, their message not shown: whoever
    forged the event wrote it) and its reviews (a reason only where a verified event vouches
    for the review, app/trail.py `verified_reviews`)."""
    bad = dict(unverified)
    st.dataframe(pd.DataFrame([{"event": e.seq, "at (UTC)": e.at[:19], "step": e.step or "",
                                "status": e.status or "",
                                "verified": "FORGED / unverified" if e.seq in bad else "yes",
                                "message": "(not shown: the event does not verify)" if e.seq in bad
                                else (e.message or "")} for e in events]), hide_index=True,
                 use_container_width=True)
    for r, vouched in reviews:
        if vouched:
            st.markdown(f"- **{r.verdict}** by {r.reviewer} at {r.at[:19]}: {r.reason}")
        else:
            st.markdown(f"- **{_plain(r.verdict)}** recorded as by {_plain(r.reviewer)} at {_plain(r.at[:19])}: "
                        "no verified signed verdict "
                        "vouches for this review (reason not shown)")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def _plain(text: Any) -> str:
    """Text a forger may have written (names, statuses, reasons of unverified events) shown
    as literal text: markdown's control characters escaped (review R, s12: a forged event
    could put links and formatting on a reviewer's page)."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def unverified_ui(checked: Any) -> None:
    """Events of this run that do not verify (app/trail.py): listed by number and why, never
    by their content; they count for nothing and the review below goes on."""
    if checked.unverified:
        lines = "\n".join(f"- event #{seq}: {_plain(why)}" for seq, why in checked.unverified)
        st.error(f"{len(checked.unverified)} event(s) of this run do not verify and count for nothing (the registry "
                 f"records it as {_plain(checked.recorded_status.replace('_', ' '))}; its verified status is "
                 f"{checked.status.replace('_', ' ')}). Tell an administrator; your review is not affected.\n\n"
                 + lines)
    if not checked.signatures_checked:
        st.warning("signatures not checked: no reviewers file with public keys (set $SYNTHKIT_REVIEWERS)")


# ---------------------------------------------------------------------------- decision
def decision_ui(*, run_id: str, status: str, blocked: str | None,
                key_hint: str | None = None) -> tuple[str, str, bytes | None] | None:
    """The approve/reject form (a form, so the reason, the signing key and the button press
    arrive together). Returns (verdict, reason, uploaded key bytes or None) when a button
    was pressed. Every verdict is signed with the reviewer's own key: the one at `key_hint`
    on this machine, or a key file the reviewer uploads for this one signature (kept in
    memory for the request only, never stored)."""
    st.subheader("Your decision")
    if status != "pending_review":
        st.info(f"This run is {status.replace('_', ' ')}; there is nothing to decide.")
        return None
    if blocked:
        st.warning(blocked)
    with st.form(f"decision_{run_id}"):
        reason = st.text_area("Reason (recorded in the audit trail with your name)", key=f"reason_{run_id}")
        uploaded = st.file_uploader("Your signing key (only if it is not on this machine"
                                    + (f" at {key_hint}" if key_hint else "") + ")", key=f"key_{run_id}")
        left, right = st.columns(2)
        approve = left.form_submit_button("Approve release", type="primary", disabled=blocked is not None,
                                          key=f"approve_{run_id}")
        reject = right.form_submit_button("Reject", key=f"reject_{run_id}")
    key = uploaded.getvalue() if uploaded is not None else None
    if approve:
        return "approve", reason, key
    if reject:
        return "reject", reason, key
    return None


def trail_ui(problems: list[str]) -> None:
    """The registry's own check (hash chain, rows it vouches for, triggers): shown above
    everything else when it fails, because then no record here can be trusted."""
    if problems:
        st.error(f"The registry's audit trail does not verify ({len(problems)} problem(s)); nothing can be "
                 "released until an administrator has investigated. First: " + problems[0])
