"""CLI: the README's commands end to end, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app

runner = CliRunner()
SECRET = "SECRET_CELL_VALUE_4242"


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    n = 1200
    df = pd.DataFrame({
        "patient_id": [f"P{i:06d}" for i in rng.permutation(n)],
        "age": rng.integers(18, 90, n),
        "bmi": rng.normal(27, 4, n).round(1),
        "sex": rng.choice(["female", "male"], n),
        "smoker": rng.choice([True, False], n),
        "admitted": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
    })
    path = tmp_path_factory.mktemp("cli") / "patients.csv"
    df.to_csv(path, index=False)
    return path


def _fit_args(csv: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", str(csv), "--model", "dptvae", "--epsilon", "3", "--delta", "1e-6", "--epochs", "2",
            "--batch-size", "100", "--device", "cpu", "--seed", "0", "--out", str(out), *extra]


def test_schema_infer_fit_generate_inspect(csv_path, tmp_path):
    schema = tmp_path / "schema.yaml"
    r = _run("schema", "infer", str(csv_path), "--out", str(schema))
    assert r.exit_code == 0, r.output
    text = schema.read_text()
    assert "patient_id:\n    kind: identifier" in text
    assert "bounds" not in text and "categories" not in text  # inference never fills private stats

    model = tmp_path / "model"
    r = _run(*_fit_args(csv_path, model, "--schema", str(schema)))
    assert r.exit_code == 0, r.output
    assert (model / "manifest.json").is_file() and (model / "weights.safetensors").is_file()

    for ext in ("csv", "parquet"):
        out = tmp_path / f"syn.{ext}"
        r = _run("generate", str(model), "--rows", "2500", "--out", str(out), "--seed", "1")
        assert r.exit_code == 0, r.output
        import connectors
        syn = connectors.read(out)
        assert len(syn) == 2500
        assert list(syn.columns) == ["patient_id", "age", "bmi", "sex", "smoker", "admitted"]

    r = _run("inspect", str(model), "--json")
    assert r.exit_code == 0
    info = json.loads(r.output)
    assert info["model"] == "DPTVAE"
    assert info["privacy"]["unit"] == "row"
    assert info["privacy"]["epsilon_spent"] <= 3.0 + 1e-9
    names = {e["name"] for e in info["privacy"]["events"]}
    assert {"count:units", "dp-sgd", "categories:sex", "bounds:bmi", "histogram:bmi"} <= names
    r = _run("inspect", str(model))
    assert "differential privacy per row" in r.output


def test_target_is_declared_by_schema_infer_and_fit(csv_path, tmp_path):
    schema = tmp_path / "schema.yaml"
    r = _run("schema", "infer", str(csv_path), "--out", str(schema), "--target", "smoker")
    assert r.exit_code == 0, r.output
    assert "targets:\n- smoker" in schema.read_text()
    # fit --schema: --target adds to the file's targets; the bundle's schema carries both
    model = tmp_path / "model"
    r = _run(*_fit_args(csv_path, model, "--schema", str(schema), "--target", "age", "--target", "smoker"))
    assert r.exit_code == 0, r.output
    assert json.loads((model / "manifest.json").read_text())["schema"]["targets"] == ["smoker", "age"]
    # fit without --schema: the targets go into the inferred schema
    inferred = tmp_path / "inferred"
    r = _run(*_fit_args(csv_path, inferred, "--target", "bmi"))
    assert r.exit_code == 0, r.output
    assert json.loads((inferred / "manifest.json").read_text())["schema"]["targets"] == ["bmi"]


@pytest.mark.parametrize("command", ["infer", "fit"])
def test_an_unusable_target_is_one_line_naming_it(csv_path, tmp_path, command):
    args = (["schema", "infer", str(csv_path), "--out", str(tmp_path / "s.yaml")] if command == "infer"
            else _fit_args(csv_path, tmp_path / "m"))
    r = _run(*args, "--target", "patient_id", "--target", "ghost")
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    if command == "infer":  # the reviewed path reads the rows: every problem at once
        assert len(lines) == 1 and "'patient_id' is an identifier" in lines[0] and "'ghost'" in lines[0], r.output
    else:
        # a private fit without a schema checks names against the header (public), and whether
        # a target can be learned against the kinds decided under DP, never a guess from the rows
        assert len(lines) == 1 and "--target 'ghost' is not a column" in lines[0], r.output
        r = _run(*args, "--target", "patient_id")
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and "'patient_id' is an identifier" in lines[0], r.output
    assert not (tmp_path / "s.yaml").exists() and not (tmp_path / "m").exists()


def test_generate_seed_reproducible(csv_path, tmp_path):
    model = tmp_path / "m"
    assert _run(*_fit_args(csv_path, model)).exit_code == 0
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _run("generate", str(model), "--rows", "300", "--out", str(a), "--seed", "9")
    _run("generate", str(model), "--rows", "300", "--out", str(b), "--seed", "9")
    assert a.read_bytes() == b.read_bytes()
    # an existing output is not replaced without --overwrite
    r = _run("generate", str(model), "--rows", "300", "--out", str(a), "--seed", "1")
    assert r.exit_code == 2 and "--overwrite" in r.output


def test_no_privacy_is_stated(csv_path, tmp_path):
    model = tmp_path / "np"
    args = [a for a in _fit_args(csv_path, model) if a not in ("--epsilon", "3")]
    r = _run(*args, "--no-privacy")
    assert r.exit_code == 0, r.output
    r = _run("inspect", str(model))
    assert "no formal privacy guarantee" in r.output


def _assert_one_line_error(r, *needles: str) -> None:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert lines and "error" in lines[0].lower()
    text = " ".join(r.output.split())
    for n in needles:
        assert n in text, (n, r.output)
    assert SECRET not in r.output


def test_errors_are_one_line_and_leave_nothing(csv_path, tmp_path):
    out = tmp_path / "never"
    base = pd.read_csv(csv_path)

    _assert_one_line_error(_run(*_fit_args(tmp_path / "missing.csv", out)), "no such file")

    bad = tmp_path / "bad.bin.csv"
    bad.write_bytes(b"\xff\xfe\x00\x01" * 100)
    r = _run(*_fit_args(bad, out))
    assert r.exit_code == 2 and "Traceback" not in r.output

    empty = tmp_path / "empty.csv"
    base.head(0).to_csv(empty, index=False)
    _assert_one_line_error(_run(*_fit_args(empty, out)), "empty")

    schema = tmp_path / "s.yaml"
    schema.write_text("columns:\n  nosuchcolumn: {kind: integer}\n  age: {kind: integer}\n")
    _assert_one_line_error(_run(*_fit_args(csv_path, out, "--schema", str(schema))), "nosuchcolumn")

    contra = tmp_path / "contra.csv"
    df = base.copy()
    df["age"] = df["age"].astype(object)
    df.loc[3, "age"] = SECRET
    df.to_csv(contra, index=False)
    schema2 = tmp_path / "s2.yaml"
    schema2.write_text("columns:\n  patient_id: identifier\n  age: integer\n  bmi: continuous\n  sex: categorical\n"
                       "  smoker: boolean\n  admitted: datetime\n")
    _assert_one_line_error(_run(*_fit_args(contra, out, "--schema", str(schema2))), "age", "not numbers")

    args = _fit_args(csv_path, out)
    eps_i = args.index("--epsilon") + 1
    for bad_eps in ("0", "-1"):
        args[eps_i] = bad_eps
        _assert_one_line_error(_run(*args), "epsilon")
    args = _fit_args(csv_path, out)
    args[args.index("--delta") + 1] = "0.5"
    _assert_one_line_error(_run(*args), "delta")
    args[args.index("--delta") + 1] = "1e-3"  # >= 1/n for n = 1,200 people
    _assert_one_line_error(_run(*args), "delta")

    args = _fit_args(csv_path, out)
    args[args.index("--batch-size") + 1] = "5000"
    _assert_one_line_error(_run(*args), "batch")

    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]  # no partial bundle


def test_existing_bundle_not_overwritten(csv_path, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    _assert_one_line_error(_run(*_fit_args(csv_path, out)), "--overwrite")
    assert (out / "keep.txt").read_text() == "x"


def test_demo_runs_the_whole_path(tmp_path, monkeypatch):
    """The README's main job: fit under DP, generate, evaluate, gate, queue for review (in
    the default registry, where `synthkit releases list` finds it)."""
    import sqlite3
    out = tmp_path / "demo"
    monkeypatch.setenv("SYNTHKIT_REGISTRY", str(tmp_path / "default-registry.db"))
    r = _run("demo", "--out", str(out), "--epochs", "2", "--rows", "1500")
    assert r.exit_code == 0, r.output
    runs = list((out / "work").iterdir())
    assert len(runs) == 1
    run = runs[0]
    for name in ("model/manifest.json", "synthetic.csv", "report.json", "report.html"):
        assert (run / name).is_file(), name
    report = json.loads((run / "report.json").read_text())
    assert report["privacy"]["private"] is True and report["privacy"]["epsilon_spent"] <= 3.0 + 1e-9
    said = " ".join(r.output.split())  # rich wraps long lines
    assert "status pending_review" in said or "status gate_rejected" in said
    assert not (out / "releases").exists() or not any((out / "releases").iterdir())  # nothing released unreviewed
    with sqlite3.connect(tmp_path / "default-registry.db") as db:
        assert db.execute("select count(*) from synthkit_runs").fetchone()[0] == 1
    assert f"registry: {tmp_path / 'default-registry.db'}" in said
    listed = _run("releases", "list")
    assert run.name in listed.output and "1 run(s)" in listed.output
