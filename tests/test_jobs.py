"""Scheduled jobs: the spec is validated up front (every problem at once, before any data
is read), runs are idempotent (a settled job is never run or released twice), a failure
at each step leaves a clear status and no partial output, logs go to stderr without
private values, and `synthkit run` exit codes tell gate rejection from crash and bad input.

The orchestration tests replace fit/generate/evaluate with fakes (the real steps are
tested in their own modules); one end-to-end test trains a tiny DPTVAE for real.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import synthkit.jobs as jobs
from reports.registry import Registry
from synthkit.cli import app
from synthkit.errors import SynthkitError
from synthkit.jobs import JobFailed, JobSpecError, load_job, run_job
from test_gate import COPY, make_report

runner = CliRunner()
SECRET = "SECRET_CELL_VALUE_4242"
SCHEMA = {"version": 1, "columns": {
    "patient_id": {"kind": "identifier", "nullable": False},
    "age": {"kind": "integer", "nullable": False, "bounds": [18, 90]},
    "bmi": {"kind": "continuous", "nullable": False, "bounds": [15, 45]},
    "sex": {"kind": "categorical", "nullable": False, "categories": ["female", "male"]},
    "smoker": {"kind": "boolean", "nullable": False}}}


def write_job(folder: Path, *, n: int = 400, **changes) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"patient_id": [f"P{i:05d}" for i in range(n)], "age": rng.integers(18, 90, n),
                          "bmi": rng.normal(27, 4, n).clip(15, 45).round(1),
                          "sex": rng.choice(["female", "male"], n), "smoker": rng.choice([True, False], n)})
    frame.loc[0, "patient_id"] = SECRET
    frame.to_csv(folder / "patients.csv", index=False)
    (folder / "schema.yaml").write_text(yaml.safe_dump(SCHEMA))
    spec = {"name": "nightly-patients", "owner": "olivia", "source": {"uri": "patients.csv"},
            "schema": "schema.yaml", "model": {"name": "dptvae", "hyperparameters": {"epochs": 1, "batch_size": 50}},
            "privacy": {"epsilon": 3.0, "delta": 1e-6}, "generate": {"rows": 300}, "policy": "default",
            "output": {"work_dir": "work", "releases_dir": "releases"}, "seed": 0, "device": "cpu",
            "intended_use": "pipeline tests"}
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def fake_steps(monkeypatch):
    """Fast stand-ins for fit/generate/evaluate; `state['report']` picks the report."""
    state = {"report": make_report(), "calls": []}

    def fit(spec, train, schema, out):
        state["calls"].append("fit")
        out.mkdir()
        (out / "manifest.json").write_text("{}")
        return out

    def generate(spec, model_dir, out):
        state["calls"].append("generate")
        pd.DataFrame({"age": [40, 50], "bmi": [22.0, 30.5], "sex": ["female", "male"],
                      "smoker": [True, False]}).to_csv(out, index=False)
        return out

    def evaluate(spec, train, holdout, synthetic_path, model_dir, schema):
        state["calls"].append("evaluate")
        assert len(train) > len(holdout) > 0 and not set(train["patient_id"]) & set(holdout["patient_id"])
        return state["report"]

    monkeypatch.setattr(jobs, "_fit", fit)
    monkeypatch.setattr(jobs, "_generate", generate)
    monkeypatch.setattr(jobs, "_evaluate", evaluate)
    return state


def test_spec_is_validated_up_front_listing_every_problem(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "_read", lambda spec: pytest.fail("data was read before validation"))
    path = write_job(tmp_path, name="Nightly Job", colour="red", schema="missing.yaml",
                     model={"name": "gan", "epochs": 3}, privacy={"epsilon": -1},
                     generate={"rows": 0}, policy="no-such-policy", output={"format": "xlsx"})
    with pytest.raises(JobSpecError) as info:
        load_job(path)
    problems = info.value.problems
    text = " | ".join(problems)
    for needle in ("'name'", "['colour']", "schema:", "model.name", "['epochs']", "epsilon must be",
                   "generate.rows", "policy:", "output.format"):
        assert needle in text, needle
    assert len(problems) == 9, problems
    r = runner.invoke(app, ["run", str(path), "--registry", str(tmp_path / "r.db")])
    assert r.exit_code == 2 and "9 problems" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r.db").exists()


def test_no_privacy_must_be_explicit_and_contradictions_are_refused(tmp_path):
    with pytest.raises(JobSpecError, match="privacy.epsilon is required"):
        load_job(write_job(tmp_path, privacy={"delta": 1e-6}))
    with pytest.raises(JobSpecError, match="contradict"):
        load_job(write_job(tmp_path, privacy={"epsilon": 1.0, "no_privacy": True}))
    spec = load_job(write_job(tmp_path, privacy={"no_privacy": True}))
    assert spec.no_privacy and spec.epsilon is None


def test_a_job_goes_to_pending_review_and_rerunning_it_does_nothing(tmp_path, fake_steps):
    path = write_job(tmp_path)
    db = tmp_path / "registry.db"
    first = run_job(path, registry=str(db), run_by="alice")
    assert first.status == "pending_review" and first.created
    assert fake_steps["calls"] == ["fit", "generate", "evaluate"]
    reg = Registry(db)
    assert [e.step for e in reg.events(first.run_id)] == ["claim", "read", "fit", "generate", "evaluate",
                                                          "staged", "gate"]
    staged = reg.artifacts(first.run_id)
    assert Path(staged["synthetic"]).is_file() and Path(staged["report"]).is_file()
    # the runner is the OS account; the name the caller gave is only a display label
    assert reg.run(first.run_id).owner == "olivia" and reg.run(first.run_id).run_by == jobs.runner_account()
    assert reg.events(first.run_id)[0].details["run_by_display"] == "alice"

    again = run_job(path, registry=str(db), run_by="alice")
    assert (again.run_id, again.created, again.status) == (first.run_id, False, "pending_review")
    assert fake_steps["calls"] == ["fit", "generate", "evaluate"]  # nothing ran again
    nightly = run_job(path, registry=str(db), run_by="alice", run_key="2026-01-02")
    assert nightly.created and nightly.run_id != first.run_id
    assert not list((tmp_path / "work").glob("*.partial"))


def test_auto_release_policy_releases_once(tmp_path, fake_steps):
    policy = yaml.safe_load((Path(jobs.__file__).parents[1] / "policies" / "default.yaml").read_text())
    policy.update(name="auto", release={"auto_release": True, "reviewers_required": 1})
    (tmp_path / "auto.yaml").write_text(yaml.safe_dump(policy))
    path = write_job(tmp_path, policy="auto.yaml")
    db = str(tmp_path / "registry.db")
    result = run_job(path, registry=db, run_by="cron")
    assert result.status == "released" and Path(result.release_path).is_dir()
    again = run_job(path, registry=db, run_by="cron")
    assert again.status == "released" and not again.created
    assert len(list((tmp_path / "releases").iterdir())) == 1
    from reports.release import verify
    assert verify(Registry(db), result.run_id).ok


@pytest.mark.parametrize("step", ["read", "fit", "generate", "evaluate", "gate"])
def test_failure_at_each_step_leaves_a_clear_status_and_no_output(tmp_path, fake_steps, monkeypatch, step):
    path = write_job(tmp_path)
    db = str(tmp_path / "registry.db")
    original = getattr(jobs, f"_{step}")

    def boom(*args, **kwargs):
        raise RuntimeError(f"disk exploded near {SECRET}")  # an unexpected error quoting a value

    monkeypatch.setattr(jobs, f"_{step}", boom)
    with pytest.raises(JobFailed) as info:
        run_job(path, registry=db, run_by="alice")
    assert info.value.step == step and SECRET not in str(info.value)
    reg = Registry(db)
    run_id = info.value.run_id
    assert reg.status(run_id) == "failed"
    last = reg.events(run_id)[-1]
    assert (last.status, last.step, last.message) == ("failed", step, "RuntimeError (unexpected)")
    assert not (tmp_path / "releases").exists()
    assert not [p for p in (tmp_path / "work").iterdir()]  # no staged or partial folder left
    assert reg.decision(run_id) is None or step != "gate"
    # fixed: the next run is a new attempt and succeeds
    monkeypatch.setattr(jobs, f"_{step}", original)
    retry = run_job(path, registry=db, run_by="alice")
    assert retry.created and retry.status == "pending_review" and reg.run(retry.run_id).attempt == 2


def test_synthkit_errors_are_recorded_with_their_message(tmp_path, fake_steps, monkeypatch):
    path = write_job(tmp_path)

    def refuse(*args, **kwargs):
        raise SynthkitError("training needs epsilon=4.2 but only 3.0 remains")

    monkeypatch.setattr(jobs, "_fit", refuse)
    r = runner.invoke(app, ["run", str(path), "--registry", str(tmp_path / "r.db")])
    assert r.exit_code == 2 and "failed at step 'fit'" in r.output
    assert Registry(tmp_path / "r.db").runs()[0].status == "failed"
    monkeypatch.setattr(jobs, "_fit", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    r = runner.invoke(app, ["run", str(path), "--registry", str(tmp_path / "r.db")])
    assert r.exit_code == 1 and "MemoryError" in r.output


def test_cli_exit_codes_and_logs(tmp_path, fake_steps, caplog):
    path = write_job(tmp_path)
    db = str(tmp_path / "registry.db")
    with caplog.at_level(logging.INFO, logger="synthkit.jobs"):
        r = runner.invoke(app, ["run", str(path), "--registry", db, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["status"] == "pending_review" and out["new_run"] is True
    assert any(out["run_id"] in rec.getMessage() and "gate PASSED" in rec.getMessage() for rec in caplog.records)
    assert SECRET not in caplog.text

    fake_steps["report"] = make_report(COPY)
    r = runner.invoke(app, ["run", str(path), "--registry", db, "--run-key", "copy"])
    assert r.exit_code == 3 and "gate_rejected" in r.output
    r = runner.invoke(app, ["run", str(path), "--registry", db, "--run-key", "copy"])
    assert r.exit_code == 3 and "already settled" in r.output
    dump = json.dumps([e.__dict__ if hasattr(e, "__dict__") else str(e)
                       for s in Registry(db).runs() for e in Registry(db).events(s.run.run_id)], default=str)
    assert SECRET not in dump


def test_credentials_in_uris_never_reach_the_registry(tmp_path, fake_steps, monkeypatch):
    path = write_job(tmp_path, registry=None)
    spec = load_job(path)
    raw = dict(spec.raw, source={"uri": "postgresql://etl:hunter2pw@db.internal/claims", "table": "claims"})
    from synthkit.jobs import redact_uri, source_kind
    assert redact_uri(raw["source"]["uri"]) == "postgresql://etl:***@db.internal/claims"
    assert source_kind(raw["source"]["uri"]) == "postgresql" and source_kind("a/b.parquet") == "parquet file"
    redacted = jobs.JobSpec(**{**{f: getattr(spec, f) for f in spec.__dataclass_fields__}, "raw": raw}).redacted()
    assert "hunter2pw" not in json.dumps(redacted)


@pytest.mark.slow
def test_end_to_end_tiny_dp_job_then_cli_approval(tmp_path, monkeypatch):
    """The real path once: read, DP fit (DPTVAE, 1 epoch), generate, evaluate, gate,
    approve through the CLI, verify the bundle."""
    path = write_job(tmp_path, n=400)
    db = str(tmp_path / "registry.db")
    result = run_job(path, registry=db, run_by="alice")
    reg = Registry(db)
    decision = reg.decision(result.run_id)
    assert decision is not None and result.status in ("pending_review", "gate_rejected")
    rows = {c["metric"]: c for c in decision.decision["checks"]}
    assert rows["privacy.differential_privacy"]["passed"] is True
    assert rows["privacy.epsilon"]["observed"] <= 3.0 + 1e-6
    assert rows["privacy.exact_copies.excess"]["passed"] is True  # a DP model does not copy rows
    from reports.model import Report
    report = Report.load(reg.artifacts(result.run_id)["report"])
    assert report.privacy["private"] is True and report.data["n_synthetic"] == 300
    assert SECRET not in Path(reg.artifacts(result.run_id)["report"]).read_text()
    if result.status == "pending_review":
        from reports.review import hash_password
        reviewers = tmp_path / "reviewers.yaml"
        reviewers.write_text(yaml.safe_dump({"reviewers": [{"name": "bob", "password": hash_password("pw-of-bob!")}]}))
        monkeypatch.setenv("SYNTHKIT_REVIEWER_PASSWORD", "pw-of-bob!")
        monkeypatch.setenv("SYNTHKIT_HOME", str(tmp_path / "home"))
        r = runner.invoke(app, ["reviewers", "key", "bob", "--file", str(reviewers)])  # bob's signing key
        assert r.exit_code == 0 and "public_key: ed25519:" in r.output, r.output
        r = runner.invoke(app, ["release", "approve", result.run_id, "--reason", "tiny test run is fine",
                                "--reviewer", "bob", "--registry", db, "--reviewers", str(reviewers)])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["releases", "verify", result.run_id, "--registry", db, "--reviewers", str(reviewers)])
        assert r.exit_code == 0, r.output


def test_a_job_without_a_schema_decides_the_kinds_under_dp_as_fit_does(tmp_path):
    """`schema:` is optional, as for `synthkit fit` (issue 17): the fit decides the kinds
    under DP (synthkit.dp_schema), charged to the same ledger, and evaluation uses the
    bundle's schema. Negative control: on db0fc38 load_job refused this spec ("'schema' is
    required")."""
    path = write_job(tmp_path, n=400, schema=None)
    spec = load_job(path)
    assert spec.schema_path is None
    db = str(tmp_path / "registry.db")
    result = run_job(path, registry=db, run_by="alice")
    assert result.status in ("pending_review", "gate_rejected")
    from reports.model import Report
    report = Report.load(Registry(db).artifacts(result.run_id)["report"])
    assert report.privacy["private"] is True and report.privacy["epsilon_spent"] <= 3.0 + 1e-6
    assert SECRET not in Path(Registry(db).artifacts(result.run_id)["report"]).read_text()


