"""The evaluation report: typed metrics and one versioned JSON document.

A `Report` is what the evaluation stage hands to the HTML renderer, the release gate and
the review dashboard. Everything in it is an aggregate (a score, a share, a count of
synthetic rows, a histogram of public or synthetic bins); no row of private data ever
enters it, so the JSON and the HTML may be shown to reviewers who are not allowed to see
the real records.

Metric ids are stable and dotted because release policies name them; `METRIC_IDS` lists
every id the evaluation can emit (with its direction), `{attribute}` standing for a
sensitive column's name. Changes here are additive only: the gate and the dashboard are
built on this module.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from synthkit.errors import ArtifactError, SynthkitError

REPORT_FORMAT_VERSION = 1

Direction = Literal["higher_is_better", "lower_is_better", "closer_to_target"]
DIRECTIONS: tuple[str, ...] = ("higher_is_better", "lower_is_better", "closer_to_target")
Section = Literal["fidelity", "diversity", "privacy", "bias", "sequence", "validation"]
SECTIONS: tuple[str, ...] = ("fidelity", "diversity", "privacy", "bias", "sequence", "validation")

# id -> (direction, target or None). `{attribute}` is a sensitive column's name.
METRIC_IDS: dict[str, tuple[Direction, float | None]] = {
    # fidelity
    "fidelity.quality.overall": ("higher_is_better", None),
    "fidelity.quality.column_shapes": ("higher_is_better", None),
    "fidelity.quality.column_pair_trends": ("higher_is_better", None),
    "fidelity.detection.auc": ("closer_to_target", 0.5),
    "fidelity.detection.score": ("higher_is_better", None),
    "fidelity.ml_utility.tstr": ("higher_is_better", None),
    "fidelity.ml_utility.trtr": ("higher_is_better", None),
    "fidelity.ml_utility.ratio": ("higher_is_better", None),
    # the worst TSTR/TRTR ratio over every declared target (schema `targets` and --target);
    # the three ids above describe the first target only
    "fidelity.ml_utility.min_ratio": ("higher_is_better", None),
    # share of strong real associations (|rank/phi r| >= 0.2) whose sign the synthetic data keeps
    "fidelity.association_signs.kept_share": ("higher_is_better", None),
    # diversity and mode collapse
    "diversity.category_coverage": ("higher_is_better", None),
    "diversity.range_coverage": ("higher_is_better", None),
    "diversity.prdc.precision": ("higher_is_better", None),
    "diversity.prdc.recall": ("higher_is_better", None),
    "diversity.prdc.density": ("closer_to_target", 1.0),
    "diversity.prdc.coverage": ("higher_is_better", None),
    "diversity.mode_coverage": ("higher_is_better", None),
    "diversity.mode_mass_distance": ("lower_is_better", None),
    "diversity.duplicate_rate": ("lower_is_better", None),
    # privacy leakage
    "privacy.exact_copies.rate": ("lower_is_better", None),
    "privacy.exact_copies.excess": ("lower_is_better", None),
    "privacy.dcr.train_closer_share": ("lower_is_better", None),
    "privacy.dcr.distance_ratio": ("higher_is_better", None),
    "privacy.membership_inference.auc": ("lower_is_better", None),
    "privacy.singling_out.risk": ("lower_is_better", None),
    "privacy.attribute_inference.risk": ("lower_is_better", None),
    # bias, per sensitive attribute
    "bias.{attribute}.representation_gap": ("lower_is_better", None),
    "bias.{attribute}.min_representation_ratio": ("closer_to_target", 1.0),
    "bias.{attribute}.max_fidelity_gap": ("lower_is_better", None),
    "bias.{attribute}.max_utility_gap": ("lower_is_better", None),
    # sequences (entity + events data)
    "sequence.length_similarity": ("higher_is_better", None),
    "sequence.inter_event_time_similarity": ("higher_is_better", None),
    "sequence.step_marginals": ("higher_is_better", None),
    "sequence.autocorrelation_difference": ("lower_is_better", None),
    "sequence.transition_similarity": ("higher_is_better", None),
    "sequence.ordering_violations": ("lower_is_better", None),
    # validation (great-expectations)
    "validation.success_rate": ("higher_is_better", None),
    "validation.rules.violation_rate": ("lower_is_better", None),
}


def metric_spec(metric_id: str) -> tuple[Direction, float | None]:
    """Direction and target of `metric_id`, matching `{attribute}` patterns; used by
    policies to check that every id they name exists."""
    if metric_id in METRIC_IDS:
        return METRIC_IDS[metric_id]
    parts = metric_id.split(".")
    if len(parts) == 3 and parts[0] == "bias":
        key = f"bias.{{attribute}}.{parts[2]}"
        if key in METRIC_IDS:
            return METRIC_IDS[key]
    raise SynthkitError(f"unknown metric id {metric_id!r}; see reports.model.METRIC_IDS for the ids the evaluation emits")


def is_known_metric_id(metric_id: str) -> bool:
    try:
        metric_spec(metric_id)
    except SynthkitError:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One number with what it means. `value` is None when it could not be computed
    (`note` says why), so a gate can tell "missing" from "bad"."""

    id: str
    section: str
    value: float | None
    direction: Direction
    explanation: str
    target: float | None = None
    ci: tuple[float, float] | None = None
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise SynthkitError(f"metric {self.id!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.section not in SECTIONS:
            raise SynthkitError(f"metric {self.id!r}: section must be one of {SECTIONS}, got {self.section!r}")
        if self.value is not None:
            v = float(self.value)
            object.__setattr__(self, "value", v if math.isfinite(v) else None)
            if not math.isfinite(v) and self.note is None:
                object.__setattr__(self, "note", "not a finite number")
        if self.ci is not None:
            object.__setattr__(self, "ci", (float(self.ci[0]), float(self.ci[1])))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "section": self.section, "value": self.value, "direction": self.direction,
                "target": self.target, "ci": list(self.ci) if self.ci is not None else None,
                "explanation": self.explanation, "note": self.note, "details": _jsonable(self.details)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metric:
        ci = d.get("ci")
        return cls(id=d["id"], section=d["section"], value=d.get("value"), direction=d["direction"],
                   target=d.get("target"), ci=tuple(ci) if ci is not None else None,  # type: ignore[arg-type]
                   explanation=d.get("explanation", ""), note=d.get("note"), details=dict(d.get("details") or {}))


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The evaluation of one synthetic dataset against real train/holdout data."""

    format_version: int
    created_at: str
    model: dict[str, Any]
    privacy: dict[str, Any]
    data: dict[str, Any]
    metrics: list[Metric]
    validation: dict[str, Any]
    charts: dict[str, Any]

    def metric(self, id: str) -> Metric:  # noqa: A002 (the contract's name)
        for m in self.metrics:
            if m.id == id:
                return m
        raise SynthkitError(f"the report has no metric {id!r}; it has {len(self.metrics)} metrics "
                            "(see Report.metric_ids())")

    def metric_ids(self) -> list[str]:
        return [m.id for m in self.metrics]

    def section(self, name: str) -> list[Metric]:
        return [m for m in self.metrics if m.section == name]

    def to_dict(self) -> dict[str, Any]:
        return {"format": "synthkit-report", "format_version": self.format_version, "created_at": self.created_at,
                "model": _jsonable(self.model), "privacy": _jsonable(self.privacy), "data": _jsonable(self.data),
                "metrics": [m.to_dict() for m in self.metrics], "validation": _jsonable(self.validation),
                "charts": _jsonable(self.charts)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        if not isinstance(d, dict) or d.get("format", "synthkit-report") != "synthkit-report":
            raise ArtifactError("not a synthkit report (the 'format' field is missing or different)")
        version = d.get("format_version")
        if version != REPORT_FORMAT_VERSION:
            raise ArtifactError(f"report format version {version!r} is not supported (expected "
                                f"{REPORT_FORMAT_VERSION}); use the synthkit version that wrote it")
        try:
            return cls(format_version=int(version), created_at=str(d["created_at"]), model=dict(d.get("model") or {}),
                       privacy=dict(d.get("privacy") or {}), data=dict(d.get("data") or {}),
                       metrics=[Metric.from_dict(m) for m in d.get("metrics") or []],
                       validation=dict(d.get("validation") or {}), charts=dict(d.get("charts") or {}))
        except (KeyError, TypeError) as err:
            raise ArtifactError(f"the report is malformed ({type(err).__name__}: {err})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON atomically (temporary file in the same folder, then rename)."""
        atomic_write_text(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        p = Path(path)
        if not p.is_file():
            raise ArtifactError(f"report file {str(p)!r} does not exist")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ArtifactError(f"report file {str(p)!r} is not valid JSON") from None
        return cls.from_dict(data)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN/inf become None (JSON has no NaN, and a gate must see 'missing')."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None  # type: ignore[assignment]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if np is not None and isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if np is not None and isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int) or (np is not None and isinstance(value, np.integer)):
        return int(value)
    if isinstance(value, float) or (np is not None and isinstance(value, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return str(value)
