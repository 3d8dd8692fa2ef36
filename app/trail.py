"""What the dashboard shows of each run's status: the VERIFIED status, never the raw one.

Whoever can write the registry's database can append an "approved" or "released" event
with a correct chain hash (the chain has no secret). `reports.release.trail_check` replays
each run's events and counts a verdict only when its signature verifies (and a release only
when its folder's manifest still hashes to the record); the dashboard reads the status from
there, lists the events that do not verify (event number and why, never a reason or a data
value) and quotes a review's reason only when a verified event vouches for that review.
Plain functions without Streamlit, so tests call them directly (app/dashboard.py renders).
"""

from __future__ import annotations

from dataclasses import dataclass

from reports.registry import Registry, ReviewRecord, RunRecord
from reports.release import trail_check
from reports.review import ReviewerConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStatus:
    """One run as the queue and the release page show it."""
    run: RunRecord
    status: str                              # replayed from verified events (what the dashboard acts on)
    recorded_status: str                     # the latest status event, forged or not (shown only when it differs)
    updated_at: str
    unverified: tuple[tuple[int, str], ...]  # (event number, why it does not verify)
    signatures_checked: bool                 # False: no reviewers file, keys not checked (form only)


def run_statuses(registry: Registry, config: ReviewerConfig | None, *,
                 run_id: str | None = None) -> list[RunStatus]:
    """Every run (or `run_id`), newest first, with its verified status."""
    trail = trail_check(registry, config, run_id=run_id)
    out = []
    for summary in registry.runs():
        rid = summary.run.run_id
        if run_id is not None and rid != run_id:
            continue
        out.append(RunStatus(run=summary.run, status=trail.statuses.get(rid, summary.status),
                             recorded_status=summary.status, updated_at=summary.updated_at,
                             unverified=tuple(trail.forged.get(rid, ())),
                             signatures_checked=trail.signatures_checked))
    return out


def run_status(registry: Registry, config: ReviewerConfig | None, run_id: str) -> RunStatus:
    """`run_statuses` of one run (the run must exist: Registry.run raises a clear error)."""
    registry.run(run_id)  # a clear error when the run does not exist
    return run_statuses(registry, config, run_id=run_id)[0]


def verified_reviews(registry: Registry, run_id: str, unverified: tuple[tuple[int, str], ...]) -> list[
        tuple[ReviewRecord, bool]]:
    """The run's review rows, each with whether a verified review event vouches for it (a
    signed verdict naming the same reviewer and time, not among `unverified`). The reason of
    an unvouched row is not shown: only whoever forged it wrote it."""
    bad = {seq for seq, _why in unverified}
    vouched = set()
    for e in registry.events(run_id):
        payload = e.details.get("payload") if e.step == "review" else None
        if e.seq not in bad and isinstance(payload, dict) and e.details.get("signature"):
            vouched.add((payload.get("reviewer"), payload.get("at")))
    return [(r, (r.reviewer, r.at) in vouched) for r in registry.reviews(run_id)]