def test_a_job_without_an_entity_key_refuses_max_rows_per_entity_above_one(tmp_path):
    """Reviews R2 and R3 (session 9): without a declared entity key (no schema, or a schema
    without `entity_key`) the privacy unit is the row, and `max_rows_per_entity: 3` was
    dropped silently (the job fitted with k = 1 per row). Now one line at load, naming the
    field and the fix. Negative control: fc6f452 accepted both specs (and d0780b7 the one
    with a schema). Bracket: a schema that declares the entity key loads with k = 3."""
    model = {"name": "dptvae", "hyperparameters": {"epochs": 1, "batch_size": 50}, "max_rows_per_entity": 3}
    with pytest.raises(SynthkitError, match="max_rows_per_entity > 1 needs a schema that declares the entity key"):
        load_job(write_job(tmp_path, n=50, schema=None, model=model))
    with pytest.raises(SynthkitError, match="max_rows_per_entity > 1 needs a schema that declares the entity key"):
        load_job(write_job(tmp_path, n=50, model=model))  # SCHEMA declares no entity_key
    keyed = tmp_path / "keyed"
    keyed.mkdir()
    path = write_job(keyed, n=50, model=model)
    (keyed / "schema.yaml").write_text(yaml.safe_dump({**SCHEMA, "entity_key": "patient_id"}))
    assert load_job(path).max_rows_per_entity == 3


def test_a_dphmm_job_is_refused_at_load_not_at_run_time(tmp_path):
    """A job with `model: {name: dphmm}` passed validation and then failed when it ran
    (the runner passed max_rows_per_entity to DPHMM; session 9's H4 found it). Now one line
    at load naming the field and the commands to use. Negative control: on dd0b899 load_job
    accepted it. Bracket: dptvae and dpctgan still load."""
    with pytest.raises(SynthkitError, match="model.name dphmm: a job runs the table models"):
        load_job(write_job(tmp_path, n=50, model={"name": "dphmm"}))
    for name in ("dptvae", "dpctgan"):
        assert load_job(write_job(tmp_path, n=50, model={"name": name})).model == name
