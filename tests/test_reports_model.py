"""The report contract (reports/model.py): JSON round trip, ids, atomic save, and no
private value in what leaves the evaluation (JSON and HTML)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import reports
from reports.model import METRIC_IDS, Metric, Report, is_known_metric_id, metric_spec
from synthkit.errors import ArtifactError, SynthkitError
from synthkit.schema import Schema
from test_reports_metrics import HOLDOUT, SCHEMA, TRAIN, mixture


def _report() -> Report:
    m = Metric(id="privacy.membership_inference.auc", section="privacy", value=0.61, direction="lower_is_better",
               ci=(0.55, 0.67), explanation="x", details={"n": np.int64(3), "share": np.float64(0.5)})
    return Report(format_version=1, created_at="2026-01-01T00:00:00+00:00", model={"class": "DPTVAE"},
                  privacy={"private": False}, data={"n_train": 3}, metrics=[m], validation={}, charts={})


def test_round_trip_and_lookup(tmp_path):
    r = _report()
    r.save(tmp_path / "r.json")
    back = Report.load(tmp_path / "r.json")
    assert back.to_dict() == r.to_dict()
    assert back.metric("privacy.membership_inference.auc").ci == (0.55, 0.67)
    with pytest.raises(SynthkitError, match="no metric"):
        back.metric("fidelity.nope")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_non_finite_values_become_missing():
    m = Metric(id="fidelity.detection.auc", section="fidelity", value=float("nan"), direction="closer_to_target",
               target=0.5, explanation="x")
    assert m.value is None and m.note
    json.dumps(m.to_dict(), allow_nan=False)


def test_load_refuses_other_versions(tmp_path):
    d = _report().to_dict()
    d["format_version"] = 99
    (tmp_path / "r.json").write_text(json.dumps(d))
    with pytest.raises(ArtifactError, match="version"):
        Report.load(tmp_path / "r.json")


def test_metric_ids_and_patterns():
    assert metric_spec("bias.sex.max_fidelity_gap") == ("lower_is_better", None)
    assert metric_spec("fidelity.detection.auc") == ("closer_to_target", 0.5)
    assert not is_known_metric_id("bias.sex.nope") and not is_known_metric_id("privacy.nope")
    for mid, (direction, target) in METRIC_IDS.items():
        assert (target is not None) == (direction == "closer_to_target"), mid


def test_no_private_value_leaves_the_evaluation(tmp_path):
    """A canary category held by a few real rows, and the real extremes of a column, must
    appear neither in the JSON nor in the HTML (charts use public or synthetic bins)."""
    schema = Schema.from_dict({"sensitive": ["group"], "columns": {
        "x": "continuous", "y": "continuous", "cat": "categorical",
        "group": {"kind": "categorical", "categories": ["a", "b"]}, "age": "integer", "flag": "boolean"}})
    train = TRAIN.copy()
    train.loc[:4, "cat"] = "CANARY_7f3a9"
    train.loc[5, "x"] = 987.654321
    r = reports.evaluate(real=train, synthetic=mixture(1500, 3), holdout=HOLDOUT, schema=schema, target="flag", seed=0)
    r.save(tmp_path / "r.json")
    reports.render_html(r, tmp_path / "r.html")
    for text in ((tmp_path / "r.json").read_text(), (tmp_path / "r.html").read_text()):
        assert "CANARY_7f3a9" not in text
        assert "987.65" not in text and "987.7" not in text
        assert f"{train['y'].min():.4f}" not in text and f"{train['y'].max():.4f}" not in text
