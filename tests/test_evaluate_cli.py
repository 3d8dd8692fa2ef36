"""`synthkit evaluate` end to end: a tiny DP bundle (DPTVAE, 1 epoch) whose manifest
records a holdout split, its synthetic output, and the report folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import connectors
from reports.model import Report
from synthkit import DPTVAE, PrivacyBudget
from synthkit.cli import app
from synthkit.manifest import write_manifest
from synthkit.split import holdout_split
from test_reports_metrics import SCHEMA, mixture

runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("evaluate_cli")
    real = mixture(1200, 0)
    real_path = d / "real.csv"
    connectors.write(real, real_path, overwrite=True)
    real = connectors.read(real_path)  # what fit and evaluate both see
    train, _, record = holdout_split(real, fraction=0.25, seed=11)
    model = DPTVAE(epochs=1, batch_size=100, embedding_dim=16, compress_dims=(32,), decompress_dims=(32,),
                   device="cpu", seed=0).fit(train, schema=SCHEMA, budget=PrivacyBudget(epsilon=3.0, delta=1e-6))
    model.save(d / "model")
    # what `synthkit fit --holdout 0.25` will record (the coordinator wires it into fit)
    manifest = json.loads((d / "model" / "manifest.json").read_text())
    manifest["holdout"] = record
    write_manifest(d / "model", manifest)  # with its manifest.sha256, as save writes it
    syn_path = d / "synthetic.parquet"
    connectors.write(model.sample(900, seed=1), syn_path, overwrite=True)
    return {"dir": d, "real": real_path, "model": d / "model", "synthetic": syn_path}


def test_evaluate_writes_json_and_html(bundle):
    out = bundle["dir"] / "report"
    r = runner.invoke(app, ["evaluate", str(bundle["model"]), "--real", str(bundle["real"]), "--synthetic",
                            str(bundle["synthetic"]), "--target", "flag", "--target", "y", "--out", str(out)],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "privacy.membership_inference.auc" in r.output and "differential privacy" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]
    report = Report.load(out / "report.json")
    assert report.privacy["private"] is True and report.privacy["epsilon_spent"] <= 3.0 + 1e-9
    assert report.data["n_train"] == 900 and report.data["n_holdout"] == 300 and report.data["n_synthetic"] == 900
    assert report.model["class"] == "DPTVAE" and len(report.model["manifest_sha256"]) == 64
    assert report.metric("fidelity.ml_utility.tstr").value is not None
    # --target repeats: utility for each, the first under the legacy ids
    assert report.data["targets"] == ["flag", "y"] and report.metric("fidelity.ml_utility.tstr").details["target"] == "flag"
    assert list(report.metric("fidelity.ml_utility.min_ratio").details["per_target"]) == ["flag", "y"]
    assert report.metric("fidelity.association_signs.kept_share").value is not None
    assert report.validation["n_expectations"] >= 8
    # a 1-epoch DP model is no copier
    assert report.metric("privacy.exact_copies.rate").value == 0.0
    assert "<svg" in (out / "report.html").read_text()


def test_json_format_and_refusals(bundle, tmp_path):
    args = ["evaluate", str(bundle["model"]), "--real", str(bundle["real"]), "--synthetic", str(bundle["synthetic"])]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "r"), "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0
    assert json.loads(r.stdout)["format"] == "synthkit-report"
    # the folder exists now: refused without --overwrite, one line, exit code 2
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "r")], catch_exceptions=False)
    assert r.exit_code == 2 and "--overwrite" in r.output
    # another file than the one the model was fitted on: the recorded split cannot be re-derived
    other = tmp_path / "other.csv"
    connectors.write(mixture(1200, 5), other)
    r = runner.invoke(app, ["evaluate", str(bundle["model"]), "--real", str(other), "--synthetic",
                            str(bundle["synthetic"]), "--out", str(tmp_path / "r2")], catch_exceptions=False)
    assert r.exit_code == 2 and "fingerprint" in r.output
    assert not (tmp_path / "r2").exists()
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "r3"), "--target", "nope"], catch_exceptions=False)
    assert r.exit_code == 2 and "target" in r.output
