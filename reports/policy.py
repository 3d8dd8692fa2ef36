"""Release policies: which privacy guarantee and which metric thresholds a synthetic
dataset must meet before a person may approve it.

A policy is a small YAML file (see policies/default.yaml) whose thresholds name the
stable metric ids of `reports.model.METRIC_IDS`. Validation collects EVERY problem
(unknown keys, unknown metric ids, a threshold on the wrong side of a metric's direction,
a non-number) and raises one `PolicyError` listing them all, so an author fixes a policy
in one pass. The policy's SHA-256 is recorded with each gate decision: an auditor can tell
exactly which thresholds a release was held to.

Format (every key optional unless marked):

    name: default                      # required; [a-z0-9_-]
    description: text
    privacy:
      require_dp: true                 # a model trained with --no-privacy never passes
      unit: row                        # "row": any unit; "entity": entity-level DP required
      max_epsilon: 10                  # epsilon actually spent, from the bundle's ledger
      max_delta: 1.0e-5
    checks:
      - metric: privacy.membership_inference.auc   # required; a METRIC_IDS id or bias.*.NAME
        max: 0.6                       # for lower_is_better (and closer_to_target) metrics
        min: 0.5                       # for higher_is_better (and closer_to_target) metrics
        max_distance: 0.1              # closer_to_target only: |value - target| <= max_distance
        use: value                     # value | ci_low | ci_high: test the pessimistic CI end
        if_missing: fail               # fail | skip: a metric absent or not computable
        why: text                      # shown next to the check in the gate result
    release:
      auto_release: false              # release without a person when every check passes
      reviewers_required: 1            # distinct approvals needed
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from reports.model import METRIC_IDS, metric_spec
from synthkit.errors import SynthkitError

CheckUse = Literal["value", "ci_low", "ci_high"]
IfMissing = Literal["fail", "skip"]
PolicyUnit = Literal["row", "entity"]

POLICY_DIR = Path(__file__).resolve().parents[1] / "policies"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

_TOP_KEYS = {"name", "description", "privacy", "checks", "release"}
_PRIVACY_KEYS = {"require_dp", "unit", "max_epsilon", "max_delta"}
_CHECK_KEYS = {"metric", "min", "max", "max_distance", "use", "if_missing", "why"}
_RELEASE_KEYS = {"auto_release", "reviewers_required"}


class PolicyError(SynthkitError):
    """A policy file is invalid; carries every problem found."""

    def __init__(self, problems: list[str], *, where: str = "policy") -> None:
        self.problems = list(problems)
        head = f"invalid {where}"
        msg = f"{head}: {problems[0]}" if len(problems) == 1 else \
            f"{head} ({len(problems)} problems): " + "; ".join(problems)
        super().__init__(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivacyRequirement:
    require_dp: bool = True
    unit: PolicyUnit = "row"
    max_epsilon: float | None = None
    max_delta: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One threshold on one metric id (or on every `bias.*.NAME` metric)."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_distance: float | None = None
    use: CheckUse = "value"
    if_missing: IfMissing = "fail"
    why: str | None = None

    @property
    def is_pattern(self) -> bool:
        return "*" in self.metric


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRule:
    auto_release: bool = False
    reviewers_required: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    name: str
    description: str
    privacy: PrivacyRequirement
    checks: tuple[Check, ...]
    release: ReleaseRule
    sha256: str                 # of the canonical YAML text the policy was read from

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "policy", sha256: str | None = None) -> Policy:
        return parse_policy(data, where=where, sha256=sha256)

    @classmethod
    def load(cls, name_or_path: str | Path) -> Policy:
        return load_policy(name_or_path)

    def to_dict(self) -> dict[str, Any]:
        checks = []
        for c in self.checks:
            d: dict[str, Any] = {"metric": c.metric}
            for key in ("min", "max", "max_distance"):
                if getattr(c, key) is not None:
                    d[key] = getattr(c, key)
            if c.use != "value":
                d["use"] = c.use
            if c.if_missing != "fail":
                d["if_missing"] = c.if_missing
            if c.why:
                d["why"] = c.why
            checks.append(d)
        priv: dict[str, Any] = {"require_dp": self.privacy.require_dp, "unit": self.privacy.unit}
        if self.privacy.max_epsilon is not None:
            priv["max_epsilon"] = self.privacy.max_epsilon
        if self.privacy.max_delta is not None:
            priv["max_delta"] = self.privacy.max_delta
        return {"name": self.name, "description": self.description, "privacy": priv, "checks": checks,
                "release": {"auto_release": self.release.auto_release,
                            "reviewers_required": self.release.reviewers_required}}


def shipped_policies() -> dict[str, Path]:
    """Name -> path of the policies that ship with synthkit (policies/*.yaml)."""
    if not POLICY_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(POLICY_DIR.glob("*.yaml"))}


def load_policy(name_or_path: str | Path) -> Policy:
    """A shipped policy by name ("default", "healthcare", "finance") or a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        shipped = shipped_policies()
        if str(name_or_path) in shipped:
            path = shipped[str(name_or_path)]
        else:
            raise PolicyError([f"no policy file {str(name_or_path)!r} and no shipped policy of that name; "
                               f"shipped: {sorted(shipped)}"], where="policy reference")
    from synthkit import safeload
    try:  # bounded size, depth and YAML alias expansion (see synthkit.safeload)
        text = safeload.read_text(path, max_bytes=safeload.POLICY_MAX_BYTES, where=f"policy {path.name}")
        data = safeload.load_yaml(text, where=f"policy {path.name}")
    except safeload.InputLimitError as err:
        raise PolicyError([err.problem], where=f"policy {path.name}") from None
    return parse_policy(data, where=f"policy {path.name}", sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def parse_policy(data: Any, *, where: str = "policy", sha256: str | None = None) -> Policy:
    """Validate a parsed policy document; raise one PolicyError listing every problem."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise PolicyError([f"expected a mapping at the top level, got {type(data).__name__}"], where=where)
    _unknown(data, _TOP_KEYS, "top level", problems)

    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"'name' must be a short lowercase name ([a-z0-9_-], up to 64), got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append("'description' must be text")
        description = ""

    privacy = _parse_privacy(data.get("privacy", {}), problems)
    checks = _parse_checks(data.get("checks", []), problems)
    release = _parse_release(data.get("release", {}), problems)
    if release.auto_release and not privacy.require_dp:
        problems.append("release.auto_release requires privacy.require_dp: a release without a formal "
                        "guarantee always needs a person's approval")

    if problems:
        raise PolicyError(problems, where=where)
    if sha256 is None:
        sha256 = hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode("utf-8")).hexdigest()
    return Policy(name=str(name), description=description, privacy=privacy, checks=tuple(checks),
                  release=release, sha256=sha256)


def _unknown(d: dict[str, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    extra = sorted(str(k) for k in d if k not in allowed)
    if extra:
        problems.append(f"unknown key(s) {extra} in {where}; allowed: {sorted(allowed)}")


def _number(value: Any, what: str, problems: list[str], *, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        problems.append(f"{what} must be a finite number, got {value!r}")
        return None
    if positive and value <= 0:
        problems.append(f"{what} must be > 0, got {value!r}")
        return None
    return float(value)


def _bool(value: Any, what: str, default: bool, problems: list[str]) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.append(f"{what} must be true or false, got {value!r}")
        return default
    return value


def _parse_privacy(d: Any, problems: list[str]) -> PrivacyRequirement:
    if not isinstance(d, dict):
        problems.append("'privacy' must be a mapping")
        return PrivacyRequirement()
    _unknown(d, _PRIVACY_KEYS, "privacy", problems)
    require_dp = _bool(d.get("require_dp"), "privacy.require_dp", True, problems)
    unit = d.get("unit", "row")
    if unit not in ("row", "entity"):
        problems.append(f"privacy.unit must be 'row' or 'entity', got {unit!r}")
        unit = "row"
    max_eps = _number(d.get("max_epsilon"), "privacy.max_epsilon", problems, positive=True)
    max_delta = _number(d.get("max_delta"), "privacy.max_delta", problems, positive=True)
    if max_delta is not None and max_delta >= 1:
        problems.append(f"privacy.max_delta must be < 1, got {max_delta!r}")
    if not require_dp and (max_eps is not None or max_delta is not None or unit == "entity"):
        problems.append("privacy.max_epsilon/max_delta/unit: entity only make sense with require_dp: true")
    return PrivacyRequirement(require_dp=require_dp, unit=unit, max_epsilon=max_eps, max_delta=max_delta)


def _parse_checks(items: Any, problems: list[str]) -> list[Check]:
    if not isinstance(items, list):
        problems.append("'checks' must be a list of {metric: ..., min/max/max_distance: ...}")
        return []
    out: list[Check] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(items):
        where = f"checks[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where} must be a mapping")
            continue
        _unknown(item, _CHECK_KEYS, where, problems)
        metric = item.get("metric")
        if not isinstance(metric, str) or not metric:
            problems.append(f"{where}: 'metric' (a metric id) is required")
            continue
        where = f"{where} ({metric})"
        direction, target = _direction(metric, where, problems)
        lo = _number(item.get("min"), f"{where}.min", problems)
        hi = _number(item.get("max"), f"{where}.max", problems)
        dist = _number(item.get("max_distance"), f"{where}.max_distance", problems)
        if lo is None and hi is None and dist is None and not any(k in item for k in ("min", "max", "max_distance")):
            problems.append(f"{where}: give a threshold (min, max or max_distance)")
        if direction == "higher_is_better" and (hi is not None or dist is not None):
            problems.append(f"{where}: the metric is higher_is_better, so only 'min' makes sense")
        if direction == "lower_is_better" and (lo is not None or dist is not None):
            problems.append(f"{where}: the metric is lower_is_better, so only 'max' makes sense")
        if dist is not None and dist < 0:
            problems.append(f"{where}.max_distance must be >= 0")
        if lo is not None and hi is not None and lo > hi:
            problems.append(f"{where}: min {lo:g} is above max {hi:g}; nothing could pass")
        if direction == "closer_to_target" and target is None and dist is not None:
            problems.append(f"{where}: max_distance needs a metric with a target")
        use = item.get("use", "value")
        if use not in ("value", "ci_low", "ci_high"):
            problems.append(f"{where}.use must be value, ci_low or ci_high, got {use!r}")
            use = "value"
        if_missing = item.get("if_missing", "fail")
        if if_missing not in ("fail", "skip"):
            problems.append(f"{where}.if_missing must be fail or skip, got {if_missing!r}")
            if_missing = "fail"
        why = item.get("why")
        if why is not None and not isinstance(why, str):
            problems.append(f"{where}.why must be text")
            why = None
        for bound in (("min", lo), ("max", hi), ("max_distance", dist)):
            if bound[1] is not None:
                if (metric, bound[0]) in seen:
                    problems.append(f"{where}: a second '{bound[0]}' check on the same metric")
                seen.add((metric, bound[0]))
        out.append(Check(metric=metric, min=lo, max=hi, max_distance=dist, use=use, if_missing=if_missing, why=why))
    return out


def _direction(metric: str, where: str, problems: list[str]) -> tuple[str | None, float | None]:
    """Direction and target of a policy metric reference; `bias.*.NAME` is the one pattern
    allowed (sensitive attribute names differ per dataset)."""
    if "*" in metric:
        parts = metric.split(".")
        if not (len(parts) == 3 and parts[0] == "bias" and parts[1] == "*" and "*" not in parts[2]):
            problems.append(f"{where}: '*' is allowed only as the attribute of a bias metric (bias.*.NAME)")
            return None, None
    try:
        direction, target = metric_spec(metric)
    except SynthkitError:
        close = difflib.get_close_matches(metric, list(METRIC_IDS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(f"{where}: unknown metric id; {hint}the ids are listed in reports.model.METRIC_IDS "
                        "(`synthkit policy check --list-metrics`)")
        return None, None
    return direction, target


def _parse_release(d: Any, problems: list[str]) -> ReleaseRule:
    if not isinstance(d, dict):
        problems.append("'release' must be a mapping")
        return ReleaseRule()
    _unknown(d, _RELEASE_KEYS, "release", problems)
    auto = _bool(d.get("auto_release"), "release.auto_release", False, problems)
    n = d.get("reviewers_required", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        problems.append(f"release.reviewers_required must be a whole number from 1 to 10, got {n!r}")
        n = 1
    return ReleaseRule(auto_release=auto, reviewers_required=n)
