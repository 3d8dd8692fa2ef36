"""The release gate: a pure function from (report, policy) to a decision.

Pure on purpose: the same report and policy always give the same decision, with no clock,
file or database involved, so a decision can be recomputed by an auditor and unit-tested
exhaustively. One row per check (metric, observed, threshold, passed) so a reviewer sees
exactly why a dataset was held back.

The privacy rows come first and are not negotiable by metrics: a model trained without
DP (`privacy["private"]` is not True) fails a policy that requires DP whatever its
scores, and an entity-level requirement fails unless the ledger's unit is "entity" (a
row-level guarantee protects one visit, not a patient with forty visits).
A metric that is absent or could not be computed fails its check unless the policy says
`if_missing: skip`: "we could not measure the leakage" is not "no leakage". A metric whose
details say `informative: False` (an attack that does not beat random guessing) and whose
value misses the threshold is such a check too: not a measured risk above the limit.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any

from reports.model import Metric, Report, metric_spec
from reports.policy import Check, Policy

Observed = float | str | bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One row of the gate: what was required and what the report shows."""

    metric: str
    observed: Observed
    threshold: str              # human-readable requirement, e.g. "<= 0.6", "= entity", "required"
    passed: bool
    skipped: bool = False       # absent metric allowed by `if_missing: skip`
    note: str | None = None     # why a row failed or was skipped, in plain words
    why: str | None = None      # the policy's reason for the threshold

    def to_dict(self) -> dict[str, Any]:
        obs = self.observed
        if isinstance(obs, float) and not math.isfinite(obs):
            obs = str(obs)
        return {"metric": self.metric, "observed": obs, "threshold": self.threshold, "passed": self.passed,
                "skipped": self.skipped, "note": self.note, "why": self.why}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        obs = d.get("observed")
        if obs in ("inf", "-inf", "nan"):
            obs = float(obs)
        return cls(metric=d["metric"], observed=obs, threshold=d["threshold"], passed=bool(d["passed"]),
                   skipped=bool(d.get("skipped", False)), note=d.get("note"), why=d.get("why"))


@dataclass(frozen=True, slots=True, kw_only=True)
class GateDecision:
    policy: str
    policy_sha256: str
    passed: bool
    checks: tuple[CheckResult, ...]
    auto_release: bool           # the policy lets a passing run release without a person
    reviewers_required: int

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        n_pass = sum(c.passed and not c.skipped for c in self.checks)
        n_skip = sum(c.skipped for c in self.checks)
        n_run = len(self.checks) - n_skip
        head = "PASSED" if self.passed else "REJECTED"
        tail = f", {n_skip} not applicable" if n_skip else ""
        return f"gate {head} by policy {self.policy!r}: {n_pass} of {n_run} checks passed{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "policy_sha256": self.policy_sha256, "passed": self.passed,
                "auto_release": self.auto_release, "reviewers_required": self.reviewers_required,
                "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateDecision:
        return cls(policy=d["policy"], policy_sha256=d["policy_sha256"], passed=bool(d["passed"]),
                   auto_release=bool(d.get("auto_release", False)),
                   reviewers_required=int(d.get("reviewers_required", 1)),
                   checks=tuple(CheckResult.from_dict(c) for c in d["checks"]))


def evaluate_gate(report: Report, policy: Policy) -> GateDecision:
    """Every check of `policy` against `report`; passed only if all rows pass."""
    rows = _privacy_rows(report.privacy, policy)
    for check in policy.checks:
        rows.extend(_metric_rows(report, check))
    passed = bool(rows) and all(r.passed for r in rows)
    return GateDecision(policy=policy.name, policy_sha256=policy.sha256, passed=passed, checks=tuple(rows),
                        auto_release=policy.release.auto_release,
                        reviewers_required=policy.release.reviewers_required)


gate = evaluate_gate


# ---------------------------------------------------------------------------- privacy
def _privacy_rows(privacy: dict[str, Any], policy: Policy) -> list[CheckResult]:
    req = policy.privacy
    if not req.require_dp:
        return [CheckResult(metric="privacy.differential_privacy", observed=privacy.get("private") is True,
                            threshold="not required", passed=True,
                            note="this policy accepts data without a formal privacy guarantee")]
    private = privacy.get("private") is True
    rows = [CheckResult(
        metric="privacy.differential_privacy", observed=private, threshold="required", passed=private,
        note=None if private else "the model was trained without differential privacy; no metric can make up for that",
        why="only a formal guarantee bounds what the synthetic data reveals about any one person")]
    unit = privacy.get("unit")
    if req.unit == "entity":
        ok = private and unit == "entity"
        rows.append(CheckResult(
            metric="privacy.unit", observed=unit if isinstance(unit, str) else None, threshold="= entity", passed=ok,
            note=None if ok else "the guarantee must protect every entity (patient, account) with all of its "
                                 "rows, not single rows; fit with an entity_key",
            why="a person with many rows is exposed many times under a row-level guarantee"))
    if req.max_epsilon is not None:
        eps = _finite(privacy.get("epsilon_spent")) if private else None
        ok = eps is not None and eps <= req.max_epsilon * (1 + 1e-9)
        rows.append(CheckResult(
            metric="privacy.epsilon", observed=eps if eps is not None else (math.inf if not private else None),
            threshold=f"<= {req.max_epsilon:g}", passed=ok,
            note=None if ok else ("no finite epsilon: no formal guarantee" if eps is None
                                  else "the privacy loss spent is above the policy's cap")))
    if req.max_delta is not None:
        delta = _finite(privacy.get("target_delta")) if private else None
        ok = delta is not None and delta <= req.max_delta * (1 + 1e-9)
        rows.append(CheckResult(
            metric="privacy.delta", observed=delta, threshold=f"<= {req.max_delta:g}", passed=ok,
            note=None if ok else ("no delta recorded: no formal guarantee" if delta is None
                                  else "delta (the chance the guarantee fails) is above the policy's cap")))
    return rows


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------------------- metrics
def _metric_rows(report: Report, check: Check) -> list[CheckResult]:
    threshold = _threshold_text(check)
    if check.is_pattern:
        matches = [m for m in report.metrics if fnmatch.fnmatchcase(m.id, check.metric)]
        if not matches:
            return [_missing(check, check.metric, threshold, "no metric of this kind is in the report "
                             "(no sensitive attribute declared in the schema?)")]
        return [_row(m, check, threshold) for m in matches]
    metric = next((m for m in report.metrics if m.id == check.metric), None)
    if metric is None:
        return [_missing(check, check.metric, threshold, "the report has no such metric")]
    return [_row(metric, check, threshold)]


def _missing(check: Check, metric_id: str, threshold: str, note: str) -> CheckResult:
    if check.if_missing == "skip":
        return CheckResult(metric=metric_id, observed=None, threshold=threshold, passed=True, skipped=True,
                           note=f"{note}; not applicable (policy: if_missing: skip)", why=check.why)
    return CheckResult(metric=metric_id, observed=None, threshold=threshold, passed=False,
                       note=f"{note}; a check that cannot be measured fails", why=check.why)


def _row(metric: Metric, check: Check, threshold: str) -> CheckResult:
    value = _observed(metric, check.use)
    if value is None:
        what = "no confidence interval" if check.use != "value" and metric.value is not None else "no value"
        reason = f"{what}" + (f" ({metric.note})" if metric.note else "")
        return _missing(check, metric.id, threshold, reason)
    ok = True
    notes = []
    if check.min is not None and not value >= check.min:
        ok = False
        notes.append(f"below the minimum {check.min:g}")
    if check.max is not None and not value <= check.max:
        ok = False
        notes.append(f"above the maximum {check.max:g}")
    if check.max_distance is not None:
        target = metric.target
        if target is None:
            target = metric_spec(metric.id)[1]
        if target is None or not abs(value - target) <= check.max_distance:
            ok = False
            notes.append(f"further than {check.max_distance:g} from the ideal {target:g}" if target is not None
                         else "the metric has no target value")
    if not ok and metric.details.get("informative") is False:
        # An attack that does not beat random guessing measures nothing (the report says
        # "not informative"): its wide interval is no measured risk above the limit, and no
        # proof of one below it either. It is a check that could not be measured, so the
        # policy's if_missing decides (fail unless `skip`); a bound that holds still passes.
        what = metric.note or "the estimate is not informative"
        missing = _missing(check, metric.id, threshold,
                           f"not measured: {what}, so it cannot show {threshold}")
        return CheckResult(metric=metric.id, observed=value, threshold=threshold, passed=missing.passed,
                           skipped=missing.skipped, note=missing.note, why=check.why)
    return CheckResult(metric=metric.id, observed=value, threshold=threshold, passed=ok,
                       note="; ".join(notes) or None, why=check.why)


def _observed(metric: Metric, use: str) -> float | None:
    if use == "value":
        return _finite(metric.value)
    if metric.ci is None:
        return None
    return _finite(metric.ci[0] if use == "ci_low" else metric.ci[1])


def _threshold_text(check: Check) -> str:
    parts = []
    of = {"value": "", "ci_low": "CI low ", "ci_high": "CI high "}[check.use]
    if check.min is not None:
        parts.append(f"{of}>= {check.min:g}")
    if check.max is not None:
        parts.append(f"{of}<= {check.max:g}")
    if check.max_distance is not None:
        target = metric_spec(check.metric)[1]
        parts.append(f"{of}within {check.max_distance:g} of {target:g}" if target is not None
                     else f"{of}within {check.max_distance:g} of target")
    return " and ".join(parts)
